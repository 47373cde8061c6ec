"""A refused operator frame is audited like an HTTP denial, and a looping client cannot flood the
log: at most ``PER_WINDOW`` rows per socket and window, then one summary (web/ws/denials.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from confide.audit.models import AuditEvent
from confide.core import clock
from confide.core.runtime import Runtime
from confide.web.ws import denials
from tests import factories
from tests import wsclient as wc
from tests.conftest import Live, World


@pytest.fixture(autouse=True)
async def _close_sockets(live: Live) -> AsyncIterator[None]:
    yield
    await wc.close_all()


async def _auditor(rt: Runtime, world: World) -> str:
    async with rt.db.unit_of_work() as uow:
        op = await factories.operator(rt, uow, workspace_id=world.workspace_id, email="aud@shop.example",
                                      name="Audrey", role="auditor")
        return op.id


async def _rows(rt: Runtime, *actions: str) -> list[AuditEvent]:
    async with rt.db.unit_of_work(readonly=True) as uow:
        stmt = select(AuditEvent).where(AuditEvent.action.in_(actions)).order_by(AuditEvent.seq)
        return list((await uow.session.scalars(stmt)).all())


async def _refused(ws: Any, frame: dict[str, Any]) -> dict[str, Any]:
    await wc.send(ws=ws, frame=frame)
    return await wc.recv_until(ws=ws, type="error", where=lambda f: f.get("ref") == frame.get("client_id"))


async def _until(rt: Runtime, count: int, *actions: str) -> list[AuditEvent]:
    for _ in range(100):
        rows = await _rows(rt, *actions)
        if len(rows) >= count:
            return rows
        await asyncio.sleep(0.02)
    return await _rows(rt, *actions)


async def test_a_frame_the_role_forbids_is_answered_and_audited_once(rt: Runtime, world: World, live: Live) -> None:
    auditor = await _auditor(rt, world)
    ws, _welcome, _cookie = await wc.operator_connect(live=live, email="aud@shop.example")
    error = await _refused(ws, {"type": "accept", "conversation_id": "c" * 22, "client_id": "k1"})
    assert error["code"] == "not_found"  # a refusal looks like absence (protocol.md)
    assert error["message"] == "you do not have permission to do this"
    await wc.frames_until_pong(ws=ws)  # the row is written before the next frame is read
    (row,) = await _rows(rt, denials.DENIED)
    assert (row.actor_type, row.actor_id, row.workspace_id) == ("operator", auditor, world.workspace_id)
    assert (row.outcome, row.target_type, row.target_id) == ("denied", "frame", "operator:accept")
    assert json.loads(row.detail) == {"method": "WS"}
    # An allowed frame (ping) writes nothing; the refused frame's values never reach the row.
    await _refused(ws, {"type": "transfer", "conversation_id": "c" * 22, "operator_id": "qq7canary", "client_id": "k2"})
    await wc.frames_until_pong(ws=ws)
    rows = await _rows(rt, denials.DENIED)
    assert [r.target_id for r in rows] == ["operator:accept", "operator:transfer"]
    assert all("qq7canary" not in f"{r.detail}{r.target_id}" for r in rows)


async def test_a_looping_client_gets_a_bounded_number_of_rows_then_one_summary(
    rt: Runtime, world: World, live: Live
) -> None:
    await _auditor(rt, world)
    ws, _welcome, _cookie = await wc.operator_connect(live=live, email="aud@shop.example")
    for i in range(denials.PER_WINDOW + 20):
        await wc.send(ws=ws, frame={"type": "status", "status": "online", "client_id": f"s{i}"})
    await wc.recv_until(ws=ws, type="error", where=wc.has(ref=f"s{denials.PER_WINDOW + 19}"))
    await wc.frames_until_pong(ws=ws)
    assert len(await _rows(rt, denials.DENIED)) == denials.PER_WINDOW
    assert await _rows(rt, denials.SUPPRESSED) == []
    # The window is over: the next denial first writes the summary of what was left out.
    clock.advance(timedelta(seconds=denials.WINDOW_S))
    await _refused(ws, {"type": "status", "status": "away", "client_id": "late"})
    await wc.frames_until_pong(ws=ws)
    (summary,) = await _rows(rt, denials.SUPPRESSED)
    assert json.loads(summary.detail) == {"suppressed": 20, "window_s": denials.WINDOW_S}
    assert (summary.outcome, summary.target_type, summary.target_id) == ("denied", "frame", "operator")
    assert len(await _rows(rt, denials.DENIED)) == denials.PER_WINDOW + 1
    # Spent again, then the socket closes: the summary is written at the close.
    for i in range(denials.PER_WINDOW + 2):
        await wc.send(ws=ws, frame={"type": "typing", "conversation_id": "x", "on": True, "client_id": f"t{i}"})
    await wc.frames_until_pong(ws=ws)
    await ws.close()
    rows = await _until(rt, 2, denials.SUPPRESSED)
    assert [json.loads(r.detail)["suppressed"] for r in rows] == [20, 3]
    assert len(await _rows(rt, denials.DENIED)) == 2 * denials.PER_WINDOW


async def test_an_operator_allowed_to_chat_writes_no_denial(rt: Runtime, world: World, live: Live) -> None:
    ws, _welcome, _cookie = await wc.operator_connect(live=live, email=world.operator_email)
    await wc.go_online(ws=ws)
    await wc.frames_until_pong(ws=ws)
    assert await _rows(rt, denials.DENIED, denials.SUPPRESSED) == []


class _Socket:
    """What the dispatcher needs of a connection: the runtime, an outbox (sending into a list) and
    the current operator. The handler below stands for a service that refuses the frame."""

    def __init__(self, rt: Runtime, actor: Any) -> None:
        self.rt = rt
        self.actor = actor
        self.sent: list[str] = []

        async def send(text: str) -> None:
            self.sent.append(text)

        async def close(_code: int) -> None:
            return None

        from confide.realtime.outbox import Outbox

        self.outbox = Outbox(send, close, 16)

    def log_id(self) -> dict[str, str]:
        return {"operator_id": self.actor.operator_id}


async def test_a_frame_the_service_refuses_is_audited_and_its_unit_rolled_back(rt: Runtime, world: World) -> None:
    from confide.audit import service as audit
    from confide.core.db import UnitOfWork
    from confide.core.errors import Forbidden
    from confide.web.ws.dispatch import Dispatcher
    from confide.web.ws.schemas import History
    from tests.helpers_api import actor

    refusing = Dispatcher[Any]("operator")

    @refusing.unit(History, "write")
    async def _refuse(conn: Any, uow: UnitOfWork, frame: History) -> None:
        await audit.record(conn.rt, uow, "chats.viewed", actor=conn.actor, target_type="conversation",
                           target_id=frame.conversation_id)  # written by the unit, then rolled back
        raise Forbidden("you do not have permission to do this")

    sock = _Socket(rt, await actor(rt, world.operator_id))
    await refusing.dispatch(sock, History(type="history", conversation_id="c" * 22, after_seq=0))
    await asyncio.sleep(0.05)
    assert json.loads(sock.sent[0])["code"] == "not_found"
    (row,) = await _rows(rt, denials.DENIED, "chats.viewed")
    assert (row.action, row.target_type, row.target_id) == (denials.DENIED, "frame", "operator:history")
    await refusing.closed(sock)
    assert await _rows(rt, denials.SUPPRESSED) == []
