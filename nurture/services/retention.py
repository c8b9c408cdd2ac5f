"""Audience export files expire: each holds the contacts of every lead in the audience (hashed, or
plain for those allowed), so it is deleted AUDIENCE_EXPORT_RETENTION_DAYS after it was made. The
export's record (when, how many rows, its checksum) stays."""

from datetime import datetime, timedelta

from django.conf import settings

from ..models import AudienceExport


def audience_export_files_expire(*, now: datetime, batch_size: int) -> int:
    """Delete the files of exports made before the period; returns how many, `batch_size` at a time."""
    before = now - timedelta(days=settings.AUDIENCE_EXPORT_RETENTION_DAYS)
    expired = 0
    while True:
        exports = list(
            AudienceExport.objects.filter(created_at__lt=before)
            .exclude(file="")
            .order_by("pk")
            .only("file")[:batch_size]
        )
        for export in exports:
            # The file first, then the row: a run stopped in between finds the row again and
            # deletes nothing twice (a missing file is not an error).
            export.file.delete(save=False)
            AudienceExport.objects.filter(pk=export.pk).update(file="")
        expired += len(exports)
        if len(exports) < batch_size:
            return expired
