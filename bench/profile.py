"""Profile Confide under saturation: ``python -m bench.profile [--duration 20] [-o profile.txt]``.

Starts Confide like ``bench.run`` does (fresh data folder, same topology), drives it at saturation
with one load-generator process, and records the server with py-spy (``--gil``: only the thread
holding the GIL counts, so idle pool threads and GIL waits are not mistaken for work). Prints the
functions with the most samples, self and inclusive; the raw py-spy output (collapsed stacks) is
kept in ``-o``. Needs ``py-spy`` (``uv pip install py-spy``); runs as root or with ptrace rights.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from bench.relay import RelayParams, RelayTarget
from bench.servers import VENV_BIN, prefill_confide, prepare_confide, raise_nofile, start_confide


def summarize(path: Path, top: int = 40) -> str:
    total = 0
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        count = int(n)
        total += count
        frames = stack.split(";")
        own[frames[-1]] += count
        for f in set(frames):
            incl[f] += count
    out = [f"{total} samples", "-- self"]
    out += [f"{n / total:6.1%}  {f[:140]}" for f, n in own.most_common(top)]
    out += ["-- inclusive"]
    out += [f"{n / total:6.1%}  {f[:140]}" for f, n in incl.most_common(top * 2)]
    return "\n".join(out)


async def main_async(args: argparse.Namespace) -> None:
    raise_nofile()
    workdir = Path(tempfile.mkdtemp(prefix="confide-profile-"))
    server = start_confide(workdir)
    target = None
    try:
        params = RelayParams(warmup=args.warmup, duration=args.duration + 2, rounds=1)
        logins = prepare_confide(server, params.operators, max_chats=1000)
        target = RelayTarget(server, logins, params, 1, workdir)
        await target.start()
        if args.prefill:
            print(await asyncio.to_thread(prefill_confide, server, args.prefill), file=sys.stderr)
        spy = shutil.which("py-spy") or str(VENV_BIN / "py-spy")
        phase = asyncio.ensure_future(target.phase("saturate"))
        await asyncio.sleep(args.warmup)
        cmd = [spy, "record", "--pid", str(server.pid), "--duration", str(int(args.duration)), "--rate", "200",
               "--format", "raw", "-o", str(args.out), "--nonblocking"]
        if not args.all_threads:
            cmd.append("--gil")
        await asyncio.to_thread(subprocess.run, cmd, check=True, capture_output=True, timeout=args.duration + 60)
        res = await phase
        print(f"saturation: {res['msgs_per_s']} msg/s, server CPU {res['server_cpu_util']} cores, "
              f"{(res['server_cpu_util'] or 0) / max(1, res['msgs_per_s']) * 1e6:.0f} µs CPU per message",
              file=sys.stderr)
    finally:
        if target is not None:
            await target.stop()
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(summarize(args.out, args.top))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    ap.add_argument("--duration", type=int, default=20)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--prefill", type=int, default=0, help="fill the database to this many messages first")
    ap.add_argument("--all-threads", action="store_true", help="sample every thread, not only the GIL holder")
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("-o", "--out", type=Path, default=Path("profile.txt"))
    args = ap.parse_args(argv)
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
