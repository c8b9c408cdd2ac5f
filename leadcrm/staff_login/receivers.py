"""At each login, what the user must still do after the password (the middleware reads it); and when a
role change makes a user need a second factor, the end of the sessions they opened without one."""

from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.contrib.auth.signals import user_logged_in
from django.db.models.signals import m2m_changed, pre_save
from django.dispatch import receiver
from django.http import HttpRequest

from .middleware import remember_next_step
from .services import MANAGERS_GROUP, next_step
from .sessions import password_only_sessions_end


@receiver(user_logged_in)
def decide_second_factor(sender: type, request: HttpRequest | None, user: User, **kwargs: Any) -> None:
    if request is not None and hasattr(request, "session"):
        remember_next_step(request, next_step(user))


@receiver(m2m_changed, sender=User.groups.through)
def end_password_only_sessions_of_new_managers(
    sender: type, instance: User | Group, action: str, reverse: bool, pk_set: set[int] | None, **kwargs: Any
) -> None:
    """Added to the managers, from the user's page (instance: the user) or the group's (the group)."""
    if action != "post_add" or not pk_set or not settings.REQUIRE_STAFF_2FA:
        return
    if isinstance(instance, Group):
        if instance.name == MANAGERS_GROUP:
            password_only_sessions_end(pk_set)
    elif Group.objects.filter(pk__in=pk_set, name=MANAGERS_GROUP).exists():
        password_only_sessions_end([instance.pk])


@receiver(pre_save, sender=User)
def end_password_only_sessions_of_new_superusers(
    sender: type, instance: User, raw: bool, update_fields: frozenset[str] | None, **kwargs: Any
) -> None:
    """Made a superuser: asked before the row is written, while its old flag can still be read. The
    sessions end in the saving transaction, so they stay if the change is rolled back."""
    if raw or instance.pk is None or not instance.is_superuser or not settings.REQUIRE_STAFF_2FA:
        return
    if update_fields is not None and "is_superuser" not in update_fields:
        return  # a login's last_login, a password change ...
    if User.objects.filter(pk=instance.pk, is_superuser=False).exists():
        password_only_sessions_end([instance.pk])
