"""Believable demo data: one campaign per traffic source kind, 30 days of stats, clicks and leads, staff users.

Safe to run again: rows are looked up by their natural keys and nothing is duplicated.
"""

import datetime
import random
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from campaigns.models import Advertiser, Campaign, Click, DailyStat, LandingPage, Offer, QuizQuestion, TrafficSource
from campaigns.visitor import parse_user_agent
from leads.models import (
    BuyerAccount,
    DeliveryDestination,
    DeliveryRoute,
    Door,
    Lead,
    LeadOutcome,
    LeadStatus,
    OutboxEntry,
    Partner,
    QualificationRule,
    RoutePrice,
    SupplierPayout,
)
from leads.services import CaptureContext, lead_capture, lead_claim, lead_set_status, parse_submission
from leads.services.ledger import ledger_sync_media_spend
from leads.services.outbox import outbox_drain
from leads.services.outcomes import lead_record_outcome

DEMO_DAYS = 30
DEMO_PASSWORD = "leadcrm-demo"
DEMO_USERS = (
    # username, group (None: superuser), first name
    ("admin", None, "Ada"),
    ("marketer", "Marketing", "Mara"),
    ("sales", "Sales", "Sam"),
    ("manager", "Managers", "Max"),
)

SOURCES = (
    ("PushPros", TrafficSource.Kind.PUSH, "clickid", "https://pushpros.example/pb?clickid={click_id}&payout={payout}"),
    ("PopMax", TrafficSource.Kind.POP, "cid", "https://popmax.example/conv?cid={click_id}&sum={payout}&st={status}"),
    ("NativeReach", TrafficSource.Kind.NATIVE, "click_id", "https://nativereach.example/postback?click_id={click_id}"),
    ("Arb Search Feed", TrafficSource.Kind.SEARCH, "sclid", ""),
    ("DSP One", TrafficSource.Kind.PROGRAMMATIC, "imp_id", "https://dspone.example/s2s?id={click_id}&rev={payout}"),
    ("Social Ads", TrafficSource.Kind.SOCIAL, "fbclid", ""),
    ("DisplayNet", TrafficSource.Kind.DISPLAY, "dclid", "https://displaynet.example/pb?dclid={click_id}&event={event}"),
)

OFFERS = (
    # advertiser, offer, payout per lead, per sale, lead types, countries
    ("SolarBright Energy", "Home solar quote", "32.00", "240.00", ["hard"], ["US", "CA"]),
    ("CoverWise Insurance", "Car insurance quote", "18.50", "120.00", ["hard"], ["US"]),
    ("LearnFast Academy", "Free marketing webinar", "3.20", "49.00", ["soft"], ["US", "GB", "CA", "AU"]),
    ("LearnFast Academy", "Course trial", "6.00", "199.00", ["soft", "hard"], ["US", "GB"]),
)

CAMPAIGNS: tuple[tuple[str, str, str, str, str, str, list[str], list[str], str], ...] = (
    # slug, name, source, offer, bid model, bid, countries, devices, status
    (
        "push-solar-us",
        "Push — Solar quote US",
        "PushPros",
        "Home solar quote",
        "cpc",
        "0.045",
        ["US"],
        ["mobile"],
        "active",
    ),
    (
        "pop-webinar-tier1",
        "Pop — Webinar tier 1",
        "PopMax",
        "Free marketing webinar",
        "cpm",
        "1.80",
        ["US", "GB", "CA", "AU"],
        [],
        "active",
    ),
    (
        "native-solar-quiz",
        "Native — Solar savings quiz",
        "NativeReach",
        "Home solar quote",
        "cpc",
        "0.32",
        ["US", "CA"],
        [],
        "active",
    ),
    (
        "search-car-insurance",
        "Search arb — Car insurance",
        "Arb Search Feed",
        "Car insurance quote",
        "cpc",
        "0.55",
        ["US"],
        [],
        "active",
    ),
    (
        "dsp-course-trial",
        "Programmatic — Course trial",
        "DSP One",
        "Course trial",
        "cpm",
        "2.40",
        ["US", "GB"],
        ["desktop"],
        "active",
    ),
    (
        "social-webinar",
        "Social — Webinar signups",
        "Social Ads",
        "Free marketing webinar",
        "cpl",
        "2.10",
        ["US", "GB"],
        ["mobile", "tablet"],
        "active",
    ),
    (
        "display-solar-retarget",
        "Display — Solar retargeting",
        "DisplayNet",
        "Home solar quote",
        "cpm",
        "3.10",
        ["US"],
        [],
        "active",
    ),
    (
        "push-insurance-test",
        "Push — Insurance test",
        "PushPros",
        "Car insurance quote",
        "cpc",
        "0.03",
        ["US"],
        ["mobile"],
        "paused",
    ),
)

USER_AGENTS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
)
OTHER_COUNTRIES = ("DE", "IN", "BR", "NG")
FIRST_NAMES = ("Olivia", "Liam", "Emma", "Noah", "Ava", "Mason", "Sophia", "Lucas", "Mia", "Ethan", "Grace", "Omar")
LAST_NAMES = ("Smith", "Johnson", "Garcia", "Brown", "Miller", "Davis", "Martinez", "Wilson", "Taylor", "Nguyen")


class Command(BaseCommand):
    help = "Load demo campaigns, stats, clicks and staff users (idempotent). Refuses to run without DEBUG."

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="Run even with DEBUG off (never in production).")

    def handle(self, *args, force: bool, **options):
        if not settings.DEBUG and not force:
            raise CommandError(
                "seed_demo creates users with a known password; it runs only with DEBUG=true (or --force)."
            )
        with transaction.atomic():
            users = self._users()
            sources = self._traffic_sources()
            offers = self._offers()
            self._qualification_rules(offers)
            self._buyers(offers)
            campaigns = self._campaigns(sources, offers)
            for campaign in campaigns:
                self._landing_pages(campaign)
                self._daily_stats(campaign)
                self._clicks(campaign)
                self._leads(campaign)
        # After the commit, as the workers would: sell the leads to their buyers, then take a few back.
        self._sell_and_return(campaigns)
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data ready: {len(campaigns)} campaigns on {len(sources)} traffic sources, "
                f"{Lead.objects.count()} leads."
            )
        )
        self.stdout.write(f"Admin: {settings.SITE_URL}/admin/")
        for username, group in users:
            self.stdout.write(f"  login {username:<9} password {DEMO_PASSWORD}   ({group})")
        if settings.REQUIRE_STAFF_2FA:
            self.stdout.write(
                "  REQUIRE_STAFF_2FA is on: admin and manager set up an authenticator app at their first login."
            )

    def _traffic_sources(self) -> dict[str, TrafficSource]:
        sources = {}
        for name, kind, param, postback in SOURCES:
            sources[name], _ = TrafficSource.objects.get_or_create(
                name=name, defaults={"kind": kind, "click_id_param": param, "postback_url_template": postback}
            )
        return sources

    def _offers(self) -> dict[str, Offer]:
        offers = {}
        for advertiser_name, name, per_lead, per_sale, lead_types, countries in OFFERS:
            advertiser, _ = Advertiser.objects.get_or_create(
                name=advertiser_name,
                defaults={"contact_email": f"partners@{advertiser_name.split()[0].lower()}.example"},
            )
            offers[name], _ = Offer.objects.get_or_create(
                advertiser=advertiser,
                name=name,
                defaults={
                    "payout_per_lead": Decimal(per_lead),
                    "payout_per_sale": Decimal(per_sale),
                    "accepted_lead_types": lead_types,
                    "accepted_countries": countries,
                    "daily_lead_cap": 200,
                },
            )
        return offers

    def _campaigns(self, sources, offers) -> list[Campaign]:
        campaigns = []
        start = timezone.localdate() - datetime.timedelta(days=DEMO_DAYS)
        for slug, name, source, offer, bid_model, bid, countries, devices, status in CAMPAIGNS:
            campaign, _ = Campaign.objects.get_or_create(
                slug=slug,
                defaults={
                    "name": name,
                    "traffic_source": sources[source],
                    "offer": offers[offer],
                    "bid_model": bid_model,
                    "bid": Decimal(bid),
                    "daily_budget": Decimal("500"),
                    "total_budget": Decimal("20000"),
                    "start_date": start,
                    "status": status,
                    "target_countries": countries,
                    "target_device_types": devices,
                    # Low bars so the demo's few leads per zone are judged on the Placements page.
                    "placement_min_leads": 3,
                    "placement_min_validity_rate": Decimal("85"),
                },
            )
            campaigns.append(campaign)
        return campaigns

    def _landing_pages(self, campaign: Campaign) -> None:
        form_slug = f"{campaign.slug}-form"
        consent = "I agree to be contacted about my request by phone and email. See our privacy policy."
        # Solar qualifies home owners only, so every solar campaign's page asks (a quiz); it asks for a
        # quote at its end, so its leads are hard, as the solar buyer wants them.
        quiz = campaign.offer.name == "Home solar quote"
        prelander = campaign.traffic_source.kind == TrafficSource.Kind.SEARCH
        hard = "hard" in campaign.offer.accepted_lead_types
        form_page, _ = LandingPage.objects.get_or_create(
            slug=form_slug,
            defaults={
                "campaign": campaign,
                "name": f"{campaign.offer.name} — {'quiz' if quiz else 'form'}",
                "kind": LandingPage.Kind.QUIZ if quiz else LandingPage.Kind.FORM,
                "position": 1 if prelander else 0,
                "action": "quote" if hard else "webinar",
                "headline": f"Get your {campaign.offer.name.lower()}",
                "fields": ["first_name", "last_name", "email", "phone", "country"],
                "required_fields": ["email", "country"],
                "consent_text": consent,
                "consent_version": "2026-01",
                "consent_required": True,
            },
        )
        if quiz:
            for position, (key, text, options) in enumerate(
                (
                    ("home_owner", "Do you own your home?", ["Yes", "No"]),
                    (
                        "monthly_bill",
                        "What is your monthly electricity bill?",
                        ["Under $100", "$100–$200", "Over $200"],
                    ),
                    ("timeline", "When would you like to install?", ["This month", "In 3 months", "Just researching"]),
                )
            ):
                QuizQuestion.objects.get_or_create(
                    landing_page=form_page, key=key, defaults={"position": position, "text": text, "options": options}
                )
        if prelander:
            LandingPage.objects.get_or_create(
                slug=f"{campaign.slug}-prelander",
                defaults={
                    "campaign": campaign,
                    "name": "Advertorial pre-lander",
                    "kind": LandingPage.Kind.PRELANDER,
                    "position": 0,
                    "headline": "Drivers in your state are switching insurers. Here is why.",
                    "cta_label": "Compare quotes",
                    "next_url": form_page.get_absolute_url(),
                },
            )

    def _daily_stats(self, campaign: Campaign) -> None:
        rng = random.Random(campaign.slug)
        today = timezone.localdate()
        existing = set(campaign.daily_stats.values_list("date", flat=True))
        stats = []
        for days_ago in range(DEMO_DAYS, 0, -1):
            impressions = rng.randint(2_000, 15_000)
            clicks = int(impressions * rng.uniform(0.004, 0.025))
            if campaign.bid_model == Campaign.BidModel.CPM:
                spend = Decimal(impressions) / 1000 * campaign.bid
            elif campaign.bid_model == Campaign.BidModel.CPC:
                spend = Decimal(clicks) * campaign.bid
            else:
                spend = Decimal(clicks) * Decimal("0.12")
            date = today - datetime.timedelta(days=days_ago)
            if date not in existing:
                stats.append(
                    DailyStat(
                        campaign=campaign,
                        offer_id=campaign.offer_id,
                        traffic_source_id=campaign.traffic_source_id,
                        date=date,
                        impressions=impressions,
                        clicks=clicks,
                        spend=round(spend, 2),
                    )
                )
        DailyStat.objects.bulk_create(stats)
        ledger_sync_media_spend(days=[(campaign.pk, stat.date) for stat in stats])

    def _clicks(self, campaign: Campaign) -> None:
        if campaign.clicks.exists():
            return
        rng = random.Random(f"clicks-{campaign.slug}")
        now = timezone.now()
        clicks = []
        for days_ago in range(DEMO_DAYS, 0, -1):
            for _ in range(rng.randint(8, 30)):
                user_agent = rng.choice(USER_AGENTS)
                visitor = parse_user_agent(user_agent)
                targeted = campaign.target_countries or ["US"]
                country = rng.choice(targeted) if rng.random() < 0.92 else rng.choice(OTHER_COUNTRIES)
                clicks.append(
                    Click(
                        campaign=campaign,
                        traffic_source_id=campaign.traffic_source_id,
                        offer_id=campaign.offer_id,
                        created_at=now - datetime.timedelta(days=days_ago, seconds=rng.randint(0, 86_399)),
                        sub_ids={"zone": str(rng.randint(1000, 1040)), "creative": f"cr{rng.randint(1, 6)}"},
                        ip=f"203.0.113.{rng.randint(1, 254)}",
                        user_agent=user_agent,
                        device_type=visitor.device_type,
                        os=visitor.os,
                        browser=visitor.browser,
                        is_bot=visitor.is_bot,
                        country=country,
                        off_target_reasons=campaign.targeting_mismatches(
                            country=country, device_type=visitor.device_type, os=visitor.os
                        ),
                    )
                )
        Click.objects.bulk_create(clicks, batch_size=1000)

    def _buyers(self, offers: dict[str, Offer]) -> None:
        """Each advertiser takes its leads by email (no server needed) at a price per lead. Solar pays
        more for US leads than Canadian ones and has a daily cap, so some of its leads wait in the held
        queue. The webinar buyer has an account with a small credit limit: past it, its leads wait too."""
        for offer in offers.values():
            advertiser = offer.advertiser
            destination, _ = DeliveryDestination.objects.get_or_create(
                advertiser=advertiser,
                name=f"{advertiser.name} sales inbox",
                defaults={"kind": DeliveryDestination.Kind.EMAIL, "email_to": [advertiser.contact_email]},
            )
            route, _ = DeliveryRoute.objects.get_or_create(
                offer=offer,
                destination=destination,
                defaults={
                    "daily_cap": 25 if offer.name == "Home solar quote" else None,
                    "price_per_lead": offer.payout_per_lead,
                },
            )
            if offer.name == "Home solar quote":
                RoutePrice.objects.get_or_create(route=route, country="US", defaults={"price": Decimal("38.00")})
        BuyerAccount.objects.get_or_create(
            advertiser=offers["Free marketing webinar"].advertiser,
            currency="USD",
            defaults={"credit_limit": Decimal("1500.00")},
        )

    def _supplier(self) -> Partner:
        """An affiliate that sends the social webinar campaign its leads and earns per lead sold."""
        partner, _ = Partner.objects.get_or_create(name="Webinar affiliates (demo)", role=Partner.Role.SUPPLIER)
        campaign = Campaign.objects.get(slug="social-webinar")
        partner.campaigns.add(campaign)
        SupplierPayout.objects.get_or_create(
            partner=partner,
            campaign=campaign,
            defaults={"amount": Decimal("1.40"), "currency": "USD", "basis": SupplierPayout.Basis.SOLD},
        )
        return partner

    def _sell_and_return(self, campaigns: list[Campaign]) -> None:
        """Deliver the demo leads now (the workers would, a moment later), then have buyers return a
        few recent sold leads inside their offer's window, so margins show returns."""
        pending = OutboxEntry.objects.filter(
            kind=OutboxEntry.Kind.DELIVERY, status=OutboxEntry.Status.PENDING, lead__campaign__in=campaigns
        ).exclude(payload__has_key="held")
        # In batches, as a worker drains them (a batch reads the routes, caps and credit once), newest first.
        entry_ids = list(pending.values_list("pk", flat=True))
        for start in range(0, len(entry_ids), settings.OUTBOX_BATCH_SIZE):
            outbox_drain(entry_ids=entry_ids[start : start + settings.OUTBOX_BATCH_SIZE])
        now = timezone.now()
        sold = (
            Lead.objects.filter(
                campaign__in=campaigns,
                deliveries__status="accepted",
                created_at__gte=now - datetime.timedelta(days=5),
            )
            .exclude(status=LeadStatus.RETURNED)
            .order_by("pk")
        )
        for lead in list(sold)[::9]:
            lead_record_outcome(
                lead=lead,
                partner=None,
                kind=LeadOutcome.Kind.RETURNED,
                external_reference=f"demo-return-{lead.pk}",
                return_reason=LeadOutcome.ReturnReason.INVALID_CONTACT,
                note="phone disconnected",
            )

    def _qualification_rules(self, offers: dict[str, Offer]) -> None:
        rules = (
            ("Home solar quote", "answers.home_owner", "==", "Yes"),
            ("Car insurance quote", "country", "in", "US"),
            ("Course trial", "company_size", ">=", "5"),
        )
        for offer_name, field, operator, value in rules:
            QualificationRule.objects.get_or_create(
                offer=offers[offer_name], field=field, operator=operator, defaults={"value": value}
            )

    def _leads(self, campaign: Campaign) -> None:
        """Leads through the real pipeline, spread over the month; some worked, won or lost."""
        rng = random.Random(f"leads-{campaign.slug}")
        page = campaign.landing_pages.exclude(kind=LandingPage.Kind.PRELANDER).order_by("position").first()
        sales = get_user_model().objects.get(username="sales")
        supplier = self._supplier() if campaign.slug == "social-webinar" else None
        now = timezone.now()
        for number in range(rng.randint(18, 32)):
            key = f"demo:{campaign.slug}:{number}"
            if Lead.objects.filter(idempotency_key=key).exists():
                continue
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            domain = "mailinator.com" if rng.random() < 0.08 else rng.choice(("gmail.com", "outlook.com", "yahoo.com"))
            country = rng.choice(campaign.target_countries or ["US"])
            data = {
                "email": f"{first}.{last}{number}@{domain}".lower(),
                "phone": f"+1 650 555 01{rng.randint(0, 99):02d}" if country in ("US", "CA") else "",
                "first_name": first,
                "last_name": last,
                "country": country,
                "company_size": rng.choice((1, 8, 40, 250)),
                "consent": True,
                "answers": {"home_owner": rng.choice(("Yes", "Yes", "No"))} if page and page.kind == "quiz" else {},
                "sub_ids": {"zone": str(rng.randint(1000, 1005)), "creative": f"cr{rng.randint(1, 6)}"},
            }
            lead = lead_capture(
                campaign=campaign,
                submission=parse_submission(data),
                context=CaptureContext(
                    door=Door.API if supplier else Door.QUIZ if page and page.kind == "quiz" else Door.LANDING_PAGE,
                    partner=supplier,
                    landing_page=page,
                    ip=f"198.51.100.{rng.randint(1, 254)}",
                    user_agent=rng.choice(USER_AGENTS[:-1]) if rng.random() > 0.05 else USER_AGENTS[-1],
                    form_seconds=rng.uniform(1.0, 90.0),
                    idempotency_key=key,
                ),
            ).lead
            Lead.objects.filter(pk=lead.pk).update(
                created_at=now - datetime.timedelta(days=rng.randint(0, DEMO_DAYS - 1), minutes=rng.randint(0, 1439))
            )
            if not lead.is_billable:
                continue
            roll = rng.random()
            if roll < 0.45:
                lead_claim(lead=lead, user=sales)
                if roll < 0.15:
                    Lead.objects.filter(pk=lead.pk).update(next_follow_up=timezone.localdate())
            if roll < 0.35:
                lead_set_status(lead=lead, status=LeadStatus.CONTACTED, actor=sales)
            if roll < 0.12:
                amount = campaign.offer.payout_per_sale * Decimal(rng.choice(("1", "1.5", "2", "3")))
                lead_set_status(lead=lead, status=LeadStatus.WON, actor=sales, sale_amount=amount)
            elif 0.30 < roll < 0.35:
                lead_set_status(lead=lead, status=LeadStatus.LOST, actor=sales, reason="chose a competitor")

    def _users(self) -> list[tuple[str, str]]:
        User = get_user_model()
        printed = []
        for username, group_name, first_name in DEMO_USERS:
            user, _ = User.objects.get_or_create(
                username=username, defaults={"first_name": first_name, "email": f"{username}@leadcrm.example"}
            )
            user.is_staff = True
            user.is_superuser = group_name is None
            user.set_password(DEMO_PASSWORD)
            user.save()
            if group_name:
                user.groups.set([Group.objects.get(name=group_name)])
            printed.append((username, group_name or "superuser"))
        return printed
