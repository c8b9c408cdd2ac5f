"""Ping/post auctions against real local buyer servers: buyers that bid, decline, hang, answer
malformed JSON, bid and then reject the post, and bid over and under the floor."""

import itertools
import json
import threading
import time
from datetime import timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.urls import reverse
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from campaigns.tests.factories import AdvertiserFactory
from leads.models import (
    Auction,
    AuctionBid,
    BuyerAccount,
    Delivery,
    DeliveryDestination,
    DeliveryRoute,
    Lead,
    LedgerEntry,
    OutboxEntry,
)
from leads.selectors import auction_eligible_destinations
from leads.services import outbox_process
from leads.services.auction import auctions_rerun
from leads.services.contact_hashes import email_hash
from leads.services.delivery import deliveries_redeliver, deliveries_route_next
from leads.services.ledger import ledger_record_payment
from leads.services.outbox import outbox_drain
from leads.services.ping_post import score_band
from leads.services.signing import destination_rotate_secret
from leads.services.suppression import buyer_suppression_add

pytestmark = pytest.mark.django_db

ALL_PING_FIELDS = ["country", "region", "zip_prefix", "lead_type", "lead_age", "score_band", "offer", "answers"]


class BuyerServers:
    """Many buyers on one threaded local HTTP server, each under its own path, answering as told:
    `answers[path] = (status, body, delay_seconds)`. Every request is kept, with its headers."""

    def __init__(self) -> None:
        self.answers: dict[str, tuple[int, bytes, float]] = {}
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        servers = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                servers.requests.append((self.path, dict(self.headers.items()), body))
                status, answer, delay = servers.answers.get(self.path, (404, b"{}", 0.0))
                time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:
                    pass  # the caller gave up (a hanging buyer): nothing to answer

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        # Polled often, so shutting it down at each test's end does not wait out the default half second.
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def bodies(self, suffix: str) -> list[tuple[str, dict]]:
        return [(path, json.loads(body)) for path, _headers, body in self.requests if path.endswith(suffix)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def buyers(settings):
    settings.DELIVERY_ALLOWED_HOSTS = ["127.0.0.1"]  # the local buyers; everything else is checked
    servers = BuyerServers()
    yield servers
    servers.close()


@pytest.fixture
def offer(campaign):
    offer = campaign.offer
    offer.sells_by_auction = True
    offer.auction_floor_price = Decimal("5.00")
    offer.auction_max_lead_age_seconds = 300
    offer.save()  # saved, not updated: the capture's configuration cache reads it again
    return offer


_names = itertools.count(1)


def ping_buyer(offer, buyers, *, bid=None, answer=None, delay=0.0, post="accepted", advertiser=None, **fields):
    """A ping/post buyer of the offer at /<slug>/ping and /<slug>/post, bidding `bid`."""
    number = next(_names)
    slug = f"buyer{number}"
    route = fields.pop("route", {})
    destination = DeliveryDestination.objects.create(
        advertiser=advertiser or AdvertiserFactory(),
        name=fields.pop("name", f"Bidder {number}"),
        kind=DeliveryDestination.Kind.PING_POST,
        url=buyers.url(f"/{slug}/post"),
        ping_url=buyers.url(f"/{slug}/ping"),
        ping_fields=fields.pop("ping_fields", ALL_PING_FIELDS),
        ping_answer_keys=fields.pop("ping_answer_keys", ["roof_type"]),
        bid_json_path="bid",
        bid_id_json_path="bid_id",
        accept_json_path="status",
        accept_json_value="accepted",
        reason_json_path="reason",
        **fields,
    )
    destination.raw_secret = destination_rotate_secret(destination=destination)
    DeliveryRoute.objects.create(offer=offer, destination=destination, **route)
    if answer is None:
        answer = (200, json.dumps({"bid": bid, "bid_id": f"{slug}-bid"}).encode(), delay)
    buyers.answers[f"/{slug}/ping"] = answer
    post_answer = {"status": post, "reason": "already have this person" if post != "accepted" else ""}
    buyers.answers[f"/{slug}/post"] = (200, json.dumps(post_answer).encode(), 0.0)
    destination.slug = slug
    return destination


def fixed_buyer(offer, buyers, *, price, **route):
    number = next(_names)
    destination = DeliveryDestination.objects.create(
        advertiser=AdvertiserFactory(), name=f"Fixed {number}", url=buyers.url(f"/fixed{number}/leads")
    )
    destination_rotate_secret(destination=destination)
    DeliveryRoute.objects.create(offer=offer, destination=destination, price_per_lead=price, **route)
    buyers.answers[f"/fixed{number}/leads"] = (200, b'{"ok": true}', 0.0)
    destination.slug = f"fixed{number}"
    return destination


@pytest.fixture
def sellable(capture, offer):
    """A valid, original, consented lead of the auction offer, its auction waiting to run."""
    numbers = itertools.count(1)

    def make(**fields) -> Lead:
        number = next(numbers)
        fields.setdefault("email", f"person{number}@example.com")
        fields.setdefault("first_name", "Jo")
        fields.setdefault("country", "US")
        fields.setdefault("consent", "yes")
        lead = capture(**fields)
        assert lead.is_billable, lead.validity_reasons
        return lead

    return make


def run_auction(lead: Lead) -> Auction:
    entry = lead.outbox_entries.filter(kind=OutboxEntry.Kind.AUCTION).latest("id")
    assert outbox_process(entry_id=entry.pk) == "done", OutboxEntry.objects.get(pk=entry.pk).last_error
    return lead.auctions.latest("started_at", "id")


def bid_of(auction: Auction, destination) -> AuctionBid:
    return auction.bids.get(destination=destination)


def test_highest_bid_at_or_above_the_floor_wins_and_is_sold_at_its_bid(buyers, offer, sellable):
    low = ping_buyer(offer, buyers, bid="4.99")  # under the floor of 5.00
    middle = ping_buyer(offer, buyers, bid=6)
    high = ping_buyer(offer, buyers, bid="7.50")
    fixed = fixed_buyer(offer, buyers, price=Decimal("5.00"))  # at the floor: takes part
    lead = sellable()

    auction = run_auction(lead)

    assert auction.status == Auction.Status.SOLD
    assert (auction.winner, auction.price, auction.sold_count) == (high, Decimal("7.50"), 1)
    assert bid_of(auction, low).post_outcome == AuctionBid.Post.BELOW_FLOOR
    assert [(b.destination, b.rank) for b in auction.bids.filter(rank__isnull=False).order_by("rank")] == [
        (high, 1),
        (middle, 2),
        (fixed, 3),
    ]
    assert bid_of(auction, fixed).outcome == AuctionBid.Outcome.FIXED
    # The full lead went to the winner only, with the id of its winning bid.
    posts = buyers.bodies("/post") + buyers.bodies("/leads")
    assert [(path, body["bid_id"], body["email"]) for path, body in posts] == [
        (f"/{high.slug}/post", f"{high.slug}-bid", lead.email)
    ]
    delivery = Delivery.objects.get(lead=lead)
    assert (delivery.destination, delivery.status, delivery.price) == (high, "accepted", Decimal("7.50"))
    sale = LedgerEntry.objects.get(lead=lead, kind=LedgerEntry.Kind.LEAD_SOLD)
    assert (sale.amount, sale.advertiser_id, sale.currency) == (Decimal("7.50"), high.advertiser_id, "USD")
    # The fixed routes' own delivery is not written for an auction offer.
    assert not lead.outbox_entries.filter(kind=OutboxEntry.Kind.DELIVERY).exists()


def test_no_ping_holds_the_persons_contact_details(buyers, offer, sellable):
    for _ in range(3):
        ping_buyer(offer, buyers, bid=6, ping_answer_keys=["roof_type", "homeowner"])
    lead = sellable(
        email="jane.roe@example.com",
        phone="+1 650 555 1212",
        first_name="Janet",
        last_name="Roebuck",
        company="Roebuck Roofing",
        zip_code="94110",
        message="Call me at 12 Elm Street",
        ip="203.0.113.77",
        answers={"roof_type": "tile", "homeowner": "yes", "region": "CA", "full_name": "Janet Roebuck"},
    )
    lead.refresh_from_db()

    run_auction(lead)

    pings = [(headers, body) for path, headers, body in buyers.requests if path.endswith("/ping")]
    assert len(pings) == 3
    personal = [lead.email, lead.phone, "6505551212", "Janet", "Roebuck", "94110", "Elm Street", "203.0.113.77"]
    for _headers, body in pings:
        text = body.decode()
        assert [value for value in personal if value.lower() in text.lower()] == []
        sent = json.loads(text)
        assert sent["country"] == "US"
        assert sent["zip_prefix"] == "941"
        assert sent["region"] == "CA"
        assert sent["answers"] == {"roof_type": "tile", "homeowner": "yes"}
        assert sent["score_band"] == score_band(lead.score)
        assert sent["lead_type"] == lead.lead_type
        assert set(sent) == {"ping_id", "currency", *ALL_PING_FIELDS}


def test_pings_are_signed_like_deliveries(buyers, offer, sellable):
    buyer = ping_buyer(offer, buyers, bid=6)
    run_auction(sellable())
    _path, headers, body = next(request for request in buyers.requests if request[0].endswith("/ping"))
    signed = Webhook(buyer.raw_secret).verify(body, {name.lower(): value for name, value in headers.items()})
    assert signed["ping_id"] == headers["webhook-id"]


def test_equal_bids_go_to_the_lower_priority_number_then_the_older_route(buyers, offer, sellable):
    older = ping_buyer(offer, buyers, bid=8, route={"priority": 2})
    newer = ping_buyer(offer, buyers, bid=8, route={"priority": 2})
    assert run_auction(sellable()).winner == older
    assert run_auction(sellable()).winner == older  # every time, whoever answers first

    DeliveryRoute.objects.filter(destination=newer).update(priority=1)
    assert run_auction(sellable()).winner == newer


def test_a_hanging_buyer_costs_the_auction_its_timeout_and_no_more(buyers, offer, sellable):
    hanging = ping_buyer(offer, buyers, bid=50, delay=5.0, ping_timeout_ms=300)
    slow = ping_buyer(offer, buyers, bid=6, delay=0.1, ping_timeout_ms=1000)
    auction = run_auction(sellable())

    assert auction.status == Auction.Status.SOLD and auction.winner == slow
    waited = bid_of(auction, hanging)
    assert waited.outcome == AuctionBid.Outcome.TIMEOUT and waited.amount is None
    assert 300 <= waited.latency_ms < 300 + 200
    assert 100 <= bid_of(auction, slow).latency_ms < 1000
    # The slow buyer's 100 ms hid inside the hanging one's 300 ms: pinged at once, not one by one.
    assert auction.ping_ms < 300 + 250
    assert auction.duration_ms < 300 + 500


def test_malformed_declining_and_failing_answers_are_logged_and_lose(buyers, offer, sellable):
    malformed = ping_buyer(offer, buyers, answer=(200, b"{bid: 9", 0.0))
    declines = ping_buyer(offer, buyers, answer=(200, b'{"bid": null, "reason": "not in our area"}', 0.0))
    not_a_number = ping_buyer(offer, buyers, answer=(200, b'{"bid": "lots"}', 0.0))
    broken = ping_buyer(offer, buyers, answer=(503, b"{}", 0.0))
    bidder = ping_buyer(offer, buyers, bid=5)  # exactly the floor
    auction = run_auction(sellable())

    assert auction.winner == bidder and auction.price == Decimal("5.00")
    assert bid_of(auction, malformed).outcome == AuctionBid.Outcome.ERROR
    assert "not JSON" in bid_of(auction, malformed).reason
    assert (bid_of(auction, declines).outcome, bid_of(auction, declines).reason) == ("rejected", "not in our area")
    assert bid_of(auction, not_a_number).outcome == AuctionBid.Outcome.ERROR
    assert (bid_of(auction, broken).outcome, bid_of(auction, broken).status_code) == ("error", 503)


def test_a_bid_too_large_to_be_money_is_an_error_and_the_next_bid_wins(buyers, offer, sellable):
    huge = ping_buyer(offer, buyers, answer=(200, b'{"bid": 1e13}', 0.0))  # past the money columns' 12 digits
    absurd = ping_buyer(offer, buyers, answer=(200, b'{"bid": 1e30}', 0.0))
    bidder = ping_buyer(offer, buyers, bid=6)
    lead = sellable()

    auction = run_auction(lead)

    assert (auction.status, auction.winner, auction.price) == (Auction.Status.SOLD, bidder, Decimal("6.00"))
    for destination, raw in ((huge, "10000000000000.0"), (absurd, "1e+30")):
        bid = bid_of(auction, destination)
        assert (bid.outcome, bid.amount, bid.reason) == ("error", None, f"the bid {raw!r} is not an amount")
    assert list(LedgerEntry.objects.filter(lead=lead, kind="lead_sold").values_list("amount", flat=True)) == [
        Decimal("6.00")
    ]


def test_no_bid_at_the_floor_leaves_the_lead_unsold_and_books_nothing(buyers, offer, sellable):
    ping_buyer(offer, buyers, bid="4.00")
    lead = sellable()
    auction = run_auction(lead)
    assert (auction.status, auction.price, auction.winner) == (Auction.Status.UNSOLD, None, None)
    assert "floor of 5.00 USD" in auction.note
    assert not Delivery.objects.filter(lead=lead).exists()
    assert not LedgerEntry.objects.filter(lead=lead, kind=LedgerEntry.Kind.LEAD_SOLD).exists()


def test_a_rejected_post_goes_down_the_waterfall_to_the_next_bid(buyers, offer, sellable):
    greedy = ping_buyer(offer, buyers, bid=10, post="rejected")
    next_best = ping_buyer(offer, buyers, bid=8)
    lead = sellable()
    auction = run_auction(lead)

    assert (auction.status, auction.winner, auction.price) == (Auction.Status.SOLD, next_best, Decimal("8.00"))
    assert (bid_of(auction, greedy).post_outcome, bid_of(auction, greedy).post_reason) == (
        "rejected",
        "already have this person",
    )
    assert dict(Delivery.objects.filter(lead=lead).values_list("destination_id", "status")) == {
        greedy.pk: "rejected",
        next_best.pk: "accepted",
    }
    sales = LedgerEntry.objects.filter(lead=lead, kind=LedgerEntry.Kind.LEAD_SOLD)
    assert [(sale.amount, sale.advertiser_id) for sale in sales] == [(Decimal("8.00"), next_best.advertiser_id)]


def test_the_waterfall_stops_at_the_offers_maximum_lead_age(buyers, offer, sellable):
    offer.auction_max_lead_age_seconds = 60
    offer.save()
    greedy = ping_buyer(offer, buyers, bid=10, post="rejected")
    too_late = ping_buyer(offer, buyers, bid=8)
    lead = sellable()
    Lead.objects.filter(pk=lead.pk).update(created_at=timezone.now() - timedelta(seconds=61))

    auction = run_auction(lead)

    assert auction.status == Auction.Status.EXPIRED
    assert bid_of(auction, greedy).post_outcome == AuctionBid.Post.REJECTED  # the first post always goes
    assert bid_of(auction, too_late).post_outcome == AuctionBid.Post.EXPIRED
    assert not buyers.bodies(f"/{too_late.slug}/post")
    assert not LedgerEntry.objects.filter(lead=lead, kind=LedgerEntry.Kind.LEAD_SOLD).exists()


def test_the_waterfall_stops_within_the_workers_time_even_for_a_fresh_lead(buyers, offer, sellable, settings):
    settings.OUTBOX_TASK_TIME_LIMIT = 0.5  # the waterfall's share: 0.2 s, which the first post outlasts
    greedy = ping_buyer(offer, buyers, bid=10, post="rejected")
    status, rejected, _delay = buyers.answers[f"/{greedy.slug}/post"]
    buyers.answers[f"/{greedy.slug}/post"] = (status, rejected, 0.3)
    next_bid = ping_buyer(offer, buyers, bid=8)
    lead = sellable()

    auction = run_auction(lead)

    assert bid_of(auction, greedy).post_outcome == AuctionBid.Post.REJECTED  # the first post always goes
    assert bid_of(auction, next_bid).post_outcome == AuctionBid.Post.EXPIRED
    assert bid_of(auction, next_bid).post_reason.startswith("the auction used its worker's time")
    assert not buyers.bodies(f"/{next_bid.slug}/post")


def test_staff_sending_an_auctioned_lead_to_the_next_buyer_auction_it_again(buyers, offer, sellable):
    refusing = ping_buyer(offer, buyers, bid=10, post="rejected")
    lead = sellable()
    assert run_auction(lead).status != Auction.Status.SOLD
    failed = Delivery.objects.filter(lead=lead, destination=refusing)

    assert deliveries_redeliver(deliveries=failed) == (0, {})  # its bid has lapsed: no repost to it
    assert deliveries_route_next(deliveries=failed) == 1

    assert lead.outbox_entries.filter(kind=OutboxEntry.Kind.AUCTION, status=OutboxEntry.Status.PENDING).exists()
    assert not lead.outbox_entries.filter(kind=OutboxEntry.Kind.DELIVERY).exists()


def test_a_shared_sale_never_sells_to_the_same_buyer_twice(buyers, offer, sellable):
    offer.auction_buyers_per_lead = 2
    offer.save()
    acme = AdvertiserFactory(name="Acme")
    acme_main = ping_buyer(offer, buyers, bid=10, advertiser=acme)
    acme_second = ping_buyer(offer, buyers, bid=9, advertiser=acme)  # the same buyer, another endpoint
    other = ping_buyer(offer, buyers, bid=6)
    lead = sellable()

    auction = run_auction(lead)

    assert (auction.status, auction.sold_count, auction.price) == (Auction.Status.SOLD, 2, Decimal("16.00"))
    assert bid_of(auction, acme_second).post_outcome == AuctionBid.Post.SKIPPED
    assert set(Delivery.objects.filter(lead=lead, status="accepted").values_list("destination_id", flat=True)) == {
        acme_main.pk,
        other.pk,
    }
    # Asked again with room for a third buyer: Acme and the other buyer are not even pinged.
    offer.auction_buyers_per_lead = 3
    offer.save()
    pings_before = len(buyers.bodies("/ping"))
    assert auctions_rerun(leads=Lead.objects.filter(pk=lead.pk)) == 1
    again = run_auction(lead)
    assert again.status == Auction.Status.UNSOLD and again.buyers_pinged == 0
    assert len(buyers.bodies("/ping")) == pings_before
    sold_to = LedgerEntry.objects.filter(lead=lead, kind=LedgerEntry.Kind.LEAD_SOLD).values_list("advertiser_id")
    assert sorted(sold_to) == sorted([(acme.pk,), (other.advertiser_id,)])


def test_a_buyer_that_lists_the_lead_is_never_pinged_and_the_others_still_are(buyers, offer, sellable):
    listing = ping_buyer(offer, buyers, bid="9.00")  # the highest bid, were it asked
    other = ping_buyer(offer, buyers, bid="6.00")
    lead = sellable(email="Listed.Person@Example.com")
    buyer_suppression_add(advertiser=listing.advertiser, hashes_by_kind={"email": [email_hash(lead.email)]})

    auction = run_auction(lead)

    assert [path for path, _body in buyers.bodies("/ping")] == [f"/{other.slug}/ping"]
    assert not auction.bids.filter(destination=listing).exists()
    assert (auction.winner, auction.price) == (other, Decimal("6.00"))


def test_caps_and_credit_limits_hold_in_an_auction(buyers, offer, sellable):
    capped = ping_buyer(offer, buyers, bid=20, route={"daily_cap": 1})
    prepaid = ping_buyer(offer, buyers, bid=15)
    BuyerAccount.objects.create(advertiser=prepaid.advertiser, currency="USD", credit_limit=0)
    ledger_record_payment(amount=Decimal("10.00"), currency="USD", advertiser=prepaid.advertiser, reference="t1")
    cheap = ping_buyer(offer, buyers, bid=6)

    first = run_auction(sellable())
    assert first.winner == capped
    assert bid_of(first, prepaid).post_outcome == ""  # not reached

    second = run_auction(sellable())
    assert not second.bids.filter(destination=capped).exists()  # at its cap: not pinged
    assert bid_of(second, prepaid).post_outcome == AuctionBid.Post.SKIPPED
    assert "credit limit" in bid_of(second, prepaid).post_reason  # 15.00 bid, 10.00 paid in
    assert (second.winner, second.price) == (cheap, Decimal("6.00"))


def test_an_unconsented_lead_is_never_auctioned(buyers, offer, sellable, capture):
    ping_buyer(offer, buyers, bid=9)
    lead = capture(email="no.consent@example.com", first_name="Jo", country="US")
    assert lead.is_billable and not lead.consent
    entry = lead.outbox_entries.get(kind=OutboxEntry.Kind.AUCTION)
    assert outbox_process(entry_id=entry.pk) == "done"
    assert not lead.auctions.exists() and buyers.requests == []
    assert "consent" in OutboxEntry.objects.get(pk=entry.pk).payload["skipped"]


def test_the_selector_leaves_out_buyers_that_do_not_take_the_lead(buyers, offer, sellable):
    takes_it = ping_buyer(offer, buyers, bid=9)
    ping_buyer(offer, buyers, bid=9, route={"accepted_countries": ["CA"]})
    ping_buyer(offer, buyers, bid=9, is_active=False)
    lead = sellable()
    assert [route.destination for route in auction_eligible_destinations(lead)] == [takes_it]


def test_staff_see_the_auction_on_the_lead_page_and_in_its_list(buyers, offer, sellable, client, superuser):
    winner = ping_buyer(offer, buyers, bid="7.25", name="Sunny Leads")
    ping_buyer(offer, buyers, answer=(200, b"nope", 0.0), name="Broken Bidder")
    lead = sellable()
    run_auction(lead)
    client.force_login(superuser)

    page = client.get(reverse("admin:leads_lead_change", args=[lead.pk])).content.decode()
    assert "Auctions" in page and "Sunny Leads: bid 7.25 → accepted" in page and "Broken Bidder: error" in page

    listing = client.get(reverse("admin:leads_auction_changelist")).content.decode()
    assert "Sunny Leads" in listing and "7.25 USD" in listing
    auction = lead.auctions.get()
    detail = client.get(reverse("admin:leads_auction_change", args=[auction.pk])).content.decode()
    assert winner.name in detail and "not JSON" in detail
    assert 'name="_save"' not in detail and 'name="_continue"' not in detail  # a log: nothing to save


def test_the_empty_auction_list_says_what_to_do(client, superuser):
    client.force_login(superuser)
    page = client.get(reverse("admin:leads_auction_changelist")).content.decode()
    assert "sell by auction" in page


def test_staff_run_the_auction_again_for_an_unsold_lead(buyers, offer, sellable, client, superuser):
    bidder = ping_buyer(offer, buyers, bid="4.00")  # under the floor: unsold
    lead = sellable()
    first = run_auction(lead)
    assert first.status == Auction.Status.UNSOLD
    buyers.answers[f"/{bidder.slug}/ping"] = (200, b'{"bid": 5.5, "bid_id": "b2"}', 0.0)

    client.force_login(superuser)
    response = client.post(
        reverse("admin:leads_auction_changelist"),
        {"action": "run_again", "_selected_action": [first.pk]},
        follow=True,
    )
    assert "1 lead(s) will be auctioned again" in response.content.decode()
    again = run_auction(lead)
    assert again.pk != first.pk and again.requested_by == superuser
    assert (again.status, again.price) == (Auction.Status.SOLD, Decimal("5.50"))
    # Sold now: asking again does nothing.
    assert auctions_rerun(leads=Lead.objects.filter(pk=lead.pk)) == 0


def test_an_auction_interrupted_mid_way_frees_its_reserved_buyer(buyers, offer, sellable):
    bidder = ping_buyer(offer, buyers, bid=9)
    lead = sellable()
    stuck = Auction.objects.create(lead=lead, offer=offer, floor_price=5, currency="USD")
    reserved = Delivery.objects.create(lead=lead, destination=bidder, price=9, currency="USD")
    AuctionBid.objects.create(auction=stuck, destination=bidder, outcome="bid", amount=9, delivery=reserved)
    # The killed worker's entry names its auction, and is due again once its claim runs out.
    lead.outbox_entries.filter(kind=OutboxEntry.Kind.AUCTION).update(payload={"auction": stuck.pk})

    auction = run_auction(lead)

    stuck.refresh_from_db()
    reserved.refresh_from_db()
    assert stuck.status == Auction.Status.INTERRUPTED
    assert reserved.status == Delivery.Status.FAILED
    # The buyer already had the lead (its post unanswered): it is not asked again.
    assert auction.status == Auction.Status.UNSOLD and auction.buyers_pinged == 0


def test_running_again_a_failed_auction_frees_the_post_its_stopped_worker_reserved(buyers, offer, sellable):
    bidder = ping_buyer(offer, buyers, bid=9)
    other = ping_buyer(offer, buyers, bid=7)
    lead = sellable()
    stuck = Auction.objects.create(lead=lead, offer=offer, floor_price=5, currency="USD")
    reserved = Delivery.objects.create(lead=lead, destination=bidder, price=9, currency="USD")
    AuctionBid.objects.create(auction=stuck, destination=bidder, outcome="bid", amount=9, delivery=reserved)
    # Its worker stopped mid-way, again and again, until the outbox failed the entry: staff run it again.
    lead.outbox_entries.filter(kind=OutboxEntry.Kind.AUCTION).update(status="failed", payload={"auction": stuck.pk})

    assert auctions_rerun(leads=Lead.objects.filter(pk=lead.pk)) == 1
    auction = run_auction(lead)

    stuck.refresh_from_db()
    reserved.refresh_from_db()
    assert (stuck.status, reserved.status) == (Auction.Status.INTERRUPTED, Delivery.Status.FAILED)
    # Sold once: the buyer whose post went unanswered had the lead, and is not asked again.
    assert (auction.status, auction.winner) == (Auction.Status.SOLD, other)
    assert Delivery.objects.filter(lead=lead, status__in=["pending", "accepted"]).count() == 1


def test_a_captured_lead_is_auctioned_after_commit(buyers, offer, capture, django_capture_on_commit_callbacks):
    winner = ping_buyer(offer, buyers, bid=6)
    with django_capture_on_commit_callbacks(execute=True):
        lead = capture(email="fresh@example.com", first_name="Jo", country="US", consent="yes")
    assert lead.auctions.get().winner == winner
    assert lead.outbox_entries.get(kind=OutboxEntry.Kind.AUCTION).status == OutboxEntry.Status.DONE


def test_a_batch_runs_its_auctions_side_by_side(buyers, offer, sellable):
    ping_buyer(offer, buyers, bid=6, delay=0.3)
    leads = [sellable() for _ in range(4)]
    entries = [lead.outbox_entries.get(kind=OutboxEntry.Kind.AUCTION).pk for lead in leads]

    assert set(outbox_drain(entry_ids=entries).values()) == {"done"}
    auctions = Auction.objects.filter(lead__in=leads)
    assert [auction.status for auction in auctions] == ["sold"] * 4
    # Side by side: the last of the four opened before the first one ended (one after another, each
    # would have opened only once the one before had ended, its buyer's 300 ms answer included).
    last_opened = max(auction.started_at for auction in auctions)
    first_ended = min(auction.finished_at for auction in auctions)
    assert last_opened < first_ended


def test_a_ping_post_buyer_without_its_ping_url_or_bid_path_is_refused_with_the_reason(client, superuser, offer):
    client.force_login(superuser)
    response = client.post(
        reverse("admin:leads_deliverydestination_add"),
        {
            "advertiser": offer.advertiser_id,
            "name": "Half-set bidder",
            "kind": "ping",
            "url": "https://buyer.example/post",
            "field_mapping": "{}",
            "headers": "{}",
            "timeout_seconds": "10",
            "auth": "none",
            "ping_fields": ["country", "email"],
            "routes-TOTAL_FORMS": "0",
            "routes-INITIAL_FORMS": "0",
            "secrets-TOTAL_FORMS": "0",
            "secrets-INITIAL_FORMS": "0",
        },
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert "needs a ping URL" in page and "which field of the ping&#x27;s answer holds the bid" in page
    assert not DeliveryDestination.objects.filter(name="Half-set bidder").exists()


def test_marketing_reads_the_auction_log_and_managers_run_auctions_again(client, staff_user_in):
    client.force_login(staff_user_in("Marketing"))
    page = client.get(reverse("admin:leads_auction_changelist"))
    assert page.status_code == 200 and "run_again" not in page.content.decode()
    client.force_login(staff_user_in("Managers"))
    page = client.get(reverse("admin:leads_auction_changelist"))
    assert page.status_code == 200 and "run_again" in page.content.decode()
    assert reverse("admin:leads_auction_changelist") in client.get(reverse("admin:index")).content.decode()


def test_an_exclusive_lead_another_buyer_holds_is_not_sold_to_a_bidder_too(buyers, offer, sellable):
    bidder = ping_buyer(offer, buyers, bid=10)
    lead = sellable()
    # Staff sent the lead to another buyer outside the auction; that delivery is still being tried.
    elsewhere = DeliveryDestination.objects.create(
        advertiser=AdvertiserFactory(), name="Sent by staff", url=buyers.url("/elsewhere/leads")
    )
    Delivery.objects.create(lead=lead, destination=elsewhere, price=Decimal("8.00"), currency="USD")

    auction = run_auction(lead)

    assert auction.status == Auction.Status.UNSOLD and auction.sold_count == 0
    skipped = bid_of(auction, bidder)
    assert skipped.post_outcome == AuctionBid.Post.SKIPPED
    assert skipped.post_reason == "not sold: the lead is already held by 1 buyer (the offer sells it to 1)"
    assert buyers.bodies("/post") == []  # the full lead went to no bidder
    assert not Delivery.objects.filter(lead=lead, destination=bidder).exists()
    assert not LedgerEntry.objects.filter(lead=lead, kind=LedgerEntry.Kind.LEAD_SOLD).exists()
