"""Campaign status changes and copies."""

from django.db import transaction
from django.utils.text import slugify

from leadcrm.errors import Conflict

from ..models import Campaign, LandingPage, QuizQuestion

_ALLOWED_STATUS_CHANGES: dict[str, set[str]] = {
    Campaign.Status.ACTIVE: {Campaign.Status.DRAFT, Campaign.Status.PAUSED},
    Campaign.Status.PAUSED: {Campaign.Status.ACTIVE},
}


def _campaign_set_status(*, campaign: Campaign, status: str) -> Campaign:
    if campaign.status == status:
        return campaign
    if campaign.status not in _ALLOWED_STATUS_CHANGES[status]:
        raise Conflict(
            f"cannot go from {campaign.get_status_display().lower()} to {Campaign.Status(status).label.lower()}."
        )
    campaign.status = status
    campaign.save(update_fields=["status", "updated_at"])
    return campaign


@transaction.atomic
def campaign_activate(*, campaign: Campaign) -> Campaign:
    campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
    if not campaign.landing_destination():
        raise Conflict("add an active landing page or a landing URL before activating.")
    return _campaign_set_status(campaign=campaign, status=Campaign.Status.ACTIVE)


@transaction.atomic
def campaign_pause(*, campaign: Campaign) -> Campaign:
    campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
    return _campaign_set_status(campaign=campaign, status=Campaign.Status.PAUSED)


def _free_slug(model: type[Campaign | LandingPage], base: str, max_length: int) -> str:
    base = slugify(base)[: max_length - 8].strip("-") or "copy"
    candidate, number = f"{base}-copy", 1
    while model.objects.filter(slug=candidate).exists():
        number += 1
        candidate = f"{base}-copy-{number}"
    return candidate


@transaction.atomic
def campaign_duplicate(*, campaign: Campaign) -> Campaign:
    """A draft copy with the same settings, targeting, landing pages and quiz questions; no stats."""
    pages = list(campaign.landing_pages.prefetch_related("questions"))
    copy = Campaign.objects.get(pk=campaign.pk)
    copy.pk = None
    copy.name = f"{campaign.name} (copy)"[:160]
    copy.slug = _free_slug(Campaign, campaign.slug, 80)
    copy.status = Campaign.Status.DRAFT
    copy.save()
    for page in pages:
        questions = list(page.questions.all())
        page.pk = None
        page.campaign = copy
        page.slug = _free_slug(LandingPage, page.slug, 80)
        page.save()
        QuizQuestion.objects.bulk_create(
            QuizQuestion(
                landing_page=page,
                position=question.position,
                key=question.key,
                text=question.text,
                kind=question.kind,
                options=question.options,
                is_required=question.is_required,
            )
            for question in questions
        )
    return copy
