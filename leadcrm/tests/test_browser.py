"""Journeys through the real admin and landing pages in Debian's Chromium, driven by Selenium.

Every page is checked for browser console errors (a failed asset, a script error, a blocked
Content-Security-Policy, an Alpine expression the CSP build refuses): any one fails the test. Every
policy violation is also written to the console as an error by a listener each page gets before its
own scripts run, so one Chromium does not log itself (a blocked inline style, say) fails too. Screenshots go to a temporary folder, or to
docs/screenshots/ with SAVE_SCREENSHOTS=1 (the README shows those).

One Chromium serves every test of a process, each test in a fresh tab without the last one's cookies
or site data, and the demo is seeded once per process (`DemoSnapshot`): starting a browser and
seeding took 4-5 s of each test.
"""

import contextlib
import os
import shutil
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse

from campaigns.models import Campaign
from leadcrm.roles import sync_roles
from leads.models import CallLog, Lead
from nurture.models import Audience, AudienceExport, Flow

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
IMPLICIT_WAIT = 5  # seconds a find_element waits for its element to appear
PASSWORD = "leadcrm-demo"
ROOT = Path(__file__).resolve().parents[2]
# A visitor's browser, not "HeadlessChrome", which the lead pipeline rightly judges a bot.
USER_AGENT = (
    "--user-agent=Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Safari/537.36"
)

if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
    # CI installs them (.ci/run) and says so: there a missing browser is a failure, not a skip.
    if os.environ.get("LEADCRM_BROWSER_TESTS") == "required":
        raise RuntimeError("Browser tests need Debian's chromium and chromium-driver (apt-get install).")
    pytest.skip("Debian's chromium and chromium-driver are not installed", allow_module_level=True)

from selenium import webdriver  # noqa: E402  (only once the browser is known to be there)
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402


def is_error(entry: dict) -> bool:
    """A console entry that fails a test: an error, or Alpine's warning that it could not evaluate an
    expression (its CSP build refuses globals and statements; the error it throws after may be lost)."""
    return entry["level"] == "SEVERE" or (entry["level"] == "WARNING" and "Alpine" in entry["message"])


def gone(element):
    """A wait condition: the page that had `element` has been replaced. While the next page loads,
    Chromium may answer for the old node "does not belong to the document" instead of a stale
    reference (seen on a busy machine, as when tests run in parallel)."""

    def check(_driver) -> bool:
        try:
            element.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as error:
            if "does not belong to the document" not in str(error):
                raise
            return True
        return False

    return check


# Put into every page before its own scripts (Chrome DevTools Protocol): each Content-Security-Policy
# violation becomes a console error, whether or not Chromium logs that kind itself.
REPORT_POLICY_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", function (event) {
  console.error("Content-Security-Policy violation: " + event.effectiveDirective + " refused "
    + (event.blockedURI || "an inline part") + " at " + event.sourceFile + ":" + event.lineNumber
    + " (" + (event.sample || "no sample") + ")");
});
"""


class Browser:
    """A headless Chromium at 1366 px that fails on any console error it sees. One per test process:
    each test starts it over in a new tab without cookies or stored data (`start`)."""

    def __init__(self):
        self.driver = self._launch()

    @staticmethod
    def _launch() -> webdriver.Chrome:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1366,900", USER_AGENT):
            options.add_argument(argument)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        driver.implicitly_wait(IMPLICIT_WAIT)
        return driver

    def relaunch_if_gone(self) -> None:
        """A new Chromium if a test crashed this one (or its driver), so the next tests still run."""
        try:
            self.driver.window_handles  # noqa: B018  (asks chromedriver)
        except WebDriverException:
            with contextlib.suppress(WebDriverException):
                self.driver.quit()  # whatever of it is left
            self.driver = self._launch()

    def start(self, base_url: str, downloads: Path, screenshots: Path) -> None:
        """A new tab in place of the last test's, then no cookies or stored data for the site, the test's
        own download folder, and no console messages left over."""
        driver, used = self.driver, self.driver.current_window_handle
        driver.switch_to.new_window("tab")
        fresh = driver.current_window_handle
        driver.switch_to.window(used)
        driver.close()
        driver.switch_to.window(fresh)
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": REPORT_POLICY_VIOLATIONS})
        driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
        driver.execute_cdp_cmd("Storage.clearDataForOrigin", {"origin": base_url, "storageTypes": "all"})
        driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
        driver.get_log("browser")
        self.base_url, self.downloads, self.screenshots = base_url, downloads, screenshots

    def wait(self, timeout: float) -> WebDriverWait:
        """An explicit wait that looks again every 50 ms (Selenium's default, 500 ms, adds up to seconds)."""
        return WebDriverWait(self.driver, timeout, poll_frequency=0.05)

    def absent(self, by, value) -> bool:
        """Whether the page (already loaded) has no such element, asked without the implicit wait."""
        self.driver.implicitly_wait(0)
        try:
            return not self.driver.find_elements(by, value)
        finally:
            self.driver.implicitly_wait(IMPLICIT_WAIT)

    def open(self, path: str) -> None:
        self.driver.get(self.base_url + path)
        self.assert_no_console_errors()

    def wait_for_next_page(self, element) -> None:
        """Until the page that had `element` is gone and the next one has loaded."""
        self.wait(10).until(gone(element))
        self.wait(10).until(
            lambda driver: driver.execute_script(
                "return document.readyState === 'complete' && !!document.getElementById('main')"
            )
        )

    def assert_no_console_errors(self) -> None:
        errors = [entry["message"] for entry in self.driver.get_log("browser") if is_error(entry)]
        assert errors == [], f"console errors on {self.driver.current_url}: {errors}"

    def log_in(self, username: str) -> None:
        self.driver.delete_all_cookies()
        self.open(reverse("admin:login"))
        self.driver.find_element(By.NAME, "username").send_keys(username)
        self.driver.find_element(By.NAME, "password").send_keys(PASSWORD)
        self.driver.find_element(By.CSS_SELECTOR, "[type=submit]").click()
        self.wait_for(By.ID, "nav-sidebar")
        self.assert_no_console_errors()

    def find(self, by, value):
        return self.driver.find_element(by, value)

    def click(self, by, value) -> None:
        """Click an element after bringing it to the middle of the window, clear of the sticky bars."""
        element = self.driver.find_element(by, value)
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
        element.click()

    def wait_for(self, by, value, timeout: float = 10):
        return self.wait(timeout).until(expected_conditions.presence_of_element_located((by, value)))

    def text(self) -> str:
        """The page's words, once Alpine has shown it (Unfold's pages start hidden, x-cloak)."""
        self.wait(10).until(lambda driver: driver.execute_script("return !document.querySelector('[x-cloak]')"))
        return self.driver.find_element(By.TAG_NAME, "body").text

    def submit(self, name: str = "_save") -> None:
        button = self.driver.find_element(By.CSS_SELECTOR, f"[name={name}]")
        button.click()
        self.wait_for_next_page(button)
        self.assert_no_console_errors()
        errors = self.driver.execute_script(
            "return [...document.querySelectorAll('.errorlist')].map(e => "
            "(e.closest('[class*=field-]') || e.parentElement).className.match(/field-[\\w-]+/g) + ': ' + e.innerText)"
        )
        assert errors == [], f"the form was refused: {errors}"

    def choose(self, field: str, text: str) -> None:
        """Pick from an autocomplete (select2) field by typing part of the option's name."""
        container = self.driver.find_element(By.CSS_SELECTOR, f"#id_{field} + .select2 .select2-selection")
        container.click()
        search = self.wait_for(By.CSS_SELECTOR, ".select2-container--open .select2-search__field")
        search.send_keys(text)
        option = self.wait_for(
            By.XPATH, f"//li[contains(@class, 'select2-results__option') and contains(., '{text}') and @aria-selected]"
        )
        option.click()
        chosen = self.driver.find_element(By.CSS_SELECTOR, f"#id_{field} + .select2 .select2-selection__rendered")
        assert text.lower() in chosen.text.lower(), chosen.text

    def run_action(self, action: str, *selected: int) -> str:
        """Tick the rows, pick the action, press its button; the words of the page it leads to."""
        for pk in selected:
            self.click(By.CSS_SELECTOR, f"input[name='_selected_action'][value='{pk}']")
        Select(self.driver.find_element(By.NAME, "action")).select_by_value(action)
        button = self.driver.find_element(By.CSS_SELECTOR, "button[name='index']")
        self.wait(5).until(lambda driver: button.is_displayed())
        button.click()
        self.wait_for_next_page(button)
        self.assert_no_console_errors()
        return " ".join(self.driver.execute_script("return document.body.textContent").split())

    def add_inline_row(self, prefix: str) -> None:
        """Click the inline's "Add another ..." link (Unfold adds the empty form with JavaScript), and wait
        until the new row shows: on a busy machine it can still be hidden when the next step types in it."""
        row = self.driver.find_element(By.ID, f"id_{prefix}-TOTAL_FORMS").get_attribute("value")
        link = self.driver.find_element(By.CSS_SELECTOR, f"#{prefix}-group a.add-row")
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", link)
        link.click()
        self.wait(10).until(
            lambda driver: driver.execute_script(
                "return [...document.querySelectorAll(arguments[0])].some(field => field.checkVisibility())",
                f"[name^='{prefix}-{row}-']",
            )
        )

    def screenshot(self, name: str) -> None:
        self.driver.save_screenshot(str(self.screenshots / f"{name}.png"))

    def quit(self) -> None:
        self.driver.quit()


@pytest.fixture(scope="session")
def chromium(django_db_setup, live_server):
    """One Chromium for every browser test of the process (starting one takes about a second). It quits
    before the live server stops and the test database is dropped: its keep-alive connections hold the
    server's request threads open, and with them their database sessions (CONN_MAX_AGE), which on
    PostgreSQL kept the test database from being dropped."""
    chromium = Browser()
    yield chromium
    chromium.quit()
    server = live_server.thread.httpd
    for thread in threading.enumerate():
        # The live server's request threads (not other tests' servers'): each closes its database
        # connections as it ends. Thread keeps its target only while it runs, as here.
        if getattr(getattr(thread, "_target", None), "__self__", None) is server:
            thread.join(timeout=5)


class DemoSnapshot:
    """The seeded demo, kept after the first test seeds it. On SQLite the later tests of the process get
    it back with SQLite's backup API (a copy of the database's pages: milliseconds) instead of seeding
    it again (seconds); on other databases each test seeds it."""

    def __init__(self):
        self.copy: sqlite3.Connection | None = None

    def load(self, settings) -> None:
        if self.copy is not None:
            connection.ensure_connection()
            self.copy.backup(connection.connection)  # the whole database, as the first seed left it
            return
        # A transactional test before this one flushed the roles its data migration made: make them again.
        sync_roles(MigrationExecutor(connection).loader.project_state().apps)
        settings.DEBUG = True  # the demo seeds only in DEBUG; the pages behave the same
        call_command("seed_demo", force=True, stdout=open(os.devnull, "w"))  # noqa: SIM115
        settings.DEBUG = False
        if connection.vendor == "sqlite":
            self.copy = sqlite3.connect(":memory:", check_same_thread=False)
            connection.connection.backup(self.copy)


demo = DemoSnapshot()


@pytest.fixture
def browser(chromium, live_server, settings, tmp_path):
    settings.SITE_URL = live_server.url  # absolute links point at the server under test
    demo.load(settings)
    screenshots = ROOT / "docs" / "screenshots" if os.environ.get("SAVE_SCREENSHOTS") else tmp_path
    screenshots.mkdir(parents=True, exist_ok=True)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    chromium.relaunch_if_gone()
    chromium.start(live_server.url, downloads, screenshots)
    return chromium


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_each_role_logs_in_and_sees_its_dashboard(browser):
    browser.log_in("marketer")
    assert "Marketing:" in browser.text() and "Funnel" in browser.text() and "Campaign report" in browser.text()
    assert "My leads" not in browser.text()
    browser.screenshot("dashboard-marketing")

    browser.log_in("sales")
    assert "Your queue:" in browser.text() and "The queue" in browser.text()
    assert "Campaign report" not in browser.text() and "Margin" not in browser.text()
    browser.screenshot("dashboard-sales")

    browser.log_in("manager")
    assert "Marketing:" in browser.text() and "Your queue" not in browser.text()
    assert "Team" in browser.text() and "My leads" in browser.text()

    browser.open(reverse("campaign-report"))
    assert "ROI" in browser.text() and "Margin" in browser.text()
    browser.screenshot("campaign-report")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_campaign_from_set_up_to_a_worked_lead(browser, settings):
    # The pipeline's least time to fill a form, lowered from 2 s so the visitor below waits less.
    settings.LEAD_MIN_FORM_SECONDS = 0.5
    # A marketer creates a campaign with its landing page, activates it and copies its tracking link.
    browser.log_in("marketer")
    browser.open(reverse("admin:campaigns_campaign_add"))
    browser.find(By.ID, "id_name").send_keys("Push webinar EU")
    browser.choose("traffic_source", "PushPros")
    browser.choose("offer", "webinar")
    browser.add_inline_row("landing_pages")
    browser.find(By.ID, "id_landing_pages-0-name").send_keys("Webinar sign-up")
    for field in ("email", "first_name", "country"):
        browser.click(By.CSS_SELECTOR, f"input[name='landing_pages-0-fields'][value='{field}']")
    browser.click(By.CSS_SELECTOR, "input[name='landing_pages-0-required_fields'][value='email']")
    browser.submit("_continue")
    campaign = Campaign.objects.get(name="Push webinar EU")
    assert campaign.landing_pages.get().slug == "webinar-sign-up"

    browser.open(reverse("admin:campaigns_campaign_changelist"))
    said = browser.run_action("activate_campaigns", campaign.pk)
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.ACTIVE, said

    browser.open(reverse("admin:campaigns_campaign_change", args=[campaign.pk]))
    tracking = browser.find(By.ID, "tracking-url").get_attribute("value")
    assert tracking.startswith(f"{browser.base_url}/c/push-webinar-eu/?clickid={{clickid}}&zone={{zoneid}}")
    copy = browser.find(By.CSS_SELECTOR, "[data-copy='tracking-url']")
    browser.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", copy)
    copy.click()
    browser.wait(5).until(lambda driver: copy.get_attribute("data-copied") == "true")
    browser.screenshot("campaign-tracking-link")

    # A visitor follows the link (as the source fills it), fills the landing form and is thanked.
    browser.driver.delete_all_cookies()
    visit = tracking.replace("{clickid}", "clk-browser-1").replace("{zoneid}", "zone-77")
    visit = visit.split("&sub1=")[0]
    browser.driver.get(visit)
    browser.assert_no_console_errors()
    assert "/l/webinar-sign-up/" in browser.driver.current_url
    browser.find(By.NAME, "email").send_keys("vera.visitor@example.com")
    browser.find(By.NAME, "first_name").send_keys("Vera")
    time.sleep(settings.LEAD_MIN_FORM_SECONDS + 0.2)  # a person takes longer than this to fill it in
    browser.click(By.CSS_SELECTOR, "form button[type=submit]")
    browser.assert_no_console_errors()
    # The form's answer is a redirect: wait for it rather than read the address while it loads.
    browser.wait(10).until(
        lambda driver: "/thanks/" in driver.current_url, "the landing form did not lead to the thank-you page"
    )
    lead = Lead.objects.get(email="vera.visitor@example.com")
    assert (lead.campaign, lead.click_id, lead.sub_ids.get("zone")) == (campaign, "clk-browser-1", "zone-77")
    assert (lead.validity, lead.validity_reasons) == ("valid", [])

    # The lead appears, with its timeline in sentences.
    browser.log_in("manager")
    browser.open(reverse("admin:leads_lead_change", args=[lead.pk]))
    browser.click(By.XPATH, "//nav//a[normalize-space()='Timeline']")
    timeline = browser.find(By.CLASS_NAME, "lc-timeline").text
    assert "Arrived through a landing page for campaign push-webinar-eu." in timeline
    browser.screenshot("lead-timeline")

    # A sales rep claims it from the queue and logs a call.
    browser.log_in("sales")
    browser.open(reverse("admin:leads_lead_changelist") + "?assigned=none&q=vera.visitor%40example.com")
    said = browser.run_action("claim_leads", lead.pk)
    lead.refresh_from_db()
    assert lead.assigned_to and lead.assigned_to.username == "sales", said
    browser.open(reverse("admin:leads_lead_change", args=[lead.pk]))
    browser.add_inline_row("calls")
    Select(browser.find(By.ID, "id_calls-0-outcome")).select_by_index(1)
    browser.find(By.ID, "id_calls-0-notes").send_keys("Wants the recording.")
    browser.submit("_continue")
    call = CallLog.objects.get(lead=lead)
    assert call.notes == "Wants the recording." and call.rep.username == "sales"
    browser.open(reverse("admin:leads_lead_changelist") + "?assigned=me&open=yes")
    assert "vera.visitor@example.com" in browser.text()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_marketer_builds_a_two_step_flow_and_downloads_an_audience(browser):
    browser.log_in("marketer")
    browser.open(reverse("admin:nurture_flow_add"))
    browser.find(By.ID, "id_name").send_keys("Webinar reminder")
    Select(browser.find(By.ID, "id_trigger")).select_by_value("captured")
    browser.add_inline_row("steps")
    Select(browser.find(By.ID, "id_steps-0-kind")).select_by_value("email")
    assert not browser.find(By.ID, "id_steps-0-wait_minutes").is_displayed()  # only the email's fields
    browser.find(By.ID, "id_steps-0-subject").send_keys("Your webinar seat, {{ lead.first_name }}")
    browser.find(By.ID, "id_steps-0-body_text").send_keys("See you there.")
    browser.add_inline_row("steps")
    Select(browser.find(By.ID, "id_steps-1-kind")).select_by_value("wait")
    assert not browser.find(By.ID, "id_steps-1-subject").is_displayed()
    browser.find(By.ID, "id_steps-1-position").clear()
    browser.find(By.ID, "id_steps-1-position").send_keys("10")
    browser.find(By.ID, "id_steps-1-wait_minutes").send_keys("1440")
    browser.submit("_continue")
    flow = Flow.objects.get(name="Webinar reminder")
    assert [step.kind for step in flow.steps.order_by("position")] == ["email", "wait"]
    summary = browser.find(By.CLASS_NAME, "lc-flow-summary").text
    assert "Send the email “Your webinar seat, {{ lead.first_name }}”" in summary and "Wait 1 day" in summary
    browser.screenshot("flow-editor")

    browser.open(reverse("admin:nurture_audience_add"))
    browser.find(By.ID, "id_name").send_keys("Everyone who consented")
    browser.click(By.ID, "show-size")
    preview = browser.wait(10).until(lambda driver: driver.find_element(By.ID, "size-preview").text or None)
    assert preview.startswith("This segment holds")
    browser.submit("_continue")
    audience_url = browser.driver.current_url
    browser.open(reverse("admin:nurture_audience_changelist"))
    audience = Audience.objects.get(name="Everyone who consented")
    said = browser.run_action("export_generic", audience.pk)
    export = AudienceExport.objects.get(audience=audience)
    assert "Export of 1 audience(s) started" in said
    assert export.status == AudienceExport.Status.DONE and export.rows > 0
    browser.driver.get(audience_url)
    browser.click(By.LINK_TEXT, "download")
    [downloaded] = browser.wait(10).until(
        lambda _driver: [path for path in browser.downloads.iterdir() if path.suffix == ".csv"], "no CSV downloaded"
    )
    assert downloaded.read_text().count("\n") == export.rows + 1  # a header and one line per lead
    shutil.rmtree(browser.downloads)


def _password_step(browser, username: str, password: str = PASSWORD, *, refused: bool = False) -> None:
    """The login form's password step; refused: the page answers 429 (a lockout), which Chromium logs."""
    browser.driver.delete_all_cookies()
    browser.open(reverse("admin:login"))
    browser.find(By.NAME, "username").clear()
    browser.find(By.NAME, "username").send_keys(username)
    browser.find(By.NAME, "password").send_keys(password)
    button = browser.find(By.CSS_SELECTOR, "#login-form [type=submit]")
    button.click()
    browser.wait(10).until(gone(button))
    if refused:
        errors = [entry["message"] for entry in browser.driver.get_log("browser") if is_error(entry)]
        assert all("status of 429 (Too Many Requests)" in error for error in errors), errors
    browser.assert_no_console_errors()


def _app_code(key_text: str, drift: int = 0) -> str:
    """What the phone's authenticator app shows for the key the page printed (RFC 6238)."""
    import base64

    from django_otp.oath import totp

    return f"{totp(base64.b32decode(key_text.replace(' ', '')), drift=drift):06d}"


def _next_code(key_text: str, username: str) -> str:
    """The app's code the server takes next: a later step than the one the set-up spent, within the
    steps it accepts around its clock and the drift it learned (a set-up code sent across a 30 s
    boundary teaches it a drift of -1, and "the next step's code" is then one too far)."""
    import base64

    from django_otp.oath import TOTP
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.get(user__username=username, confirmed=True)
    now = TOTP(base64.b32decode(key_text.replace(" ", ""))).t()
    step = max(device.last_t + 1, now + device.drift - device.tolerance)
    return _app_code(key_text, drift=step - now)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_manager_sets_up_two_factor_at_login_and_gives_a_code_the_next_time(browser, settings):
    settings.REQUIRE_STAFF_2FA = True
    _password_step(browser, "manager")
    browser.wait_for(By.ID, "two-factor-qr")
    assert "Your role needs two-factor authentication" in browser.text()
    assert browser.absent(By.ID, "nav-sidebar")  # nothing else opens yet
    browser.screenshot("two-factor-setup")

    key_text = browser.find(By.ID, "two-factor-key").text
    browser.find(By.ID, "id_code").send_keys(_app_code(key_text))
    browser.find(By.CSS_SELECTOR, "#two-factor-setup-form [type=submit]").click()
    codes = browser.wait_for(By.ID, "backup-codes").text.split()
    assert len(codes) == 10
    browser.assert_no_console_errors()
    browser.screenshot("two-factor-backup-codes")
    browser.click(By.LINK_TEXT, "I have saved them: continue")
    browser.wait_for(By.ID, "nav-sidebar")
    assert "Marketing:" in browser.text()

    browser.open(reverse("two-factor"))
    assert "Two-factor authentication is on" in browser.text() and "10 unused backup codes" in browser.text()
    browser.screenshot("two-factor-overview")

    _password_step(browser, "manager")
    browser.wait_for(By.ID, "two-factor-form")
    browser.screenshot("two-factor-code")
    browser.find(By.ID, "id_code").send_keys(_next_code(key_text, "manager"))
    browser.find(By.CSS_SELECTOR, "#two-factor-form [type=submit]").click()
    browser.wait_for(By.ID, "nav-sidebar")
    browser.assert_no_console_errors()
    assert "Marketing:" in browser.text()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_login_page_says_when_a_locked_out_user_may_try_again(browser):
    for _ in range(4):
        _password_step(browser, "marketer", "not-the-password")
    _password_step(browser, "marketer", "not-the-password", refused=True)
    assert "Too many failed logins" in browser.find(By.ID, "lockout").text
    _password_step(browser, "marketer", refused=True)
    assert "Too many failed logins" in browser.find(By.ID, "lockout").text
    assert browser.absent(By.ID, "nav-sidebar")
    browser.screenshot("login-lockout")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_visitor_answers_a_quiz_under_the_content_security_policy(browser):
    browser.open(reverse("landing-page", args=["native-solar-quiz-form"]))
    for answer in ("Yes", "Over $200", "This month"):
        browser.click(By.XPATH, f"//label[normalize-space()='{answer}']")
        button = browser.find(By.CSS_SELECTOR, "form button[type=submit]")
        button.click()
        browser.wait(10).until(gone(button))
        browser.assert_no_console_errors()
    assert "where should we send your results?" in browser.find(By.TAG_NAME, "body").text
    # The page's style sheet applied (a refused one would leave the browser's default look).
    width = browser.driver.execute_script("return getComputedStyle(document.querySelector('main')).maxWidth")
    assert width != "none"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_api_docs_work_under_the_content_security_policy(browser):
    browser.log_in("admin")
    browser.open(reverse("api-docs"))
    operation = browser.wait_for(By.CSS_SELECTOR, ".opblock-tag-section .opblock .opblock-summary", timeout=20)
    browser.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", operation)
    operation.click()  # open one: its parameters and answers are drawn
    browser.wait_for(By.CSS_SELECTOR, ".opblock.is-open .responses-wrapper")
    assert "leadcrm partner API" in browser.find(By.TAG_NAME, "body").text
    browser.assert_no_console_errors()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_email_preview_shows_the_email_with_its_inline_styles_and_no_violation(browser):
    flow = Flow.objects.create(name="Styled reminder", trigger=Flow.Trigger.CAPTURED)
    step = flow.steps.create(
        kind="email",
        subject="Your seat",
        body_text="See you there.",
        body_html='<p id="greeting" style="color: rgb(11, 107, 203)">See you there, {{ lead.first_name }}.</p>',
    )
    browser.log_in("marketer")
    browser.open(reverse("admin:nurture_flow_preview", args=[flow.pk, step.pk]))
    frame = browser.wait_for(By.CSS_SELECTOR, "iframe.lc-email-preview")
    browser.driver.switch_to.frame(frame)
    greeting = browser.wait_for(By.ID, "greeting")
    assert greeting.text.startswith("See you there,")
    # The email's own inline style applied: its document has a policy that allows them.
    assert greeting.value_of_css_property("color") == "rgba(11, 107, 203, 1)"
    browser.driver.switch_to.default_content()
    browser.assert_no_console_errors()
