"""The audit trail (auditlog's changes) and the access log (reads of personal data) in the admin: read
only, for managers, filterable by user and by lead; a lead's page links to both, filtered to it."""

from typing import Any

from auditlog.mixins import LogEntryAdminMixin
from auditlog.models import LogEntry
from auditlog.render import get_field_verbose_name
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db.models import QuerySet
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from unfold.admin import ModelAdmin

from leads.admin.extensions import register_lead_link
from leads.models import Lead

from .models import AccessLogEntry
from .tracked import tracked_models


class UserFilter(admin.SimpleListFilter):
    """Staff by username; the list is the staff, not a DISTINCT over a log of millions of rows."""

    title = "user"
    parameter_name = "user"
    user_field = "user"

    def lookups(self, request, model_admin):
        staff = get_user_model().objects.filter(is_staff=True).order_by("username")
        return [(str(pk), username) for pk, username in staff.values_list("pk", "username")]

    def queryset(self, request, queryset):
        value = self.value()
        return queryset.filter(**{f"{self.user_field}_id": int(value)}) if value and value.isdigit() else queryset


class ActorFilter(UserFilter):
    user_field = "actor"


class LeadFilter(admin.SimpleListFilter):
    """One lead's entries, chosen from its page (a lead is too many to list here); shown once chosen, so
    it can be cleared."""

    title = "lead"
    parameter_name = "lead"

    def lookups(self, request, model_admin):
        value = self.value()
        return [(value, f"Lead {value}")] if value and value.isdigit() else []

    def queryset(self, request, queryset):
        value = self.value()
        if not (value and value.isdigit()):
            return queryset
        return self.for_lead(queryset, int(value))

    def for_lead(self, queryset: QuerySet[Any], lead_id: int) -> QuerySet[Any]:
        return queryset.filter(lead_id=lead_id)


class LeadChangesFilter(LeadFilter):
    def for_lead(self, queryset: QuerySet[Any], lead_id: int) -> QuerySet[Any]:
        return queryset.filter(content_type=ContentType.objects.get_for_model(Lead), object_pk=str(lead_id))


class TrackedModelFilter(admin.SimpleListFilter):
    """What changed: one of the tracked models (auditlog's own filter reads every content type in the log)."""

    title = "what"
    parameter_name = "what"

    def lookups(self, request, model_admin):
        types = ContentType.objects.get_for_models(*tracked_models())
        names = sorted((str(model._meta.verbose_name).capitalize(), str(ct.pk)) for model, ct in types.items())
        return [(pk, name) for name, pk in names]

    def queryset(self, request, queryset):
        value = self.value()
        return queryset.filter(content_type_id=int(value)) if value and value.isdigit() else queryset


def changes_table(entry: LogEntry) -> str:
    """The fields an entry changed, from and to (masked values show as [hidden])."""
    changes = entry.changes_dict
    if not changes:
        return "—"
    rows = []
    for field, change in sorted(changes.items()):
        name = get_field_verbose_name(entry, field)
        if isinstance(change, dict) and change.get("type") == "m2m":
            rows.append((name, change.get("operation", ""), ", ".join(str(item) for item in change.get("objects", []))))
        else:
            before, after = [*list(change), "", ""][:2]
            rows.append((name, before, after))
    return format_html(
        '<table class="lc-table compact"><tr><th>Field</th><th>From</th><th>To</th></tr>{}</table>',
        format_html_join("", "<tr><th>{}</th><td>{}</td><td>{}</td></tr>", rows),
    )


class AuditTrailAdmin(LogEntryAdminMixin, ModelAdmin):
    empty_hint = (
        "No changes recorded yet. Every change to leads, partners, API keys, destinations, routes, prices, "
        "rules and flows lands here with who made it; if you filtered the list, clear the filters."
    )
    list_display = ("created", "user_url", "action", "resource_url", "msg_short")
    list_filter = (
        "action",
        TrackedModelFilter,
        ActorFilter,
        LeadChangesFilter,
        ("timestamp", admin.DateFieldListFilter),
    )
    list_select_related = ("content_type", "actor")
    ordering = ("-timestamp", "-id")
    show_full_result_count = False
    fieldsets = (
        (None, {"fields": ("created", "user_url", "remote_addr", "resource_url", "action")}),
        ("Changes", {"fields": ("changed_fields",)}),
    )
    readonly_fields = ("created", "user_url", "remote_addr", "resource_url", "action", "changed_fields")

    def get_queryset(self, request):
        self.request = request  # the mixin's links read it
        return super().get_queryset(request)

    @admin.display(description="Fields changed")
    def changed_fields(self, entry):  # not "changes": that is the entry's raw JSON field
        return changes_table(entry)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class AccessLogAdmin(ModelAdmin):
    empty_hint = (
        "No reads recorded yet. A row lands here when someone opens a lead's page, exports leads or the "
        "suppression list, downloads an audience export or reads leads over the API with a staff login; "
        "if you filtered the list, clear the filters."
    )
    list_display = ("created_at", "username", "kind", "lead_link", "rows", "path")
    list_filter = ("kind", UserFilter, LeadFilter, ("created_at", admin.DateFieldListFilter))
    list_select_related = ()
    ordering = ("-created_at", "-id")
    show_full_result_count = False
    fields = ("created_at", "username", "kind", "lead_link", "rows", "path")
    readonly_fields = fields

    @admin.display(description="Lead")
    def lead_link(self, entry):
        if entry.lead_id is None:
            return "—"
        url = reverse("admin:leads_lead_change", args=[entry.lead_id])
        return format_html('<a href="{}">Lead {}</a>', url, entry.lead_id)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# auditlog registers a stock admin of its own; this one is Unfold's, read only, with our filters.
if admin.site.is_registered(LogEntry):
    admin.site.unregister(LogEntry)
admin.site.register(LogEntry, AuditTrailAdmin)
admin.site.register(AccessLogEntry, AccessLogAdmin)

register_lead_link(
    "Audit trail",
    icon="manage_history",
    url=lambda lead_id: reverse("admin:auditlog_logentry_changelist") + f"?lead={lead_id}",
    allowed=lambda request: request.user.has_perm("auditlog.view_logentry"),
)
register_lead_link(
    "Access log",
    icon="visibility",
    url=lambda lead_id: reverse("admin:audit_accesslogentry_changelist") + f"?lead={lead_id}",
    allowed=lambda request: request.user.has_perm("audit.view_accesslogentry"),
)
