from django.apps import AppConfig


class NurtureConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "nurture"

    def ready(self) -> None:
        from leads.services.retention import RetentionJob, register_retention_job
        from leads.signals import lead_status_changed, leads_erased

        from .follow_ups import register_nurture_follow_ups
        from .services.access_request import register_nurture_access_section
        from .services.enrollment import leads_erased_everywhere
        from .services.retention import audience_export_files_expire
        from .services.triggers import status_changed_follow_up

        register_nurture_follow_ups()
        register_nurture_access_section()  # its part of a person's access request export
        leads_erased.connect(leads_erased_everywhere, dispatch_uid="nurture-leads-erased")
        lead_status_changed.connect(status_changed_follow_up, dispatch_uid="nurture-status-changed")
        register_retention_job(RetentionJob(name="audience export files deleted", run=audience_export_files_expire))
