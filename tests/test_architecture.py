"""The dependency direction of DESIGN.md, enforced by import-linter contracts (pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_are_kept() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_web_layer_holds_no_sql() -> None:
    """Handlers are thin: no SQLAlchemy query building in web/."""
    offenders = []
    for path in (ROOT / "src" / "confide" / "web").rglob("*.py"):
        source = path.read_text()
        if "from sqlalchemy" in source or "import sqlalchemy" in source:
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
