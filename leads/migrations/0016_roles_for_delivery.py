from django.db import migrations

from leadcrm.roles import sync_roles


class Migration(migrations.Migration):
    dependencies = [("leads", "0015_held_delivery_queue")]

    operations = [migrations.RunPython(sync_roles, migrations.RunPython.noop)]
