import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

# Each foreign key's own index, which a composite index starting with the same column makes redundant
# (every lookup by the key alone, such as PROTECT's and SET_NULL's, uses the composite). Dropped by
# name rather than by AlterField, which would also drop and re-add (and so re-check) each constraint.
FOREIGN_KEY_INDEXES = {
    "campaign": ("leads_lead_campaign_id_5dd7a82a", "campaign_id"),  # lead_campaign_time
    "offer": ("leads_lead_offer_id_2fcbb1be", "offer_id"),  # lead_dedupe_email
    "traffic_source": ("leads_lead_traffic_source_id_cd31c8ce", "traffic_source_id"),  # lead_source_time
    "assigned_to": ("leads_lead_assigned_to_id_d7a91e6c", "assigned_to_id"),  # lead_rep_status
}


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0015_offer_auction"),
        ("leads", "0034_events_and_outbox_share_their_lead_index"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{index}"',
                    reverse_sql=f'CREATE INDEX "{index}" ON "leads_lead" ("{column}")',
                )
                for index, column in FOREIGN_KEY_INDEXES.values()
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="lead",
                    name="assigned_to",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="assigned_leads",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                migrations.AlterField(
                    model_name="lead",
                    name="campaign",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="leads",
                        to="campaigns.campaign",
                    ),
                ),
                migrations.AlterField(
                    model_name="lead",
                    name="offer",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="leads",
                        to="campaigns.offer",
                    ),
                ),
                migrations.AlterField(
                    model_name="lead",
                    name="traffic_source",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="leads",
                        to="campaigns.trafficsource",
                    ),
                ),
            ],
        ),
        # Unique where set: most leads have no key, and their rows stay out of the index (and the
        # LIKE index Django makes for a unique text column goes, as nothing searches keys by prefix).
        migrations.AddConstraint(
            model_name="lead",
            constraint=models.UniqueConstraint(
                condition=models.Q(("idempotency_key__isnull", False)),
                fields=("idempotency_key",),
                name="lead_idempotency_key_unique",
            ),
        ),
        migrations.AlterField(
            model_name="lead",
            name="idempotency_key",
            field=models.CharField(blank=True, help_text="Makes re-sent submissions safe.", max_length=200, null=True),
        ),
    ]
