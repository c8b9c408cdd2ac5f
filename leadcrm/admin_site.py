"""What Unfold asks of the project: each role's sidebar and the global search.

The sidebar is built per request from the user's permissions, so marketing sees campaigns, reports
and flows, a sales rep their leads, the queue and follow-ups, and a manager all of it plus the team.
"""

from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest, QueryDict
from django.urls import reverse
from unfold.dataclasses import SearchResult

from campaigns.models import Campaign
from leads.selectors import lead_list, lead_search

SEARCH_LIMIT = 10


@dataclass(frozen=True)
class Link:
    title: str
    icon: str
    url_name: str
    permission: str | None = None  # None: any staff user
    query: str = ""
    works_leads: bool = False  # only for those who work leads (reps and managers)

    def allowed(self, request: HttpRequest) -> bool:
        user = request.user
        if self.works_leads and not (user.is_superuser or user.has_perm("leads.change_lead")):
            return False
        return self.permission is None or user.has_perm(self.permission)

    def as_item(self, request: HttpRequest) -> dict:
        link = reverse(self.url_name) + self.query
        return {"title": self.title, "icon": self.icon, "link": link, "active": _is_current(request, link)}


def _is_current(request: HttpRequest, link: str) -> bool:
    """The page is this link's: the same path (or a page under it) and, for a filtered list, the same
    filters. Unfold's own test matches paths only, which lights up all of a list's links at once."""
    path, _, query = link.partition("?")
    if query:
        wanted = QueryDict(query)
        return request.path == path and all(request.GET.getlist(name) == wanted.getlist(name) for name in wanted)
    if path == reverse("admin:index"):
        return request.path == path
    return request.path.startswith(path)


def _changelist(app_model: str) -> str:
    return "admin:{}_{}_changelist".format(*app_model.split("."))


def _model(title: str, icon: str, app_model: str, *, query: str = "", works_leads: bool = False) -> Link:
    app_label, model = app_model.split(".")
    return Link(title, icon, _changelist(app_model), f"{app_label}.view_{model}", query, works_leads)


# Marketing's pages (campaigns, spend, reports, all leads) need the right to see spend; a rep may read a
# campaign a lead came from, but the sidebar shows reps only their own work.
MARKETING = "campaigns.view_dailystat"

NAVIGATION: list[tuple[str, str | None, list[Link]]] = [
    ("", None, [Link("Dashboard", "dashboard", "admin:index")]),
    (
        "Sales",
        None,
        [
            _model("My leads", "person_check", "leads.lead", query="?assigned=me&open=yes", works_leads=True),
            _model("The queue", "inbox", "leads.lead", query="?assigned=none", works_leads=True),
            _model("Follow-ups", "event_upcoming", "leads.lead", query="?assigned=me&follow_up=due", works_leads=True),
        ],
    ),
    (
        "Campaigns",
        MARKETING,
        [
            _model("Campaigns", "campaign", "campaigns.campaign"),
            _model("Traffic sources", "hub", "campaigns.trafficsource"),
            _model("Offers", "sell", "campaigns.offer"),
            _model("Advertisers", "storefront", "campaigns.advertiser"),
            _model("Landing pages", "web", "campaigns.landingpage"),
            _model("Daily spend", "payments", "campaigns.dailystat"),
            _model("Clicks", "ads_click", "campaigns.click"),
        ],
    ),
    (
        "Reports",
        MARKETING,
        [
            Link("Campaign report", "monitoring", "campaign-report", MARKETING),
            Link("Placements", "grid_view", "placement-quality", MARKETING),
        ],
    ),
    (
        "Leads",
        MARKETING,
        [
            _model("All leads", "group", "leads.lead"),
            _model("Imports", "upload_file", "leads.leadimport"),
            _model("Qualification rules", "rule", "leads.qualificationrule"),
            _model("Blocked email domains", "block", "leads.blockedemaildomain"),
            Link("Access requests", "person_search", "access-request", "leads.export_person_data"),
        ],
    ),
    (
        "Nurture",
        MARKETING,
        [
            _model("Flows", "account_tree", "nurture.flow"),
            _model("Audiences", "groups", "nurture.audience"),
            _model("Enrollments", "how_to_reg", "nurture.enrollment"),
            _model("Messages", "mail", "nurture.nurturemessage"),
            _model("Suppression", "unsubscribe", "nurture.suppression"),
        ],
    ),
    (
        "Partners and money",
        None,
        [
            _model("Partners", "handshake", "leads.partner"),
            _model("API keys", "key", "leads.apikey"),
            _model("Buyer accounts", "account_balance_wallet", "leads.buyeraccount"),
            _model("Ledger", "receipt_long", "leads.ledgerentry"),
            _model("Destinations", "send", "leads.deliverydestination"),
            _model("Routes", "alt_route", "leads.deliveryroute"),
            _model("Deliveries", "local_shipping", "leads.delivery"),
            _model("Auctions", "gavel", "leads.auction"),
            _model("Held deliveries", "pause_circle", "leads.helddelivery"),
            _model("Postbacks", "reply", "leads.postback"),
            _model("Partner notifications", "notifications", "leads.partnernotification"),
            _model("Inbound pings", "price_check", "leads.supplierping"),
            _model("Buyer suppression lists", "block", "leads.buyersuppression"),
        ],
    ),
    (
        "Team",
        "auth.view_user",  # managers
        [
            _model("Users", "person", "auth.user"),
            _model("Groups", "badge", "auth.group"),
            _model("Sales reps", "support_agent", "leads.salesrepprofile"),
            _model("Login lockouts", "lock_person", "axes.accessattempt"),
            _model("Two-factor apps", "phonelink_lock", "otp_totp.totpdevice"),
            _model("API tokens", "key", "authtoken.tokenproxy"),
        ],
    ),
    (
        "Audit",
        None,  # managers: each link needs its own view permission
        [
            _model("Audit trail", "manage_history", "auditlog.logentry"),
            _model("Personal data access", "visibility", "audit.accesslogentry"),
        ],
    ),
    (
        "System",
        None,
        [
            _model("Outbox", "outbox", "leads.outboxentry"),
            _model("Scheduled tasks", "schedule", "django_celery_beat.periodictask"),
        ],
    ),
]


def sidebar_navigation(request: HttpRequest) -> list[dict]:
    """The sidebar groups the user may use; a group with nothing allowed is left out."""
    groups: list[dict[str, Any]] = []
    for title, group_permission, links in NAVIGATION:
        if group_permission and not request.user.has_perm(group_permission):
            continue
        items = [link.as_item(request) for link in links if link.allowed(request)]
        if items:
            groups.append({"title": title, "separator": bool(title), "collapsible": False, "items": items})
    # On "My leads" the plain "All leads" link (the same list, unfiltered) is not lit as well.
    items = [item for group in groups for item in group["items"]]
    filtered = {item["link"].partition("?")[0] for item in items if item["active"] and "?" in item["link"]}
    # On the placements page (/admin/reports/placements/) the report (/admin/reports/) is not lit either.
    longest = max((len(item["link"]) for item in items if item["active"] and "?" not in item["link"]), default=0)
    for item in items:
        if item["link"] in filtered or ("?" not in item["link"] and len(item["link"]) < longest):
            item["active"] = False
    return groups


def account_links(request: HttpRequest) -> list[dict[str, str]]:
    """The user menu: Unfold's "Change password" (which a list of our own replaces) and two-factor set-up."""
    if not request.user.is_authenticated:
        return []  # the login page builds the menu too
    links = []
    if request.user.has_usable_password():
        links.append({"title": "Change password", "link": reverse("admin:password_change")})
    links.append({"title": "Two-factor authentication", "link": reverse("two-factor")})
    return links


def global_search(request: HttpRequest, term: str) -> list[SearchResult]:
    """Leads by email, phone or click id (within what the user may see), and campaigns by name."""
    results = []
    user = request.user
    if user.has_perm("leads.view_lead"):
        for lead in lead_search(lead_list(user=request.user), term).order_by("-created_at")[:SEARCH_LIMIT]:
            results.append(
                SearchResult(
                    title=str(lead),
                    description=f"Lead · {lead.get_status_display()} · {lead.campaign}",
                    link=reverse("admin:leads_lead_change", args=[lead.pk]),
                    icon="person",
                )
            )
    if user.has_perm("campaigns.view_campaign"):
        campaigns = Campaign.objects.filter(name__icontains=term.strip()).select_related("traffic_source")
        for campaign in campaigns.order_by("name")[:SEARCH_LIMIT]:
            results.append(
                SearchResult(
                    title=campaign.name,
                    description=f"Campaign · {campaign.traffic_source}",
                    link=reverse("admin:campaigns_campaign_change", args=[campaign.pk]),
                    icon="campaign",
                )
            )
    return results
