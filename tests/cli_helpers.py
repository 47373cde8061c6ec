"""Running ``confide`` commands in process, against a test's database (in a thread: the command
runs its own event loop)."""

from __future__ import annotations

import asyncio

from typer.testing import CliRunner, Result

from confide.cli.main import app as cli_app
from confide.config import Settings


def cli_env(settings: Settings, **extra: str) -> dict[str, str | None]:
    assert settings.master_key is not None
    env: dict[str, str | None] = {
        "CONFIDE_DATA_DIR": str(settings.data_dir),
        "CONFIDE_DATABASE_URL": settings.database_url,
        "CONFIDE_MASTER_KEY": settings.master_key.get_secret_value(),
        "CONFIDE_ARGON2_TIME_COST": str(settings.argon2_time_cost),
        "CONFIDE_ARGON2_MEMORY_KIB": str(settings.argon2_memory_kib),
        "CONFIDE_ADMIN_PASSWORD": None,  # unset unless a test sets it
    }
    env.update(extra)
    return env


async def run_cli(settings: Settings, *args: str, stdin: str | None = None, **env: str) -> Result:
    runner = CliRunner()
    return await asyncio.to_thread(runner.invoke, cli_app, list(args), input=stdin, env=cli_env(settings, **env))
