"""Request and response shapes of the partner API; no logic beyond shape checks."""

import datetime
import functools
import re
import sys
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from django.conf import settings
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from campaigns.links import absolute, tracking_url
from campaigns.models import Campaign, LeadType, validate_currency
from leadcrm.api_errors import ErrorBodySerializer
from leadcrm.api_schema import currency_schema, days_schema, shown_as

from ..models import Lead, LeadOutcome, LeadStatus, Partner, Qualification, SupplierPing, Validity
from ..services.consent import consent_certificate_url
from ..services.contact_hashes import SHA256_HEX_LENGTH
from ..services.inbound_ping import PING_FIELDS
from ..services.intake import CAMPAIGN_HELP
from ..services.submission import (
    AMOUNT_DIGITS,
    AMOUNT_PLACES,
    FALSE_WORDS,
    MAP_NAME_LENGTH,
    MAX_WHOLE_NUMBER,
    NUMBER_AS_TEXT_DIGITS,
    SUBMISSION_FIELDS,
    TRUE_WORDS,
    FieldKind,
    SubmissionField,
)

if TYPE_CHECKING:  # drf_spectacular.openapi reads DRF's settings, which import the API's modules
    from drf_spectacular.openapi import AutoSchema

# What parse_submission takes of each kind of field, in JSON: the types and forms its readers accept
# (a form or a CSV file sends text, so numbers may come as text and text as numbers).
NO_NUL = "^[^\\x00]*$"  # no database stores NUL; any other character is kept or cleaned away
NOTHING = {"type": "string", "maxLength": 0}  # an empty text is an empty field


def _case_free(word: str) -> str:
    return "".join(f"[{letter.lower()}{letter.upper()}]" if letter.isalpha() else letter for letter in word)


def _text(spec: SubmissionField) -> dict[str, Any]:
    text: dict[str, Any] = {"type": "string", "pattern": NO_NUL}
    if spec.max_length is not None:
        text["maxLength"] = spec.max_length
    return text


def _whole_number_as_text(max_length: int | None) -> dict[str, Any]:
    """A JSON number the contract takes as text: whole, of as many digits as the text may hold (and
    no more than NUMBER_AS_TEXT_DIGITS), so its text always fits."""
    digits = min(max_length or NUMBER_AS_TEXT_DIGITS, NUMBER_AS_TEXT_DIGITS)
    return {"type": "integer", "minimum": -(10 ** (digits - 1) - 1), "maximum": 10**digits - 1}


def _contract_schema(spec: SubmissionField) -> dict[str, Any]:
    """The JSON Schema of one contract field, as its reader in parse_submission checks it."""
    if spec.kind == FieldKind.TEXT:
        kinds = [_text(spec), _whole_number_as_text(spec.max_length)]  # a zip code or a phone sent as a number
    elif spec.kind == FieldKind.IP_ADDRESS:
        kinds = [NOTHING, {"type": "string", "format": "ipv4"}, {"type": "string", "format": "ipv6"}]
    elif spec.kind == FieldKind.UUID:
        kinds = [NOTHING, {"type": "string", "format": "uuid"}]
    elif spec.kind == FieldKind.WHOLE_NUMBER:
        kinds = [
            {"type": "integer", "minimum": 0, "maximum": MAX_WHOLE_NUMBER},
            {"type": "string", "pattern": "^(\\s*\\d{1,9}\\s*)?$"},
        ]
    elif spec.kind == FieldKind.AMOUNT:
        kinds = [
            {"type": "number", "minimum": 0, "maximum": 10**AMOUNT_DIGITS - 1},
            {"type": "string", "pattern": f"^(\\s*\\d{{1,{AMOUNT_DIGITS}}}(\\.\\d{{1,{AMOUNT_PLACES}}})?\\s*)?$"},
        ]
    elif spec.kind == FieldKind.YES_NO:
        words = "|".join(_case_free(word) for word in sorted(TRUE_WORDS | FALSE_WORDS) if word)
        kinds = [
            {"type": "boolean"},
            {"type": "integer", "enum": [0, 1]},
            {"type": "string", "pattern": f"^\\s*({words})?\\s*$"},
        ]
    else:
        # Each value is read as a text field is (a number is its text, null is empty).
        text: dict[str, Any] = {"anyOf": [_text(spec), _whole_number_as_text(spec.max_length)], "nullable": True}
        value: dict[str, Any] = {"anyOf": [text, {"type": "array", "items": text}]} if spec.lists else text
        kinds = [NOTHING, {"type": "object", "maxProperties": spec.max_entries, "additionalProperties": value}]
    return {"anyOf": kinds, "nullable": True}


def _described(spec: SubmissionField) -> serializers.Field[Any, Any, Any, Any]:
    """The schema's picture of one contract field (parse_submission checks it; this only shows it)."""
    help_text = spec.help_text
    if spec.kind == FieldKind.MAP:
        help_text = (
            f"{help_text} At most {spec.max_entries} names of up to {MAP_NAME_LENGTH} characters, without NUL."
        ).strip()
    # extend_schema_field only sets an attribute, so it takes any object; its stub asks for a callable.
    # An annotation on this instance: the fields are made afresh for each serializer (get_fields).
    field = serializers.JSONField(required=False, help_text=help_text or None)
    return extend_schema_field(_contract_schema(spec))(field)  # type: ignore[type-var]


# For the schema only: built from SUBMISSION_FIELDS, which parse_submission checks a lead against
# (with the messages the API answers), so the description and the check cannot disagree.
class LeadInputSerializer(serializers.Serializer[Any]):
    """The lead contract: `campaign` and an email or a phone are required; unknown fields are refused."""

    campaign = serializers.SlugField(
        max_length=cast(int, Campaign._meta.get_field("slug").max_length), help_text=CAMPAIGN_HELP
    )

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        return {**super().get_fields(), **{spec.name: _described(spec) for spec in SUBMISSION_FIELDS}}


# A way to reach the person: parse_submission refuses a lead whose email and phone are both empty once
# cleaned (invisible characters and surrounding spaces taken off).
CONTACT_FIELDS = ("email", "phone")


@functools.cache
def _some_text() -> str:
    """A pattern matching text with a character parse_submission keeps and does not strip (printable and
    not a space), from the running Python's own Unicode tables, so it says exactly what the check does."""
    ranges: list[tuple[int, int]] = []
    for point in range(sys.maxunicode + 1):
        character = chr(point)
        if character.isprintable() and not character.isspace():
            if ranges and ranges[-1][1] == point - 1:
                ranges[-1] = (ranges[-1][0], point)
            else:
                ranges.append((point, point))
    spans = (re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges)
    return "[" + "".join(spans) + "]"


# drf-spectacular ships no types: subclassing its extension base runs its untyped __init_subclass__,
# and AutoSchema._map_serializer (the documented way for an extension to map a serializer) is untyped.
class LeadInputScheme(OpenApiSerializerExtension):  # type: ignore[no-untyped-call]
    """The contract as a whole: unknown fields are refused, and an email or a phone is required."""

    target_class = LeadInputSerializer

    def map_serializer(self, auto_schema: "AutoSchema", direction: Any) -> dict[str, Any]:
        schema: dict[str, Any] = auto_schema._map_serializer(  # type: ignore[no-untyped-call]
            self.target, direction, bypass_extensions=True
        )
        schema["additionalProperties"] = False
        schema["anyOf"] = [
            {
                "required": [name],
                "properties": {name: {"anyOf": [{"type": "string", "pattern": _some_text()}, {"type": "number"}]}},
            }
            for name in CONTACT_FIELDS
        ]
        return schema


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


def lead_result(lead: Lead, *, partner: Partner | None) -> dict[str, Any]:
    """What LeadResultSerializer answers for a lead, built directly: the serializer copies its
    fields for every instance, which cost a lead's post more than the answer is worth. The
    serializer still describes the answer (the schema); a test holds the two to the same output."""
    return {
        "id": str(lead.public_id),
        "status": lead.status,
        "lead_type": lead.lead_type,
        "validity": lead.validity,
        "validity_reasons": [str(reason) for reason in lead.validity_reasons],
        "qualification": lead.qualification,
        "qualification_reasons": [str(reason) for reason in lead.qualification_reasons],
        "score": int(lead.score),
        "duplicate": bool(lead.is_duplicate),
        "duplicate_of": _duplicate_of(lead, partner),
        "test": bool(lead.is_test),
    }


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
    click_id = serializers.CharField(
        required=False, help_text="Absent for a buyer when another supplier sent the lead."
    )
    sub_ids = serializers.DictField(required=False, help_text="Absent for a buyer when another supplier sent the lead.")
    answers = serializers.DictField()
    # Staff only: absent for partners.
    status_reason = serializers.CharField(required=False, help_text="Staff only.")
    sale_amount = serializers.DecimalField(
        max_digits=14, decimal_places=2, allow_null=True, required=False, help_text="Staff only."
    )
    sale_currency = serializers.CharField(required=False, help_text="Staff only.")
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
        # Any value: each item is checked as POST /leads/ checks a lead, and a bad one is a rejected result.
        child=serializers.JSONField(allow_null=True),
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
    currency = shown_as(serializers.CharField, currency_schema(blank=True))(
        required=False, allow_blank=True, validators=[validate_currency]
    )
    reason = serializers.ChoiceField(choices=LeadOutcome.ReturnReason.choices, required=False)
    note = serializers.CharField(required=False, allow_blank=True, max_length=500)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["outcome"] == LeadOutcome.Kind.CONVERTED and not attrs.get("sale_amount"):
            raise serializers.ValidationError({"sale_amount": ["Required for a converted lead."]})
        if attrs["outcome"] == LeadOutcome.Kind.RETURNED and not attrs.get("reason"):
            raise serializers.ValidationError({"reason": ["Required for a returned lead."]})
        return attrs


# Untyped drf-spectacular, as for LeadInputScheme above.
class OutcomeInputScheme(OpenApiSerializerExtension):  # type: ignore[no-untyped-call]
    """What OutcomeInputSerializer.validate asks beside the fields: a sale's amount, a return's reason."""

    target_class = OutcomeInputSerializer

    def map_serializer(self, auto_schema: "AutoSchema", direction: Any) -> dict[str, Any]:
        schema: dict[str, Any] = auto_schema._map_serializer(  # type: ignore[no-untyped-call]
            self.target, direction, bypass_extensions=True
        )
        needs = {LeadOutcome.Kind.CONVERTED: ["sale_amount"], LeadOutcome.Kind.RETURNED: ["reason"]}
        schema["anyOf"] = [
            # A pattern, not an enum: drf-spectacular would make a component of every enum.
            {
                "properties": {"outcome": {"type": "string", "pattern": f"^{kind}$"}},
                "required": ["outcome", *needs.get(kind, [])],
            }
            for kind in cast(serializers.ChoiceField, OutcomeInputSerializer().fields["outcome"]).choices
        ]
        return schema


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


# The ledger's days, as reports take them: a day outside has no entries, and the last day's end must fit a datetime.
STATEMENT_DAYS = (datetime.date(2000, 1, 1), datetime.date(2099, 12, 31))


class StatementQuerySerializer(serializers.Serializer[Any]):
    currency = shown_as(serializers.CharField, currency_schema())(
        max_length=3, default="USD", validators=[validate_currency]
    )
    date_from = shown_as(serializers.DateField, days_schema(*STATEMENT_DAYS))(
        help_text="First day (in the platform's time zone) of entries booked."
    )
    date_to = shown_as(serializers.DateField, days_schema(*STATEMENT_DAYS))(
        help_text="Last day: not before date_from, and at most 366 days after it."
    )
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
        first, last = STATEMENT_DAYS
        for name in ("date_from", "date_to"):
            if not first <= attrs[name] <= last:
                raise serializers.ValidationError({name: [f"Must be between {first} and {last}."]})
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


# Untyped drf-spectacular, as for LeadInputScheme above.
class PingInputScheme(OpenApiSerializerExtension):  # type: ignore[no-untyped-call]
    """A ping names its fields exactly: any other (a contact above all) is refused."""

    target_class = PingInputSerializer

    def map_serializer(self, auto_schema: "AutoSchema", direction: Any) -> dict[str, Any]:
        schema: dict[str, Any] = auto_schema._map_serializer(  # type: ignore[no-untyped-call]
            self.target, direction, bypass_extensions=True
        )
        schema["additionalProperties"] = False
        return schema


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
    f"at most {settings.BUYER_SUPPRESSION_MAX_HASHES} per call."
)
# What the list takes as a hash (leads.services.suppression, which trims and lowercases it); anything
# else refuses the whole call, naming each item.
_SHA256_HEX_SCHEMA = {"type": "string", "pattern": f"^\\s*[0-9a-fA-F]{{{SHA256_HEX_LENGTH}}}\\s*$"}


def _hash_list(kind: str, normalised: str) -> serializers.ListField:
    return serializers.ListField(
        child=shown_as(serializers.CharField, _SHA256_HEX_SCHEMA)(),
        required=False,
        max_length=settings.BUYER_SUPPRESSION_MAX_HASHES,
        help_text=_HASH_LIST_HELP.format(kind, normalised),
    )


class SuppressionHashesSerializer(serializers.Serializer[Any]):
    body_required = True  # one list or both (leadcrm.api_schema)
    email_hashes = _hash_list("email", "trimmed and lowercased")
    phone_hashes = _hash_list("phone", 'E.164 with its "+", e.g. +16505551212')

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs.get("email_hashes") and not attrs.get("phone_hashes"):
            raise serializers.ValidationError({"non_field_errors": ["Send email_hashes, phone_hashes or both."]})
        return attrs


# Untyped drf-spectacular, as for LeadInputScheme above.
class SuppressionHashesScheme(OpenApiSerializerExtension):  # type: ignore[no-untyped-call]
    """What SuppressionHashesSerializer.validate asks beside the fields: at least one hash."""

    target_class = SuppressionHashesSerializer

    def map_serializer(self, auto_schema: "AutoSchema", direction: Any) -> dict[str, Any]:
        schema: dict[str, Any] = auto_schema._map_serializer(  # type: ignore[no-untyped-call]
            self.target, direction, bypass_extensions=True
        )
        schema["anyOf"] = [
            {"required": [name], "properties": {name: {"type": "array", "minItems": 1}}}
            for name in ("email_hashes", "phone_hashes")
        ]
        return schema


class SuppressionAddedSerializer(serializers.Serializer[Any]):
    added = serializers.IntegerField(help_text="Hashes that were not on the list before.")


class SuppressionRemovedSerializer(serializers.Serializer[Any]):
    removed = serializers.IntegerField(help_text="Hashes that were on the list and are gone.")


class SuppressionCountSerializer(serializers.Serializer[Any]):
    emails = serializers.IntegerField()
    phones = serializers.IntegerField()
