"""Confide benchmark suite: ``python -m bench.run`` from the repository root (``make bench``).

Writes bench/results/latest.json and prints a summary. See bench/README.md for what each
figure means and how it is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import widget_size
from bench.idle import measure_idle
from bench.relay import RelayParams, RelayTarget
from bench.servers import (
    HARNESS_ERRORS,
    ROOT,
    Server,
    machine_cpu,
    prepare_confide,
    raise_nofile,
    set_boost,
    start_confide,
    start_raw_relay,
    uvicorn_options,
)

RESULTS = ROOT / "bench" / "results" / "latest.json"

# name, description, comparison, threshold
TARGETS: list[tuple[str, str, str, float]] = [
    ("relay_ratio", "Confide/raw throughput at saturation", ">=", 0.5),
    ("relay_p99_ms_at_500", "p99 latency at 500 msg/s (ms)", "<=", 20.0),
    ("bytes_per_idle_socket", "memory per idle visitor socket (bytes)", "<=", 32768),
    ("launcher_gz_bytes", "widget.js gzip -9 (bytes)", "<=", 5120),
    ("widget_gz_bytes", "widget.js + app.js gzip -9 (bytes)", "<=", 20480),
]

GEN_BOUND_UTIL = 0.9  # a generator process above this CPU share is considered saturated
BUSY_MACHINE = 0.25  # CPU cores used by processes outside the benchmark that make a run suspect


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- context ------------------------------------------------------------------------------
def _git(*args: str) -> str | None:
    try:
        r = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def machine_info() -> dict[str, Any]:
    cpu_model = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_total = None
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_total = int(line.split()[1]) * 1024
    versions: dict[str, str | None] = {}
    for pkg in ("uvicorn", "websockets", "starlette", "fastapi", "uvloop", "httptools", "sqlalchemy",
                "aiosqlite", "confide"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "platform": platform.platform(), "cpu_model": cpu_model, "cpus": os.cpu_count(),
        "mem_total_bytes": mem_total, "python": platform.python_version(), "versions": versions,
        "loadavg_at_start": list(os.getloadavg()),
        "busy_cores_at_start": busy_cores(1.0),
    }


def boost_priority(enabled: bool) -> int | None:
    """Run the orchestrator and every server and generator at nice -10 (process and autogroup, see
    ``servers.boost``) so that other work on a shared machine disturbs the measurement less.
    Needs root; None when not possible."""
    if not enabled:
        return None
    try:
        os.setpriority(os.PRIO_PROCESS, 0, -10)
    except OSError:
        return None
    set_boost(-10)
    return -10


def busy_cores(seconds: float) -> float:
    """CPU cores kept busy by whatever runs on the machine, sampled over ``seconds``."""
    b0, t0 = machine_cpu()
    time.sleep(seconds)
    b1, t1 = machine_cpu()
    return round((b1 - b0) / max(1, t1 - t0) * (os.cpu_count() or 1), 2)


# -- relay ------------------------------------------------------------------------------
async def relay_suite(servers: list[Server], logins: dict[str, list[dict[str, str]]], params: RelayParams,
                      generators: int, workdir: Path, errors: list[str]) -> dict[str, Any]:
    """Set up every server, then run the phases in turns. A server that fails is dropped (its error is
    recorded) and the others go on."""
    targets = [RelayTarget(s, logins[s.name], params, generators, workdir) for s in servers]
    out: dict[str, Any] = {"generators": generators}
    live: list[RelayTarget] = []

    async def attempt(t: RelayTarget, what: str, step: Callable[[], Awaitable[None]]) -> None:
        try:
            await step()
        except HARNESS_ERRORS as exc:  # any failure of one server must not lose the others' figures
            errors.append(f"relay, {t.server.name}, {what}: {type(exc).__name__}: {exc}"
                          + ("" if t.server.alive() else f" (server exited; log tail:\n{t.server.log_tail(15)})"))
            log(errors[-1])
            if t in live:
                live.remove(t)
            await t.stop()

    try:
        for t in targets:
            log(f"relay: setting up {t.server.name} ({params.visitors} visitors, "
                f"{params.operators} operators, {generators} generator process(es))")
            live.append(t)
            await attempt(t, "setup", t.start)
            out[t.server.name] = {"setup": t.setup_info}

        async def phase(t: RelayTarget, kind: str) -> None:
            res = await t.phase(kind)
            if kind == "rate":
                out[t.server.name]["rate"] = res
            else:
                out[t.server.name].setdefault("saturation_rounds", []).append(res)

        for t in targets:  # not `live`: attempt() removes a failed target from it
            if t in live:
                log(f"relay: {t.server.name}: fixed load {params.rate:g} msg/s")
                await attempt(t, "fixed load", functools.partial(phase, t, "rate"))
        for r in range(params.rounds):
            for t in targets:
                if t in live:
                    log(f"relay: {t.server.name}: saturation round {r + 1}/{params.rounds}")
                    await attempt(t, "saturation", functools.partial(phase, t, "saturate"))
        for t in live:
            stats = await t.stats()
            out[t.server.name]["loadgen_stats"] = [{k: v for k, v in s.items() if k not in ("event", "cmd")}
                                                   for s in stats]
    finally:
        for t in targets:
            await t.stop()
    for t in live:
        rounds = out[t.server.name].get("saturation_rounds")
        if rounds and "rate" in out[t.server.name]:
            out[t.server.name]["saturation"] = max(rounds, key=lambda x: x["msgs_per_s"])
    for name in [n for n, v in out.items() if isinstance(v, dict) and "saturation" not in v]:
        out[name]["incomplete"] = True
    return out


def generator_bound(rel: dict[str, Any]) -> bool:
    """True when a generator, not the raw relay, limited the raw relay's saturation figure."""
    best = rel.get("raw", {}).get("saturation")
    if not best:
        return False
    return max(best["loadgen_cpu_util"]) >= GEN_BOUND_UTIL and (best["server_cpu_util"] or 0) < GEN_BOUND_UTIL


async def run_relay(args: argparse.Namespace, params: RelayParams, workdir: Path, results: dict[str, Any],
                    started: list[Server]) -> None:
    servers: list[Server] = []
    logins: dict[str, list[dict[str, str]]] = {}
    raw = start_raw_relay(workdir)
    started.append(raw)
    servers.append(raw)
    logins["raw"] = [{"email": f"op{i}@raw.test", "password": "-"} for i in range(params.operators)]
    if not args.raw_only:
        try:
            confide = start_confide(workdir)
            started.append(confide)
            logins["confide"] = prepare_confide(confide, params.operators, max_chats=1000)
            servers.append(confide)
        except HARNESS_ERRORS as exc:  # report it and still measure the raw relay
            results["errors"].append(f"Confide could not be started for the relay benchmark: {exc}")
            log(results["errors"][-1])
    generators = 1 if args.generators == "auto" else int(args.generators)
    rel = await relay_suite(servers, logins, params, generators, workdir, results["errors"])
    if args.generators == "auto" and generators == 1 and generator_bound(rel):
        note = ("one load-generator process saturated its core before the raw relay did; "
                "the relay benchmark was repeated with 2 generator processes (results merged)")
        results["notes"].append(note)
        log(note)
        results["relay_first_attempt_1_generator"] = rel
        rel = await relay_suite(servers, logins, params, 2, workdir, results["errors"])
    results["relay"] = rel
    for s in servers:
        s.stop()


def summarize_relay(results: dict[str, Any]) -> None:
    rel = results.get("relay") or {}
    for name, prefix in (("confide", "relay"), ("raw", "raw")):
        r = rel.get(name)
        if not r or r.get("incomplete"):
            continue
        sat, rate = r["saturation"], r["rate"]
        results[f"{prefix}_msgs_per_s"] = sat["msgs_per_s"]
        results[f"{prefix}_p50_ms_at_saturation"] = sat["latency"]["p50_ms"]
        results[f"{prefix}_p99_ms_at_saturation"] = sat["latency"]["p99_ms"]
        results[f"{prefix}_msgs_per_s_at_500"] = rate["msgs_per_s"]
        results[f"{prefix}_p50_ms_at_500"] = rate["latency"]["p50_ms"]
        results[f"{prefix}_p99_ms_at_500"] = rate["latency"]["p99_ms"]
        results[f"{prefix}_server_cpu_util_at_saturation"] = sat["server_cpu_util"]
        results[f"{prefix}_other_cpu_util_at_saturation"] = sat["other_cpu_util"]
        cpu = sat["server_cpu_util"]
        results[f"{prefix}_msgs_per_cpu_s_at_saturation"] = round(sat["msgs_per_s"] / cpu) if cpu else None
        busy = max((ph["other_cpu_util"] or 0) for ph in [rate, *r["saturation_rounds"]])
        if busy > BUSY_MACHINE:
            results["notes"].append(
                f"{name}: processes outside the benchmark used up to {busy:.2f} CPU cores during a measured "
                "phase: the machine was not quiet, the figures are pessimistic and noisy")
    if results.get("relay_msgs_per_s") and results.get("raw_msgs_per_s"):
        results["relay_ratio"] = round(results["relay_msgs_per_s"] / results["raw_msgs_per_s"], 3)
    if results.get("relay_msgs_per_cpu_s_at_saturation") and results.get("raw_msgs_per_cpu_s_at_saturation"):
        # less sensitive to a busy machine: messages per CPU-second of the server process
        results["relay_ratio_per_cpu"] = round(
            results["relay_msgs_per_cpu_s_at_saturation"] / results["raw_msgs_per_cpu_s_at_saturation"], 3)
    raw = rel.get("raw", {}).get("saturation")
    if raw:
        us = raw["loadgen_cpu_us_per_msg"]
        per_process = round(1e6 / us) if us else None
        conf = results.get("relay_msgs_per_s")
        results["loadgen"] = {
            "generators": rel.get("generators"),
            "cpu_util_at_raw_saturation": raw["loadgen_cpu_util"],
            "raw_server_cpu_util_at_saturation": raw["server_cpu_util"],
            "cpu_us_per_msg": us,
            "ceiling_msgs_per_s_per_process_est": per_process,
            "raw_over_confide": round(raw["msgs_per_s"] / conf, 2) if conf else None,
            "bottleneck_at_raw_saturation": "loadgen" if generator_bound(rel) else "server",
        }


# -- idle -------------------------------------------------------------------------------
async def run_idle(args: argparse.Namespace, counts: list[int], workdir: Path, results: dict[str, Any],
                   started: list[Server]) -> None:
    idle: dict[str, Any] = {}
    results["idle"] = idle
    if not args.raw_only:
        try:
            confide = start_confide(workdir)
            started.append(confide)
            logins = prepare_confide(confide, 1, max_chats=1000, own_department=True)
            log(f"idle: Confide, {max(counts)} conversations then {counts} sockets")
            idle["confide"] = await measure_idle(confide, logins, counts, workdir)
            confide.stop()
        except HARNESS_ERRORS as exc:  # report it and still measure the raw relay
            results["errors"].append(f"idle benchmark on Confide failed: {exc}")
            log(results["errors"][-1])
    raw = start_raw_relay(workdir)
    started.append(raw)
    log(f"idle: raw relay, {counts} sockets")
    idle["raw"] = await measure_idle(raw, [], counts, workdir)
    raw.stop()
    for name, prefix in (("confide", ""), ("raw", "raw_")):
        steps = {s["sockets"]: s for s in (idle.get(name) or {}).get("steps", [])}
        for n, step in steps.items():
            results[f"{prefix}bytes_per_idle_socket_{_k(n)}"] = step["bytes_per_socket"]
        if steps:
            results[f"{prefix}bytes_per_idle_socket"] = steps[max(steps)]["bytes_per_socket"]


def _k(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


# -- report -----------------------------------------------------------------------------
def evaluate_targets(results: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, desc, op, threshold in TARGETS:
        value = results.get(key)
        ok = None if value is None else (value >= threshold if op == ">=" else value <= threshold)
        out[key] = {"description": desc, "target": f"{op} {threshold:g}", "value": value, "pass": ok}
    return out


def _fmt(x: Any, unit: str = "") -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return f"{x:,.2f}{unit}" if abs(x) < 100 else f"{x:,.0f}{unit}"
    if isinstance(x, int):
        return f"{x:,}{unit}"
    return f"{x}{unit}"


def render(results: dict[str, Any]) -> str:
    p = results["params"]["relay"]
    lines = [
        (f"Confide benchmark — {results['timestamp']}  commit {results.get('git_commit') or 'none'}"
         f"{' (dirty tree)' if results.get('git_dirty') else ''}"),
        (f"machine: {results['machine']['cpus']} CPU {results['machine']['cpu_model']}, "
         f"Python {results['machine']['python']}, uvicorn {results['machine']['versions'].get('uvicorn')}; "
         f"uvicorn {' '.join(results['params']['uvicorn_options'])}"),
        (f"machine load at start: {results['machine']['busy_cores_at_start']} cores busy, loadavg "
         f"{' '.join(f'{x:.2f}' for x in results['machine']['loadavg_at_start'])}; servers and generators at "
         f"nice {results['nice'] if results['nice'] is not None else 'unchanged'}"),
        "",
        (f"Relay: {p['visitors']} visitor sockets, {p['operators']} operator sockets, {p['text_bytes']}-byte "
         f"messages, {p['warmup']:g}s warm-up + {p['duration']:g}s measured per phase; visitor rate limit "
         "lifted (CONFIDE_VISITOR_MSG_RATE/BURST=100000)"),
        f"{'':38}{'Confide':>14}{'raw relay':>14}",
    ]
    rows = [
        (f"delivered/s at {p['rate']:g} msg/s", "relay_msgs_per_s_at_500", "raw_msgs_per_s_at_500", ""),
        ("  p50 latency", "relay_p50_ms_at_500", "raw_p50_ms_at_500", " ms"),
        ("  p99 latency", "relay_p99_ms_at_500", "raw_p99_ms_at_500", " ms"),
        (f"saturation (window {p['window']}/visitor) msg/s", "relay_msgs_per_s", "raw_msgs_per_s", ""),
        ("  p50 latency", "relay_p50_ms_at_saturation", "raw_p50_ms_at_saturation", " ms"),
        ("  p99 latency", "relay_p99_ms_at_saturation", "raw_p99_ms_at_saturation", " ms"),
        ("  server CPU (cores)", "relay_server_cpu_util_at_saturation",
         "raw_server_cpu_util_at_saturation", ""),
        ("  other processes' CPU (cores)", "relay_other_cpu_util_at_saturation",
         "raw_other_cpu_util_at_saturation", ""),
        ("  msg per server CPU-second", "relay_msgs_per_cpu_s_at_saturation",
         "raw_msgs_per_cpu_s_at_saturation", ""),
    ]
    if results.get("relay_ratio_per_cpu") is not None:
        rows.append(("relay_ratio per CPU-second", "relay_ratio_per_cpu", "relay_ratio_per_cpu", ""))
    for label, a, b, unit in rows:
        lines.append(f"{label:<38}{_fmt(results.get(a), unit):>14}{_fmt(results.get(b), unit):>14}")
    lg = results.get("loadgen")
    if lg:
        utils = ", ".join(f"{u:.0%}" for u in lg["cpu_util_at_raw_saturation"])
        lines += [
            "",
            (f"Load generator: {lg['generators']} separate process(es); CPU at raw saturation {utils} of a "
             f"core (raw server {_fmt(lg['raw_server_cpu_util_at_saturation'])} cores); "
             f"{_fmt(lg['cpu_us_per_msg'])} µs CPU per message → ceiling ≈ "
             f"{_fmt(lg['ceiling_msgs_per_s_per_process_est'])} msg/s per process; raw relay = "
             f"{_fmt(lg['raw_over_confide'])}× Confide; bottleneck at raw saturation: "
             f"{lg['bottleneck_at_raw_saturation']}"),
        ]
    idle = results.get("idle") or {}
    if idle:
        lines += ["", "Idle visitor sockets (after hello/welcome): RSS growth / sockets"]
        for name, label in (("confide", "Confide"), ("raw", "raw relay")):
            d = idle.get(name)
            if not d:
                continue
            steps = ", ".join(f"{_k(s['sockets'])}: {_fmt(s['bytes_per_socket'])} B "
                              f"(Pss {_fmt(s['pss_bytes_per_socket'])} B, {s['alive_after_settle']} alive)"
                              for s in d["steps"])
            extra = ""
            if d.get("bytes_per_conversation") is not None:
                extra = f"; creating the conversations cost {_fmt(d['bytes_per_conversation'])} B each"
            lines.append(f"  {label:<10} {steps}{extra}")
    w = results.get("widget") or {}
    lines += ["", f"Widget: widget.js {_fmt(w.get('launcher_gz_bytes'))} B gz, widget.js+app.js "
                  f"{_fmt(w.get('widget_gz_bytes'))} B gz"
                  + (f" (missing: {', '.join(w['missing'])})" if w.get("missing") else "")]
    lines += ["", "Targets:"]
    for key, t in results["targets"].items():
        mark = {True: "PASS", False: "FAIL", None: "n/a "}[t["pass"]]
        lines.append(f"  [{mark}] {key:<24} {_fmt(t['value']):>12}  target {t['target']:<10} "
                     f"{t['description']}")
    for note in results["notes"]:
        lines.append(f"note: {note}")
    for err in results["errors"]:
        lines.append(f"ERROR: {err}")
    return "\n".join(lines)


# -- main -------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    d = RelayParams()
    ap.add_argument("--quick", action="store_true", help="short phases and small counts (smoke test)")
    ap.add_argument("--raw-only", action="store_true", help="benchmark only the raw relay")
    ap.add_argument("--skip-relay", action="store_true")
    ap.add_argument("--skip-idle", action="store_true")
    ap.add_argument("--visitors", type=int, default=d.visitors)
    ap.add_argument("--operators", type=int, default=d.operators)
    ap.add_argument("--rate", type=float, default=d.rate)
    ap.add_argument("--window", type=int, default=d.window)
    ap.add_argument("--warmup", type=float, default=d.warmup)
    ap.add_argument("--duration", type=float, default=d.duration)
    ap.add_argument("--rounds", type=int, default=d.rounds)
    ap.add_argument("--text-bytes", type=int, default=d.text_bytes)
    ap.add_argument("--generators", choices=["auto", "1", "2"], default="auto")
    ap.add_argument("--idle-counts", default="1000,5000")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--keep-workdir", action="store_true", help="keep server and generator logs")
    ap.add_argument("--no-boost", action="store_true",
                    help="do not raise the CPU priority of the benchmark (nice -10, needs root)")
    return ap.parse_args(argv)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    params = RelayParams(visitors=args.visitors, operators=args.operators, rate=args.rate, window=args.window,
                         warmup=args.warmup, duration=args.duration, rounds=args.rounds,
                         text_bytes=args.text_bytes)
    counts = [int(x) for x in args.idle_counts.split(",") if x.strip()]
    if args.quick:
        params.warmup, params.duration, params.rounds = 1.0, 3.0, 1
        counts = [200, 1000]
    # SIGTERM/SIGHUP (e.g. make interrupted) cancel the run like Ctrl-C does, so that every server and
    # generator process (each in its own process group) is still stopped by the finally blocks
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    if task is not None:
        for sig in (signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, task.cancel)
    t0 = time.perf_counter()
    results: dict[str, Any] = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain")),
        "machine": machine_info(),
        "params": {"relay": params.as_dict(), "idle_counts": counts, "uvicorn_options": uvicorn_options(),
                   "generators": args.generators, "quick": args.quick,
                   "confide_env": {"CONFIDE_VISITOR_MSG_RATE": "100000",
                                   "CONFIDE_VISITOR_MSG_BURST": "100000", "CONFIDE_LOG_LEVEL": "warning"}},
        "notes": [("the per-visitor message rate limit is lifted for the benchmark "
                   "(CONFIDE_VISITOR_MSG_RATE=100000, CONFIDE_VISITOR_MSG_BURST=100000)")],
        "errors": [],
        "nofile_limit": raise_nofile(),
        "nice": boost_priority(not args.no_boost),
    }
    results["widget"] = widget_size.measure()
    results["launcher_gz_bytes"] = results["widget"]["launcher_gz_bytes"]
    results["widget_gz_bytes"] = results["widget"]["widget_gz_bytes"]
    workdir = Path(tempfile.mkdtemp(prefix="confide-bench-"))
    started: list[Server] = []
    failed = False
    try:
        if not args.skip_relay:
            try:
                await run_relay(args, params, workdir, results, started)
            except HARNESS_ERRORS as exc:  # the other parts and the report still run
                failed = True
                results["errors"].append(f"relay benchmark failed: {type(exc).__name__}: {exc}")
                log(traceback.format_exc())
            summarize_relay(results)
        if not args.skip_idle:
            try:
                await run_idle(args, counts, workdir, results, started)
            except HARNESS_ERRORS as exc:  # the report is still written
                failed = True
                results["errors"].append(f"idle benchmark failed: {type(exc).__name__}: {exc}")
                log(traceback.format_exc())
    finally:
        for s in started:
            s.stop()
        if failed or results["errors"] or args.keep_workdir:
            results["workdir"] = str(workdir)
            log(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    results["targets"] = evaluate_targets(results)
    results["seconds"] = round(time.perf_counter() - t0, 1)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    else:
        runner = uvloop.run
    try:
        results = runner(run(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("benchmark interrupted; servers and load generators stopped", file=sys.stderr)
        return 130
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(render(results))
    print(f"\nwritten: {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out} "
          f"({results['seconds']:g}s)")
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
