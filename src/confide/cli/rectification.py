"""``confide subject rectify`` (Art. 16, ADR 0032): correct one field of a person everywhere it is
held, after a confirmation (``--yes`` to skip it). The value is asked for when ``--value`` is not
given (so that it stays out of the shell's history). Prints ids and counts, never a value.
Exit codes: 0 done, 1 a domain error (not found) or declined, 2 bad input."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from confide.cli.subjects import app  # one `confide subject` group: find, export, erase, rectify
from confide.core.errors import DomainError
from confide.core.runtime import Runtime
from confide.erasure import service as erasure
from confide.rectification import service as rectification


@app.command("rectify")
def rectify_cmd(
    workspace: Annotated[str, typer.Option("--workspace", help="the workspace id")],
    visitor: Annotated[list[str], typer.Option("--visitor", help="a visitor id of the person (repeat)")],
    field: Annotated[str, typer.Option("--field", help="name, email, phone or answer:<key>")],
    value: Annotated[str | None, typer.Option("--value", help="the corrected value (asked when left out)")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="do not ask for confirmation")] = False,
    request: Annotated[str | None, typer.Option("--request", help="the data-subject request's reference")] = None,
    reason: Annotated[str, typer.Option("--reason", help=f"one of {', '.join(rectification.REASONS)}")] = "request",
) -> None:
    """Replace one field of a person (all their visitor ids) everywhere it is held; the person's
    data keys are rotated, so the old value is unrecoverable from backups too."""
    from confide.cli.main import _run

    if value is None:
        value = typer.prompt(f"The corrected {field}")
    try:  # every check before anything is opened: exit 2 with the sentence
        erasure.visitor_ids_of(visitor)
        erasure.request_id_of(request)
        rectification.reason_of(reason)
        rectification.cleaned(rectification.field_of(field), value)
    except DomainError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from None
    if not yes and not typer.confirm(f"Replace this person's {field} everywhere it is held?", default=False):
        typer.echo("nothing was changed")
        raise typer.Exit(1)

    async def work(rt: Runtime) -> dict[str, Any]:
        async with rt.db.unit_of_work() as uow:
            return await rectification.rectify(rt, uow, None, workspace, visitor, field, value,
                                               request_id=request, reason=reason)

    typer.echo(json.dumps(_run(work), indent=2))
