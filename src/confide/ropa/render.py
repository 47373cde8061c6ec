"""The record of processing in Markdown, CSV, and as the title + blocks a PDF is drawn from.

All three read the same structured record (``model.build``). ``document`` returns plain data:

    ("Record of processing activities - Shop Ltd", [
        {"type": "heading", "text": "..."},
        {"type": "paragraph", "text": "..."},
        {"type": "table", "columns": ["..."], "rows": [["...", ...], ...]},
    ])

which ``confide.documents.pdf.render_document(title, blocks)`` draws (``render_pdf``). CSV cells
are neutralised against spreadsheet formulas (a leading ``= + - @``, tab or CR gets a quote), as
every CSV Confide writes. Rendering is CPU work: callers run it off the event loop.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from confide.documents import pdf

FORMATS = ("md", "csv", "pdf")
CONTENT_TYPES = {"md": "text/markdown; charset=utf-8", "csv": "text/csv; charset=utf-8", "pdf": "application/pdf"}

_MAP_COLUMNS = ["table", "column", "subject", "category", "purpose", "lawful_basis", "retention_class", "period",
                "storage", "erasure", "exported", "note"]


class PdfUnavailable(RuntimeError):
    """The PDF cannot be drawn here (its font is not installed)."""


def _cell(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple | set):
        return "; ".join(str(v) for v in value)
    return "" if value is None else str(value)


def _blocks(record: dict[str, Any]) -> list[dict[str, Any]]:
    c = record["controller"]
    blocks: list[dict[str, Any]] = [
        {"type": "paragraph", "text": f"Controller: {c['name']} (workspace {c['workspace_id']}). "
                                      f"Generated {record['generated_at']} from the personal-data registry and the "
                                      "configuration (Art. 30(1) GDPR)."},
        {"type": "heading", "text": "Processing activities"},
        {"type": "table", "columns": ["Purpose", "Lawful basis", "Data subjects", "Categories of data",
                                      "Retention", "Storage"],
         "rows": [[a["purpose"], a["lawful_basis"], _cell(a["subjects"]), _cell(a["categories"]),
                   _cell(a["retention"]), _cell(a["storage"])] for a in record["activities"]]},
    ]
    if record["purposes"]:
        blocks += [
            {"type": "heading", "text": "Purposes of this workspace"},
            {"type": "table", "columns": ["Key", "Name", "Lawful basis", "Recipients"],
             "rows": [[p["key"], p["name"], p["lawful_basis"], p["recipients"]] for p in record["purposes"]]},
        ]
    blocks += [
        {"type": "heading", "text": "Retention periods"},
        {"type": "table", "columns": ["Category", "Counted from", "Default", "This workspace", "Sites"],
         "rows": [[r["label"], r["counts_from"], r["default"], r["workspace"],
                   _cell([f"{k}: {v}" for k, v in r["sites"].items()])] for r in record["retention"]]},
        {"type": "heading", "text": "Recipients"},
        {"type": "table", "columns": ["Recipient", "What", "Where"],
         "rows": [[r["recipient"], r["what"], r["where"]] for r in record["recipients"]]},
        {"type": "paragraph", "text": f"Transfers to third countries: {record['transfers']}."},
        {"type": "heading", "text": "Security measures (Art. 32)"},
        {"type": "table", "columns": ["Measure", "State"],
         "rows": [[s["measure"], s["state"]] for s in record["security"]]},
        {"type": "heading", "text": "Data map"},
        {"type": "table", "columns": [c.replace("_", " ").capitalize() for c in _MAP_COLUMNS],
         "rows": [[_cell(row[c]) for c in _MAP_COLUMNS] for row in record["data_map"]]},
    ]
    return blocks


def document(record: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """The title and blocks of the record (what a PDF is drawn from)."""
    return f"Record of processing activities - {record['controller']['name']}", _blocks(record)


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(record: dict[str, Any]) -> str:
    title, blocks = document(record)
    out = [f"# {_md_escape(title)}", ""]
    for block in blocks:
        if block["type"] == "heading":
            out += [f"## {_md_escape(block['text'])}", ""]
        elif block["type"] == "paragraph":
            out += [_md_escape(block["text"]), ""]
        else:
            out.append("| " + " | ".join(_md_escape(c) for c in block["columns"]) + " |")
            out.append("|" + "---|" * len(block["columns"]))
            out += ["| " + " | ".join(_md_escape(_cell(v)) for v in row) + " |" for row in block["rows"]]
            out.append("")
    return "\n".join(out)


def _neutral(value: str) -> str:
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def csv_text(record: dict[str, Any]) -> str:
    """One table: a row per personal column (the data map), with its activity's facts; then the
    retention periods, recipients and security measures as sections of the same file."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(["section", *_MAP_COLUMNS])
    for row in record["data_map"]:
        w.writerow(["data_map", *(_neutral(_cell(row[c])) for c in _MAP_COLUMNS)])
    w.writerow([])
    w.writerow(["section", "category", "label", "counted_from", "default", "workspace", "sites"])
    for r in record["retention"]:
        w.writerow(["retention", r["category"], r["label"], r["counts_from"], r["default"], r["workspace"],
                    _neutral(_cell([f"{k}: {v}" for k, v in r["sites"].items()]))])
    w.writerow([])
    w.writerow(["section", "recipient", "what", "where"])
    for r in record["recipients"]:
        w.writerow(["recipients", _neutral(r["recipient"]), _neutral(r["what"]), _neutral(r["where"])])
    w.writerow([])
    w.writerow(["section", "measure", "state"])
    for s in record["security"]:
        w.writerow(["security", s["measure"], s["state"]])
    return buf.getvalue()


def _pdf_block(block: dict[str, Any]) -> pdf.Block:
    if block["type"] == "heading":
        return pdf.Heading(block["text"])
    if block["type"] == "table":
        return pdf.Table(block["columns"], block["rows"])
    return pdf.Text(block["text"])


def render_pdf(record: dict[str, Any]) -> bytes:
    """The PDF of the record, drawn by ``confide.documents.pdf`` from the same blocks as the
    Markdown (CPU-bound: callers run it off the event loop). ``PdfUnavailable`` when the
    document font is not installed."""
    title, blocks = document(record)
    try:
        return pdf.render_document(title, [_pdf_block(b) for b in blocks])
    except pdf.FontMissing as exc:
        raise PdfUnavailable(str(exc)) from None


def render(record: dict[str, Any], fmt: str) -> tuple[bytes, str, str]:
    """(data, content type, file name) of the record in ``fmt`` (md | csv | pdf)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: md, csv or pdf")
    stamp = record["generated_at"][:10]
    name = f"record-of-processing-{stamp}.{fmt}"
    if fmt == "md":
        return markdown(record).encode(), CONTENT_TYPES[fmt], name
    if fmt == "csv":
        return csv_text(record).encode("utf-8-sig"), CONTENT_TYPES[fmt], name
    return render_pdf(record), CONTENT_TYPES[fmt], name
