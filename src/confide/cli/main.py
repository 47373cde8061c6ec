"""``confide``: everything an administrator does from a shell. Each command is one unit of work."""

from __future__ import annotations

import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from pydantic import ValidationError

from confide.config import Settings
from confide.core import crypto
from confide.core.errors import DomainError
from confide.core.migrate import upgrade
from confide.core.runtime import Runtime, build_runtime

app = typer.Typer(help="Confide: self-hostable, GDPR-compliant live chat.", no_args_is_help=True)
T = TypeVar("T")


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        typer.echo(f"error: bad configuration: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}", err=True)
        raise typer.Exit(2) from None


def _run(work: Callable[[Runtime], Awaitable[T]]) -> T:
    async def main() -> T:
        rt = build_runtime(_settings())
        try:
            return await work(rt)
        finally:
            await rt.close()

    try:
        return asyncio.run(main())
    except DomainError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from None
    except ValidationError as exc:
        typer.echo(f"error: {exc.errors()[0]['msg']}", err=True)
        raise typer.Exit(2) from None


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema."""
    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url)
    typer.echo("database is up to date")


@app.command()
def demo() -> None:
    """Create the demo workspace, site, department and administrator (idempotent)."""
    from confide.onboarding import create_demo

    settings = _settings()
    password = settings.admin_password.get_secret_value() if settings.admin_password else None

    async def work(rt: Runtime):  # type: ignore[no-untyped-def]
        async with rt.db.unit_of_work() as uow:
            return await create_demo(
                rt, uow, admin_email=settings.admin_email, admin_password=password, base_url=settings.base_url
            )

    result = _run(work)
    typer.echo(f"site_key: {result.site_key}")
    typer.echo(f"admin: {result.admin_email}")
    if result.admin_password:
        typer.echo(f"one-time password: {result.admin_password}  (shown once; change it after logging in)")
    elif result.created:
        typer.echo("password: the one in CONFIDE_ADMIN_PASSWORD")
    typer.echo(f"demo page: {settings.base_url}/demo   console: {settings.base_url}/app")


@app.command("create-admin")
def create_admin(
    email: Annotated[str, typer.Option(help="Login e-mail")],
    name: Annotated[str, typer.Option(help="Display name")] = "Administrator",
) -> None:
    """Create an administrator (the password is asked for, or read from CONFIDE_ADMIN_PASSWORD)."""
    from confide.onboarding import create_admin as _create

    settings = _settings()
    if settings.admin_password:
        password = settings.admin_password.get_secret_value()
    elif sys.stdin.isatty():
        password = getpass.getpass("Password (12+ characters): ")
    else:
        password = sys.stdin.readline().rstrip("\n")

    async def work(rt: Runtime) -> str:
        async with rt.db.unit_of_work() as uow:
            return (await _create(rt, uow, email=email, name=name, password=password)).id

    operator_id = _run(work)
    typer.echo(f"administrator created: {operator_id}")


@app.command("generate-key")
def generate_key() -> None:
    """Print a new master key for CONFIDE_MASTER_KEY."""
    typer.echo(crypto.generate_key())


@app.command()
def serve(
    workers: Annotated[int, typer.Option(help="Processes (needs PostgreSQL and Redis when above 1)")] = 1,
) -> None:
    """Serve Confide (uvicorn) at CONFIDE_HOST:CONFIDE_PORT."""
    import uvicorn

    settings = _settings()
    if workers > 1 and (settings.is_sqlite or not settings.redis_url):
        typer.echo("error: several workers need CONFIDE_DATABASE_URL (PostgreSQL) and CONFIDE_REDIS_URL", err=True)
        raise typer.Exit(2)
    uvicorn.run(
        "confide.asgi:app",
        factory=False,
        host=settings.host,
        port=settings.port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        ws_per_message_deflate=False,
        ws_max_size=settings.max_frame_bytes,
        log_level=settings.log_level.lower(),
        proxy_headers=False,
        server_header=False,
    )


if __name__ == "__main__":
    app()
