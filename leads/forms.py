"""Landing page and quiz forms: what the visitor can fix is an error on the page, not a stored lead."""

from collections.abc import Iterator
from decimal import Decimal
from functools import lru_cache

import pycountry
from django import forms
from django.core import signing
from django.core.cache import cache
from django.utils.choices import BaseChoiceIterator

from campaigns.models import LandingPage, LeadField, QuizQuestion

from .services.normalisation import normalise_email, normalise_phone
from .services.submission import TEXT_FIELDS
from .services.validation import email_error

HONEYPOT_FIELD = "website"  # bots fill every field; people never see this one
STATE_SALT = "leads.landing.state"
STATE_MAX_AGE = 24 * 3600


@lru_cache(maxsize=1)
def country_choices() -> list[tuple[str, str]]:
    countries = sorted(((country.alpha_2, country.name) for country in pycountry.countries), key=lambda item: item[1])
    return [("", "Choose your country"), *countries]


class _CountryChoices(BaseChoiceIterator):
    """country_choices() as a form field takes them as they are: a plain list of 250 countries would be
    normalised, item by item, every time a page builds its form (most of the cost of building it)."""

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(country_choices())


@lru_cache(maxsize=1)
def _country_codes() -> frozenset[str]:
    return frozenset(code for code, _ in country_choices())


class CountryField(forms.ChoiceField):
    """A choice of country_choices(), checked by a set lookup: ChoiceField compares a posted value with
    each of the 250 choices in turn."""

    def __init__(self, **kwargs) -> None:
        super().__init__(choices=_CountryChoices(), **kwargs)

    def valid_value(self, value) -> bool:
        return str(value) in _country_codes()


def dump_state(state: dict) -> str:
    return signing.dumps(state, salt=STATE_SALT, compress=True)


def state_used(state: dict) -> bool:
    """Whether a lead was sent with this form state before. A state holds when the form was shown, so
    a script that reused one (waited out the least time once, then posted many) would pass the
    too-fast check with every lead. A state from before states had a nonce counts as unused."""
    nonce = state.get("nonce")
    return bool(nonce) and cache.get(f"landing-state:{nonce}") is not None


def state_mark_used(state: dict) -> None:
    """Remembered in the cache for as long as a state is valid (per process without a shared cache)."""
    nonce = state.get("nonce")
    if nonce:
        cache.set(f"landing-state:{nonce}", True, timeout=STATE_MAX_AGE)


def load_state(token: str) -> dict | None:
    """The signed funnel state (start time, click id, quiz answers), or None if missing or forged."""
    try:
        state = signing.loads(token or "", salt=STATE_SALT, max_age=STATE_MAX_AGE)
    except signing.BadSignature:
        return None
    return state if isinstance(state, dict) else None


def _field_for(name: str, required: bool) -> forms.Field:
    label = LeadField(name).label
    limit = TEXT_FIELDS.get(name, 1000)
    if name == LeadField.EMAIL:
        return forms.CharField(label=label, required=required, max_length=limit, widget=forms.EmailInput)
    if name == LeadField.PHONE:
        return forms.CharField(
            label=label, required=required, max_length=limit, widget=forms.TextInput(attrs={"type": "tel"})
        )
    if name == LeadField.COMPANY_SIZE:
        return forms.IntegerField(
            label="Company size (employees)", required=required, min_value=0, max_value=10_000_000
        )
    if name == LeadField.BUDGET:
        return forms.DecimalField(label=label, required=required, min_value=0, max_digits=12, decimal_places=2)
    if name == LeadField.COUNTRY:
        return CountryField(label=label, required=required)
    if name == LeadField.MESSAGE:
        return forms.CharField(
            label=label, required=required, max_length=limit, widget=forms.Textarea(attrs={"rows": 4})
        )
    return forms.CharField(label=label, required=required, max_length=limit)


class LeadForm(forms.Form):
    """The contact step of a landing page: its fields, consent and the hidden honeypot."""

    state = forms.CharField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args, page: LandingPage, default_country: str = "", visitor_country: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.page = page
        required = {*page.required_fields, *page.campaign.offer.required_fields}
        for name in page.fields:
            self.fields[name] = _field_for(name, name in required)
        if LeadField.COUNTRY in self.fields and default_country:
            self.fields[LeadField.COUNTRY].initial = default_country
        if page.consent_text:
            self.fields["consent"] = forms.BooleanField(label=page.consent_text, required=page.consent_required)
        # A plain Field: no length or character checks, so a bot filling it is stored and flagged, never told.
        self.fields[HONEYPOT_FIELD] = forms.Field(required=False, label="Leave this empty")
        self.default_country = default_country
        self.visitor_country = visitor_country
        self.phone_country = ""  # where clean() read the phone: the pipeline reads it there too

    @property
    def visible_fields_without_honeypot(self):
        return [field for field in self.visible_fields() if field.name != HONEYPOT_FIELD]

    def clean_email(self) -> str:
        email = self.cleaned_data.get("email", "")
        # Judged as the pipeline stores and judges it (trimmed, lower case), so it checks it once.
        if email and email_error(normalise_email(email)):
            raise forms.ValidationError("Enter a valid email address, like name@example.com.")
        return email

    def clean(self):
        super().clean()
        cleaned = self.cleaned_data
        asks_both = "email" in self.fields and "phone" in self.fields
        if asks_both and not (
            cleaned.get("email") or cleaned.get("phone") or "email" in self.errors or "phone" in self.errors
        ):
            raise forms.ValidationError("Give an email address or a phone number so we can reach you.")
        phone = cleaned.get("phone")
        if phone:
            # The one chosen, else the visitor's, else the page's default; the pipeline reads the number in
            # the same country (CaptureContext.phone_country), so a number the form takes is the lead's.
            country = cleaned.get("country") or self.visitor_country or self.default_country
            self.phone_country = country
            _, ok = normalise_phone(phone, country)
            if not ok:
                where = f" for {country}" if country else " (start with + and the country code)"
                self.add_error("phone", f"Enter a valid phone number{where}.")
        return cleaned


class QuizAnswerForm(forms.Form):
    """One quiz question, one step."""

    state = forms.CharField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args, question: QuizQuestion, **kwargs):
        super().__init__(*args, **kwargs)
        self.question = question
        choices = [(option, option) for option in question.options]
        kind = question.kind
        field: forms.Field
        if kind == QuizQuestion.Kind.SINGLE:
            field = forms.ChoiceField(choices=choices, widget=forms.RadioSelect)
        elif kind == QuizQuestion.Kind.MULTIPLE:
            field = forms.MultipleChoiceField(choices=choices, widget=forms.CheckboxSelectMultiple)
        elif kind == QuizQuestion.Kind.NUMBER:
            field = forms.DecimalField(max_digits=14, decimal_places=2)
        else:
            field = forms.CharField(max_length=1000)
        field.label = question.text
        field.required = question.is_required
        self.fields["answer"] = field

    def answer(self):
        value = self.cleaned_data.get("answer")
        if value is None:
            return ""
        if isinstance(value, Decimal):
            return format(value, "f")  # "1e3" is stored as "1000", not "1E+3"
        return value if isinstance(value, list) else str(value)
