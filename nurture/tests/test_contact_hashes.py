"""The audience exports and buyers' suppression lists (leads) hash a person the same way, so a buyer
can upload one of our hashed exports as its list and it matches the leads it names."""

import pytest

from leads.selectors import lead_contact_hashes
from leads.tests.factories import LeadFactory
from nurture.services.audience_formats import generic_row, google_row, meta_row

pytestmark = pytest.mark.django_db

FIELDS = ("email", "phone", "first_name", "last_name", "country", "zip_code")


@pytest.mark.parametrize(
    ("email", "phone", "country"),
    [
        (" John_Smith@Gmail.com ", "(650) 555-1212", "US"),
        ("ANNA@example.de", "030 12345678", "DE"),
        ("no.phone@example.com", "", "GB"),
        ("", "+44 20 7946 0958", ""),
    ],
)
def test_a_leads_suppression_hashes_are_its_hashed_export_columns(campaign, email, phone, country):
    lead = LeadFactory(campaign=campaign, email=email, phone=phone, country=country)
    row = {field: getattr(lead, field) for field in FIELDS}

    hashes = lead_contact_hashes(lead)

    assert [hashes.get("email", ""), hashes.get("phone", "")] == generic_row(row)
    assert hashes.get("email", "") == meta_row(row)[0] and hashes.get("phone", "") == google_row(row)[1]
