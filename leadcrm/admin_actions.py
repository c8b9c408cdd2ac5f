"""Running a service on each selected object of an admin action, reporting what happened."""

from collections.abc import Callable

from django.contrib import messages

from .errors import ApplicationError


def run_for_each(modeladmin, request, queryset, work: Callable, done: str) -> int:
    """Call work(obj) for each object; refusals become error messages naming the object.

    Returns how many succeeded, and says so in one success message ("3 lead(s) marked lost.").
    """
    changed = 0
    for obj in queryset:
        try:
            work(obj)
            changed += 1
        except ApplicationError as error:
            modeladmin.message_user(request, f"{obj}: {error.message}", messages.ERROR)
    if changed:
        name = queryset.model._meta.verbose_name
        modeladmin.message_user(request, f"{changed} {name}(s) {done}.", messages.SUCCESS)
    return changed
