import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    # Apart from 0010: PostgreSQL refuses to alter a table with foreign key checks pending from the copy.
    dependencies = [("campaigns", "0010_click_offer")]

    operations = [
        migrations.AlterField(
            model_name="click",
            name="offer",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="clicks", to="campaigns.offer"
            ),
        ),
    ]
