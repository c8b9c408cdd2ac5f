from django.apps import AppConfig


class LeadsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "leads"

    def ready(self) -> None:
        from . import receivers  # noqa: F401  (connects the ledger to daily stats)
        from .follow_ups import register_lead_follow_ups

        register_lead_follow_ups()
