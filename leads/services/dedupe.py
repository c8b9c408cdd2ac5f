"""Step 4 of the pipeline: the same person for the same offer within the window is a duplicate."""

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from leadcrm.bulk import sends_several_statements

from ..models import Lead, Validity
from .locking import lock_statement


def _contact_locks(*, offer_id: int, email: str, phone: str) -> tuple[str, list[int]]:
    return lock_statement(
        *(("lead-dedupe", offer_id, kind, value) for kind, value in (("email", email), ("phone", phone)) if value)
    )


def _original_query(lead: Lead) -> tuple[str, list[Any]]:
    """The earliest non-duplicate, not invalid lead with the same email or phone for the offer
    (written out: the ORM took longer to build this query than PostgreSQL took to run it)."""
    meta = Lead._meta
    quote = connection.ops.quote_name

    def column(name: str) -> str:
        return quote(meta.get_field(name).column)

    contacts, params = [], []
    for name in ("email", "phone"):
        if value := getattr(lead, name):
            contacts.append(f"{column(name)} = %s")
            params.append(value)
    since = timezone.now() - timedelta(days=settings.LEAD_DEDUPE_WINDOW_DAYS)
    # Only names and placeholders are spliced in; every value is a parameter.
    sql = (
        f"SELECT {column('id')}, {column('public_id')}, {column('partner')} FROM {quote(meta.db_table)} "  # noqa: S608
        f"WHERE ({' OR '.join(contacts)}) AND {column('offer')} = %s AND {column('created_at')} >= %s "
        f"AND {column('is_duplicate')} = %s AND {column('is_test')} = %s AND {column('validity')} <> %s "
        f"ORDER BY {column('created_at')}, {column('id')} LIMIT 1"
    )
    date_field = meta.get_field("created_at")
    params += [
        lead.offer_id,
        date_field.get_db_prep_value(since, connection),
        False,
        lead.is_test,
        Validity.INVALID.value,
    ]
    return sql, params


def lock_and_find_original(*, lead: Lead) -> Lead | None:
    """Lock the lead's contacts for its offer until the transaction ends, then find the original it
    duplicates, if any. The locks serialise captures of the same contact: two identical submissions
    racing would otherwise both see no original and both be stored as originals.

    On PostgreSQL both go in one round trip: the statements run one after the other, and the SELECT
    takes its snapshot after the locks are held (READ COMMITTED gives each statement its own), so it
    sees a racing capture of the same contact that committed while this one waited.
    """
    if not lead.email and not lead.phone:  # nothing to lock, nobody to be a duplicate of
        return None
    locks, keys = _contact_locks(offer_id=lead.offer_id, email=lead.email, phone=lead.phone)
    select, params = _original_query(lead)
    with connection.cursor() as cursor:
        if locks and sends_several_statements(cursor):
            cursor.execute(f"{locks}; {select}", [*keys, *params])
            cursor.nextset()
        else:
            if locks:
                cursor.execute(locks, keys)
            cursor.execute(select, params)
        row = cursor.fetchone()
    if row is None:
        return None
    public_id = Lead._meta.get_field("public_id").to_python(row[1])
    # What the lead's answer and timeline tell of its original (the API shows a partner its own).
    return Lead.from_db(connection.alias, ["id", "public_id", "partner_id"], [row[0], public_id, row[2]])
