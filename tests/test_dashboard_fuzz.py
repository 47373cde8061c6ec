"""Property-based checks of the dashboard's form posts and query strings (not in OpenAPI): whatever a
browser, or something pretending to be one, sends, the answer is a page or a redirect, never a 500.

hypothesis draws the inputs (bounded, derandomised); they are then sent to the app in process as
an administrator, so every settings form is reached."""

from __future__ import annotations

from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import World
from tests.factories import PASSWORD

SAME_ORIGIN = {"Origin": "http://testserver"}
EXAMPLES = 25

texts = st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60),
    st.sampled_from(["", " ", "0", "-1", "9" * 40, "1e999", "NaN", "2026-02-30", "9999-12-31T23:59:59-23:59",
                     "0001-01-01T00:00:00+23:59", "<script>", "a" * 5000, "\x00", "%ff", "09:00-17:00",
                     "25:00-26:00", "https://", "javascript:alert(1)", "//evil.example", "40", "41", "true"]),
)


def _form(keys: list[str]) -> st.SearchStrategy[dict[str, str]]:
    return st.fixed_dictionaries({}, optional={k: texts for k in keys})


SITE_KEYS = ["name", "origins", "privacy_policy_url", "greeting", "color", "timezone", "always_open",
             *(f"hours-{d}" for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")),
             "pf-count", "pf-0-key", "pf-0-label", "pf-0-type", "pf-0-options", "pf-0-required", "pf-0-remove",
             "pf-39-key", "pf-39-label", "pp-count", "pp-0-key", "pp-0-label", "pp-0-version"]
FORMS: dict[str, list[str]] = {
    "/login": ["email", "password", "next"],
    "/app/chats": ["date_from", "date_to", "site_id", "department_id", "operator_id", "visitor", "text", "rating",
                   "status", "page"],
    "/app/offline": ["date_from", "date_to", "site_id", "department_id", "visitor", "state", "page"],
    "/app/settings/sites": SITE_KEYS,
    "/app/settings/sites/{site}": SITE_KEYS,
    "/app/settings/departments": ["site_id", "name", "strategy", "offer_timeout_s"],
    "/app/settings/departments/{dept}": ["name", "strategy", "offer_timeout_s"],
    "/app/settings/operators": ["email", "name", "role", "max_chats", "department_ids", "password"],
    "/app/settings/operators/{op}": ["name", "role", "max_chats", "department_ids", "password"],
    "/app/settings/operators/{op}/disabled": ["disabled"],
    "/app/settings/canned": ["shortcut", "title", "text", "department_id"],
    "/app/settings/canned/{id}/delete": [],
    "/app/offline/{id}/handled": ["handled", "back"],
}
QUERIES = {
    "/app/chats": FORMS["/app/chats"] + ["q", "back"],
    "/app/offline": FORMS["/app/offline"] + ["q", "done"],
    "/app/chats/{id}": ["back"],
    "/app/settings": ["saved"],
    "/login": ["next", "bye"],
}


def _draw(strategy: st.SearchStrategy[Any], n: int = EXAMPLES) -> list[Any]:
    drawn: list[Any] = []

    @settings(max_examples=n, database=None, derandomize=True, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(value=strategy)
    def collect(value: Any) -> None:
        drawn.append(value)

    collect()
    return drawn


async def _admin(client: httpx.AsyncClient, world: World) -> None:
    response = await client.post("/login", data={"email": world.admin_email, "password": PASSWORD},
                                 headers=SAME_ORIGIN)
    assert response.status_code == 303


def _path(template: str, world: World) -> str:
    return (template.replace("{site}", world.site_id).replace("{dept}", world.department_id)
            .replace("{op}", world.operator_id).replace("{id}", "no-such-thing"))


async def test_dashboard_forms_never_answer_500(client: httpx.AsyncClient, world: World) -> None:
    await _admin(client, world)
    answered: set[int] = set()
    for template, keys in FORMS.items():
        for form in _draw(_form(keys)):
            response = await client.post(_path(template, world), data=form, headers=SAME_ORIGIN)
            assert response.status_code < 500, (template, form, response.status_code)
            answered.add(response.status_code)
        if template == "/app/settings/operators/{op}/disabled":
            await client.post(_path(template, world), data={"disabled": "0"}, headers=SAME_ORIGIN)
        await _admin(client, world)  # a fuzzed /login may have replaced the session cookie
    assert {303, 422} <= answered  # both saved and refused forms were reached


async def test_dashboard_query_strings_never_answer_500(client: httpx.AsyncClient, world: World) -> None:
    await _admin(client, world)
    for template, keys in QUERIES.items():
        for params in _draw(_form(keys)):
            response = await client.get(_path(template, world), params=params)
            assert response.status_code < 500, (template, params, response.status_code)
    raw = ["page=%ff", "q=%00%00", "back=%ED%BF%BF", "next=%ff%fe", "text=%ED%BF%BF", "date_from=%F0%9F"]
    for query in raw:
        for path in ("/app/chats", "/app/offline", "/login", f"/app/chats/x?{query}"):
            response = await client.get(f"{path}?{query}" if "?" not in path else path)
            assert response.status_code < 500, (path, query, response.status_code)


async def test_dashboard_raw_bodies_never_answer_500(client: httpx.AsyncClient, world: World) -> None:
    await _admin(client, world)
    bodies = [b"\xff\xfe=\xff", b"a=%ff&b=%ED%BF%BF", b"=" * 10_000, b"x" * 200_000, b"%" * 100]
    for body in bodies:
        for path in ("/login", "/app/settings/sites", "/app/chats", f"/app/settings/sites/{world.site_id}"):
            for kind in ("application/x-www-form-urlencoded", "multipart/form-data; boundary=zz", "text/plain"):
                response = await client.post(path, content=body, headers={**SAME_ORIGIN, "Content-Type": kind})
                assert response.status_code < 500, (path, kind, body[:30], response.status_code)
        await _admin(client, world)
