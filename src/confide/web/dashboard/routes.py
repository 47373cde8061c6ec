"""Server-rendered dashboard pages: log-in, the live console shell (its ES module talks to
``/ws/operator``), Stored Chats, Offline Requests and Settings.

Handlers are thin: parse and validate the query or form, authenticate, call the service inside
one unit of work, render. A ``DomainError`` becomes a flash message or an error page with its
status; a pydantic ``ValidationError`` re-renders the form with what was typed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit
from zoneinfo import available_timezones

import jinja2
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData

from confide import directory
from confide.auth.actors import OperatorActor
from confide.chats import service as chats
from confide.chats.schemas import StoredChatFilters
from confide.core.errors import DomainError, Unauthorized
from confide.offline import service as offline
from confide.offline.schemas import OfflineFilters
from confide.users import service as users
from confide.users.schemas import LoginIn, OperatorIn, OperatorPatch
from confide.web.api.auth import password_login, set_session_cookie
from confide.web.api.deps import SESSION_COOKIE, StateDep, current_operator
from confide.web.state import State
from confide.workspaces import service as workspaces
from confide.workspaces.schemas import (
    DAYS,
    CannedReplyIn,
    DepartmentIn,
    DepartmentPatch,
    SiteIn,
    SitePatch,
)

router = APIRouter(include_in_schema=False)

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
MAX_ROWS = 40
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


def _humanize_key(value: object) -> str:
    text = str(value).replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def _field_value(value: object) -> str:
    if isinstance(value, bool):
        return "Yes" if value else "No"
    return "" if value is None else str(value)


_env.filters["utc"] = _utc_text
_env.filters["visitor_label"] = _visitor_label
_env.filters["humanize"] = _humanize_key
_env.filters["field_value"] = _field_value
_env.globals["http_url"] = _http_url
_env.globals["DAY_NAMES"] = DAY_NAMES
_env.globals["FIELD_TYPES"] = FIELD_TYPES
_env.globals["STRATEGIES"] = STRATEGIES


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


# ---------------------------------------------------------------- authentication for pages
def safe_next(value: object) -> str:
    """Only a relative path on this server ("/…", never "//host" or "/\\host")."""
    if not isinstance(value, str) or not value.startswith("/") or len(value) > 2000:
        return "/app"
    if value.startswith(("//", "/\\")) or any(ch in value for ch in "\\\r\n\t\x00"):
        return "/app"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/app"
    return value


async def page_operator(request: Request) -> OperatorActor:
    """The logged-in operator, or a 303 to the log-in page that comes back here afterwards."""
    try:
        return await current_operator(request)
    except Unauthorized:
        target = "/app"
        if request.method == "GET":
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise HTTPException(status_code=303, headers={"Location": "/login?" + urlencode({"next": target})}) from None


PageOperator = Annotated[OperatorActor, Depends(page_operator)]


def _same_origin(request: Request) -> bool:
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source:
        return True  # non-browser clients; browsers always send Origin on a form POST
    return urlsplit(source).netloc.lower() == request.headers.get("host", "").lower()


@router.get("/")
async def root() -> Response:
    return RedirectResponse("/app", status_code=303)


@router.get("/login")
async def login_page(request: Request) -> Response:
    target = safe_next(request.query_params.get("next"))
    try:
        await current_operator(request)
    except Unauthorized:
        pass
    else:
        return RedirectResponse(target, status_code=303)
    flash = "You have been logged out." if request.query_params.get("bye") else None
    return render(request, "login.html", None, next=target, email="", error=None, flash=flash)


@router.post("/login")
async def login_submit(request: Request, state: StateDep) -> Response:
    form = await request.form()
    email, password = _text(form, "email").strip(), _text(form, "password")
    target = safe_next(_text(form, "next"))
    if not _same_origin(request):
        return error_page(request, None, 403, "This log-in form was sent from another site.", title="Refused")
    rt = state.rt
    try:
        body = LoginIn(email=email, password=password)
        token, _op = await password_login(rt, email=body.email, password=body.password)
    except ValidationError:
        return render(
            request,
            "login.html",
            None,
            status_code=422,
            next=target,
            email=email,
            error="Enter your e-mail address and your password.",
        )
    except DomainError as exc:
        return render(
            request, "login.html", None, status_code=exc.status, next=target, email=email, error=_sentence(exc.message)
        )
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(response, token, ttl_s=rt.settings.session_ttl_s, secure=rt.settings.cookie_secure)
    return response


@router.post("/logout")
async def logout(request: Request, state: StateDep) -> Response:
    try:
        actor: OperatorActor | None = await current_operator(request)
    except Unauthorized:
        actor = None
    if actor is not None:
        async with state.rt.db.unit_of_work() as uow:
            await users.logout(state.rt, uow, actor)
    response = RedirectResponse("/login?bye=1", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# ---------------------------------------------------------------- the live console
@router.get("/app")
async def console(request: Request, actor: PageOperator) -> Response:
    return render(request, "console.html", actor, nav="console")


# ---------------------------------------------------------------- query parsing (filters)
M = TypeVar("M", bound=BaseModel)
CHAT_FILTERS = (
    "date_from",
    "date_to",
    "site_id",
    "department_id",
    "operator_id",
    "visitor",
    "text",
    "rating",
    "status",
)
OFFLINE_FILTERS = ("date_from", "date_to", "site_id", "department_id", "visitor", "state")


def _date_bound(raw: str, *, end: bool) -> datetime:
    """A date (YYYY-MM-DD, a whole UTC day) or a date-time; naive values are UTC."""
    if "T" in raw or " " in raw:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    start = datetime.combine(date.fromisoformat(raw), time.min, tzinfo=UTC)
    return start + timedelta(days=1, microseconds=-1) if end else start


def _parse_filters(
    model: type[M], params: Mapping[str, str], keys: Iterable[str], defaults: Mapping[str, str] | None = None
) -> tuple[dict[str, str], M | None, list[str]]:
    """(raw values to refill the form, the validated filters or None, messages)."""
    raw = {key: str(params.get(key, "")).strip() for key in keys}
    for key, value in (defaults or {}).items():
        if key not in params:
            raw[key] = value
    data: dict[str, Any] = {k: v for k, v in raw.items() if v}
    errors: list[str] = []
    for key, end in (("date_from", False), ("date_to", True)):
        if key in data:
            try:
                data[key] = _date_bound(data[key], end=end)
            except ValueError:
                errors.append(f"{_LABELS[key]}: use a date like 2026-11-29.")
                del data[key]
    page = str(params.get("page", "1")).strip() or "1"
    data["page"] = page
    try:
        filters = model.model_validate(data)
    except ValidationError as exc:
        return raw, None, errors + _messages(exc)
    return raw, (filters if not errors else None), errors


def _pager(path: str, raw: Mapping[str, str], page: int, per_page: int, total: int) -> dict[str, Any]:
    pages = max(1, math.ceil(total / per_page))
    base = {k: v for k, v in raw.items() if v}

    def url(n: int) -> str:
        return f"{path}?{urlencode({**base, 'page': n})}"

    window = sorted({1, pages, *range(max(1, page - 2), min(pages, page + 2) + 1)})
    links: list[dict[str, Any]] = []
    previous = 0
    for n in window:
        if n - previous > 1:
            links.append({"gap": True})
        links.append({"gap": False, "n": n, "url": url(n), "current": n == page})
        previous = n
    return {
        "page": page,
        "pages": pages,
        "total": total,
        "first": (page - 1) * per_page + 1 if total else 0,
        "last": min(total, page * per_page),
        "prev": url(page - 1) if page > 1 else None,
        "next": url(page + 1) if page < pages else None,
        "links": links if pages > 1 else [],
    }


def _query_back(value: str, keys: Iterable[str]) -> str:
    """Re-encode a list's query string, keeping only its known filter keys (and the page)."""
    allowed = {*keys, "page"}
    pairs = [(k, v) for k, v in parse_qsl(value or "", keep_blank_values=False) if k in allowed]
    return urlencode(pairs[:20])


# ---------------------------------------------------------------- Stored Chats
async def _filtered_list(
    request: Request,
    actor: OperatorActor,
    state: State,
    *,
    path: str,
    schema: Any,
    keys: Any,
    search: Any,
    defaults: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Stored Chats and Offline Requests alike: parse the filters, search, page, keep the filters."""
    rt = state.rt
    raw, filters, errors = _parse_filters(schema, request.query_params, keys, defaults=defaults)
    context: dict[str, Any] = {"items": [], "sites": [], "departments": [], "operators": []}
    total, status_code = 0, 422 if errors else 200
    try:
        async with rt.db.unit_of_work(readonly=True) as uow:
            context.update(await directory.filter_choices(uow, actor))
            if filters is not None:
                context["items"], total = await search(rt, uow, actor, filters)
    except DomainError as exc:  # e.g. "search for words of at least two letters"
        errors.append(_sentence(exc.message))
        status_code, filters = exc.status, None
    context["pager"] = _pager(path, raw, filters.page, filters.per_page, total) if filters else None
    context["back"] = urlencode({k: v for k, v in raw.items() if v} | ({"page": str(filters.page)} if filters else {}))
    return {**context, "raw": raw, "errors": errors, "status_code": status_code}


@router.get("/app/chats")
async def stored_chats(request: Request, actor: PageOperator, state: StateDep) -> Response:
    context = await _filtered_list(
        request, actor, state, path="/app/chats", schema=StoredChatFilters, keys=CHAT_FILTERS, search=chats.search
    )
    return render(request, "chats.html", actor, nav="chats", filtered=any(context["raw"].values()), **context)


@router.get("/app/chats/{conversation_id}")
async def stored_chat(conversation_id: str, request: Request, actor: PageOperator, state: StateDep) -> Response:
    rt = state.rt
    try:
        async with rt.db.unit_of_work(readonly=True) as uow:
            chat = await chats.transcript(rt, uow, actor, conversation_id)
    except DomainError as exc:
        title = "Chat not found" if exc.status == 404 else "Something went wrong"
        message = "This chat does not exist or you may not see it." if exc.status == 404 else _sentence(exc.message)
        return error_page(request, actor, exc.status, message, title=title, nav="chats")
    back = _query_back(request.query_params.get("back", ""), CHAT_FILTERS)
    return render(
        request, "transcript.html", actor, nav="chats", chat=chat, back_url="/app/chats" + (f"?{back}" if back else "")
    )


# ---------------------------------------------------------------- Offline Requests
@router.get("/app/offline")
async def offline_requests(request: Request, actor: PageOperator, state: StateDep) -> Response:
    context = await _filtered_list(
        request,
        actor,
        state,
        path="/app/offline",
        schema=OfflineFilters,
        keys=OFFLINE_FILTERS,
        search=offline.search,
        defaults={"state": "open"},
    )
    notice = {"handled": "Marked as handled.", "reopened": "Reopened."}.get(request.query_params.get("done", ""))
    return render(request, "offline.html", actor, nav="offline", flash=notice, **context)


@router.post("/app/offline/{request_id}/handled")
async def offline_set_handled(request_id: str, request: Request, actor: PageOperator, state: StateDep) -> Response:
    form = await request.form()
    handled = _text(form, "handled") != "0"
    back = _query_back(_text(form, "back"), OFFLINE_FILTERS)
    try:
        async with state.rt.db.unit_of_work() as uow:
            await offline.set_handled(state.rt, uow, actor, request_id, handled)
    except DomainError as exc:
        return error_page(request, actor, exc.status, _sentence(exc.message), nav="offline")
    query = "&".join(q for q in (back, urlencode({"done": "handled" if handled else "reopened"})) if q)
    return RedirectResponse(f"/app/offline?{query}", status_code=303)


# ---------------------------------------------------------------- Settings (administrators)
@dataclass
class Failed:
    """A form that did not validate: which one, what was typed, and why."""

    form_id: str
    values: dict[str, Any]
    errors: list[str] = field(default_factory=list)


SAVED = {
    "site": "Site saved.",
    "site-new": "Site created.",
    "dept": "Department saved.",
    "dept-new": "Department created.",
    "op": "Operator saved.",
    "op-new": "Operator created.",
    "op-disabled": "Operator disabled; their sessions ended.",
    "op-enabled": "Operator enabled.",
    "canned-new": "Canned reply added.",
    "canned-deleted": "Canned reply deleted.",
}


async def _settings_data(state: State, actor: OperatorActor, tab: str) -> dict[str, Any]:
    async with state.rt.db.unit_of_work(readonly=True) as uow:
        return await directory.settings_overview(uow, actor, operators=tab == "operators", canned=tab == "canned")


async def _settings_page(
    request: Request,
    state: State,
    actor: OperatorActor,
    tab: str,
    *,
    failed: Failed | None = None,
    status_code: int = 200,
) -> Response:
    try:
        data = await _settings_data(state, actor, tab)
    except DomainError as exc:
        if exc.status == 403:
            return render(request, "admin_only.html", actor, status_code=403, nav="settings")
        return error_page(request, actor, exc.status, _sentence(exc.message), nav="settings")
    flash = SAVED.get(request.query_params.get("saved", "")) if failed is None else None
    site_names = {s["id"]: s["name"] for s in data["sites"]}
    dept_names = {
        d["id"]: f"{d['name']} ({site_names.get(d['site_id'], '?')})" if len(site_names) > 1 else d["name"]
        for d in data["departments"]
    }

    def pick(form_id: str, default: dict[str, Any]) -> dict[str, Any]:
        if failed is not None and failed.form_id == form_id:
            return {**failed.values, "errors": failed.errors, "open": True}
        return {**default, "errors": [], "open": False}

    context: dict[str, Any] = {
        "tab": tab,
        "nav": "settings",
        "flash": flash,
        "site_names": site_names,
        "dept_names": dept_names,
        **data,
    }
    if tab == "sites":
        base = (state.rt.settings.public_url or str(request.base_url)).rstrip("/")
        context["base_url"] = base
        context["timezones"] = sorted(available_timezones())
        context["site_forms"] = [
            {
                "site": s,
                "form": pick(f"site-{s['id']}", _site_shape(s)),
                "snippet": f'<script src="{base}/widget.js" data-site="{s["site_key"]}" async></script>',
            }
            for s in data["sites"]
        ]
        context["new_site"] = pick("site-new", _site_shape(None))
    elif tab == "departments":
        context["dept_forms"] = [
            {"dept": d, "form": pick(f"dept-{d['id']}", {**d, "offer_timeout_s": str(d["offer_timeout_s"])})}
            for d in data["departments"]
        ]
        context["new_dept"] = pick(
            "dept-new", {"site_id": "", "name": "", "strategy": "round_robin", "offer_timeout_s": "30"}
        )
    elif tab == "operators":
        context["op_forms"] = [
            {
                "op": o,
                "form": pick(
                    f"op-{o['id']}",
                    {
                        "name": o["name"],
                        "role": o["role"],
                        "max_chats": str(o["max_chats"]),
                        "department_ids": o["department_ids"],
                    },
                ),
            }
            for o in data["operators"]
        ]
        context["new_op"] = pick(
            "op-new", {"email": "", "name": "", "role": "operator", "max_chats": "5", "department_ids": []}
        )
    elif tab == "canned":
        context["new_canned"] = pick("canned-new", {"shortcut": "", "title": "", "text": "", "department_id": ""})
    if failed is not None and not any(failed.form_id == f for f in _form_ids(context)):
        context["flash"], context["flash_kind"] = " ".join(failed.errors), "error"
    return render(request, f"settings_{tab}.html", actor, status_code=status_code, **context)


def _form_ids(context: Mapping[str, Any]) -> list[str]:
    ids = ["site-new", "dept-new", "op-new", "canned-new"]
    ids += [f"site-{f['site']['id']}" for f in context.get("site_forms", [])]
    ids += [f"dept-{f['dept']['id']}" for f in context.get("dept_forms", [])]
    ids += [f"op-{f['op']['id']}" for f in context.get("op_forms", [])]
    return ids


def _saved(path: str, key: str, anchor: str = "") -> Response:
    return RedirectResponse(f"{path}?saved={key}" + (f"#{anchor}" if anchor else ""), status_code=303)


async def _failed(
    request: Request, state: State, actor: OperatorActor, tab: str, form_id: str, values: dict[str, Any], exc: Exception
) -> Response:
    status_code = exc.status if isinstance(exc, DomainError) else 422
    if status_code == 403:
        return render(request, "admin_only.html", actor, status_code=403, nav="settings")
    return await _settings_page(
        request, state, actor, tab, failed=Failed(form_id, values, _errors(exc)), status_code=status_code
    )


@router.get("/app/settings")
async def settings_sites(request: Request, actor: PageOperator, state: StateDep) -> Response:
    return await _settings_page(request, state, actor, "sites")


@router.get("/app/settings/departments")
async def settings_departments(request: Request, actor: PageOperator, state: StateDep) -> Response:
    return await _settings_page(request, state, actor, "departments")


@router.get("/app/settings/operators")
async def settings_operators(request: Request, actor: PageOperator, state: StateDep) -> Response:
    return await _settings_page(request, state, actor, "operators")


@router.get("/app/settings/canned")
async def settings_canned(request: Request, actor: PageOperator, state: StateDep) -> Response:
    return await _settings_page(request, state, actor, "canned")


# -- sites
def _site_shape(view: Mapping[str, Any] | None) -> dict[str, Any]:
    """A site as the form shows it (text in inputs); ``None``: the blank form for a new site."""
    if view is None:
        view = {
            "name": "",
            "allowed_origins": [],
            "privacy_policy_url": "",
            "greeting": "",
            "color": "#2563eb",
            "timezone": "UTC",
            "business_hours": None,
            "prechat_fields": workspaces.DEFAULT_PRECHAT,
            "purposes": [],
        }
    hours = view.get("business_hours") or {}
    return {
        "name": view["name"],
        "origins": "\n".join(view["allowed_origins"]),
        "privacy_policy_url": view["privacy_policy_url"],
        "greeting": view["greeting"],
        "color": view["color"],
        "timezone": view["timezone"],
        "always_open": not view.get("business_hours"),
        "hours": {d: ", ".join(f"{a}-{b}" for a, b in hours.get(d, [])) for d in DAYS},
        "fields": [
            {
                "key": f.get("key", ""),
                "label": f.get("label", ""),
                "type": f.get("type", "text"),
                "required": bool(f.get("required")),
                "options": ", ".join(f.get("options") or []),
            }
            for f in view["prechat_fields"]
        ],
        "purposes": [
            {"key": p.get("key", ""), "label": p.get("label", ""), "version": p.get("version", "1")}
            for p in view["purposes"]
        ],
    }


def _rows(
    form: FormData,
    prefix: str,
    names: tuple[str, ...],
    *,
    flags: tuple[str, ...] = (),
    identity: tuple[str, ...] = ("key", "label"),
) -> list[dict[str, Any]]:
    """Indexed rows (``pf-0-key`` …) in index order; removed rows and rows without ``identity``
    (a new row left empty) are left out. ``flags`` are checkboxes."""
    try:
        count = min(MAX_ROWS, max(0, int(_text(form, f"{prefix}-count") or 0)))
    except ValueError:
        count = 0
    rows = []
    for i in range(count):
        row: dict[str, Any] = {n: _text(form, f"{prefix}-{i}-{n}").strip() for n in names}
        if _text(form, f"{prefix}-{i}-remove") or not any(row[n] for n in identity):
            continue
        row.update({flag: bool(_text(form, f"{prefix}-{i}-{flag}")) for flag in flags})
        rows.append(row)
    return rows


def _site_shape_from_form(form: FormData) -> dict[str, Any]:
    return {
        "name": _text(form, "name").strip(),
        "origins": _text(form, "origins"),
        "privacy_policy_url": _text(form, "privacy_policy_url").strip(),
        "greeting": _text(form, "greeting").strip(),
        "color": _text(form, "color").strip(),
        "timezone": _text(form, "timezone").strip(),
        "always_open": bool(_text(form, "always_open")),
        "hours": {d: _text(form, f"hours-{d}").strip() for d in DAYS},
        "fields": _rows(form, "pf", ("key", "label", "type", "options"), flags=("required",)),
        "purposes": _rows(form, "pp", ("key", "label", "version")),
    }


_SPAN = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*[-–—]\s*(\d{1,2}):(\d{2})\s*$")


def _span(day: str, text: str) -> list[str]:
    """ "9:00-17:00" -> ["09:00", "17:00"]; the schema checks the times themselves."""
    match = _SPAN.match(text)
    if not match:
        raise ValueError(f"Opening hours on {DAY_NAMES[day]}: “{text.strip()[:40]}” is not a span like 09:00-17:00.")
    h1, m1, h2, m2 = match.groups()
    return [f"{int(h1):02d}:{m1}", f"{int(h2):02d}:{m2}"]


class FormInvalid(ValueError):
    """Several messages about one form (ours and the schema's together)."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("; ".join(messages))
        self.messages = messages


def _site_payload(shape: Mapping[str, Any]) -> dict[str, Any]:
    """The form as SiteIn/SitePatch data; validates it as a whole site (FormInvalid lists every problem)."""
    problems: list[str] = []
    hours: dict[str, list[list[str]]] | None = None
    if not shape["always_open"]:
        hours = {}
        for day, text in shape["hours"].items():
            spans = []
            for part in (p for p in text.split(",") if p.strip()):
                try:
                    spans.append(_span(day, part))
                except ValueError as exc:
                    problems.append(str(exc))
            if spans:
                hours[day] = spans
        if not hours and not problems:
            problems.append("Opening hours: enter the hours of at least one day, or choose “Always open”.")
    payload = {
        "name": shape["name"],
        "allowed_origins": [line.strip() for line in str(shape["origins"]).splitlines() if line.strip()],
        "prechat_fields": [
            {
                "key": f["key"],
                "label": f["label"],
                "type": f["type"] or "text",
                "required": f["required"],
                "options": [o.strip() for o in f["options"].split(",") if o.strip()],
            }
            for f in shape["fields"]
        ],
        "purposes": [{"key": p["key"], "label": p["label"], "version": p["version"] or "1"} for p in shape["purposes"]],
        "privacy_policy_url": shape["privacy_policy_url"],
        "greeting": shape["greeting"],
        "color": shape["color"] or "#2563eb",
        "timezone": shape["timezone"] or "UTC",
        "business_hours": hours or None,
    }
    try:
        SiteIn.model_validate(payload)  # the whole site must be valid (unique keys, URL scheme, zone)
    except ValidationError as exc:
        problems += _messages(exc)
    if problems:
        raise FormInvalid(problems)
    return payload


@router.post("/app/settings/sites")
async def settings_site_create(request: Request, actor: PageOperator, state: StateDep) -> Response:
    shape = _site_shape_from_form(await request.form())
    try:
        body = SiteIn.model_validate(_site_payload(shape))
        async with state.rt.db.unit_of_work() as uow:
            site = await workspaces.admin_create_site(uow, actor, body)
    except (ValueError, DomainError) as exc:
        return await _failed(request, state, actor, "sites", "site-new", shape, exc)
    return _saved("/app/settings", "site-new", f"site-{site.id}")


@router.post("/app/settings/sites/{site_id}")
async def settings_site_update(site_id: str, request: Request, actor: PageOperator, state: StateDep) -> Response:
    shape = _site_shape_from_form(await request.form())
    try:
        patch = SitePatch.model_validate({**_site_payload(shape), "always_open": shape["always_open"]})
        async with state.rt.db.unit_of_work() as uow:
            await workspaces.update_site(uow, actor, site_id, patch)
    except (ValueError, DomainError) as exc:
        return await _failed(request, state, actor, "sites", f"site-{site_id}", shape, exc)
    return _saved("/app/settings", "site", f"site-{site_id}")


# -- departments
def _dept_shape(form: FormData) -> dict[str, Any]:
    return {
        "site_id": _text(form, "site_id"),
        "name": _text(form, "name").strip(),
        "strategy": _text(form, "strategy"),
        "offer_timeout_s": _text(form, "offer_timeout_s").strip(),
    }


@router.post("/app/settings/departments")
async def settings_department_create(request: Request, actor: PageOperator, state: StateDep) -> Response:
    shape = _dept_shape(await request.form())
    try:
        body = DepartmentIn.model_validate(shape)
        async with state.rt.db.unit_of_work() as uow:
            dept = await workspaces.admin_create_department(uow, actor, body)
    except (ValueError, DomainError) as exc:
        return await _failed(request, state, actor, "departments", "dept-new", shape, exc)
    return _saved("/app/settings/departments", "dept-new", f"dept-{dept.id}")


@router.post("/app/settings/departments/{department_id}")
async def settings_department_update(
    department_id: str, request: Request, actor: PageOperator, state: StateDep
) -> Response:
    shape = _dept_shape(await request.form())
    try:
        patch = DepartmentPatch.model_validate({k: shape[k] for k in ("name", "strategy", "offer_timeout_s")})
        async with state.rt.db.unit_of_work() as uow:
            await workspaces.update_department(uow, actor, department_id, patch)
    except (ValueError, DomainError) as exc:
        return await _failed(request, state, actor, "departments", f"dept-{department_id}", shape, exc)
    return _saved("/app/settings/departments", "dept", f"dept-{department_id}")


# -- operators
def _operator_shape(form: FormData) -> dict[str, Any]:
    return {
        "email": _text(form, "email").strip(),
        "name": _text(form, "name").strip(),
        "role": _text(form, "role"),
        "max_chats": _text(form, "max_chats").strip(),
        "department_ids": [v for v in form.getlist("department_ids") if isinstance(v, str)],
    }


@router.post("/app/settings/operators")
async def settings_operator_create(request: Request, actor: PageOperator, state: StateDep) -> Response:
    form = await request.form()
    shape = _operator_shape(form)
    try:
        body = OperatorIn.model_validate({**shape, "password": _text(form, "password")})
        hashed = await state.rt.passwords.hash_async(body.password)  # off the loop, before the unit
        async with state.rt.db.unit_of_work() as uow:
            op = await users.admin_create_operator(state.rt, uow, actor, body, password_hash=hashed)
    except (ValueError, DomainError) as exc:
        return await _failed(request, state, actor, "operators", "op-new", shape, exc)
    return _saved("/app/settings/operators", "op-new", f"op-{op.id}")


@router.post("/app/settings/operators/{operator_id}")
async def settings_operator_update(
    operator_id: str, request: Request, actor: PageOperator, state: StateDep
) -> Response:
    form = await request.form()
    shape = _operator_shape(form)
    data: dict[str, Any] = {k: shape[k] for k in ("name", "role", "max_chats", "department_ids")}
    if _text(form, "password"):
        data["password"] = _text(form, "password")
    try:
        patch = OperatorPatch.model_validate(data)
        hashed = await state.rt.passwords.hash_async(patch.password) if patch.password else None
        async with state.rt.db.unit_of_work() as uow:
            await users.update_operator(state.rt, uow, actor, operator_id, patch, password_hash=hashed)
    except (ValueError, DomainError) as exc:
        return await _failed(request, state, actor, "operators", f"op-{operator_id}", shape, exc)
    return _saved("/app/settings/operators", "op", f"op-{operator_id}")


@router.post("/app/settings/operators/{operator_id}/disabled")
async def settings_operator_disable(
    operator_id: str, request: Request, actor: PageOperator, state: StateDep
) -> Response:
    disabled = _text(await request.form(), "disabled") == "1"
    try:
        async with state.rt.db.unit_of_work() as uow:
            await users.update_operator(state.rt, uow, actor, operator_id, OperatorPatch(disabled=disabled))
    except DomainError as exc:
        return await _failed(request, state, actor, "operators", "", {}, exc)
    return _saved("/app/settings/operators", "op-disabled" if disabled else "op-enabled", f"op-{operator_id}")


# -- canned replies
@router.post("/app/settings/canned")
async def settings_canned_create(request: Request, actor: PageOperator, state: StateDep) -> Response:
    form = await request.form()
    shape = {
        "shortcut": _text(form, "shortcut").strip().lstrip("/"),
        "title": _text(form, "title").strip(),
        "text": _text(form, "text").strip(),
        "department_id": _text(form, "department_id"),
    }
    try:
        body = CannedReplyIn.model_validate({**shape, "department_id": shape["department_id"] or None})
        async with state.rt.db.unit_of_work() as uow:
            await workspaces.create_canned_reply(uow, actor, body)
    except (ValueError, DomainError) as exc:
        return await _failed(request, state, actor, "canned", "canned-new", shape, exc)
    return _saved("/app/settings/canned", "canned-new")


@router.post("/app/settings/canned/{reply_id}/delete")
async def settings_canned_delete(reply_id: str, request: Request, actor: PageOperator, state: StateDep) -> Response:
    try:
        async with state.rt.db.unit_of_work() as uow:
            await workspaces.delete_canned_reply(uow, actor, reply_id)
    except DomainError as exc:
        return await _failed(request, state, actor, "canned", "", {}, exc)
    return _saved("/app/settings/canned", "canned-deleted")


# ---------------------------------------------------------------- small helpers
def _text(form: FormData | Mapping[str, Any], key: str) -> str:
    value = form.get(key)
    return value if isinstance(value, str) else ""


def _sentence(message: str) -> str:
    message = message.strip()
    if not message:
        return message
    message = message[:1].upper() + message[1:]
    return message if message.endswith((".", "!", "?")) else message + "."


_LABELS = {
    "name": "Name",
    "allowed_origins": "Allowed origins",
    "prechat_fields": "Pre-chat field",
    "purposes": "Consent purpose",
    "privacy_policy_url": "Privacy policy URL",
    "greeting": "Greeting",
    "color": "Colour",
    "timezone": "Time zone",
    "business_hours": "Opening hours",
    "key": "key",
    "label": "label",
    "type": "type",
    "options": "options",
    "version": "version",
    "required": "required",
    "site_id": "Site",
    "strategy": "Strategy",
    "offer_timeout_s": "Offer timeout",
    "email": "E-mail",
    "password": "Password",
    "role": "Role",
    "max_chats": "Max chats",
    "department_ids": "Departments",
    "shortcut": "Shortcut",
    "title": "Title",
    "text": "Text",
    "department_id": "Department",
    "date_from": "Date from",
    "date_to": "Date to",
    "operator_id": "Operator",
    "visitor": "Visitor",
    "rating": "Rating",
    "status": "Status",
    "state": "State",
    "page": "Page",
    "per_page": "Per page",
}
_PATTERN_HINTS = {
    "key": "use lowercase letters, digits and _, starting with a letter",
    "color": "use a colour like #2563eb",
    "shortcut": "use lowercase letters, digits, - and _ (no spaces)",
}


def _where(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    i = 0
    while i < len(loc):
        item = loc[i]
        if isinstance(item, str) and i + 1 < len(loc) and isinstance(loc[i + 1], int):
            parts.append(f"{_LABELS.get(item, item)} {int(loc[i + 1]) + 1}")
            i += 2
            continue
        if isinstance(item, str):
            parts.append(_LABELS.get(item, _humanize_key(item)))
        i += 1
    return " · ".join(parts)


def _messages(exc: ValidationError) -> list[str]:
    out: list[str] = []
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        msg = str(err.get("msg", "is not valid"))
        kind = err.get("type", "")
        ctx = err.get("ctx") or {}
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if kind == "string_pattern_mismatch" and loc:
            msg = _PATTERN_HINTS.get(str(loc[-1]), "has an invalid format")
        elif kind in ("int_parsing", "int_type"):
            msg = "enter a whole number"
        elif kind == "literal_error":
            msg = "choose one of the options"
        elif kind == "missing" or (kind == "string_too_short" and ctx.get("min_length") == 1):
            msg = "is required"
        elif kind == "string_too_short":
            msg = f"use at least {ctx.get('min_length')} characters"
        elif kind == "string_too_long":
            msg = f"use at most {ctx.get('max_length')} characters"
        elif kind == "greater_than_equal":
            msg = f"must be at least {ctx.get('ge')}"
        elif kind == "less_than_equal":
            msg = f"must be at most {ctx.get('le')}"
        elif kind == "too_long":
            msg = f"at most {ctx.get('max_length')} entries"
        else:
            msg = msg[:1].lower() + msg[1:]
        where = _where(loc)
        text = f"{where}: {msg}" if where else msg[:1].upper() + msg[1:]
        out.append(text if text.endswith(".") else text + ".")
    return out


def _errors(exc: Exception) -> list[str]:
    if isinstance(exc, FormInvalid):
        return exc.messages
    if isinstance(exc, ValidationError):
        return _messages(exc)
    if isinstance(exc, DomainError):
        return [_sentence(exc.message)]
    return [_sentence(str(exc))]
