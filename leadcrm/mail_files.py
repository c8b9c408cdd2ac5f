"""Mail the file backend stored (EMAIL_URL=filemail://<folder>, as `make run` does): every message,
with the address and the body, is a file in that folder, kept until retention deletes it."""

from datetime import datetime
from pathlib import Path

from django.conf import settings

FILE_BACKEND = "django.core.mail.backends.filebased.EmailBackend"


def mail_files_expire(*, before: datetime) -> int:
    """Delete the stored mail files last written before `before`; returns how many. Nothing when
    mail is not stored in files. Deleting a file another run deleted a moment ago is not an error."""
    stored_in = getattr(settings, "EMAIL_FILE_PATH", None)
    if settings.EMAIL_BACKEND != FILE_BACKEND or not stored_in:
        return 0
    folder = Path(stored_in)  # relative to the working directory, as the backend writes it
    if not folder.is_dir():
        return 0
    deleted = 0
    cutoff = before.timestamp()
    for path in folder.iterdir():
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                deleted += 1
        except FileNotFoundError:
            continue
    return deleted
