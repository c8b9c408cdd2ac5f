import django.db.models.deletion
from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def copy_from_campaigns(apps, schema_editor):
    """Clicks recorded so far take their campaign's offer of now: the best we know."""
    Click = apps.get_model("campaigns", "Click")
    Campaign = apps.get_model("campaigns", "Campaign")
    Click.objects.update(offer_id=Subquery(Campaign.objects.filter(pk=OuterRef("campaign_id")).values("offer_id")[:1]))


class Migration(migrations.Migration):
    dependencies = [("campaigns", "0009_dailystat_offer_and_source_required")]

    operations = [
        migrations.AddField(
            model_name="click",
            name="offer",
            field=models.ForeignKey(
                null=True, on_delete=django.db.models.deletion.PROTECT, related_name="clicks", to="campaigns.offer"
            ),
        ),
        migrations.RunPython(copy_from_campaigns, migrations.RunPython.noop),
    ]
