"""The admin's own history named leads and suppressed addresses by the person's name or address, and
a lead's change messages quoted its new notes and named its enrollments by the person: rename them by
id (leadcrm.admin_history) and drop the quotes. Nothing else of the entries changes."""

import json

from django.db import migrations
from django.db.models import F, Value
from django.db.models.functions import Concat

NAMED_BY_ID = {("leads", "lead"): "Lead ", ("nurture", "suppression"): "Suppression "}
# Objects a lead's change message named by what the person wrote or is called.
QUOTED = {"lead note", "enrollment"}


def rename(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    LogEntry = apps.get_model("admin", "LogEntry")
    for (app_label, model), label in NAMED_BY_ID.items():
        content_type = ContentType.objects.filter(app_label=app_label, model=model).first()
        if content_type is None:
            continue  # a new database: nothing was logged yet
        entries = LogEntry.objects.filter(content_type=content_type)
        entries.update(object_repr=Concat(Value(label), F("object_id")))
        if model != "lead":
            continue
        for entry in entries.filter(change_message__startswith="[").only("pk", "change_message").iterator():
            messages = json.loads(entry.change_message)
            for message in messages:
                for detail in message.values():
                    if isinstance(detail, dict) and detail.get("name") in QUOTED and "object" in detail:
                        detail["object"] = "—"
            LogEntry.objects.filter(pk=entry.pk).update(change_message=json.dumps(messages))


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0001_initial"),
        ("admin", "0003_logentry_add_action_flag_choices"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(rename, migrations.RunPython.noop)]
