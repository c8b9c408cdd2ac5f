from django.apps import AppConfig


class NurtureConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "nurture"
