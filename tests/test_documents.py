"""confide.documents: formula neutralisation, CSV and Excel writers, the PDF writer (no database, ADR 0027)."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import openpyxl
import pytest
from pypdf import PdfReader

from confide.documents import cells, pdf
from confide.documents.sheets import EXCEL_CELL_MAX, Sheet, csv_bytes, csv_text, csv_zip, sheet_name, slug, xlsx
from tests.pdf_checks import actions_in, counting_server, pdf_fonts, pdf_text, squash

FORMULA_LIKE = ["=1+1", "+1", "-2", "@SUM(A1)", "\t=1", "\r=1", "\n=1", "\0x", "  =1", " \t+1", "\u00a0-1", "=", "-"]
PLAIN = ["", "hello", "a=b", "1+1", "'=already quoted", "e-mail", "x@y", "(=1)", "   ", "中文=", "😀-"]


# ---------------------------------------------------------------- cells


@pytest.mark.parametrize("text", FORMULA_LIKE)
def test_formula_like_text_gets_a_quote(text: str) -> None:
    assert cells.is_formula_like(text)
    assert cells.neutralise(text) == "'" + text


@pytest.mark.parametrize("text", PLAIN)
def test_plain_text_is_left_alone(text: str) -> None:
    assert not cells.is_formula_like(text)
    assert cells.neutralise(text) == text


def test_numbers_stay_numbers_and_other_values_become_text() -> None:
    assert cells.csv_cell(-2) == -2
    assert cells.csv_cell(1.5) == 1.5
    assert cells.csv_cell("-2") == "'-2"  # a visitor's text stays text, neutralised
    assert cells.csv_cell(True) == "true"
    assert cells.csv_cell(None) == ""
    assert cells.csv_cell(10**20) == str(10**20)  # more digits than Excel keeps: text
    assert cells.csv_cell(float("nan")) == "nan"
    import datetime as dt

    assert cells.csv_cell(dt.datetime(2026, 12, 2, 1, 0, tzinfo=dt.UTC)) == "2026-12-02T01:00:00+00:00"
    assert cells.csv_cell(dt.date(2026, 12, 2)) == "2026-12-02"


def test_lone_surrogates_and_control_characters() -> None:
    assert cells.clean_text("a\ud800b") == "a\ufffdb"
    assert cells.clean_text("😀") == "😀"
    assert cells.visible_controls("a\x01b\x1fc\td\ne\rf\uffff") == "a␁b␟c\td\ne\rf\ufffd"


# ---------------------------------------------------------------- CSV


def test_csv_text_quotes_and_neutralises() -> None:
    text = csv_text([["name", "note"], ['=HYPERLINK("http://x","y")', "a, b\nc"], [1, None]])
    assert text.endswith("\r\n")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows == [["name", "note"], ['\'=HYPERLINK("http://x","y")', "a, b\nc"], ["1", ""]]


def test_csv_bytes_carry_a_byte_order_mark_for_excel() -> None:
    data = csv_bytes([["é", "中文"]])
    assert data.startswith(b"\xef\xbb\xbf")
    assert data.decode("utf-8-sig") == "é,中文\r\n"


def test_csv_zip_names_are_deterministic_and_each_file_parses() -> None:
    sheets = [
        Sheet("Visitor profile", ["id", "name"], [["v1", "Zoë"]], file_name="visitors"),
        Sheet("Pages seen / trail", ["url"], [["+1"]]),
        Sheet("中文", ["x"], []),
        Sheet("Visitor profile", ["id"], [["v2"]], file_name="visitors"),
    ]
    data = csv_zip(sheets)
    assert data == csv_zip(sheets)  # the same sheets give the same bytes
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.namelist() == ["01-visitors.csv", "02-pages-seen-trail.csv", "03-sheet.csv", "04-visitors.csv"]
    assert all(info.date_time == (1980, 1, 1, 0, 0, 0) for info in archive.infolist())
    rows = list(csv.reader(io.StringIO(archive.read("02-pages-seen-trail.csv").decode("utf-8-sig"))))
    assert rows == [["url"], ["'+1"]]
    assert slug("  ") == "sheet"


# ---------------------------------------------------------------- Excel


def test_sheet_names_follow_excels_rules() -> None:
    taken: set[str] = set()
    names = [
        sheet_name(n, taken)
        for n in ["A" * 40, "a" * 40, "x:y/z?[1]*\\", "History", "'quoted'", "", "Messages", "messages"]
    ]
    assert names[0] == "A" * 31
    assert names[1] == "a" * 27 + " (2)"
    assert names[2] == "x y z  1"
    assert names[3] == "History (data)"
    assert names[4] == "quoted"
    assert names[5] == "Sheet"
    assert names[6:] == ["Messages", "messages (2)"]
    assert all(len(n) <= 31 for n in names)
    assert len({n.lower() for n in names}) == len(names)


def _book(data: bytes) -> openpyxl.Workbook:
    return openpyxl.load_workbook(io.BytesIO(data))


def test_xlsx_cells_are_strings_or_numbers_never_formulas() -> None:
    formulas = ['=HYPERLINK("http://127.0.0.1:9/","x")', *FORMULA_LIKE]
    rows = [[value, 1, 2.5, True, None] for value in formulas] + [["plain \x01 text", -3, -0.5, False, None]]
    book = _book(xlsx([Sheet("Data", ["text", "int", "float", "bool", "none"], rows)]))
    ws = book["Data"]
    assert [c.value for c in ws[1]] == ["text", "int", "float", "bool", "none"]
    assert all(c.font.b for c in ws[1])
    assert ws.freeze_panes == "A2"
    for row in ws.iter_rows(min_row=2):
        text, number, real, flag, empty = row
        assert text.data_type == "s"
        assert not str(text.value).startswith(("=", "+", "-", "@", "\t", "\r"))
        assert number.data_type == "n"
        assert isinstance(number.value, int)
        assert real.data_type == "n"
        assert isinstance(real.value, float)
        assert flag.value in ("true", "false")
        assert flag.data_type == "s"
        assert empty.value is None
    values = [ws.cell(row=r, column=1).value for r in range(2, ws.max_row + 1)]
    # a NUL is shown as ␀ (XML cannot hold it), and then nothing is left to neutralise; XML reads CR as LF
    expected = [f.replace("\0", "␀") if f.startswith("\0") else "'" + f.replace("\r", "\n") for f in formulas]
    assert values[: len(formulas)] == expected
    assert values[-1] == "plain ␁ text"
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            for c in row:
                assert c.data_type != "f"


def test_xlsx_long_text_is_cut_at_excels_cell_limit_with_a_note() -> None:
    ws = _book(xlsx([Sheet("Long", ["text"], [["x" * 40_000]])]))["Long"]
    value = ws.cell(row=2, column=1).value
    assert len(value) == EXCEL_CELL_MAX
    assert value.endswith("the JSON export holds the whole text]")


def test_xlsx_one_sheet_per_sheet_with_unique_names() -> None:
    book = _book(xlsx([Sheet("Messages", ["a"], []), Sheet("messages", ["b"], []), Sheet("x" * 50, ["c"], [])]))
    assert book.sheetnames == ["Messages", "messages (2)", "x" * 31]


# ---------------------------------------------------------------- PDF


def test_markup_is_escaped_and_fonts_chosen_per_character() -> None:
    assert (
        pdf.markup('<img src="http://x/"/> & <font name="y">')
        == '&lt;img src="http://x/"/&gt; &amp; &lt;font name="y"&gt;'
    )
    assert pdf.markup("a\nb\tc") == "a<br/>b    c"
    assert pdf.markup("中文 é") == f'<font name="{pdf.FONT_CJK}">中文</font> é'
    assert pdf.markup("party 🎉") == "party [U+1F389]"
    assert pdf.markup("\U000e0041x") == "x"  # an invisible tag character no font has is left out
    assert pdf.markup(None) == ""


def test_visitor_markup_is_printed_as_text_and_nothing_is_fetched() -> None:
    with counting_server() as (port, hits):
        hostile = [
            f'<img src="http://127.0.0.1:{port}/img.png"/>',
            f'<a href="http://127.0.0.1:{port}/a">link</a>',
            '<font name="Courier" color="red">font</font>',
            "&nbsp; &lt;b&gt; <br/> <para>",
        ]
        data = pdf.render_document(
            "Hostile",
            [
                pdf.Text(hostile[0]),
                pdf.KeyValues([("k", hostile[1])]),
                pdf.Table(["a", "b"], [[hostile[2], hostile[3]]]),
                pdf.Transcript("t", [pdf.Line("now", hostile[0], hostile[1])]),
                pdf.Bullets(hostile),
            ],
        )
        assert hits == []
    text = squash(pdf_text(data))
    for value in hostile:
        assert squash(value) in text
    assert actions_in(data) == []


def test_fonts_are_embedded_and_every_script_extracts() -> None:
    data = pdf.render_document(
        "Fonts",
        [
            pdf.Text("Zoë Straße Ελληνικά Кириллица 中文 한국어 😀 ✓"),
            pdf.Bullets(["•"]),
            pdf.Table(["a"], [["b"]]),
            pdf.KeyValues([("c", "d")]),
        ],
    )
    fonts = pdf_fonts(data)
    assert fonts, "no font in the PDF"
    for name, font in fonts.items():
        assert "/FontFile2" in font["/FontDescriptor"].get_object(), f"{name} is not embedded"
    assert any("DejaVuSans" in name for name in fonts)
    assert all(font["/Subtype"] == "/TrueType" for font in fonts.values()), sorted(fonts)  # no base-14 font
    assert Path(pdf.CJK_FILES[0]).is_file(), "fonts-wqy-microhei is missing: run `make system-deps`"
    assert any("WenQuanYi" in name for name in fonts), sorted(fonts)
    # reportlab's ToUnicode map for 😀 (beyond U+FFFF) is fixed to UTF-16BE, so it extracts
    assert "Zoë Straße Ελληνικά Кириллица 中文 한국어 😀 ✓" in pdf_text(data)


def test_missing_dejavu_is_an_error_naming_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(pdf, "DEJAVU_DIRS", (tmp_path,))
    with pytest.raises(pdf.FontMissing, match="fonts-dejavu-core"):
        pdf._load_fonts()


def test_long_tables_split_across_pages_with_numbered_pages() -> None:
    rows = [[f"row-{i:04d}", "long text " * (i % 25), i] for i in range(400)]
    data = pdf.render_document("Long", [pdf.Heading("Rows"), pdf.Table(["id", "text", "n"], rows)])
    reader = PdfReader(io.BytesIO(data))
    count = len(reader.pages)
    assert count > 5
    pages = [p.extract_text() for p in reader.pages]
    for number, page in enumerate(pages, start=1):
        assert f"Page {number} of {count}" in page
    text = "\n".join(pages)
    assert all(f"row-{i:04d}" in text for i in range(400))
    assert sum("id" in page.split() for page in pages) >= count - 1  # the header row on every page of the table


def test_wide_tables_become_one_record_per_row() -> None:
    columns = [f"col{i}" for i in range(9)]
    data = pdf.render_document("Wide", [pdf.Table(columns, [[f"r{r}c{i}" for i in range(9)] for r in range(3)])])
    text = pdf_text(data)
    assert "1 of 3" in text
    assert "3 of 3" in text
    assert all(f"r{r}c{i}" in text for r in range(3) for i in range(9))


def test_empty_blocks_and_a_record_of_processing_in_a_few_lines() -> None:
    data = pdf.render_document(
        "Record of processing activities",
        [
            pdf.Text("Controller: Acme GmbH"),
            pdf.Heading("Purposes"),
            pdf.Table(["purpose", "lawful basis"], [["support chat", "contract"]]),
            pdf.Table(["x"], [], empty="No rows."),
            pdf.Transcript("Nothing said", []),
            pdf.KeyValues([]),
            pdf.PageBreak(),
            pdf.Heading("Measures", level=3),
            pdf.Bullets(["encryption at rest"]),
        ],
        subtitle="Generated from the registry",
        footer="Acme GmbH · Art. 30",
    )
    text = pdf_text(data)
    for expected in [
        "Record of processing activities",
        "support chat",
        "No rows.",
        "No messages.",
        "encryption at rest",
        "Art. 30",
    ]:
        assert expected in text
    assert len(PdfReader(io.BytesIO(data)).pages) == 2


def test_documents_render_in_parallel_threads() -> None:
    """Callers render off the event loop (asyncio.to_thread): two at once must both come out whole."""
    from concurrent.futures import ThreadPoolExecutor

    def one(n: int) -> str:
        lines = [pdf.Line(f"t{i}", "Visitor", f"thread-{n}-line-{i} 中文 é") for i in range(150)]
        return pdf_text(pdf.render_document(f"Doc {n}", [pdf.Transcript("t", lines)]))

    with ThreadPoolExecutor(4) as pool:
        texts = list(pool.map(one, range(4)))
    for n, text in enumerate(texts):
        assert all(f"thread-{n}-line-{i} 中文 é" in text for i in range(150))
        assert f"thread-{(n + 1) % 4}-line-" not in text
