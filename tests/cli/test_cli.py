"""The perf-metrics command, run as a user runs it: a subprocess with DATABASE_URL."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import assert_envelope, bearer, store_records
from tests.factories import at, random_call

# Runs `perf-metrics` as a subprocess against the test database.
Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cli(database_url: str) -> Cli:
    env = {**os.environ, "DATABASE_URL": database_url.replace("+asyncpg", "")}

    def run(
        *args: str, ok: bool = True, url: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        run_env = {**env, "DATABASE_URL": url} if url else env
        proc = subprocess.run(
            [sys.executable, "-m", "perf_metrics.cli", *args],
            env=run_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if ok:
            assert proc.returncode == 0, proc.stderr
        return proc

    return run


async def test_account_key_revoke_story(cli: Cli, client: httpx.AsyncClient) -> None:
    assert json.loads(cli("migrate").stdout)["migrated_to"]
    acct = json.loads(cli("accounts", "create", "--name", "Acme", "--tier", "pro").stdout)
    assert acct["account_id"].startswith("acct_")
    assert acct["tier"] == "pro"
    created = json.loads(cli("keys", "create", "--account", acct["account_id"]).stdout)
    assert created["key"].startswith("pk_live_")
    assert created["key_id"].startswith("key_")

    response = await client.get("/v1/account", headers=bearer(created["key"]))
    assert response.status_code == 200
    assert response.json()["account_id"] == acct["account_id"]

    listed = json.loads(cli("keys", "list", "--account", acct["account_id"]).stdout)
    assert [k["key_id"] for k in listed] == [created["key_id"]]
    assert created["key"] not in json.dumps(listed)

    revoked = json.loads(cli("keys", "revoke", created["key_id"]).stdout)
    assert revoked["revoked_at"] is not None
    response = await client.get("/v1/account", headers=bearer(created["key"]))
    assert_envelope(response, 401, "invalid_api_key")


def test_account_update_and_test_and_ingest_keys(cli: Cli) -> None:
    cli("accounts", "create", "--name", "Beta", "--tier", "free", "--account-id", "acct_beta")
    updated = json.loads(
        cli(
            "accounts",
            "update",
            "acct_beta",
            "--tier",
            "enterprise",
            "--cost-vs-quality",
            "0.7",
            "--latency-sensitivity",
            "0.2",
            "--preferred-models",
            "gpt-4o-mini,claude-haiku-4-5",
            "--task-override",
            "reasoning=claude-sonnet-4-5",
        ).stdout
    )
    assert updated["tier"] == "enterprise"
    assert updated["settings"] == {
        "cost_vs_quality_ratio": 0.7,
        "latency_sensitivity": 0.2,
        "preferred_models": ["gpt-4o-mini", "claude-haiku-4-5"],
        "task_overrides": {"reasoning": "claude-sonnet-4-5"},
    }
    test_key = json.loads(
        cli("keys", "create", "--account", "acct_beta", "--environment", "test").stdout
    )
    assert test_key["key"].startswith("pk_test_")
    # A zone, canonical, and a change of it: recounted (no calls yet), said on stdout.
    zoned = json.loads(
        cli(
            "accounts", "create", "--name", "Z", "--tier", "pro", "--timezone", "asia/kolkata"
        ).stdout
    )
    assert zoned["timezone"] == "Asia/Kolkata"
    moved = json.loads(
        cli("accounts", "update", zoned["account_id"], "--timezone", "Europe/Berlin").stdout
    )
    assert moved["timezone"] == "Europe/Berlin"
    assert moved["rollups_change"]["previous_timezone"] == "Asia/Kolkata"
    assert moved["rollups_change"]["calls"] == 0
    ingest = json.loads(cli("keys", "create", "--ingest", "--name", "router").stdout)
    assert ingest["key"].startswith("sk_ingest_")
    assert ingest["account_id"] is None


async def test_account_update_timezone_recounts_the_days(
    cli: Cli, client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    """`accounts update --timezone`, as a user runs it: the command's own engine must hold
    both the connection that marks the change and the one that recounts."""
    cli("accounts", "create", "--name", "Zed", "--tier", "pro", "--account-id", "acct_zed")
    # 23:30 UTC on Nov 1 is Nov 2 in Kolkata (+05:30).
    call = random_call(random.Random(3), "acct_zed", "live", at(2026, 11, 1, 23, 30), "z1")
    async with engine.connect() as conn:
        await store_records(conn, [call])
        await conn.commit()
    # In a thread: the app's background folder may be mid-fold, holding the fold lock that the
    # change waits for; a blocked event loop would never let it finish.
    proc = await asyncio.to_thread(
        cli, "accounts", "update", "acct_zed", "--timezone", "asia/kolkata"
    )
    updated = json.loads(proc.stdout)
    assert updated["timezone"] == "Asia/Kolkata"
    change = updated["rollups_change"]
    assert change["changed"] and change["previous_timezone"] == "UTC"
    assert change["calls"] == 1
    assert "days now in Asia/Kolkata" in proc.stderr
    async with engine.connect() as conn:
        days = (
            await conn.execute(
                text("SELECT day FROM rollup_account_daily WHERE account_id = 'acct_zed'")
            )
        ).scalars()
        assert [d.isoformat() for d in days] == ["2026-11-02"]
    key = json.loads(cli("keys", "create", "--account", "acct_zed").stdout)["key"]
    response = await client.get("/v1/account", headers=bearer(key))
    assert response.json()["timezone"] == "Asia/Kolkata"
    again = json.loads(cli("accounts", "update", "acct_zed", "--timezone", "Asia/Kolkata").stdout)
    assert again["rollups_change"]["changed"] is False
    # Tracked keys: set (the group rollups recounted), shown, cleared.
    proc = await asyncio.to_thread(
        cli, "accounts", "update", "acct_zed", "--track-metadata", "feature, team"
    )
    tracked = json.loads(proc.stdout)
    assert tracked["tracked_metadata_keys"] == ["feature", "team"]
    assert tracked["rollups_change"]["recounted"] == ["rollup_group_daily", "rollup_group_weekly"]
    assert tracked["rollups_change"]["calls"] == 1
    assert "tracking feature, team" in proc.stderr
    response = await client.get("/v1/account", headers=bearer(key))
    assert response.json()["tracked_metadata_keys"] == ["feature", "team"]
    proc = await asyncio.to_thread(cli, "accounts", "update", "acct_zed", "--track-metadata", "")
    assert json.loads(proc.stdout)["tracked_metadata_keys"] == []


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("accounts", "create", "--name", "X", "--tier", "gold"), "invalid choice"),
        (("accounts", "create", "--name", "X", "--tier", "pro", "--account-id", "bad id"), "acct_"),
        (("accounts", "update", "acct_missing", "--tier", "pro"), "no account"),
        (("accounts", "update", "acct_x", "--cost-vs-quality", "2"), "between 0 and 1"),
        (("keys", "create", "--account", "acct_missing"), "no account"),
        (("keys", "create"), "--account"),
        (("keys", "revoke", "key_missing"), "no key"),
        (
            ("accounts", "create", "--name", "X", "--tier", "pro", "--timezone", "+05:30"),
            "Asia/Kolkata (not +05:30)",
        ),
        (("accounts", "update", "acct_x", "--timezone", "Mars/Olympus"), "Unknown timezone"),
        (("accounts", "update", "acct_x", "--track-metadata", "a,b,c,d,e,f"), "at most 5"),
        (("accounts", "update", "acct_x", "--track-metadata", "a b"), "letters, digits"),
    ],
)
def test_errors_go_to_stderr_with_nonzero_exit(
    cli: Cli, args: tuple[str, ...], needle: str
) -> None:
    proc = cli(*args, ok=False)
    assert proc.returncode != 0
    assert proc.stdout == ""
    assert needle in proc.stderr


def test_unreachable_database_is_a_clear_message(cli: Cli) -> None:
    proc = cli(
        "accounts",
        "create",
        "--name",
        "X",
        "--tier",
        "pro",
        ok=False,
        url="postgresql://postgres@127.0.0.1:1/nothing",
    )
    assert proc.returncode == 2
    assert "cannot reach the database at 127.0.0.1:1/nothing" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_demo_without_its_extra_says_what_to_install(tmp_path: Path) -> None:
    """`pip install -e .` (no [demo] extra) then `perf-metrics demo`: one clear line, no
    traceback, nothing started or created."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["PERF_METRICS_HOME"] = str(tmp_path / "home")
    # As if pgserver were not installed: a None entry makes every import of it fail.
    program = (
        "import sys; sys.modules['pgserver'] = None\n"
        "from perf_metrics.cli import main\n"
        "sys.exit(main(['demo']))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: perf-metrics demo needs its embedded Postgres")
    assert "pip install 'perf-metrics[demo]'" in lines[0]
    assert "DATABASE_URL" in lines[0]
    assert not (tmp_path / "home").exists()


# Found in review: each failed before its fix.


def test_a_bad_database_url_is_reported_without_its_password() -> None:
    env = {**os.environ, "DATABASE_URL": "mysql://admin:S3cretPassw0rd@db.internal/prod"}
    proc = subprocess.run(
        [sys.executable, "-m", "perf_metrics.cli", "migrate"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "DATABASE_URL" in proc.stderr
    assert "S3cretPassw0rd" not in proc.stderr


async def test_prices_and_a_monthly_budget(
    cli: Cli, client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    """`prices set` adds a price from a day on (the days before keep theirs), `prices list`
    shows the history; `accounts update --monthly-budget` sets and clears a budget."""
    before = json.loads(cli("prices", "list", "--model", "gpt-4o-mini").stdout)
    assert [
        (p["effective_from"], p["input_usd_per_mtok"], p["in_force_today"]) for p in before
    ] == [("2000-01-01", "0.150000", True)]
    try:
        after = json.loads(
            cli("prices", "set", "gpt-4o-mini", "--input", "0.20", "--output", "0.80",
                "--effective", "2026-01-15").stdout
        )  # fmt: skip
        assert [(p["effective_from"], p["output_usd_per_mtok"], p["provider"]) for p in after] == [
            ("2000-01-01", "0.600000", "openai"),
            ("2026-01-15", "0.800000", "openai"),  # the provider kept from the one before
        ]
        assert [p["in_force_today"] for p in after] == [False, True]
        for bad in (["--input", "-1", "--output", "1"], ["--input", "1", "--output", "x"]):
            refused = cli("prices", "set", "gpt-4o-mini", *bad, ok=False)
            assert refused.returncode != 0 and "per million tokens" in refused.stderr
        new = cli("prices", "set", "brand-new", "--input", "1", "--output", "2", ok=False)
        assert new.returncode != 0 and "--provider" in new.stderr
        unknown = cli("prices", "list", "--model", "nope", ok=False)
        assert unknown.returncode != 0 and "no price" in unknown.stderr
    finally:  # the suite keeps the price table between tests: as migrated again
        async with engine.begin() as conn:
            await conn.execute(
                text("DELETE FROM model_prices WHERE effective_from <> '2000-01-01'")
            )

    acct = json.loads(cli("accounts", "create", "--name", "Budget", "--tier", "pro").stdout)
    account_id = acct["account_id"]
    assert acct["monthly_budget_usd"] is None
    shown = json.loads(cli("accounts", "update", account_id, "--monthly-budget", "1250.5").stdout)
    assert shown["monthly_budget_usd"] == "1250.50"
    key = json.loads(cli("keys", "create", "--account", account_id).stdout)["key"]
    response = await client.get("/v1/account", headers=bearer(key))
    assert response.json()["monthly_budget_usd"] == 1250.5
    for amount in ("0", "-3", "12.345", "lots"):
        refused = cli("accounts", "update", account_id, "--monthly-budget", amount, ok=False)
        assert refused.returncode != 0 and "budget" in refused.stderr
    cleared = json.loads(cli("accounts", "update", account_id, "--monthly-budget", "none").stdout)
    assert cleared["monthly_budget_usd"] is None
