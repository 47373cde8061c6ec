"""``confide``: everything an administrator does from a shell. Each command is one unit of work."""

from __future__ import annotations

import asyncio
import getpass
import os
import ssl
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError

from confide.auth import passwords
from confide.cli import subjects as subjects_cli
from confide.cli.requests import app as requests_app
from confide.config import Settings
from confide.core import crypto
from confide.core.errors import DomainError, Invalid
from confide.core.logging import configure as configure_logging
from confide.core.migrate import upgrade
from confide.core.runtime import Runtime, build_runtime

app = typer.Typer(help="Confide: self-hostable, GDPR-compliant live chat.", no_args_is_help=True)
T = TypeVar("T")
MIN_PASSWORD = passwords.MIN_LENGTH  # the floor; a workspace may ask for more
MAX_PASSWORD = passwords.MAX_LENGTH


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
        password = getpass.getpass(f"Password ({MIN_PASSWORD}+ characters): ")
    else:
        password = sys.stdin.readline().rstrip("\n")

    async def work(rt: Runtime) -> str:
        from confide.audit import service as audit

        async with rt.db.unit_of_work() as uow:
            op = await _create(rt, uow, email=email, name=name, password=password)
            await audit.record(rt, uow, "users.created", actor_type="system", workspace_id=op.workspace_id,
                               target_type="operator", target_id=op.id, detail={"via": "cli", "role": op.role})
            return op.id

    operator_id = _run(work)
    typer.echo(f"administrator created: {operator_id}")


@app.command("reset-password")
def reset_password(
    email: Annotated[str, typer.Argument(help="The account's log-in e-mail")],
    generate: Annotated[bool, typer.Option("--generate", help="Generate a password and print it once")] = False,
) -> None:
    """Set a new password for an account: it must be changed at the next log-in; every session ends
    and the account's log-in throttle is cleared.

    The password is read from CONFIDE_ADMIN_PASSWORD, or generated (--generate, printed once), or
    asked for (twice, on a terminal), or read as one line from standard input. It must pass the
    workspace's password policy (length, not a common or breached password, none of the last ones)."""
    from confide.users import passwords as user_passwords

    settings = _settings()
    generated = False
    if settings.admin_password:
        password = settings.admin_password.get_secret_value()
    elif generate:
        password, generated = crypto.random_token(12), True
    elif sys.stdin.isatty():
        password = getpass.getpass(f"New password ({MIN_PASSWORD}+ characters): ")
        if getpass.getpass("Once more: ") != password:
            typer.echo("error: the two passwords differ; nothing was changed", err=True)
            raise typer.Exit(2)
    else:
        password = sys.stdin.readline().rstrip("\n")
    if len(password) < MIN_PASSWORD or len(password) > MAX_PASSWORD:
        typer.echo(
            f"error: the password must have {MIN_PASSWORD} to {MAX_PASSWORD} characters; nothing was changed", err=True
        )
        raise typer.Exit(2)

    async def work(rt: Runtime) -> str:
        # The history check and the hash run before the writing unit: no lock held meanwhile.
        async with rt.db.unit_of_work(readonly=True) as uow:
            history = await user_passwords.password_history_of_email(uow, email)
        if await rt.passwords.matches_any_async(history, password):
            raise Invalid("this password was used recently on this account; choose another")
        hashed = await rt.passwords.hash_async(password)
        async with rt.db.unit_of_work() as uow:
            op = await user_passwords.reset_password(rt, uow, email=email, password=password, password_hash=hashed)
            return op.id

    operator_id = _run(work)
    typer.echo(
        f"password reset for operator {operator_id}; their sessions have ended, the log-in throttle is cleared,"
        " and they must choose a new password at their next log-in"
    )
    if generated:
        typer.echo(f"new password: {password}  (shown once; to be changed at the next log-in)")


# ---------------------------------------------------------------- confide audit (audit helper)
audit_app = typer.Typer(help="The audit log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify() -> None:
    """Prove the audit log's chain (exit 0), or name its first broken row (exit 1)."""
    from confide.audit import service as audit

    async def work(rt: Runtime) -> audit.Verification:
        async with rt.db.unit_of_work(readonly=True) as uow:
            return await audit.verify(rt, uow)

    result = _run(work)
    if not result.ok:
        typer.echo(result.sentence(), err=True)
        raise typer.Exit(1)
    typer.echo(result.sentence())


@app.command("reset-two-factor")
def reset_two_factor(email: Annotated[str, typer.Argument(help="The account's log-in e-mail")]) -> None:
    """Remove an account's second factors (app, passkeys, recovery codes) and end its sessions (ADR 0014)."""
    from confide.two_factor import service as two_factor

    async def work(rt: Runtime) -> str:
        async with rt.db.unit_of_work() as uow:
            return await two_factor.reset_factors(rt, uow, email=email)

    operator_id = _run(work)
    typer.echo(f"two-factor removed for operator {operator_id}; their sessions have ended")


@app.command("generate-key")
def generate_key() -> None:
    """Print a new master key for CONFIDE_MASTER_KEY."""
    typer.echo(crypto.generate_key())


@app.command()
def serve(
    workers: Annotated[int, typer.Option(help="Processes (needs PostgreSQL and Redis when above 1)")] = 1,
    tls_cert: Annotated[
        Path | None, typer.Option("--tls-cert", help="Serve https with this PEM certificate (chain); needs --tls-key")
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option("--tls-key", help="The certificate's PEM private key, unencrypted")
    ] = None,
) -> None:
    """Serve Confide (uvicorn) at CONFIDE_HOST:CONFIDE_PORT, over https with --tls-cert and --tls-key
    (or CONFIDE_TLS_CERT / CONFIDE_TLS_KEY)."""
    import uvicorn

    if (tls_cert is None) != (tls_key is None):
        typer.echo("error: give both --tls-cert and --tls-key", err=True)
        raise typer.Exit(2)
    if tls_cert is not None and tls_key is not None:
        _check_tls(tls_cert, tls_key)
        # The app (and every worker) reads its settings from the environment: TLS is said there.
        os.environ["CONFIDE_TLS_CERT"] = str(tls_cert)
        os.environ["CONFIDE_TLS_KEY"] = str(tls_key)
    settings = _settings()
    if workers > 1 and (settings.is_sqlite or not settings.redis_url):
        typer.echo("error: several workers need CONFIDE_DATABASE_URL (PostgreSQL) and CONFIDE_REDIS_URL", err=True)
        raise typer.Exit(2)
    if settings.tls_cert is not None and settings.tls_key is not None:
        _check_tls(settings.tls_cert, settings.tls_key)
    configure_logging(settings.log_level, json=settings.log_json)
    scheme = "https" if settings.tls_cert else "http"
    typer.echo(f"serving Confide at {scheme}://{settings.host}:{settings.port}")
    uvicorn.run("confide.asgi:app", factory=False, workers=workers, **server_options(settings))


def _check_tls(cert: Path, key: Path) -> None:
    problem = tls_problem(cert, key)
    if problem:
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(2)


def tls_problem(cert: Path, key: Path) -> str | None:
    """Why this certificate and key cannot serve https (a sentence naming the file), or None."""
    for flag, path in (("--tls-cert", cert), ("--tls-key", key)):
        if not path.is_file():
            return f"{flag} {path}: no such file"
        try:
            path.read_bytes()
        except OSError as exc:
            return f"{flag} {path}: cannot be read ({exc.strerror or exc})"
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key, password=lambda: "")  # an encrypted key fails instead of prompting
    except (ssl.SSLError, ValueError) as exc:
        return f"the TLS certificate {cert} and key {key} cannot be used together ({exc.__class__.__name__}: {exc})"
    return None


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options for ``serve`` (the log-scan test serves with exactly these).

    ``access_log=False`` and ``log_config=None``: uvicorn's access log prints client addresses and
    full query strings, and its own logging set-up would bypass Confide's privacy filter; Confide's
    access log (``web/access_log.py``) and ``core/logging.py`` replace both."""
    return {
        "host": settings.host,
        "port": settings.port,
        "loop": "uvloop",
        "http": "httptools",
        "ws": "websockets-sansio",
        "ws_per_message_deflate": False,
        "ws_max_size": settings.max_frame_bytes,
        "log_level": settings.log_level.lower(),
        "access_log": False,
        "log_config": None,
        "proxy_headers": False,  # client addresses behind proxies: web/client_address.py, trusted proxies only
        "server_header": False,
        **(
            {"ssl_certfile": str(settings.tls_cert), "ssl_keyfile": str(settings.tls_key)}
            if settings.tls_cert is not None
            else {}
        ),
    }


from confide.cli.retention import app as _retention_app  # noqa: E402 - retention (ADR 0030)

app.add_typer(_retention_app, name="retention")

from confide.cli.privacy import app as _privacy_app  # noqa: E402 - record of processing (ADR 0030)

app.add_typer(_privacy_app, name="privacy")

# ``confide subject find|export`` (ADR 0026) and ``erase|erase-bulk`` (ADR 0028): one group, the
# erasure commands registered on it by their module.
from confide.cli import erasure as _erasure_cli  # noqa: E402 - after _run and _settings
from confide.cli import rectification as _rectification_cli  # noqa: E402, F401 - rectify (ADR 0032)
from confide.cli import restriction as _restriction_cli  # noqa: E402, F401 - restrict|unrestrict (ADR 0031)

app.add_typer(subjects_cli.app, name="subject")
app.add_typer(_erasure_cli.journal_app, name="erasure")  # the erasure journal's replay (ADR 0033)
app.add_typer(requests_app, name="requests")  # data-subject requests (ADR 0029)

if __name__ == "__main__":
    app()
