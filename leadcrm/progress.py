"""How far a long job (a lead import, an audience export) has got, for its admin page."""

from django.utils.html import format_html
from django.utils.safestring import SafeString

REFRESH_SECONDS = 3


def progress_html(*, done: int, total: int, running: bool, noun: str = "rows") -> SafeString:
    """ "1,200 of 5,000 rows (24%)" with a progress bar; while the job runs, the page reloads itself
    every few seconds (admin.js reads data-refresh-seconds), and stops once it has finished."""
    share = f" ({done * 100 // total}%)" if total else ""
    bar = format_html('<progress class="lc-progress" value="{}" max="{}"></progress>', done, max(total, 1))
    text = f"{done:,} of {total:,} {noun}{share}"
    if not running:
        return format_html("{} {}", bar, text)
    return format_html(
        '{} {} <span class="lc-help" data-refresh-seconds="{}">(still running: this page refreshes itself)</span>',
        bar,
        text,
        REFRESH_SECONDS,
    )
