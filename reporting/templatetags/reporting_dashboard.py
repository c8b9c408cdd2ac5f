from decimal import Decimal

from django import template

from ..charts import bar_chart, funnel_chart, line_chart
from ..selectors.dashboard import DEFAULT_PERIOD_DAYS, PERIOD_DAYS, Tile, marketing_dashboard

register = template.Library()
EMPTY = "—"


@register.filter
def percent(value) -> str:
    """A fraction as a percentage with one decimal; empty (a dash) when there is nothing to divide by."""
    return EMPTY if value is None else f"{Decimal(value) * 100:,.1f}%"


@register.filter
def amount(value) -> str:
    return EMPTY if value is None else f"{Decimal(value):,.2f}"


@register.filter
def tile_value(tile: Tile) -> str:
    if tile.kind == "count":
        return EMPTY if tile.value is None else f"{tile.value:,}"
    if tile.kind == "ratio":
        return EMPTY if tile.value is None else f"{Decimal(tile.value):,.2f}x"
    return percent(tile.value) if tile.kind == "rate" else amount(tile.value)


@register.filter
def tile_change(tile: Tile) -> str:
    if tile.is_new:
        return "new"
    change = tile.change
    if change is None:
        return "no comparison"
    if tile.kind == "rate":
        return f"{change * 100:+,.1f} pts"
    return f"{change * 100:+,.1f}%"


def _period_days(request) -> int:
    try:
        days = int(request.GET.get("days", DEFAULT_PERIOD_DAYS))
    except ValueError:
        return DEFAULT_PERIOD_DAYS
    return days if days in PERIOD_DAYS else DEFAULT_PERIOD_DAYS


@register.inclusion_tag("admin/reporting/dashboard.html", takes_context=True)
def campaign_dashboard(context):
    """For those who may see spend (Marketing, Managers): KPIs, charts and campaign ranks of a period."""
    request = context["request"]
    if not request.user.has_perm("campaigns.view_dailystat"):
        return {"show": False}
    dashboard = marketing_dashboard(days=_period_days(request), currency=request.GET.get("currency") or None)
    currency = dashboard["currency"]
    daily = dashboard["daily"]
    return {
        "show": True,
        **dashboard,
        "ranked": [("Best ROI", dashboard["top_campaigns"]), ("Worst ROI", dashboard["bottom_campaigns"])],
        "cost_revenue_chart": line_chart(
            [day["day"].strftime("%b %d") for day in daily],
            {
                f"Cost ({currency})": [day["cost"] for day in daily],
                f"Revenue ({currency})": [day["revenue"] for day in daily],
            },
            title=f"Cost and revenue per day, {currency}",
            partial_last=daily[-1]["day"] == dashboard["today"] if daily else False,
            width=520,
            height=240,
        ),
        "cpl_chart": bar_chart(
            [(row["label"], row["cpl"], amount(row["cpl"])) for row in dashboard["by_kind"]],
            title=f"CPL by traffic source kind, {currency}",
        ),
        "roi_chart": bar_chart(
            [(row["label"], row["roi"], percent(row["roi"])) for row in dashboard["by_kind"]],
            title="ROI by traffic source kind",
        ),
        "funnel_chart": funnel_chart(
            [(step["label"], step["count"], step["of_previous"]) for step in dashboard["funnel"]],
            title="Funnel: clicks, leads, valid, qualified, converted, each stage as a share of the one before",
        ),
    }
