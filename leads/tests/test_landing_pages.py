"""Landing pages, quiz funnels and pre-landers as a visitor (and the staff reading the stored lead) sees them."""

import re
import time
from html import unescape

import pytest
from django.db import DatabaseError
from django.test import Client

from campaigns.models import Campaign, LandingPage
from campaigns.services import campaign_pause
from campaigns.tests.factories import CampaignFactory, ClickFactory, LandingPageFactory, QuizQuestionFactory
from leads.forms import dump_state, load_state
from leads.models import Door, Lead, LeadEvent
from leads.services.consent import consent_certificate_verify
from leads.tests.factories import QualificationRuleFactory

pytestmark = pytest.mark.django_db

BROWSER = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)
CONSENT = "I agree that Sunny Roofs may call or email me about solar panels."
GOOD_CONTACT = {
    "email": "Mary.Ann@Example.COM",
    "phone": "(650) 555-1212",
    "first_name": "mary ann",
    "last_name": "McDonald",
    "country": "US",
    "company_size": "25",
    "message": "The roof faces south.",
    "consent": "on",
}


@pytest.fixture(autouse=True)
def _every_lead_has_a_consent_certificate_that_verifies():
    """Whatever a test here sends, each landing-page or quiz lead it stored got its certificate."""
    yield
    for lead in Lead.objects.filter(door__in=[Door.LANDING_PAGE, Door.QUIZ]):
        assert lead.consent_certificate_id is not None, lead
        assert consent_certificate_verify(lead.consent_certificate).matches


@pytest.fixture
def page():
    campaign = CampaignFactory(slug="solar-us", offer__name="Solar quote")
    return LandingPageFactory(
        campaign=campaign,
        slug="solar-quote",
        action="quote",
        headline="Get your solar quote",
        fields=["email", "phone", "first_name", "last_name", "country", "company_size", "message"],
        required_fields=["email"],
        consent_text=CONSENT,
        consent_version="2024-05",
        consent_required=True,
        cta_label="Get my quote",
    )


@pytest.fixture
def no_minimum_form_time(settings):
    """Tests post right after opening the page; the "too fast" rule has its own tests."""
    settings.LEAD_MIN_FORM_SECONDS = 0


def hidden_value(response, name: str) -> str:
    match = re.search(rf'<input type="hidden" name="{name}" value="([^"]*)"', response.content.decode())
    assert match, f"no hidden {name!r} field on the page"
    return unescape(match.group(1))


def open_page(client, page, **query):
    response = client.get(page.get_absolute_url(), query, HTTP_USER_AGENT=BROWSER)
    assert response.status_code == 200
    return response


def send(client, page, *, state: str | None, user_agent: str = BROWSER, **fields):
    data = {**fields} if state is None else {"state": state, **fields}
    return client.post(page.get_absolute_url(), data, HTTP_USER_AGENT=user_agent)


def send_contact(client, page, *, user_agent: str = BROWSER, **changes):
    """Open the form, then send the good contact details with the given changes (None: leave out)."""
    state = hidden_value(open_page(client, page), "state")
    fields = {name: value for name, value in {**GOOD_CONTACT, **changes}.items() if value is not None}
    return send(client, page, state=state, user_agent=user_agent, **fields)


# --- the form page ------------------------------------------------------------------------------


def test_form_page_shows_its_fields_consent_csrf_token_and_a_hidden_honeypot(client, page):
    response = open_page(client, page)

    html = response.content.decode()
    assert "Get your solar quote" in html
    for label in ("Email", "Phone", "First name", "Last name", "Country", "Company size (employees)", "Message"):
        assert f">{label}:</label>" in html, label
    assert CONSENT in html
    assert 'name="consent"' in html
    assert 'name="csrfmiddlewaretoken"' in html
    assert "Get my quote</button>" in html
    # One honeypot input, inside the off-screen block people never see.
    assert html.count('name="website"') == 1
    assert re.search(r'<div class="hp" aria-hidden="true">.*?name="website".*?</div>', html)
    assert "no-cache" in response["Cache-Control"]


def test_click_id_in_the_url_is_carried_in_the_signed_state_field(client, page):
    response = open_page(client, page, click_id="src-123")

    state = load_state(hidden_value(response, "state"))
    assert state["click_id"] == "src-123"
    assert state["answers"] == {}
    assert hidden_value(response, "step") == "0"


# --- a good submission --------------------------------------------------------------------------


def test_good_submission_stores_one_valid_normalised_lead_and_thanks_the_visitor(client, page, no_minimum_form_time):
    response = send_contact(client, page)

    assert response.status_code == 302
    assert response["Location"] == "/l/solar-quote/thanks/"
    lead = Lead.objects.get()
    assert lead.validity == "valid", lead.validity_reasons
    assert lead.validity_reasons == []
    assert lead.email == "mary.ann@example.com"
    assert lead.phone == "+16505551212"
    assert (lead.first_name, lead.last_name) == ("Mary Ann", "McDonald")
    assert lead.country == "US"
    assert lead.company_size == 25
    assert lead.message == "The roof faces south."
    assert (lead.campaign, lead.landing_page, lead.door) == (page.campaign, page, Door.LANDING_PAGE)
    assert (lead.action, lead.lead_type) == ("quote", "hard")
    assert (lead.consent, lead.consent_text, lead.consent_version) == (True, CONSENT, "2024-05")
    assert lead.consent_at is not None
    assert lead.user_agent == BROWSER and lead.device_type == "desktop"
    assert str(lead.ip) == "127.0.0.1"
    assert LeadEvent.objects.filter(lead=lead, kind=LeadEvent.Kind.CAPTURED).count() == 1

    thanks = client.get(response["Location"])
    assert thanks.status_code == 200
    assert "Thank you!" in thanks.content.decode()
    assert "solar quote" in thanks.content.decode()


def test_names_typed_in_mixed_case_are_kept_as_typed(client, page, no_minimum_form_time):
    send_contact(client, page, first_name="JOHN", last_name="van Dijk")

    lead = Lead.objects.get()
    assert (lead.first_name, lead.last_name) == ("John", "van Dijk")


def test_a_name_typed_with_a_no_break_space_keeps_its_space(client, page, no_minimum_form_time):
    response = send_contact(client, page, first_name="Mary\u00a0Ann", message="Roof\u2028Shed")

    assert response.status_code == 302
    assert (Lead.objects.get().first_name, Lead.objects.get().message) == ("Mary Ann", "Roof\nShed")


def test_page_with_its_own_thank_you_url_sends_the_visitor_there(client, page, no_minimum_form_time):
    page.thank_you_url = "https://sunny-roofs.example/thanks?from=quote"
    page.save()

    response = send_contact(client, page)

    assert response.status_code == 302
    assert response["Location"] == "https://sunny-roofs.example/thanks?from=quote"
    assert Lead.objects.count() == 1


def test_click_id_from_the_url_links_the_tracked_click_and_its_sub_ids(client, page, no_minimum_form_time):
    click = ClickFactory(campaign=page.campaign, click_id="src-123", sub_ids={"sub1": "zone9", "creative": "cr7"})
    state = hidden_value(open_page(client, page, click_id="src-123"), "state")

    response = send(client, page, state=state, **GOOD_CONTACT)

    assert response.status_code == 302
    lead = Lead.objects.get()
    assert lead.click_id == "src-123"
    assert lead.tracked_click == click
    assert lead.sub_ids == {"sub1": "zone9", "creative": "cr7"}


def test_click_id_without_a_tracked_click_of_this_campaign_is_kept_but_links_nothing(
    client, page, no_minimum_form_time
):
    ClickFactory(click_id="src-123", sub_ids={"sub1": "other-campaign"})  # another campaign's click
    state = hidden_value(open_page(client, page, click_id="src-123"), "state")

    send(client, page, state=state, **GOOD_CONTACT)

    lead = Lead.objects.get()
    assert lead.click_id == "src-123"
    assert lead.tracked_click is None
    assert lead.sub_ids == {}


# --- what the visitor can fix -------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"email": None}, "This field is required."),
        ({"email": "mary@@example.com"}, "Enter a valid email address, like name@example.com."),
        ({"email": "mary@localhost"}, "Enter a valid email address, like name@example.com."),
        ({"email": "mary\u200b@example.com"}, "Enter a valid email address, like name@example.com."),
        ({"email": "m\u0430ry@example.com"}, "Enter a valid email address, like name@example.com."),
        ({"phone": "555-12"}, "Enter a valid phone number for US."),
        ({"consent": None}, "This field is required."),
        ({"first_name": "x" * 10_000}, "Ensure this value has at most 100 characters (it has 10000)."),
        ({"message": "x" * 10_000}, "Ensure this value has at most 5000 characters (it has 10000)."),
        ({"company_size": "many"}, "Enter a whole number."),
        ({"company_size": "-3"}, "Ensure this value is greater than or equal to 0."),
        ({"country": "XX"}, "Select a valid choice. XX is not one of the available choices."),
        ({"first_name": "Mary\x00Ann"}, "Null characters are not allowed."),
    ],
    ids=[
        "email missing",
        "email malformed",
        "email without a domain",
        "email with a zero-width space",
        "email with a Cyrillic a",
        "phone invalid",
        "consent unchecked",
        "10 kB name",
        "10 kB message",
        "company size not a number",
        "company size negative",
        "unknown country",
        "null character",
    ],
)
def test_field_error_shows_the_form_again_with_the_message_and_stores_nothing(
    client, page, no_minimum_form_time, changes, message
):
    response = send_contact(client, page, **changes)

    assert response.status_code == 400
    assert message in unescape(response.content.decode())
    assert 'class="errorlist' in response.content.decode()
    assert Lead.objects.count() == 0


def test_form_shown_again_keeps_what_was_typed_and_can_then_be_sent(client, page, no_minimum_form_time):
    response = send_contact(client, page, phone="555-12")

    assert response.status_code == 400
    html = response.content.decode()
    assert 'value="Mary.Ann@Example.COM"' in html
    assert "The roof faces south." in html
    assert CONSENT in html
    # The re-shown page carries a valid state, so fixing the phone is enough.
    fixed = send(client, page, state=hidden_value(response, "state"), **GOOD_CONTACT)
    assert fixed.status_code == 302
    assert Lead.objects.get().phone == "+16505551212"


def test_page_asking_email_and_phone_needs_at_least_one_of_them(client, page, no_minimum_form_time):
    page.required_fields = []
    page.consent_required = False
    page.save()

    response = send_contact(client, page, email="", phone="")

    assert response.status_code == 400
    assert "Give an email address or a phone number so we can reach you." in response.content.decode()
    assert Lead.objects.count() == 0


def test_local_phone_number_without_a_known_country_asks_for_the_country_code(client, page, no_minimum_form_time):
    page.fields = ["email", "phone", "first_name"]
    page.save()

    response = send_contact(client, page, country=None)

    assert response.status_code == 400
    assert "Enter a valid phone number (start with + and the country code)." in response.content.decode()
    assert Lead.objects.count() == 0


def test_local_phone_number_uses_the_country_from_the_proxy_header(client, page, no_minimum_form_time):
    page.fields = ["email", "phone", "first_name"]
    page.save()
    state = hidden_value(open_page(client, page), "state")
    fields = {name: GOOD_CONTACT[name] for name in ("email", "phone", "first_name", "consent")}

    response = client.post(page.get_absolute_url(), {"state": state, **fields}, HTTP_CF_IPCOUNTRY="US")

    assert response.status_code == 302
    lead = Lead.objects.get()
    assert (lead.phone, lead.country) == ("+16505551212", "US")


def ask_email_and_phone_only(page, *targets: str) -> None:
    """The page asks for an email and a phone, no country; its campaign targets these countries."""
    page.fields = ["email", "phone"]
    page.save()
    if targets:
        page.campaign.target_countries = list(targets)
        page.campaign.save()


def send_phone(client, page, phone: str, *, state: str, query: str = "", **headers):
    return client.post(
        page.get_absolute_url() + query,
        {"state": state, "email": "ann@example.com", "phone": phone, "consent": "on"},
        HTTP_USER_AGENT=BROWSER,
        **headers,
    )


def test_local_phone_number_without_a_known_country_is_read_in_the_campaigns_target_and_stored_in_its_own(
    client, page, no_minimum_form_time
):
    ask_email_and_phone_only(page, "US")

    response = send_contact(client, page, country=None)

    assert response.status_code == 302
    lead = Lead.objects.get()
    assert (lead.country, lead.phone, lead.validity) == ("US", "+16505551212", "valid")


def test_local_phone_number_is_read_and_stored_in_the_country_parameter_of_the_pages_link(
    client, page, no_minimum_form_time
):
    ask_email_and_phone_only(page)
    state = hidden_value(open_page(client, page, country="gb"), "state")

    response = send_phone(client, page, "020 7946 0958", state=state, query="?country=gb")

    assert response.status_code == 302
    lead = Lead.objects.get()
    assert (lead.country, lead.phone, lead.validity) == ("GB", "+442079460958", "valid")


def test_a_visitor_from_a_country_the_campaign_does_not_target_has_the_phone_read_in_their_own(
    client, page, no_minimum_form_time
):
    ask_email_and_phone_only(page, "US")
    state = hidden_value(open_page(client, page), "state")

    refused = send_phone(client, page, "(650) 555-1212", state=state, HTTP_CF_IPCOUNTRY="GB")
    sent = send_phone(client, page, "020 7946 0958", state=state, HTTP_CF_IPCOUNTRY="GB")

    assert refused.status_code == 400
    assert "Enter a valid phone number for GB." in refused.content.decode()
    assert sent.status_code == 302
    lead = Lead.objects.get()
    assert (lead.country, lead.phone) == ("GB", "+442079460958")
    assert lead.validity_reasons == ["off_target_country: GB not in US"]  # still told apart from the targeted


def test_the_phone_is_read_where_the_form_read_it_when_the_tracked_click_names_another_country(
    client, page, no_minimum_form_time
):
    ask_email_and_phone_only(page, "US", "DE")
    ClickFactory(campaign=page.campaign, click_id="clk-de", country="DE")  # tracked from a German visit
    state = hidden_value(open_page(client, page, click_id="clk-de"), "state")

    response = send_phone(client, page, "(650) 555-1212", state=state)

    assert response.status_code == 302
    lead = Lead.objects.get()
    # The form took the number as the campaign's first target reads it: the lead keeps that number,
    # not +49 650 5551212, and the click's country.
    assert (lead.country, lead.phone, lead.validity) == ("DE", "+16505551212", "valid")


def test_a_visitor_no_one_placed_is_stored_in_the_country_of_their_international_number(
    client, page, no_minimum_form_time
):
    ask_email_and_phone_only(page, "US")
    state = hidden_value(open_page(client, page), "state")

    response = send_phone(client, page, "+44 20 7946 0958", state=state)

    assert response.status_code == 302
    lead = Lead.objects.get()
    # Not the campaign's first target: a visitor from elsewhere is still told apart.
    assert (lead.country, lead.phone) == ("GB", "+442079460958")
    assert lead.validity_reasons == ["off_target_country: GB not in US"]


def test_garbage_step_and_state_are_stored_as_suspect_not_a_server_error(client, page):
    response = client.post(
        page.get_absolute_url(),
        {**GOOD_CONTACT, "state": "not-a-token", "step": "abc"},
        HTTP_USER_AGENT=BROWSER,
    )

    assert response.status_code == 302
    assert Lead.objects.get().validity == "suspect"


# --- bots and forged submissions are stored, flagged and never told -----------------------------


def test_filled_honeypot_redirects_as_usual_but_stores_an_invalid_lead(client, page, no_minimum_form_time):
    response = send_contact(client, page, website="https://cheap-pills.example")

    assert response.status_code == 302
    assert response["Location"] == "/l/solar-quote/thanks/"
    lead = Lead.objects.get()
    assert lead.validity == "invalid"
    assert "honeypot: the hidden field was filled" in lead.validity_reasons


def test_bot_user_agent_redirects_as_usual_but_stores_an_invalid_lead(client, page, no_minimum_form_time):
    response = send_contact(client, page, user_agent="python-requests/2.31.0")

    assert response.status_code == 302
    lead = Lead.objects.get()
    assert lead.validity == "invalid"
    assert "bot: automated user agent" in lead.validity_reasons


def test_a_form_sent_without_a_user_agent_stores_a_suspect_lead(client, page, no_minimum_form_time):
    response = send_contact(client, page, user_agent="")

    assert response.status_code == 302
    lead = Lead.objects.get()
    assert lead.validity == "suspect"
    assert lead.validity_reasons == ["no_user_agent: the form was sent without a user agent, as scripts do"]


def test_huge_honeypot_value_still_redirects_as_usual_and_stores_an_invalid_lead(client, page, no_minimum_form_time):
    response = send_contact(client, page, website="https://cheap-pills.example/" + "x" * 10_000)

    assert response.status_code == 302
    lead = Lead.objects.get()
    assert lead.validity == "invalid"
    assert "honeypot: the hidden field was filled" in lead.validity_reasons


def test_submission_without_state_token_is_stored_as_suspect_too_fast(client, page):
    response = send(client, page, state=None, **GOOD_CONTACT)

    assert response.status_code == 302
    lead = Lead.objects.get()
    assert lead.validity == "suspect"
    assert lead.validity_reasons == ["too_fast: sent 0.0s after the form opened"]


def test_forged_state_token_is_stored_as_suspect_and_its_click_id_is_not_trusted(client, page):
    ClickFactory(campaign=page.campaign, click_id="stolen-click")
    forged = dump_state({"started": time.time() - 600, "click_id": "stolen-click", "answers": {}})[:-2] + "xx"

    response = send(client, page, state=forged, **GOOD_CONTACT)

    assert response.status_code == 302
    lead = Lead.objects.get()
    assert lead.validity == "suspect"
    assert lead.validity_reasons == ["too_fast: sent 0.0s after the form opened"]
    assert lead.click_id == ""
    assert lead.tracked_click is None


def test_form_sent_faster_than_a_person_can_type_is_suspect(client, page, settings):
    settings.LEAD_MIN_FORM_SECONDS = 60

    response = send_contact(client, page)

    assert response.status_code == 302
    lead = Lead.objects.get()
    assert lead.validity == "suspect"
    assert len(lead.validity_reasons) == 1
    assert lead.validity_reasons[0].startswith("too_fast: sent 0.")


def test_form_sent_after_the_minimum_time_is_valid(client, page):
    state = dump_state({"started": time.time() - 30, "click_id": "", "answers": {}})

    send(client, page, state=state, **GOOD_CONTACT)

    assert Lead.objects.get().validity == "valid"


def test_one_showing_of_the_form_sent_again_with_other_leads_stores_them_as_suspect(client, page, no_minimum_form_time):
    # A script opens the form once, waits out the least time, then posts many leads with that state.
    state = hidden_value(open_page(client, page), "state")

    for email in ("first@example.com", "second@example.com", "third@example.com"):
        assert send(client, page, state=state, **{**GOOD_CONTACT, "email": email}).status_code == 302

    reasons = dict(Lead.objects.values_list("email", "validity_reasons"))
    replayed = ["replayed_form: the form, as shown once, was already sent with another lead"]
    assert reasons == {"first@example.com": [], "second@example.com": replayed, "third@example.com": replayed}
    assert Lead.objects.count() == 3  # stored all the same


def test_a_form_whose_lead_failed_to_save_may_be_sent_again_without_being_called_replayed(
    client, page, no_minimum_form_time, database_refuses_first_name
):
    database_refuses_first_name("Refused")
    state = hidden_value(open_page(client, page), "state")
    with pytest.raises(DatabaseError):
        send(client, page, state=state, **{**GOOD_CONTACT, "first_name": "Refused"})

    assert send(client, page, state=state, **GOOD_CONTACT).status_code == 302  # the visitor sends it again

    assert Lead.objects.get().validity_reasons == []


# --- which pages are open -----------------------------------------------------------------------


def test_unknown_page_is_not_found(client, page):
    assert client.get("/l/no-such-page/").status_code == 404
    assert client.post("/l/no-such-page/", GOOD_CONTACT).status_code == 404


def test_a_page_switched_off_is_not_found_but_still_stores_a_lead_already_in_flight(client, page, no_minimum_form_time):
    state = hidden_value(open_page(client, page), "state")  # a visitor has the form open
    page.is_active = False
    page.save()

    assert client.get(page.get_absolute_url()).status_code == 404
    response = send(client, page, state=state, **GOOD_CONTACT)
    # A post without a form we showed (a script that knows the address) is not taken any more.
    stateless = send(client, page, state=None, **{**GOOD_CONTACT, "email": "bot@example.com"})

    assert (response.status_code, stateless.status_code) == (302, 404)
    lead = Lead.objects.get()
    assert (lead.email, lead.validity, lead.landing_page) == (GOOD_CONTACT["email"].lower(), "valid", page)


def test_page_of_a_draft_campaign_is_not_found_and_takes_no_leads(client, page, no_minimum_form_time):
    Campaign.objects.filter(pk=page.campaign_id).update(status=Campaign.Status.DRAFT)

    assert client.get(page.get_absolute_url()).status_code == 404
    assert send(client, page, state=None, **GOOD_CONTACT).status_code == 404
    assert Lead.objects.count() == 0


def test_paused_campaign_hides_its_page_but_still_stores_a_lead_already_in_flight(client, page, no_minimum_form_time):
    state = hidden_value(open_page(client, page), "state")
    campaign_pause(campaign=page.campaign)

    assert client.get(page.get_absolute_url()).status_code == 404
    response = send(client, page, state=state, **GOOD_CONTACT)

    assert response.status_code == 302
    assert client.get(response["Location"]).status_code == 200
    lead = Lead.objects.get()
    assert lead.validity == "valid", lead.validity_reasons
    assert lead.campaign == page.campaign


def test_thank_you_page_of_an_unknown_page_is_not_found(client):
    assert client.get("/l/no-such-page/thanks/").status_code == 404


# --- CSRF ---------------------------------------------------------------------------------------


def test_post_without_csrf_token_is_refused_and_stores_nothing(page, no_minimum_form_time):
    client = Client(enforce_csrf_checks=True)
    state = hidden_value(open_page(client, page), "state")

    response = send(client, page, state=state, **GOOD_CONTACT)

    assert response.status_code == 403
    assert Lead.objects.count() == 0


def test_post_with_the_csrf_token_from_the_page_is_accepted(page, no_minimum_form_time):
    client = Client(enforce_csrf_checks=True)
    form_page = open_page(client, page)

    response = send(
        client,
        page,
        state=hidden_value(form_page, "state"),
        csrfmiddlewaretoken=hidden_value(form_page, "csrfmiddlewaretoken"),
        **GOOD_CONTACT,
    )

    assert response.status_code == 302
    assert Lead.objects.count() == 1


# --- quiz funnels -------------------------------------------------------------------------------


@pytest.fixture
def quiz():
    campaign = CampaignFactory(slug="solar-quiz-us")
    quiz = LandingPageFactory(
        campaign=campaign,
        slug="solar-quiz",
        kind=LandingPage.Kind.QUIZ,
        action="quiz",
        headline="Is solar right for you?",
        fields=["email", "first_name"],
        required_fields=["email"],
    )
    QuizQuestionFactory(
        landing_page=quiz, position=1, key="timeline", text="When would you like to start?", options=["Now", "Later"]
    )
    QuizQuestionFactory(
        landing_page=quiz,
        position=2,
        key="rooms",
        text="Which rooms need power?",
        kind="multiple",
        options=["Kitchen", "Garage", "Office"],
    )
    QuizQuestionFactory(landing_page=quiz, position=3, key="monthly_bill", text="Your monthly bill?", kind="number")
    return quiz


def answer(client, quiz, response, value):
    """Answer the step shown in `response` the way a browser without JavaScript would."""
    return client.post(
        quiz.get_absolute_url(),
        {"state": hidden_value(response, "state"), "step": hidden_value(response, "step"), "answer": value},
        HTTP_USER_AGENT=BROWSER,
    )


def send_quiz_contact(client, quiz, response, **fields):
    """Send the contact step shown in `response`."""
    return client.post(
        quiz.get_absolute_url(),
        {"state": hidden_value(response, "state"), "step": hidden_value(response, "step"), **fields},
        HTTP_USER_AGENT=BROWSER,
    )


def contact_step(client, quiz):
    """Answer every question; the response shows the contact step."""
    second = answer(client, quiz, open_page(client, quiz), "Now")
    third = answer(client, quiz, second, ["Garage"])
    return answer(client, quiz, third, "95.50")


def test_quiz_shows_one_question_per_step_and_stores_every_answer_with_the_lead(client, quiz, no_minimum_form_time):
    first = open_page(client, quiz, click_id="quiz-click")
    assert "Step 1 of 4" in first.content.decode()
    assert "Is solar right for you?" in first.content.decode()
    assert "When would you like to start?" in first.content.decode()
    assert 'type="radio" name="answer" value="Now"' in first.content.decode()

    second = answer(client, quiz, first, "Now")
    assert second.status_code == 200
    assert "Step 2 of 4" in second.content.decode()
    assert "Which rooms need power?" in second.content.decode()
    assert 'type="checkbox" name="answer" value="Garage"' in second.content.decode()

    third = answer(client, quiz, second, ["Kitchen", "Office"])
    assert third.status_code == 200
    assert "Your monthly bill?" in third.content.decode()

    contact = answer(client, quiz, third, "120")
    assert contact.status_code == 200
    assert "Step 4 of 4: where should we send your results?" in contact.content.decode()
    assert 'name="email"' in contact.content.decode()
    assert Lead.objects.count() == 0

    done = send_quiz_contact(client, quiz, contact, email="pat@example.com", first_name="Pat")

    assert done.status_code == 302
    assert done["Location"] == "/l/solar-quiz/thanks/"
    lead = Lead.objects.get()
    assert lead.door == Door.QUIZ
    assert lead.landing_page == quiz
    assert lead.answers == {"timeline": "Now", "rooms": ["Kitchen", "Office"], "monthly_bill": "120"}
    assert lead.click_id == "quiz-click"
    assert lead.validity == "valid", lead.validity_reasons
    assert (lead.action, lead.lead_type) == ("quiz", "soft")


def test_quiz_answer_that_is_not_an_option_shows_the_same_step_with_an_error(client, quiz, no_minimum_form_time):
    first = open_page(client, quiz)

    response = answer(client, quiz, first, "Next year")

    assert response.status_code == 400
    html = response.content.decode()
    assert "Step 1 of 4" in html
    assert "Select a valid choice. Next year is not one of the available choices." in html
    assert hidden_value(response, "step") == "0"
    # The visitor can pick a real option and go on.
    second = answer(client, quiz, response, "Later")
    assert second.status_code == 200
    assert "Step 2 of 4" in second.content.decode()


def test_quiz_required_question_left_unanswered_shows_the_same_step_with_an_error(client, quiz, no_minimum_form_time):
    second = answer(client, quiz, open_page(client, quiz), "Now")

    response = answer(client, quiz, second, [])

    assert response.status_code == 400
    assert "Step 2 of 4" in response.content.decode()
    assert "This field is required." in response.content.decode()


def test_quiz_number_question_refuses_text(client, quiz, no_minimum_form_time):
    second = answer(client, quiz, open_page(client, quiz), "Now")
    third = answer(client, quiz, second, ["Garage"])

    response = answer(client, quiz, third, "a lot")

    assert response.status_code == 400
    assert "Step 3 of 4" in response.content.decode()
    assert "Enter a number." in response.content.decode()
    assert Lead.objects.count() == 0


def test_quiz_number_answer_is_stored_as_a_plain_number(client, quiz, no_minimum_form_time):
    second = answer(client, quiz, open_page(client, quiz), "Now")
    third = answer(client, quiz, second, ["Garage"])
    contact = answer(client, quiz, third, "1e3")

    send_quiz_contact(client, quiz, contact, email="pat@example.com")

    assert Lead.objects.get().answers["monthly_bill"] == "1000"


def test_quiz_text_answer_nan_against_a_numeric_rule_is_stored_disqualified(client, quiz, no_minimum_form_time):
    QuizQuestionFactory(landing_page=quiz, position=4, key="budget", text="Your budget?", kind="text")
    QualificationRuleFactory(offer=quiz.campaign.offer, field="answers.budget", operator=">=", value="1000")
    fourth = contact_step(client, quiz)
    contact = answer(client, quiz, fourth, "nan")

    done = send_quiz_contact(client, quiz, contact, email="pat@example.com")

    assert done.status_code == 302
    assert Lead.objects.get().qualification_reasons == ["answers.budget >= 1000 (was nan)"]


def test_quiz_contact_step_with_an_error_keeps_the_answers(client, quiz, no_minimum_form_time):
    contact = contact_step(client, quiz)

    response = send_quiz_contact(client, quiz, contact, email="pat@@example.com")

    assert response.status_code == 400
    assert "Step 4 of 4" in response.content.decode()
    assert "Enter a valid email address, like name@example.com." in response.content.decode()
    assert Lead.objects.count() == 0
    done = send_quiz_contact(client, quiz, response, email="pat@example.com")
    assert done.status_code == 302
    assert Lead.objects.get().answers == {"timeline": "Now", "rooms": ["Garage"], "monthly_bill": "95.50"}


def test_quiz_steps_cannot_be_skipped_by_editing_the_step_field(client, quiz, no_minimum_form_time):
    first = open_page(client, quiz)

    response = client.post(
        quiz.get_absolute_url(),
        {"state": hidden_value(first, "state"), "step": "3", "email": "pat@example.com", "first_name": "Pat"},
        HTTP_USER_AGENT=BROWSER,
    )

    assert response.status_code == 400
    assert "Step 1 of 4" in response.content.decode()
    assert "This field is required." in response.content.decode()
    assert Lead.objects.count() == 0


def test_quiz_contact_step_sent_without_state_is_stored_as_suspect_without_answers(client, quiz):
    response = client.post(quiz.get_absolute_url(), {"step": "3", "email": "pat@example.com"}, HTTP_USER_AGENT=BROWSER)

    assert response.status_code == 302
    lead = Lead.objects.get()
    assert lead.door == Door.QUIZ
    assert lead.answers == {}
    assert lead.validity == "suspect"
    assert lead.validity_reasons == ["too_fast: sent 0.0s after the form opened"]


# --- pre-landers --------------------------------------------------------------------------------


@pytest.fixture
def prelander():
    return LandingPageFactory(
        campaign=CampaignFactory(slug="solar-story"),
        slug="solar-story",
        kind=LandingPage.Kind.PRELANDER,
        headline="How one town cut its power bills in half",
        next_url="https://offer.example/solar?src=push",
        cta_label="See if my home qualifies",
        fields=[],
        required_fields=[],
    )


def test_prelander_links_its_call_to_action_to_the_next_page_with_the_click_id(client, prelander):
    response = open_page(client, prelander, click_id="src-123")

    html = response.content.decode()
    assert "How one town cut its power bills in half" in html
    assert '<a class="cta" href="https://offer.example/solar?src=push&amp;click_id=src-123"' in html
    assert "See if my home qualifies</a>" in html
    assert Lead.objects.count() == 0


def test_prelander_without_click_id_links_the_next_page_as_it_is(client, prelander):
    response = open_page(client, prelander)

    assert 'href="https://offer.example/solar?src=push"' in response.content.decode()


def test_prelander_click_id_cannot_break_out_of_the_link(client, prelander):
    response = open_page(client, prelander, click_id='"><script>alert(1)</script>')

    html = response.content.decode()
    assert "<script>alert(1)" not in html
    assert "click_id=%22%3E%3Cscript%3Ealert%281%29%3C%2Fscript%3E" in html


def test_prelander_puts_the_click_id_in_the_query_not_the_fragment(client, prelander):
    prelander.next_url = "https://offer.example/solar?src=push#apply"
    prelander.save()

    response = open_page(client, prelander, click_id="src-123")

    assert 'href="https://offer.example/solar?src=push&amp;click_id=src-123#apply"' in response.content.decode()


# --- what a visitor meets: country, privacy policy, required phone --------------------------------
def country_shown(response) -> str:
    select = re.search(r'<select name="country".*?</select>', response.content.decode(), re.S)
    if select:
        chosen = re.search(r'<option value="([A-Z]{2})" selected>', select.group(0))
        return chosen.group(1) if chosen else ""
    field = re.search(r'<input[^>]*name="country"[^>]*>', response.content.decode()).group(0)
    value = re.search(r'value="([^"]*)"', field)
    return value.group(1) if value else ""


def test_the_form_starts_with_the_visitors_country_when_targeted_else_the_campaigns(client, page, settings):
    settings.COUNTRY_HEADER = "CF-IPCountry"
    page.campaign.target_countries = ["CA", "US"]
    page.campaign.save()

    assert country_shown(client.get("/l/solar-quote/", HTTP_CF_IPCOUNTRY="US")) == "US"
    assert country_shown(client.get("/l/solar-quote/", HTTP_CF_IPCOUNTRY="DE")) == "CA"  # not targeted
    assert country_shown(client.get("/l/solar-quote/?country=us")) == "US"  # the click's parameter
    page.campaign.target_countries = []
    page.campaign.save()
    assert country_shown(client.get("/l/solar-quote/", HTTP_CF_IPCOUNTRY="DE")) == "DE"


def test_the_form_links_its_privacy_policy_which_is_a_page(client, page):
    html = client.get("/l/solar-quote/").content.decode()
    policy = client.get("/privacy/")

    assert '<p class="privacy"><a href="/privacy/">Privacy policy</a></p>' in html
    assert policy.status_code == 200 and "have it erased" in policy.content.decode()
    page.privacy_url = "https://sunnyroofs.example/privacy"
    page.save()
    assert 'href="https://sunnyroofs.example/privacy"' in client.get("/l/solar-quote/").content.decode()


def test_the_phone_is_required_where_the_offer_needs_it(client, page, no_minimum_form_time):
    page.campaign.offer.required_fields = ["phone"]
    page.campaign.offer.save()
    form = client.get("/l/solar-quote/")

    response = client.post(
        "/l/solar-quote/",
        {**GOOD_CONTACT, "phone": "", "state": hidden_value(form, "state"), "step": "0"},
        HTTP_USER_AGENT=BROWSER,
    )

    assert response.status_code == 400 and "This field is required." in response.content.decode()
    assert 'name="phone"' in form.content.decode() and "required" in re.search(
        r'<input[^>]*name="phone"[^>]*>', form.content.decode()
    ).group(0)
