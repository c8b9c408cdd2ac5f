"""Reads that compute: campaign lists with their metrics."""

from decimal import Decimal

from django.db.models import (
    Count,
    DecimalField,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce

from ..models import Campaign, Click, DailyStat, LandingPage

_MONEY = DecimalField(max_digits=20, decimal_places=4)


def _per_campaign(queryset: QuerySet, aggregate, output_field):
    """One correlated subquery per metric, so metrics from different tables never multiply."""
    rows = queryset.filter(campaign=OuterRef("pk")).order_by().values("campaign")
    total = Subquery(rows.annotate(total=aggregate).values("total"), output_field=output_field)
    zero = Value(Decimal("0") if output_field is _MONEY else 0, output_field=output_field)
    return Coalesce(total, zero, output_field=output_field)


def campaign_list_with_metrics(queryset: QuerySet[Campaign] | None = None) -> QuerySet[Campaign]:
    """Campaigns with lifetime impressions, reported and tracked clicks, spend, leads and revenue.

    The cost of the list is a fixed number of queries whatever the page size.
    """
    queryset = Campaign.objects.all() if queryset is None else queryset
    stats = DailyStat.objects.all()
    # Leads are read through the reverse relation: campaigns never imports the leads app.
    leads = Campaign._meta.get_field("leads").related_model.objects.filter(is_test=False)
    return queryset.select_related("traffic_source", "offer__advertiser").annotate(
        impressions_total=_per_campaign(stats, Sum("impressions"), IntegerField()),
        clicks_reported=_per_campaign(stats, Sum("clicks"), IntegerField()),
        spend_total=_per_campaign(stats, Sum("spend"), _MONEY),
        clicks_tracked=_per_campaign(Click.objects.all(), Count("pk"), IntegerField()),
        leads_total=_per_campaign(leads, Count("pk"), IntegerField()),
        valid_leads=_per_campaign(leads.filter(validity="valid", is_duplicate=False), Count("pk"), IntegerField()),
        # As the report counts it: sales in the offer's currency (others are never added in).
        revenue_total=_per_campaign(
            leads.filter(Q(sale_currency="") | Q(sale_currency=F("offer__currency")), status="won"),
            Sum("sale_amount"),
            _MONEY,
        ),
    )


def cost_per_lead(spend: Decimal, valid_leads: int) -> Decimal | None:
    """CPL = spend / valid leads; None (shown empty) when there are none."""
    return (spend / valid_leads).quantize(Decimal("0.01")) if valid_leads else None


def return_on_investment(revenue: Decimal, spend: Decimal) -> Decimal | None:
    """ROI = (revenue - spend) / spend as a fraction; None when nothing was spent."""
    return ((revenue - spend) / spend).quantize(Decimal("0.0001")) if spend else None


def campaign_for_tracking(slug: str) -> Campaign | None:
    """The campaign behind a tracking link, with its source and first landing page in one query."""
    first_page = (
        LandingPage.objects.filter(campaign=OuterRef("pk"), is_active=True)
        .order_by("position", "id")
        .values("slug")[:1]
    )
    return (
        Campaign.objects.select_related("traffic_source")
        .annotate(first_landing_slug=Subquery(first_page))
        .filter(slug=slug)
        .first()
    )
