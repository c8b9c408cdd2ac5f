"""An offer's own lead retention period, set on its admin page (empty: the site's default)."""

import pytest
from django.urls import reverse

from campaigns.models import Offer
from campaigns.tests.factories import OfferFactory

pytestmark = pytest.mark.django_db


def posted(client, offer: Offer, **changes):
    """The offer's change form as the page shows it, with these changes, posted."""
    url = reverse("admin:campaigns_offer_change", args=[offer.pk])
    page = client.get(url).context
    form = page["adminform"].form
    data = {name: form[name].value() for name in form.fields}
    for inline in page["inline_admin_formsets"]:  # no rows (the offer has none), not even the blank extra ones
        prefix = inline.formset.prefix
        data |= {f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0"}
    data = {name: "" if value is None else value for name, value in {**data, **changes}.items()}
    return client.post(url, data, follow=True)


def test_a_manager_sets_an_offers_retention_and_zero_days_is_refused_with_a_clear_error(client, superuser):
    offer = OfferFactory()
    client.force_login(superuser)
    page = client.get(reverse("admin:campaigns_offer_change", args=[offer.pk])).content.decode()
    assert "Keep lead data for (days)" in page and "LEAD_RETENTION_DAYS" in page

    refused = posted(client, offer, lead_retention_days="0")
    assert "Ensure this value is greater than or equal to 1." in refused.content.decode()
    offer.refresh_from_db()
    assert offer.lead_retention_days is None

    assert posted(client, offer, lead_retention_days="45").redirect_chain
    offer.refresh_from_db()
    assert offer.lead_retention_days == 45
    posted(client, offer, lead_retention_days="")
    offer.refresh_from_db()
    assert offer.lead_retention_days is None
