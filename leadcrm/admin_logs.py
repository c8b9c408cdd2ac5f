from unfold.admin import ModelAdmin


class ReadOnlyLogAdmin(ModelAdmin):
    """Logs are written by the machinery that does the work; staff read them and act through actions."""

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]
