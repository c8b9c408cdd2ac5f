"""The follow-up kinds of the leads app, registered with the outbox when the app is ready."""

from django.conf import settings

from .models import Lead, OutboxEntry
from .services.assignment import assign_outbox_handler
from .services.auction import auction_needed, auction_outbox_handler, auctions_run
from .services.delivery import delivery_outbox_batch, delivery_outbox_handler
from .services.notifications import notification_outbox_batch, notification_outbox_handler
from .services.outbox import FollowUpKind, register_follow_up
from .services.postbacks import postback_outbox_batch, postback_outbox_handler

Kind = OutboxEntry.Kind


def register_lead_follow_ups() -> None:
    register_follow_up(
        FollowUpKind(
            name=Kind.ASSIGNMENT,
            label="Assignment",
            handle=assign_outbox_handler,
            needed_by_new_lead=lambda lead: lead.is_auto_assignable,
        )
    )
    register_follow_up(
        FollowUpKind(
            name=Kind.DELIVERY,
            label="Delivery to buyer",
            handle=delivery_outbox_handler,
            handle_batch=delivery_outbox_batch,
            queue=settings.PARTNER_CALLS_QUEUE,
            needed_by_new_lead=_sellable,
            sends_personal_data=True,
        )
    )
    register_follow_up(
        FollowUpKind(
            name=Kind.AUCTION,
            label="Auction to buyers",
            handle=auction_outbox_handler,
            handle_batch=auctions_run,
            queue=settings.PARTNER_CALLS_QUEUE,
            needed_by_new_lead=auction_needed,
            sends_personal_data=True,
        )
    )
    register_follow_up(
        FollowUpKind(
            name=Kind.POSTBACK,
            label="Postback to traffic source",
            handle=postback_outbox_handler,
            handle_batch=postback_outbox_batch,
            queue=settings.PARTNER_CALLS_QUEUE,
        )
    )
    register_follow_up(
        FollowUpKind(
            name=Kind.PARTNER_NOTIFICATION,
            label="Notification to supplier",
            handle=notification_outbox_handler,
            handle_batch=notification_outbox_batch,
            queue=settings.PARTNER_CALLS_QUEUE,
        )
    )


def _sellable(lead: Lead) -> bool:
    """Routed to buyers by priority and weight; an offer that sells by auction is auctioned instead."""
    return lead.is_billable and not lead.offer.sells_by_auction
