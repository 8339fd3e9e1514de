"""The `perf-metrics` command (SPEC §8): JSON on stdout, errors on stderr, non-zero on error."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import orjson
from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from perf_metrics import accounts as admin
from perf_metrics.errors import PerfError, is_database_unavailable
from perf_metrics.settings import Settings, get_settings


class CliError(Exception):
    """Printed to stderr as `error: ...`; exit status 1."""

    exit_status = 1


class RollupsDrifted(CliError):
    """`rollups verify` found differences: exit status 3, apart from errors (1 and 2)."""

    exit_status = 3


def emit(payload: Any) -> None:
    sys.stdout.write(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode() + "\n")
    sys.stdout.flush()


def _where(settings: Settings) -> str:
    url = make_url(settings.database_url)
    host = url.host or url.query.get("host") or "localhost"
    return f"{host}:{url.port or 5432}/{url.database}"


def _database_problem(exc: BaseException, settings: Settings) -> str:
    where = _where(settings)
    # From SQLAlchemy, or straight from the driver (statements run on its connection).
    cause = exc.orig if isinstance(exc, DBAPIError) else exc
    if cause is not None and isinstance(exc, (DBAPIError, asyncpg.PostgresError)):
        detail = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
        if is_database_unavailable(exc):
            return f"cannot reach the database at {where} ({detail}). Is Postgres running?"
        return f"database error at {where}: {detail}"
    return (
        f"cannot reach the database at {where} ({type(exc).__name__}). "
        "Is Postgres running, and is DATABASE_URL right?"
    )


def run_in_transaction(
    settings: Settings, work: Callable[[AsyncConnection], Awaitable[Any]]
) -> Any:
    from perf_metrics.db import create_engine

    async def go() -> Any:
        engine = create_engine(settings, pool_size=1, max_overflow=0)
        try:
            async with engine.begin() as conn:
                return await work(conn)
        finally:
            await engine.dispose()

    return asyncio.run(go())


# --- subcommands -----------------------------------------------------------------------


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> None:
    from perf_metrics.migrate import head_revision, upgrade

    upgrade(settings.database_url)
    emit({"migrated_to": head_revision()})


def cmd_accounts_create(args: argparse.Namespace, settings: Settings) -> None:
    emit(
        run_in_transaction(
            settings,
            lambda c: admin.create_account(
                c, name=args.name, tier=args.tier, account_id=args.account_id
            ),
        )
    )


def _task_overrides(pairs: list[str] | None) -> dict[str, str] | None:
    if not pairs:
        return None
    overrides = {}
    for pair in pairs:
        task, sep, model = pair.partition("=")
        if not sep:
            raise CliError(f"--task-override takes TASK=MODEL, got {pair!r}")
        overrides[task.strip()] = model.strip()
    return overrides


def cmd_accounts_update(args: argparse.Namespace, settings: Settings) -> None:
    preferred = None
    if args.preferred_models is not None:
        preferred = [m.strip() for m in args.preferred_models.split(",") if m.strip()]
    overrides = _task_overrides(args.task_override)
    emit(
        run_in_transaction(
            settings,
            lambda c: admin.update_account(
                c,
                args.account_id,
                tier=args.tier,
                cost_vs_quality_ratio=args.cost_vs_quality,
                latency_sensitivity=args.latency_sensitivity,
                preferred_models=preferred,
                task_overrides=overrides,
            ),
        )
    )


def cmd_keys_create(args: argparse.Namespace, settings: Settings) -> None:
    if args.ingest and args.account:
        raise CliError("an ingest key is platform-wide: give --ingest or --account, not both")
    if not args.ingest and not args.account:
        raise CliError("give --account ID for a customer key, or --ingest")
    emit(
        run_in_transaction(
            settings,
            lambda c: admin.create_key(
                c,
                account_id=args.account,
                environment=args.environment,
                ingest=args.ingest,
                name=args.name,
            ),
        )
    )


def cmd_keys_list(args: argparse.Namespace, settings: Settings) -> None:
    if not args.account and not args.ingest:
        raise CliError("give --account ID, or --ingest for ingest keys")
    emit(run_in_transaction(settings, lambda c: admin.list_keys(c, account_id=args.account)))


def cmd_keys_revoke(args: argparse.Namespace, settings: Settings) -> None:
    emit(run_in_transaction(settings, lambda c: admin.revoke_key(c, args.key_id)))


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> None:

    from tqdm import tqdm

    from perf_metrics.calls.load import BadLine, load_jsonl, open_input
    from perf_metrics.db import create_engine

    stream = open_input(args.file)
    size = os.fstat(stream.fileno()).st_size if args.file != "-" else None
    progress = tqdm(
        total=size,
        unit="B",
        unit_scale=True,
        desc="ingest",
        file=sys.stderr,
        disable=None if size and size > 5_000_000 else True,  # large files on a terminal
    )

    async def go() -> Any:
        # Two connections: one stores batches, the other folds them into the rollups.
        engine = create_engine(settings, pool_size=2, max_overflow=0)
        try:
            return await load_jsonl(engine, stream, progress)
        finally:
            await engine.dispose()

    try:
        result = asyncio.run(go())
    except BadLine as exc:
        progress.close()
        for error in exc.errors[:20]:
            field = f" {error['field']}:" if error["field"] else ""
            print(f"line {error['line']}:{field} {error['message']}", file=sys.stderr)
        raise CliError(
            f"{exc.total} invalid field(s) in the batch starting near line {exc.errors[0]['line']};"
            " that batch was not written (earlier batches were)."
        ) from None
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    progress.close()
    emit(result.as_json())


def cmd_seed(args: argparse.Namespace, settings: Settings) -> None:
    from datetime import UTC, datetime

    from tqdm import tqdm

    from perf_metrics import synthetic
    from perf_metrics.calls.load import seed
    from perf_metrics.db import create_engine

    end = datetime.now(UTC)
    if args.end:
        end = datetime.fromisoformat(args.end)
        if end.tzinfo is None:
            raise CliError("--end needs a UTC offset, e.g. 2026-11-01T00:00:00Z")
    if args.jsonl:
        plan = synthetic.plan_accounts(args.accounts, args.seed)
        chunks = synthetic.generate_calls(
            plan, days=args.days, calls=args.calls, seed=args.seed, end=end
        )
        if args.jsonl == "-":
            synthetic.write_jsonl(chunks, sys.stdout.buffer)
            return
        with open(args.jsonl, "wb") as fp:
            count = synthetic.write_jsonl(chunks, fp)
        emit({"written": count, "file": args.jsonl, "accounts": [a.account_id for a in plan]})
        return
    progress = tqdm(total=args.calls, unit="call", desc="seed", file=sys.stderr, disable=None)

    async def go() -> Any:
        # Two connections: one stores batches, the other folds them into the rollups.
        engine = create_engine(settings, pool_size=2, max_overflow=0)
        try:
            return await seed(
                engine,
                accounts=args.accounts,
                days=args.days,
                calls=args.calls,
                seed_value=args.seed,
                end=end,
                progress=progress,
            )
        finally:
            await engine.dispose()

    result = asyncio.run(go())
    progress.close()
    emit(result)


def _maintenance(settings: Settings) -> Settings:
    """Rollup checks and rebuilds read the whole call log: minutes, not the service's seconds."""
    return settings.model_copy(update={"db_statement_timeout_ms": 3_600_000})


def cmd_rollups_verify(args: argparse.Namespace, settings: Settings) -> None:
    from perf_metrics.calls.maintenance import verify_rollups
    from perf_metrics.db import create_engine

    async def go() -> Any:
        engine = create_engine(_maintenance(settings), pool_size=1, max_overflow=0)
        try:
            async with engine.connect() as conn:
                if args.account:
                    await admin.get_account(conn, args.account)  # an unknown id is an error
                    await conn.rollback()
                # One snapshot for the whole comparison, while ingest and folds go on.
                await conn.execution_options(isolation_level="REPEATABLE READ")
                result = await verify_rollups(conn, args.account, args.examples)
                await conn.rollback()  # it wrote temporary tables only
                return result
        finally:
            await engine.dispose()

    result = asyncio.run(go())
    emit(result)
    if not result["ok"]:
        raise RollupsDrifted(
            "the rollups differ from the call log (report above); "
            "`perf-metrics rollups rebuild` recomputes them"
        )


def cmd_rollups_rebuild(args: argparse.Namespace, settings: Settings) -> None:
    import time

    from perf_metrics.calls.maintenance import rebuild_rollups

    started = time.monotonic()
    result = run_in_transaction(_maintenance(settings), rebuild_rollups)
    emit({**result, "seconds": round(time.monotonic() - started, 1)})


def cmd_demo(args: argparse.Namespace, settings: Settings) -> None:
    from perf_metrics.demo import DemoUnavailable, run_demo

    try:
        run_demo(args.host, args.port)
    except DemoUnavailable as exc:
        raise CliError(str(exc)) from None


def cmd_serve(args: argparse.Namespace, settings: Settings) -> None:
    from perf_metrics.observability import configure_logging
    from perf_metrics.serving import run_server

    configure_logging(settings.log_level)

    run_server(
        "perf_metrics.main:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=20,
    )


# --- parser ----------------------------------------------------------------------------


def _unit_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a number between 0 and 1") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="perf-metrics", description="Admin and serving commands for perf-metrics."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)

    acc = sub.add_parser("accounts", help="create or update accounts").add_subparsers(
        dest="action", required=True
    )
    p = acc.add_parser("create", help="create an account")
    p.add_argument("--name", required=True)
    p.add_argument("--tier", required=True, choices=["free", "pro", "enterprise"])
    p.add_argument("--account-id")
    p.set_defaults(func=cmd_accounts_create)
    p = acc.add_parser("update", help="change an account's tier or settings")
    p.add_argument("account_id")
    p.add_argument("--tier", choices=["free", "pro", "enterprise"])
    p.add_argument("--cost-vs-quality", type=_unit_float)
    p.add_argument("--latency-sensitivity", type=_unit_float)
    p.add_argument("--preferred-models", help="comma-separated; empty string clears")
    p.add_argument("--task-override", action="append", metavar="TASK=MODEL")
    p.set_defaults(func=cmd_accounts_update)

    keys = sub.add_parser("keys", help="create, list or revoke API keys").add_subparsers(
        dest="action", required=True
    )
    p = keys.add_parser("create", help="create a key (printed once)")
    p.add_argument("--account")
    p.add_argument("--environment", choices=["live", "test"], default="live")
    p.add_argument("--ingest", action="store_true", help="a platform-wide ingest key")
    p.add_argument("--name")
    p.set_defaults(func=cmd_keys_create)
    p = keys.add_parser("list", help="list an account's keys (never the secrets)")
    p.add_argument("--account")
    p.add_argument("--ingest", action="store_true", help="list ingest keys")
    p.set_defaults(func=cmd_keys_list)
    p = keys.add_parser("revoke", help="revoke a key, effective on the next request")
    p.add_argument("key_id")
    p.set_defaults(func=cmd_keys_revoke)

    p = sub.add_parser("ingest", help="load a JSONL file of call records (- for stdin)")
    p.add_argument("file")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("seed", help="generate a realistic synthetic call log and load it")
    p.add_argument("--accounts", type=int, default=5)
    p.add_argument("--days", type=int, default=90)
    p.add_argument("--calls", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--jsonl", metavar="FILE", help="write JSONL (- for stdout) instead of loading")
    p.add_argument("--end", help="end of the log (RFC 3339; default now): reproducible logs")
    p.set_defaults(func=cmd_seed)

    rollups = sub.add_parser(
        "rollups", help="check the rollups against the call log, or rebuild them"
    ).add_subparsers(dest="action", required=True)
    p = rollups.add_parser(
        "verify", help="compare the rollups with the call log; exit status 1 if they differ"
    )
    p.add_argument("--account", help="check one account's rows only")
    p.add_argument("--examples", type=_count, default=5, help="differing rows shown per table")
    p.set_defaults(func=cmd_rollups_verify)
    p = rollups.add_parser(
        "rebuild", help="recompute every rollup from the call log (ingest and reads wait)"
    )
    p.set_defaults(func=cmd_rollups_rebuild)

    p = sub.add_parser("serve", help="serve the API with uvicorn")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("WEB_CONCURRENCY", "1")),
        help="worker processes (default: WEB_CONCURRENCY or 1)",
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "demo", help="embedded Postgres + demo data + a printed key + the server (no setup)"
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = get_settings()
    except ValidationError as exc:  # never print the input: DATABASE_URL may hold a password
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}"
            for e in exc.errors(include_input=False, include_url=False)
        )
        print(f"error: bad configuration: {problems}", file=sys.stderr)
        return 2
    try:
        args.func(args, settings)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_status
    except admin.AdminError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except PerfError as exc:  # the write path refused a batch (e.g. unknown accounts)
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    except (SQLAlchemyError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        print(f"error: {_database_problem(exc, settings)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
