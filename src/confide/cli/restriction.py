"""``confide subject restrict`` and ``confide subject unrestrict`` (GDPR Art. 18, ADR 0031).
Exit codes: 0 done (also when nothing had to change), 1 a domain error (visitor not found),
2 bad input (an id, a reason code)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from confide.cli.subjects import app  # one `confide subject` group
from confide.core import subject_ids
from confide.core.errors import DomainError
from confide.core.runtime import Runtime
from confide.restriction import notice
from confide.restriction import service as restriction


def _check(visitor: list[str], reason: str | None = None, request: str | None = None) -> None:
    try:
        subject_ids.visitor_ids_of(visitor, restriction.MAX_SUBJECTS)
        subject_ids.request_id_of(request)
        if reason is not None:
            restriction.reason_of(reason)
    except DomainError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from None


@app.command("restrict")
def restrict_cmd(
    workspace: Annotated[str, typer.Option("--workspace", help="the workspace id")],
    visitor: Annotated[list[str], typer.Option("--visitor", help="a visitor id of the person (repeat)")],
    reason: Annotated[str, typer.Option("--reason", help=f"one of {', '.join(restriction.REASONS)}")],
    request: Annotated[str | None, typer.Option("--request", help="the data-subject request's reference")] = None,
) -> None:
    """Restrict the processing of one person (all their visitor ids): their data is only stored."""
    from confide.cli.main import _run

    _check(visitor, reason, request)

    async def work(rt: Runtime) -> dict[str, Any]:
        async with rt.db.unit_of_work() as uow:
            return await restriction.restrict(rt, uow, None, workspace, visitor, reason=reason, request_id=request)

    done = _run(work)
    state = done["restriction"] or {}
    if done["added"]:
        typer.echo(f"restricted: {', '.join(done['added'])} (reason {reason})")
    else:
        typer.echo(f"already restricted since {state.get('since')} ({state.get('reason')}): nothing changed")


@app.command("unrestrict")
def unrestrict_cmd(
    workspace: Annotated[str, typer.Option("--workspace", help="the workspace id")],
    visitor: Annotated[list[str], typer.Option("--visitor", help="a visitor id of the person (repeat)")],
) -> None:
    """Lift the restriction of one person (it stays in their restriction history)."""
    from confide.cli.main import _run

    _check(visitor)

    async def work(rt: Runtime) -> dict[str, Any]:
        async with rt.db.unit_of_work() as uow:
            return await notice.lift_and_tell(rt, uow, None, workspace, visitor)

    done = _run(work)
    if done["lifted"]:
        typer.echo(f"restriction lifted: {', '.join(done['lifted'])}"
                   + ("; the person is told by e-mail" if done["told"] else "; no e-mail on record: tell them"))
    else:
        typer.echo("not restricted: nothing changed")
