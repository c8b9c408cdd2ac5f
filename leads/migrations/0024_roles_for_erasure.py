from django.db import migrations

from leadcrm.roles import sync_roles


class Migration(migrations.Migration):
    dependencies = [("leads", "0023_lead_erasure")]

    operations = [migrations.RunPython(sync_roles, migrations.RunPython.noop)]
