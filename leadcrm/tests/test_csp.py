"""Every kind of page goes out with the Content-Security-Policy, its own nonce, and nothing inline
that the policy would refuse. leadcrm/tests/test_browser.py shows the pages working under it."""

import re
from html.parser import HTMLParser
from importlib.metadata import version
from pathlib import Path

import pytest
from django.apps import apps
from django.contrib import admin
from django.urls import reverse

from campaigns.tests.factories import CampaignFactory, ClickFactory, LandingPageFactory, QuizQuestionFactory
from leads.services.consent import consent_certificate_create
from leads.tests.factories import LeadFactory
from nurture.models import Flow, FlowStep
from nurture.services.tracking import unsubscribe_url

pytestmark = pytest.mark.django_db

BASE_DIR = Path(__file__).resolve().parents[2]

# Sources a page may load from: keywords, its nonce, and data: images (icons inside the style sheets).
ALLOWED_SOURCES = {"'self'", "'none'", "data:"}


def policy_of(response) -> dict[str, list[str]]:
    assert "Content-Security-Policy-Report-Only" not in response, "the policy must be enforced, not reported"
    header = response.get("Content-Security-Policy")
    assert header, f"no Content-Security-Policy on {response.request['PATH_INFO']}"
    directives = {}
    for part in header.split(";"):
        name, *sources = part.split()
        directives[name] = sources
    return directives


class InlineParts(HTMLParser):
    """What a page holds that a policy judges inline: scripts and styles without a src, their nonces,
    style and event-handler attributes, and the addresses of scripts, styles and images it loads."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.inline: list[tuple[str, str | None]] = []  # (tag, nonce)
        self.attributes: list[str] = []  # style="..." or on...="..."
        self.loaded: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        data_only = values.get("type") in ("application/json", "application/ld+json")
        if tag == "style" or (tag == "script" and not values.get("src") and not data_only):
            self.inline.append((tag, values.get("nonce")))
        for name, value in attrs:
            if name == "style" or name.startswith("on"):
                self.attributes.append(f"<{tag} {name}>")
            # Alpine writes a bound string as a style attribute (refused); an object it sets through CSSOM.
            if name in ("x-bind:style", ":style") and not (value or "").lstrip().startswith("{"):
                self.attributes.append(f"<{tag} {name}={value!r}>")
        for name in ("src", "href"):
            if values.get(name) and (tag in ("script", "img", "iframe") or (tag == "link" and name == "href")):
                self.loaded.append(values[name] or "")


def assert_strict_policy_with_nonce(response, *, inline_expected: bool) -> str:
    """The enforced policy, strict, with this response's nonce on every inline script and style."""
    assert response.status_code == 200, response.status_code
    policy = policy_of(response)
    nonces = {source for source in policy["script-src"] if source.startswith("'nonce-")}
    assert len(nonces) == 1, policy["script-src"]
    nonce_source = nonces.pop()
    nonce = nonce_source.removeprefix("'nonce-").removesuffix("'")
    assert policy["script-src"] == ["'self'", nonce_source]
    assert policy["style-src"] == ["'self'", nonce_source]
    assert policy["default-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"] and policy["base-uri"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"] and policy["form-action"] == ["'self'"]
    everything = [source for sources in policy.values() for source in sources]
    assert not [source for source in everything if source not in ALLOWED_SOURCES and source != nonce_source], (
        "another host or an 'unsafe-...' relaxation in the policy"
    )

    page = InlineParts()
    page.feed(response.content.decode())
    assert page.attributes == [], (response.request["PATH_INFO"], page.attributes)  # run only with 'unsafe-inline'
    assert all(found == nonce for _tag, found in page.inline), (response.request["PATH_INFO"], page.inline)
    if inline_expected:
        assert page.inline, "the page's inline script or style was expected here"
    # Nothing from another host (a scheme-relative //host counts).
    outside = [address for address in page.loaded if re.match(r"^(\w+:)?//", address)]
    assert outside == [], outside
    return nonce


@pytest.fixture
def staff(client, superuser):
    client.force_login(superuser)
    return client


def test_an_admin_list_has_the_policy_and_a_nonce_on_its_inline_style(staff):
    LeadFactory()
    response = staff.get(reverse("admin:leads_lead_changelist"))
    assert_strict_policy_with_nonce(response, inline_expected=True)
    assert b"alpine-csp" in response.content  # the admin runs Alpine's CSP build, which needs no eval


def test_an_admin_change_form_has_the_policy_and_a_nonce(staff):
    campaign = CampaignFactory()
    response = staff.get(reverse("admin:campaigns_campaign_change", args=[campaign.pk]))
    assert_strict_policy_with_nonce(response, inline_expected=True)
    assert b'x-bind:action="changeFormAction()"' in response.content


def test_read_only_json_shows_as_indented_text_without_style_attributes(staff):
    # Unfold colours read-only JSON with Pygments' style attributes (installed here, as in development).
    lead = LeadFactory(sub_ids={"zone": "zone-77", "sub1": "banner-b"})
    click = ClickFactory(sub_ids={"zone": "zone-12"}, off_target_reasons=["country"])
    for url in (
        reverse("admin:leads_lead_change", args=[lead.pk]),
        reverse("admin:campaigns_click_change", args=[click.pk]),
    ):
        response = staff.get(url)
        assert_strict_policy_with_nonce(response, inline_expected=True)
        assert b'<pre class="lc-json">{\n  &quot;' in response.content
    assert b"&quot;zone&quot;: &quot;zone-12&quot;" in response.content and b"&quot;country&quot;" in response.content


def registered_models():
    return [model for model in apps.get_models() if admin.site.is_registered(model)]


def test_every_admin_list_and_add_form_has_the_policy_and_nothing_inline_without_the_nonce(staff):
    lists = add_forms = 0
    for model in registered_models():
        name = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        assert_strict_policy_with_nonce(staff.get(reverse(f"{name}_changelist")), inline_expected=True)
        lists += 1
        # Some rows only services make (no add form: 403) or come from an upload page (a redirect).
        add_form = staff.get(reverse(f"{name}_add"))
        if add_form.status_code == 200:
            assert_strict_policy_with_nonce(add_form, inline_expected=True)
            add_forms += 1
    assert lists > 20 and add_forms > 10, (lists, add_forms)


def test_an_email_preview_frames_the_email_as_a_document_with_its_own_narrow_policy(staff):
    flow = Flow.objects.create(name="Webinar reminder", trigger=Flow.Trigger.CAPTURED)
    step = FlowStep.objects.create(
        flow=flow,
        kind=FlowStep.Kind.EMAIL,
        subject="Your seat",
        body_text="See you there.",
        body_html='<p style="color: #0b6bcb">See you there, {{ lead.first_name }}.</p>',
    )
    page = staff.get(reverse("admin:nurture_flow_preview", args=[flow.pk, step.pk]))
    assert_strict_policy_with_nonce(page, inline_expected=True)  # the page itself: no srcdoc email in it
    email_url = reverse("admin:nurture_flow_preview_email", args=[flow.pk, step.pk])
    assert f'<iframe sandbox src="{email_url}"'.encode() in page.content

    email = staff.get(email_url)
    assert email.status_code == 200 and b'<p style="color: #0b6bcb">See you there,' in email.content
    policy = policy_of(email)
    # Emails are styled inline; nothing else is allowed: no script, nothing from another host.
    assert policy["style-src"] == ["'unsafe-inline'"] and policy["script-src"] == ["'none'"]
    assert policy["default-src"] == ["'none'"] and policy["img-src"] == ["'self'", "data:"]
    assert policy["frame-ancestors"] == ["'self'"] and email["X-Frame-Options"] == "SAMEORIGIN"


def test_each_response_has_a_nonce_of_its_own(staff):
    first = assert_strict_policy_with_nonce(staff.get(reverse("admin:index")), inline_expected=True)
    second = assert_strict_policy_with_nonce(staff.get(reverse("admin:index")), inline_expected=True)
    assert first != second and len(first) >= 22  # 16 random bytes, base64


def test_the_login_page_has_the_policy(client):
    assert_strict_policy_with_nonce(client.get(reverse("admin:login")), inline_expected=True)


def test_the_two_factor_set_up_page_with_its_qr_code_has_the_policy(client, settings, staff_user_in):
    settings.REQUIRE_STAFF_2FA = True
    client.force_login(staff_user_in(None))
    response = client.get(reverse("two-factor-setup"))
    assert_strict_policy_with_nonce(response, inline_expected=True)
    assert b'aria-label="QR code"' in response.content


def test_a_landing_page_has_the_policy_and_nothing_inline(client):
    page = LandingPageFactory(headline="Get your solar quote")
    response = client.get(reverse("landing-page", args=[page.slug]))
    assert_strict_policy_with_nonce(response, inline_expected=False)
    assert b"Get your solar quote" in response.content and b"leadcrm/landing.css" in response.content


def test_a_quiz_step_has_the_policy_and_nothing_inline(client):
    question = QuizQuestionFactory(text="When would you like to start?")
    response = client.get(reverse("landing-page", args=[question.landing_page.slug]))
    assert_strict_policy_with_nonce(response, inline_expected=False)
    assert b"When would you like to start?" in response.content


def test_a_consent_certificate_page_has_the_policy_and_nothing_inline(client):
    lead = LeadFactory()
    consent_certificate_create(
        lead=lead,
        page=LandingPageFactory(consent_text="I agree to be called."),
        shown=None,
        consent_given=True,
        fields_submitted=["email"],
        ip="192.0.2.1",
        user_agent="Mozilla/5.0",
    )
    lead.save()
    response = client.get(reverse("consent-certificate", args=[lead.consent_certificate_id]))
    assert_strict_policy_with_nonce(response, inline_expected=False)
    assert b"Verified" in response.content


def test_the_custom_admin_pages_of_access_requests_and_logs_have_the_policy(staff):
    for url in (reverse("access-request"), "/admin/audit/accesslogentry/", "/admin/auditlog/logentry/"):
        assert_strict_policy_with_nonce(staff.get(url), inline_expected=True)


def test_the_privacy_page_has_the_policy(client):
    assert_strict_policy_with_nonce(client.get(reverse("privacy-policy")), inline_expected=False)


def test_the_unsubscribe_link_page_has_the_policy_and_nothing_inline(client):
    response = client.get(unsubscribe_url(1).removeprefix("http://testserver"))
    assert_strict_policy_with_nonce(response, inline_expected=False)
    assert b"Unsubscribe?" in response.content


def test_the_api_docs_have_the_policy_and_start_swagger_from_a_script_file(staff):
    response = staff.get(reverse("api-docs"))
    assert_strict_policy_with_nonce(response, inline_expected=True)
    page = InlineParts()
    page.feed(response.content.decode())
    assert [tag for tag, _nonce in page.inline] == ["style"], "Swagger UI starts from a file, not inline"
    script = next(address for address in page.loaded if "script" in address.split("?")[-1])
    started = staff.get(script)
    assert started.status_code == 200 and started["Content-Type"].startswith("application/javascript")
    assert b"SwaggerUIBundle" in started.content
    assert b'"validatorUrl": null' in started.content  # no badge from validator.swagger.io


def test_report_only_mode_is_off_unless_asked_for(settings):
    assert settings.CONTENT_SECURITY_POLICY["DIRECTIVES"]["script-src"]
    assert not hasattr(settings, "CONTENT_SECURITY_POLICY_REPORT_ONLY")


def test_the_unfold_templates_copied_for_the_policy_are_from_the_installed_unfold():
    # templates/ holds copies of a few Unfold templates, changed to run under the policy (each says
    # what changed). Upgrading Unfold: compare each with the new version's, then update this number.
    copies = [path for path in (BASE_DIR / "templates").rglob("*.html") if "django-unfold 0.91.0" in path.read_text()]
    assert len(copies) == 6, copies
    assert version("django-unfold") == "0.91.0"
