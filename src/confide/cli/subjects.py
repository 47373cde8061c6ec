"""``confide subject find|export``: find a person and write their export, as a named staff member;
``confide subject reindex``: rebuild visitors' and prospects' name and phone terms after an upgrade.

Find and export act as the operator given by ``--as`` (their log-in e-mail), who must hold ``subjects.view``
(find) or ``subjects.export`` (export) in the workspace ``--workspace``: the same permission check
and the same audit rows (read-access log, ``subject.exported``) as the back office. Exit codes: 0
done, 1 refused or not found (a sentence on stderr), 2 bad input.

Reindex is maintenance with no person in view (the system is its actor, like ``confide retention
run``): exit codes 0 done, 2 bad input or an unknown workspace (a sentence on stderr).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from confide.auth.actors import OperatorActor
from confide.core.errors import NotFound
from confide.core.runtime import Runtime
from confide.prospects import reindex as prospect_reindex
from confide.subjects import export, find
from confide.subjects.schemas import ExportIn, FindIn
from confide.users import operators as user_operators
from confide.users import sessions as user_sessions
from confide.visitors import reindex

app = typer.Typer(
    help="Data subjects: find a person, export everything held about them, erase them.", no_args_is_help=True
)

Workspace = Annotated[str, typer.Option("--workspace", help="The workspace's id")]
As = Annotated[str, typer.Option("--as", help="Your log-in e-mail (an account holding the permission)")]


async def _actor(rt: Runtime, workspace_id: str, email: str) -> OperatorActor:
    async with rt.db.unit_of_work(readonly=True) as uow:
        op = await user_operators.operator_by_email(uow, email.strip().lower())
        if op is None or op.workspace_id != workspace_id:
            raise NotFound("no such account in that workspace")
        return await user_sessions.actor_for(uow, op.id)


def _bad(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


@app.command("find")
def find_command(
    workspace: Workspace,
    as_: As,
    email: Annotated[str | None, typer.Option("--email")] = None,
    phone: Annotated[str | None, typer.Option("--phone")] = None,
    name: Annotated[str | None, typer.Option("--name")] = None,
    visitor: Annotated[str | None, typer.Option("--visitor", help="A visitor id")] = None,
    verified: Annotated[str | None, typer.Option("--verified", help="A site's user id (verified identity)")] = None,
    word: Annotated[str | None, typer.Option("--word", help="Words said in a chat")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON")] = False,
) -> None:
    """Find a person by one of --email, --phone, --name, --visitor, --verified or --word; visits sharing an
    e-mail or a verified identity are grouped into one person, with the rows held per store."""
    from confide.cli.main import _run

    given = {k: v for k, v in (("email", email), ("phone", phone), ("name", name), ("visitor", visitor),
                               ("verified", verified), ("word", word)) if v is not None}
    if len(given) != 1:
        raise _bad("give exactly one of --email, --phone, --name, --visitor, --verified, --word")
    ((by, value),) = given.items()
    try:
        query = FindIn(by=by, value=value)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise _bad(f"{by}: {exc.errors()[0]['msg']}") from None

    async def work(rt: Runtime) -> list[find.Person]:
        staff = await _actor(rt, workspace, as_)
        async with rt.db.unit_of_work() as uow:
            return await find.find(rt, uow, staff, query, via="cli")

    persons = _run(work)
    if as_json:
        typer.echo(json.dumps({"persons": [p.view() for p in persons]}, ensure_ascii=False, indent=2))
        return
    if not persons:
        typer.echo("nobody matches in this workspace")
        return
    for i, person in enumerate(persons, 1):
        view = person.view()
        typer.echo(f"person {i}: visitors {', '.join(view['visitor_ids']) or '-'}"
                   + (f"; prospects {', '.join(view['prospect_ids'])}" if view["prospect_ids"] else ""))
        for store in view["stores"]:
            typer.echo(f"  {store['title']}: {store['count']}")


@app.command("export")
def export_command(
    workspace: Workspace,
    as_: As,
    out: Annotated[Path, typer.Option("--out", help="Where to write the export")],
    visitor: Annotated[list[str] | None, typer.Option("--visitor", help="A visitor id of the person (repeat)")] = None,
    prospect: Annotated[list[str] | None, typer.Option("--prospect", help="A hand-entered prospect id")] = None,
    fmt: Annotated[str, typer.Option("--format", help="json (csv, xlsx, pdf with the renderer)")] = "json",
    searched_by: Annotated[str, typer.Option("--searched-by", help="How the person was found")] = "visitor",
) -> None:
    """Write everything held about one person (their visitor ids, as `subject find` grouped them)."""
    from confide.cli.main import _run

    try:
        body = ExportIn(visitor_ids=list(visitor or []), prospect_ids=list(prospect or []),
                        fmt=fmt, searched_by=searched_by)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise _bad(f"{'.'.join(str(p) for p in exc.errors()[0]['loc'])}: {exc.errors()[0]['msg']}") from None
    if out.exists() and out.is_dir():
        raise _bad(f"{out} is a folder; give a file name")

    async def work(rt: Runtime) -> export.Delivered:
        staff = await _actor(rt, workspace, as_)
        typer.echo("collecting and decrypting ...", err=True)
        return await export.export_person(rt, staff, body, via="cli")

    delivered = _run(work)
    out.write_bytes(delivered.data)
    typer.echo(f"wrote {out} ({len(delivered.data)} bytes, {delivered.content_type})")


_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@app.command("reindex")
def reindex_command(
    workspace: Annotated[str | None, typer.Option("--workspace", help="Only this workspace (its id)")] = None,
    batch: Annotated[int, typer.Option("--batch", min=1, max=5000,
                                       help="Visitors (then prospects) per transaction")] = reindex.BATCH,
) -> None:
    """Rebuild the name and phone terms of every visitor, then the terms (name and company words,
    phone) of every prospect (of one workspace, or of all) from what is held now, in batches:
    after an upgrade, visitors and prospects indexed before Find a person by phone are found by
    phone too. Running it again changes nothing."""
    from confide.cli.main import _run

    if workspace is not None and not _ID.match(workspace):
        raise _bad("--workspace takes a workspace id (letters, digits, - and _)")

    def progress(kind: str) -> reindex.Progress:
        def say(workspace_id: str, done: int, total: int) -> None:
            typer.echo(f"  {workspace_id}: {done}/{total} {kind}", err=True)

        return say

    async def work(rt: Runtime) -> tuple[reindex.Report, prospect_reindex.Report]:
        try:
            seen = await reindex.run(rt, workspace_id=workspace, batch_size=batch, progress=progress("visitors"))
        except NotFound:  # the one thing ``run`` refuses, before anything is written
            if workspace is None:
                raise
            raise _bad(f"no workspace has the id {workspace}; nothing was changed") from None
        leads = await prospect_reindex.run(rt, workspace_id=workspace, batch_size=batch,
                                           progress=progress("prospects"))
        return seen, leads

    report, prospects = _run(work)
    typer.echo(f"{report.visitors} visitors in {report.workspaces} workspaces: terms rebuilt for {report.changed}, "
               f"{report.unreadable} unreadable (their key is destroyed), the rest already up to date")
    typer.echo(f"{prospects.prospects} prospects in {prospects.workspaces} workspaces: terms rebuilt for "
               f"{prospects.changed}, {prospects.unreadable} unreadable (their key is destroyed), "
               "the rest already up to date")
