"""The lead page's "Deliveries and money" tab: where the lead went, what the traffic source was told
and every ledger entry it booked, as three small tables (three queries); and its outcome section:
what buyers reported back and who reported it (one query)."""

from django.urls import reverse
from django.utils import timezone
from django.utils.formats import localize
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from ..models import Delivery, LeadOutcome, LedgerEntry, Postback


def _when(moment) -> str:
    return localize(timezone.localtime(moment)) if moment else "—"


def _table(title: str, headers: tuple[str, ...], rows: list[tuple], empty: str) -> SafeString:
    if not rows:
        return format_html('<h3 class="lc-subhead">{}</h3><p class="lc-empty">{}</p>', title, empty)
    return format_html(
        '<h3 class="lc-subhead">{}</h3><div class="lc-scroll"><table class="lc-table"><thead><tr>{}</tr></thead>'
        "<tbody>{}</tbody></table></div>",
        title,
        format_html_join("", "<th>{}</th>", ((header,) for header in headers)),
        format_html_join(
            "", "<tr>{}</tr>", ((format_html_join("", "<td>{}</td>", ((cell,) for cell in row)),) for row in rows)
        ),
    )


def _cells(row: tuple) -> SafeString:
    return format_html_join("", "<td>{}</td>", ((cell,) for cell in row))


def _buyer_link(delivery: Delivery) -> SafeString:
    url = reverse("admin:leads_delivery_change", args=[delivery.pk])
    return format_html('<a href="{}">{}</a>', url, delivery.destination.name)


def deliveries_and_money_html(lead) -> SafeString:
    deliveries = [
        (
            format_html(
                '<a href="{}">{}</a>',
                reverse("admin:leads_delivery_change", args=[delivery.pk]),
                delivery.destination.name,
            ),
            delivery.get_status_display(),
            f"{delivery.price} {delivery.currency}" if delivery.price is not None else "—",
            delivery.attempts,
            delivery.reason or "—",
            _when(delivery.created_at),
        )
        for delivery in Delivery.objects.filter(lead=lead).select_related("destination").order_by("created_at", "id")
    ]
    postbacks = [
        (
            postback.get_event_display(),
            f"{postback.payout} {postback.currency}",
            postback.get_status_display(),
            postback.attempts,
            postback.reason or "—",
            _when(postback.created_at),
        )
        for postback in Postback.objects.filter(lead=lead).order_by("created_at", "id")
    ]
    entries = [
        (
            entry.get_kind_display(),
            f"{entry.amount:+} {entry.currency}",
            str(entry.partner or entry.advertiser or "—"),
            entry.day,
        )
        for entry in LedgerEntry.objects.filter(lead=lead)
        .select_related("partner", "advertiser")
        .order_by("created_at", "id")
    ]
    return format_html(
        "{}{}{}",
        _table(
            "Deliveries to buyers",
            ("Buyer", "Status", "Price", "Attempts", "Reason", "When"),
            deliveries,
            "Not delivered to any buyer (yet).",
        ),
        _table(
            "Postbacks to the traffic source",
            ("Event", "Payout", "Status", "Attempts", "Reason", "When"),
            postbacks,
            "No postback was due.",
        ),
        _table("Ledger", ("Entry", "Amount", "With", "Counts for"), entries, "Nothing booked for this lead."),
    )


def _reported_by(outcome: LeadOutcome) -> str:
    """ "Buyer over the API: Acme", "Advertiser postback: Sunny Co", "Staff: alice" or "System"."""
    if outcome.partner is not None:
        name = str(outcome.partner)
    elif outcome.advertiser is not None:
        name = str(outcome.advertiser)
    elif outcome.reported_by_user is not None:
        name = outcome.reported_by_user.get_username()
    else:
        name = ""
    label = outcome.get_reported_by_display()
    return f"{label}: {name}" if name else label


def outcomes_html(lead) -> SafeString:
    """Every outcome reported for the lead, latest first, with who reported it."""
    outcomes = (
        LeadOutcome.objects.filter(lead=lead)
        .select_related("partner", "advertiser", "reported_by_user")
        .order_by("-created_at", "-id")
    )
    rows = [
        (
            outcome.get_kind_display(),
            f"{outcome.sale_amount} {outcome.currency}" if outcome.sale_amount is not None else "—",
            outcome.get_return_reason_display() or "—",
            outcome.external_reference or "—",
            _reported_by(outcome),
            _when(outcome.created_at),
        )
        for outcome in outcomes
    ]
    return _table(
        "Outcomes reported",
        ("Outcome", "Sale", "Return reason", "Reference", "Reported by", "When"),
        rows,
        "No buyer has reported an outcome.",
    )
