from django.apps import AppConfig


class AuditConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "leadcrm.audit"
    label = "audit"
    verbose_name = "Audit"

    def ready(self) -> None:
        from . import receivers, tracked

        tracked.register_tracked_models()
        receivers.connect()
