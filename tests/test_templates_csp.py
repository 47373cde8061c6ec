"""The dashboard's CSP allows no inline style or script: templates carry neither (a style attribute
is silently dropped by the browser, which once broke a page's spacing and its touch targets)."""

from __future__ import annotations

import re
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parent.parent / "src" / "confide" / "web" / "dashboard" / "templates"


def test_templates_have_no_inline_style_or_script() -> None:
    offenders = []
    for path in sorted(TEMPLATES.glob("*.html")):
        source = path.read_text()
        if re.search(r"\sstyle\s*=", source) or re.search(r"<script(?![^>]*\bsrc=)[^>]*>", source):
            offenders.append(path.name)
        if re.search(r"\son[a-z]+\s*=\s*\"", source):
            offenders.append(path.name + " (event handler attribute)")
    assert offenders == []
