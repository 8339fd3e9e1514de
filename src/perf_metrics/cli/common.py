"""What every command group shares: printing, the one way to open the database, the errors
a command raises and the exit status each family of errors gives."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import asyncpg
import orjson
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from perf_metrics import accounts as admin
from perf_metrics.errors import PerfError, is_database_unavailable, sqlstate
from perf_metrics.rollups.fold import FoldTimedOut
from perf_metrics.settings import Settings


class CliError(Exception):
    """Printed to stderr as `error: ...`; exit status 1."""

    exit_status = 1


class RollupsDrifted(CliError):
    """`rollups verify` found differences: exit status 3, apart from errors (1 and 2)."""

    exit_status = 3


DATABASE_ERRORS = (
    SQLAlchemyError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,  # TimeoutError too, FoldTimedOut with it
)


def failure(exc: BaseException, settings: Settings) -> tuple[str, int] | None:
    """The one mapping from error families to what is printed and the exit status: 1 for a
    refused request (bad input, unknown ids), 2 for the database, 3 for drifted rollups;
    None for an error that is not ours to explain (it propagates)."""
    if isinstance(exc, CliError):
        return str(exc), exc.exit_status
    if isinstance(exc, admin.AdminError):
        return str(exc), 1
    if isinstance(exc, PerfError):  # the write path refused a batch (e.g. unknown accounts)
        return exc.message, 1
    if isinstance(exc, DATABASE_ERRORS):
        return _database_problem(exc, settings), 2
    return None


def emit(payload: Any) -> None:
    sys.stdout.write(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode() + "\n")
    sys.stdout.flush()


@asynccontextmanager
async def open_engine(settings: Settings, connections: int = 1) -> AsyncIterator[AsyncEngine]:
    """An engine of `connections` connections for one command, disposed when it is done."""
    from perf_metrics.db import create_engine

    engine = create_engine(settings, pool_size=connections, max_overflow=0)
    try:
        yield engine
    finally:
        await engine.dispose()


def run_with_engine(
    settings: Settings, work: Callable[[AsyncEngine], Awaitable[Any]], connections: int = 1
) -> Any:
    async def go() -> Any:
        async with open_engine(settings, connections) as engine:
            return await work(engine)

    return asyncio.run(go())


def maintenance(settings: Settings) -> Settings:
    """For commands that read a whole call log (rollup checks and rebuilds, zone changes):
    minutes per statement, not the service's seconds."""
    return settings.model_copy(update={"db_statement_timeout_ms": 3_600_000})


def run_in_transaction(
    settings: Settings, work: Callable[[AsyncConnection], Awaitable[Any]]
) -> Any:
    async def in_transaction(engine: AsyncEngine) -> Any:
        async with engine.begin() as conn:
            return await work(conn)

    return run_with_engine(settings, in_transaction)


def _where(settings: Settings) -> str:
    url = make_url(settings.database_url)
    host = url.host or url.query.get("host") or "localhost"
    return f"{host}:{url.port or 5432}/{url.database}"


def _database_problem(exc: BaseException, settings: Settings) -> str:
    where = _where(settings)
    if isinstance(exc, FoldTimedOut):
        return f"the database at {where} is up, but {exc}"
    # From SQLAlchemy, or straight from the driver (statements run on its connection).
    cause = exc.orig if isinstance(exc, DBAPIError) else exc
    if sqlstate(exc) == "57014":  # Postgres's own timeout (a driver's may be a connect's)
        return (
            f"a statement at {where} ran past its time limit ({str(cause) or 'timed out'}):"
            " the database is up but busy or slow. Try again, or allow more time with"
            f" DB_STATEMENT_TIMEOUT_MS (now {settings.db_statement_timeout_ms})."
        )
    if cause is not None and isinstance(exc, (DBAPIError, asyncpg.PostgresError)):
        detail = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
        if is_database_unavailable(exc):
            return f"cannot reach the database at {where} ({detail}). Is Postgres running?"
        return f"database error at {where}: {detail}"
    return (
        f"cannot reach the database at {where} ({type(exc).__name__}). "
        "Is Postgres running, and is DATABASE_URL right?"
    )


# What each group's add_commands adds its subcommands to (generic only to the type checker).
if TYPE_CHECKING:
    Subcommands = argparse._SubParsersAction[argparse.ArgumentParser]
else:
    Subcommands = argparse._SubParsersAction


def unit_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a number between 0 and 1") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value
