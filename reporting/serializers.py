"""Request and response shapes of the report API; no logic beyond shape checks."""

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django.utils.functional import cached_property
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied
from rest_framework.settings import api_settings

from leadcrm.api_schema import days_schema, shown_as

from .selectors import GROUPINGS
from .selectors.reports import EARLIEST_DAY, LATEST_DAY, Row

REPORT_GROUP_CHOICES = list(GROUPINGS)
# Partners see their own leads by what they know already: not who buys them (advertiser) nor which
# sources, placements and pages the company runs traffic through.
PARTNER_REPORT_GROUPS = ["campaign", "traffic_source_kind", "offer", "day", "week", "country", "device_type"]


# Names separated by commas (spaces and empty names between them are ignored).
GROUP_BY_PATTERN = (
    f"^[\\s,]*({'|'.join(REPORT_GROUP_CHOICES)})(\\s*,[\\s,]*({'|'.join(REPORT_GROUP_CHOICES)}))*[\\s,]*$"
)


class ReportQuerySerializer(serializers.Serializer[Any]):
    date_from = shown_as(serializers.DateField, days_schema(EARLIEST_DAY, LATEST_DAY))()
    date_to = shown_as(serializers.DateField, days_schema(EARLIEST_DAY, LATEST_DAY))(
        help_text="Not before date_from, and at most 366 days after it."
    )
    group_by = shown_as(serializers.CharField, {"type": "string", "pattern": GROUP_BY_PATTERN})(
        default="campaign",
        help_text=f"Comma-separated, outermost first: {', '.join(REPORT_GROUP_CHOICES)}. Partners may group by "
        f"{', '.join(PARTNER_REPORT_GROUPS)} (others are refused with 403).",
    )

    def validate_group_by(self, value: str) -> list[str]:
        groups = [name.strip() for name in value.split(",") if name.strip()]
        unknown = [name for name in groups if name not in REPORT_GROUP_CHOICES]
        if unknown or not groups:
            raise serializers.ValidationError(f"Use some of {', '.join(REPORT_GROUP_CHOICES)}.")
        if self.context.get("partner") is not None and set(groups) - set(PARTNER_REPORT_GROUPS):
            # A well-formed request for what the caller may not see: refused as such, not as bad input.
            raise PermissionDenied(f"Partners may group by {', '.join(PARTNER_REPORT_GROUPS)}.")
        return list(dict.fromkeys(groups))

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        for name in ("date_from", "date_to"):
            if not EARLIEST_DAY <= attrs[name] <= LATEST_DAY:
                raise serializers.ValidationError({name: [f"Must be between {EARLIEST_DAY} and {LATEST_DAY}."]})
        if attrs["date_to"] < attrs["date_from"]:
            raise serializers.ValidationError({"date_to": ["Must not be before date_from."]})
        if (attrs["date_to"] - attrs["date_from"]).days > 366:
            raise serializers.ValidationError({"date_to": ["At most 366 days per report."]})
        return attrs


def _decimal_field(places: int, help_text: str = "", **kwargs: Any) -> serializers.DecimalField:
    # Money and ratios. No max_digits: a tiny spend can make ROAS as large as any revenue.
    return serializers.DecimalField(
        max_digits=None, decimal_places=places, allow_null=True, help_text=help_text, **kwargs
    )


def _sub_id_field() -> serializers.CharField:
    return serializers.CharField(required=False, allow_null=True, help_text="Sub id; null where none was passed.")


class ReportRowSerializer(serializers.Serializer[Row]):
    """One group: its grouping columns (those asked for), then the metrics. Traffic and money metrics are
    for staff only (absent for partners); a metric that would divide by zero, or a figure unknown at the
    grouping asked for (spend per country, clicks per landing page), is null."""

    campaign = serializers.CharField(required=False, help_text="Campaign slug.")
    campaign_name = serializers.CharField(required=False)
    campaign_id = serializers.IntegerField(required=False)
    traffic_source_kind = serializers.CharField(required=False)
    traffic_source_id = serializers.IntegerField(required=False)
    traffic_source = serializers.CharField(required=False, help_text="Traffic source name.")
    offer_id = serializers.IntegerField(required=False)
    offer = serializers.CharField(required=False, help_text="Offer name.")
    advertiser_id = serializers.IntegerField(required=False)
    advertiser = serializers.CharField(required=False, help_text="Advertiser name.")
    day = serializers.DateField(required=False)
    week = serializers.DateField(required=False, help_text="The Monday the week starts on.")
    country = serializers.CharField(required=False)
    device_type = serializers.CharField(required=False)
    landing_page_id = serializers.IntegerField(required=False, allow_null=True)
    landing_page = serializers.CharField(required=False, allow_null=True, help_text="Landing page name.")
    # The sub ids a source passes on its click URL (campaigns.models.SUB_ID_PARAMS).
    sub1 = _sub_id_field()
    sub2 = _sub_id_field()
    sub3 = _sub_id_field()
    sub4 = _sub_id_field()
    sub5 = _sub_id_field()
    zone = _sub_id_field()
    placement = _sub_id_field()
    creative = _sub_id_field()
    site = _sub_id_field()
    keyword = _sub_id_field()
    currency = serializers.CharField(
        required=False, help_text="Currency of the row's money: its offers' currency (rows never mix currencies)."
    )
    leads = serializers.IntegerField()
    valid_leads = serializers.IntegerField(help_text="Valid and not a duplicate: billable.")
    duplicates = serializers.IntegerField()
    suspect = serializers.IntegerField(help_text="Not duplicates, judged suspect.")
    invalid = serializers.IntegerField(help_text="Not duplicates, judged invalid.")
    qualified = serializers.IntegerField(help_text="Valid leads that are qualified.")
    hard_leads = serializers.IntegerField(help_text="Valid hard (high-intent) leads.")
    soft_leads = serializers.IntegerField(help_text="Valid soft leads.")
    converted = serializers.IntegerField(help_text="Valid leads with a sale.")
    returned = serializers.IntegerField()
    conversion_rate = _decimal_field(4, "converted / valid leads")
    validity_rate = _decimal_field(4, "valid leads / leads")
    impressions = serializers.IntegerField(required=False, allow_null=True)
    clicks = serializers.IntegerField(required=False, allow_null=True, help_text="Clicks the source reported.")
    tracked_clicks = serializers.IntegerField(required=False, allow_null=True, help_text="Clicks we recorded.")
    lead_revenue = _decimal_field(2, "What buyers paid for leads, net of returns in the return window.", required=False)
    sold_leads = serializers.IntegerField(required=False, help_text="Leads buyers accepted, net of returns.")
    average_sale_price = _decimal_field(2, "lead_revenue / sold_leads", required=False)
    sale_revenue = _decimal_field(
        2,
        "Sale commissions: the amount reported with each sale (else the offer's payout per sale), net of "
        "returns. Every reported sale counts (also on leads judged invalid or duplicate: the money came in; "
        "`converted` counts only valid leads).",
        required=False,
    )
    revenue = _decimal_field(2, "lead_revenue + sale_revenue", required=False)
    media_spend = _decimal_field(
        4, "What the traffic sources charged (null at a grouping spend is not known at).", required=False
    )
    supplier_cost = _decimal_field(4, "Supplier payouts earned, net of reversals.", required=False)
    cost = _decimal_field(4, "media_spend + supplier_cost", required=False)
    margin = _decimal_field(4, "revenue - cost", required=False)
    cpl = _decimal_field(2, "cost / valid leads", required=False)
    cost_per_qualified = _decimal_field(2, "cost / qualified leads", required=False)
    roi = _decimal_field(4, "margin / cost", required=False)
    roas = _decimal_field(4, "revenue / cost", required=False)
    epc = _decimal_field(4, "revenue / clicks (tracked clicks where the source's are unknown)", required=False)
    money_other_currencies = serializers.DictField(
        child=serializers.DecimalField(max_digits=None, decimal_places=2),
        required=False,
        help_text="Money booked in another currency than the offer's (a sale reported in euros on a dollar "
        "offer), net, by currency; in none of the figures above.",
    )

    def to_representation(self, row: Row) -> dict[str, Any]:
        # Only the keys the report has: the groups asked for, and the money metrics only for staff. Each
        # value goes straight to its field's conversion (a row is a plain dict): a month by campaign and
        # day is 3,000 rows of 50 figures, and DRF's per-field lookups would cost more than the report.
        return {name: None if row[name] is None else show(row[name]) for name, show in self._shown if name in row}

    @cached_property
    def _shown(self) -> list[tuple[str, Callable[[Any], Any]]]:
        return [(name, _fast(field)) for name, field in self.fields.items()]


def _fast(field: serializers.Field[Any, Any, Any, Any]) -> Callable[[Any], Any]:
    """The field's to_representation, for decimals without DRF's per-call context set-up (same text:
    quantized to the field's places with the context's rounding, in fixed-point notation)."""
    as_text = getattr(field, "coerce_to_string", api_settings.COERCE_DECIMAL_TO_STRING)
    if (
        isinstance(field, serializers.DecimalField)
        and field.decimal_places is not None
        and as_text
        and not field.localize
        and not field.normalize_output
    ):
        exponent = Decimal(1).scaleb(-field.decimal_places)
        return lambda value: format(Decimal(value).quantize(exponent), "f")
    return field.to_representation


class ReportSerializer(serializers.Serializer[Any]):
    date_from = serializers.DateField()
    date_to = serializers.DateField()
    group_by = serializers.ListField(child=serializers.CharField())
    rows = ReportRowSerializer(many=True)
