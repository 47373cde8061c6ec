"""Compressed size of the widget: what a business's visitors download."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

from bench.servers import ROOT

STATIC = ROOT / "src" / "confide" / "web" / "widget" / "static"
LAUNCHER = STATIC / "widget.js"
APP = STATIC / "app.js"


def gz_size(data: bytes) -> int:
    # mtime=0: the size must not depend on the clock (the header is 10 bytes either way)
    return len(gzip.compress(data, compresslevel=9, mtime=0))


def measure(static: Path = STATIC) -> dict[str, Any]:
    launcher, app = static / LAUNCHER.name, static / APP.name
    out: dict[str, Any] = {"launcher_gz_bytes": None, "widget_gz_bytes": None,
                           "launcher_raw_bytes": None, "app_raw_bytes": None, "app_gz_bytes": None,
                           "missing": [str(p.relative_to(ROOT)) for p in (launcher, app) if not p.exists()]}
    if launcher.exists():
        data = launcher.read_bytes()
        out["launcher_raw_bytes"] = len(data)
        out["launcher_gz_bytes"] = gz_size(data)
    if app.exists():
        out["app_raw_bytes"] = len(app.read_bytes())
        out["app_gz_bytes"] = gz_size(app.read_bytes())
    if launcher.exists() and app.exists():
        # `cat widget.js app.js | gzip -9 | wc -c`: both files as one stream
        out["widget_gz_bytes"] = gz_size(launcher.read_bytes() + app.read_bytes())
        # and as two separately served files, each with its own gzip stream
        out["widget_gz_bytes_separate"] = out["launcher_gz_bytes"] + out["app_gz_bytes"]
    return out


if __name__ == "__main__":
    import json

    print(json.dumps(measure(), indent=2))
