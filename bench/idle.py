"""Memory per idle, authenticated visitor socket (after ``hello``/``welcome``).

The conversations are created first (for Confide, with one operator online so that the site is
staffed; the conversations stay queued, see ``prepare_confide(own_department=True)``). 20
warm-up sockets are opened and closed, then the server's RSS is read as the baseline; the visitor
sockets are opened in steps (1k, then up to 5k), and after each step the RSS growth is divided by
the number of open sockets. The cost of creating conversations is reported separately.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

from bench.control import LoadgenProcess
from bench.servers import Server, fd_count, nofile_limit, pss_bytes, rss_bytes


async def _settled_rss(pid: int, settle: float) -> tuple[int | None, int | None]:
    """Median VmRSS of three readings after ``settle`` seconds, and the Pss at the end."""
    await asyncio.sleep(settle)
    readings = []
    for _ in range(3):
        value = rss_bytes(pid)
        if value is not None:
            readings.append(value)
        await asyncio.sleep(0.3)
    return (int(statistics.median(readings)) if readings else None), pss_bytes(pid)


async def measure_idle(server: Server, logins: list[dict[str, str]], counts: list[int], workdir: Path,
                       settle: float = 2.0, warmup_sockets: int = 20) -> dict[str, Any]:
    counts = sorted(counts)
    gen = await LoadgenProcess.start(f"idle-{server.name}", workdir / f"loadgen-idle-{server.name}.log")
    pid = server.pid
    t0 = time.perf_counter()
    out: dict[str, Any] = {"server": server.name, "server_nofile_limit": nofile_limit(pid), "steps": []}
    try:
        setup = await gen.call({"cmd": "setup", "host": "127.0.0.1", "port": server.port,
                                "origin": server.origin, "site_key": server.site_key,
                                "operators": logins}, limit_s=120)
        out["loadgen_nofile_limit"] = setup.get("nofile")
        out["rss_before_conversations"], _ = await _settled_rss(pid, 0.5)
        total = counts[-1] + warmup_sockets
        created = await gen.call({"cmd": "create", "count": total, "concurrency": 8, "accept": False},
                                 limit_s=600)
        out["create"] = {k: created[k] for k in ("created", "accepted", "seconds", "http_statuses")}
        if created["created"] < total:
            raise RuntimeError(f"{server.name}: only {created['created']} of {total} conversations "
                               f"created: {created['http_statuses']}")
        if warmup_sockets:
            # one-time costs (lazy imports, statement caches, pooled DB connections and their page
            # caches) are paid by sockets opened and closed before the baseline
            await gen.call({"cmd": "open", "count": warmup_sockets, "concurrency": 64}, limit_s=300)
            await gen.call({"cmd": "close_visitors"}, limit_s=120)
            out["warmup_sockets"] = warmup_sockets
        base, base_pss = await _settled_rss(pid, settle)
        base_fds = fd_count(pid)
        out["rss_baseline"] = base
        out["pss_baseline"] = base_pss
        out["fds_baseline"] = base_fds
        if base is not None and out["rss_before_conversations"] is not None:
            out["bytes_per_conversation"] = round((base - out["rss_before_conversations"]) / total)
        opened = 0
        for count in counts:
            res = await gen.call({"cmd": "open", "count": count - opened, "concurrency": 64}, limit_s=600)
            opened = count
            rss, pss = await _settled_rss(pid, settle)
            stats = await gen.call({"cmd": "stats"})
            fds = fd_count(pid)
            step = {
                "sockets": count, "open_seconds": res["seconds"], "failures": res["failures"],
                "alive_after_settle": stats["visitors_alive"], "rss": rss, "pss": pss,
                "server_fds": fds,
                "server_fds_added": (fds - base_fds) if fds is not None and base_fds is not None else None,
                "bytes_per_socket": round((rss - base) / count) if rss is not None and base else None,
                "pss_bytes_per_socket": round((pss - base_pss) / count) if pss and base_pss else None,
            }
            out["steps"].append(step)
            if stats["visitors_alive"] < count:
                out.setdefault("problems", []).append(
                    f"only {stats['visitors_alive']} of {count} visitor sockets alive after {settle}s "
                    f"(closes: {stats['closes']})")
        out["server_alive"] = server.alive()
    finally:
        await gen.stop()
    out["seconds"] = round(time.perf_counter() - t0, 2)
    return out
