"""confide.subjects.render: an export package in JSON, CSV (zip), Excel and PDF (no database, ADR 0027).

A synthetic package holds a unique canary in every section, transcript and fact, with non-ASCII
text, reportlab markup and formula-looking values; every canary must come out in all four formats.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from typing import Any

import openpyxl
import pytest
from pypdf import PdfReader

from confide.subjects.render import CONTENT_TYPES, FORMATS, render
from tests.export_package import CANARIES, FORMULAS, GENERATED, big_package, canary_package, markup_values
from tests.pdf_checks import actions_in, counting_server, pdf_fonts, pdf_text, squash

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def _csv_files(data: bytes) -> dict[str, list[list[str]]]:
    archive = zipfile.ZipFile(io.BytesIO(data))
    out = {}
    for name in archive.namelist():
        raw = archive.read(name)
        assert raw.startswith(b"\xef\xbb\xbf"), f"{name} has no byte order mark"
        out[name] = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    return out


def _xlsx_cells(data: bytes) -> list[Any]:
    book = openpyxl.load_workbook(io.BytesIO(data))
    return [cell for ws in book.worksheets for row in ws.iter_rows() for cell in row]


def _all_values(package: dict[str, Any]) -> list[str]:
    return [*CANARIES, *FORMULAS, *markup_values(9)]


def test_every_canary_is_in_all_four_formats() -> None:
    package = canary_package()
    values = _all_values(package)

    as_json = render(package, "json")
    assert json.loads(as_json.data.decode("utf-8")) == package
    text = as_json.data.decode("utf-8")
    for value in values:
        assert json.dumps(value, ensure_ascii=False)[1:-1] in text, value
    assert "é" in text
    assert "中文" in text
    assert "😀" in text

    cells = [c for rows in _csv_files(render(package, "csv").data).values() for row in rows for c in row]
    for value in values:
        assert any(value in c for c in cells), value

    xlsx_values = [str(c.value) for c in _xlsx_cells(render(package, "xlsx").data) if c.value is not None]
    for value in values:
        # XML turns a carriage return into a line feed
        assert any(value.replace("\r", "\n") in v for v in xlsx_values), value

    pdf_all = squash(pdf_text(render(package, "pdf").data))
    for value in values:
        assert squash(value) in pdf_all, value


def test_formula_cells_are_neutralised_in_csv_and_excel() -> None:
    package = canary_package()
    files = _csv_files(render(package, "csv").data)
    cells = [c for rows in files.values() for row in rows for c in row]
    for c in cells:
        assert not c.startswith(TRIGGERS), c
        assert c.lstrip()[:1] not in ("=", "+", "-", "@"), c
    for formula in FORMULAS:
        assert "'" + formula in cells, formula

    xlsx_cells = _xlsx_cells(render(package, "xlsx").data)
    for cell in xlsx_cells:
        if isinstance(cell.value, str):
            assert cell.data_type == "s", cell.coordinate
            assert not cell.value.startswith(TRIGGERS), cell.value
            assert cell.value.lstrip()[:1] not in ("=", "+", "-", "@"), cell.value
        assert cell.data_type != "f"
    strings = {cell.value for cell in xlsx_cells}
    for formula in FORMULAS:
        assert "'" + formula.replace("\r", "\n") in strings, formula


def test_numbers_stay_numbers_in_excel() -> None:
    book = openpyxl.load_workbook(io.BytesIO(render(canary_package(), "xlsx").data))
    profile = book["Visitor profile"]
    header = [c.value for c in profile[1]]
    row = {h: c for h, c in zip(header, profile[2], strict=True)}
    assert row["rating"].value == 5
    assert row["rating"].data_type == "n"
    assert row["score"].value == 0.75
    assert row["verified"].value == "true"


def test_sheets_and_files_one_per_section_plus_about_and_transcripts() -> None:
    package = canary_package()
    book = openpyxl.load_workbook(io.BytesIO(render(package, "xlsx").data))
    titles = [s["title"] for s in package["sections"]]
    assert book.sheetnames == ["About this export", *titles, "Conversations", "Transcripts"]
    assert all(c.font.b for ws in book.worksheets for c in ws[1])
    about = [[c.value for c in row] for row in book["About this export"].iter_rows()]
    assert ["export", "generated at", GENERATED] in about
    assert ["retention", "messages", "CANARY-retention-24 months"] in about
    assert ["right", "access", "CANARY-right-write to privacy@acme.test"] in about

    files = _csv_files(render(package, "csv").data)
    keys = [s["key"].replace("_", "-") for s in package["sections"]]
    expected = ["about-this-export", *keys, "conversations", "transcripts"]
    assert list(files) == [f"{n:02d}-{name}.csv" for n, name in enumerate(expected, start=1)]
    transcript = files[f"{len(expected):02d}-transcripts.csv"]
    assert transcript[0] == ["conversation_id", "site", "at", "sender", "name", "text"]
    assert transcript[1][:5] == [
        "c-55e1",
        "CANARY-site-shop.example",
        "2026-11-30T10:02:00+00:00",
        "visitor",
        "CANARY-name-Zoë-Straße",
    ]
    assert files["09-files.csv"] == [["name", "size"]]  # an empty section still has its file, with its header


def test_pdf_embeds_its_fonts_has_no_actions_and_fetches_nothing() -> None:
    package = canary_package()
    with counting_server() as (port, hits):
        package = canary_package(port)
        data = render(package, "pdf").data
        assert hits == []
    assert data.startswith(b"%PDF-")
    fonts = pdf_fonts(data)
    assert any("DejaVuSans" in name for name in fonts)
    assert any("WenQuanYi" in name for name in fonts)
    for name, font in fonts.items():
        assert font["/Subtype"] == "/TrueType", f"{name} is a base-14 font, not embedded"
        assert "/FontFile2" in font["/FontDescriptor"].get_object(), f"{name} is not embedded"
    assert actions_in(data) == []
    text = pdf_text(data)
    for expected in [
        "Personal data export",
        "Acme Shop",
        "2026-12-02 01:00:00 UTC",
        "Article 15",
        "Conversation 1 of 1",
        "Operator (CANARY-operator-name-Åsa)",
        "Nothing held.",
    ]:
        assert expected in text, expected
    assert f'<img src="http://127.0.0.1:{port}/canary.png"/>' in text


def test_filenames_and_content_types_hold_no_personal_data() -> None:
    package = canary_package()
    for fmt in FORMATS:
        rendered = render(package, fmt)
        assert rendered.content_type == CONTENT_TYPES[fmt]
        assert rendered.filename.startswith("confide-export-2026-12-02.")
        assert "v-7f3a9c" not in rendered.filename
        assert "CANARY" not in rendered.filename
    assert [render(package, f).filename.rsplit(".", 1)[1] for f in FORMATS] == ["json", "zip", "xlsx", "pdf"]
    assert render({**package, "generated_at": None}, "json").filename == "confide-export-undated.json"
    # the PDF's metadata and page footers name the workspace and the date, not the person
    reader = PdfReader(io.BytesIO(render(package, "pdf").data))
    assert "CANARY" not in str(reader.metadata)
    footers = [page.extract_text().splitlines()[-1] for page in reader.pages]
    assert all("CANARY" not in f and "v-7f3a9c" not in f for f in footers)


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="Unknown export format"):
        render(canary_package(), "docx")


def test_odd_text_survives_every_format() -> None:
    package = canary_package()
    package["sections"][0]["rows"][0]["note"] = "lone \ud800 surrogate \x01 control"
    package["sections"][0]["rows"][0]["extra"] = {"nested": ["kept as JSON text"]}
    for fmt in FORMATS:
        assert render(package, fmt).data
    assert "kept as JSON text" in pdf_text(render(package, "pdf").data)
    assert "lone \ufffd surrogate" in render(package, "json").data.decode("utf-8")


def test_a_big_package_renders_in_every_format() -> None:
    package = big_package(messages=1000)
    rendered = {fmt: render(package, fmt) for fmt in FORMATS}
    assert len(json.loads(rendered["json"].data)["transcripts"]) == 10
    files = _csv_files(rendered["csv"].data)
    transcripts = next(rows for name, rows in files.items() if name.endswith("-transcripts.csv"))
    assert len(transcripts) == 1001
    book = openpyxl.load_workbook(io.BytesIO(rendered["xlsx"].data), read_only=True)
    assert sum(1 for _ in book["Transcripts"].iter_rows()) == 1001
    reader = PdfReader(io.BytesIO(rendered["pdf"].data))
    assert len(reader.pages) > 20
    last = package["transcripts"][-1]["messages"][-1]["text"]
    assert squash(last) in squash(reader.pages[-1].extract_text() + reader.pages[-2].extract_text())
