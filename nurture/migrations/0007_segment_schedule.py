from django.db import migrations

NAME = "Nurture segments (enroll matching leads)"


def add_schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every_5_minutes, _ = IntervalSchedule.objects.get_or_create(every=5, period="minutes")
    PeriodicTask.objects.get_or_create(
        name=NAME, defaults={"task": "nurture.tasks.nurture_segments_task", "interval": every_5_minutes}
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [("nurture", "0006_segment_trigger"), ("django_celery_beat", "0019_alter_periodictasks_options")]

    operations = [migrations.RunPython(add_schedule, remove_schedule)]
