"""Cell values for spreadsheets: formula neutralisation and text a file format can hold (ADR 0027).

**Formula neutralisation.** Excel, LibreOffice Calc and Google Sheets evaluate a cell whose text
starts with ``=``, ``+``, ``-`` or ``@`` (and, when importing a CSV, one that starts with a tab or
a carriage return followed by one of them). OWASP's CSV Injection page lists exactly these six
(``= + - @``, tab 0x09, CR 0x0D) and says to prefix such a cell with a single quote; ASVS 1.2.10
adds NUL. We go one step further and also look *past leading whitespace*: LibreOffice's CSV
import has a "trim spaces" option, and Excel trims some leading white space on import, so
``"  =HYPERLINK(...)"`` may become a live formula on some machine; a harmless ``" -note"`` getting
a quote costs nothing. So a text is neutralised when its first character is one of
``= + - @ \\t \\r \\n \\0`` or when its first character that is not white space is one of
``= + - @``. The prefix is a single quote ``'`` (OWASP's choice): Excel reads a typed ``'`` as
"this is text", and the quote stays visible to anyone reading the file as plain text, which says
honestly that the value was changed. The field separator and quotes inside a value cannot start
a new cell because every CSV here is written by the ``csv`` module (RFC 4180 quoting).

**Numbers stay numbers.** Only ``str`` values are neutralised: an ``int`` or ``float`` from the
export (a count, a rating) is written as a number. A visitor's ``"+1"`` or ``"-2"`` is text (it
came from a text field) and is neutralised like any other text. Integers Excel cannot hold
exactly (more than 15 significant digits) and non-finite floats are written as text instead.

**Text a file can hold.** ``clean_text`` replaces lone UTF-16 surrogates (which a JSON request
body may carry but UTF-8 cannot encode) with U+FFFD, and ``visible_controls`` turns C0 control
characters other than tab, LF and CR (which XML 1.0, so xlsx, cannot hold, and which a PDF draws
as nothing) into their Unicode "control pictures" (U+2400 + code: ``\\x01`` becomes ``␁``), so
the character is still shown rather than dropped.

Pure functions: no I/O.
"""

from __future__ import annotations

import datetime as dt
import math
import re

# a value a row may hold (the export package's values, plus dates for other callers)
Cell = str | int | float | bool | None | dt.date

QUOTE = "'"
_TRIGGERS = frozenset("=+-@")
_LEADING = frozenset("=+-@\t\r\n\0")
_EXCEL_DIGITS = 15
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_XML_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def is_formula_like(text: str) -> bool:
    """Whether a spreadsheet might evaluate ``text`` (see the module docstring)."""
    if not text:
        return False
    if text[0] in _LEADING:
        return True
    stripped = text.lstrip()
    return bool(stripped) and stripped[0] in _TRIGGERS


def neutralise(text: str) -> str:
    """``text``, prefixed with a single quote when a spreadsheet might evaluate it."""
    return QUOTE + text if is_formula_like(text) else text


def clean_text(text: str) -> str:
    """``text`` with any lone surrogate replaced by U+FFFD (a valid pair is kept as its character)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def visible_controls(text: str) -> str:
    """C0 controls (but tab, LF, CR) and U+FFFE/U+FFFF shown as visible characters."""
    if not _XML_ILLEGAL.search(text):
        return text
    return _XML_ILLEGAL.sub(lambda m: chr(0x2400 + ord(m.group())) if m.group() < " " else "\ufffd", text)


def as_text(value: Cell) -> str:
    """A value as the text a CSV cell or a PDF shows (not neutralised): ``None`` is empty,
    booleans are ``true``/``false``, dates are ISO 8601."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.date):  # datetime is a date too
        return value.isoformat()
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    if isinstance(value, int):
        return str(value)
    return clean_text(value)


def is_spreadsheet_number(value: Cell) -> bool:
    """Whether ``value`` is written as a number: an int or a finite float Excel holds exactly."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return len(str(abs(value))) <= _EXCEL_DIGITS
    return isinstance(value, float) and math.isfinite(value)


def csv_cell(value: Cell) -> str | int | float:
    """A value for ``csv.writer``: numbers as numbers, everything else as neutralised text."""
    if is_spreadsheet_number(value):
        assert isinstance(value, int | float)
        return value
    return neutralise(as_text(value))
