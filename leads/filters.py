import django_filters

from .models import Lead, LeadStatus, Validity


class LeadFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=LeadStatus.choices)
    lead_type = django_filters.ChoiceFilter(choices=[("soft", "soft"), ("hard", "hard")])
    validity = django_filters.ChoiceFilter(choices=Validity.choices)
    campaign = django_filters.CharFilter(field_name="campaign__slug")
    country = django_filters.CharFilter(method="filter_country")
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    updated_after = django_filters.IsoDateTimeFilter(field_name="updated_at", lookup_expr="gte")
    updated_before = django_filters.IsoDateTimeFilter(field_name="updated_at", lookup_expr="lt")

    class Meta:
        model = Lead
        fields = ["status", "lead_type", "validity", "campaign", "country"]

    def filter_country(self, queryset, name, value):
        return queryset.filter(country=value.strip().upper()[:2])
