from django.db import migrations, models

NAME = "Retention: erase personal data past its period (daily)"


def add_schedule(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    # Once a day, at a quiet hour (UTC); a run takes what is due in batches and a second one finds nothing.
    nightly, _ = CrontabSchedule.objects.get_or_create(
        minute="30", hour="3", day_of_week="*", day_of_month="*", month_of_year="*"
    )
    PeriodicTask.objects.get_or_create(name=NAME, defaults={"task": "leads.tasks.retention_task", "crontab": nightly})


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0014_offer_retention"),
        ("leads", "0031_inbound_ping_buyer_suppression"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="lead",
            index=models.Index(
                condition=models.Q(("erased_at__isnull", True)),
                fields=["offer", "created_at"],
                name="lead_retention_due",
            ),
        ),
        migrations.RunPython(add_schedule, remove_schedule),
    ]
