from django.apps import AppConfig


class NurtureConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "nurture"

    def ready(self) -> None:
        from leads.models import OutboxEntry
        from leads.services.outbox import register_outbox_handler
        from leads.signals import lead_erased

        from .services.enrollment import lead_erased_everywhere
        from .services.sending import nurture_email_handler
        from .services.triggers import nurture_enrollment_handler
        from .services.webhooks import nurture_webhook_handler

        register_outbox_handler(OutboxEntry.Kind.NURTURE_ENROLLMENT, nurture_enrollment_handler)
        register_outbox_handler(OutboxEntry.Kind.NURTURE_EMAIL, nurture_email_handler, timeline=False)
        register_outbox_handler(OutboxEntry.Kind.NURTURE_WEBHOOK, nurture_webhook_handler, timeline=False)
        lead_erased.connect(lead_erased_everywhere, dispatch_uid="nurture-lead-erased")
