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
from django.db.models.functions import Coalesce, TruncDate

from .models import Campaign, Click, DailyStat, LandingPage, Offer

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
        revenue_total=_per_campaign(leads.filter(status="won"), Sum("sale_amount"), _MONEY),
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


REPORT_GROUPS = {
    # name in the API -> (lead field, daily stat field or None when spend is not known at that grain)
    "campaign": ("campaign__slug", "campaign__slug"),
    "traffic_source_kind": ("traffic_source__kind", "campaign__traffic_source__kind"),
    "offer": ("offer_id", "campaign__offer_id"),  # by id: offer names repeat across advertisers
    "day": ("day", "date"),
    "country": ("country", None),
    "device_type": ("device_type", None),
}


def _ratio(numerator, denominator, places: str = "0.0001"):
    if not denominator:
        return None
    return (Decimal(numerator) / Decimal(denominator)).quantize(Decimal(places))


def campaign_report(
    *, date_from, date_to, group_by: list[str], leads: QuerySet | None = None, include_money: bool = True
) -> list[dict]:
    """Lead and money metrics per group for [date_from, date_to]: a fixed number of aggregate queries
    (two, three with money, one more by offer).

    `leads` narrows the leads counted (a supplier's own); test leads never count. Spend comes
    from daily stats and exists per campaign, source kind, offer and day, not per country or
    device; where it is unknown, spend and the metrics made from it are None, as are divisions
    by zero.
    """
    lead_model = Campaign._meta.get_field("leads").related_model
    leads = (lead_model.objects.all() if leads is None else leads).filter(
        is_test=False, created_at__date__gte=date_from, created_at__date__lte=date_to
    )
    lead_keys = [REPORT_GROUPS[name][0] for name in group_by]
    if include_money:
        # Money is never added across currencies: each row is in its offers' currency. Spend is in
        # the currency of the campaign's offer.
        lead_keys.append("offer__currency")
    if "day" in group_by:
        leads = leads.annotate(day=TruncDate("created_at"))
    valid = Q(validity="valid", is_duplicate=False)
    in_offer_currency = Q(sale_currency=F("offer__currency")) | Q(sale_currency="")
    rows = {}
    lead_rows = (
        leads.order_by()
        .values(*lead_keys)
        .annotate(
            leads=Count("pk"),
            valid_leads=Count("pk", filter=valid),
            duplicates=Count("pk", filter=Q(is_duplicate=True)),
            invalid=Count("pk", filter=Q(validity="invalid")),
            qualified=Count("pk", filter=valid & Q(qualification="qualified")),
            # Converted valid leads, so the conversion rate (converted / valid) stays a rate.
            converted=Count("pk", filter=valid & Q(status="won")),
            returned=Count("pk", filter=Q(status="returned")),
            revenue=Sum("sale_amount", filter=Q(status="won") & in_offer_currency),
        )
    )
    for row in lead_rows:
        key = tuple(str(row[field]) for field in lead_keys)
        rows[key] = {**{name: row[field] for name, field in zip(group_by, lead_keys, strict=False)}, **row}
    other_currencies = {}
    if include_money:
        # Sales a buyer reported in another currency than the offer's: shown apart, not converted.
        for row in (
            leads.filter(status="won")
            .exclude(in_offer_currency)
            .order_by()
            .values(*lead_keys, "sale_currency")
            .annotate(total=Sum("sale_amount"))
        ):
            key = tuple(str(row[field]) for field in lead_keys)
            other_currencies.setdefault(key, {})[row["sale_currency"]] = row["total"].quantize(Decimal("0.01"))
    spend_known = include_money and all(REPORT_GROUPS[name][1] for name in group_by)
    stats_by_key = {}
    if spend_known:
        stat_keys = [REPORT_GROUPS[name][1] for name in group_by] + ["campaign__offer__currency"]
        stats = (
            DailyStat.objects.filter(date__gte=date_from, date__lte=date_to)
            .order_by()
            .values(*stat_keys)
            .annotate(spend=Sum("spend"), clicks=Sum("clicks"))
        )
        for stat in stats:
            key = tuple(str(stat[field]) for field in stat_keys)
            stats_by_key[key] = stat
            rows.setdefault(
                key,
                {
                    **{name: stat[field] for name, field in zip(group_by, stat_keys, strict=False)},
                    "leads": 0,
                    "valid_leads": 0,
                    "duplicates": 0,
                    "invalid": 0,
                    "qualified": 0,
                    "converted": 0,
                    "returned": 0,
                    "revenue": None,
                },
            )
    offer_names = {}
    if "offer" in group_by:
        offer_ids = {row["offer"] for row in rows.values()}
        offer_names = dict(Offer.objects.filter(pk__in=offer_ids).values_list("pk", "name"))
    report = []
    for key, row in sorted(rows.items()):
        stat = stats_by_key.get(key, {})
        revenue = row["revenue"] or Decimal("0")
        spend = (stat.get("spend") or Decimal("0")) if spend_known else None
        clicks = stat.get("clicks") or 0
        entry = {name: row[name] for name in group_by}
        if "offer" in entry:
            entry["offer_id"], entry["offer"] = entry["offer"], offer_names.get(entry["offer"], "")
        entry.update(
            leads=row["leads"],
            valid_leads=row["valid_leads"],
            duplicates=row["duplicates"],
            invalid=row["invalid"],
            qualified=row["qualified"],
            converted=row["converted"],
            returned=row["returned"],
            conversion_rate=_ratio(row["converted"], row["valid_leads"]),
            validity_rate=_ratio(row["valid_leads"], row["leads"]),
        )
        if include_money:
            entry.update(
                currency=key[-1],
                spend=None if spend is None else spend.quantize(Decimal("0.01")),
                revenue=revenue.quantize(Decimal("0.01")),
                cpl=None if spend is None else _ratio(spend, row["valid_leads"], "0.01"),
                roi=None if spend is None else _ratio(revenue - spend, spend),
                roas=None if spend is None else _ratio(revenue, spend),
                epc=None if spend is None else _ratio(revenue, clicks),
            )
            if key in other_currencies:
                entry["revenue_other_currencies"] = other_currencies[key]
        report.append(entry)
    return report
