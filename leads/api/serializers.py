"""Request and response shapes of the partner API; no logic beyond shape checks."""

from decimal import Decimal
from typing import Any, cast

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from campaigns.links import absolute, tracking_url
from campaigns.models import Campaign, LeadType, validate_currency

from ..models import Lead, LeadOutcome, LeadStatus, Partner, Qualification, SupplierPing, Validity
from ..services.consent import consent_certificate_url
from ..services.inbound_ping import PING_FIELDS
from ..services.intake import CAMPAIGN_HELP
from ..services.submission import (
    AMOUNT_DIGITS,
    AMOUNT_PLACES,
    MAP_NAME_LENGTH,
    MAX_WHOLE_NUMBER,
    SUBMISSION_FIELDS,
    FieldKind,
    SubmissionField,
)


class ErrorBodySerializer(serializers.Serializer[Any]):
    code = serializers.CharField(help_text="Stable machine-readable code, e.g. invalid, not_found, throttled.")
    message = serializers.CharField()
    # DRF's metaclass takes declared fields off the class, so this never hides Serializer.fields.
    fields = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))  # type: ignore[assignment]


class ErrorSerializer(serializers.Serializer[Any]):
    error = ErrorBodySerializer()


def _map_schema(spec: SubmissionField) -> dict[str, Any]:
    text = {"type": "string", "maxLength": spec.max_length}
    value = {"oneOf": [text, {"type": "array", "items": text}]} if spec.lists else text
    return {"type": "object", "maxProperties": spec.max_entries, "additionalProperties": value}


def _described(spec: SubmissionField) -> serializers.Field[Any, Any, Any, Any]:
    """The schema's picture of one contract field (parse_submission checks it; this only shows it)."""
    common: dict[str, Any] = {"required": False, "help_text": spec.help_text or None}
    # DRF's stubs ask for an int max_length, though None (no limit) is its default.
    text: dict[str, Any] = {**common, "allow_blank": True, "max_length": spec.max_length}
    if spec.kind == FieldKind.TEXT:
        return serializers.CharField(**text)
    if spec.kind == FieldKind.IP_ADDRESS:
        return serializers.IPAddressField(**text)
    if spec.kind == FieldKind.WHOLE_NUMBER:
        return serializers.IntegerField(allow_null=True, min_value=0, max_value=MAX_WHOLE_NUMBER, **common)
    if spec.kind == FieldKind.AMOUNT:
        return serializers.DecimalField(
            allow_null=True,
            max_digits=AMOUNT_DIGITS + AMOUNT_PLACES,
            decimal_places=AMOUNT_PLACES,
            min_value=0,
            **common,
        )
    if spec.kind == FieldKind.YES_NO:
        return serializers.BooleanField(**common)
    names = f"At most {spec.max_entries} names of up to {MAP_NAME_LENGTH} characters."
    common["help_text"] = f"{spec.help_text} {names}".strip()
    # An annotation on this instance: the fields are made afresh for each serializer (get_fields).
    # extend_schema_field only sets an attribute, so it takes any object; its stub asks for a callable.
    return extend_schema_field(_map_schema(spec))(serializers.DictField(**common))  # type: ignore[type-var]


# For the schema only: built from SUBMISSION_FIELDS, which parse_submission checks a lead against
# (with the messages the API answers), so the description and the check cannot disagree.
class LeadInputSerializer(serializers.Serializer[Any]):
    """The lead contract: `campaign` and an email or a phone are required; unknown fields are refused."""

    campaign = serializers.SlugField(
        max_length=cast(int, Campaign._meta.get_field("slug").max_length), help_text=CAMPAIGN_HELP
    )

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        return {**super().get_fields(), **{spec.name: _described(spec) for spec in SUBMISSION_FIELDS}}


def _duplicate_of(lead: Lead, partner: Partner | None) -> str | None:
    """The original's id, shown to a partner only when the original is one of its own leads."""
    original = lead.duplicate_of
    if original is None or (partner is not None and original.partner_id != partner.pk):
        return None
    return str(original.public_id)


class LeadResultSerializer(serializers.Serializer[Lead]):
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

    def get_duplicate_of(self, lead: Lead) -> str | None:
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
    consent_certificate = serializers.UUIDField(
        source="consent_certificate_id",
        allow_null=True,
        help_text="Our consent certificate, written for landing-page and quiz leads; null for others.",
    )
    consent_certificate_url = serializers.SerializerMethodField()
    third_party_consent_id = serializers.CharField(help_text="The TrustedForm or Jornaya certificate sent with it.")

    @extend_schema_field(serializers.URLField(allow_null=True, help_text="Its public page, which verifies it."))
    def get_consent_certificate_url(self, lead: Lead) -> str | None:
        return consent_certificate_url(lead.consent_certificate_id) if lead.consent_certificate_id else None


class PartnerLeadSerializer(LeadSerializer):
    """What a partner may see of a lead: no sale money, no staff notes, no other supplier's tracking."""

    OTHER_SUPPLIER_FIELDS = ("click_id", "sub_ids")

    class Meta:
        hidden = ("status_reason", "sale_amount", "sale_currency")

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        fields = super().get_fields()
        for name in self.Meta.hidden:
            fields.pop(name)
        return fields

    def to_representation(self, lead: Lead) -> dict[str, Any]:
        data = super().to_representation(lead)
        partner = self.context.get("partner")
        if partner is not None and lead.partner_id != partner.pk:
            for name in self.OTHER_SUPPLIER_FIELDS:
                data.pop(name, None)
        return data


class BatchInputSerializer(serializers.Serializer[Any]):
    leads = serializers.ListField(
        child=serializers.JSONField(),
        min_length=1,
        max_length=settings.API_BATCH_MAX_LEADS,
        help_text=f"Up to {settings.API_BATCH_MAX_LEADS} lead objects, each as for POST /leads/.",
    )


class BatchItemSerializer(serializers.Serializer[Any]):
    index = serializers.IntegerField()
    outcome = serializers.ChoiceField(choices=["created", "duplicate", "rejected"])
    lead = LeadResultSerializer(required=False, allow_null=True)
    error = ErrorBodySerializer(required=False, allow_null=True)


class BatchResultSerializer(serializers.Serializer[Any]):
    created = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    rejected = serializers.IntegerField()
    results = BatchItemSerializer(many=True)


class OutcomeInputSerializer(serializers.Serializer[Any]):
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

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["outcome"] == LeadOutcome.Kind.CONVERTED and not attrs.get("sale_amount"):
            raise serializers.ValidationError({"sale_amount": ["Required for a converted lead."]})
        if attrs["outcome"] == LeadOutcome.Kind.RETURNED and not attrs.get("reason"):
            raise serializers.ValidationError({"reason": ["Required for a returned lead."]})
        return attrs


class OutcomeSerializer(serializers.Serializer[LeadOutcome]):
    outcome = serializers.CharField(source="kind")
    external_reference = serializers.CharField()
    sale_amount = serializers.DecimalField(max_digits=14, decimal_places=2, allow_null=True)
    currency = serializers.CharField()
    reason = serializers.CharField(source="return_reason")
    created_at = serializers.DateTimeField()
    lead = LeadResultSerializer()


class CampaignSerializer(serializers.ModelSerializer[Campaign]):
    traffic_source_kind = serializers.CharField(source="traffic_source.kind")
    offer = serializers.CharField(source="offer.name")
    landing_url = serializers.SerializerMethodField()
    tracking_url = serializers.SerializerMethodField()

    class Meta:
        model = Campaign
        fields = ["slug", "name", "status", "traffic_source_kind", "offer", "landing_url", "tracking_url"]

    def get_landing_url(self, campaign: Campaign) -> str:
        return absolute(campaign.landing_destination())

    def get_tracking_url(self, campaign: Campaign) -> str:
        return tracking_url(campaign)


class PostbackSerializer(serializers.Serializer[Any]):
    token = serializers.CharField(
        max_length=200, required=False, help_text="Or send it in the X-Postback-Token header (kept out of logs)."
    )
    click_id = serializers.CharField(required=False, max_length=128)
    lead_id = serializers.UUIDField(required=False)
    status = serializers.ChoiceField(choices=["lead", "sale", "return"])
    payout = serializers.DecimalField(required=False, max_digits=14, decimal_places=2, min_value=0)
    reference = serializers.CharField(required=False, allow_blank=True, max_length=200)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs.get("click_id") and not attrs.get("lead_id"):
            raise serializers.ValidationError({"non_field_errors": ["Give click_id or lead_id."]})
        return attrs


class StatementQuerySerializer(serializers.Serializer[Any]):
    currency = serializers.CharField(max_length=3, default="USD", validators=[validate_currency])
    date_from = serializers.DateField(help_text="First day (in the platform's time zone) of entries booked.")
    date_to = serializers.DateField(help_text="Last day; at most 366 days after date_from.")
    side = serializers.ChoiceField(
        choices=["buyer", "supplier"],
        required=False,
        help_text="For a partner that both buys and supplies: which account. Otherwise its role decides.",
    )

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        data = data.copy()
        if isinstance(data.get("currency"), str):
            data["currency"] = data["currency"].upper()
        values: dict[str, Any] = super().to_internal_value(data)
        return values

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["date_to"] < attrs["date_from"]:
            raise serializers.ValidationError({"date_to": ["Must not be before date_from."]})
        if (attrs["date_to"] - attrs["date_from"]).days > 366:
            raise serializers.ValidationError({"date_to": ["At most 366 days per statement."]})
        return attrs


class StatementLineSerializer(serializers.Serializer[Any]):
    booked_at = serializers.DateTimeField(source="entry.created_at")
    day = serializers.DateField(source="entry.day", help_text="The day the amount counts for (the lead's day).")
    kind = serializers.CharField(source="entry.kind")
    lead = serializers.UUIDField(source="entry.lead.public_id", allow_null=True, default=None)
    reference = serializers.CharField(source="entry.note")
    amount = serializers.DecimalField(
        source="change", max_digits=None, decimal_places=2, help_text="What it did to your balance."
    )
    balance = serializers.DecimalField(max_digits=None, decimal_places=2)


class StatementSerializer(serializers.Serializer[Any]):
    side = serializers.CharField()
    currency = serializers.CharField()
    date_from = serializers.DateField()
    date_to = serializers.DateField()
    opening = serializers.DecimalField(max_digits=None, decimal_places=2)
    lines = StatementLineSerializer(many=True)
    closing = serializers.DecimalField(
        max_digits=None,
        decimal_places=2,
        help_text="A buyer's: paid in less charged (below zero: owed to us). A supplier's: what we owe it.",
    )
    payable = serializers.DecimalField(
        max_digits=None,
        decimal_places=2,
        allow_null=True,
        help_text="Suppliers: payouts past their offer's return window, less reversals and payments.",
    )


# --- Inbound ping (suppliers) ------------------------------------------------------------------


class PingInputSerializer(serializers.Serializer[Any]):
    """A ping: `campaign` and the lead's non-identifying fields only. A contact, name, address, IP or
    any other field of the lead is refused (400): those go with the lead itself."""

    campaign = serializers.SlugField(
        max_length=cast(int, Campaign._meta.get_field("slug").max_length), help_text=CAMPAIGN_HELP
    )

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        return {**super().get_fields(), **{spec.name: _described(spec) for spec in PING_FIELDS}}


class PingResultSerializer(serializers.Serializer[SupplierPing]):
    ping_id = serializers.SerializerMethodField(
        help_text="Send it as `ping_id` with the lead (POST /api/v1/leads/) before `expires_at`. Empty when refused."
    )
    accepted = serializers.SerializerMethodField(help_text="Whether we quote a price.")
    price = serializers.DecimalField(
        max_digits=12, decimal_places=2, allow_null=True, help_text="What we pay you for this lead."
    )
    currency = serializers.CharField(allow_blank=True)
    earned_by = serializers.CharField(
        source="basis", allow_blank=True, help_text="Which leads earn the price: valid, qualified or sold."
    )
    expires_at = serializers.SerializerMethodField()
    refusal = serializers.CharField(
        allow_blank=True,
        help_text="Why no price, as a code: campaign_not_running, no_payout, country_not_targeted, "
        "lead_type_not_accepted, offer_capped.",
    )
    reason = serializers.CharField(source="refusal_reason", allow_blank=True)

    @extend_schema_field(serializers.UUIDField(allow_null=True))
    def get_ping_id(self, ping: SupplierPing) -> str | None:
        return str(ping.public_id) if ping.price is not None else None

    def get_accepted(self, ping: SupplierPing) -> bool:
        return ping.price is not None

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_expires_at(self, ping: SupplierPing) -> str | None:
        return ping.expires_at.isoformat() if ping.price is not None else None


# --- Buyers' suppression lists -----------------------------------------------------------------

_HASH_LIST_HELP = (
    f"Lowercase hex SHA-256 of the normalised {{}} (as our hashed audience exports: {{}}); "
    f"at most {settings.BUYER_SUPPRESSION_MAX_HASHES} hashes per call in all."
)


class SuppressionHashesSerializer(serializers.Serializer[Any]):
    email_hashes = serializers.ListField(
        child=serializers.CharField(max_length=64),
        required=False,
        max_length=settings.BUYER_SUPPRESSION_MAX_HASHES,
        help_text=_HASH_LIST_HELP.format("email", "trimmed and lowercased"),
    )
    phone_hashes = serializers.ListField(
        child=serializers.CharField(max_length=64),
        required=False,
        max_length=settings.BUYER_SUPPRESSION_MAX_HASHES,
        help_text=_HASH_LIST_HELP.format("phone", 'E.164 with its "+", e.g. +16505551212'),
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        total = len(attrs.get("email_hashes", [])) + len(attrs.get("phone_hashes", []))
        if not total:
            raise serializers.ValidationError({"non_field_errors": ["Send email_hashes, phone_hashes or both."]})
        if total > settings.BUYER_SUPPRESSION_MAX_HASHES:
            raise serializers.ValidationError(
                {"non_field_errors": [f"At most {settings.BUYER_SUPPRESSION_MAX_HASHES} hashes per call; split it."]}
            )
        return attrs


class SuppressionAddedSerializer(serializers.Serializer[Any]):
    added = serializers.IntegerField(help_text="Hashes that were not on the list before.")


class SuppressionRemovedSerializer(serializers.Serializer[Any]):
    removed = serializers.IntegerField(help_text="Hashes that were on the list and are gone.")


class SuppressionCountSerializer(serializers.Serializer[Any]):
    emails = serializers.IntegerField()
    phones = serializers.IntegerField()
