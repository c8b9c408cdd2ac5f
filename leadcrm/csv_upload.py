"""Reading an uploaded CSV file the same way everywhere: size limit, UTF-8, delimiter, clear errors."""

import csv
import io
import re
from collections.abc import Sequence

MAX_FILE_BYTES = 20 * 1024 * 1024
# Control characters other than tab and line breaks (which a quoted cell may hold): PostgreSQL
# stores no NUL, and the rest are invisible wherever the value is shown again.
CONTROL_CHARACTER = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


class CsvUploadError(ValueError):
    """The file as a whole cannot be read; the message says what to do."""


def read_csv_upload(data: bytes) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """(header, [(line number, cells), ...]) with blank rows skipped.

    Only the delimiter is guessed from the start of the file: the sniffer's other guesses (such
    as no doubled quotes) hold for that sample only and would split later doubled quotes wrongly.
    """
    if len(data) > MAX_FILE_BYTES:
        raise CsvUploadError(f"The file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB; split it.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise CsvUploadError("The file is not UTF-8 text; save it as CSV UTF-8.") from error
    try:
        delimiter = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|").delimiter
    except csv.Error:
        delimiter = ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader, [])
        rows = [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    except csv.Error as error:
        raise CsvUploadError(f"The file is not valid CSV near line {reader.line_num}: {error}.") from error
    return header, rows


def control_character_problem(cells: Sequence[str], header: Sequence[str] = ()) -> str | None:
    """Why a row with NUL or another control character cannot be taken, naming the column; else None."""
    for index, cell in enumerate(cells):
        found = CONTROL_CHARACTER.search(cell)
        if found is None:
            continue
        name = header[index].strip() if index < len(header) else ""
        column = f"column {index + 1}" + (f" ({name})" if name and not CONTROL_CHARACTER.search(name) else "")
        code = ord(found.group())
        what = "a NUL byte" if code == 0 else "a control character"
        return f"{column} contains {what} (U+{code:04X})"
    return None


def cell_count_problem(cells: Sequence[str], header: Sequence[str]) -> str | None:
    """A row with more cells than the header had a delimiter inside an unquoted value ("Acme, Inc" or a
    spend of 1,234.50): its values would land in the wrong columns. Empty cells at its end (a
    spreadsheet's habit) do not count. Says "<n> cells but the header has <m>; ..." for the caller to
    name the row."""
    count = len(cells)
    while count > len(header) and not cells[count - 1].strip():
        count -= 1
    if count <= len(header):
        return None
    return f"{count} cells but the header has {len(header)}; quote values that contain the delimiter"
