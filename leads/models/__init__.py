"""The leads app's models, by sub-domain: shared choices (`choices`), partners and their API keys
(`partners`), the lead and its timeline (`leads`), staff rules (`rules`), the outbox (`outbox`),
delivery to buyers with postbacks and supplier notifications (`delivery`), ping/post auctions
(`auction`), money (`money`), consent certificates (`consent`), and suppliers' inbound pings with
buyers' suppression lists (`buying`).

Import from `leads.models`, not from the modules: they may move.
"""

from .auction import Auction, AuctionBid
from .buying import BuyerSuppression, SupplierPing
from .choices import OPEN_STATUSES, ApiScope, Door, LeadStatus, Qualification, Validity
from .consent import ConsentCertificate
from .delivery import (
    MAPPABLE_FIELDS,
    PHONE_FORMATS,
    PING_FIELDS,
    TEXT_TRANSFORMS,
    Delivery,
    DeliveryAttempt,
    DeliveryDestination,
    DeliveryRoute,
    PartnerCall,
    PartnerNotification,
    Postback,
    WebhookSecret,
    validate_field_mapping,
    validate_headers,
)
from .leads import (
    AUTO_ASSIGNABLE,
    BILLABLE,
    UNASSIGNED_QUEUE,
    CallLog,
    Lead,
    LeadEvent,
    LeadImport,
    LeadNote,
    LeadOutcome,
    SalesRepProfile,
)
from .money import (
    BUYER_BALANCE_SIGN,
    SUPPLIER_BALANCE_SIGN,
    AppendOnly,
    BuyerAccount,
    LedgerEntry,
    RoutePrice,
    SupplierPayout,
)
from .outbox import HeldDelivery, OutboxEntry
from .partners import ApiKey, IdempotencyRecord, Partner
from .rules import BlockedEmailDomain, QualificationRule

__all__ = [
    "AUTO_ASSIGNABLE",
    "BILLABLE",
    "BUYER_BALANCE_SIGN",
    "MAPPABLE_FIELDS",
    "OPEN_STATUSES",
    "PHONE_FORMATS",
    "PING_FIELDS",
    "SUPPLIER_BALANCE_SIGN",
    "TEXT_TRANSFORMS",
    "UNASSIGNED_QUEUE",
    "ApiKey",
    "ApiScope",
    "AppendOnly",
    "Auction",
    "AuctionBid",
    "BlockedEmailDomain",
    "BuyerAccount",
    "BuyerSuppression",
    "CallLog",
    "ConsentCertificate",
    "Delivery",
    "DeliveryAttempt",
    "DeliveryDestination",
    "DeliveryRoute",
    "Door",
    "HeldDelivery",
    "IdempotencyRecord",
    "Lead",
    "LeadEvent",
    "LeadImport",
    "LeadNote",
    "LeadOutcome",
    "LeadStatus",
    "LedgerEntry",
    "OutboxEntry",
    "Partner",
    "PartnerCall",
    "PartnerNotification",
    "Postback",
    "Qualification",
    "QualificationRule",
    "RoutePrice",
    "SalesRepProfile",
    "SupplierPayout",
    "SupplierPing",
    "Validity",
    "WebhookSecret",
    "validate_field_mapping",
    "validate_headers",
]
