import string
import uuid
from decimal import Decimal
from typing import TypedDict
from urllib.parse import quote

import pycountry
from django.core.exceptions import ValidationError
from django.core.validators import BaseValidator, MaxValueValidator, MinValueValidator, RegexValidator, URLValidator
from django.db import models
from django.db.models import Q
from django.template.defaultfilters import pluralize
from django.utils import timezone

from leadcrm.fields import StringListField

from .visitor import ConnectionType, DeviceType, OperatingSystem, validate_country_codes


class DecimalOptions(TypedDict, total=False):
    """Keyword arguments shared by DecimalFields, typed so that `**MONEY` type-checks."""

    max_digits: int
    decimal_places: int
    validators: list[BaseValidator]


MONEY: DecimalOptions = {"max_digits": 14, "decimal_places": 2, "validators": [MinValueValidator(Decimal("0"))]}
# Bids and spend can carry fractions of a cent (CPC 0.0035, CPM-derived spend).
FINE_MONEY: DecimalOptions = {"max_digits": 16, "decimal_places": 4, "validators": [MinValueValidator(Decimal("0"))]}
# Percentages as marketers type them: 60 means 60%, 2.5 means 2.5%.
PERCENT: DecimalOptions = {
    "max_digits": 5,
    "decimal_places": 2,
    "validators": [MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("100"))],
}

POSTBACK_MACROS = (
    "click_id",
    "lead_id",
    "payout",
    "currency",
    "status",
    "event",
    "campaign",
    "offer",
    "sub1",
    "sub2",
    "sub3",
    "sub4",
    "sub5",
)

url_parameter_name = RegexValidator(r"^[A-Za-z0-9_.\-]{1,64}$", "Use letters, digits, '_', '.' or '-' (at most 64).")


class TimestampedModel(models.Model):
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class LeadType(models.TextChoices):
    """Soft: newsletter, survey, quiz, webinar. Hard: quote, demo, pricing, call booking, trial."""

    SOFT = "soft", "Soft"
    HARD = "hard", "Hard"


def validate_postback_url_template(template: str) -> None:
    """A postback template must be an http(s) URL whose {macros} we know how to fill."""
    if not template:
        return
    try:
        parts = [(name, spec, conversion) for _, name, spec, conversion in string.Formatter().parse(template)]
    except ValueError as error:
        raise ValidationError(f"Broken macro braces: {error}.", code="invalid_template") from error
    # A macro is filled with URL-quoted text: a format ({payout:.2f}) or a conversion ({click_id!r})
    # has nothing to work on, and would fail when the postback is sent.
    shaped = sorted({f"{{{name}}}" for name, spec, conversion in parts if name is not None and (spec or conversion)})
    if shaped:
        raise ValidationError(
            "Write macros plain, without a format or conversion: %(shaped)s.",
            params={"shaped": ", ".join(shaped)},
            code="macro_format",
        )
    fields = [name for name, _, _ in parts if name is not None]
    unknown = sorted({name for name in fields if name not in POSTBACK_MACROS})
    if unknown:
        raise ValidationError(
            "Unknown macros: %(unknown)s. Known macros: %(known)s.",
            params={
                "unknown": ", ".join(f"{{{name}}}" for name in unknown),
                "known": ", ".join(f"{{{name}}}" for name in POSTBACK_MACROS),
            },
            code="unknown_macro",
        )
    example = template.format(**{name: "1" for name in POSTBACK_MACROS})
    URLValidator(schemes=["http", "https"])(example)


def validate_currency(code: str) -> None:
    if not pycountry.currencies.get(alpha_3=code or ""):
        raise ValidationError(f"{code!r} is not an ISO 4217 currency code.", code="invalid_currency")


class LeadField(models.TextChoices):
    """Contact and company fields a landing page can ask and an offer can require."""

    EMAIL = "email", "Email"
    PHONE = "phone", "Phone"
    FIRST_NAME = "first_name", "First name"
    LAST_NAME = "last_name", "Last name"
    COMPANY = "company", "Company"
    COMPANY_SIZE = "company_size", "Company size"
    BUDGET = "budget", "Budget"
    COUNTRY = "country", "Country"
    ZIP_CODE = "zip_code", "ZIP / postal code"
    MESSAGE = "message", "Message"


class PostbackEvent(models.TextChoices):
    """What a lead became, told to the traffic source that sent its click (the {status} macro)."""

    VALID = "valid", "Valid lead"
    QUALIFIED = "qualified", "Qualified"
    CONVERTED = "converted", "Converted (sale)"
    RETURNED = "returned", "Returned (reversal)"


# The macros each kind of source usually offers, for the tracking URL a media buyer pastes into it:
# our parameter ("click_id" is the source's click id parameter; the rest are sub ids) -> its macro.
DEFAULT_URL_MACROS = {
    "push": {"click_id": "{clickid}", "zone": "{zoneid}", "sub1": "{campaignid}", "creative": "{creativeid}"},
    "pop": {"click_id": "{clickid}", "zone": "{zoneid}", "sub1": "{campaignid}"},
    "native": {"click_id": "{click_id}", "site": "{site_id}", "sub1": "{campaign_id}", "creative": "{teaser_id}"},
    "search": {"click_id": "{clickid}", "keyword": "{keyword}", "sub1": "{campaignid}"},
    "programmatic": {"click_id": "{auction_id}", "site": "{domain}", "creative": "{creative_id}"},
    "social": {"click_id": "{{ad.id}}", "sub1": "{{campaign.id}}", "placement": "{{placement}}"},
    "display": {"click_id": "{clickid}", "placement": "{placement}", "creative": "{creative}"},
}
# The sub ids a click may carry (placements are judged by zone, site, placement and creative).
SUB_ID_PARAMS = ("sub1", "sub2", "sub3", "sub4", "sub5", "zone", "placement", "creative", "site", "keyword")
URL_MACRO_PARAMS = ("click_id", *SUB_ID_PARAMS)


def validate_url_macros(value) -> None:
    if not isinstance(value, dict):
        raise ValidationError("A mapping of our parameter to the source's macro.", code="invalid_macros")
    unknown = sorted(set(value) - set(URL_MACRO_PARAMS))
    if unknown:
        raise ValidationError(
            "Unknown parameters: %(unknown)s. Known: %(known)s.",
            params={"unknown": ", ".join(unknown), "known": ", ".join(URL_MACRO_PARAMS)},
            code="unknown_parameter",
        )
    if any(not isinstance(macro, str) or not macro.strip() for macro in value.values()):
        raise ValidationError("Every macro is a non-empty text, e.g. {zoneid}.", code="empty_macro")


def validate_page_address(value: str) -> None:
    """A path on this site (/l/page/) or an absolute http(s) URL: stored relative, the site's address
    can change (SITE_URL) without rewriting pages."""
    if value.startswith("/") and not value.startswith("//"):
        return
    URLValidator(schemes=["http", "https"])(value)


class TrafficSource(TimestampedModel):
    class Kind(models.TextChoices):
        PUSH = "push", "Push"
        POP = "pop", "Pop"
        NATIVE = "native", "Native"
        SEARCH = "search", "Search arbitrage"
        PROGRAMMATIC = "programmatic", "Programmatic"
        SOCIAL = "social", "Social"
        DISPLAY = "display", "Display"

    name = models.CharField(max_length=120, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices, db_index=True)
    click_id_param = models.CharField(
        "click id parameter",
        max_length=64,
        default="click_id",
        validators=[url_parameter_name],
        help_text="URL parameter in which this source sends its click id, e.g. clickid or cid.",
    )
    url_macros = models.JSONField(
        "tracking URL macros",
        default=dict,
        blank=True,
        validators=[validate_url_macros],
        help_text="How this source fills our tracking URL: our parameter -> its macro, e.g. "
        '{"click_id": "{clickid}", "zone": "{zoneid}", "sub1": "{campaignid}"}. '
        "Empty: the usual macros of its kind.",
    )
    postback_url_template = models.CharField(
        max_length=2000,
        blank=True,
        validators=[validate_postback_url_template],
        help_text="Server-to-server conversion URL, e.g. "
        "https://tracker.example/postback?cid={click_id}&payout={payout}&status={status}. "
        "Macros: " + ", ".join(f"{{{name}}}" for name in POSTBACK_MACROS) + ".",
    )
    is_active = models.BooleanField(default=True)
    notes = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    def tracking_macros(self) -> dict[str, str]:
        """Our URL parameter -> the macro the source fills, its own or its kind's usual ones."""
        return dict(self.url_macros or DEFAULT_URL_MACROS.get(self.kind, {"click_id": "{clickid}"}))

    def render_postback_url(self, **values) -> str:
        """Fill the template's macros, URL-encoded; macros without a value become empty."""
        filled = {name: quote(str(values.get(name, "") or ""), safe="") for name in POSTBACK_MACROS}
        return self.postback_url_template.format(**filled)


class Advertiser(TimestampedModel):
    name = models.CharField(max_length=120, unique=True)
    postback_token_hash = models.CharField(
        max_length=64, blank=True, editable=False, help_text="SHA-256 of the secret token of its conversion postbacks."
    )
    contact_name = models.CharField(max_length=120, blank=True)
    contact_email = models.EmailField(blank=True)
    website = models.URLField(blank=True)
    is_active = models.BooleanField(default=True)
    notes = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Offer(TimestampedModel):
    advertiser = models.ForeignKey(Advertiser, on_delete=models.PROTECT, related_name="offers")
    name = models.CharField(max_length=160)
    payout_per_lead = models.DecimalField(default=Decimal("0"), **MONEY)
    payout_per_sale = models.DecimalField(default=Decimal("0"), **MONEY)
    currency = models.CharField(max_length=3, default="USD", validators=[validate_currency])
    accepted_lead_types = StringListField(
        item_choices=LeadType.choices,
        help_text="Lead types the advertiser buys. None ticked: all types.",
    )
    accepted_countries = StringListField(
        item_case="upper",
        validators=[validate_country_codes],
        help_text="ISO country codes, e.g. US, CA. Empty: all countries.",
    )
    daily_lead_cap = models.PositiveIntegerField(
        null=True, blank=True, help_text="Most leads the advertiser takes per day. Empty: no cap."
    )
    return_window_days = models.PositiveSmallIntegerField(
        default=7, help_text="Days after capture in which the buyer may return a lead (refunded)."
    )
    required_fields = StringListField(
        item_choices=LeadField.choices,
        help_text="Fields every lead for this offer must have, whatever door it comes through.",
    )
    lead_type_overrides = models.JSONField(
        "lead type by action",
        default=dict,
        blank=True,
        help_text='Overrides of the standard action -> lead type mapping, e.g. {"webinar": "hard"}.',
    )
    lead_retention_days = models.PositiveIntegerField(
        "keep lead data for (days)",
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Days after capture before a lead's personal data is erased (the lead stays counted). "
        "Empty: the site's default (LEAD_RETENTION_DAYS).",
    )
    is_active = models.BooleanField(default=True)
    # Ping/post: the offer's leads are auctioned to its buyers instead of routed by priority.
    sells_by_auction = models.BooleanField(
        "sell by auction",
        default=False,
        help_text="On: every sellable lead is auctioned: ping/post buyers bid, buyers on fixed routes take part "
        "with their price, the highest bid at or above the floor wins. Off: routes by priority and weight.",
    )
    auction_floor_price = models.DecimalField(
        "floor price",
        default=Decimal("0"),
        help_text="The lowest bid that may win, in the offer's currency.",
        **MONEY,
    )
    auction_max_lead_age_seconds = models.PositiveIntegerField(
        "maximum lead age (seconds)",
        default=300,
        help_text="The waterfall offers a rejected lead to the next bid only while the lead is younger than this.",
    )
    auction_buyers_per_lead = models.PositiveSmallIntegerField(
        "buyers per lead",
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(10)],
        help_text="1: sold exclusively. More: shared with up to this many different buyers.",
    )

    class Meta:
        ordering = ["advertiser__name", "name"]
        constraints = [models.UniqueConstraint(fields=["advertiser", "name"], name="offer_unique_name_per_advertiser")]

    def __str__(self) -> str:
        return f"{self.name} — {self.advertiser}"

    def clean(self) -> None:
        if self.currency:
            self.currency = self.currency.upper()
        self._refuse_relabelling_booked_spend()
        overrides = self.lead_type_overrides
        if not isinstance(overrides, dict) or any(
            not isinstance(action, str) or value not in LeadType.values for action, value in overrides.items()
        ):
            raise ValidationError(
                {"lead_type_overrides": 'Use {"action": "soft" or "hard", ...}, e.g. {"webinar": "hard"}.'}
            )
        self.lead_type_overrides = {action.strip().lower(): value for action, value in overrides.items()}

    def _refuse_relabelling_booked_spend(self) -> None:
        """Spend is booked in the offer's currency, and each correction of a day in the currency it
        has then: a changed currency would turn the days already booked into the new one, unconverted."""
        booked = Offer.objects.filter(pk=self.pk).values_list("currency", flat=True).first() if self.pk else None
        if not booked or booked == self.currency:
            return
        days = self.daily_stats.exclude(spend=0).count()
        if days:
            raise ValidationError(
                {
                    "currency": f"This offer's spend is booked in {booked} on {days} day{pluralize(days)}. "
                    f"Create a new offer in {self.currency}, or delete those days' stats (their spend is "
                    f"reversed in {booked}), change the currency and import them again."
                }
            )


class Campaign(TimestampedModel):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"
        ENDED = "ended", "Ended"

    class BidModel(models.TextChoices):
        CPC = "cpc", "CPC (per click)"
        CPM = "cpm", "CPM (per thousand impressions)"
        CPA = "cpa", "CPA (per action)"
        CPL = "cpl", "CPL (per lead)"

    name = models.CharField(max_length=160)
    slug = models.SlugField(max_length=80, unique=True, help_text="Used in its tracking URL: /c/this-slug/.")
    traffic_source = models.ForeignKey(TrafficSource, on_delete=models.PROTECT, related_name="campaigns")
    offer = models.ForeignKey(Offer, on_delete=models.PROTECT, related_name="campaigns")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT, db_index=True)
    bid_model = models.CharField(max_length=3, choices=BidModel.choices, default=BidModel.CPC)
    bid = models.DecimalField(default=Decimal("0"), **FINE_MONEY)
    daily_budget = models.DecimalField(null=True, blank=True, **MONEY)
    total_budget = models.DecimalField(null=True, blank=True, **MONEY)
    start_date = models.DateField(null=True, blank=True)
    end_date = models.DateField(null=True, blank=True)
    landing_url = models.URLField(
        max_length=2000,
        blank=True,
        help_text="External landing page. Empty: the campaign's first active landing page here.",
    )

    # Targeting is enforced: traffic from outside it is kept but marked off-target.
    target_countries = StringListField(
        "countries",
        item_case="upper",
        validators=[validate_country_codes],
        help_text="ISO 3166 alpha-2 codes, e.g. US, CA, GB. Empty: all countries.",
    )
    target_device_types = StringListField("device types", item_choices=DeviceType.choices)
    target_operating_systems = StringListField("operating systems", item_choices=OperatingSystem.choices)
    target_carriers = StringListField(
        "mobile carriers", help_text="Carrier names as the source sends them. Empty: all."
    )
    target_connection_types = StringListField("connection types", item_choices=ConnectionType.choices)
    target_segments = StringListField(
        "behavioural segments and keywords",
        help_text="Audience segments or keywords bought on the source (kept for reports).",
    )

    # Server-to-server postbacks to the traffic source (its postback URL template).
    postback_events = StringListField(
        item_choices=PostbackEvent.choices,
        help_text="What the traffic source is told about leads with its click id. None ticked: no postbacks.",
    )
    postback_valid_payout = models.DecimalField(
        null=True,
        blank=True,
        help_text="Payout reported for a valid lead. Empty: the offer's payout per lead.",
        **MONEY,
    )
    postback_qualified_payout = models.DecimalField(
        null=True, blank=True, help_text="Payout reported for a qualified lead. Empty: 0.", **MONEY
    )
    postback_converted_payout = models.DecimalField(
        null=True, blank=True, help_text="Payout reported for a sale. Empty: the offer's payout per sale.", **MONEY
    )
    postback_return_reversal = models.CharField(
        max_length=8,
        choices=[("negative", "Negative of the payout reported"), ("zero", "Zero payout")],
        default="negative",
        help_text="What a returned lead's postback reports, for sources that reverse conversions.",
    )

    # Placement quality: zones, sites and creatives of the source judged by their leads, and the
    # ones below these thresholds offered as the source's blacklist.
    placement_min_leads = models.PositiveIntegerField(
        "minimum leads per placement",
        default=20,
        validators=[MinValueValidator(1)],
        help_text="Leads a placement needs in the period before it is judged; fewer leads say too little.",
    )
    placement_min_validity_rate = models.DecimalField(
        "minimum validity rate (%)",
        null=True,
        blank=True,
        help_text="Placements whose share of valid leads is lower are flagged, e.g. 60 for 60%. "
        "Empty: not judged on validity.",
        **PERCENT,
    )
    placement_min_conversion_rate = models.DecimalField(
        "minimum conversion rate (%)",
        null=True,
        blank=True,
        help_text="Placements whose valid leads turn into sales less often are flagged, e.g. 2.5 for 2.5%. "
        "Empty: not judged on conversion.",
        **PERCENT,
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors = {}
        if self.start_date and self.end_date and self.end_date < self.start_date:
            errors["end_date"] = "The end date is before the start date."
        if self.daily_budget and self.total_budget and self.daily_budget > self.total_budget:
            errors["daily_budget"] = "The daily budget is larger than the total budget."
        if errors:
            raise ValidationError(errors)

    def landing_destination(self) -> str:
        """Where clicks go: the external landing URL, else the first active landing page here."""
        if self.landing_url:
            return self.landing_url
        if hasattr(self, "first_landing_slug"):  # annotated by selectors.campaign_for_tracking
            slug = self.first_landing_slug
        else:
            slug = (
                self.landing_pages.filter(is_active=True)
                .order_by("position", "id")
                .values_list("slug", flat=True)
                .first()
            )
        return LandingPage.url_for(slug) if slug else ""

    def is_serving(self, on_date=None) -> bool:
        """Whether the campaign takes traffic now: active and within its dates."""
        today = on_date or timezone.localdate()
        return (
            self.status == self.Status.ACTIVE
            and (self.start_date is None or self.start_date <= today)
            and (self.end_date is None or today <= self.end_date)
        )

    def targeting_mismatches(
        self, *, country: str = "", device_type: str = "", os: str = "", carrier: str = "", connection_type: str = ""
    ) -> list[str]:
        """Reasons the visitor is outside this campaign's targeting; unknown values are not judged."""
        reasons = []
        checks = (
            ("country", country, self.target_countries),
            ("device_type", device_type, self.target_device_types),
            ("os", os, self.target_operating_systems),
            ("connection_type", connection_type, self.target_connection_types),
        )
        for name, value, targeted in checks:
            if value and targeted and value not in targeted:
                reasons.append(f"off_target_{name}: {value} not in {', '.join(targeted)}")
        carriers = {name.casefold() for name in self.target_carriers}
        if carrier and carriers and carrier.casefold() not in carriers:
            reasons.append(f"off_target_carrier: {carrier} not in {', '.join(self.target_carriers)}")
        return reasons


class LandingPage(TimestampedModel):
    class Kind(models.TextChoices):
        FORM = "form", "Form"
        QUIZ = "quiz", "Quiz funnel"
        PRELANDER = "prelander", "Pre-lander"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="landing_pages")
    name = models.CharField(max_length=160)
    slug = models.SlugField(max_length=80, unique=True, help_text="Used in its URL: /l/this-slug/.")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.FORM)
    position = models.PositiveSmallIntegerField(default=0, help_text="The first active page gets the clicks.")
    is_active = models.BooleanField(default=True)
    action = models.CharField(
        max_length=40,
        default="contact",
        help_text="What the visitor does here (quote, demo, newsletter, quiz...); decides soft or hard.",
    )
    headline = models.CharField(max_length=200, blank=True)
    body = models.TextField(blank=True, help_text="Text shown above the form or quiz.")
    fields = StringListField("fields asked", item_choices=LeadField.choices)
    required_fields = StringListField(item_choices=LeadField.choices)
    consent_text = models.TextField(blank=True, help_text="Shown next to the consent checkbox, stored with each lead.")
    consent_version = models.CharField(max_length=40, blank=True)
    consent_required = models.BooleanField(default=False)
    cta_label = models.CharField("button label", max_length=60, default="Send")
    next_url = models.CharField(
        "next page URL",
        max_length=2000,
        blank=True,
        validators=[validate_page_address],
        help_text="Pre-landers: where the call to action leads (the click id is added): a page of this site "
        "such as /l/solar-form/, or a full https:// address.",
    )
    thank_you_url = models.URLField(
        "thank-you URL", max_length=2000, blank=True, help_text="Where visitors go after sending. Empty: our page."
    )
    privacy_url = models.CharField(
        "privacy policy URL",
        max_length=2000,
        blank=True,
        validators=[validate_page_address],
        help_text="Linked under the form. Empty: the site's policy (PRIVACY_POLICY_URL).",
    )

    class Meta:
        ordering = ["campaign", "position", "id"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return self.url_for(self.slug)

    @staticmethod
    def url_for(slug: str) -> str:
        return f"/l/{slug}/"

    def clean(self) -> None:
        errors = {}
        missing = [field for field in self.required_fields if field not in self.fields]
        if missing:
            errors["required_fields"] = f"Required but not asked: {', '.join(missing)}."
        offer_required = self.campaign.offer.required_fields if self.campaign_id else []
        not_asked = [field for field in offer_required if self.kind != self.Kind.PRELANDER and field not in self.fields]
        if not_asked:
            errors["fields"] = f"The offer requires {', '.join(not_asked)}; ask for it here too."
        if self.kind != self.Kind.PRELANDER and self.fields and not ({"email", "phone"} & set(self.fields)):
            errors["fields"] = "Ask for an email or a phone, or there is no way to reach the lead."
        if self.consent_required and not self.consent_text.strip():
            errors["consent_text"] = "Consent is required, so write the text the visitor agrees to."
        if self.kind == self.Kind.PRELANDER and not self.next_url:
            errors["next_url"] = "A pre-lander needs the URL its call to action leads to."
        if errors:
            raise ValidationError(errors)


# Questions a quiz may ask: its answers arrive as one map, which the pipeline reads up to this many.
QUIZ_MAX_QUESTIONS = 50


class QuizQuestion(models.Model):
    class Kind(models.TextChoices):
        SINGLE = "single", "One answer"
        MULTIPLE = "multiple", "Several answers"
        TEXT = "text", "Free text"
        NUMBER = "number", "Number"

    landing_page = models.ForeignKey(LandingPage, on_delete=models.CASCADE, related_name="questions")
    position = models.PositiveSmallIntegerField(default=0)
    key = models.SlugField(max_length=60, help_text="Name of the answer in the lead, e.g. timeline.")
    text = models.CharField(max_length=300)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.SINGLE)
    options = StringListField("answer options", separator="\n")
    is_required = models.BooleanField(default=True)

    class Meta:
        ordering = ["landing_page", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["landing_page", "key"], name="quiz_question_unique_key_per_page")
        ]

    def __str__(self) -> str:
        return self.text

    def clean(self) -> None:
        if self.kind in (self.Kind.SINGLE, self.Kind.MULTIPLE) and len(self.options) < 2:
            raise ValidationError({"options": "A choice question needs at least two answer options."})


class DailyStat(models.Model):
    """What the traffic source reports for one campaign and day: the cost side of every metric."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="daily_stats")
    # The campaign's offer and source on the day, as leads copy them at capture: a campaign moved to
    # another offer or source later keeps its past spend where its past leads are.
    offer = models.ForeignKey(Offer, on_delete=models.PROTECT, related_name="daily_stats", editable=False)
    traffic_source = models.ForeignKey(
        TrafficSource, on_delete=models.PROTECT, related_name="daily_stats", editable=False
    )
    date = models.DateField()
    impressions = models.PositiveBigIntegerField(default=0)
    clicks = models.PositiveBigIntegerField(default=0)
    spend = models.DecimalField(default=Decimal("0"), **FINE_MONEY)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-date", "campaign"]
        constraints = [models.UniqueConstraint(fields=["campaign", "date"], name="daily_stat_unique_campaign_date")]

    def __str__(self) -> str:
        return f"{self.campaign} {self.date}"

    def save(self, *args, **kwargs):
        if self.offer_id is None or self.traffic_source_id is None:
            self.offer_id = self.offer_id or self.campaign.offer_id
            self.traffic_source_id = self.traffic_source_id or self.campaign.traffic_source_id
        super().save(*args, **kwargs)


def new_click_id() -> str:
    return uuid.uuid4().hex


class Click(models.Model):
    """One ad click; kept even when off-target or from a bot, because that is what reports judge."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="clicks")
    traffic_source = models.ForeignKey(TrafficSource, on_delete=models.CASCADE, related_name="clicks")
    # The offer the campaign sold when the click came, as leads and daily stats keep theirs.
    offer = models.ForeignKey(Offer, on_delete=models.PROTECT, related_name="clicks")
    click_id = models.CharField(max_length=128, default=new_click_id)
    created_at = models.DateTimeField(default=timezone.now)
    sub_ids = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.TextField(blank=True)
    device_type = models.CharField(max_length=10, blank=True)
    os = models.CharField("OS", max_length=10, blank=True)
    browser = models.CharField(max_length=64, blank=True)
    is_bot = models.BooleanField(default=False)
    country = models.CharField(max_length=2, blank=True)
    carrier = models.CharField(max_length=64, blank=True)
    connection_type = models.CharField(max_length=10, blank=True)
    referrer = models.CharField(max_length=1000, blank=True)
    off_target_reasons = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["campaign", "created_at"], name="click_campaign_time"),
            models.Index(fields=["campaign", "click_id"], name="click_campaign_click_id"),
            models.Index(fields=["traffic_source", "created_at"], name="click_source_time"),
            # Retention walks the clicks that still hold a visitor's IP or user agent, oldest first;
            # the ones it blanked leave the index, so a daily run never reads them again.
            models.Index(
                fields=["created_at"],
                condition=Q(ip__isnull=False) | ~Q(user_agent="") | ~Q(referrer=""),
                name="click_visitor_kept",
            ),
        ]

    def __str__(self) -> str:
        return self.click_id

    @property
    def is_off_target(self) -> bool:
        return bool(self.off_target_reasons)
