"""The money ledger: prices, payouts, returns, spend corrections, append-only entries, buyer credit and
statements, with figures computed by hand."""

import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Sum
from django.urls import reverse
from django.utils import timezone

from campaigns.services import daily_stats_import
from campaigns.tests.factories import AdvertiserFactory, CampaignFactory, DailyStatFactory, OfferFactory
from leads.models import (
    AppendOnly,
    BuyerAccount,
    Delivery,
    DeliveryDestination,
    DeliveryRoute,
    LedgerEntry,
    OutboxEntry,
    Partner,
    RoutePrice,
    SupplierPayout,
)
from leads.selectors import statement
from leads.services import lead_set_status
from leads.services.accounts import buyer_account_save
from leads.services.answers import Outcome, Verdict
from leads.services.delivery import SentRequest, _record, _route
from leads.services.ledger import (
    buyer_balance,
    ledger_post_capture,
    ledger_post_sale,
    ledger_record_payment,
    ledger_sync_all_media_spend,
)
from leads.tests.factories import LeadFactory

pytestmark = pytest.mark.django_db

K = LedgerEntry.Kind


def money(lead) -> list[tuple[str, Decimal, str]]:
    return [
        (entry.kind, entry.amount, entry.currency) for entry in LedgerEntry.objects.filter(lead=lead).order_by("id")
    ]


@pytest.fixture
def offer(db):
    return OfferFactory(
        currency="USD", payout_per_lead=Decimal("20.00"), payout_per_sale=Decimal("0"), return_window_days=7
    )


@pytest.fixture
def route(offer):
    destination = DeliveryDestination.objects.create(
        advertiser=offer.advertiser, name="Inbox", kind="email", email_to=["sales@buyer.example"]
    )
    return DeliveryRoute.objects.create(offer=offer, destination=destination, price_per_lead=Decimal("25.00"))


def entry_for(lead) -> OutboxEntry:
    return OutboxEntry.objects.create(lead=lead, kind=OutboxEntry.Kind.DELIVERY)


def sell(lead) -> Delivery:
    """Route the lead and record the buyer's acceptance, as the delivery worker does after sending."""
    delivery = _route(entry_for(lead))
    assert delivery is not None
    _record(delivery, SentRequest(Verdict(Outcome.ACCEPTED)))
    return Delivery.objects.get(pk=delivery.pk)


# --- Prices --------------------------------------------------------------------------------------


def test_the_most_specific_route_price_wins_and_the_offer_payout_is_the_fallback(offer, route):
    RoutePrice.objects.create(route=route, country="US", price=Decimal("30.00"))
    RoutePrice.objects.create(route=route, lead_type="hard", price=Decimal("27.00"))
    RoutePrice.objects.create(route=route, country="US", lead_type="hard", price=Decimal("35.00"))
    campaign = CampaignFactory(offer=offer)

    def price(**fields):
        return route.price_for(LeadFactory.build(campaign=campaign, offer=offer, **fields))

    assert price(country="US", lead_type="hard") == Decimal("35.00")
    assert price(country="US", lead_type="soft") == Decimal("30.00")
    assert price(country="CA", lead_type="hard") == Decimal("27.00")
    assert price(country="CA", lead_type="soft") == Decimal("25.00")
    route.price_per_lead = None
    assert price(country="CA", lead_type="soft") == Decimal("20.00")  # the offer's payout per lead


def test_an_accepted_delivery_books_its_price_once_and_keeps_it(offer, route):
    lead = LeadFactory(campaign=CampaignFactory(offer=offer), country="CA")
    delivery = sell(lead)

    assert (delivery.price, delivery.currency) == (Decimal("25.00"), "USD")
    # The same result recorded again (a retried task) sells nothing twice.
    _record(delivery, SentRequest(Verdict(Outcome.ACCEPTED)))
    ledger_post_sale(delivery=delivery, lead=lead)
    route.price_per_lead = Decimal("99.00")
    route.save()
    delivery.refresh_from_db()
    assert delivery.price == Decimal("25.00")
    assert money(lead) == [(K.LEAD_SOLD, Decimal("25.00"), "USD")]


def test_booking_a_sale_adds_three_statements_to_the_delivery(offer, route):
    """The ledger entry and the day's rollup, one statement each, whatever the lead (a buyer's balance is
    its entries added up, not a second figure to update); and the lead's row lock, so that a return under
    way is waited for and its lead's sale reversed."""
    from django.test.utils import CaptureQueriesContext

    def statements(context) -> list[str]:
        control = ("SAVEPOINT", "RELEASE", "BEGIN", "COMMIT", "ROLLBACK")
        return [query["sql"] for query in context.captured_queries if not query["sql"].startswith(control)]

    lead = LeadFactory(campaign=CampaignFactory(offer=offer), country="CA")
    delivery = _route(entry_for(lead))
    rejected = LeadFactory(campaign=lead.campaign, country="CA")
    other = _route(entry_for(rejected))

    with CaptureQueriesContext(connection) as without_money:
        _record(other, SentRequest(Verdict(Outcome.REJECTED, reason="no")))
    with CaptureQueriesContext(connection) as with_money:
        _record(delivery, SentRequest(Verdict(Outcome.ACCEPTED)), lead)

    assert len(statements(with_money)) - len(statements(without_money)) == 3
    booked = [sql.split()[:3] for sql in statements(with_money) if "ledgerentry" in sql or "dailyrollup" in sql]
    assert booked == [["INSERT", "INTO", '"leads_ledgerentry"'], ["INSERT", "INTO", "reporting_dailyrollup"]]
    locked = [
        sql
        for sql in statements(with_money)
        if sql.startswith('SELECT "leads_lead"."id" AS "pk", "leads_lead"."status"')
    ]
    assert len(locked) == 1 and (
        connection.vendor == "sqlite" or locked[0].endswith('FOR NO KEY UPDATE OF "leads_lead"')
    )
    assert not any("ledgerentry" in sql or "dailyrollup" in sql for sql in statements(without_money))
    assert money(lead) == [(K.LEAD_SOLD, Decimal("25.00"), "USD")]


# --- Append-only -----------------------------------------------------------------------------------


def test_ledger_entries_cannot_be_changed_or_deleted(offer, route):
    lead = LeadFactory(campaign=CampaignFactory(offer=offer))
    sell(lead)
    entry = LedgerEntry.objects.get(lead=lead)

    entry.amount = Decimal("1.00")
    with pytest.raises(AppendOnly):
        entry.save()
    with pytest.raises(AppendOnly):
        entry.delete()
    with pytest.raises(AppendOnly):
        LedgerEntry.objects.filter(pk=entry.pk).update(amount=Decimal("1.00"))
    with pytest.raises(AppendOnly):
        LedgerEntry.objects.filter(pk=entry.pk).delete()
    if connection.vendor == "postgresql":
        # Even raw SQL is refused by the database's trigger.
        from django.db import DatabaseError, transaction

        with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("UPDATE leads_ledgerentry SET amount = 1 WHERE id = %s", [entry.pk])
    assert LedgerEntry.objects.get(pk=entry.pk).amount == Decimal("25.00")


# --- Returns, commissions and supplier payouts ----------------------------------------------------


@pytest.fixture
def supplier(offer):
    return Partner.objects.create(name="Affiliate", role=Partner.Role.SUPPLIER)


def test_a_return_inside_the_window_reverses_sale_commission_and_payout(offer, route, supplier):
    campaign = CampaignFactory(offer=offer)
    SupplierPayout.objects.create(partner=supplier, campaign=campaign, amount=Decimal("8.00"), basis="sold")
    lead = LeadFactory(campaign=campaign, partner=supplier, country="CA")
    sell(lead)
    lead_set_status(lead=lead, status="won", actor=None, sale_amount=Decimal("120.00"))

    lead_set_status(lead=lead, status="returned", actor=None, reason="wrong number")
    # Running the return's booking again (a retried task) adds nothing.
    from leads.services.ledger import ledger_post_return

    lead.refresh_from_db()
    ledger_post_return(lead=lead)

    assert money(lead) == [
        (K.LEAD_SOLD, Decimal("25.00"), "USD"),
        (K.PAYOUT_EARNED, Decimal("-8.00"), "USD"),
        (K.SALE_COMMISSION, Decimal("120.00"), "USD"),
        (K.LEAD_RETURNED, Decimal("-25.00"), "USD"),
        (K.PAYOUT_REVERSED, Decimal("8.00"), "USD"),
        (K.SALE_REVERSED, Decimal("-120.00"), "USD"),
    ]


def test_a_return_after_the_window_refunds_nothing(offer, route):
    lead = LeadFactory(campaign=CampaignFactory(offer=offer), created_at=timezone.now() - datetime.timedelta(days=8))
    sell(lead)

    lead_set_status(lead=lead, status="returned", actor=None, reason="late")

    assert money(lead) == [(K.LEAD_SOLD, Decimal("25.00"), "USD")]


def test_valid_and_qualified_payouts_are_earned_at_capture_payable_after_the_window(offer, supplier):
    campaign = CampaignFactory(offer=offer)
    SupplierPayout.objects.create(partner=supplier, campaign=campaign, amount=Decimal("4.00"), currency="EUR")
    paid = LeadFactory(campaign=campaign, partner=supplier)
    invalid = LeadFactory(campaign=campaign, partner=supplier, validity="invalid")
    test_lead = LeadFactory(campaign=campaign, partner=supplier, is_test=True)
    for lead in (paid, invalid, test_lead):
        ledger_post_capture(lead=lead)
        ledger_post_capture(lead=lead)  # twice: still once

    assert money(paid) == [(K.PAYOUT_EARNED, Decimal("-4.00"), "EUR")]
    assert money(invalid) == money(test_lead) == []
    entry = LedgerEntry.objects.get(lead=paid)
    assert entry.payable_at == paid.created_at + datetime.timedelta(days=7)


# --- Media spend ---------------------------------------------------------------------------------


def test_a_reimported_day_books_the_difference_and_a_deleted_day_reverses_it(offer):
    campaign = CampaignFactory(offer=offer, slug="solar-us")

    def import_spend(spend: str):
        assert daily_stats_import(data=f"date,campaign,spend\n2026-11-02,solar-us,{spend}\n".encode()).imported

    import_spend("10.50")
    import_spend("10.50")  # unchanged: nothing new
    import_spend("12.25")
    campaign.daily_stats.get().delete()
    ledger_sync_all_media_spend()  # the repair job finds nothing to do

    spend = LedgerEntry.objects.filter(kind=K.MEDIA_SPEND, campaign=campaign).order_by("id")
    assert [entry.amount for entry in spend] == [Decimal("-10.50"), Decimal("-1.75"), Decimal("12.25")]
    assert {entry.day for entry in spend} == {datetime.date(2026, 11, 2)}


def test_an_offers_currency_cannot_change_under_booked_spend_and_can_once_it_is_reversed(offer, client, superuser):
    from campaigns.tests.test_offer_retention import posted

    campaign = CampaignFactory(offer=offer, slug="solar-us")
    assert daily_stats_import(data=b"date,campaign,spend\n2026-11-02,solar-us,100.00\n").imported
    client.force_login(superuser)

    refused = posted(client, offer, currency="EUR")

    assert "This offer&#x27;s spend is booked in USD on 1 day. Create a new offer in EUR" in refused.content.decode()
    offer.refresh_from_db()
    assert offer.currency == "USD"
    # The day re-reported later is still booked as it was, in dollars.
    assert daily_stats_import(data=b"date,campaign,spend,impressions\n2026-11-02,solar-us,100.00,5000\n").imported
    assert list(LedgerEntry.objects.filter(kind=K.MEDIA_SPEND).values_list("amount", "currency")) == [
        (Decimal("-100.00"), "USD")
    ]
    # As the error says: the day deleted (reversed in USD), the currency changed, the day imported again.
    campaign.daily_stats.get().delete()
    assert posted(client, offer, currency="EUR").redirect_chain
    assert daily_stats_import(data=b"date,campaign,spend\n2026-11-02,solar-us,100.00\n").imported
    assert list(LedgerEntry.objects.filter(kind=K.MEDIA_SPEND).order_by("id").values_list("amount", "currency")) == [
        (Decimal("-100.00"), "USD"),
        (Decimal("100.00"), "USD"),
        (Decimal("-100.00"), "EUR"),
    ]


# --- Buyer accounts -------------------------------------------------------------------------------


def test_a_buyer_at_its_credit_limit_gets_no_lead_until_it_pays(offer, route):
    campaign = CampaignFactory(offer=offer)
    account = BuyerAccount(advertiser=offer.advertiser, currency="USD", credit_limit=Decimal("30.00"))
    buyer_account_save(account=account)
    first = LeadFactory(campaign=campaign, country="CA")
    sell(first)  # 25.00 of 30.00 used
    second = LeadFactory(campaign=campaign, country="CA")
    held = entry_for(second)

    from leads.services.outbox import RetryLater

    with pytest.raises(RetryLater):
        _route(held)

    held.refresh_from_db()
    assert "at its credit limit (5.00 USD left)" in held.payload["held"]
    assert buyer_balance(offer.advertiser_id, "USD") == Decimal("-25.00")

    ledger_record_payment(advertiser=offer.advertiser, amount=Decimal("40.00"), currency="USD", reference="wire-1")
    with pytest.raises(Exception, match="already recorded"):
        ledger_record_payment(advertiser=offer.advertiser, amount=Decimal("40.00"), currency="USD", reference="wire-1")
    assert buyer_balance(offer.advertiser_id, "USD") == Decimal("15.00")
    delivery = _route(held)
    assert delivery is not None and delivery.price == Decimal("25.00")


def test_raising_the_credit_limit_releases_the_buyers_held_leads(offer, route):
    account = BuyerAccount(advertiser=offer.advertiser, currency="USD", credit_limit=Decimal("0"))
    buyer_account_save(account=account)
    lead = LeadFactory(campaign=CampaignFactory(offer=offer))
    entry = entry_for(lead)
    from leads.services.outbox import RetryLater

    with pytest.raises(RetryLater):
        _route(entry)
    OutboxEntry.objects.filter(pk=entry.pk).update(next_attempt_at=timezone.now() + datetime.timedelta(hours=1))

    account.credit_limit = Decimal("100.00")
    released = buyer_account_save(account=account)

    entry.refresh_from_db()
    assert released == 1 and entry.next_attempt_at <= timezone.now()


# --- Statements ------------------------------------------------------------------------------------


def test_a_buyer_statement_reconciles_with_the_ledger_to_the_cent(offer, route, client, admin_user):
    campaign = CampaignFactory(offer=offer)
    sold = [LeadFactory(campaign=campaign, country="CA") for _ in range(3)]
    for lead in sold:
        sell(lead)
    lead_set_status(lead=sold[0], status="returned", actor=None, reason="duplicate")
    lead_set_status(lead=sold[1], status="won", actor=None, sale_amount=Decimal("33.33"))
    ledger_record_payment(advertiser=offer.advertiser, amount=Decimal("50.00"), currency="USD", reference="w1")
    today = timezone.localdate()

    found = statement(advertiser=offer.advertiser, currency="USD", date_from=today, date_to=today)

    # Charged 3 x 25 + 33.33 commission, refunded 25, paid 50: 50 - 75 - 33.33 + 25 = -33.33
    assert found["opening"] == 0
    assert [line["change"] for line in found["lines"]] == [
        Decimal("-25.00"),
        Decimal("-25.00"),
        Decimal("-25.00"),
        Decimal("25.00"),
        Decimal("-33.33"),
        Decimal("50.00"),
    ]
    assert found["closing"] == Decimal("-33.33")
    ledger = LedgerEntry.objects.filter(advertiser=offer.advertiser)
    signs = {K.BUYER_PAYMENT: 1}
    assert found["closing"] == sum(signs.get(entry.kind, -1) * entry.amount for entry in ledger)
    # Tomorrow's statement opens where today's closed.
    tomorrow = today + datetime.timedelta(days=1)
    assert statement(advertiser=offer.advertiser, currency="USD", date_from=tomorrow, date_to=tomorrow)[
        "opening"
    ] == Decimal("-33.33")

    client.force_login(admin_user)
    url = reverse("admin:leads_ledgerentry_statement")
    query = {"advertiser": offer.advertiser.pk, "currency": "usd", "date_from": today, "date_to": today}
    page = client.get(url, query)
    csv_lines = client.get(url, {**query, "format": "csv"}).content.decode().splitlines()
    assert page.status_code == 200 and b"-33.33" in page.content
    assert csv_lines[1].endswith(",0.00,USD") and csv_lines[-1].endswith(",-33.33,USD")
    assert len(csv_lines) == 1 + 1 + 6 + 1


def test_a_supplier_statement_shows_what_is_payable_after_the_window(offer, supplier):
    campaign = CampaignFactory(offer=offer)
    SupplierPayout.objects.create(partner=supplier, campaign=campaign, amount=Decimal("4.00"))
    old = LeadFactory(campaign=campaign, partner=supplier, created_at=timezone.now() - datetime.timedelta(days=10))
    new = LeadFactory(campaign=campaign, partner=supplier)
    for lead in (old, new):
        ledger_post_capture(lead=lead)
    ledger_record_payment(partner=supplier, amount=Decimal("1.50"), currency="USD", reference="p1")
    today = timezone.localdate()

    found = statement(partner=supplier, currency="USD", date_from=today, date_to=today)

    assert found["closing"] == Decimal("6.50")  # owed: 4 + 4 - 1.50
    assert found["payable"] == Decimal("2.50")  # only the old lead's payout is past the window


def test_a_daily_stat_saved_in_the_admin_is_booked_as_spend(offer):
    stat = DailyStatFactory(campaign=CampaignFactory(offer=offer), spend=Decimal("7.0000"))
    assert list(LedgerEntry.objects.filter(kind=K.MEDIA_SPEND).values_list("amount", "day")) == [
        (Decimal("-7.0000"), stat.date)
    ]


def test_a_day_of_spend_edited_in_the_admin_is_booked_on_its_one_day(offer, client, superuser):
    stat = DailyStatFactory(campaign=CampaignFactory(offer=offer), spend=Decimal("2.50"))
    client.force_login(superuser)
    moved = (stat.date - datetime.timedelta(days=1)).isoformat()

    changed = client.post(
        reverse("admin:campaigns_dailystat_change", args=[stat.pk]),
        {"date": moved, "impressions": "100", "clicks": "6", "spend": "3.00"},
    )

    assert changed.status_code == 302
    # Moving its date booked its spend on both days, the old one never reversed: the date stays.
    spend = LedgerEntry.objects.filter(kind=K.MEDIA_SPEND).values_list("day").annotate(total=Sum("amount"))
    assert list(spend) == [(stat.date, Decimal("-3.0000"))]


def test_the_backfill_books_older_won_leads_and_spend_once(offer):
    from django.core.management import call_command

    lead = LeadFactory(campaign=CampaignFactory(offer=offer))
    # A sale recorded before the ledger existed: the lead is won, nothing is booked.
    type(lead).objects.filter(pk=lead.pk).update(status="won", sale_amount=Decimal("45.00"), sale_currency="USD")

    call_command("ledger_backfill", verbosity=0)
    call_command("ledger_backfill", verbosity=0)

    assert money(lead) == [(K.SALE_COMMISSION, Decimal("45.00"), "USD")]


# --- Partners' own money over the API -------------------------------------------------------------


def partner_client(partner: Partner):
    from rest_framework.test import APIClient

    from leads.services.partners import api_key_create

    _, raw_key = api_key_create(partner=partner, scopes=["reports:read"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    return client


def test_a_buyer_sees_its_purchases_and_returns_and_a_supplier_its_payouts_and_nothing_else(
    offer, route, supplier, staff_client
):
    campaign = CampaignFactory(offer=offer)
    SupplierPayout.objects.create(partner=supplier, campaign=campaign, amount=Decimal("6.00"), basis="sold")
    mine = [LeadFactory(campaign=campaign, partner=supplier, country="CA") for _ in range(2)]
    for lead in mine:
        sell(lead)
    lead_set_status(lead=mine[0], status="returned", actor=None, reason="bad number")
    stranger = Partner.objects.create(name="Other affiliate", role=Partner.Role.SUPPLIER)
    buyer = Partner.objects.create(name="Buyer API", role=Partner.Role.BUYER, advertiser=offer.advertiser)
    today = timezone.localdate().isoformat()
    period = {"date_from": today, "date_to": today, "currency": "usd"}
    url = reverse("api-statement")

    as_buyer = partner_client(buyer).get(url, period)
    as_supplier = partner_client(supplier).get(url, period)
    as_stranger = partner_client(stranger).get(url, period)

    assert as_buyer.status_code == 200, as_buyer.json()
    buyer_body = as_buyer.json()
    assert [(line["kind"], line["amount"]) for line in buyer_body["lines"]] == [
        ("lead_sold", "-25.00"),
        ("lead_sold", "-25.00"),
        ("lead_returned", "25.00"),
    ]
    assert (buyer_body["opening"], buyer_body["closing"], buyer_body["payable"]) == ("0.00", "-25.00", None)
    supplier_body = as_supplier.json()
    assert [(line["kind"], line["amount"], line["lead"]) for line in supplier_body["lines"]] == [
        ("payout_earned", "6.00", str(mine[0].public_id)),
        ("payout_earned", "6.00", str(mine[1].public_id)),
        ("payout_reversed", "-6.00", str(mine[0].public_id)),
    ]
    # Owed 6.00, not payable until the return window has passed.
    assert (supplier_body["closing"], supplier_body["payable"]) == ("6.00", "0.00")
    assert as_stranger.json()["lines"] == [] and as_stranger.json()["closing"] == "0.00"
    assert partner_client(stranger).get(url, {**period, "side": "buyer"}).status_code == 404
    assert partner_client(buyer).get(url, {"date_from": today, "date_to": "2000-01-01"}).status_code == 400
    assert staff_client.get(url, period).status_code == 403


def test_staff_record_a_supplier_payment_in_the_admin_and_its_statement_goes_down(offer, supplier, client, admin_user):
    SupplierPayout.objects.create(partner=supplier, campaign=CampaignFactory(offer=offer), amount=Decimal("9.00"))
    ledger_post_capture(lead=LeadFactory(campaign=SupplierPayout.objects.get().campaign, partner=supplier))
    client.force_login(admin_user)
    url = reverse("admin:leads_partner_payment", args=[supplier.pk])

    page = client.get(url)
    done = client.post(url, {"amount": "4.00", "currency": "usd", "reference": "wire-9"}, follow=True)
    again = client.post(url, {"amount": "4.00", "currency": "USD", "reference": "wire-9"})

    assert page.status_code == 200 and "Record payment" in page.content.decode()
    assert "Payment of 4.00 USD to Affiliate recorded." in [str(m) for m in done.context["messages"]]
    assert "was already recorded" in again.content.decode()
    today = timezone.localdate()
    assert statement(partner=supplier, currency="USD", date_from=today, date_to=today)["closing"] == Decimal("5.00")


def test_staff_record_a_buyer_payment_and_its_held_leads_are_released(offer, route, client, admin_user):
    account = BuyerAccount(advertiser=offer.advertiser, currency="USD", credit_limit=Decimal("0"))
    buyer_account_save(account=account)
    held = entry_for(LeadFactory(campaign=CampaignFactory(offer=offer)))
    from leads.services.outbox import RetryLater

    with pytest.raises(RetryLater):
        _route(held)
    client.force_login(admin_user)

    listed = client.get(reverse("admin:leads_buyeraccount_changelist"))
    done = client.post(
        reverse("admin:leads_buyeraccount_payment", args=[account.pk]),
        {"amount": "100.00", "reference": "t1"},
        follow=True,
    )

    assert "0.00" in listed.content.decode()
    assert any("1 held lead(s)" in str(m) for m in done.context["messages"])
    assert buyer_balance(offer.advertiser_id, "USD") == Decimal("100.00")
    assert "100.00" in client.get(reverse("admin:leads_buyeraccount_changelist")).content.decode()


# --- A lead sold to several buyers (a shared offer) -------------------------------------------------


def buyer_client(partner: Partner):
    from rest_framework.test import APIClient

    from leads.services.partners import api_key_create

    _, raw_key = api_key_create(partner=partner, scopes=["outcomes:write", "reports:read"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    return client


@pytest.fixture
def shared_lead(offer, supplier):
    """A lead its supplier earns 8.00 on once sold, sold to two advertisers: A for 30.00, B for 40.00,
    each with a buyer's API key."""

    campaign = CampaignFactory(offer=offer)
    SupplierPayout.objects.create(partner=supplier, campaign=campaign, amount=Decimal("8.00"), basis="sold")
    lead = LeadFactory(campaign=campaign, partner=supplier, country="CA")
    buyers = {}
    for name, price in (("A", "30.00"), ("B", "40.00")):
        advertiser = AdvertiserFactory(name=f"Advertiser {name}")
        destination = DeliveryDestination.objects.create(
            advertiser=advertiser, name=f"Inbox {name}", kind="email", email_to=["sales@buyer.example"]
        )
        delivery = Delivery.objects.create(lead=lead, destination=destination, price=Decimal(price), currency="USD")
        _record(delivery, SentRequest(Verdict(Outcome.ACCEPTED)), lead)
        buyers[name] = Partner.objects.create(name=f"Buyer {name}", role=Partner.Role.BUYER, advertiser=advertiser)
    return lead, buyers


def report(partner: Partner, lead, **body):
    return buyer_client(partner).post(reverse("api-lead-outcome", args=[lead.public_id]), body, format="json")


def test_one_buyers_return_of_a_shared_lead_refunds_that_buyer_alone(shared_lead):
    lead, buyers = shared_lead
    a, b = buyers["A"].advertiser, buyers["B"].advertiser

    answer = report(buyers["A"], lead, outcome="returned", reason="invalid_contact", note="wrong number")

    assert answer.status_code == 201, answer.json()
    assert (buyer_balance(a.pk, "USD"), buyer_balance(b.pk, "USD")) == (Decimal("0.00"), Decimal("-40.00"))
    assert money(lead) == [
        (K.LEAD_SOLD, Decimal("30.00"), "USD"),
        (K.PAYOUT_EARNED, Decimal("-8.00"), "USD"),
        (K.LEAD_SOLD, Decimal("40.00"), "USD"),
        (K.LEAD_RETURNED, Decimal("-30.00"), "USD"),
    ]
    lead.refresh_from_db()
    # B keeps the lead: it is not returned, its supplier keeps the payout, and B can still report on it.
    assert (lead.status, lead.returned_at) == ("new", None)
    assert report(buyers["A"], lead, outcome="returned", reason="invalid_contact").status_code == 201
    assert len(money(lead)) == 4  # A's second report refunds nothing twice
    from leads.admin.timeline import timeline_html

    assert "other buyers keep the lead, so only this buyer" in timeline_html(lead.events.order_by("id"))

    # When B returns it too, no one keeps it: the lead is returned and the payout reversed.
    assert report(buyers["B"], lead, outcome="returned", reason="invalid_contact").status_code == 201
    lead.refresh_from_db()
    assert lead.status == "returned"
    assert money(lead)[4:] == [(K.PAYOUT_REVERSED, Decimal("8.00"), "USD"), (K.LEAD_RETURNED, Decimal("-40.00"), "USD")]
    assert (buyer_balance(a.pk, "USD"), buyer_balance(b.pk, "USD")) == (Decimal("0.00"), Decimal("0.00"))


def test_a_buyers_reported_sale_is_its_own_commission_and_its_return_reverses_only_its_money(shared_lead, offer):
    lead, buyers = shared_lead
    b = buyers["B"].advertiser

    answer = report(buyers["B"], lead, outcome="converted", sale_amount="99.00")

    assert answer.status_code == 201, answer.json()
    commission = LedgerEntry.objects.get(lead=lead, kind=K.SALE_COMMISSION)
    # Owed by B, who reported it, not by the offer's advertiser, who bought nothing.
    assert (commission.advertiser_id, commission.amount) == (b.pk, Decimal("99.00"))
    assert not LedgerEntry.objects.filter(advertiser=offer.advertiser).exists()
    # A returns its copy: B's purchase and B's commission stand.
    assert report(buyers["A"], lead, outcome="returned", reason="duplicate").status_code == 201
    lead.refresh_from_db()
    assert lead.status == "won"
    assert buyer_balance(b.pk, "USD") == Decimal("-139.00")  # its purchase and the commission it owes
    assert LedgerEntry.objects.filter(lead=lead, kind=K.SALE_REVERSED).count() == 0
    # B's return, the last, reverses its purchase and its commission.
    assert report(buyers["B"], lead, outcome="returned", reason="duplicate").status_code == 201
    assert LedgerEntry.objects.get(lead=lead, kind=K.SALE_REVERSED).amount == Decimal("-99.00")


def commissions(lead) -> list[tuple[str, Decimal, str]]:
    return [
        (entry.advertiser.name, entry.amount, entry.currency)
        for entry in LedgerEntry.objects.filter(lead=lead, kind=K.SALE_COMMISSION).order_by("id")
    ]


def test_each_buyer_that_sells_a_shared_lead_owes_its_own_commission(shared_lead, offer):
    lead, buyers = shared_lead
    offer.payout_per_sale = Decimal("15.00")
    offer.save()

    assert report(buyers["A"], lead, outcome="converted", sale_amount="99.00").status_code == 201
    answer = report(buyers["B"], lead, outcome="converted", sale_amount="50.00", currency="eur", reference="b-1")

    assert answer.status_code == 201, answer.json()
    # The lead is won once, with A's sale; B's sale is a commission of its own, at the amount B reported.
    lead.refresh_from_db()
    assert (lead.status, lead.sale_amount) == ("won", Decimal("99.00"))
    assert commissions(lead) == [("Advertiser A", Decimal("99.00"), "USD"), ("Advertiser B", Decimal("50.00"), "EUR")]
    from leads.admin.timeline import timeline_html

    assert "this buyer&#x27;s own sale, a commission of 50.00 EUR" in timeline_html(lead.events.order_by("id"))
    # Reported again under another reference, or by A again: nothing is owed twice.
    assert report(buyers["B"], lead, outcome="converted", sale_amount="50.00", reference="b-2").status_code == 201
    assert report(buyers["A"], lead, outcome="converted", sale_amount="10.00").status_code == 201
    assert len(commissions(lead)) == 2

    # A returns its copy: its purchase and commission are refunded; B's stand.
    assert report(buyers["A"], lead, outcome="returned", reason="duplicate").status_code == 201
    assert buyer_balance(buyers["A"].advertiser_id, "USD") == Decimal("0.00")
    assert buyer_balance(buyers["B"].advertiser_id, "USD") == Decimal("-40.00")
    assert buyer_balance(buyers["B"].advertiser_id, "EUR") == Decimal("-50.00")
    # B returns it too: the lead is returned and every commission on it reversed.
    assert report(buyers["B"], lead, outcome="returned", reason="duplicate").status_code == 201
    assert buyer_balance(buyers["B"].advertiser_id, "EUR") == Decimal("0.00")
    assert LedgerEntry.objects.filter(lead=lead, kind=K.SALE_REVERSED).count() == 2


def test_a_buyer_that_returned_its_copy_or_reports_no_amount_owes_what_it_bought(shared_lead, offer):
    lead, buyers = shared_lead
    offer.payout_per_sale = Decimal("15.00")
    offer.save()
    third = AdvertiserFactory(name="Advertiser C")
    stranger = Partner.objects.create(name="Buyer C", role=Partner.Role.BUYER, advertiser=third)
    assert report(buyers["A"], lead, outcome="returned", reason="duplicate").status_code == 201
    assert report(buyers["B"], lead, outcome="converted", sale_amount="70.00").status_code == 201

    # A gave its copy back: its report owes nothing. C never bought the lead: it is not C's to report on.
    assert report(buyers["A"], lead, outcome="converted", sale_amount="80.00").status_code == 201
    assert report(stranger, lead, outcome="converted", sale_amount="80.00").status_code == 404
    assert commissions(lead) == [("Advertiser B", Decimal("70.00"), "USD")]


def test_a_buyers_report_on_a_lead_won_before_the_ledger_leaves_its_sale_to_the_backfill(shared_lead, offer):
    from django.core.management import call_command

    lead, buyers = shared_lead
    # Won before the ledger existed: nothing of the sale is booked.
    type(lead).objects.filter(pk=lead.pk).update(status="won", sale_amount=Decimal("45.00"), sale_currency="USD")
    offer.advertiser = buyers["B"].advertiser
    offer.save()

    assert report(buyers["B"], lead, outcome="converted", sale_amount="45.00").status_code == 201
    call_command("ledger_backfill", verbosity=0)

    # One sale, one commission, whichever came first: B is the offer's advertiser.
    assert commissions(lead) == [("Advertiser B", Decimal("45.00"), "USD")]


def test_a_lead_returned_while_its_post_was_under_way_has_its_sale_reversed(offer, route, supplier):
    campaign = CampaignFactory(offer=offer)
    SupplierPayout.objects.create(partner=supplier, campaign=campaign, amount=Decimal("8.00"), basis="sold")
    lead = LeadFactory(campaign=campaign, partner=supplier, country="CA")
    delivery = _route(entry_for(lead))
    assert delivery is not None
    # The worker has posted the lead; before the buyer's answer is recorded, staff return it (fraud).
    lead_set_status(lead=lead, status="returned", actor=None, reason="fraud")

    _record(delivery, SentRequest(Verdict(Outcome.ACCEPTED)))

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.ACCEPTED  # what the buyer answered, as it happened
    assert money(lead) == [
        (K.LEAD_SOLD, Decimal("25.00"), "USD"),
        (K.PAYOUT_EARNED, Decimal("-8.00"), "USD"),
        (K.LEAD_RETURNED, Decimal("-25.00"), "USD"),
        (K.PAYOUT_REVERSED, Decimal("8.00"), "USD"),
    ]
    assert buyer_balance(offer.advertiser_id, "USD") == Decimal("0.00")
