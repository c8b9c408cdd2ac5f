"""Step 4 of the pipeline: the same person for the same offer within the window is a duplicate. The
same round trip counts the recent leads from the lead's IP address, for step 3 (validation)."""

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from leadcrm.bulk import Statement, first_rows, model_field, planned_once

from ..models import Lead, Validity
from .locking import lock_statement


def _contact_locks(*, offer_id: int, email: str, phone: str) -> tuple[str, list[int]]:
    return lock_statement(
        *(("lead-dedupe", offer_id, kind, value) for kind, value in (("email", email), ("phone", phone)) if value)
    )


def _original_query(lead: Lead) -> tuple[str, list[Any]]:
    """The earliest non-duplicate, not invalid lead with the same email or phone for the offer."""
    contacts = tuple(name for name in ("email", "phone") if getattr(lead, name))
    since = timezone.now() - timedelta(days=settings.LEAD_DEDUPE_WINDOW_DAYS)
    conditions = [
        lead.offer_id,
        model_field(Lead, "created_at").get_db_prep_value(since, connection),
        False,
        lead.is_test,
        Validity.INVALID.value,
    ]
    return _original_sql(contacts), [param for name in contacts for param in (getattr(lead, name), *conditions)]


@functools.lru_cache(maxsize=4)
def _original_sql(contacts: tuple[str, ...]) -> str:
    """`_original_query`'s statement for leads with these contacts (written out, and once: the ORM took
    longer to build this query than PostgreSQL took to run it).

    One branch per contact, each the earliest match on its own (offer, contact, created_at) index,
    then the earlier of the two. With `email = %s OR phone = %s` the plan hung on the table's
    statistics: a young table (no ANALYZE yet) had PostgreSQL walk every lead of the offer in one
    index, 3 ms at 4,500 leads; each branch's index finds its rows whatever the statistics say."""
    quote = connection.ops.quote_name

    def column(name: str) -> str:
        return quote(model_field(Lead, name).column)

    conditions = (
        f"{column('offer')} = %s AND {column('created_at')} >= %s AND {column('is_duplicate')} = %s "
        f"AND {column('is_test')} = %s AND {column('validity')} <> %s"
    )
    selected = f"{column('id')}, {column('public_id')}, {column('partner')}, {column('created_at')}"
    order = f"ORDER BY {column('created_at')}, {column('id')} LIMIT 1"
    # Only names and placeholders are spliced in; every value is a parameter. A branch is a subquery
    # of its own, as SQLite allows no ORDER BY or LIMIT on a member of a UNION.
    branches = [
        f"SELECT * FROM (SELECT {selected} FROM {quote(Lead._meta.db_table)} "  # noqa: S608
        f"WHERE {column(name)} = %s AND {conditions} {order}) AS by_{name}"
        for name in contacts
    ]
    return (
        f"SELECT {column('id')}, {column('public_id')}, {column('partner')} "  # noqa: S608
        f"FROM ({' UNION ALL '.join(branches)}) AS found {order}"
    )


def _leads_from_ip_query(lead: Lead) -> tuple[str, list[Any]]:
    """How many leads came from the lead's IP address in the last hour (validation's velocity check),
    counted up to LEAD_MAX_PER_IP_PER_HOUR: the check needs no more, and counting them all made each
    lead from a busy address cost more than the last (3.6 ms at 5,000 an hour on PostgreSQL, against
    0.03 ms). The ORDER BY keeps the planner on the (ip, created_at) index for the LIMIT."""
    since = timezone.now() - timedelta(hours=1)
    return _leads_from_ip_sql(), [
        model_field(Lead, "ip").get_db_prep_value(lead.ip, connection),
        model_field(Lead, "created_at").get_db_prep_value(since, connection),
        lead.is_test,
        settings.LEAD_MAX_PER_IP_PER_HOUR,
    ]


@functools.cache
def _leads_from_ip_sql() -> str:
    quote = connection.ops.quote_name
    ip, created_at, is_test = (quote(model_field(Lead, name).column) for name in ("ip", "created_at", "is_test"))
    return (
        f"SELECT COUNT(*) FROM (SELECT 1 FROM {quote(Lead._meta.db_table)} WHERE {ip} = %s "  # noqa: S608
        f"AND {created_at} >= %s AND {is_test} = %s ORDER BY {created_at} LIMIT %s) AS recent"
    )


@dataclass(frozen=True)
class ContactLookups:
    original: Lead | None  # the lead this one duplicates
    leads_from_ip: int  # leads from the lead's IP address in the last hour, up to LEAD_MAX_PER_IP_PER_HOUR
    also: list[Any]  # the first row of each statement the caller sent along


def contact_lookups(*, lead: Lead, also: Sequence[Statement] = ()) -> ContactLookups:
    """Lock the lead's contacts for its offer until the transaction ends, then find the original it
    duplicates, if any, and count the recent leads from its IP address. The locks serialise captures of
    the same contact: two identical submissions racing would otherwise both see no original and both be
    stored as originals.

    On PostgreSQL it is one round trip: the statements run one after the other, and the SELECT takes
    its snapshot after the locks are held (READ COMMITTED gives each statement its own), so it sees a
    racing capture of the same contact that committed while this one waited. `also`: the caller's
    statements to send in the same round trip, after these.
    """
    statements, original_at, ip_at = [], None, None
    if lead.email or lead.phone:  # else nothing to lock, nobody to be a duplicate of
        locks, keys = _contact_locks(offer_id=lead.offer_id, email=lead.email, phone=lead.phone)
        if locks:
            statements.append((locks, keys))
        original_at = len(statements)
        statements.append(planned_once(_original_query(lead)))
    if lead.ip:
        ip_at = len(statements)
        statements.append(planned_once(_leads_from_ip_query(lead)))
    also_at = len(statements)
    rows = first_rows([*statements, *also])
    original = None
    if original_at is not None and (row := rows[original_at]) is not None:
        public_id = Lead._meta.get_field("public_id").to_python(row[1])
        # What the lead's answer and timeline tell of its original (the API shows a partner its own).
        original = Lead.from_db(connection.alias, ["id", "public_id", "partner_id"], [row[0], public_id, row[2]])
    return ContactLookups(
        original=original, leads_from_ip=int(rows[ip_at][0]) if ip_at is not None else 0, also=rows[also_at:]
    )
