"""``confide retention run [--dry-run] [--workspace W]``: the retention sweep from a shell (ADR 0030).

Each batch is one transaction (``retention.sweep``); progress is printed per category as batches
go, then a summary table. Exit codes: 0 done (or nothing to do), 1 a domain error (an unknown
workspace), 2 bad input."""

from __future__ import annotations

import re
from typing import Annotated

import typer

from confide.core.runtime import Runtime
from confide.retention import sweep
from confide.retention.categories import INFO, Category, describe

_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
app = typer.Typer(help="Retention of personal data: the sweep of what is past its period.", no_args_is_help=True)


def _where(line: sweep.Line) -> str:
    if line.workspace_id is None:
        return "installation"
    return f"{line.workspace_id}/{line.site_id or '-'}"


@app.command("run")
def run(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would be deleted; delete nothing.")] = False,
    workspace: Annotated[str | None, typer.Option("--workspace", help="Only this workspace (its id).")] = None,
) -> None:
    """Delete (or with --dry-run, count) everything past its retention period, in batches."""
    from confide.cli.main import _run

    if workspace is not None and not _ID.match(workspace):
        typer.echo("error: --workspace takes a workspace id (letters, digits, - and _).", err=True)
        raise typer.Exit(2)
    verb = "would delete" if dry_run else "deleted"

    def progress(line: sweep.Line) -> None:
        typer.echo(f"  {line.category:<10} {_where(line):<70} {verb} {line.removed}", err=True)

    async def work(rt: Runtime) -> sweep.Report:
        typer.echo(f"retention sweep{' (dry run)' if dry_run else ''}: batches of {rt.settings.retention_batch}",
                   err=True)
        return await sweep.run(rt, workspace_id=workspace, dry_run=dry_run, progress=progress)

    report = _run(work)
    totals = report.totals()
    typer.echo(f"{'category':<12} {'period':<24} {'would delete' if dry_run else 'deleted':>12}")
    periods: dict[str, set[int]] = {}
    for line in report.lines:
        periods.setdefault(line.category, set()).add(line.days)
    for category in Category:
        days = periods.get(category.value)
        if days is None:
            period = "no store" if not INFO[category].store else "kept forever / not swept"
        elif len(days) == 1:
            period = describe(next(iter(days)))
        else:
            period = "per site"
        typer.echo(f"{category.value:<12} {period:<24} {totals[category.value]:>12}")
    typer.echo(f"{'total':<12} {'':<24} {report.total:>12}")
