"""Property-based fuzzing of the HTTP API: schemathesis against the app's own ``/openapi.json``, in
process (its ASGI transport), every operation, valid and invalid inputs, a bounded number of examples
each. No answer may be a 5xx, and every answer must be documented (status code, content type,
body schema). Logged in as an administrator, so the protected operations are reached too.
"""

from __future__ import annotations

import asyncio
from typing import Any

import hypothesis
import hypothesis.errors
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.python import asgi as schemathesis_asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from confide.app import create_app
from confide.config import Settings
from tests.conftest import World
from tests.factories import PASSWORD

EXAMPLES = 12  # per operation and mode: bounded, so the suite stays fast
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
SKIPPED = {("POST", "/api/v1/auth/logout")}  # would end the session the rest of the run uses (tested elsewhere)


def _fuzz(settings: Settings, world: World) -> list[str]:
    app = create_app(settings.model_copy(update={"run_worker": False}))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    with schemathesis_asgi.get_client(app) as client:
        login = client.post("/api/v1/auth/login", json={"email": world.admin_email, "password": PASSWORD},
                            headers={"Origin": "http://testserver"})
        assert login.status_code == 200, login.text
        cookie = login.cookies.get("confide_session")
    assert cookie
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in SKIPPED:
            continue
        operations += 1
        widget = operation.path.startswith("/api/v1/widget/")
        session = requests.Session()
        session.headers["Origin"] = world.origin if widget else "http://testserver"
        session.headers["Cookie"] = f"confide_session={cookie}"
        fixed: list[dict[str, Any] | None] = [None]
        if widget:
            fixed.append({"site_key": world.site_key})  # reach the handler, not only "no such site"
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for path_parameters in fixed:
                strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)

                def make(session: requests.Session, strategy: Any) -> Any:
                    @hypothesis.settings(max_examples=EXAMPLES, deadline=None, database=None,
                                         suppress_health_check=list(HealthCheck),
                                         phases=[Phase.explicit, Phase.generate], derandomize=True)
                    @hypothesis.given(case=strategy)
                    def run(case: Any) -> None:
                        case.call_and_validate(session=session, checks=CHECKS)

                    return run

                try:
                    make(session, strategy)()
                except hypothesis.errors.Unsatisfiable:
                    continue  # no invalid input exists (no parameters, or any string is a valid id)
                except Exception as exc:  # collect them all: one report lists every problem
                    failures.append(f"{operation.method.upper()} {operation.path} [{mode.value}]: "
                                    f"{type(exc).__name__}: {str(exc)[:1200]}")
    schemathesis_asgi.shutdown_lifespans()
    assert operations >= 20, operations
    return failures


async def test_every_operation_answers_as_documented(settings: Settings, world: World) -> None:
    failures = await asyncio.to_thread(_fuzz, settings, world)
    assert failures == [], "\n\n".join(failures)


HOSTILE_BODIES = [
    b"[" * 100_000 + b"]" * 100_000,  # nesting deeper than any parser's recursion
    b'{"email": 1e999999, "password": "x"}',  # infinity
    b'{"email": -1e999999, "password": NaN}',
    b'{"email": "\\ud800@example.com", "password": "x"}',  # a lone surrogate
    b'{"email": "a@b.cc", "password": "\xff\xfe"}',  # not UTF-8
    b'{"email": "a@b.cc", "password": ' + b'"x' * 1 + b"y" * 2_000_000 + b'"}',  # big
    b'{"fields": {"name": {"a": [[[[[[[[[[{}]]]]]]]]]]}}, "consents": []}',
    b'{"fields": {"\\udfff": "x"}, "consents": {"\\ud800": true}, "page_url": "http://[::1"}',
    b'{"fields": {"name": "A", "email": "a@b.cc"}, "consents": {}, "department_id": 123456789012345678901234567890}',
    b"\x00\x01\x02",
]


async def test_hostile_bodies_get_a_documented_4xx(client: Any, world: World) -> None:
    from tests.helpers_api import SELF, login

    assert (await login(client, world.admin_email)).status_code == 200
    widget = {"Origin": world.origin}
    targets = [("/api/v1/auth/login", SELF), (f"/api/v1/widget/{world.site_key}/conversations", widget),
               (f"/api/v1/widget/{world.site_key}/offline-requests", widget),
               (f"/api/v1/widget/{world.site_key}/activity", widget),  # ---- activity
               ("/api/v1/sites", SELF), ("/api/v1/operators", SELF), ("/api/v1/canned-replies", SELF)]
    for path, headers in targets:
        for body in HOSTILE_BODIES:
            response = await client.post(path, content=body, headers={**headers, "Content-Type": "application/json"})
            assert 400 <= response.status_code < 500, (path, body[:60], response.status_code, response.text[:200])
            detail = response.json()["detail"]
            assert isinstance(detail, str | list)
            assert "y" * 1000 not in response.text  # the input is not echoed back
    for query in ({"page": "9" * 40}, {"page": "-1"}, {"per_page": "1e9"}, {"date_from": "0001-01-01T00:00:00-23:59"},
                  {"date_to": "9999-12-31T23:59:59.999999-23:59"}, {"rating": "NaN"}, {"text": "%ED%BF%BF%FF"},
                  {"visitor": "%00" * 10}):
        raw = "&".join(f"{k}={v}" for k, v in query.items())
        response = await client.get(f"/api/v1/conversations?{raw}")
        assert response.status_code in (200, 422), (query, response.status_code, response.text[:200])
