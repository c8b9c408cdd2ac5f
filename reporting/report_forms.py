"""The report page's controls: period, grouping and filters, read from the query string."""

import datetime
import re

from django import forms
from django.utils import timezone

from campaigns.models import Advertiser, Campaign, Offer, TrafficSource
from campaigns.visitor import normalise_country

from .selectors import DIMENSIONS, GROUPINGS
from .selectors.reports import EARLIEST_DAY, LATEST_DAY

DEFAULT_DAYS = 30
MAX_DAYS = 366  # a leap year: a whole year compared with the one before is two reports
DEFAULT_GROUPING = "campaign"
# Filters that pick rows by id: the form field and the selector's filter share the dimension's name.
RELATED_FILTERS = ("traffic_source", "campaign", "offer", "advertiser")
PERIOD_AND_GROUPING = ("date_from", "date_to", "group_by", "then_by", "columns")


def default_period(today: datetime.date | None = None) -> tuple[datetime.date, datetime.date]:
    """The last 30 days, today included."""
    today = today or timezone.localdate()
    return today - datetime.timedelta(days=DEFAULT_DAYS - 1), today


def _grouping_choices() -> list[tuple[str, str]]:
    return [(name, DIMENSIONS[name].label) for name in GROUPINGS]


def _date_input() -> forms.DateInput:
    return forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")


class ReportForm(forms.Form):
    date_from = forms.DateField(label="From", widget=_date_input())
    date_to = forms.DateField(label="To", widget=_date_input(), help_text="Both days included; at most 366 days.")
    group_by = forms.ChoiceField(label="Group by", choices=_grouping_choices)
    then_by = forms.ChoiceField(label="Then by", required=False, choices=lambda: [("", "—"), *_grouping_choices()])
    columns = forms.ChoiceField(
        label="Columns",
        required=False,
        choices=[
            ("money", "Money: cost, revenue, margin, ROI, CPL"),
            ("sales", "Lead sales and costs"),
            ("quality", "Lead quality"),
            ("traffic", "Traffic"),
            ("all", "Every figure"),
        ],
        help_text="The CSV always has every figure.",
    )
    traffic_source_kind = forms.MultipleChoiceField(
        label="Traffic source kind", required=False, choices=TrafficSource.Kind.choices
    )
    traffic_source = forms.ModelMultipleChoiceField(
        label="Traffic source", required=False, queryset=TrafficSource.objects.order_by("name")
    )
    campaign = forms.ModelMultipleChoiceField(
        label="Campaign", required=False, queryset=Campaign.objects.order_by("name")
    )
    # An offer is labelled with its advertiser: fetched in the same query, not one query per option.
    offer = forms.ModelMultipleChoiceField(
        label="Offer", required=False, queryset=Offer.objects.select_related("advertiser")
    )
    advertiser = forms.ModelMultipleChoiceField(label="Advertiser", required=False, queryset=Advertiser.objects.all())
    country = forms.CharField(
        label="Country", required=False, max_length=400, help_text="ISO codes, e.g. US, CA. Empty: all countries."
    )

    @classmethod
    def with_defaults(cls, query) -> "ReportForm":
        """The form bound to the query string, with the default period and grouping where it has none."""
        data = query.copy()
        date_from, date_to = default_period()
        for name, default in (
            ("date_from", date_from.isoformat()),
            ("date_to", date_to.isoformat()),
            ("group_by", DEFAULT_GROUPING),
            ("columns", "money"),
        ):
            if not data.get(name):
                data[name] = default
        return cls(data)

    def clean_columns(self) -> str:
        return self.cleaned_data["columns"] or "money"

    def clean_country(self) -> list[str]:
        given = [code for code in re.split(r"[\s,;]+", self.cleaned_data["country"]) if code]
        codes = [normalise_country(code) for code in given]
        unknown = [code for code, normalised in zip(given, codes, strict=True) if not normalised]
        if unknown:
            raise forms.ValidationError(
                "Not ISO country codes: %(codes)s.", params={"codes": ", ".join(unknown)}, code="invalid_country"
            )
        return list(dict.fromkeys(codes))

    def clean(self):
        super().clean()
        cleaned = self.cleaned_data
        date_from, date_to = cleaned.get("date_from"), cleaned.get("date_to")
        for name, day in (("date_from", date_from), ("date_to", date_to)):
            if day and not EARLIEST_DAY <= day <= LATEST_DAY:
                self.add_error(name, f"Pick a day between {EARLIEST_DAY:%Y-%m-%d} and {LATEST_DAY:%Y-%m-%d}.")
                return cleaned
        if date_from and date_to:
            if date_to < date_from:
                raise forms.ValidationError("The end date is before the start date.", code="period_reversed")
            days = (date_to - date_from).days + 1
            if days > MAX_DAYS:
                raise forms.ValidationError(
                    "Choose a period of at most %(most)s days; this one has %(days)s.",
                    params={"most": MAX_DAYS, "days": days},
                    code="period_too_long",
                )
        if cleaned.get("then_by") and cleaned.get("then_by") == cleaned.get("group_by"):
            self.add_error("then_by", "Choose a second grouping different from the first, or none.")
        return cleaned

    def period_fields(self) -> list:
        return [self[name] for name in PERIOD_AND_GROUPING]

    def filter_fields(self) -> list:
        return [field for field in self if field.name not in PERIOD_AND_GROUPING]

    def has_filters(self) -> bool:
        return any(self.data.get(field.name) for field in self.filter_fields())

    def group_by_names(self) -> list[str]:
        return [name for name in (self.cleaned_data["group_by"], self.cleaned_data["then_by"]) if name]

    def selector_filters(self) -> dict[str, list]:
        """The filters as the report selector takes them: dimension name -> values kept."""
        filters = {
            "traffic_source_kind": list(self.cleaned_data["traffic_source_kind"]),
            **{name: [item.pk for item in self.cleaned_data[name]] for name in RELATED_FILTERS},
            "country": self.cleaned_data["country"],
        }
        return {name: values for name, values in filters.items() if values}
