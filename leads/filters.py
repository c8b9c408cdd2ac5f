import datetime

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField
from drf_spectacular.utils import extend_schema_field

from .models import Lead, LeadStatus, Validity


class UtcIsoDateTimeField(IsoDateTimeField):
    """ISO 8601 with any offset, sent to the database in UTC; out-of-range instants are a 400."""

    def to_python(self, value):
        try:
            parsed = super().to_python(value)
            return parsed.astimezone(datetime.UTC) if parsed is not None else None
        except OverflowError as error:
            raise forms.ValidationError("Enter a date and time between the years 1 and 9999.") from error


# An empty value filters nothing (django-filter skips it), so the schema allows it beside a date-time.
@extend_schema_field({"anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "maxLength": 0}]})
class UtcIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField


@extend_schema_field({"type": "string", "pattern": "^[^\\x00]*$"})  # as Django's form fields, no NUL
class TextFilter(django_filters.CharFilter):
    pass


class LeadFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=LeadStatus.choices)
    lead_type = django_filters.ChoiceFilter(choices=[("soft", "soft"), ("hard", "hard")])
    validity = django_filters.ChoiceFilter(choices=Validity.choices)
    campaign = TextFilter(field_name="campaign__slug")
    country = TextFilter(method="filter_country")
    created_after = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    updated_after = UtcIsoDateTimeFilter(field_name="updated_at", lookup_expr="gte")
    updated_before = UtcIsoDateTimeFilter(field_name="updated_at", lookup_expr="lt")

    class Meta:
        model = Lead
        fields = ["status", "lead_type", "validity", "campaign", "country"]

    def filter_country(self, queryset, name, value):
        return queryset.filter(country=value.strip().upper()[:2])
