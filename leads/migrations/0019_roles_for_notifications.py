from django.db import migrations

from leadcrm.roles import sync_roles


class Migration(migrations.Migration):
    dependencies = [("leads", "0018_supplier_notifications")]

    operations = [migrations.RunPython(sync_roles, migrations.RunPython.noop)]
