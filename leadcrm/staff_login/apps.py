from django.apps import AppConfig


class StaffLoginConfig(AppConfig):
    name = "leadcrm.staff_login"
    label = "staff_login"
    verbose_name = "Staff login"

    def ready(self) -> None:
        from . import receivers  # noqa: F401
