"""Landing pages, quiz funnels and pre-landers: GET shows the step, POST moves on or captures the lead."""

import datetime
import secrets
import time

from django.conf import settings
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_safe

from campaigns.models import Campaign, LandingPage
from campaigns.visitor import client_ip, request_country
from leadcrm.config_cache import cached
from leadcrm.links import with_query

from .forms import HONEYPOT_FIELD, LeadForm, QuizAnswerForm, dump_state, load_state, state_mark_used, state_used
from .models import Door
from .services import CaptureContext, SubmissionError, lead_capture, parse_submission
from .services.consent import ConsentShown


def _landing_page(slug: str, *, for_submission: bool) -> LandingPage:
    # Per process until pages or campaigns change (leadcrm.config_cache): with its campaign, offer,
    # source, the offer's rules and the quiz questions, a form post reads no configuration.
    def load() -> LandingPage | None:
        pages = LandingPage.objects.select_related("campaign__offer", "campaign__traffic_source")
        pages = pages.prefetch_related("campaign__offer__qualification_rules", "questions")
        return pages.filter(slug=slug).first()

    # A slug that finds no page is not kept: anyone can ask for endless made-up ones.
    page = cached("landing-page", slug, load, keep=lambda page: page is not None)
    if page is None or not (page.is_active or for_submission):
        raise Http404("No such page.")
    campaign = page.campaign
    # A visitor who opened the form before the page was switched off or its campaign paused still gets
    # their lead stored: every lead that reaches us is.
    open_for_posts = campaign.status in (Campaign.Status.ACTIVE, Campaign.Status.PAUSED, Campaign.Status.ENDED)
    if not (campaign.is_serving() or (for_submission and open_for_posts)):
        raise Http404("This page is not available.")
    return page


def _render(request, page, template, status=200, **context):
    privacy_url = page.privacy_url or settings.PRIVACY_POLICY_URL
    return render(request, template, {"page": page, "privacy_url": privacy_url, **context}, status=status)


@require_safe
def privacy_policy(request):
    return render(request, "landing/privacy.html", {"contact": settings.PRIVACY_CONTACT_EMAIL})


def _fresh_state(request) -> dict:
    return {
        "started": time.time(),
        "nonce": secrets.token_urlsafe(12),  # each showing of the form is one lead's (state_first_use)
        "click_id": request.GET.get("click_id", "")[:128],
        "answers": {},
    }


def _visitor_country(request) -> str:
    """The visitor's country as the request says it: the CDN header, else the click's `country` parameter."""
    return request_country(request, fallback=request.GET.get("country", ""))


def _default_country(request, campaign: Campaign) -> str:
    """The country the form starts with: the visitor's (from the CDN header or the click's `country`
    parameter) when the campaign targets it or targets everyone, else the campaign's first target."""
    visitor = _visitor_country(request)
    targets = campaign.target_countries or []
    if visitor and (not targets or visitor in targets):
        return visitor
    return targets[0] if targets else visitor


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def landing_page(request, slug: str):
    page = _landing_page(slug, for_submission=request.method == "POST")
    country = _default_country(request, page.campaign)
    if page.kind == LandingPage.Kind.PRELANDER:
        next_url = page.next_url
        click_id = request.GET.get("click_id", "")[:128]
        if click_id:
            next_url = with_query(next_url, click_id=click_id)
        return _render(request, page, "landing/prelander.html", next_url=next_url)

    if request.method != "POST":
        state = _fresh_state(request)
        return _show_step(request, page, state, step=0, country=country)

    loaded = load_state(request.POST.get("state"))
    if loaded is None and not page.is_active:
        # Switched off: only a form we showed before (its signed state) still brings its lead in.
        raise Http404("No such page.")
    tampered = loaded is None
    state = loaded or {"started": None, "click_id": "", "answers": {}}
    questions = list(page.questions.all()) if page.kind == LandingPage.Kind.QUIZ else []
    try:
        step = min(max(int(request.POST.get("step", len(questions))), 0), len(questions))
    except ValueError:
        step = len(questions)
    if not tampered:
        # The step field is the visitor's to edit; no step past the first question our signed state has no answer for.
        # (Without a valid state there is nothing to check against; such a lead is flagged too fast instead.)
        unanswered = [index for index, question in enumerate(questions) if question.key not in state["answers"]]
        step = min([step, *unanswered])
    if step < len(questions):
        answer_form = QuizAnswerForm(request.POST, question=questions[step])
        if not answer_form.is_valid():
            return _show_step(request, page, state, step=step, country=country, form=answer_form, status=400)
        state["answers"][questions[step].key] = answer_form.answer()
        return _show_step(request, page, state, step=step + 1, country=country)

    form = LeadForm(request.POST, page=page, default_country=country, visitor_country=_visitor_country(request))
    if not form.is_valid():
        return _show_step(request, page, state, step=step, country=country, form=form, status=400)
    return _capture(request, page, form, state, step=step, tampered=tampered)


def _show_step(request, page, state, *, step, country, form=None, status=200):
    questions = list(page.questions.all()) if page.kind == LandingPage.Kind.QUIZ else []
    if step >= len(questions):
        # The consent certificate quotes the form as this visitor saw it, even if the page is edited
        # before they send it: the text, its version and when it was shown travel in the signed state.
        state["shown"] = {"text": page.consent_text, "version": page.consent_version, "at": time.time()}
    token = dump_state(state)
    if step < len(questions):
        form = form or QuizAnswerForm(question=questions[step])
        template = "landing/quiz_step.html"
    else:
        form = form or LeadForm(page=page, default_country=country)
        template = "landing/form.html"
    form.initial["state"] = token
    if form.is_bound:
        # A re-shown form keeps what the visitor typed but carries the current state.
        form.data = form.data.copy()
        form.data["state"] = token
    return _render(
        request,
        page,
        template,
        status=status,
        form=form,
        step=step,
        steps=len(questions) + 1,
        question_count=len(questions),
    )


def _capture(request, page, form, state, *, step: int, tampered: bool):
    data = {
        name: value for name, value in form.cleaned_data.items() if name not in ("state", HONEYPOT_FIELD, "consent")
    }
    data.update(
        {
            "consent": bool(form.cleaned_data.get("consent")),
            "click_id": state.get("click_id", ""),
            "answers": state.get("answers", {}),
        }
    )
    try:
        submission = parse_submission(data)
    except SubmissionError as error:
        for name, messages in error.errors.items():
            form.add_error(None if name not in form.fields else name, " ".join(messages))
        return _show_step(request, page, state, step=step, country=form.default_country, form=form, status=400)
    started = state.get("started")
    answered = [f"answers.{key}" for key, answer in state.get("answers", {}).items() if _was_sent(answer)]
    context = CaptureContext(
        door=Door.QUIZ if page.kind == LandingPage.Kind.QUIZ else Door.LANDING_PAGE,
        landing_page=page,
        ip=client_ip(request),
        user_agent=request.headers.get("User-Agent", "")[:1000],
        request_country=form.visitor_country,
        phone_country=form.phone_country,
        # A missing or forged state token counts as instant: the form was never shown by us.
        form_seconds=0.0 if tampered or not started else time.time() - float(started),
        replayed_form=not tampered and state_used(state),
        honeypot=form.cleaned_data.get(HONEYPOT_FIELD, ""),
        consent_shown=None if tampered else _consent_shown(state, page),
        fields_submitted=tuple(
            [
                name
                for name, value in form.cleaned_data.items()
                if name not in ("state", HONEYPOT_FIELD) and _was_sent(value)
            ]
            + answered
        ),
    )
    lead_capture(campaign=page.campaign, submission=submission, context=context)
    state_mark_used(state)  # after the lead is stored: a failed save leaves the form to be sent again
    return HttpResponseRedirect(page.thank_you_url or f"{page.get_absolute_url()}thanks/")


def _consent_shown(state: dict, page: LandingPage) -> ConsentShown:
    """What the signed state says the form showed. A state signed before it said so (open forms at a
    release) has only the funnel's start time; the page's current text stands in for it."""
    shown = state.get("shown")
    if not isinstance(shown, dict):
        shown = {"text": page.consent_text, "version": page.consent_version, "at": state.get("started")}
    at = shown.get("at")
    return ConsentShown(
        text=str(shown.get("text", "")),
        version=str(shown.get("version", "")),
        shown_at=datetime.datetime.fromtimestamp(float(at), tz=datetime.UTC) if at else None,
    )


def _was_sent(value: object) -> bool:
    """A field the visitor sent a value in (0 counts; an empty field or an unticked box does not)."""
    return value is not None and value is not False and value != "" and value != []


@require_safe
def thank_you(request, slug: str):
    page = get_object_or_404(LandingPage.objects.select_related("campaign__offer"), slug=slug)
    return _render(request, page, "landing/thanks.html")
