"""``confide privacy ropa --format md|csv|pdf [--out FILE] [--workspace W]``: the record of
processing activities (Art. 30) of a workspace, generated from the registry and the configuration
(ADR 0030). Exit codes: 0 written, 1 a domain error (unknown workspace, no PDF renderer in this
build), 2 bad input (unknown format, no workspace named where there are several, unwritable file)."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from confide.core.errors import Invalid
from confide.core.runtime import Runtime
from confide.ropa import model, render
from confide.workspaces import service as workspaces

_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
app = typer.Typer(help="Privacy documents: the record of processing activities (Art. 30).", no_args_is_help=True)


@app.command("ropa")
def ropa(
    fmt: Annotated[str, typer.Option("--format", help="md, csv or pdf.")] = "md",
    out: Annotated[Path | None, typer.Option("--out", help="Write to this file (default: standard output).")] = None,
    workspace: Annotated[str | None, typer.Option("--workspace", help="The workspace id (needed if several).")] = None,
) -> None:
    """Write the record of processing activities and data map of a workspace."""
    from confide.cli.main import _run

    if fmt not in render.FORMATS:
        typer.echo("error: --format takes md, csv or pdf.", err=True)
        raise typer.Exit(2)
    if workspace is not None and not _ID.match(workspace):
        typer.echo("error: --workspace takes a workspace id (letters, digits, - and _).", err=True)
        raise typer.Exit(2)

    async def work(rt: Runtime) -> dict[str, Any]:
        async with rt.db.unit_of_work(readonly=True) as uow:
            ws_id = workspace
            if ws_id is None:
                found = await workspaces.all_workspaces(uow)
                if len(found) != 1:
                    raise Invalid(f"there are {len(found)} workspaces: name one with --workspace")
                ws_id = found[0].id
            return await model.of_workspace(rt, uow, ws_id)

    record = _run(work)
    try:
        data, _, _ = asyncio.run(asyncio.to_thread(render.render, record, fmt))
    except render.PdfUnavailable as exc:
        typer.echo(f"error: {exc}.", err=True)
        raise typer.Exit(1) from None
    if out is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    try:
        out.write_bytes(data)
    except OSError as exc:
        typer.echo(f"error: cannot write {out}: {exc.strerror or 'failed'}.", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"record of processing written to {out} ({len(data)} bytes)", err=True)
