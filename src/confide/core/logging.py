"""Logging set-up. Logs hold pseudonymous ids only: never names, e-mails, message text, IPs or tokens.

Everything (Confide's structlog events, uvicorn, websockets, asyncio, SQLAlchemy...) goes through
the standard ``logging`` tree to one handler of ours, whose ``PrivacyFilter`` enforces the rule for
the code we do not control:

- uvicorn's access log (client address, full path and query) is dropped; Confide writes its own
  (``web/access_log.py``: method, route template, status, duration, operator id);
- uvicorn's per-socket lines (``'%s - "WebSocket %s" ...'``: address, path, query) are dropped;
- libraries' DEBUG and INFO records are dropped (uvicorn's own start-up lines excepted): at DEBUG
  ``websockets`` prints frames, httpcore prints headers (cookies), drivers print parameters;
- any other third-party record keeps its message template but loses its arguments (``[redacted]``)
  unless the template is known to be safe (uvicorn would otherwise print addresses);
- tracebacks, ours included, keep the exception *types* and the frames (file, line, function,
  source line) but never the exception *messages*, which often quote the input
  (``invalid literal for int(): 'ana@example.com'``).
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
from collections.abc import MutableMapping
from types import TracebackType
from typing import Any, TextIO

import structlog

REDACTED = "[redacted]"
_HANDLER_FLAG = "_confide_handler"
# Third-party message templates whose arguments are safe to print (no client data in them).
SAFE_TEMPLATES = frozenset(
    {
        "Started server process [%d]",
        "Finished server process [%d]",
        "Started parent process [%d]",
        "Stopping parent process [%d]",
        "Waiting for child process [%d]",
        "Child process [%d] died",
    }
)
_DROPPED_LOGGERS = ("uvicorn.access",)
_CHATTY_OK = frozenset({"uvicorn", "uvicorn.error"})  # their info lines are start-up and shutdown
_DROPPED_TEMPLATES = (
    '%s - "WebSocket %s" [accepted]',
    '%s - "WebSocket %s" 403',
    '%s - "WebSocket %s" %d',
    "Uvicorn running on %s://%s:%d (Press CTRL+C to quit)",  # `confide serve` prints where it listens
)


_CONVERSION = re.compile(r"%%|%(\([^)]*\))?[#0 +-]*(\*|\d+)?(\.(\*|\d+))?[hlL]?[diouxXeEfFgGcrsa]")
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


def safe_traceback(exc_info: ExcInfo | tuple[None, None, None]) -> str:
    """A traceback without exception messages (types and frames only), chained causes included."""
    _, exc, _ = exc_info
    if exc is None:
        return ""
    blocks: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(blocks) < 10:
        seen.add(id(current))
        frames = traceback.extract_tb(current.__traceback__)
        lines = ["Traceback (most recent call last):"]
        lines += [f'  File "{f.filename}", line {f.lineno}, in {f.name}' + (f"\n    {f.line}" if f.line else "")
                  for f in frames]
        kind = type(current)
        lines.append(f"{kind.__module__}.{kind.__qualname__}: {REDACTED}")
        blocks.append("\n".join(lines))
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return "\nwhich was raised while handling, or caused by:\n".join(reversed(blocks))


class PrivacyFilter(logging.Filter):
    """Rewrites (or drops) records so that no personal data reaches the output. See the module doc."""

    def filter(self, record: logging.LogRecord) -> bool:
        name = record.name
        if name.startswith(_DROPPED_LOGGERS):
            return False
        ours = name == "confide" or name.startswith("confide.")
        if not ours and record.levelno < logging.WARNING and name not in _CHATTY_OK:
            return False  # libraries' debug and info (httpcore headers, websockets frames, SQL...)
        if not ours:
            template = record.msg if isinstance(record.msg, str) else type(record.msg).__name__
            if template in _DROPPED_TEMPLATES:
                return False
            if record.args and template not in SAFE_TEMPLATES:
                record.msg = _CONVERSION.sub(lambda m: "%" if m.group(0) == "%%" else REDACTED, template)
                record.args = None
            elif not isinstance(record.msg, str):
                record.msg = template
        if record.exc_info:
            record.exc_text = safe_traceback(record.exc_info)
            record.exc_info = None
        elif record.exc_text and not ours:
            record.exc_text = REDACTED
        return True


def _safe_exc_info(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog: render ``exc_info`` as a traceback without exception messages."""
    exc_info = event.pop("exc_info", None)
    if exc_info:
        if exc_info is True:
            exc_info = sys.exc_info()
        elif isinstance(exc_info, BaseException):
            exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
        event["exception"] = safe_traceback(exc_info)
    return event


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record is emitted, not the one of the moment
    ``configure`` ran (test runners and the CLI swap it; a stale one may be closed by then)."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def configure(level: str = "info", *, json: bool = False, stream: TextIO | None = None) -> None:
    """Idempotent: replaces Confide's handler on the root logger (others, e.g. pytest's, stay)."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_FLAG, False)]:
        root.removeHandler(old)
    handler: logging.Handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    setattr(handler, _HANDLER_FLAG, True)
    handler.addFilter(PrivacyFilter())
    handler.setFormatter(logging.Formatter("%(message)s"))
    root.addHandler(handler)
    root.setLevel(numeric)
    # uvicorn's loggers go to our handler (when uvicorn set up its own, they would bypass it)…
    for name in ("uvicorn", "uvicorn.error"):
        lib = logging.getLogger(name)
        lib.handlers.clear()
        lib.propagate = True
    # …except its access log, off for good: no handler and no propagation makes uvicorn skip it.
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _safe_exc_info,
            structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False),
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        # Not cached: a module-level logger used before a later configure() (tests, the CLI's serve)
        # would keep the old level for ever. The cost is a few µs per line; frames are not logged.
        cache_logger_on_first_use=False,
    )
