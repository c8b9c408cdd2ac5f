"""The API schema tells the truth: schemathesis runs every operation of /api/schema/ with all its
checks (documented status codes and headers, response bodies that match their schema, valid data
accepted and invalid data refused, auth enforced), as a supplier, a buyer and a staff member.

The coverage phase (each parameter's boundary and invalid values: about a hundred cases an operation)
runs as the two partners, whose limit of a million requests a minute lets every case reach the views,
and only on the operations the partner's scopes allow: on the others every case met the same 403
(the fuzzing still shows each of them refused). Staff run the examples and the fuzzing only: a staff
user's limit is 600 requests a minute, so past the 600th case their coverage phase met nothing but
429s, and the views' validation is the same for them."""

import copy
import re
import uuid
from datetime import date, timedelta
from types import SimpleNamespace

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, transaction
from django.urls import resolve
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis.strategies._internal import regex as hypothesis_regex
from schemathesis.config import OperationConfig

from campaigns.tests.factories import CampaignFactory, OfferFactory
from leadcrm.staff_login.tokens import staff_token_create
from leadcrm.wsgi import application
from leads.models import ApiScope, Partner
from leads.services.idempotency import MAX_KEY_LENGTH
from leads.services.partners import api_key_create
from leads.services.submission import MAP_NAME_LENGTH
from leads.tests.factories import LeadFactory, delivered
from reporting.selectors.reports import EARLIEST_DAY, LATEST_DAY

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

# Each role gets the scopes its kind of partner is given in practice, so it also meets the 403s of
# the others' endpoints (a buyer posting a lead, a supplier reporting an outcome).
ROLE_SCOPES = {
    Partner.Role.SUPPLIER: [ApiScope.LEADS_WRITE, ApiScope.LEADS_READ, ApiScope.CAMPAIGNS_READ, ApiScope.REPORTS_READ],
    Partner.Role.BUYER: [
        ApiScope.LEADS_READ,
        ApiScope.OUTCOMES_WRITE,
        ApiScope.REPORTS_READ,
        ApiScope.SUPPRESSION_WRITE,
    ],
}


@pytest.fixture(scope="module")
def wsgi_app():
    # As Django's test client does: the end of a request must not close the connection that holds
    # the test's transaction (close_old_connections drops a connection left outside autocommit).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield application
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture(scope="module")
def loaded_schema(django_db_setup, django_db_blocker, wsgi_app):
    """The schema as the API serves it, fetched once for the module's three roles (it names no rows);
    whatever the request wrote is rolled back, as in a test."""
    with django_db_blocker.unblock(), transaction.atomic():
        schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", wsgi_app)
        transaction.set_rollback(True)
    return schema


def _without_coverage(schema, *, unless_in_scopes=None):
    """A copy of the schema whose coverage phase skips every operation, or each one whose scope is not
    among `unless_in_scopes`."""
    schema = schema.clone()
    schema.config = copy.deepcopy(schema.config)
    if unless_in_scopes is None:
        schema.config.phases.coverage.enabled = False
        return schema
    for result in schema.get_all_operations():
        operation = result.ok()
        scope = _required_scope(operation.method.upper(), operation.path)
        if scope is not None and scope not in unless_in_scopes:
            schema.config.operations.operations.append(
                OperationConfig.from_dict({"include-name": operation.label, "phases": {"coverage": {"enabled": False}}})
            )
    return schema


def _required_scope(method: str, path: str):
    """The scope the view behind an operation asks of a key (leads.api.permissions.HasScope), if any."""
    view = resolve(path.replace("{lead_id}", str(uuid.uuid4()))).func.view_class
    scopes = getattr(view, "required_scopes", None) or {}
    return scopes.get(method, getattr(view, "required_scope", None))


@pytest.fixture(scope="module")
def supplier_schema(loaded_schema):
    return _without_coverage(loaded_schema, unless_in_scopes=ROLE_SCOPES[Partner.Role.SUPPLIER])


@pytest.fixture(scope="module")
def buyer_schema(loaded_schema):
    return _without_coverage(loaded_schema, unless_in_scopes=ROLE_SCOPES[Partner.Role.BUYER])


@pytest.fixture(scope="module")
def staff_schema(loaded_schema):
    return _without_coverage(loaded_schema)


@pytest.fixture
def api_schema_as_supplier(db, wsgi_app, supplier_schema):
    return supplier_schema


@pytest.fixture
def api_schema_as_buyer(db, wsgi_app, buyer_schema):
    return buyer_schema


@pytest.fixture
def api_schema_as_staff(db, wsgi_app, staff_schema):
    return staff_schema


@pytest.fixture
def world(db):
    """One offer bought by one advertiser, a campaign a supplier posts to, a lead the supplier sent
    and a lead sold to the buyer."""
    offer = OfferFactory(return_window_days=7, currency="USD")
    campaign = CampaignFactory(offer=offer, slug="schema-campaign")
    supplier = Partner.objects.create(name="Schema supplier", role=Partner.Role.SUPPLIER, rate_limit_per_minute=10**6)
    supplier.campaigns.add(campaign)
    buyer = Partner.objects.create(
        name="Schema buyer", role=Partner.Role.BUYER, advertiser=offer.advertiser, rate_limit_per_minute=10**6
    )
    own = LeadFactory(campaign=campaign, partner=supplier, click_id="schema-click")
    sold = LeadFactory(campaign=campaign, partner=supplier, created_at=timezone.now() - timedelta(hours=1))
    delivered(sold, advertiser=offer.advertiser)
    return SimpleNamespace(campaign=campaign, supplier=supplier, buyer=buyer, own=own, sold=sold)


def _caller(world, role: str, *, staff_user=None) -> SimpleNamespace:
    """The Authorization header of one role, and the lead its cases aim at."""
    if staff_user is not None:
        _, token = staff_token_create(user=staff_user)
        return SimpleNamespace(headers={"Authorization": f"Token {token}"}, lead=world.sold, world=world)
    partner = getattr(world, role)
    _, raw_key = api_key_create(partner=partner, scopes=list(ROLE_SCOPES[partner.role]))
    lead = world.own if role == "supplier" else world.sold
    return SimpleNamespace(headers={"Authorization": f"Api-Key {raw_key}"}, lead=lead, world=world)


@pytest.fixture
def supplier(world):
    return _caller(world, "supplier")


@pytest.fixture
def buyer(world):
    return _caller(world, "buyer")


@pytest.fixture
def staff(world, staff_user_in):
    return _caller(world, "staff", staff_user=staff_user_in("Managers"))


def aim_at_real_objects(case, caller) -> None:
    """Random UUIDs and slugs only reach the 404 and unknown-campaign paths: use the caller's own, so
    the cases get through to the pipeline and the outcome service. Other fields stay as generated.

    Three rules OpenAPI 3.0 cannot state, which the descriptions do: a period's date_to is not
    before its date_from and at most 366 days after it (moved into the period when it is not); an
    Idempotency-Key is used for one body only (each case gets a key of its own: the same key with
    another body is a 422, tested in leads/tests/test_api_access.py); and the names in `answers` and
    `sub_ids` hold no NUL and at most MAP_NAME_LENGTH characters (a schema object cannot constrain its
    property names before OpenAPI 3.1; such names are refused, tested in test_api_access.py)."""
    # Only values the schema calls valid are replaced: a negative case keeps the value that makes it one.
    query = case.query if case.query is not None else {}
    days = [_day(query.get(name)) for name in ("date_from", "date_to")]
    if all(day is not None and EARLIEST_DAY <= day <= LATEST_DAY for day in days):
        first, last = days
        query["date_to"] = min(max(last, first), first + timedelta(days=366)).isoformat()
    headers = case.headers if case.headers is not None else {}
    key = headers.get("Idempotency-Key")
    if isinstance(key, str) and key.strip() and len(key) <= MAX_KEY_LENGTH:
        headers["Idempotency-Key"] = f"case-{uuid.uuid4()}"
    if _uuid(case.path_parameters.get("lead_id") if case.path_parameters else None):
        case.path_parameters["lead_id"] = str(caller.lead.public_id)
    if case.method == "POST" and case.path in ("/api/v1/leads/", "/api/v1/leads/batch/", "/api/v1/ping/"):
        body = case.body if isinstance(case.body, dict) else {}
        items = [body, *(body.get("leads") if isinstance(body.get("leads"), list) else [])]
        for item in items:
            if isinstance(item, dict) and isinstance(item.get("campaign"), str) and SLUG.fullmatch(item["campaign"]):
                item["campaign"] = caller.world.campaign.slug
            for name in ("answers", "sub_ids"):
                if isinstance(item, dict) and isinstance(item.get(name), dict):
                    item[name] = {key.replace("\x00", "")[:MAP_NAME_LENGTH]: value for key, value in item[name].items()}


SLUG = re.compile(r"[-a-zA-Z0-9_]{1,80}")


def _uuid(value):
    try:
        return uuid.UUID(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _day(value):
    try:
        return date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


api_as_supplier = schemathesis.pytest.from_fixture("api_schema_as_supplier")
api_as_buyer = schemathesis.pytest.from_fixture("api_schema_as_buyer")
api_as_staff = schemathesis.pytest.from_fixture("api_schema_as_staff")


@pytest.fixture(scope="module", autouse=True)
def _regex_strategies_built_once():
    """Hypothesis builds the strategy for a `pattern` each time schemathesis asks for one, character by
    character through each class: for the contact fields' pattern (every printable character,
    leads/api/serializers.py) that is a third of a second, asked about 20 times per role. A strategy is
    an immutable description of values, so the module reuses the one built for the same pattern."""
    build = hypothesis_regex.regex_strategy
    built = {}

    def build_once(regex, fullmatch, *, alphabet, **options):
        compiled = regex if isinstance(regex, re.Pattern) else re.compile(regex)
        key = (compiled.pattern, compiled.flags, fullmatch, repr(alphabet), tuple(sorted(options.items())))
        if key not in built:
            built[key] = build(regex, fullmatch, alphabet=alphabet, **options)
        return built[key]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(hypothesis_regex, "regex_strategy", build_once)
        yield


# Bounded: a few examples per operation, the same ones every run.
FUZZ = settings(
    max_examples=15,
    derandomize=True,
    deadline=None,
    database=None,  # no example files in the repository
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def call_and_validate(case, caller) -> None:
    aim_at_real_objects(case, caller)
    # Each case in a savepoint: on PostgreSQL a failed query would abort the test's transaction and
    # every later case would fail for that reason, hiding the case that broke it.
    with transaction.atomic():
        case.call_and_validate(headers=caller.headers)


@api_as_supplier.parametrize()
@FUZZ
def test_a_supplier_gets_the_answers_the_schema_promises(case, supplier):
    call_and_validate(case, supplier)


@api_as_buyer.parametrize()
@FUZZ
def test_a_buyer_gets_the_answers_the_schema_promises(case, buyer):
    call_and_validate(case, buyer)


@api_as_staff.parametrize()
@FUZZ
def test_staff_get_the_answers_the_schema_promises(case, staff):
    call_and_validate(case, staff)
