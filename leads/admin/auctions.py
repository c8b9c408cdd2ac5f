"""The auction log: every ping/post auction with its bids, on its own list and on the lead page, and
the staff action that auctions a held or failed lead again."""

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from unfold.admin import TabularInline

from campaigns.admin import OfferListFilter
from leadcrm.admin_logs import ReadOnlyLogAdmin

from ..models import Auction, AuctionBid, Lead
from ..services.auction import auctions_rerun
from .extensions import register_lead_action, register_lead_section
from .money_sections import _table, _when


def _money(amount, currency: str) -> str:
    return "—" if amount is None else f"{amount:.2f} {currency}"


class AuctionBidInline(TabularInline):
    model = AuctionBid
    extra = 0
    can_delete = False
    fields = (
        "rank",
        "destination",
        "outcome",
        "amount",
        "latency_ms",
        "bid_id",
        "reason",
        "post_outcome",
        "post_reason",
    )
    readonly_fields = fields
    ordering = ("rank", "id")
    verbose_name_plural = "buyers asked (ranked bids first)"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("destination")

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Auction)
class AuctionAdmin(ReadOnlyLogAdmin):
    empty_hint = (
        "Tick “sell by auction” on an offer and add ping/post buyers (a destination of kind "
        "ping/post with a route on that offer): each new sellable lead of the offer is auctioned here."
    )
    list_display = (
        "started_at",
        "status",
        "lead",
        "offer_name",
        "winner_name",
        "price_display",
        "buyers_pinged",
        "sold_count",
        "duration_ms",
    )
    list_filter = ("status", ("offer", OfferListFilter), ("started_at", admin.DateFieldListFilter))
    list_select_related = ("lead", "offer", "winner")
    show_full_result_count = False
    search_fields = ("public_id", "lead__public_id")
    date_hierarchy = "started_at"
    inlines = [AuctionBidInline]
    actions = ("run_again",)

    @admin.display(description="Offer", ordering="offer__name")
    def offer_name(self, auction):
        return auction.offer.name

    @admin.display(description="Winner")
    def winner_name(self, auction):
        return auction.winner.name if auction.winner else "—"

    @admin.display(description="Price", ordering="price")
    def price_display(self, auction):
        return _money(auction.price, auction.currency)

    @admin.action(description="Run the auction again (held or failed leads)", permissions=["change"])
    def run_again(self, request, queryset):
        leads = Lead.objects.filter(pk__in=queryset.values("lead_id"))
        count = auctions_rerun(leads=leads, user=request.user)
        self.message_user(
            request,
            f"{count} lead(s) will be auctioned again; sold, unsellable and already waiting leads are left alone.",
            messages.SUCCESS,
        )


def run_auction_again(modeladmin, request, queryset):
    """The lead list's action: auction the chosen held or failed leads again."""
    count = auctions_rerun(leads=queryset, user=request.user)
    modeladmin.message_user(
        request, f"{count} lead(s) will be auctioned again; sold, unsellable and already waiting leads are left alone."
    )


def lead_auctions_html(lead) -> SafeString:
    """The lead page's auctions: one line per auction (two queries: auctions, then their bids)."""
    auctions = list(Auction.objects.filter(lead=lead).select_related("winner").order_by("-started_at", "-id")[:10])
    bids = AuctionBid.objects.filter(auction__in=auctions).select_related("destination").order_by("rank", "id")
    by_auction: dict[int, list[AuctionBid]] = {}
    for bid in bids:
        by_auction.setdefault(bid.auction_id, []).append(bid)
    rows = []
    for auction in auctions:
        asked = by_auction.get(auction.pk, [])
        summary = ", ".join(
            f"{bid.destination.name}: {bid.get_outcome_display().lower()}"
            + (f" {bid.amount:.2f}" if bid.amount is not None else "")
            + (f" → {bid.get_post_outcome_display().lower()}" if bid.post_outcome else "")
            for bid in asked
        )
        rows.append(
            (
                format_html(
                    '<a href="{}">{}</a>',
                    reverse("admin:leads_auction_change", args=[auction.pk]),
                    auction.get_status_display(),
                ),
                auction.winner.name if auction.winner else "—",
                _money(auction.price, auction.currency),
                summary or "no buyer took part",
                f"{auction.duration_ms} ms" if auction.duration_ms is not None else "—",
                _when(auction.started_at),
            )
        )
    return _table(
        "Auctions",
        ("Outcome", "Winner", "Price", "Buyers and their answers", "Took", "When"),
        rows,
        "Not auctioned: its offer sells by fixed routes, or the lead is not sellable.",
    )


register_lead_section("deliveries_and_money", lead_auctions_html)
register_lead_action(
    run_auction_again,
    description="Run the auction again (held or failed leads)",
    allowed=lambda request: request.user.has_perm("leads.change_auction"),
)
