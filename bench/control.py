"""The orchestrator's handle on a load-generator process (bench/loadgen.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from bench.servers import ROOT, boost


class LoadgenError(RuntimeError):
    pass


class LoadgenProcess:
    """A ``python -m bench.loadgen`` child in its own process group, driven by JSON lines."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process, log_path: Path) -> None:
        self.name = name
        self.proc = proc
        self.log_path = log_path

    @classmethod
    async def start(cls, name: str, log_path: Path) -> LoadgenProcess:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with log_path.open("ab") as log:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.loadgen", cwd=ROOT, env=env,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=log,
                start_new_session=True, limit=1 << 25,
            )
        boost(proc.pid)
        return cls(name, proc, log_path)

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def call(self, cmd: dict[str, Any], limit_s: float = 120.0) -> dict[str, Any]:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        await self.proc.stdin.drain()
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), limit_s)
        except TimeoutError:
            raise LoadgenError(f"{self.name}: no answer to {cmd.get('cmd')} within {limit_s}s") from None
        if not line:
            raise LoadgenError(f"{self.name} exited during {cmd.get('cmd')}; stderr:\n{self.log_tail()}")
        resp: dict[str, Any] = json.loads(line)
        if resp.get("event") == "error":
            raise LoadgenError(f"{self.name}: {cmd.get('cmd')} failed: {resp.get('error')}")
        return resp

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    async def stop(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(Exception):
                await self.call({"cmd": "quit"}, limit_s=10)
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                await self.proc.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)


async def call_all(gens: list[LoadgenProcess], cmds: list[dict[str, Any]],
                   limit_s: float = 120.0) -> list[dict[str, Any]]:
    return list(await asyncio.gather(*(g.call(c, limit_s) for g, c in zip(gens, cmds, strict=True))))
