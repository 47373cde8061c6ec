"""``confide subject erase`` and ``confide subject erase-bulk`` (ADR 0028): a preview, a
confirmation (``--yes`` to skip it), then the erasure; the bulk one in batches with a progress bar.
Exit codes: 0 done (or a dry run), 1 a domain error (not found, legal hold), 2 bad input."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from confide.cli.subjects import app  # one `confide subject` group: find, export, erase, erase-bulk
from confide.core.runtime import Runtime
from confide.erasure import bulk
from confide.erasure import service as erasure


def _counts(counts: dict[str, int]) -> None:
    for name, n in counts.items():
        typer.echo(f"  {name:<24} {n}")
    typer.echo(f"  {'total':<24} {sum(counts.values())}")


@app.command("erase")
def erase_cmd(
    workspace: Annotated[str, typer.Option("--workspace", help="the workspace id")],
    visitor: Annotated[list[str], typer.Option("--visitor", help="a visitor id of the person (repeat)")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="show what would go, change nothing")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="do not ask for confirmation")] = False,
    request: Annotated[str | None, typer.Option("--request", help="the data-subject request's reference")] = None,
    reason: Annotated[str, typer.Option("--reason", help=f"one of {', '.join(erasure.REASONS)}")] = "request",
) -> None:
    """Erase one person (all their visitor ids) for good and print the certificate."""
    from confide.cli.main import _run

    async def show(rt: Runtime) -> dict[str, int]:
        async with rt.db.unit_of_work(readonly=True) as uow:
            return await erasure.preview(rt, uow, None, workspace, visitor)

    try:
        erasure.visitor_ids_of(visitor)
        erasure.request_id_of(request)
        erasure.reason_of(reason)
    except Exception as exc:  # a bad id or code: exit 2 with the sentence
        typer.echo(f"error: {getattr(exc, 'message', exc)}", err=True)
        raise typer.Exit(2) from None
    counts = _run(show)
    typer.echo("This erasure removes:")
    _counts(counts)
    if dry_run:
        typer.echo("dry run: nothing was erased")
        return
    if not yes and not typer.confirm("Erase this person for good?", default=False):
        typer.echo("nothing was erased")
        raise typer.Exit(1)

    async def work(rt: Runtime) -> dict[str, Any]:
        async with rt.db.unit_of_work() as uow:
            cert = await erasure.erase(rt, uow, None, workspace, visitor, request_id=request, reason=reason)
            return erasure.certificate_view(cert)

    typer.echo(json.dumps(_run(work), indent=2))


def _date(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        typer.echo("error: --before must be a date such as 2026-01-31", err=True)
        raise typer.Exit(2) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


@app.command("erase-bulk")
def erase_bulk_cmd(
    site: Annotated[str, typer.Option("--site", help="the site id")],
    before: Annotated[str, typer.Option("--before", help="erase visitors with no activity since this date")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="show what would go, change nothing")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="do not ask for confirmation")] = False,
    request: Annotated[str | None, typer.Option("--request", help="a reference for the certificate")] = None,
    batch: Annotated[int, typer.Option("--batch", min=1, max=erasure.MAX_SUBJECTS)] = bulk.BATCH,
) -> None:
    """Erase every visitor of a site without activity since a date, in batches (each its own
    transaction; run it again after an interruption and it finishes the rest)."""
    from confide.cli.main import _run

    when = _date(before)

    async def show(rt: Runtime) -> dict[str, Any]:
        async with rt.db.unit_of_work(readonly=True) as uow:
            return await bulk.bulk_preview(rt, uow, None, site, when)

    found = _run(show)
    typer.echo(f"{found['subjects']} visitors of the site have had no activity since {found['before']}:")
    _counts(found["tables"])
    if dry_run or not found["subjects"]:
        typer.echo("dry run: nothing was erased" if dry_run else "nothing to erase")
        return
    if not yes and not typer.confirm("Erase them for good?", default=False):
        typer.echo("nothing was erased")
        raise typer.Exit(1)

    with typer.progressbar(length=found["subjects"], label="Erasing") as bar:
        seen = [0]

        def progress(done: int, total: int) -> None:
            bar.update(done - seen[0])
            seen[0] = done

        view = _run(lambda rt: bulk.run(rt, None, site, when, request_id=request, batch_size=batch,
                                        progress=progress))
    typer.echo(json.dumps(view, indent=2))
