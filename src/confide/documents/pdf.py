"""A generic, readable PDF writer (reportlab) that fetches nothing and draws every script it can (ADR 0027).

``render_document(title, blocks, *, subtitle=None, footer=None) -> bytes`` lays out A4 pages
with the title, an optional subtitle, then the blocks in order, and "page n of m" plus the
footer (the title by default: keep personal data out of it) at the foot of every page. Blocks:

- ``Heading(text, level=1, new_page=False)``: levels 1-3; ``new_page`` starts a new page first;
- ``Text(text)``: a paragraph; line breaks are kept;
- ``Bullets(items)``: a bulleted list;
- ``KeyValues(items)``: ``(label, value)`` pairs as a two-column list;
- ``Table(columns, rows, empty="None.")``: a table whose cells wrap long text (words too long for
  a cell are split) and which splits across pages, repeating its header row. A table of more
  than ``Table.max_columns`` (6) columns would be unreadable on A4: each row is then drawn as
  its own two-column table ("field | value"), numbered;
- ``Transcript(title, lines, meta=())``: a conversation: the meta as a key/value list, then per
  ``Line(at, sender, text)`` a small "time · sender" line and the text indented under it;
- ``PageBreak()``.

Values are ``str | int | float | bool | None | date`` (``cells.as_text`` makes them text).

For the record of processing (Art. 30)::

    from confide.documents import pdf
    data = pdf.render_document("Record of processing activities", [
        pdf.Text(f"Controller: {name}"),
        pdf.Heading("Purposes"),
        pdf.Table(["purpose", "lawful basis", "categories", "retention"], rows),
    ])

**Text is text.** reportlab's ``Paragraph`` reads a mini-markup (``<font>``, ``<img src=...>``,
``<a href>``, entities); every value handed in is escaped (``&``, ``<``, ``>``), so a visitor who
writes ``<img src="http://...">`` gets those characters printed, and nothing is fetched: the
document holds no image, no link and no action, and the only markup is the writer's own
(``<b>``, ``<br/>``, ``<font name>`` for the fallback font).

**Fonts are embedded.** DejaVu Sans (regular and bold, ``fonts-dejavu-core``) is embedded as a
TrueType subset (a ``FontFile2`` stream): Latin, Greek, Cyrillic, symbols and some emoji. A
character DejaVu lacks is drawn with WenQuanYi Micro Hei (``fonts-wqy-microhei``: Chinese,
Japanese kana, Korean) when that font is installed; a character neither font has is written
as its code point, ``[U+1F389]``, so the reader sees that something was there (the JSON, CSV
and Excel files carry the character itself); an invisible format character neither has (a
zero-width joiner, a variation selector) is left out. ``make system-deps`` installs both
fonts. A missing DejaVu is an error naming the package (``FontMissing``), never a silently
unreadable document.

reportlab 4 writes a ToUnicode entry of a character beyond U+FFFF as five or six hex digits
(``<1F600>``) where the PDF specification wants UTF-16BE (``<D83DDE00>``): text extraction and
copy-paste of such characters break (pypdf refuses the map). ``_to_unicode_cmap`` replaces
reportlab's function with one that writes UTF-16BE; it is installed when this module is imported.

CPU-bound and synchronous: callers run it off the event loop (``asyncio.to_thread``).
"""

from __future__ import annotations

import io
import re
import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics, ttfonts
from reportlab.pdfgen import canvas as rl_canvas
from reportlab.platypus import CondPageBreak, KeepTogether, LongTable, Paragraph, SimpleDocTemplate, Spacer, TableStyle
from reportlab.platypus import PageBreak as RLPageBreak

from confide.documents.cells import Cell, as_text, clean_text, visible_controls

FONT = "ConfideSans"
FONT_BOLD = "ConfideSans-Bold"
FONT_CJK = "ConfideCJK"
DEJAVU_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"))
CJK_FILES = (Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),)
_INVISIBLE = frozenset({"Mn", "Me", "Cf"})
CHUNK = 60  # rows per table of a long Table block


class FontMissing(RuntimeError):
    """DejaVu Sans is not installed (Debian: ``apt-get install fonts-dejavu-core``)."""


# ---------------------------------------------------------------- blocks


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 1
    new_page: bool = False


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: Sequence[str]


@dataclass(frozen=True)
class KeyValues:
    items: Sequence[tuple[str, Cell]]


@dataclass(frozen=True)
class Table:
    columns: Sequence[str]
    rows: Sequence[Sequence[Cell]]
    empty: str = "None."
    max_columns: int = 6


@dataclass(frozen=True)
class Line:
    at: str
    sender: str
    text: str


@dataclass(frozen=True)
class Transcript:
    title: str
    lines: Sequence[Line]
    meta: Sequence[tuple[str, Cell]] = field(default_factory=tuple)


@dataclass(frozen=True)
class PageBreak:
    pass


Block = Heading | Text | Bullets | KeyValues | Table | Transcript | PageBreak


# ---------------------------------------------------------------- fonts


def _to_unicode_cmap(fontname: str, subset: Sequence[int]) -> str:
    """reportlab's ToUnicode CMap, with every code point written as UTF-16BE (see the docstring)."""

    def utf16(code: int) -> str:
        return chr(code).encode("utf-16-be", "surrogatepass").hex().upper()

    return "\n".join(
        [
            "/CIDInit /ProcSet findresource begin",
            "12 dict begin",
            "begincmap",
            "/CIDSystemInfo",
            f"<< /Registry ({fontname})",
            f"/Ordering ({fontname})",
            "/Supplement 0",
            ">> def",
            f"/CMapName /{fontname} def",
            "/CMapType 2 def",
            "1 begincodespacerange",
            f"<00> <{len(subset) - 1:02X}>",
            "endcodespacerange",
            f"{len(subset)} beginbfchar",
            *(f"<{i:02X}> <{utf16(v)}>" for i, v in enumerate(subset)),
            "endbfchar",
            "endcmap",
            "CMapName currentdict /CMap defineresource pop",
            "end",
            "end",
        ]
    )


ttfonts.makeToUnicodeCMap = _to_unicode_cmap


@dataclass(frozen=True)
class _Fonts:
    main: frozenset[int]  # code points DejaVu Sans draws
    cjk: frozenset[int]  # code points the fallback draws (empty when it is not installed)
    uncovered: re.Pattern[str]  # a character DejaVu does not draw (one C-level scan per text)


def _complement(codes: frozenset[int]) -> re.Pattern[str]:
    """A regex matching any character whose code point is not in ``codes`` (nor a line break)."""
    ranges: list[tuple[int, int]] = []
    for code in sorted(codes | {10}):
        if ranges and code == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], code)
        else:
            ranges.append((code, code))
    parts = [f"\\U{a:08x}-\\U{b:08x}" if a != b else f"\\U{a:08x}" for a, b in ranges]
    return re.compile("[^" + "".join(parts) + "]")


_fonts_lock = threading.Lock()
_fonts_loaded: _Fonts | None = None


def fonts() -> _Fonts:
    """Register the fonts with reportlab once per process (thread-safe) and return their coverage."""
    global _fonts_loaded
    with _fonts_lock:
        if _fonts_loaded is None:
            _fonts_loaded = _load_fonts()
        return _fonts_loaded


def _load_fonts() -> _Fonts:
    found = next(
        (d for d in DEJAVU_DIRS if (d / "DejaVuSans.ttf").is_file() and (d / "DejaVuSans-Bold.ttf").is_file()), None
    )
    if found is None:
        raise FontMissing(
            "DejaVu Sans is needed to write PDF documents and was not found in "
            + ", ".join(str(d) for d in DEJAVU_DIRS)
            + "; install it (Debian: apt-get install fonts-dejavu-core, or `make system-deps`)."
        )
    main = ttfonts.TTFont(FONT, str(found / "DejaVuSans.ttf"))
    pdfmetrics.registerFont(main)
    pdfmetrics.registerFont(ttfonts.TTFont(FONT_BOLD, str(found / "DejaVuSans-Bold.ttf")))
    pdfmetrics.registerFontFamily(FONT, normal=FONT, bold=FONT_BOLD, italic=FONT, boldItalic=FONT_BOLD)
    cjk: frozenset[int] = frozenset()
    cjk_file = next((f for f in CJK_FILES if f.is_file()), None)
    if cjk_file is not None:
        fallback = ttfonts.TTFont(FONT_CJK, str(cjk_file), subfontIndex=0)
        pdfmetrics.registerFont(fallback)
        pdfmetrics.registerFontFamily(FONT_CJK, normal=FONT_CJK, bold=FONT_CJK, italic=FONT_CJK, boldItalic=FONT_CJK)
        cjk = frozenset(fallback.face.charToGlyph)
    covered = frozenset(main.face.charToGlyph)
    return _Fonts(main=covered, cjk=cjk, uncovered=_complement(covered))


def markup(value: Cell) -> str:
    """A value as reportlab Paragraph markup that shows exactly its text (escaped, fonts chosen)."""
    text = visible_controls(as_text(value)).replace("\r\n", "\n").replace("\r", "\n").replace("\t", "    ")
    covered = fonts()
    if text.isascii() or not covered.uncovered.search(text):
        return escape(text).replace("\n", "<br/>")
    out: list[str] = []
    cjk_run: list[str] = []
    for ch in text:
        code = ord(ch)
        if code in covered.cjk and code not in covered.main:
            cjk_run.append(ch)
            continue
        if cjk_run:
            out.append(f'<font name="{FONT_CJK}">{escape("".join(cjk_run))}</font>')
            cjk_run = []
        if code in covered.main or ch == "\n":
            out.append(escape(ch))
        elif unicodedata.category(ch) in _INVISIBLE:
            continue
        else:
            out.append(f"[U+{code:04X}]")
    if cjk_run:
        out.append(f'<font name="{FONT_CJK}">{escape("".join(cjk_run))}</font>')
    return "".join(out).replace("\n", "<br/>")


# ---------------------------------------------------------------- layout

_MARGIN = 16 * mm
_WIDTH = A4[0] - 2 * _MARGIN
_GREY = colors.HexColor("#e8e8e8")
_RULE = colors.HexColor("#9a9a9a")
_MESSAGE_MIN = 26  # points: a message's header line and its first line of text


def _styles() -> dict[str, ParagraphStyle]:
    base = ParagraphStyle(
        "body", fontName=FONT, bulletFontName=FONT, fontSize=9.5, leading=12.5, alignment=TA_LEFT, spaceAfter=4
    )
    return {
        "title": ParagraphStyle("title", parent=base, fontName=FONT_BOLD, fontSize=18, leading=22, spaceAfter=6),
        "subtitle": ParagraphStyle("subtitle", parent=base, fontSize=10.5, leading=14, spaceAfter=10),
        "h1": ParagraphStyle(
            "h1", parent=base, fontName=FONT_BOLD, fontSize=14, leading=18, spaceBefore=10, spaceAfter=6
        ),
        "h2": ParagraphStyle(
            "h2", parent=base, fontName=FONT_BOLD, fontSize=11.5, leading=15, spaceBefore=8, spaceAfter=4
        ),
        "h3": ParagraphStyle(
            "h3", parent=base, fontName=FONT_BOLD, fontSize=10, leading=13, spaceBefore=6, spaceAfter=3
        ),
        "body": base,
        "bullet": ParagraphStyle("bullet", parent=base, leftIndent=10, bulletIndent=2, spaceAfter=2),
        "cell": ParagraphStyle("cell", parent=base, fontSize=8, leading=10, spaceAfter=0),
        "head": ParagraphStyle("head", parent=base, fontName=FONT_BOLD, fontSize=8, leading=10, spaceAfter=0),
        # a message: the time and sender on a small line kept with the text, the text indented under it
        "who": ParagraphStyle(
            "who",
            parent=base,
            fontName=FONT_BOLD,
            fontSize=7.5,
            leading=9.5,
            spaceBefore=3,
            spaceAfter=0,
            textColor=colors.HexColor("#444444"),
        ),
        "said": ParagraphStyle("said", parent=base, fontSize=9, leading=11.5, leftIndent=6 * mm, spaceAfter=1),
        "note": ParagraphStyle("note", parent=base, fontSize=8.5, textColor=colors.HexColor("#555555")),
    }


def _grid(data: list[list[Paragraph]], widths: list[float], header: bool) -> LongTable:
    style = [
        ("FONT", (0, 0), (-1, -1), FONT, 8),  # a table's own cell font (else Helvetica, not embedded)
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("GRID", (0, 0), (-1, -1), 0.4, _RULE),
        ("LEFTPADDING", (0, 0), (-1, -1), 3),
        ("RIGHTPADDING", (0, 0), (-1, -1), 3),
        ("TOPPADDING", (0, 0), (-1, -1), 2),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
    ]
    if header:
        style.append(("BACKGROUND", (0, 0), (-1, 0), _GREY))
    table = LongTable(data, colWidths=widths, repeatRows=1 if header else 0, splitByRow=1, hAlign="LEFT")
    table.setStyle(TableStyle(style))
    return table


def _column_widths(columns: Sequence[str], rows: Sequence[Sequence[Cell]], total: float) -> list[float]:
    """Widths proportional to the text each column holds (a sample of rows), none too narrow."""
    weights = [float(min(40, max(6, len(c)))) for c in columns]
    for row in rows[:100]:
        for i, value in enumerate(row[: len(weights)]):
            weights[i] = max(weights[i], float(min(40, len(as_text(value)))))
    floor = total / len(columns) * 0.45
    raw = [total * w / sum(weights) for w in weights]
    lifted = [max(floor, w) for w in raw]
    scale = total / sum(lifted)
    return [w * scale for w in lifted]


class _Builder:
    def __init__(self) -> None:
        self.styles = _styles()
        self.story: list[Any] = []

    def para(self, value: Cell, style: str = "body") -> Paragraph:
        return Paragraph(markup(value), self.styles[style])

    def add(self, block: Block) -> None:
        if isinstance(block, Heading):
            if block.new_page and self.story:
                self.story.append(RLPageBreak())
            self.story.append(self.para(block.text, f"h{min(3, max(1, block.level))}"))
        elif isinstance(block, Text):
            self.story.append(self.para(block.text))
        elif isinstance(block, Bullets):
            self.story.extend(Paragraph(markup(item), self.styles["bullet"], bulletText="•") for item in block.items)
        elif isinstance(block, KeyValues):
            self.key_values(block.items)
        elif isinstance(block, Table):
            self.table(block)
        elif isinstance(block, Transcript):
            self.transcript(block)
        else:
            self.story.append(RLPageBreak())

    def key_values(self, items: Sequence[tuple[str, Cell]]) -> None:
        if not items:
            return
        data = [[self.para(k, "head"), self.para(v, "cell")] for k, v in items]
        self.story.append(_grid(data, [_WIDTH * 0.3, _WIDTH * 0.7], header=False))
        self.story.append(Spacer(1, 6))

    def table(self, block: Table) -> None:
        if not block.rows:
            self.story.append(Paragraph(markup(block.empty), self.styles["note"]))
            return
        if len(block.columns) > block.max_columns:
            count = len(block.rows)
            for number, row in enumerate(block.rows, start=1):
                label = Paragraph(markup(f"{number} of {count}"), self.styles["note"])
                data = [[self.para(c, "head"), self.para(v, "cell")] for c, v in zip(block.columns, row, strict=False)]
                self.story.append(KeepTogether([label, _grid(data, [_WIDTH * 0.3, _WIDTH * 0.7], header=False)]))
                self.story.append(Spacer(1, 5))
            return
        # a long table goes as tables of CHUNK rows, each with the header: a table re-measures its
        # remaining rows at every page break, so one table of 1,000 rows costs quadratic time
        widths = _column_widths(block.columns, block.rows, _WIDTH)
        head = [self.para(c, "head") for c in block.columns]
        for start in range(0, len(block.rows), CHUNK):
            data = [head if start == 0 else [self.para(c, "head") for c in block.columns]]
            data.extend([self.para(v, "cell") for v in row] for row in block.rows[start : start + CHUNK])
            self.story.append(_grid(data, widths, header=True))
        self.story.append(Spacer(1, 8))

    def transcript(self, block: Transcript) -> None:
        # one short header line and one indented paragraph per message, in the flow (no table): a
        # paragraph splits across pages by itself and is wrapped once, where a table of 1,000 rows
        # re-measures its remaining rows at every page break (measured: 3x slower)
        self.story.append(self.para(block.title, "h2"))
        self.key_values(block.meta)
        if not block.lines:
            self.story.append(Paragraph(markup("No messages."), self.styles["note"]))
            return
        who, said = self.styles["who"], self.styles["said"]
        for line in block.lines:
            # two paragraphs of one style each: reportlab's line breaking has a fast path for a
            # paragraph of one font run, several times quicker than mixed runs
            # the header line never ends a page alone (cheaper than keepWithNext, which wraps both twice)
            self.story.append(CondPageBreak(_MESSAGE_MIN))
            self.story.append(Paragraph(f"{markup(line.at)}  ·  {markup(line.sender)}", who))
            self.story.append(Paragraph(markup(line.text), said))
        self.story.append(Spacer(1, 8))


def _numbered_canvas(footer: str) -> type[rl_canvas.Canvas]:
    """A canvas that writes "page n of m" and the footer once the page count is known."""
    footer_text = visible_controls(clean_text(footer))

    class NumberedCanvas(rl_canvas.Canvas):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._pages: list[dict[str, Any]] = []

        def showPage(self) -> None:
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            count = len(self._pages)
            for state in self._pages:
                self.__dict__.update(state)
                self.setFont(FONT, 7.5)
                self.setFillColor(colors.HexColor("#555555"))
                self.drawString(_MARGIN, 9 * mm, footer_text[:110])
                self.drawRightString(A4[0] - _MARGIN, 9 * mm, f"Page {self._pageNumber} of {count}")
                super().showPage()
            super().save()

    return NumberedCanvas


def render_document(
    title: str,
    blocks: Sequence[Block],
    *,
    subtitle: str | None = None,
    footer: str | None = None,
) -> bytes:
    """A PDF of ``blocks`` under ``title`` (see the module docstring)."""
    fonts()
    builder = _Builder()
    builder.story.append(builder.para(title, "title"))
    if subtitle:
        builder.story.append(builder.para(subtitle, "subtitle"))
    for block in blocks:
        builder.add(block)
    out = io.BytesIO()
    doc = SimpleDocTemplate(
        out,
        pagesize=A4,
        leftMargin=_MARGIN,
        rightMargin=_MARGIN,
        topMargin=_MARGIN,
        bottomMargin=_MARGIN + 6 * mm,
        title=clean_text(title),
        author="Confide",
        creator="Confide",
        producer="Confide (reportlab)",
        # the page's initial font too, or every page would name a Helvetica that is not embedded
        initialFontName=FONT,
    )
    doc.build(builder.story, canvasmaker=_numbered_canvas(footer if footer is not None else title))
    return out.getvalue()
