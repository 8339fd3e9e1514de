"""A throwaway Postgres database for the test session.

With TEST_DATABASE_URL (any database on a server we may CREATE DATABASE on), the suite
creates its own uniquely named database there and drops it at the end; the shared databases
are never touched. Without it, an embedded Postgres (pgserver, from PyPI) is started in a
temporary directory, so the suite passes on a machine with no Postgres installed.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import asyncpg
from sqlalchemy.engine import make_url


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def _with_database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(_asyncpg_dsn(url))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextmanager
def embedded_server_url() -> Iterator[str]:
    import pgserver

    datadir = tempfile.mkdtemp(prefix="perf-metrics-pg-")
    server = pgserver.get_server(datadir, cleanup_mode="stop")  # type: ignore[attr-defined]
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(datadir, ignore_errors=True)


@contextmanager
def scratch_database() -> Iterator[str]:
    """Yields the URL (postgresql+asyncpg://) of a new, empty database; drops it afterwards."""
    name = f"perf_metrics_test_{secrets.token_hex(4)}"
    server = os.environ.get("TEST_DATABASE_URL")
    with nullcontext(server) if server else embedded_server_url() as server_url:
        asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}"'))
        try:
            url = _with_database(server_url, name)
            yield url.replace("postgresql://", "postgresql+asyncpg://", 1)
        finally:
            asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
