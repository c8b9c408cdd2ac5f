"""A lead's timeline as sentences a sales rep reads at a glance, newest last.

Each event kind keeps its data as the service wrote it; this module only words it. An event whose
data has a shape not foreseen here still reads, as its kind and its values.
"""

from collections.abc import Callable

from django.utils import timezone
from django.utils.formats import localize
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from ..models import LeadEvent

Kind = LeadEvent.Kind


def _list(items) -> str:
    items = [str(item) for item in items or [] if item]
    return "; ".join(items)


def _captured(data: dict) -> str:
    door = {"landing_page": "a landing page", "quiz": "a quiz", "api": "the partner API", "csv": "a CSV import"}
    kind = data.get("door") or ""
    sentence = f"Arrived through {door.get(kind, kind or 'a door')}"
    sentence += f" for campaign {data['campaign']}" if data.get("campaign") else ""
    sentence += f", bought at the price of the supplier's ping {data['ping']}" if data.get("ping") else ""
    return sentence + (" as a test lead." if data.get("test") else ".")


def _normalised(data: dict) -> str:
    changed = data.get("changed") or []
    return f"Cleaned up {', '.join(changed)}." if changed else "Contact details needed no clean-up."


def _enriched(data: dict) -> str:
    parts = [f"{key.replace('_', ' ')} {value}" for key, value in data.items() if value not in (None, "", [], {})]
    return f"Found {', '.join(parts)}." if parts else "Nothing more found about the visitor."


def _validated(data: dict) -> str:
    reasons = _list(data.get("reasons"))
    return f"Judged {data.get('validity')}" + (f": {reasons}." if reasons else ".")


def _deduplicated(data: dict) -> str:
    return "Duplicate of an earlier lead." if data.get("duplicate") else "No earlier lead with these contacts."


def _classified(data: dict) -> str:
    why = f" ({data['why']})" if data.get("why") else ""
    return f"Classed as a {data.get('lead_type')} lead{why}."


def _qualified(data: dict) -> str:
    reasons = _list(data.get("reasons"))
    return f"{str(data.get('qualification', '')).capitalize()}" + (f": {reasons}." if reasons else ".")


def _scored(data: dict) -> str:
    parts = [f"{item['factor']} {item['points']}" for item in data.get("breakdown") or [] if item.get("points")]
    return f"Scored {data.get('score')}" + (f" ({', '.join(parts)})." if parts else ".")


def _follow_up_queued(data: dict) -> str:
    follow_ups = [str(kind).replace("_", " ") for kind in data.get("follow_ups") or []]
    return f"Queued {', '.join(follow_ups)}." if follow_ups else "Nothing to follow up."


def _status(data: dict) -> str:
    reason = f" ({data['reason']})" if data.get("reason") else ""
    return f"Status changed from {data.get('from')} to {data.get('to')}{reason}."


def _assigned(data: dict) -> str:
    if not data.get("to"):
        return f"Unassigned from {data.get('from')}." if data.get("from") else "Unassigned."
    how = {"claimed": "claimed it", "round robin": "got it by round robin"}.get(data.get("how") or "", "")
    if how:
        return f"{data['to']} {how}."
    return f"Assigned to {data['to']}" + (f" (was {data['from']})." if data.get("from") else ".")


def _call(data: dict) -> str:
    minutes = (data.get("duration_seconds") or 0) // 60
    length = f", {minutes} min" if minutes else ""
    notes = f": {data['notes']}" if data.get("notes") else ""
    return f"Call logged ({str(data.get('outcome', '')).replace('_', ' ')}{length}){notes}."


def _delivery(data: dict) -> str:
    if data.get("auction"):
        return f"Auction {data['auction']}: {data.get('summary', '')}."
    if data.get("held"):
        return f"Delivery held: {data['held']}."
    reason = f" ({data['reason']})" if data.get("reason") else ""
    return f"Delivery to {data.get('buyer')}: {data.get('outcome')}{reason}."


def _postback(data: dict) -> str:
    return (
        f"Postback to the traffic source for {data.get('event')} (payout {data.get('payout')}): {data.get('outcome')}."
    )


def _outcome(data: dict) -> str:
    reference = f", reference {data['reference']}" if data.get("reference") else ""
    kept = (
        "; other buyers keep the lead, so only this buyer's purchase was refunded"
        if data.get("kept_by_other_buyers")
        else ""
    )
    # Another buyer's sale of a lead already won: its commission, booked apart from the lead's sale.
    commission = (
        f"; this buyer's own sale, a commission of {data['sale_amount']} {data.get('currency', '')}".rstrip()
        if data.get("sale_amount")
        else ""
    )
    return f"{str(data.get('outcome')).capitalize()}, reported by {data.get('by')}{reference}{kept}{commission}."


def _nurture(data: dict) -> str:
    if "entered" in data:
        return f"Entered nurture flow {data['entered']}."
    if "exited" in data:
        return f"Left nurture flow {data['exited']}" + (f": {data['reason']}." if data.get("reason") else ".")
    if "sent" in data:
        return f"Emailed “{data['sent']}”."
    if data.get("unsubscribed"):
        return "Unsubscribed from our emails."
    if "webhook" in data:
        return f"Flow {data.get('flow')} called {data['webhook']}: {data.get('outcome')}."
    if "opened" in data:
        return "Opened an email." if data.get("first") else "Opened an email again."
    if "clicked" in data:
        return "Clicked a link in an email." if data.get("first") else "Clicked an email link again."
    if data.get("follow_up"):
        return f"Flow {data.get('flow')} set a follow-up for {data['follow_up']}."
    return _fallback("Nurture", data)


SENTENCES: dict[str, Callable[[dict], str]] = {
    Kind.CAPTURED: _captured,
    Kind.NORMALISED: _normalised,
    Kind.ENRICHED: _enriched,
    Kind.VALIDATED: _validated,
    Kind.DEDUPLICATED: _deduplicated,
    Kind.CLASSIFIED: _classified,
    Kind.QUALIFIED: _qualified,
    Kind.SCORED: _scored,
    Kind.FOLLOW_UP_QUEUED: _follow_up_queued,
    Kind.FOLLOW_UP_DONE: lambda data: f"Done: {str(data.get('follow_up', '')).replace('_', ' ')}.",
    Kind.STATUS: _status,
    Kind.ASSIGNED: _assigned,
    Kind.NOTE: lambda data: f"Note: {data.get('note', '')}",
    Kind.CALL: _call,
    Kind.ESCALATED: lambda data: f"Escalated: {data.get('reason')}.",
    Kind.OUTCOME: _outcome,
    Kind.DELIVERY: _delivery,
    Kind.POSTBACK: _postback,
    Kind.NURTURE: _nurture,
    Kind.ERASED: lambda data: "Personal data erased on request.",
}


def _fallback(label: str, data: dict) -> str:
    values = ", ".join(f"{key.replace('_', ' ')} {value}" for key, value in data.items() if value not in (None, ""))
    return f"{label}: {values}." if values else f"{label}."


def sentence(event: LeadEvent) -> str:
    data = event.data if isinstance(event.data, dict) else {}
    wording = SENTENCES.get(event.kind)
    try:
        return wording(data) if wording else _fallback(event.get_kind_display(), data)
    except (KeyError, TypeError, AttributeError):
        return _fallback(event.get_kind_display(), data)


def timeline_html(events) -> SafeString:
    rows = format_html_join(
        "",
        '<li><time datetime="{}">{}</time><span class="lc-who">{}</span> {}</li>',
        (
            (
                event.created_at.isoformat(),
                localize(timezone.localtime(event.created_at)),
                event.actor.get_username() if event.actor else "leadcrm",
                sentence(event),
            )
            for event in events
        ),
    )
    return format_html('<ol class="lc-timeline">{}</ol>', rows) if events else mark_safe("<p>No events yet.</p>")
