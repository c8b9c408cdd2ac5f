from django.apps import AppConfig


class NurtureConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "nurture"

    def ready(self) -> None:
        from leads.signals import lead_erased, lead_status_changed

        from .follow_ups import register_nurture_follow_ups
        from .services.access_request import register_nurture_access_section
        from .services.enrollment import lead_erased_everywhere
        from .services.triggers import status_changed_follow_up

        register_nurture_follow_ups()
        register_nurture_access_section()  # its part of a person's access request export
        lead_erased.connect(lead_erased_everywhere, dispatch_uid="nurture-lead-erased")
        lead_status_changed.connect(status_changed_follow_up, dispatch_uid="nurture-status-changed")
