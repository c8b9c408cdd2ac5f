import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    # Apart from 0008: PostgreSQL refuses to alter a table with foreign key checks pending from the copy.
    dependencies = [("campaigns", "0008_dailystat_offer_and_source")]

    operations = [
        migrations.AlterField(
            model_name="dailystat",
            name="offer",
            field=models.ForeignKey(
                editable=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="daily_stats",
                to="campaigns.offer",
            ),
        ),
        migrations.AlterField(
            model_name="dailystat",
            name="traffic_source",
            field=models.ForeignKey(
                editable=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="daily_stats",
                to="campaigns.trafficsource",
            ),
        ),
    ]
