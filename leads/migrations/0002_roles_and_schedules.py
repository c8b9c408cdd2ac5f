from django.db import migrations

from leadcrm.roles import sync_roles

SCHEDULES = (
    ("Outbox sweeper (re-send due follow-ups)", "leads.tasks.sweep_outbox_task"),
    ("Speed to lead: escalate uncontacted leads", "leads.tasks.escalate_uncontacted_leads_task"),
)


def add_schedules(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every_minute, _ = IntervalSchedule.objects.get_or_create(every=1, period="minutes")
    for name, task in SCHEDULES:
        PeriodicTask.objects.get_or_create(name=name, defaults={"task": task, "interval": every_minute})


def remove_schedules(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[name for name, _ in SCHEDULES]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("leads", "0001_initial"),
        ("campaigns", "0002_staff_groups"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.RunPython(sync_roles, migrations.RunPython.noop),
        migrations.RunPython(add_schedules, remove_schedules),
    ]
