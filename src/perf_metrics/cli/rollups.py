"""`perf-metrics rollups verify | rebuild`: the rollups against the call log."""

from __future__ import annotations

import argparse
import time
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from perf_metrics import accounts as admin
from perf_metrics.cli.common import (
    RollupsDrifted,
    Subcommands,
    count,
    emit,
    maintenance,
    run_in_transaction,
    run_with_engine,
)
from perf_metrics.settings import Settings


def cmd_rollups_verify(args: argparse.Namespace, settings: Settings) -> None:
    from perf_metrics.rollups.maintenance import verify_rollups

    async def verify(engine: AsyncEngine) -> Any:
        async with engine.connect() as conn:
            if args.account:
                await admin.get_account(conn, args.account)  # an unknown id is an error
                await conn.rollback()
            # One snapshot for the whole comparison, while ingest and folds go on.
            await conn.execution_options(isolation_level="REPEATABLE READ")
            result = await verify_rollups(conn, args.account, args.examples)
            await conn.rollback()  # it wrote temporary tables only
            return result

    result = run_with_engine(maintenance(settings), verify)
    emit(result)
    if not result["ok"]:
        raise RollupsDrifted(
            "the rollups differ from the call log (report above); "
            "`perf-metrics rollups rebuild` recomputes them"
        )


def cmd_rollups_rebuild(args: argparse.Namespace, settings: Settings) -> None:
    from perf_metrics.rollups.maintenance import rebuild_rollups

    started = time.monotonic()
    result = run_in_transaction(maintenance(settings), rebuild_rollups)
    emit({**result, "seconds": round(time.monotonic() - started, 1)})


def add_commands(sub: Subcommands) -> None:
    rollups = sub.add_parser(
        "rollups", help="check the rollups against the call log, or rebuild them"
    ).add_subparsers(dest="action", required=True)
    p = rollups.add_parser(
        "verify", help="compare the rollups with the call log; exit status 1 if they differ"
    )
    p.add_argument("--account", help="check one account's rows only")
    p.add_argument("--examples", type=count, default=5, help="differing rows shown per table")
    p.set_defaults(func=cmd_rollups_verify)
    p = rollups.add_parser(
        "rebuild", help="recompute every rollup from the call log (ingest and reads wait)"
    )
    p.set_defaults(func=cmd_rollups_rebuild)
