"""An ingest interrupted mid-batch leaves the batch wholly present or wholly absent, and a
retry converges to exactly one copy (rollups included)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime

import httpx
import orjson
import pytest
from sqlalchemy import text

from perf_metrics import accounts as admin
from perf_metrics.db import create_engine
from perf_metrics.settings import Settings
from tests.conftest import rollups_report
from tests.factories import random_log
from tests.servers import free_port, wait_until_healthy

pytestmark = pytest.mark.slow
N = 8000


def _serve(database_url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "RATE_LIMIT_ENABLED": "false"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "perf_metrics.main:app",
            "--port",
            str(port),
            "--log-level",
            "error",
        ],
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    wait_until_healthy(base, proc)
    return proc, base


async def _state(database_url: str, account_id: str) -> tuple[int, int, int, int]:
    """Calls stored, in the account-day and model rollups, and queued for the rollups."""
    engine = create_engine(Settings(database_url=database_url))
    try:
        async with engine.connect() as conn:
            raw = await conn.scalar(
                text("SELECT count(*) FROM calls WHERE account_id = :a"), {"a": account_id}
            )
            daily = await conn.scalar(
                text(
                    "SELECT coalesce(sum(calls), 0) FROM rollup_account_daily WHERE account_id = :a"
                ),
                {"a": account_id},
            )
            model = await conn.scalar(
                text(
                    "SELECT coalesce(sum(calls), 0) FROM rollup_model_daily WHERE account_id = :a"
                ),
                {"a": account_id},
            )
            queued = await conn.scalar(
                text("SELECT count(*) FROM calls_pending WHERE account_id = :a"), {"a": account_id}
            )
            return int(raw), int(daily), int(model), int(queued)
    finally:
        await engine.dispose()


async def _rollups_match_the_log(database_url: str) -> bool:
    """Every rollup, every measure: the stored rollups plus the queue equal the log's."""
    engine = create_engine(Settings(database_url=database_url))
    try:
        return bool((await rollups_report(engine))["ok"])
    finally:
        await engine.dispose()


def test_killed_server_leaves_all_or_nothing_and_a_retry_converges(database_url: str) -> None:
    async def setup() -> tuple[str, str, str]:
        engine = create_engine(Settings(database_url=database_url))
        async with engine.begin() as conn:
            acct = await admin.create_account(conn, name="Safety", tier="pro")
            scratch = await admin.create_account(conn, name="Scratch", tier="pro")
            key = await admin.create_key(conn, account_id=None, ingest=True)
        await engine.dispose()
        return acct["account_id"], scratch["account_id"], key["key"]

    account_id, scratch_id, key = asyncio.run(setup())
    calls = random_log(
        random.Random(8),
        [account_id],
        N,
        datetime(2026, 9, 1, tzinfo=UTC),
        datetime(2026, 9, 30, tzinfo=UTC),
    )
    body = orjson.dumps({"calls": calls})
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    seen = set()
    # How long one batch takes here, on a scratch account, to spread the kills over it.
    scratch = [{**c, "account_id": scratch_id} for c in calls]
    proc, base = _serve(database_url)
    started = time.monotonic()
    httpx.post(f"{base}/v1/calls", json={"calls": scratch}, headers=headers, timeout=60)
    took = time.monotonic() - started
    proc.terminate()
    proc.wait(timeout=20)
    # Kill the server at different moments of the same batch: parsing, writing, committing.
    for fraction in (0.1, 0.3, 0.5, 0.7, 0.85, 1.0, 1.3):
        delay = fraction * took
        proc, base = _serve(database_url)

        def post(base: str = base) -> None:
            with contextlib.suppress(httpx.TransportError):
                httpx.post(f"{base}/v1/calls", content=body, headers=headers, timeout=30)

        thread = threading.Thread(target=post)
        thread.start()
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        thread.join(30)
        raw, daily, model, queued = asyncio.run(_state(database_url, account_id))
        assert raw in (0, N), f"half a batch after a kill at {delay}s: {raw}"
        # Killed between the commit and the fold, the calls wait in the queue, all of them.
        assert daily == model == raw - queued, "rollups disagree with the raw rows"
        assert queued in (0, raw)
        assert asyncio.run(_rollups_match_the_log(database_url))
        seen.add(raw)
    # Retrying converges to exactly one copy, however many times it is sent.
    proc, base = _serve(database_url)
    try:
        for _ in range(2):
            response = httpx.post(f"{base}/v1/calls", content=body, headers=headers, timeout=60)
            assert response.status_code == 200, response.text
        # The service folds what the kills left queued, within SPEC §7's 5 seconds.
        started = time.monotonic()
        while asyncio.run(_state(database_url, account_id))[3] and time.monotonic() - started < 5:
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert asyncio.run(_state(database_url, account_id)) == (N, N, N, 0)
    assert asyncio.run(_rollups_match_the_log(database_url))
