"""Latency histogram with 0.5 % relative resolution, mergeable across processes."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

_SCALE = 200.0  # buckets per e-fold: bucket width ≈ 0.5 %


class Histogram:
    """Counts of latencies (nanoseconds) in logarithmic buckets; exact min and max."""

    __slots__ = ("buckets", "count", "max_ns", "min_ns")

    def __init__(self) -> None:
        self.buckets: dict[int, int] = {}
        self.count = 0
        self.min_ns = 0
        self.max_ns = 0

    def add(self, ns: int) -> None:
        b = int(math.log(max(1000, ns)) * _SCALE)
        self.buckets[b] = self.buckets.get(b, 0) + 1
        if self.count == 0 or ns < self.min_ns:
            self.min_ns = ns
        self.max_ns = max(self.max_ns, ns)
        self.count += 1

    def to_json(self) -> dict[str, object]:
        return {"buckets": {str(k): v for k, v in self.buckets.items()}, "count": self.count,
                "min_ns": self.min_ns, "max_ns": self.max_ns}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Histogram:
        h = cls()
        buckets = data.get("buckets", {})
        assert isinstance(buckets, dict)
        h.buckets = {int(k): int(v) for k, v in buckets.items()}
        h.count = int(data.get("count", 0))  # type: ignore[call-overload]
        h.min_ns = int(data.get("min_ns", 0))  # type: ignore[call-overload]
        h.max_ns = int(data.get("max_ns", 0))  # type: ignore[call-overload]
        return h

    @classmethod
    def merge(cls, hists: Iterable[Histogram]) -> Histogram:
        out = cls()
        for h in hists:
            if h.count == 0:
                continue
            for k, v in h.buckets.items():
                out.buckets[k] = out.buckets.get(k, 0) + v
            out.min_ns = h.min_ns if out.count == 0 else min(out.min_ns, h.min_ns)
            out.max_ns = max(out.max_ns, h.max_ns)
            out.count += h.count
        return out

    def percentile_ms(self, q: float) -> float | None:
        """The q-quantile (0 < q ≤ 1) in milliseconds, bucket midpoint, clamped to [min, max]."""
        if self.count == 0:
            return None
        if q >= 1.0:
            return self.max_ns / 1e6
        target = max(1, math.ceil(q * self.count))
        seen = 0
        for b in sorted(self.buckets):
            seen += self.buckets[b]
            if seen >= target:
                ns = math.exp((b + 0.5) / _SCALE)
                return min(max(ns, self.min_ns), self.max_ns) / 1e6
        return self.max_ns / 1e6

    def summary(self) -> dict[str, float | int | None]:
        return {
            "count": self.count,
            "p50_ms": _r(self.percentile_ms(0.50)),
            "p90_ms": _r(self.percentile_ms(0.90)),
            "p99_ms": _r(self.percentile_ms(0.99)),
            "p999_ms": _r(self.percentile_ms(0.999)),
            "max_ms": _r(self.max_ns / 1e6 if self.count else None),
        }


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 3)
