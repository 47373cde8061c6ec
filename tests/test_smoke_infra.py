from __future__ import annotations

from tests.conftest import World


async def test_healthz_on_both_databases(client, world: World) -> None:  # type: ignore[no-untyped-def]
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
