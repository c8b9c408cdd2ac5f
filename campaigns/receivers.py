"""What campaigns does when its own configuration changes (connected in CampaignsConfig.ready)."""

from django.db.models.signals import post_delete, post_save

from leadcrm.config_cache import config_changed

from .models import Advertiser, Campaign, LandingPage, Offer, QuizQuestion, TrafficSource

# Read per process by click tracking and by the lead intake (leadcrm.config_cache): saving or deleting
# any of it makes every process read it again on its next request.
CACHED_CONFIGURATION = (TrafficSource, Advertiser, Offer, Campaign, LandingPage, QuizQuestion)

for model in CACHED_CONFIGURATION:
    label = model._meta.label_lower
    post_save.connect(config_changed, sender=model, dispatch_uid=f"config_changed_save_{label}")
    post_delete.connect(config_changed, sender=model, dispatch_uid=f"config_changed_delete_{label}")
