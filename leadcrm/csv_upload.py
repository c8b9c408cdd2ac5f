"""Reading an uploaded CSV file the same way everywhere: size limit, UTF-8, delimiter, clear errors."""

import csv
import io

MAX_FILE_BYTES = 20 * 1024 * 1024


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
