import factory

from campaigns.tests.factories import CampaignFactory
from leads.models import Delivery, DeliveryDestination, Door, Lead, QualificationRule
from leads.services.ledger import ledger_post_return, ledger_post_sale_commission


class LeadFactory(factory.django.DjangoModelFactory):
    """A stored lead as the pipeline would leave it; use lead_capture() to test the pipeline itself."""

    class Meta:
        model = Lead
        # The hook below books ledger rows and leaves the lead as it was: saving it again would only
        # cost an UPDATE (and an audit entry) per lead.
        skip_postgeneration_save = True

    campaign = factory.SubFactory(CampaignFactory)
    offer = factory.SelfAttribute("campaign.offer")
    traffic_source = factory.SelfAttribute("campaign.traffic_source")
    door = Door.API
    email = factory.Sequence(lambda n: f"person{n}@example.com")
    first_name = "Jane"
    last_name = factory.Sequence(lambda n: f"Doe{n}")
    country = "US"
    action = "quote"
    lead_type = "hard"
    validity = "valid"
    qualification = "qualified"
    score = 80

    @factory.post_generation
    def money(lead, create, extracted, **kwargs):
        """Book what the sales workflow books for a lead made won or returned (its sale commission, then
        the reversal inside the return window), so reports see the money a real sale leaves."""
        if not create or lead.is_test:
            return
        if lead.status in ("won", "returned") and lead.sale_amount:
            ledger_post_sale_commission(lead=lead)
        if lead.status == "returned":
            ledger_post_return(lead=lead)


class QualificationRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = QualificationRule

    offer = factory.SubFactory("campaigns.tests.factories.OfferFactory")
    field = "country"
    operator = "in"
    value = "US,CA"


def delivered(lead: Lead, *, advertiser=None, status: str = "accepted") -> Delivery:
    """Record that the lead went to a buyer (its offer's advertiser unless given), as routing would."""
    advertiser = advertiser or lead.offer.advertiser
    destination, _ = DeliveryDestination.objects.get_or_create(
        advertiser=advertiser, name="Buyer CRM", defaults={"url": "https://buyer.example/leads"}
    )
    return Delivery.objects.create(lead=lead, destination=destination, status=status)
