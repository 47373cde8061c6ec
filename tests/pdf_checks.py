"""Reading a PDF back in tests: its text, its fonts, its actions, and a local server that counts fetches."""

from __future__ import annotations

import http.server
import io
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pypdf import PdfReader

# what a PDF would need to open a link, run a script or launch something
ACTION_KEYS = (
    b"/URI",
    b"/Launch",
    b"/JavaScript",
    b"/JS",
    b"/OpenAction",
    b"/AA",
    b"/GoToR",
    b"/SubmitForm",
    b"/ImportData",
)
_SPACE = re.compile(r"\s+")


def squash(text: str) -> str:
    """Text without any white space (a PDF's line wraps and tabs do not count)."""
    return _SPACE.sub("", text)


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def pdf_fonts(data: bytes) -> dict[str, Any]:
    """BaseFont name -> font dictionary, over every page."""
    found: dict[str, Any] = {}
    for page in PdfReader(io.BytesIO(data)).pages:
        fonts = page["/Resources"].get_object().get("/Font")
        for ref in (fonts.get_object() if fonts is not None else {}).values():
            font = ref.get_object()
            found[str(font["/BaseFont"])] = font
    return found


def actions_in(data: bytes) -> list[str]:
    """Action and annotation keys anywhere in the PDF's objects (and annotations on any page)."""
    found = [key.decode() for key in ACTION_KEYS if re.search(re.escape(key) + rb"[\s/<(\[]", data)]
    reader = PdfReader(io.BytesIO(data))
    found += [f"page {n} /Annots" for n, page in enumerate(reader.pages, 1) if "/Annots" in page]
    root = reader.trailer["/Root"].get_object()
    found += [key for key in ("/OpenAction", "/AA", "/Names") if key in root]
    return found


class _Counter(http.server.BaseHTTPRequestHandler):
    hits: list[str]

    def do_GET(self) -> None:
        self.hits.append(self.path)
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def counting_server() -> Iterator[tuple[int, list[str]]]:
    """A real HTTP server on 127.0.0.1 that records every request: (port, paths requested)."""
    hits: list[str] = []
    handler = type("Counter", (_Counter,), {"hits": hits})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], hits
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
