"""CSV and Excel writers for tables of values (ADR 0027).

- ``Sheet(name, columns, rows, file_name=None)``: one table; ``rows`` are sequences of cells in
  the order of ``columns`` (values: ``str | int | float | bool | None | date``, see ``cells``).
- ``csv_text(rows) -> str``: RFC 4180 CSV (CRLF line ends, minimal quoting) of rows (the first
  is usually the header), every text cell neutralised against formulas. No byte order mark:
  callers that write a file for people to open in Excel encode it with ``csv_bytes``.
- ``csv_bytes(rows) -> bytes``: the same, UTF-8 *with* a byte order mark. Excel opens a CSV
  without a BOM in the machine's ANSI code page (é becomes Ã©, 中文 becomes garbage); with the
  BOM it reads UTF-8. LibreOffice, Numbers, Google Sheets, Python's ``utf-8-sig`` and pandas
  all accept the BOM, so it is always written.
- ``csv_zip(sheets, when=None) -> bytes``: one ``csv_bytes`` file per sheet in a zip, named
  ``NN-<slug>.csv`` in the order given (``file_name`` or the sheet name, lower-case ASCII
  letters, digits and dashes), every entry dated ``when`` (default 1980-01-01): the same
  sheets give the same bytes.
- ``xlsx(sheets) -> bytes``: an Excel workbook with openpyxl (write-only mode: rows are streamed),
  one worksheet per sheet; names cut to Excel's rules (at most 31 characters, none of
  ``: \\ / ? * [ ]``, no leading or trailing apostrophe, not "History", unique ignoring case);
  header row bold and frozen. Text cells are neutralised like the CSV *and* typed as strings
  (``data_type = "s"``), so no cell is a formula even after someone edits it; numbers are
  numbers; booleans are the text ``true``/``false`` (Excel would show a localised WAHR/VRAI);
  dates are ISO 8601 text. Control characters XML cannot hold are shown as control pictures
  and a text longer than Excel's 32,767-character cell limit is cut with a note (the JSON
  export is the complete copy).

For the record of processing (Art. 30)::

    from confide.documents.sheets import csv_bytes
    data = csv_bytes([["purpose", "lawful basis", "categories"], *rows])

Pure: no database, no network, no file system.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import Cell as ExcelCell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from confide.documents.cells import Cell, as_text, csv_cell, is_spreadsheet_number, neutralise, visible_controls

EXCEL_CELL_MAX = 32_767
EXCEL_NAME_MAX = 31
_TRUNCATED = "… [cut at Excel's cell limit; the JSON export holds the whole text]"
_NAME_FORBIDDEN = re.compile(r"[:\\/?*\[\]\x00-\x1f]")
_SLUG = re.compile(r"[^a-z0-9]+")
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_COLUMN_WIDTH_MAX = 60


@dataclass(frozen=True)
class Sheet:
    name: str
    columns: Sequence[str]
    rows: Sequence[Sequence[Cell]] = field(default_factory=tuple)
    file_name: str | None = None  # the CSV file's stem; from ``name`` when None


# ---------------------------------------------------------------- CSV


def csv_text(rows: Iterable[Sequence[Cell]]) -> str:
    """RFC 4180 CSV of ``rows``, text cells neutralised against formulas (no BOM)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in rows:
        writer.writerow([csv_cell(value) for value in row])
    return out.getvalue()


def csv_bytes(rows: Iterable[Sequence[Cell]]) -> bytes:
    """``csv_text`` encoded as UTF-8 with a byte order mark (for Excel)."""
    return csv_text(rows).encode("utf-8-sig")


def slug(name: str, default: str = "sheet") -> str:
    """Lower-case ASCII letters, digits and dashes (nothing else survives a file name everywhere)."""
    return _SLUG.sub("-", name.lower()).strip("-")[:60].strip("-") or default


def csv_zip(sheets: Sequence[Sheet], when: dt.datetime | None = None) -> bytes:
    """One CSV (``csv_bytes``) per sheet in a zip; names ``NN-<slug>.csv``, deterministic."""
    date_time = _ZIP_EPOCH if when is None else (when.year, when.month, when.day, when.hour, when.minute, when.second)
    width = max(2, len(str(len(sheets))))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for number, sheet in enumerate(sheets, start=1):
            info = zipfile.ZipInfo(f"{number:0{width}d}-{slug(sheet.file_name or sheet.name)}.csv", date_time)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, csv_bytes([list(sheet.columns), *sheet.rows]))
    return out.getvalue()


# ---------------------------------------------------------------- Excel


def sheet_name(name: str, taken: set[str]) -> str:
    """``name`` made a valid, unused Excel sheet name (``taken`` holds the lower-cased names used)."""
    base = _NAME_FORBIDDEN.sub(" ", name).strip().strip("'").strip() or "Sheet"
    if base.lower() == "history":
        base = "History (data)"
    base = base[:EXCEL_NAME_MAX].rstrip("'").rstrip() or "Sheet"
    candidate, number = base, 1
    while candidate.lower() in taken:
        number += 1
        suffix = f" ({number})"
        candidate = base[: EXCEL_NAME_MAX - len(suffix)].rstrip("'") + suffix
    taken.add(candidate.lower())
    return candidate


def excel_text(value: Cell) -> str:
    """A value as the text of an Excel string cell: neutralised, XML-safe, within the cell limit."""
    text = neutralise(visible_controls(as_text(value)))
    if len(text) > EXCEL_CELL_MAX:
        text = text[: EXCEL_CELL_MAX - len(_TRUNCATED)] + _TRUNCATED
    return text


def xlsx(sheets: Sequence[Sheet]) -> bytes:
    """An Excel workbook, one worksheet per sheet (see the module docstring)."""
    book = Workbook(write_only=True)
    book.properties.creator = "Confide"
    bold = Font(bold=True)
    taken: set[str] = set()
    for sheet in sheets:
        ws = book.create_sheet(sheet_name(sheet.name, taken))
        widths = [min(_COLUMN_WIDTH_MAX, max(10, len(as_text(c)) + 2)) for c in sheet.columns]
        for row in sheet.rows[:200]:  # a sample is enough to size the columns
            for i, value in enumerate(row[: len(widths)]):
                widths[i] = min(_COLUMN_WIDTH_MAX, max(widths[i], len(as_text(value)) + 2))
        for i, width in enumerate(widths, start=1):
            ws.column_dimensions[get_column_letter(i)].width = width
        ws.freeze_panes = "A2"
        header = []
        for column in sheet.columns:
            cell = WriteOnlyCell(ws, value=excel_text(column))
            cell.data_type = "s"
            cell.font = bold
            header.append(cell)
        ws.append(header)
        for row in sheet.rows:
            ws.append([_excel_cell(ws, value) for value in row])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _excel_cell(ws: Any, value: Cell) -> ExcelCell | int | float | None:
    if value is None:
        return None
    if is_spreadsheet_number(value):
        assert isinstance(value, int | float)
        return value
    cell = WriteOnlyCell(ws, value=excel_text(value))
    cell.data_type = "s"
    return cell
