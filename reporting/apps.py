from django.apps import AppConfig


class ReportingConfig(AppConfig):
    """The read side: reports, the dashboard and placement quality over campaigns, leads and the ledger."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "reporting"

    def ready(self) -> None:
        from campaigns.metrics import register_campaign_metrics

        from . import receivers  # noqa: F401  (keeps the daily rollups in step with every event)
        from .selectors.campaigns import campaign_list_metrics

        register_campaign_metrics(campaign_list_metrics)
