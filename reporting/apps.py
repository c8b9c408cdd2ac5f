from django.apps import AppConfig


class ReportingConfig(AppConfig):
    """The read side: reports, the dashboard and placement quality over campaigns, leads and the ledger."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "reporting"
