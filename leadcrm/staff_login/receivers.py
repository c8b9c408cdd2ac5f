"""At each login, what the user must still do after the password (the middleware reads it)."""

from typing import Any

from django.contrib.auth.models import User
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from django.http import HttpRequest

from .middleware import remember_next_step
from .services import next_step


@receiver(user_logged_in)
def decide_second_factor(sender: type, request: HttpRequest | None, user: User, **kwargs: Any) -> None:
    if request is not None and hasattr(request, "session"):
        remember_next_step(request, next_step(user))
