"""What other apps add to the lead page and list without leads importing them.

`leads` never imports `nurture`; nurture registers its lead action (add to a flow) and its lead-page
section (enrollments and emails) here when its admin module loads, and the audit app its links from a
lead's page to the lead's audit trail and access log. LeadAdmin reads this registry through Django's
documented get_actions() and change_view() hooks and its own read-only fields.
"""

from collections.abc import Callable
from dataclasses import dataclass

from django.http import HttpRequest


@dataclass(frozen=True)
class LeadAction:
    function: Callable  # (modeladmin, request, queryset), like any admin action
    name: str
    description: str
    allowed: Callable[[HttpRequest], bool]


LEAD_ACTIONS: list[LeadAction] = []
# Lead-page sections by tab ("emails_and_flows"): each renders a lead to safe HTML.
LEAD_SECTIONS: dict[str, list[Callable]] = {}


@dataclass(frozen=True)
class LeadLink:
    title: str
    icon: str  # a Material Symbols name, as in the sidebar
    url: Callable[[int], str]  # the lead's id -> the page
    allowed: Callable[[HttpRequest], bool]


# Buttons beside "History" at the top of a lead's page.
LEAD_LINKS: list[LeadLink] = []


def register_lead_action(function: Callable, *, description: str, allowed: Callable[[HttpRequest], bool]) -> None:
    if all(action.name != function.__name__ for action in LEAD_ACTIONS):
        LEAD_ACTIONS.append(LeadAction(function, function.__name__, description, allowed))


def register_lead_section(tab: str, render: Callable) -> None:
    sections = LEAD_SECTIONS.setdefault(tab, [])
    if render not in sections:
        sections.append(render)


def register_lead_link(
    title: str, *, icon: str, url: Callable[[int], str], allowed: Callable[[HttpRequest], bool]
) -> None:
    if all(link.title != title for link in LEAD_LINKS):
        LEAD_LINKS.append(LeadLink(title, icon, url, allowed))
