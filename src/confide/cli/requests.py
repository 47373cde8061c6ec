"""``confide requests``: data-subject requests from a shell (ADR 0029). Prints what an administrator
needs to follow the deadlines (ids, workspace, type, state, due date), never a requester's address
or words."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from confide.core.runtime import Runtime
from confide.privacy_requests import views as request_views
from confide.privacy_requests.schemas import STATES

app = typer.Typer(help="Data-subject requests (Art. 12-22): deadlines and states.", no_args_is_help=True)


@app.command("list")
def list_requests(
    overdue: Annotated[bool, typer.Option("--overdue", help="Only open requests past their due date.")] = False,
    state: Annotated[str | None, typer.Option("--state", help=f"One of: open, {', '.join(STATES)}.")] = None,
) -> None:
    """List requests, soonest due first. Exit 0 (even when none match), 2 on a bad option."""
    from confide.cli.main import _run

    if state is not None and state not in (*STATES, "open"):
        typer.echo(f"error: unknown state {state!r}; use one of: open, {', '.join(STATES)}", err=True)
        raise typer.Exit(2)

    async def work(rt: Runtime) -> list[dict[str, Any]]:
        async with rt.db.unit_of_work(readonly=True) as uow:
            return await request_views.list_all(uow, state=state, overdue=overdue)

    rows = _run(work)
    if not rows:
        typer.echo("no requests match")
        return
    typer.echo(f"{'id':<24} {'workspace':<24} {'type':<13} {'state':<11} {'due (UTC)':<17} overdue")
    for row in rows:
        due = str(row["due_at"])[:16].replace("T", " ")
        typer.echo(f"{row['id']:<24} {row['workspace_id']:<24} {row['type']:<13} {row['state']:<11} {due:<17} "
                   f"{'yes' if row['overdue'] else 'no'}")
    typer.echo(f"{len(rows)} request(s)" + (f", {sum(1 for r in rows if r['overdue'])} overdue" if not overdue else ""))
