from django.db import migrations

from leadcrm.roles import sync_roles


class Migration(migrations.Migration):
    dependencies = [("nurture", "0008_audiences")]

    operations = [migrations.RunPython(sync_roles, migrations.RunPython.noop)]
