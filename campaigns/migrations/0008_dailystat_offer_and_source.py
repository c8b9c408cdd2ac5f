import django.db.models.deletion
from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def copy_from_campaigns(apps, schema_editor):
    """Days imported so far take their campaign's offer and source of now: the best we know."""
    DailyStat = apps.get_model("campaigns", "DailyStat")
    Campaign = apps.get_model("campaigns", "Campaign")
    campaign = Campaign.objects.filter(pk=OuterRef("campaign_id"))
    DailyStat.objects.update(
        offer_id=Subquery(campaign.values("offer_id")[:1]),
        traffic_source_id=Subquery(campaign.values("traffic_source_id")[:1]),
    )


class Migration(migrations.Migration):
    dependencies = [("campaigns", "0007_campaign_placement_thresholds")]

    operations = [
        migrations.AddField(
            model_name="dailystat",
            name="offer",
            field=models.ForeignKey(
                editable=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="daily_stats",
                to="campaigns.offer",
            ),
        ),
        migrations.AddField(
            model_name="dailystat",
            name="traffic_source",
            field=models.ForeignKey(
                editable=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="daily_stats",
                to="campaigns.trafficsource",
            ),
        ),
        migrations.RunPython(copy_from_campaigns, migrations.RunPython.noop),
    ]
