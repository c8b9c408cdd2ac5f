from django.apps import AppConfig


class AuditConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "leadcrm.audit"
    label = "audit"
    verbose_name = "Audit"

    def ready(self) -> None:
        from leads.services.retention import RetentionJob, register_retention_job

        from . import receivers, tracked
        from .retention import access_log_expire, audit_trail_expire, login_records_expire

        tracked.register_tracked_models()
        receivers.connect()
        register_retention_job(RetentionJob(name="access log entries deleted", run=access_log_expire))
        register_retention_job(RetentionJob(name="login records deleted", run=login_records_expire))
        register_retention_job(RetentionJob(name="change history entries deleted", run=audit_trail_expire))
