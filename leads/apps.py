from django.apps import AppConfig


class LeadsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "leads"

    def ready(self) -> None:
        from . import receivers  # noqa: F401  (connects the ledger to daily stats)
        from .models import OutboxEntry
        from .services.assignment import assign_outbox_handler
        from .services.delivery import delivery_outbox_handler
        from .services.notifications import notification_outbox_handler
        from .services.outbox import register_outbox_handler
        from .services.postbacks import postback_outbox_handler

        register_outbox_handler(OutboxEntry.Kind.ASSIGNMENT, assign_outbox_handler)
        register_outbox_handler(OutboxEntry.Kind.DELIVERY, delivery_outbox_handler)
        register_outbox_handler(OutboxEntry.Kind.POSTBACK, postback_outbox_handler)
        register_outbox_handler(OutboxEntry.Kind.PARTNER_NOTIFICATION, notification_outbox_handler)
