"""Daily rollups: what reports add up, summed per day and bucket, kept in the transaction of each event
(tracked clicks: folded in every minute, see ClickFold)."""

from django.db import models

from campaigns.models import DecimalOptions

SUMS: DecimalOptions = {"max_digits": 20, "decimal_places": 4}


class DailyRollup(models.Model):
    """One bucket of one day: a campaign's leads, money and traffic by offer, source, country and device.

    Three grains share the table. `detail` rows hold what is known per visitor: lead counts, tracked
    clicks and the ledger money of leads. `total` rows hold the same added up over countries and
    devices (country and device empty), so reports that do not ask for those read a twentieth of the
    rows. `campaign` rows (country and device empty) hold what is only known per campaign and day:
    impressions and clicks from daily stats, and media spend.

    `currency` is empty where the figures are counts (they take the offer's currency when read, as
    leads do) and the entry's currency where they are money. Money is summed as the ledger signs it
    (spend and payouts negative). `entries` and `stat_days` count what contributed, so a bucket whose
    money nets to zero is still shown, as the report from raw rows shows it.
    """

    class Grain(models.TextChoices):
        DETAIL = "detail", "Per country and device"
        TOTAL = "total", "Over countries and devices"
        CAMPAIGN = "campaign", "Per campaign and day (stats and spend)"

    day = models.DateField()
    campaign = models.ForeignKey("campaigns.Campaign", on_delete=models.CASCADE, related_name="+")
    offer = models.ForeignKey("campaigns.Offer", on_delete=models.CASCADE, related_name="+")
    traffic_source = models.ForeignKey("campaigns.TrafficSource", on_delete=models.CASCADE, related_name="+")
    country = models.CharField(max_length=2, blank=True)
    device_type = models.CharField(max_length=10, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    grain = models.CharField(max_length=8, choices=Grain.choices)

    leads = models.IntegerField(default=0)
    valid_leads = models.IntegerField(default=0)
    duplicates = models.IntegerField(default=0)
    suspect = models.IntegerField(default=0)
    invalid = models.IntegerField(default=0)
    qualified = models.IntegerField(default=0)
    hard_leads = models.IntegerField(default=0)
    soft_leads = models.IntegerField(default=0)
    converted = models.IntegerField(default=0)
    returned = models.IntegerField(default=0)
    tracked_clicks = models.IntegerField(default=0)

    entries = models.IntegerField(default=0)
    sold_leads = models.IntegerField(default=0)
    lead_revenue = models.DecimalField(default=0, **SUMS)
    sale_revenue = models.DecimalField(default=0, **SUMS)
    supplier_cost = models.DecimalField(default=0, **SUMS)
    media_spend = models.DecimalField(default=0, **SUMS)

    stat_days = models.IntegerField(default=0)
    impressions = models.BigIntegerField(default=0)
    clicks = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["day", "campaign", "offer", "traffic_source", "country", "device_type", "currency", "grain"],
                name="rollup_one_row_per_bucket",
            )
        ]
        # Reports read one grain over a range of days (a month: a twelfth of a year's rows, most of
        # them of another grain); campaign lists read a few campaigns over all days.
        indexes = [
            models.Index(fields=["grain", "day"], name="rollup_grain_day"),
            models.Index(fields=["campaign", "grain", "day"], name="rollup_campaign_grain_day"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.campaign_id} {self.country or '-'} {self.device_type or '-'} {self.currency}"


class ClickFold(models.Model):
    """How far tracked clicks are in the rollups: one row. Every click up to `through_click_id` is
    counted in DailyRollup.tracked_clicks; reports count the later ones from the clicks table.

    A click on the request path is then its insert alone; the fold (reporting.tasks, each minute)
    adds the clicks since the last one to their buckets in one upsert and moves the mark, in one
    transaction (reporting.services.rollups.rollups_fold_clicks)."""

    through_click_id = models.BigIntegerField(default=0)
    folded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="click_fold_single_row")]

    def __str__(self) -> str:
        return f"Clicks folded through {self.through_click_id}"
