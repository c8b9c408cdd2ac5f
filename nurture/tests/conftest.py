"""Fixtures for the nurture engine: the real capture pipeline, a real SMTP server, flows, ticks."""

import asyncio
import email
import email.policy
import html
import re
import socket
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from django.utils import timezone

from campaigns.tests.factories import CampaignFactory, LandingPageFactory
from leads.services import CaptureContext, lead_capture, parse_submission
from nurture.models import Flow, FlowStep
from nurture.services.engine import nurture_tick


@pytest.fixture(autouse=True)
def _nurture_settings(settings):
    """No quiet hours and the default 24 h cap unless a test says otherwise."""
    settings.NURTURE_QUIET_HOURS = "00:00-00:00"  # an empty window: never quiet
    settings.NURTURE_EMAIL_MIN_HOURS = 24
    settings.NURTURE_DEFAULT_TIME_ZONE = "UTC"
    settings.SITE_URL = "http://testserver"


# --- the lead pipeline ------------------------------------------------------------------------
@pytest.fixture
def campaign(db):
    campaign = CampaignFactory(slug="solar-us", offer__name="Solar quote")
    LandingPageFactory(campaign=campaign, slug="solar-form", action="quote")
    return campaign


@pytest.fixture
def capture(campaign, django_capture_on_commit_callbacks):
    """Run the real pipeline and its after-commit follow-ups (nurture enrollment among them)."""

    def run(*, campaign_=None, door="api", context=None, **data):
        data.setdefault("action", "quote")
        data.setdefault("country", "US")
        data.setdefault(
            "consent", True
        )  # flows email only leads with marketing consent: say consent=False to test that
        with django_capture_on_commit_callbacks(execute=True):
            result = lead_capture(
                campaign=campaign_ or campaign,
                submission=parse_submission(data),
                context=CaptureContext(door=door, **(context or {})),
            )
        result.lead.refresh_from_db()
        return result.lead

    return run


# --- flows ------------------------------------------------------------------------------------
def email_step(n: int = 1, **extra) -> dict:
    return {
        "kind": FlowStep.Kind.EMAIL,
        "subject": f"Email {n} for {{{{ lead.first_name }}}}",
        "body_text": f"Hello {{{{ lead.first_name }}}}, this is email {n}. See https://example.com/solar",
        "body_html": (
            f"<p>Hello {{{{ lead.first_name }}}}, this is email {n}.</p>"
            f'<p><a href="https://example.com/solar/{n}">See the plans</a></p>'
        ),
        **extra,
    }


def wait_step(*, days: float = 0, hours: float = 0, minutes: int = 0, **extra) -> dict:
    return {"kind": FlowStep.Kind.WAIT, "wait_minutes": int(days * 1440 + hours * 60 + minutes), **extra}


@pytest.fixture
def make_flow(db):
    """make_flow(step dicts..., name=..., **flow fields) -> an active flow triggered on capture."""
    counter = iter(range(1, 10_000))

    def make(*steps: dict, offers=(), campaigns=(), **fields) -> Flow:
        fields.setdefault("name", f"Flow {next(counter)}")
        fields.setdefault("status", Flow.Status.ACTIVE)
        fields.setdefault("trigger", Flow.Trigger.CAPTURED)
        flow = Flow.objects.create(**fields)
        flow.offers.set(offers)
        flow.campaigns.set(campaigns)
        for position, step in enumerate(steps):
            step = {"position": position * 10, **step}
            instance = FlowStep(flow=flow, **step)
            instance.full_clean(exclude=["flow"])
            instance.save()
        return flow

    return make


@pytest.fixture
def tick(django_capture_on_commit_callbacks):
    """tick(now) runs the engine at that moment, and the outbox sends what it queued."""

    def run(now, **kwargs) -> int:
        with django_capture_on_commit_callbacks(execute=True):
            return nurture_tick(now=now, **kwargs)

    return run


@pytest.fixture
def start():
    """The first tick's moment: a minute ahead, so leads enrolled during the test are due by then."""
    return timezone.now() + timedelta(minutes=1)


# --- a real SMTP server -----------------------------------------------------------------------
@dataclass
class Mailbox:
    """What the SMTP server received. refuse_rcpt / refuse_mail make it answer RCPT TO / MAIL FROM
    with that reply; reject_login makes it refuse any AUTH (535)."""

    envelopes: list = field(default_factory=list)
    refuse_rcpt: str | None = None
    refuse_mail: str | None = None
    reject_login: bool = False
    connections: int = 0  # SMTP sessions opened (each starts with EHLO)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self.connections += 1
        session.host_name = hostname
        return responses

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        return AuthResult(success=not self.reject_login, handled=False)

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.refuse_mail:
            return self.refuse_mail
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.refuse_rcpt:
            return self.refuse_rcpt
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    @property
    def messages(self) -> list:
        return [email.message_from_bytes(e.content, policy=email.policy.default) for e in self.envelopes]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp(settings):
    """A real SMTP server on localhost (aiosmtpd) that Django's SMTP backend sends to."""
    mailbox = Mailbox()
    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=_free_port(),
        loop=asyncio.new_event_loop(),
        authenticator=mailbox.authenticate,
        auth_require_tls=False,  # plain AUTH on localhost, for the login-failure test
    )
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", controller.port
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 10
    yield mailbox
    controller.stop()
    controller.loop.close()


# --- reading a received message ----------------------------------------------------------------
def parts(message) -> tuple[str, str]:
    """(text, html) of a received multipart message."""
    text = message.get_body(preferencelist=("plain",)).get_content()
    body = message.get_body(preferencelist=("html",)).get_content()
    return text, body


def link_path(url: str) -> str:
    """The path of one of our absolute links, for the test client."""
    return urlsplit(url.strip()).path


def tracked_links(body_html: str) -> list[str]:
    return [html.unescape(url) for url in re.findall(r'href="([^"]*/n/c/[^"]+)"', body_html)]


def open_pixel(body_html: str) -> str:
    return html.unescape(re.search(r'<img src="([^"]*/n/o/[^"]+)"', body_html).group(1))


def unsubscribe_link(message) -> str:
    return re.sub(r"\s+", "", str(message["List-Unsubscribe"])).strip("<>")
