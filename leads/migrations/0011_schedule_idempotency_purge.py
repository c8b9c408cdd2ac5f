from django.db import migrations

NAME = "API: forget idempotency keys older than 24 hours"


def add_schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    hourly, _ = IntervalSchedule.objects.get_or_create(every=1, period="hours")
    PeriodicTask.objects.get_or_create(
        name=NAME, defaults={"task": "leads.tasks.purge_idempotency_records_task", "interval": hourly}
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [("leads", "0010_roles_for_partners"), ("django_celery_beat", "0019_alter_periodictasks_options")]

    operations = [migrations.RunPython(add_schedule, remove_schedule)]
