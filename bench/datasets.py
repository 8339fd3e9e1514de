"""Benchmark call logs: 1,000 Zipf-skewed accounts over 90 days, built once and kept.

    python bench/datasets.py 1000000 10000000

Each size gets its own database on BENCH_DATABASE_URL's server (perf_metrics_bench_<size>),
loaded through `perf-metrics seed` (validation, raw rows and rollups, as ingest does), plus the
naive baseline's index. An existing database with the right row count is reused.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import _admin, _with_db, run_cli, server_url

ACCOUNTS = 1000
SEED = 7
END = "2026-11-27T00:00:00+00:00"


def database_name(calls: int) -> str:
    return f"perf_metrics_bench_{calls}"


async def _count(url: str) -> int | None:
    try:
        conn = await asyncpg.connect(url)
    except asyncpg.InvalidCatalogNameError:
        return None
    try:
        return int(await conn.fetchval("SELECT count(*) FROM calls"))
    except asyncpg.UndefinedTableError:
        return None
    finally:
        await conn.close()


def ensure(calls: int) -> tuple[str, dict[str, float]]:
    """The URL of a database holding `calls` calls, and how its build went (if built now)."""
    name = database_name(calls)
    url = _with_db(server_url(), name)
    if asyncio.run(_count(url)) == calls:
        return url, {}
    asyncio.run(_admin(server_url(), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    asyncio.run(_admin(server_url(), f'CREATE DATABASE "{name}"'))
    run_cli(url, "migrate")
    started = time.perf_counter()
    out = run_cli(
        url,
        "seed",
        "--accounts",
        str(ACCOUNTS),
        "--days",
        "90",
        "--calls",
        str(calls),
        "--seed",
        str(SEED),
        "--end",
        END,
    )
    seconds = time.perf_counter() - started
    # The naive baseline gets the fair index it would have in production.
    asyncio.run(
        _admin(
            url,
            "CREATE INDEX IF NOT EXISTS bench_calls_account_created"
            " ON calls (account_id, created_at)",
        )
    )
    asyncio.run(
        _admin(
            url,
            "CREATE INDEX IF NOT EXISTS bench_calls_env_created ON calls (environment, created_at)",
        )
    )
    asyncio.run(_admin(url, "VACUUM ANALYZE"))
    largest = max(out["accounts"], key=lambda a: a["calls"])
    return url, {
        "load_seconds": round(seconds, 1),
        "load_calls_per_s": round(calls / seconds),
        "largest_account_calls": largest["calls"],
    }


if __name__ == "__main__":
    for size in map(int, sys.argv[1:] or ["1000000"]):
        url, info = ensure(size)
        print(json.dumps({"calls": size, "url": url, **info}))
