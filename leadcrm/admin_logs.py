from unfold.admin import ModelAdmin


class ReadOnlyLogAdmin(ModelAdmin):
    """Logs are written by the machinery that does the work; staff read them and act through actions."""

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        # Nothing on a log's page can be edited: no save buttons that would save nothing.
        no_saving = {"show_save": False, "show_save_and_continue": False, "show_save_and_add_another": False}
        return super().changeform_view(request, object_id, form_url, {**(extra_context or {}), **no_saving})
