"""An export package (``confide.subject-export/1``) as JSON, a zip of CSVs, an Excel workbook or a PDF (ADR 0027).

``render(package, fmt) -> Rendered(data, content_type, filename)`` is the one entry point:
synchronous and CPU-bound (a 1,000-message PDF costs about 1.5 s of CPU: bench/subject_render.py),
so callers run it with ``asyncio.to_thread`` and outside any write transaction (rule 12). It reads only the package:
no database, no network, no clock (the dates shown are the package's ``generated_at``).

- ``json``: the package itself, UTF-8, keys sorted, indented, ``ensure_ascii=False`` (é stays é):
  the complete, exact, machine-readable copy (Art. 20).
- ``csv``: a zip (``documents.sheets.csv_zip``) of ``01-about-this-export.csv`` (the Art. 15
  facts and the export's own details as topic/item/detail rows), one file per section in the
  package's order (named by the section's key), then ``conversations.csv`` (one row per
  transcript) and ``transcripts.csv`` (one row per message, with its conversation, site, sender
  and sender's name).
- ``xlsx``: the same tables as worksheets: "About this export", one per section (its title),
  "Conversations", "Transcripts".
- ``pdf``: a readable report (``documents.pdf``): a cover (workspace, generation time, what the
  document is), the Art. 15 facts as text and small tables, each section as a table, each
  transcript as a conversation. A section listed in ``TRANSCRIBED`` (the raw ``messages`` rows)
  is not repeated as a table when the package has transcripts: the same messages are in the
  conversations, readable, and complete in the other three formats.

The transcripts' sheet is called "Transcripts", not "Messages": the package's sections already
hold a "messages" table (the stored rows), and the two would otherwise collide.

Spreadsheet cells are neutralised against formulas (``documents.cells``); the PDF escapes every
value and fetches nothing. File names hold no personal data: ``confide-export-<date>.<ext>``,
the date being the package's generation date.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal, NamedTuple

from confide.documents import pdf
from confide.documents.cells import Cell, clean_text
from confide.documents.sheets import Sheet, csv_zip, xlsx

Format = Literal["json", "csv", "xlsx", "pdf"]
FORMATS: tuple[Format, ...] = ("json", "csv", "xlsx", "pdf")
TRANSCRIBED = frozenset({"messages"})
CONTENT_TYPES: dict[str, str] = {
    "json": "application/json",
    "csv": "application/zip",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
}
EXTENSIONS = {"json": "json", "csv": "zip", "xlsx": "xlsx", "pdf": "pdf"}
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_SENDERS = {"visitor": "Visitor", "operator": "Operator", "system": "System"}


class Rendered(NamedTuple):
    data: bytes
    content_type: str
    filename: str


def render(package: Mapping[str, Any], fmt: str) -> Rendered:
    """``package`` in ``fmt`` (``json``, ``csv``, ``xlsx`` or ``pdf``); ``ValueError`` for another format."""
    if fmt not in FORMATS:
        raise ValueError(f"Unknown export format {fmt!r}: use one of {', '.join(FORMATS)}.")
    if fmt == "json":
        data = to_json(package)
    elif fmt == "csv":
        data = csv_zip(tables(package), when=_generated(package))
    elif fmt == "xlsx":
        data = xlsx(tables(package))
    else:
        data = to_pdf(package)
    return Rendered(data, CONTENT_TYPES[fmt], filename(package, fmt))


def filename(package: Mapping[str, Any], fmt: str) -> str:
    """``confide-export-<generation date>.<ext>``: no name, no id, nothing about the person."""
    found = _DATE.match(str(package.get("generated_at") or ""))
    return f"confide-export-{found.group() if found else 'undated'}.{EXTENSIONS[fmt]}"


def to_json(package: Mapping[str, Any]) -> bytes:
    text = json.dumps(package, ensure_ascii=False, sort_keys=True, indent=2, default=str)
    return (clean_text(text) + "\n").encode("utf-8")


# ---------------------------------------------------------------- reading the package


def _generated(package: Mapping[str, Any]) -> dt.datetime | None:
    try:
        when = dt.datetime.fromisoformat(str(package.get("generated_at")))
    except ValueError:
        return None
    return when.astimezone(dt.UTC) if when.tzinfo else when


def _when(value: Any) -> str:
    """An ISO time as ``YYYY-MM-DD HH:MM:SS`` in UTC (the cover says so); anything else as given."""
    if not value:
        return ""
    try:
        when = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if when.tzinfo:
        when = when.astimezone(dt.UTC)
    return when.strftime("%Y-%m-%d %H:%M:%S")


def _cell(value: Any) -> Cell:
    """A package value as a cell; a list or an object (not in the schema, but never lost) as JSON text."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _sections(package: Mapping[str, Any]) -> list[tuple[str, str, list[str], list[list[Cell]]]]:
    """(key, title, columns, rows) per section; a row's key missing from ``columns`` is added."""
    out = []
    for section in _list(package.get("sections")):
        section = _map(section)
        rows = [_map(r) for r in _list(section.get("rows"))]
        columns = [str(c) for c in _list(section.get("columns"))]
        for row in rows:
            columns += [str(k) for k in row if str(k) not in columns]
        key = _text(section.get("key")) or "section"
        title = _text(section.get("title")) or key
        out.append((key, title, columns, [[_cell(row.get(c)) for c in columns] for row in rows]))
    return out


def _transcripts(package: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [_map(t) for t in _list(package.get("transcripts"))]


def _sender(message: Mapping[str, Any]) -> str:
    kind = _SENDERS.get(_text(message.get("sender")), _text(message.get("sender")) or "System")
    name = message.get("name")
    return f"{kind} ({name})" if name else kind


def about_rows(package: Mapping[str, Any]) -> list[list[Cell]]:
    """The export's details and the Art. 15 facts as (topic, item, detail) rows."""
    facts = _map(package.get("facts"))
    workspace = _map(package.get("workspace"))
    person = _map(package.get("person"))
    rows: list[list[Cell]] = [
        ["export", "schema", _cell(package.get("schema"))],
        ["export", "generated at", _cell(package.get("generated_at"))],
        ["export", "workspace", _cell(workspace.get("name"))],
        ["export", "workspace id", _cell(workspace.get("id"))],
        ["export", "visitor ids", ", ".join(_text(v) for v in _list(person.get("visitor_ids")))],
        ["export", "found by", _cell(person.get("searched_by"))],
    ]
    controller = _map(facts.get("controller"))
    rows.append(["controller", _cell(controller.get("name")), _cell(controller.get("contact"))])
    for purpose in map(_map, _list(facts.get("purposes"))):
        categories = ", ".join(_text(c) for c in _list(purpose.get("categories")))
        detail = f"lawful basis: {_text(purpose.get('lawful_basis'))}; categories: {categories}"
        rows.append(["purpose", _cell(purpose.get("purpose")), detail])
    rows.extend(["category", _cell(c), None] for c in _list(facts.get("categories")))
    rows.extend(["recipient", _cell(r), None] for r in _list(facts.get("recipients")))
    for item in map(_map, _list(facts.get("retention"))):
        rows.append(["retention", _cell(item.get("category")), _cell(item.get("period"))])
    if facts.get("source") is not None:
        rows.append(["source", _cell(facts.get("source")), None])
    for right in map(_map, _list(facts.get("rights"))):
        rows.append(["right", _cell(right.get("right")), _cell(right.get("how"))])
    known = {"controller", "purposes", "categories", "recipients", "retention", "source", "rights"}
    rows.extend([str(k), _cell(v), None] for k, v in sorted(facts.items()) if k not in known)
    return rows


# ---------------------------------------------------------------- CSV and Excel


def tables(package: Mapping[str, Any]) -> list[Sheet]:
    """The sheets of the CSV zip and the workbook, in order."""
    sheets = [Sheet("About this export", ["topic", "item", "detail"], about_rows(package), "about-this-export")]
    sheets.extend(Sheet(title, columns, rows, key) for key, title, columns, rows in _sections(package))
    conversations: list[list[Cell]] = []
    messages: list[list[Cell]] = []
    for t in _transcripts(package):
        lines = [_map(m) for m in _list(t.get("messages"))]
        cid, site = _cell(t.get("conversation_id")), _cell(t.get("site"))
        conversations.append([cid, site, _cell(t.get("started_at")), _cell(t.get("closed_at")), len(lines)])
        messages.extend(
            [cid, site, _cell(m.get("at")), _cell(m.get("sender")), _cell(m.get("name")), _cell(m.get("text"))]
            for m in lines
        )
    sheets.append(
        Sheet("Conversations", ["conversation_id", "site", "started_at", "closed_at", "messages"], conversations)
    )
    sheets.append(Sheet("Transcripts", ["conversation_id", "site", "at", "sender", "name", "text"], messages))
    return sheets


# ---------------------------------------------------------------- PDF


def to_pdf(package: Mapping[str, Any]) -> bytes:
    facts = _map(package.get("facts"))
    workspace_name = _text(_map(package.get("workspace")).get("name")) or "this workspace"
    generated = _when(package.get("generated_at")) or "an unknown time"
    person = _map(package.get("person"))
    transcripts = _transcripts(package)
    blocks: list[pdf.Block] = [
        pdf.Text(
            f"This document is a copy of the personal data that {workspace_name} holds about one person, "
            "with the information Article 15 of the GDPR requires: why the data is processed, on what "
            "lawful basis, who receives it, how long it is kept, where it came from and the rights you have. "
            "The same data comes as JSON (complete and machine-readable), CSV and Excel. Times are UTC."
        ),
        pdf.KeyValues(
            [
                ("Workspace", workspace_name),
                ("Generated", f"{generated} UTC"),
                ("Visitor ids", ", ".join(_text(v) for v in _list(person.get("visitor_ids"))) or "none"),
                ("Found by", _cell(person.get("searched_by"))),
                ("Format", _cell(package.get("schema"))),
            ]
        ),
        *_facts_blocks(facts),
        pdf.Heading("The data", new_page=True),
    ]
    sections = _sections(package)
    if not sections:
        blocks.append(pdf.Text("Nothing is held."))
    for key, title, columns, rows in sections:
        blocks.append(pdf.Heading(title, level=2))
        if key in TRANSCRIBED and transcripts:
            blocks.append(
                pdf.Text(f"{len(rows)} rows: shown as conversations below (every column is in the other formats).")
            )
            continue
        blocks.append(pdf.Table(columns, rows, empty="Nothing held."))
    if transcripts:
        blocks.append(pdf.Heading("Conversations", new_page=True))
        count = len(transcripts)
        for number, t in enumerate(transcripts, start=1):
            lines = [_map(m) for m in _list(t.get("messages"))]
            blocks.append(
                pdf.Transcript(
                    f"Conversation {number} of {count}",
                    [pdf.Line(_when(m.get("at")), _sender(m), _text(m.get("text"))) for m in lines],
                    meta=[
                        ("Conversation", _cell(t.get("conversation_id"))),
                        ("Site", _cell(t.get("site"))),
                        ("Started", _when(t.get("started_at"))),
                        ("Closed", _when(t.get("closed_at")) or "open"),
                        ("Messages", len(lines)),
                    ],
                )
            )
    date = filename(package, "pdf").removeprefix("confide-export-").removesuffix(".pdf")
    return pdf.render_document(
        "Personal data export",
        blocks,
        subtitle=f"{workspace_name} · generated {generated} UTC",
        footer=f"Confide personal data export · {workspace_name} · {date}",
    )


def _facts_blocks(facts: Mapping[str, Any]) -> Sequence[pdf.Block]:
    controller = _map(facts.get("controller"))
    purposes = [_map(p) for p in _list(facts.get("purposes"))]
    retention = [_map(r) for r in _list(facts.get("retention"))]
    rights = [_map(r) for r in _list(facts.get("rights"))]
    recipients = [_text(r) for r in _list(facts.get("recipients"))]
    return [
        pdf.Heading("About this processing (Article 15)"),
        pdf.Heading("Who is responsible", level=2),
        pdf.KeyValues([("Controller", _cell(controller.get("name"))), ("Contact", _cell(controller.get("contact")))]),
        pdf.Heading("Why the data is processed", level=2),
        pdf.Table(
            ["purpose", "lawful basis", "categories of data"],
            [
                [
                    _cell(p.get("purpose")),
                    _cell(p.get("lawful_basis")),
                    ", ".join(_text(c) for c in _list(p.get("categories"))),
                ]
                for p in purposes
            ],
            empty="No purpose is recorded.",
        ),
        pdf.Heading("Categories of data", level=2),
        pdf.Bullets([_text(c) for c in _list(facts.get("categories"))] or ["None."]),
        pdf.Heading("Who receives it", level=2),
        pdf.Bullets(recipients or ["No one outside the controller."]),
        pdf.Heading("How long it is kept", level=2),
        pdf.Table(
            ["category", "period"],
            [[_cell(r.get("category")), _cell(r.get("period"))] for r in retention],
            empty="No period is recorded.",
        ),
        pdf.Heading("Where it came from", level=2),
        pdf.Text(_text(facts.get("source")) or "Not recorded."),
        pdf.Heading("Your rights and how to use them", level=2),
        pdf.Table(
            ["right", "how"], [[_cell(r.get("right")), _cell(r.get("how"))] for r in rights], empty="None listed."
        ),
    ]
