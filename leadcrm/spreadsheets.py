"""CSV cells that open safely in a spreadsheet."""

import re
from typing import TypeVar

Cell = TypeVar("Cell")

_E164 = re.compile(r"^\+\d{6,15}$")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Cell) -> Cell | str:
    """Text typed on public forms or by partners: a leading = + - @ would run as a formula in Excel,
    so it is quoted. A phone number in E.164 (+ and digits only) is left as it is."""
    if isinstance(value, str) and value[:1] in _FORMULA_STARTS and not _E164.match(value):
        return "'" + value
    return value
