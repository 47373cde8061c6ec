"""Jinja2 set-up for the dashboard and the two ways a page answers: ``render`` and ``error_page``.

Autoescape is on: visitor-supplied strings are data, always. Filters and globals the templates use
are registered here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
from fastapi import Request
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates

from confide.auth.actors import OperatorActor
from confide.permissions.policy import allows

_TEMPLATES = Path(__file__).parent / "templates"
_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(_TEMPLATES),
    autoescape=True,  # visitor-supplied strings are data, always
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
)
templates = Jinja2Templates(env=_env)

DAY_NAMES = {
    "mon": "Monday",
    "tue": "Tuesday",
    "wed": "Wednesday",
    "thu": "Thursday",
    "fri": "Friday",
    "sat": "Saturday",
    "sun": "Sunday",
}
FIELD_TYPES = ("text", "email", "tel", "textarea", "select", "checkbox")
STRATEGIES = {"round_robin": "Round robin", "least_busy": "Least busy", "manual": "Manual (queue only)"}
NO_STORE = {"Cache-Control": "no-store"}


# ---------------------------------------------------------------- template helpers
def _parse_iso(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _utc_text(value: object) -> str:
    """Server-side fallback text for a time (the page script shows it in the reader's zone)."""
    parsed = _parse_iso(value)
    return parsed.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if parsed else ""


def _http_url(value: object) -> str | None:
    """A visitor-supplied URL we may link to: http(s) only, else None (shown as text)."""
    if not isinstance(value, str):
        return None
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return None
    return value.strip() if parts.scheme in ("http", "https") and parts.netloc else None


def _visitor_label(visitor: Mapping[str, Any] | None) -> str:
    if not visitor:
        return "Visitor"
    return str(visitor.get("name") or visitor.get("email") or visitor.get("phone") or "Visitor")


def humanize_key(value: object) -> str:
    text = str(value).replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def _field_value(value: object) -> str:
    if isinstance(value, bool):
        return "Yes" if value else "No"
    return "" if value is None else str(value)


_env.filters["utc"] = _utc_text
_env.filters["visitor_label"] = _visitor_label
_env.filters["humanize"] = humanize_key
_env.filters["field_value"] = _field_value
_env.globals["http_url"] = _http_url
_env.globals["DAY_NAMES"] = DAY_NAMES
_env.globals["FIELD_TYPES"] = FIELD_TYPES
_env.globals["STRATEGIES"] = STRATEGIES
_env.globals["can"] = allows  # {% if can(me, "settings.read") %}: the one permission check templates make


def render(
    request: Request, name: str, actor: OperatorActor | None, *, status_code: int = 200, **context: Any
) -> Response:
    context.setdefault("nav", "")
    context.setdefault("flash", None)
    context.setdefault("flash_kind", "success")
    return templates.TemplateResponse(
        request, name, {"me": actor, **context}, status_code=status_code, headers=NO_STORE
    )


def error_page(
    request: Request,
    actor: OperatorActor | None,
    status_code: int,
    message: str,
    *,
    title: str = "Something went wrong",
    nav: str = "",
) -> Response:
    return render(request, "error.html", actor, status_code=status_code, title=title, message=message, nav=nav)

