"""The default ingest mode: POST /v1/calls answers at commit, the background folder puts the
batch in the rollups within SPEC §7's 5 seconds, every call counted exactly once."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from perf_metrics.app import create_app
from perf_metrics.rollups import folder as rollup_folder
from perf_metrics.rollups.folder import Folder
from perf_metrics.settings import Settings
from tests.conftest import Admin, bearer, rollups_report
from tests.factories import random_log
from tests.factories import review_call as _record

N = 400


@pytest.fixture
def app_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"ingest_waits_for_fold": False, "fold_interval_s": 0.5})


async def totals(engine: AsyncEngine) -> tuple[int, int, int, int]:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT (SELECT count(*) FROM calls),"
                    " (SELECT coalesce(sum(calls), 0) FROM rollup_account_daily),"
                    " (SELECT coalesce(sum(calls), 0) FROM rollup_model_daily),"
                    " (SELECT count(*) FROM calls_pending)"
                )
            )
        ).one()
    return int(row[0]), int(row[1]), int(row[2]), int(row[3])


async def test_a_batch_shows_in_the_metrics_within_seconds_of_its_answer(
    client: httpx.AsyncClient, admin_ops: Admin
) -> None:
    acct = await admin_ops.account(tier="enterprise")
    customer = (await admin_ops.key(acct))["key"]
    ingest = (await admin_ops.key(None))["key"]
    now = datetime.now(UTC)
    calls = random_log(random.Random(3), [acct], N, now - timedelta(days=2), now)
    response = await client.post("/v1/calls", json={"calls": calls}, headers=bearer(ingest))
    assert response.json() == {"received": N, "inserted": N, "duplicates": 0}
    live = sum(1 for c in calls if c["environment"] == "live")  # what a live key sees
    answered = time.monotonic()
    while True:
        overview = await client.get("/v1/metrics/overview?days=7", headers=bearer(customer))
        if overview.json()["summary"]["total_calls"] == live:
            break
        assert overview.json()["summary"]["total_calls"] == 0  # a batch shows whole, or not
        assert time.monotonic() - answered < 5, "not in the metrics 5 s after the answer"
        await asyncio.sleep(0.05)


async def test_concurrent_batches_are_folded_exactly_once(
    client: httpx.AsyncClient, admin_ops: Admin, engine: AsyncEngine
) -> None:
    accounts = [await admin_ops.account() for _ in range(3)]
    ingest = (await admin_ops.key(None))["key"]
    now = datetime.now(UTC)
    calls = random_log(random.Random(4), accounts, 3 * N, now - timedelta(days=3), now)
    batches = [calls[i : i + 150] for i in range(0, len(calls), 150)]
    # Every batch twice, all at once: duplicates are skipped, never folded.
    responses = await asyncio.gather(
        *(
            client.post("/v1/calls", json={"calls": b}, headers=bearer(ingest))
            for b in batches + batches
        )
    )
    assert sum(r.json()["inserted"] for r in responses) == len(calls)
    started = time.monotonic()
    while (state := await totals(engine)) != (len(calls), len(calls), len(calls), 0):
        assert state[1] <= len(calls) and state[2] <= len(calls), state
        assert time.monotonic() - started < 5, state
        await asyncio.sleep(0.05)
    # And every other rollup and measure, as a fold of the whole log would have them.
    assert (await rollups_report(engine))["ok"]


async def test_a_flush_waits_for_a_fold_that_started_after_it(
    settings: Settings, admin_ops: Admin, engine: AsyncEngine
) -> None:
    """Group commit: flushes that arrive while a fold runs share one more fold, and when each
    returns everything committed before it is folded."""
    acct = await admin_ops.account()
    ingest = (await admin_ops.key(None))["key"]
    now = datetime.now(UTC)
    calls = random_log(random.Random(5), [acct], N, now - timedelta(days=1), now)
    app = create_app(settings.model_copy(update={"fold_interval_s": 2}))
    async with app.router.lifespan_context(app):
        folder: Folder = app.state.folder
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as other:
            for i in range(0, N, 100):
                # Waits for the fold (these settings): each answer finds its batch folded.
                await other.post(
                    "/v1/calls", json={"calls": calls[i : i + 100]}, headers=bearer(ingest)
                )
                assert (await totals(engine))[1:] == (i + 100, i + 100, 0)
        await asyncio.gather(*(folder.flush() for _ in range(5)))
        assert await totals(engine) == (N, N, N, 0)


async def test_the_folder_vacuums_the_queue_so_it_does_not_grow(
    settings: Settings, admin_ops: Admin, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server may run without autovacuum (this machine's does): the folder's own VACUUM lets
    later batches reuse the pages of folded calls instead of extending the queue forever."""
    monkeypatch.setattr(rollup_folder, "VACUUM_EVERY", 100)
    acct = await admin_ops.account()
    ingest = (await admin_ops.key(None))["key"]
    now = datetime.now(UTC)
    calls = random_log(random.Random(6), [acct], 10 * N, now - timedelta(days=1), now)
    app = create_app(settings)  # waits for the fold: each answer is after a fold (and vacuum)
    sizes = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as other:
            for i in range(0, len(calls), N):
                response = await other.post(
                    "/v1/calls", json={"calls": calls[i : i + N]}, headers=bearer(ingest)
                )
                assert response.json()["inserted"] == N
                async with engine.connect() as conn:
                    sizes.append(
                        await conn.scalar(text("SELECT pg_relation_size('calls_pending')"))
                    )
    assert await totals(engine) == (10 * N, 10 * N, 10 * N, 0)
    # Without the vacuum the file grows by one batch's worth per batch (10x at the end).
    assert sizes[-1] <= 2 * sizes[0], sizes


async def test_a_failed_vacuum_fails_neither_the_fold_nor_the_batch(
    settings: Settings,
    admin_ops: Admin,
    engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The vacuum runs after the fold has committed: its failure is logged, nothing else."""
    monkeypatch.setattr(rollup_folder, "VACUUM_EVERY", 1)
    monkeypatch.setattr(rollup_folder, "VACUUM_QUEUE", "VACUUM calls_pending_no_such_table")
    acct = await admin_ops.account()
    ingest = (await admin_ops.key(None))["key"]
    now = datetime.now(UTC)
    calls = random_log(random.Random(7), [acct], N, now - timedelta(days=1), now)
    app = create_app(settings)  # waits for the fold, so the vacuum runs in the request
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as other:
            response = await other.post("/v1/calls", json={"calls": calls}, headers=bearer(ingest))
    assert response.status_code == 200, response.text
    assert await totals(engine) == (N, N, N, 0)
    assert "vacuum of the ingest queue failed" in caplog.text


# Found in review: each failed before its fix.


async def test_a_batch_whose_fold_fails_is_stored_and_folded_within_seconds(
    settings: Settings, admin_ops: Admin, engine: AsyncEngine
) -> None:
    """The calls are committed before the fold; a fold that times out leaves them queued, and
    the background folder puts them in the rollups once it can (SPEC §7: within 5 s)."""
    await admin_ops.account(account_id="acct_review")
    ingest = (await admin_ops.key(None))["key"]
    app = create_app(
        settings.model_copy(update={"db_statement_timeout_ms": 300, "fold_interval_s": 0.2})
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            async with engine.connect() as blocker:
                await blocker.execute(text("LOCK TABLE rollup_account_daily IN EXCLUSIVE MODE"))
                response = await client.post(
                    "/v1/calls", json={"calls": [_record("t1")]}, headers=bearer(ingest)
                )
                assert response.json() == {"received": 1, "inserted": 1, "duplicates": 0}
                async with engine.connect() as conn:
                    assert await conn.scalar(text("SELECT count(*) FROM calls_pending")) == 1
                await blocker.rollback()
            started = time.monotonic()
            while time.monotonic() - started < 5:
                async with engine.connect() as conn:
                    folded = await conn.scalar(
                        text("SELECT coalesce(sum(calls), 0) FROM rollup_account_daily")
                    )
                if folded == 1:
                    break
                await asyncio.sleep(0.1)
    assert folded == 1
    async with engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM calls_pending")) == 0
