"""Rendering one person's export with 1,000 messages in all four formats (issue 8: target ≤ 2 s together).

``python -m bench.subject_render [--messages 1000] [--rounds 3]`` (also run by ``make bench``).
The package is synthetic (``tests/export_package.big_package``: ten conversations, chat-like
messages with some non-ASCII text, and the same messages as the package's ``messages`` section,
as the subjects export builds it), so the figure is the renderer alone: no database, no
decryption. Each format is rendered ``--rounds`` times after one warm-up (fonts registered,
imports done); reported: the median seconds per format and their sum, wall and CPU. Writes
bench/results/subject_render.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from tests.export_package import big_package

from confide.subjects.render import FORMATS, render

RESULTS = Path(__file__).resolve().parent / "results" / "subject_render.json"
TARGET_S = 2.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    package = big_package(messages=args.messages)
    for fmt in FORMATS:  # warm-up: imports, fonts
        render(package, fmt)
    wall: dict[str, list[float]] = {fmt: [] for fmt in FORMATS}
    cpu: dict[str, list[float]] = {fmt: [] for fmt in FORMATS}
    sizes: dict[str, int] = {}
    for _ in range(args.rounds):
        for fmt in FORMATS:
            started, cpu_started = time.perf_counter(), time.process_time()
            sizes[fmt] = len(render(package, fmt).data)
            wall[fmt].append(time.perf_counter() - started)
            cpu[fmt].append(time.process_time() - cpu_started)
    median_wall = {fmt: statistics.median(v) for fmt, v in wall.items()}
    median_cpu = {fmt: statistics.median(v) for fmt, v in cpu.items()}
    total = sum(median_wall.values())
    result = {
        "messages": args.messages,
        "rounds": args.rounds,
        "seconds": {fmt: round(s, 3) for fmt, s in median_wall.items()},
        "cpu_seconds": {fmt: round(s, 3) for fmt, s in median_cpu.items()},
        "bytes": sizes,
        "total_seconds": round(total, 3),
        "total_cpu_seconds": round(sum(median_cpu.values()), 3),
        "target_seconds": TARGET_S,
        "pass": total <= TARGET_S,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"subject export render, {args.messages} messages (median of {args.rounds} rounds):")
    for fmt in FORMATS:
        print(f"  {fmt:5s} {median_wall[fmt]:6.3f} s  (cpu {median_cpu[fmt]:6.3f} s, {sizes[fmt] / 1024:7.1f} KiB)")
    verdict = "PASS" if total <= TARGET_S else "FAIL"
    print(f"  all four {total:6.3f} s  (target ≤ {TARGET_S:.0f} s: {verdict})")


if __name__ == "__main__":
    main()
