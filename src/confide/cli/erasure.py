"""``confide subject erase`` and ``confide subject erase-bulk`` (ADR 0028): a preview, a
confirmation (``--yes`` to skip it), then the erasure; the bulk one in batches with a progress bar.
Exit codes: 0 done (or a dry run), 1 a domain error (not found, legal hold), 2 bad input.

``confide erasure replay [--dry-run] [--force]``: the erasure journal replayed after a database
restore (ADR 0033)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from confide.cli.subjects import app  # one `confide subject` group: find, export, erase, erase-bulk
from confide.core.runtime import Runtime
from confide.erasure import bulk, journal, replay
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


# ---------------------------------------------------------------- the erasure journal (ADR 0033)
journal_app = typer.Typer(help="The erasure journal: erasures replayed after a database restore.",
                          no_args_is_help=True)


@journal_app.command("replay")
def replay_cmd(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="show what would be erased again, change nothing")] = False,
    force: Annotated[bool, typer.Option("--force", help="replay even a journal whose chain is broken")] = False,
) -> None:
    """Erase again everyone the erasure journal names that the database brought back (run it
    after restoring a database backup; the server also does at start-up). Exit codes: 0 done or
    nothing to do, 1 a problem (a broken chain: nothing erased; certificates missing from the
    journal), 2 bad configuration."""
    from confide.cli.main import _run

    def progress(done: int, total: int) -> None:
        if done == total or done % 100 == 0:
            typer.echo(f"  {done}/{total} journal lines {'checked' if dry_run else 'replayed'}", err=True)

    async def work(rt: Runtime) -> replay.Report:
        path = rt.settings.erasure_journal_path
        typer.echo(f"erasure journal: {path}{' (dry run)' if dry_run else ''}", err=True)
        return await replay.run(rt, dry_run=dry_run, force=force, progress=progress)

    try:
        report = _run(work)
    except replay.Refused as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from None
    except journal.JournalError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except OSError as exc:
        typer.echo(f"error: the erasure journal cannot be read ({exc.strerror})", err=True)
        raise typer.Exit(1) from None
    if report.problem:
        typer.echo(f"warning: {report.problem}; replayed anyway (--force)", err=True)
    if report.torn:
        typer.echo("warning: the journal's last line was cut short by a crash and was left out", err=True)
    verb = "would" if dry_run else "did"
    if report.nothing_to_do:
        typer.echo(f"{report.lines} journal lines; the database reflects every one: nothing to do")
    else:
        typer.echo(f"{report.lines} journal lines; {len(report.replayed)} not reflected by the database "
                   f"({'would be ' if dry_run else ''}replayed):")
        typer.echo(f"  visitors erased again   {report.visitors_erased}")
        typer.echo(f"  data keys destroyed     {report.keys_destroyed}")
        typer.echo(f"  tombstones put back     {report.tombstones_restored}")
        typer.echo(f"  certificates put back   {report.certificates_restored}")
        if dry_run:
            typer.echo("dry run: nothing was erased")
        else:
            typer.echo(f"{verb} erase again: {', '.join(dict.fromkeys(report.replayed))}")
    if report.unjournaled:
        typer.echo(f"error: {len(report.unjournaled)} erasure certificates of the database are not in the journal "
                   f"(an append that failed, or erasures older than the journal), so a restore would not erase "
                   f"them again: {', '.join(report.unjournaled)}", err=True)
        raise typer.Exit(1)
