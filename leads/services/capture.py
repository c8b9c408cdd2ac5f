"""The one lead pipeline every door calls: normalise, enrich, validate, dedupe, classify, qualify, score."""

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from campaigns.models import Campaign, Click, LandingPage, PostbackEvent
from campaigns.visitor import parse_user_agent
from leadcrm.bulk import Statement, deferred_statements, insert_soon, insert_statement, next_id_statement

from ..models import Door, Lead, LeadEvent, Partner, Qualification, SupplierPing
from .classification import classify_lead_type
from .consent import ConsentShown, consent_certificate_create
from .dedupe import contact_lookups
from .inbound_ping import ping_claim
from .ledger import ledger_post_capture
from .normalisation import country_code, normalise_email, normalise_name, normalise_phone, phone_region
from .outbox import new_lead_follow_ups, outbox_enqueue
from .postbacks import postback_enqueue
from .qualification import qualify_lead
from .scoring import score_lead
from .submission import Submission
from .validation import validate_lead, validity_from


@dataclass
class CaptureContext:
    """What the door knows besides the submitted fields."""

    door: str
    landing_page: LandingPage | None = None
    ip: str | None = None
    user_agent: str = ""
    request_country: str = ""  # the visitor's: the CDN/proxy header (a landing page: else its `country` parameter)
    # A landing form's: the country it read the phone number in (the visitor's choice, else theirs,
    # else the campaign's first target). The pipeline reads it there too, and a lead whose country
    # nothing else tells is stored in the number's.
    phone_country: str = ""
    form_seconds: float | None = None  # time from showing the form to sending it, if known
    replayed_form: bool = False  # the form's state was already sent with another lead
    honeypot: str = ""
    is_test: bool = False
    idempotency_key: str | None = None
    actor: User | None = None
    partner: Partner | None = None  # the supplier that posted it
    # Landing pages and quizzes: what the form showed, and the names of the fields sent with a value.
    consent_shown: ConsentShown | None = None
    fields_submitted: tuple[str, ...] = ()
    ping: SupplierPing | None = None  # the supplier's inbound ping it is bought by (its price holds)


# Doors whose every submission gets our consent certificate: we showed the form, so we can vouch for it.
CERTIFIED_DOORS = (Door.LANDING_PAGE, Door.QUIZ)


@dataclass
class CaptureResult:
    lead: Lead
    created: bool  # False when the idempotency key matched an earlier capture


def _find_click(campaign: Campaign, click_id: str) -> Click | None:
    if not click_id:
        return None
    return Click.objects.filter(campaign=campaign, click_id=click_id).order_by("-created_at").first()


# Text columns a lead's values are normalised into, with their limits.
_LIMITED_TEXT = [
    (field.attname, field.max_length)
    for field in Lead._meta.concrete_fields
    if field.get_internal_type() == "CharField" and field.max_length
]


def _fit_columns(lead: Lead, sent: dict[str, Any]) -> None:
    """A value the submission's checks passed may outgrow its column once normalised ("ß" upper-cased
    is "SS", "İ" lower-cased two characters): it is kept as sent, else cut to the column, so the lead
    is stored rather than refused by the database (which SQLite would not have done)."""
    for name, limit in _LIMITED_TEXT:
        value = getattr(lead, name)
        if isinstance(value, str) and len(value) > limit:
            original = sent.get(name)
            setattr(lead, name, original if isinstance(original, str) and len(original) <= limit else value[:limit])


def _build_lead(
    *, campaign: Campaign, submission: Submission, context: CaptureContext
) -> tuple[Lead, dict[str, Any], bool]:
    """Steps 1 and 2: normalise and enrich. Returns the unsaved lead, the event data, phone validity."""
    values = submission.values
    click = _find_click(campaign, values["click_id"])
    country = country_code(values["country"]) or (click.country if click else "") or context.request_country
    phone, phone_ok = normalise_phone(values["phone"], context.phone_country or country)
    if not country and context.phone_country and phone_ok:
        country = phone_region(phone)
    user_agent = values["user_agent"] or context.user_agent
    visitor = parse_user_agent(user_agent)
    ip = values["ip"] or context.ip
    lead = Lead(
        door=context.door,
        partner=context.partner,
        idempotency_key=context.idempotency_key,
        is_test=context.is_test,
        campaign=campaign,
        offer=campaign.offer,
        traffic_source=campaign.traffic_source,
        landing_page=context.landing_page,
        tracked_click=click,
        click_id=values["click_id"],
        sub_ids={**(click.sub_ids if click else {}), **submission.sub_ids},
        email=normalise_email(values["email"]),
        phone=phone,
        first_name=normalise_name(values["first_name"]),
        last_name=normalise_name(values["last_name"]),
        company=values["company"],
        company_size=values["company_size"],
        budget=values["budget"],
        country=country,
        zip_code=values["zip_code"].upper(),
        message=values["message"],
        answers=submission.answers,
        raw_data=submission.raw,
        ip=ip,
        user_agent=user_agent,
        device_type=visitor.device_type,
        os=visitor.os,
        browser=visitor.browser,
        action=(values["action"] or (context.landing_page.action if context.landing_page else "")).lower(),
        consent=submission.consent,
        third_party_consent_id=values["third_party_consent_id"],
    )
    _fit_columns(lead, values)
    if lead.consent:
        page = context.landing_page
        shown = context.consent_shown
        lead.consent_text = (shown.text if shown else page.consent_text) if page else values["consent_text"]
        lead.consent_version = (shown.version if shown else page.consent_version) if page else values["consent_version"]
        lead.consent_at = timezone.now()
        lead.consent_ip = ip
    changed = [
        name
        for name, before, after in (
            ("email", values["email"], lead.email),
            ("phone", values["phone"], lead.phone),
            ("first_name", values["first_name"], lead.first_name),
            ("last_name", values["last_name"], lead.last_name),
            ("country", values["country"], lead.country),
        )
        if before and before != after
    ]
    enriched = {
        "device_type": lead.device_type,
        "os": lead.os,
        "browser": lead.browser,
        "country": lead.country,
        "click": click.click_id if click else None,
    }
    return lead, {"normalised": {"changed": changed}, "enriched": enriched}, phone_ok


def lead_capture(*, campaign: Campaign, submission: Submission, context: CaptureContext) -> CaptureResult:
    """Store the lead with its judgement, timeline and follow-ups in one transaction.

    Invalid, suspect and duplicate leads are stored too; they are flagged, never dropped.
    """
    try:
        with transaction.atomic(), deferred_statements() as deferred:
            return CaptureResult(lead=_capture(campaign, submission, context, deferred), created=True)
    except IntegrityError:
        # The lead's idempotency key is unique: a repeat (a CSV row imported again, an API answer
        # that was lost, two racing requests) finds the lead stored the first time. Looked up only
        # then, not before every new lead.
        if context.idempotency_key:
            earlier = Lead.objects.filter(idempotency_key=context.idempotency_key).first()
            if earlier is not None:
                return CaptureResult(lead=earlier, created=False)
        raise


def _capture(campaign: Campaign, submission: Submission, context: CaptureContext, deferred: list[Statement]) -> Lead:
    lead, step_data, phone_ok = _build_lead(campaign=campaign, submission=submission, context=context)
    offer = lead.offer
    page = context.landing_page

    required = list(dict.fromkeys([*(page.required_fields if page else []), *offer.required_fields]))
    # The lead's id comes with the lookups, so its INSERT can go with the rest in one round trip.
    id_statement = next_id_statement(Lead)
    lookups = contact_lookups(lead=lead, also=[id_statement] if id_statement else [])
    reasons = validate_lead(
        lead=lead,
        phone_ok=phone_ok,
        required_fields=required,
        honeypot=context.honeypot,
        form_seconds=context.form_seconds,
        replayed_form=context.replayed_form,
        consent_required=bool(page and page.consent_required),
        leads_from_ip=lookups.leads_from_ip,
        from_browser=context.door in CERTIFIED_DOORS,
    )
    lead.validity, lead.validity_reasons = validity_from(reasons), reasons
    original = lookups.original
    lead.is_duplicate, lead.duplicate_of = original is not None, original

    lead.lead_type, type_reason = classify_lead_type(action=lead.action, offer=offer)
    rules = [rule for rule in offer.qualification_rules.all() if rule.is_active]
    lead.qualification, lead.qualification_reasons = qualify_lead(lead=lead, rules=rules)
    lead.score, lead.score_breakdown = score_lead(lead)
    if page is not None and context.door in CERTIFIED_DOORS:
        consent_certificate_create(
            lead=lead,
            page=page,
            shown=context.consent_shown,
            consent_given=lead.consent,
            fields_submitted=list(context.fields_submitted),
            ip=context.ip,
            user_agent=context.user_agent,
        )
    if id_statement:
        lead.pk = lookups.also[0][0]
        insert_soon(lead)
    else:
        lead.save()
    if context.ping is not None:
        ping_claim(ping=context.ping, lead=lead)

    follow_ups = new_lead_follow_ups(lead)
    now = timezone.now()
    captured = {"door": lead.door, "campaign": campaign.slug, "test": lead.is_test}
    if context.ping is not None:
        captured["ping"] = str(context.ping.public_id)
    steps = [
        (LeadEvent.Kind.CAPTURED, captured),
        (LeadEvent.Kind.NORMALISED, step_data["normalised"]),
        (LeadEvent.Kind.ENRICHED, step_data["enriched"]),
        (LeadEvent.Kind.VALIDATED, {"validity": lead.validity, "reasons": lead.validity_reasons}),
        (
            LeadEvent.Kind.DEDUPLICATED,
            {"duplicate": lead.is_duplicate, "original": str(original.public_id) if original else None},
        ),
        (LeadEvent.Kind.CLASSIFIED, {"lead_type": lead.lead_type, "why": type_reason}),
        (LeadEvent.Kind.QUALIFIED, {"qualification": lead.qualification, "reasons": lead.qualification_reasons}),
        (LeadEvent.Kind.SCORED, {"score": lead.score, "breakdown": lead.score_breakdown}),
        (LeadEvent.Kind.FOLLOW_UP_QUEUED, {"follow_ups": follow_ups}),
    ]
    actor_id = context.actor.pk if context.actor else None
    timeline = insert_statement(
        LeadEvent,
        ["lead_id", "kind", "data", "actor_id", "created_at"],
        [(lead.pk, kind, data, actor_id, now) for kind, data in steps],
    )
    # With the lead and what saving it set off (its consent certificate, its share of the daily
    # rollups): one round trip.
    outbox_enqueue(lead=lead, kinds=follow_ups, before=[*deferred, timeline])
    deferred.clear()
    ledger_post_capture(lead=lead, ping=context.ping)
    postback_enqueue(lead=lead, event=PostbackEvent.VALID)
    if lead.qualification == Qualification.QUALIFIED:
        postback_enqueue(lead=lead, event=PostbackEvent.QUALIFIED)
    return lead
