"""Regression tests for defects found in review: each failed before its fix."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import types
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import cast

import httpx
import numpy as np
import orjson
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from perf_metrics.app import create_app
from perf_metrics.metrics import queries as q
from perf_metrics.metrics.histogram_cache import HistogramCache
from perf_metrics.metrics.query import HourQuery, MetricsQuery, Scope
from perf_metrics.metrics.windows import HourWindow
from perf_metrics.settings import Settings
from tests.clock import set_clock
from tests.conftest import Admin, assert_envelope, bearer
from tests.factories import json_call

_record = json_call.but(
    account_id="acct_review",
    created_at="2026-03-03T10:00:00Z",
    model="gpt-4o",
    input_tokens=1000,
    output_tokens=100,
    cost_usd=0.01,
    latency_ms=300,
)


async def test_histogram_cache_uses_only_this_snapshot(monkeypatch: pytest.MonkeyPatch) -> None:
    """A slower request on a newer snapshot must not pick up what an older one stored."""
    b1 = datetime(2026, 1, 10, 10, tzinfo=UTC)
    b2 = datetime(2026, 1, 10, 11, tzinfo=UTC)
    row = types.SimpleNamespace
    snapshots = {
        "old": {("h", "openai", b1): 5},
        "new": {("h", "openai", b1): 7, ("h", "openai", b2): 3},
    }
    gate = asyncio.Event()

    # Each fake query reads the snapshot its `conn` names.
    async def index(conn: str, query: HourQuery) -> list[types.SimpleNamespace]:
        return [row(grain=g, provider=p, bucket=b, served_calls=n)
                for (g, p, b), n in snapshots[conn].items()]  # fmt: skip

    async def histograms(
        conn: str, query: HourQuery, keys: list[tuple[str, str, datetime]]
    ) -> list[types.SimpleNamespace]:
        if conn == "new":
            await gate.wait()
        return [
            row(grain=g, provider=p, bucket=b, served_calls=snapshots[conn][(g, p, b)], lower=50,
                hist=[snapshots[conn][(g, p, b)]])
            for g, p, b in keys
        ]  # fmt: skip

    monkeypatch.setattr(q, "select_histogram_index", index)
    monkeypatch.setattr(q, "select_histograms", histograms)
    cache = HistogramCache()
    cache.entries[("live", "h", "openai", b1)] = (7, (50, np.asarray([7])))
    query = MetricsQuery(Scope("acct_review", "live"), HourWindow(b1, b2, 1))
    old, new = cast(AsyncConnection, "old"), cast(AsyncConnection, "new")
    newer = asyncio.create_task(cache.window(new, query))
    await asyncio.sleep(0)
    await cache.window(old, query)  # stores the old b1 (5) while `newer` waits
    gate.set()
    used = await newer
    assert sum(int(counts[1].sum()) for _, _, counts in used) == 7 + 3


async def test_ndjson_line_with_two_records_is_a_400(
    client: httpx.AsyncClient, admin_ops: Admin, engine: AsyncEngine
) -> None:
    await admin_ops.account(account_id="acct_review")
    ingest = (await admin_ops.key(None))["key"]
    body = orjson.dumps(_record("a")) + b"," + orjson.dumps(_record("b")) + b"\n"
    response = await client.post(
        "/v1/calls", content=body,
        headers={**bearer(ingest), "Content-Type": "application/x-ndjson"},
    )  # fmt: skip
    error = assert_envelope(response, 400, "invalid_call_record")
    assert error["errors"][0]["index"] == 0
    async with engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM calls")) == 0


async def test_a_statement_timeout_while_writing_a_batch_is_503(
    settings: Settings, admin_ops: Admin, engine: AsyncEngine
) -> None:
    await admin_ops.account(account_id="acct_review")
    ingest = (await admin_ops.key(None))["key"]
    app = create_app(settings.model_copy(update={"db_statement_timeout_ms": 300}))
    async with engine.connect() as blocker:
        await blocker.execute(text("LOCK TABLE calls_pending IN EXCLUSIVE MODE"))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                response = await client.post(
                    "/v1/calls", json={"calls": [_record("t1")]}, headers=bearer(ingest)
                )
        await blocker.rollback()
    assert_envelope(response, 503, "service_unavailable")
    assert "retry-after" in response.headers
    async with engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM calls")) == 0


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


async def test_a_slow_upload_holds_no_database_connection(
    settings: Settings, admin_ops: Admin
) -> None:
    await admin_ops.account(account_id="acct_review")
    ingest = (await admin_ops.key(None))["key"]
    reader = (await admin_ops.key("acct_review"))["key"]
    app = create_app(
        settings.model_copy(
            update={"db_pool_size": 1, "db_max_overflow": 0, "db_pool_timeout_s": 0.5}
        )
    )
    released = asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield b'{"calls": ['
        await released.wait()  # the upload stalls here while another request runs
        yield orjson.dumps(_record("slow")) + b"]}"

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            upload = asyncio.create_task(
                client.post(
                    "/v1/calls", content=slow_body(),
                    headers={**bearer(ingest), "Content-Type": "application/json"},
                )
            )  # fmt: skip
            await asyncio.sleep(0.3)
            other = await client.get("/v1/account", headers=bearer(reader))
            released.set()
            done = await upload
    assert other.status_code == 200, other.text
    assert done.status_code == 200, done.text


async def test_a_price_change_reaches_cached_customer_answers(
    client: httpx.AsyncClient, app: FastAPI, admin_ops: Admin, engine: AsyncEngine
) -> None:
    set_clock(app, datetime(2026, 3, 10, tzinfo=UTC))
    await admin_ops.account(account_id="acct_review")
    ingest = (await admin_ops.key(None))["key"]
    key = (await admin_ops.key("acct_review"))["key"]
    await client.post("/v1/calls", json={"calls": [_record("p1")]}, headers=bearer(ingest))

    async def cost_if_gpt4o() -> float:
        body = (await client.get("/v1/metrics/customer", headers=bearer(key))).json()
        return float(body["cost_analysis"]["vs_gpt4o_only"]["cost_if_gpt4o"])

    # At list price: 1000 x $2.50 + 100 x $10.00 per million tokens = $0.0035 -> 0.0.
    before = await cost_if_gpt4o()
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE model_prices SET input_usd_per_mtok = 2500, output_usd_per_mtok = 10000,"
                " updated_at = now() WHERE model = 'gpt-4o'"
            )
        )
    try:
        after = await cost_if_gpt4o()
    finally:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE model_prices SET input_usd_per_mtok = 2.50,"
                    " output_usd_per_mtok = 10.00 WHERE model = 'gpt-4o'"
                )
            )
    # 1000 x 2500/1e6 + 100 x 10000/1e6 = 2.5 + 1.0
    assert (before, after) == (0.0, 3.5)


async def test_projected_month_end_is_rounded_once(
    client: httpx.AsyncClient, app: FastAPI, admin_ops: Admin
) -> None:
    set_clock(app, datetime(2026, 3, 10, tzinfo=UTC))
    await admin_ops.account(account_id="acct_review")
    ingest = (await admin_ops.key(None))["key"]
    key = (await admin_ops.key("acct_review"))["key"]
    call = _record("m1", cost_usd=10.867)
    await client.post("/v1/calls", json={"calls": [call]}, headers=bearer(ingest))
    body = (
        await client.get("/v1/metrics/customer?end_date=2026-03-04&days=7", headers=bearer(key))
    ).json()
    # Before today (Mar 1-3): 10.867; R = 10.867 / 7 over Feb 25 - Mar 3; 28 days left counting
    # today: 10.867 + 10.867 x 28 / 7 = 54.335 exactly -> 54.34 (half up).
    assert body["cost_analysis"]["projected_month_end"] == 54.34


def test_a_bad_database_url_is_reported_without_its_password() -> None:
    env = {**os.environ, "DATABASE_URL": "mysql://admin:S3cretPassw0rd@db.internal/prod"}
    proc = subprocess.run(
        [sys.executable, "-m", "perf_metrics.cli", "migrate"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "DATABASE_URL" in proc.stderr
    assert "S3cretPassw0rd" not in proc.stderr
