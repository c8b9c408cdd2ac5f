"""Request and response shapes of the partner API; no logic beyond shape checks."""

from decimal import Decimal

from django.conf import settings
from django.urls import reverse
from rest_framework import serializers

from campaigns.models import Campaign, LeadType, validate_currency
from reporting.selectors import GROUPINGS
from reporting.selectors.reports import EARLIEST_DAY, LATEST_DAY

from ..models import Lead, LeadOutcome, LeadStatus, Qualification, Validity
from ..services.submission import TEXT_FIELDS

LEAD_INPUT_FIELDS = {"campaign", "company_size", "budget", "sub_ids", "answers", "consent", *TEXT_FIELDS}


def _has_unstorable_text(value) -> bool:
    """NUL or a lone surrogate anywhere in a JSON value (names too). JSON carries both, PostgreSQL
    stores neither; DRF's CharField refuses them, but not inside a DictField's names or free values.
    A loop, not recursion: the value may be nested nearly as deep as the parser allowed."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item or any("\ud800" <= character <= "\udfff" for character in item):
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable machine-readable code, e.g. invalid, not_found, throttled.")
    message = serializers.CharField()
    fields = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))


class ErrorSerializer(serializers.Serializer):
    error = ErrorBodySerializer()


class LeadInputSerializer(serializers.Serializer):
    """The lead contract. `campaign` and an email or a phone are required; unknown fields are refused."""

    campaign = serializers.SlugField(max_length=80)
    action = serializers.CharField(required=False, max_length=40, help_text="quote, demo, newsletter, quiz ...")
    email = serializers.CharField(required=False, allow_blank=True, max_length=254)
    phone = serializers.CharField(required=False, allow_blank=True, max_length=40)
    first_name = serializers.CharField(required=False, allow_blank=True, max_length=100)
    last_name = serializers.CharField(required=False, allow_blank=True, max_length=100)
    country = serializers.CharField(required=False, allow_blank=True, max_length=60)
    company = serializers.CharField(required=False, allow_blank=True, max_length=200)
    company_size = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=2_000_000_000)
    budget = serializers.DecimalField(required=False, allow_null=True, max_digits=14, decimal_places=2, min_value=0)
    zip_code = serializers.CharField(required=False, allow_blank=True, max_length=20)
    message = serializers.CharField(required=False, allow_blank=True, max_length=5000)
    click_id = serializers.CharField(required=False, allow_blank=True, max_length=128)
    sub_ids = serializers.DictField(child=serializers.CharField(max_length=255, allow_blank=True), required=False)
    answers = serializers.DictField(required=False)
    consent = serializers.BooleanField(required=False)
    consent_text = serializers.CharField(required=False, allow_blank=True, max_length=5000)
    consent_version = serializers.CharField(required=False, allow_blank=True, max_length=40)
    ip = serializers.IPAddressField(required=False, allow_blank=True, help_text="The person's IP, not your server's.")
    user_agent = serializers.CharField(required=False, allow_blank=True, max_length=1000)

    def to_internal_value(self, data):
        # Unknown fields are reported together with every other field error.
        unknown = sorted(set(data) - LEAD_INPUT_FIELDS) if isinstance(data, dict) else []
        try:
            values = super().to_internal_value(data)
        except serializers.ValidationError as error:
            raise serializers.ValidationError(
                {**error.detail, **{name: ["Unknown field."] for name in unknown}}
            ) from error
        if unknown:
            raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return values

    def validate_answers(self, value):
        if _has_unstorable_text(value):
            raise serializers.ValidationError("Null characters and lone surrogates are not allowed.")
        return value

    def validate_sub_ids(self, value):
        return self.validate_answers(value)

    def validate(self, attrs):
        if not (attrs.get("email") or attrs.get("phone")):
            raise serializers.ValidationError({"non_field_errors": ["Give an email or a phone number."]})
        return attrs


def _duplicate_of(lead: Lead, partner) -> str | None:
    """The original's id, shown to a partner only when the original is one of its own leads."""
    original = lead.duplicate_of
    if original is None or (partner is not None and original.partner_id != partner.pk):
        return None
    return str(original.public_id)


class LeadResultSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="public_id")
    status = serializers.ChoiceField(choices=LeadStatus.choices)
    lead_type = serializers.ChoiceField(choices=LeadType.choices)
    validity = serializers.ChoiceField(choices=Validity.choices)
    validity_reasons = serializers.ListField(child=serializers.CharField())
    qualification = serializers.ChoiceField(choices=Qualification.choices)
    qualification_reasons = serializers.ListField(child=serializers.CharField())
    score = serializers.IntegerField(min_value=0, max_value=100)
    duplicate = serializers.BooleanField(source="is_duplicate")
    duplicate_of = serializers.SerializerMethodField()
    test = serializers.BooleanField(source="is_test", help_text="Posted with a sandbox key.")

    def get_duplicate_of(self, lead) -> str | None:
        return _duplicate_of(lead, self.context.get("partner"))


class LeadSerializer(LeadResultSerializer):
    campaign = serializers.CharField(source="campaign.slug")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    action = serializers.CharField()
    email = serializers.CharField()
    phone = serializers.CharField()
    first_name = serializers.CharField()
    last_name = serializers.CharField()
    country = serializers.CharField()
    company = serializers.CharField()
    click_id = serializers.CharField()
    sub_ids = serializers.DictField()
    answers = serializers.DictField()
    status_reason = serializers.CharField()
    sale_amount = serializers.DecimalField(max_digits=14, decimal_places=2, allow_null=True)
    sale_currency = serializers.CharField()


class PartnerLeadSerializer(LeadSerializer):
    """What a partner may see of a lead: no sale money, no staff notes, no other supplier's tracking."""

    OTHER_SUPPLIER_FIELDS = ("click_id", "sub_ids")

    class Meta:
        hidden = ("status_reason", "sale_amount", "sale_currency")

    def get_fields(self):
        fields = super().get_fields()
        for name in self.Meta.hidden:
            fields.pop(name)
        return fields

    def to_representation(self, lead):
        data = super().to_representation(lead)
        partner = self.context.get("partner")
        if partner is not None and lead.partner_id != partner.pk:
            for name in self.OTHER_SUPPLIER_FIELDS:
                data.pop(name, None)
        return data


class BatchInputSerializer(serializers.Serializer):
    leads = serializers.ListField(
        child=serializers.JSONField(),
        min_length=1,
        max_length=settings.API_BATCH_MAX_LEADS,
        help_text=f"Up to {settings.API_BATCH_MAX_LEADS} lead objects, each as for POST /leads/.",
    )


class BatchItemSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    outcome = serializers.ChoiceField(choices=["created", "duplicate", "rejected"])
    lead = LeadResultSerializer(required=False, allow_null=True)
    error = ErrorBodySerializer(required=False, allow_null=True)


class BatchResultSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    rejected = serializers.IntegerField()
    results = BatchItemSerializer(many=True)


class OutcomeInputSerializer(serializers.Serializer):
    outcome = serializers.ChoiceField(
        choices=[LeadOutcome.Kind.CONTACTED, LeadOutcome.Kind.CONVERTED, LeadOutcome.Kind.RETURNED]
    )
    external_reference = serializers.CharField(
        required=False, allow_blank=True, max_length=200, help_text="Your id for this report; repeats are ignored."
    )
    sale_amount = serializers.DecimalField(required=False, max_digits=14, decimal_places=2, min_value=Decimal("0.01"))
    currency = serializers.CharField(
        required=False, allow_blank=True, min_length=3, max_length=3, validators=[validate_currency]
    )
    reason = serializers.ChoiceField(choices=LeadOutcome.ReturnReason.choices, required=False)
    note = serializers.CharField(required=False, allow_blank=True, max_length=500)

    def validate(self, attrs):
        if attrs["outcome"] == LeadOutcome.Kind.CONVERTED and not attrs.get("sale_amount"):
            raise serializers.ValidationError({"sale_amount": ["Required for a converted lead."]})
        if attrs["outcome"] == LeadOutcome.Kind.RETURNED and not attrs.get("reason"):
            raise serializers.ValidationError({"reason": ["Required for a returned lead."]})
        return attrs


class OutcomeSerializer(serializers.Serializer):
    outcome = serializers.CharField(source="kind")
    external_reference = serializers.CharField()
    sale_amount = serializers.DecimalField(max_digits=14, decimal_places=2, allow_null=True)
    currency = serializers.CharField()
    reason = serializers.CharField(source="return_reason")
    created_at = serializers.DateTimeField()
    lead = LeadResultSerializer()


class CampaignSerializer(serializers.ModelSerializer):
    traffic_source_kind = serializers.CharField(source="traffic_source.kind")
    offer = serializers.CharField(source="offer.name")
    landing_url = serializers.SerializerMethodField()
    tracking_url = serializers.SerializerMethodField()

    class Meta:
        model = Campaign
        fields = ["slug", "name", "status", "traffic_source_kind", "offer", "landing_url", "tracking_url"]

    def get_landing_url(self, campaign) -> str:
        destination = campaign.landing_destination()
        return destination if destination.startswith("http") else f"{settings.SITE_URL}{destination}"

    def get_tracking_url(self, campaign) -> str:
        path = reverse("track-click", args=[campaign.slug])
        return f"{settings.SITE_URL}{path}?{campaign.traffic_source.click_id_param}={{click_id}}"


REPORT_GROUP_CHOICES = list(GROUPINGS)
# Partners see their own leads by what they know already: not who buys them (advertiser) nor which
# sources, placements and pages the company runs traffic through.
PARTNER_REPORT_GROUPS = ["campaign", "traffic_source_kind", "offer", "day", "week", "country", "device_type"]


class ReportQuerySerializer(serializers.Serializer):
    date_from = serializers.DateField()
    date_to = serializers.DateField()
    group_by = serializers.CharField(
        default="campaign", help_text=f"Comma-separated, outermost first: {', '.join(REPORT_GROUP_CHOICES)}."
    )

    def validate_group_by(self, value):
        groups = [name.strip() for name in value.split(",") if name.strip()]
        unknown = [name for name in groups if name not in REPORT_GROUP_CHOICES]
        if unknown or not groups:
            raise serializers.ValidationError(f"Use some of {', '.join(REPORT_GROUP_CHOICES)}.")
        if self.context.get("partner") is not None and set(groups) - set(PARTNER_REPORT_GROUPS):
            raise serializers.ValidationError(f"Partners may group by {', '.join(PARTNER_REPORT_GROUPS)}.")
        return list(dict.fromkeys(groups))

    def validate(self, attrs):
        for name in ("date_from", "date_to"):
            if not EARLIEST_DAY <= attrs[name] <= LATEST_DAY:
                raise serializers.ValidationError({name: [f"Must be between {EARLIEST_DAY} and {LATEST_DAY}."]})
        if attrs["date_to"] < attrs["date_from"]:
            raise serializers.ValidationError({"date_to": ["Must not be before date_from."]})
        if (attrs["date_to"] - attrs["date_from"]).days > 366:
            raise serializers.ValidationError({"date_to": ["At most 366 days per report."]})
        return attrs


def _decimal_field(places: int, help_text: str = "", **kwargs):
    # Money and ratios. No max_digits: a tiny spend can make ROAS as large as any revenue.
    return serializers.DecimalField(
        max_digits=None, decimal_places=places, allow_null=True, help_text=help_text, **kwargs
    )


def _sub_id_field():
    return serializers.CharField(required=False, allow_null=True, help_text="Sub id; null where none was passed.")


class ReportRowSerializer(serializers.Serializer):
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
    # The sub ids a source passes on its click URL (campaigns.services.clicks.SUB_ID_PARAMS).
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

    def to_representation(self, row):
        # Only the keys the report has: the groups asked for, and the money metrics only for staff.
        return {name: value for name, value in super().to_representation(row).items() if name in row}


class ReportSerializer(serializers.Serializer):
    date_from = serializers.DateField()
    date_to = serializers.DateField()
    group_by = serializers.ListField(child=serializers.CharField())
    rows = ReportRowSerializer(many=True)


class PostbackSerializer(serializers.Serializer):
    token = serializers.CharField(
        max_length=200, required=False, help_text="Or send it in the X-Postback-Token header (kept out of logs)."
    )
    click_id = serializers.CharField(required=False, max_length=128)
    lead_id = serializers.UUIDField(required=False)
    status = serializers.ChoiceField(choices=["lead", "sale", "return"])
    payout = serializers.DecimalField(required=False, max_digits=14, decimal_places=2, min_value=0)
    reference = serializers.CharField(required=False, allow_blank=True, max_length=200)

    def validate(self, attrs):
        if not attrs.get("click_id") and not attrs.get("lead_id"):
            raise serializers.ValidationError({"non_field_errors": ["Give click_id or lead_id."]})
        return attrs
