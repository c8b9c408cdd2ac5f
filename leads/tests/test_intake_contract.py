"""One lead contract: what the API's schema publishes is what parse_submission checks, field by field
and limit by limit, and the API answers a bad lead with parse_submission's own messages."""

import json
import re
import uuid

import pytest
from django.urls import reverse

from leads.models import Lead
from leads.services.submission import (
    SUBMISSION_FIELDS,
    FieldKind,
    SubmissionError,
    parse_submission,
)

pytestmark = pytest.mark.django_db

CONTACT = {"email": "jo@example.com"}


@pytest.fixture
def published(staff_client) -> dict:
    """The lead's request body as /api/schema/ publishes it."""
    schema = staff_client.get(reverse("api-schema"), {"format": "json"}).json()
    request = schema["paths"]["/api/v1/leads/"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    return schema["components"]["schemas"][request["$ref"].rsplit("/", 1)[-1]]


def errors_of(data: dict) -> dict[str, list[str]]:
    """parse_submission's field errors for `data` as the API would send it ({} if it passes)."""
    try:
        parse_submission({**CONTACT, **data}, door_fields={"campaign"})
    except SubmissionError as error:
        return error.errors
    return {}


def too_long(limit: int) -> list[str]:
    return [f"Ensure this field has no more than {limit} characters."]


def test_the_schema_lists_exactly_the_fields_parse_submission_reads(published):
    assert list(published["properties"]) == ["campaign", *(spec.name for spec in SUBMISSION_FIELDS)]
    assert published["required"] == ["campaign"]
    assert errors_of({"favourite_colour": "blue"}) == {"favourite_colour": ["Unknown field."]}


def of_type(field: dict, kind: str) -> dict:
    """The branch of a published field (a JSON type, or one of its anyOf) that has the JSON type `kind`."""
    if field.get("type") == kind:
        return field
    return next(of_type(branch, kind) for branch in field.get("anyOf", []) if kind in str(branch))


@pytest.mark.parametrize("spec", SUBMISSION_FIELDS, ids=lambda spec: spec.name)
def test_parse_submission_enforces_each_limit_the_schema_publishes(published, spec):
    """Read from the schema, checked against the parser: a change to either side alone fails here."""
    field = published["properties"][spec.name]
    name = spec.name
    if spec.kind == FieldKind.TEXT:
        limit = of_type(field, "string")["maxLength"]
        assert errors_of({name: "a" * limit}) == {}
        assert errors_of({name: "a" * (limit + 1)}) == {name: too_long(limit)}
        assert errors_of({name: "a\x00"}) == {name: ["Null characters are not allowed."]}
        number = of_type(field, "integer")  # a whole number is taken as its text, if the text fits
        assert errors_of({name: number["maximum"]}) == errors_of({name: number["minimum"]}) == {}
        assert set(errors_of({name: number["maximum"] + 1})) == set(errors_of({name: number["minimum"] - 1})) == {name}
        assert set(errors_of({name: 1.5})) == {name}  # a fraction is not what a text field holds
    elif spec.kind == FieldKind.IP_ADDRESS:
        assert {branch.get("format") for branch in field["anyOf"]} == {None, "ipv4", "ipv6"}
        assert errors_of({name: "2001:db8::1"}) == errors_of({name: "192.0.2.1"}) == errors_of({name: ""}) == {}
        assert errors_of({name: "not an address"}) == {name: ["Enter a valid IPv4 or IPv6 address."]}
    elif spec.kind == FieldKind.UUID:
        assert of_type(field, "string") and "'format': 'uuid'" in str(field)
        assert errors_of({name: str(uuid.uuid4())}) == errors_of({name: ""}) == {}
        assert errors_of({name: "not-an-id"}) == {name: ["Not an id we gave out (a UUID)."]}
    elif spec.kind == FieldKind.WHOLE_NUMBER:
        number = of_type(field, "integer")
        assert number["minimum"] == 0
        assert errors_of({name: number["maximum"]}) == {}
        assert set(errors_of({name: number["maximum"] + 1})) == set(errors_of({name: -1})) == {name}
    elif spec.kind == FieldKind.AMOUNT:
        pattern = of_type(field, "string")["pattern"]
        whole, places = (int(digits) for digits in re.findall(r"\{1,(\d+)\}", pattern))
        assert errors_of({name: f"{'9' * whole}.{'9' * places}"}) == {}
        assert set(errors_of({name: "1" + "0" * whole})) == {name}
        assert errors_of({name: of_type(field, "number")["maximum"]}) == {}
    elif spec.kind == FieldKind.YES_NO:
        assert of_type(field, "boolean")
        words = re.compile(of_type(field, "string")["pattern"])
        assert words.match("No") and words.match(" yes ") and not words.match("maybe")
        assert errors_of({name: True}) == errors_of({name: "No"}) == errors_of({name: 1}) == {}
        assert set(errors_of({name: "maybe"})) == {name}
    else:
        published_map = of_type(field, "object")
        entries, value = published_map["maxProperties"], published_map["additionalProperties"]
        limit = of_type(value, "string")["maxLength"]
        assert errors_of({name: {f"k{index}": "v" for index in range(entries)}}) == {}
        assert errors_of({name: {f"k{index}": "v" for index in range(entries + 1)}}) == {
            name: [f"At most {entries} entries."]
        }
        assert errors_of({name: {"k": "a" * limit}}) == {}
        assert errors_of({name: {"k": "a" * (limit + 1)}}) == {name: too_long(limit)}
        lists_published = "array" in str(value)
        assert (errors_of({name: {"k": ["a", "b"]}}) == {}) is lists_published


@pytest.mark.parametrize(
    "fields",
    [
        {"first_name": "A" * 101},
        {"sub_ids": {"sub1": "z" * 256}},
        {"email": "jo\x00@example.com"},
        {"company_size": "many", "colour": "blue"},
    ],
    ids=["over-long name", "over-long sub id", "NUL", "a bad value and an unknown field"],
)
def test_a_bad_field_gets_parse_submissions_message_through_the_api(staff_client, campaign, fields):
    expected = errors_of(fields)
    assert expected  # the parser refuses it

    response = staff_client.post("/api/v1/leads/", {"campaign": campaign.slug, **CONTACT, **fields}, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "error": {"code": "invalid", "message": "The lead has invalid fields; nothing was stored.", "fields": expected}
    }
    assert not Lead.objects.exists()


def test_an_over_long_first_name_is_refused_in_the_words_of_the_limit(staff_client, campaign):
    response = staff_client.post(
        "/api/v1/leads/", {"campaign": campaign.slug, **CONTACT, "first_name": "A" * 101}, format="json"
    )

    assert response.json()["error"]["fields"] == {"first_name": ["Ensure this field has no more than 100 characters."]}


def test_values_that_outgrow_their_columns_when_normalised_are_stored_as_sent(staff_client, campaign):
    """Upper-casing "ß" gives "SS" and lower-casing "İ" two characters: a zip of 20 characters and an
    email near its 254 that the checks passed grew past their columns, and PostgreSQL refused the lead."""
    zip_code = "Großgörschenstraße 1"  # 20 characters, 22 once upper-cased
    email = "İ" * 60 + "@" + "b" * 60 + "." + "c" * 60 + "." + "d" * 60 + ".com"  # 245, longer lower-cased

    response = staff_client.post(
        "/api/v1/leads/",
        {"campaign": campaign.slug, "email": email, "zip_code": zip_code, "first_name": "ß" * 100},
        format="json",
    )

    assert response.status_code == 201, response.json()
    lead = Lead.objects.get()
    assert (lead.zip_code, lead.email) == (zip_code, email)
    assert lead.first_name == "ß" * 100  # "Ss" * 100 would not fit its 100 characters


def test_a_nul_in_an_answer_list_past_the_items_read_is_stored_without_it(staff_client, campaign):
    """Only the first items of an answer's list are read and checked; the submission as sent is kept
    too (raw_data), where PostgreSQL refuses a NUL or a lone surrogate."""
    answers = {"rooms": [f"room {number}" for number in range(20)] + ["bad\x00item", "\ud800"]}

    body = json.dumps({"campaign": campaign.slug, **CONTACT, "answers": answers})  # "\ud800" as JSON escapes it

    response = staff_client.post("/api/v1/leads/", body, content_type="application/json")

    assert response.status_code == 201, response.json()
    lead = Lead.objects.get()
    assert lead.raw_data["answers"]["rooms"][20:] == ["bad\ufffditem", "\ufffd" * 3]
    assert lead.answers["rooms"] == [f"room {number}" for number in range(20)]
