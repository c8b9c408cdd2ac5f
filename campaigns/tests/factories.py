import datetime
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from campaigns.models import Advertiser, Campaign, Click, DailyStat, LandingPage, Offer, QuizQuestion, TrafficSource


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", "correct horse battery staple")

    @factory.post_generation
    def save_password(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class TrafficSourceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TrafficSource

    name = factory.Sequence(lambda n: f"Source {n}")
    kind = TrafficSource.Kind.PUSH
    click_id_param = "clickid"


class AdvertiserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Advertiser

    name = factory.Sequence(lambda n: f"Advertiser {n}")


class OfferFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Offer

    advertiser = factory.SubFactory(AdvertiserFactory)
    name = factory.Sequence(lambda n: f"Offer {n}")
    payout_per_lead = Decimal("20.00")
    payout_per_sale = Decimal("150.00")


class CampaignFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Campaign

    name = factory.Sequence(lambda n: f"Campaign {n}")
    slug = factory.Sequence(lambda n: f"campaign-{n}")
    traffic_source = factory.SubFactory(TrafficSourceFactory)
    offer = factory.SubFactory(OfferFactory)
    status = Campaign.Status.ACTIVE
    bid = Decimal("0.05")


class LandingPageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = LandingPage

    campaign = factory.SubFactory(CampaignFactory)
    name = factory.Sequence(lambda n: f"Landing {n}")
    slug = factory.Sequence(lambda n: f"landing-{n}")
    fields = ["email", "first_name"]
    required_fields = ["email"]


class QuizQuestionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = QuizQuestion

    landing_page = factory.SubFactory(LandingPageFactory, kind=LandingPage.Kind.QUIZ)
    key = factory.Sequence(lambda n: f"question_{n}")
    text = "When would you like to start?"
    options = ["This month", "Later"]


class DailyStatFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DailyStat

    campaign = factory.SubFactory(CampaignFactory)
    offer = factory.SelfAttribute("campaign.offer")
    traffic_source = factory.SelfAttribute("campaign.traffic_source")
    date = factory.LazyFunction(lambda: timezone.localdate() - datetime.timedelta(days=1))
    impressions = 10_000
    clicks = 100
    spend = Decimal("12.50")


class ClickFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Click

    campaign = factory.SubFactory(CampaignFactory)
    traffic_source = factory.SelfAttribute("campaign.traffic_source")
    offer = factory.SelfAttribute("campaign.offer")
    country = "US"
    device_type = "mobile"
