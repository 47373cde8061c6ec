"""The filtered lists (Stored Chats, Offline Requests): parsing filters, paging, and keeping the
filters that hold personal data out of URLs.

A visitor's name or e-mail and words of a conversation must not travel in a query string (it
lands in access logs, proxies and browser history). The filter form is POSTed; its personal
fields (``PERSONAL``) are sealed (AES-GCM, ``crypto.Sealer``) into one opaque value (``q``) bound
to the operator who searched and expiring after a few hours, and only that value and the
non-personal filters (dates, site, rating, page…) appear in the list's URLs, its pages and its
"back" links. An old link that still carries personal fields in its query is rewritten the same
way (303). Any node opens the value (no state is kept, so paging works behind any load balancer);
another operator's or an expired one is refused and the page asks for the words again.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode

from fastapi import Request
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, ValidationError

from confide import directory
from confide.auth.actors import OperatorActor
from confide.core import clock
from confide.core.db import UnitOfWork
from confide.core.errors import DomainError
from confide.core.runtime import Runtime
from confide.web.api.deps import get_state
from confide.web.dashboard.forms import LABELS, messages, sentence
from confide.web.state import State

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
PROSPECT_FILTERS = ("date_from", "date_to", "site_id", "department_id", "status", "source", "owner_id", "text")
PERSONAL = frozenset({"visitor", "text", "url"})  # never in a URL ("url": Visitor Activity's page words)
STORE_KEY = "q"
EXPIRED = "This search has expired; enter the visitor or the words again."
Search = Callable[[Runtime, UnitOfWork, OperatorActor, Any], Awaitable[tuple[list[dict[str, Any]], int]]]


FILTER_TTL_S = 4 * 3600


def seal_personal(rt: Runtime, actor: OperatorActor, values: Mapping[str, str]) -> str:
    return rt.filter_tokens.seal(dict(values), context=actor.operator_id, ttl_s=FILTER_TTL_S, now_epoch=_epoch())


def open_personal(rt: Runtime, actor: OperatorActor, ref: str) -> dict[str, str] | None:
    """Another operator's value opens to nothing: a shared link does not leak someone's search."""
    values = rt.filter_tokens.open(ref, context=actor.operator_id, now_epoch=_epoch())
    if not isinstance(values, dict):
        return None
    return {str(k): str(v) for k, v in values.items() if k in PERSONAL}


def _epoch() -> float:
    return clock.now().timestamp()


def clean_query(
    request: Request, actor: OperatorActor, params: Mapping[str, str], keys: Iterable[str]
) -> str:
    """The list's query without its personal fields: those go to the store, an id stands for them."""
    keys = tuple(keys)
    public = {k: str(params.get(k, "")).strip() for k in keys if k not in PERSONAL}
    personal = {k: str(params.get(k, "")).strip() for k in keys if k in PERSONAL}
    pairs = {k: v for k, v in public.items() if v}
    if any(personal.values()):
        pairs[STORE_KEY] = seal_personal(get_state(request).rt, actor, {k: v for k, v in personal.items() if v})
    return urlencode(pairs)


def list_redirect(
    request: Request, actor: OperatorActor, params: Mapping[str, str], keys: Iterable[str], path: str
) -> RedirectResponse:
    """303 to the list at ``path`` with the filters of ``params``, personal ones sealed (``clean_query``)."""
    query = clean_query(request, actor, params, keys)
    return RedirectResponse(path + (f"?{query}" if query else ""), status_code=303)


def has_personal(params: Mapping[str, str]) -> bool:
    return any(str(params.get(k, "")).strip() for k in PERSONAL)


def date_bound(raw: str, *, end: bool) -> datetime:
    """A date (YYYY-MM-DD, a whole UTC day) or a date-time; naive values are UTC."""
    if "T" in raw or " " in raw:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    start = datetime.combine(date.fromisoformat(raw), time.min, tzinfo=UTC)
    return start + timedelta(days=1, microseconds=-1) if end else start


def parse_filters(
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
                data[key] = date_bound(data[key], end=end)
            except (ValueError, OverflowError):
                errors.append(f"{LABELS[key]}: use a date like 2026-11-29.")
                del data[key]
    data["page"] = str(params.get("page", "1")).strip() or "1"
    try:
        filters = model.model_validate(data)
    except ValidationError as exc:
        return raw, None, errors + messages(exc)
    return raw, (filters if not errors else None), errors


def pager(path: str, base: Mapping[str, str], page: int, per_page: int, total: int) -> dict[str, Any]:
    pages = max(1, math.ceil(total / per_page))

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


def query_back(value: str, keys: Iterable[str]) -> str:
    """Re-encode a list's query string, keeping only its known non-personal keys, the store id
    and the page (a "back" link never carries personal data)."""
    allowed = {*(k for k in keys if k not in PERSONAL), "page", STORE_KEY}
    pairs = [(k, v) for k, v in parse_qsl(value or "", keep_blank_values=False) if k in allowed]
    return urlencode(pairs[:20])


async def filtered_list(
    request: Request,
    actor: OperatorActor,
    state: State,
    *,
    path: str,
    schema: type[Any],  # StoredChatFilters | OfflineFilters: both have page and per_page
    keys: tuple[str, ...],
    search: Search,
    defaults: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Stored Chats and Offline Requests alike: parse the filters, search, page, keep the filters."""
    rt = state.rt
    params: dict[str, str] = {k: v for k, v in request.query_params.items() if k not in PERSONAL}
    errors: list[str] = []
    ref = params.get(STORE_KEY, "")
    if ref:
        stored = open_personal(rt, actor, ref)
        if stored is None:
            errors.append(EXPIRED)
            ref = ""
        else:
            params.update({k: v for k, v in stored.items() if k in PERSONAL})
    raw, filters, problems = parse_filters(schema, params, keys, defaults=defaults)
    errors += problems
    context: dict[str, Any] = {"items": [], "sites": [], "departments": [], "operators": []}
    total, status_code = 0, 422 if problems else 200
    try:
        async with rt.db.unit_of_work(readonly=True) as uow:
            context.update(await directory.filter_choices(uow, actor))
            if filters is not None:
                context["items"], total = await search(rt, uow, actor, filters)
    except DomainError as exc:  # e.g. "search for words of at least two letters"
        errors.append(sentence(exc.message))
        status_code, filters = exc.status, None
    base = {k: v for k, v in raw.items() if v and k not in PERSONAL} | ({STORE_KEY: ref} if ref else {})
    context["pager"] = pager(path, base, filters.page, filters.per_page, total) if filters else None
    context["back"] = urlencode(base | ({"page": str(filters.page)} if filters else {}))
    return {**context, "raw": raw, "errors": errors, "status_code": status_code}
