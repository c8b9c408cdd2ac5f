"""Ending the sessions a user opened with the password alone, once their account asks for more.

What follows the password is decided at login and kept in the session (middleware.py), so a session
opened before the user had to use a second factor (promoted to a manager or to superuser) or before
they set one up would keep password-only access until it expired. These writes end such sessions
instead: the user logs in again and is asked for a code, or to set up an app."""

from collections.abc import Collection
from importlib import import_module

from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY


def password_only_sessions_end(user_ids: Collection[int], *, keep: str | None = None) -> int:
    """End the unexpired sessions of these users that no second factor has verified, except the session
    `keep` (the one making the change); how many were ended. It reads every unexpired session, as
    Django keeps no index of sessions by user: fine for the rare role change or set-up."""
    if not user_ids:
        return 0
    store_class = import_module(settings.SESSION_ENGINE).SessionStore
    owners = {str(user_id) for user_id in user_ids}
    ended = 0
    rows = store_class.get_model_class().objects.filter(expire_date__gt=timezone.now())
    for session_key, session_data in rows.values_list("session_key", "session_data").iterator():
        if session_key == keep:
            continue
        data = store_class().decode(session_data)
        if data.get(SESSION_KEY) in owners and DEVICE_ID_SESSION_KEY not in data:
            store_class(session_key).delete()
            ended += 1
    return ended
