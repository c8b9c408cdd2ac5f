"""The admin's own history (django.contrib.admin's LogEntry, the History button) names each changed
object by str(). For a lead or a suppressed address that is the person's name or address, which would
stay there after the person's data is erased: the admins of such models name them by id instead."""

from typing import Any

from django.contrib.admin.models import LogEntry
from django.db.models import F, Value
from django.db.models.functions import Concat
from django.utils.text import capfirst


class HistoryNamesById:
    """A ModelAdmin mixin: its history entries name the object "<Model> <id>"."""

    model: Any

    def log_addition(self, request: Any, obj: Any, message: Any) -> Any:
        entry = super().log_addition(request, obj, message)  # type: ignore[misc]  # ModelAdmin's, by the MRO
        self._name_by_id([entry])
        return entry

    def log_change(self, request: Any, obj: Any, message: Any) -> Any:
        entry = super().log_change(request, obj, message)  # type: ignore[misc]  # ModelAdmin's, by the MRO
        self._name_by_id([entry])
        return entry

    def log_deletions(self, request: Any, queryset: Any) -> Any:
        entries = super().log_deletions(request, queryset)  # type: ignore[misc]  # ModelAdmin's, by the MRO
        self._name_by_id(entries)
        return entries

    def _name_by_id(self, entries: list[LogEntry]) -> None:
        # Renamed once written: several deletions are written with bulk_create, which sends no signal.
        label = f"{capfirst(self.model._meta.verbose_name)} "
        LogEntry.objects.filter(pk__in=[entry.pk for entry in entries]).update(
            object_repr=Concat(Value(label), F("object_id"))
        )
        for entry in entries:
            entry.object_repr = f"{label}{entry.object_id}"
