"""`perf-metrics ingest` and `perf-metrics seed`, run as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from perf_metrics import synthetic
from tests.conftest import Admin
from tests.factories import random_call

END = datetime(2026, 11, 1, tzinfo=UTC)


# Runs `perf-metrics` as a subprocess against the test database.
Cli = Callable[..., subprocess.CompletedProcess[bytes]]


@pytest.fixture
def cli(database_url: str) -> Cli:
    env = {**os.environ, "DATABASE_URL": database_url.replace("+asyncpg", "")}

    def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, "-m", "perf_metrics.cli", *args],
            env=env,
            input=stdin,
            capture_output=True,
            timeout=120,
        )

    return run


async def _counts(engine: AsyncEngine) -> dict[str, tuple[int, Decimal]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT account_id, count(*), sum(cost_usd) FROM calls GROUP BY 1")
        )
        return {r[0]: (r[1], r[2]) for r in rows}


async def test_seed_totals_match_the_generator_exactly(cli: Cli, engine: AsyncEngine) -> None:
    args = ("--accounts", "4", "--days", "3", "--calls", "6000", "--seed", "11")
    proc = cli("seed", *args, "--end", END.isoformat())
    assert proc.returncode == 0, proc.stderr.decode()
    printed = json.loads(proc.stdout)
    assert printed["inserted"] == printed["received"] == 6000

    # The generator's own totals, computed here from its records.
    plan = synthetic.plan_accounts(4, 11)
    expected: dict[str, list[Any]] = defaultdict(lambda: [0, Decimal(0)])
    for chunk in synthetic.generate_calls(plan, days=3, calls=6000, seed=11, end=END):
        for record in chunk:
            expected[record["account_id"]][0] += 1
            expected[record["account_id"]][1] += Decimal(repr(record["cost_usd"]))
    stored = await _counts(engine)
    assert {a: (n, c) for a, (n, c) in stored.items()} == {
        a: (n, c) for a, (n, c) in expected.items()
    }
    async with engine.connect() as conn:
        rollup = {
            r[0]: (r[1], r[2])
            for r in await conn.execute(
                text(
                    "SELECT account_id, sum(calls), sum(cost_usd)"
                    " FROM rollup_account_daily GROUP BY 1"
                )
            )
        }
    assert rollup == {a: (n, c) for a, (n, c) in expected.items()}

    # Seeding again is idempotent: same ids, nothing new.
    again = json.loads(cli("seed", *args, "--end", END.isoformat()).stdout)
    assert again["inserted"] == 0 and again["duplicates"] == 6000


async def test_seed_deals_zones_and_folds_local_days(cli: Cli, engine: AsyncEngine) -> None:
    """Each seeded account gets `synthetic.account_zone(index)` (SPEC §9), the largest one
    Europe/Berlin, and its rollup days are local days there (computed here with zoneinfo);
    an account that exists keeps its zone."""
    from zoneinfo import ZoneInfo

    n = len(synthetic.ACCOUNT_ZONES) + 1
    args = ("--accounts", str(n), "--days", "3", "--calls", "4000", "--seed", "5")
    proc = cli("seed", *args, "--end", END.isoformat())
    assert proc.returncode == 0, proc.stderr.decode()
    plan = synthetic.plan_accounts(n, 5)
    zones = [synthetic.account_zone(i) for i in range(n)]
    printed = json.loads(proc.stdout)["accounts"]
    assert [(a["account_id"], a["timezone"]) for a in printed] == [
        (spec.account_id, zone) for spec, zone in zip(plan, zones, strict=True)
    ]
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT id, timezone FROM accounts"))
        stored: dict[str, str] = {r[0]: r[1] for r in rows}
    assert stored == {spec.account_id: zone for spec, zone in zip(plan, zones, strict=True)}
    assert zones[0] == "Europe/Berlin"

    largest = plan[0].account_id
    berlin = ZoneInfo("Europe/Berlin")
    expected: dict[str, int] = defaultdict(int)
    for chunk in synthetic.generate_calls(plan, days=3, calls=4000, seed=5, end=END):
        for record in chunk:
            if record["account_id"] == largest:
                local = datetime.fromisoformat(record["created_at"]).astimezone(berlin)
                expected[local.date().isoformat()] += 1
    async with engine.connect() as conn:
        days = {
            r[0].isoformat(): r[1]
            for r in await conn.execute(
                text(
                    "SELECT day, sum(calls) FROM rollup_account_daily"
                    " WHERE account_id = :a GROUP BY 1"
                ),
                {"a": largest},
            )
        }
    assert days == expected and len(days) == 4  # 3 UTC days reach into 4 Berlin days

    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE accounts SET timezone = 'Asia/Tokyo' WHERE id = :a"), {"a": largest}
        )
    again = json.loads(cli("seed", *args, "--end", END.isoformat()).stdout)
    assert again["accounts"][0]["timezone"] == "Asia/Tokyo"


def test_seed_can_write_jsonl_that_ingest_loads(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    proc = cli(
        "seed",
        "--accounts",
        "2",
        "--days",
        "1",
        "--calls",
        "500",
        "--jsonl",
        str(path),
        "--end",
        END.isoformat(),
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert len(path.read_bytes().splitlines()) == 500
    # Accounts must exist before their calls load.
    assert cli("seed", "--accounts", "2", "--calls", "0", "--seed", "42").returncode == 0
    loaded = json.loads(cli("ingest", str(path)).stdout)
    assert loaded == {"received": 500, "inserted": 500, "duplicates": 0}
    assert json.loads(cli("ingest", str(path)).stdout)["inserted"] == 0


async def test_ingest_stops_at_a_bad_line_and_keeps_nothing_of_its_batch(
    cli: Cli, admin_ops: Admin, engine: AsyncEngine, tmp_path: Path
) -> None:
    import random

    await admin_ops.account(account_id="acct_load")
    rng = random.Random(5)
    lines = [
        orjson.dumps(
            random_call(rng, "acct_load", "live", datetime(2026, 10, 1, tzinfo=UTC), f"l{i}")
        )
        for i in range(30)
    ]
    bad = orjson.loads(lines[17])
    bad["latency_ms"] = -5
    lines[17] = orjson.dumps(bad)
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    proc = cli("ingest", str(path))
    assert proc.returncode == 1
    assert proc.stdout == b""
    stderr = proc.stderr.decode()
    assert "line 18: latency_ms:" in stderr
    assert await _counts(engine) == {}


async def test_ingest_reads_stdin_and_reports_unknown_accounts(
    cli: Cli, admin_ops: Admin, engine: AsyncEngine
) -> None:
    import random

    await admin_ops.account(account_id="acct_stdin")
    rng = random.Random(6)
    records = [
        random_call(rng, "acct_stdin", "live", datetime(2026, 10, 2, tzinfo=UTC), f"s{i}")
        for i in range(10)
    ]
    body = b"\n".join(orjson.dumps(r) for r in records) + b"\n"
    ok = cli("ingest", "-", stdin=body)
    assert ok.returncode == 0, ok.stderr.decode()
    assert json.loads(ok.stdout) == {"received": 10, "inserted": 10, "duplicates": 0}
    assert (await _counts(engine))["acct_stdin"][0] == 10

    records[0]["account_id"] = "acct_nobody"
    body = b"\n".join(orjson.dumps(r) for r in records) + b"\n"
    refused = cli("ingest", "-", stdin=body)
    assert refused.returncode != 0
    assert b"acct_nobody" in refused.stderr
    assert b"Traceback" not in refused.stderr
