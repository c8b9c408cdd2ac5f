"""A list-of-strings model field that marketing staff can edit as text or checkboxes in the admin."""

import re
from collections.abc import Iterable
from typing import Any

from django import forms
from django.db import models

_SPLITTERS = {",": re.compile(r"[,\n]"), "\n": re.compile(r"\n")}


class StringListFormField(forms.CharField):
    """Edits a list of strings as one text: items separated by commas (or by lines)."""

    def __init__(self, *, separator: str = ",", item_case: str = "", **kwargs: Any) -> None:
        self.separator = separator
        self.item_case = item_case
        if separator == "\n":
            kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 4}))
            kwargs.setdefault("help_text", "One per line.")
        else:
            kwargs.setdefault("help_text", "Separate with commas.")
        kwargs.pop("encoder", None)
        kwargs.pop("decoder", None)
        kwargs.pop("max_length", None)
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list | tuple):
            joiner = "\n" if self.separator == "\n" else ", "
            return joiner.join(str(item) for item in value)
        return value

    # A list where CharField gives a string: the model field stores the list as JSON.
    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        if isinstance(value, list | tuple):
            items = [str(item) for item in value]
        else:
            text = super().to_python(value) or ""
            items = _SPLITTERS[self.separator].split(text)
        cleaned: list[str] = []
        for item in items:
            item = item.strip()
            if self.item_case == "upper":
                item = item.upper()
            elif self.item_case == "lower":
                item = item.lower()
            if item and item not in cleaned:
                cleaned.append(item)
        return cleaned

    def has_changed(self, initial: Any, data: Any) -> bool:
        return (initial or []) != self.to_python(data)


class StringListField(models.JSONField):
    """A JSON list of distinct strings; with `item_choices` the admin shows checkboxes."""

    def __init__(
        self,
        *args: Any,
        item_choices: Iterable[tuple[str, str]] | None = None,
        separator: str = ",",
        item_case: str = "",
        **kwargs: Any,
    ) -> None:
        self.item_choices = list(item_choices) if item_choices else None
        self.separator = separator
        self.item_case = item_case
        kwargs.setdefault("default", list)
        kwargs.setdefault("blank", True)
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> Any:
        name, path, args, kwargs = super().deconstruct()
        if self.item_choices:
            kwargs["item_choices"] = self.item_choices
        if self.separator != ",":
            kwargs["separator"] = self.separator
        if self.item_case:
            kwargs["item_case"] = self.item_case
        if kwargs.get("default") is list:
            del kwargs["default"]
        if kwargs.get("blank") is True:
            del kwargs["blank"]
        return name, path, args, kwargs

    def formfield(
        self,
        form_class: type[forms.Field] | None = None,
        choices_form_class: type[forms.ChoiceField] | None = None,
        **kwargs: Any,
    ) -> forms.Field:
        defaults: dict[str, Any] = {"required": not self.blank, "label": self.verbose_name.capitalize()}
        if self.help_text:
            defaults["help_text"] = self.help_text
        if self.item_choices:
            return forms.TypedMultipleChoiceField(
                choices=self.item_choices,
                widget=forms.CheckboxSelectMultiple,
                **defaults,
            )
        return StringListFormField(separator=self.separator, item_case=self.item_case, **defaults)
