"""The worker as it runs: `perf-metrics worker` on its own, serve's in-process one, its upkeep,
and a rule whose evaluation fails."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import timedelta

import httpx
import orjson
import pytest
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from perf_metrics.alerts import rules
from perf_metrics.alerts.tables import alerts
from perf_metrics.db import accounts
from perf_metrics.metrics.windows import floor_5min
from perf_metrics.rollups.tables import account_5m
from perf_metrics.settings import Settings
from tests.alerts.helpers import FakeClock, add_endpoint, plain_url, real_now, tenant, worker
from tests.alerts.test_delivery import emit
from tests.alerts.test_rules import call, create, failure_call, store
from tests.conftest import Admin, bearer, rollups_report
from tests.receiver import running_receiver
from tests.servers import live_server


@pytest.fixture
def app_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"webhooks_allow_loopback": True})


async def test_the_five_minute_rollup_keeps_two_days_verifies_and_is_pruned(
    client: httpx.AsyncClient, admin_ops: Admin, engine: AsyncEngine
) -> None:
    who = await tenant(admin_ops)
    now = real_now()
    await store(
        engine,
        [
            call(who.account_id, now - timedelta(hours=1)),
            failure_call(who.account_id, now - timedelta(hours=1), True),
            call(who.account_id, now - timedelta(days=3)),  # beyond its two days: not counted
        ],
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(select(account_5m))).all()
    assert [(r.bucket, r.calls, r.failures) for r in rows] == [
        (floor_5min(now - timedelta(hours=1)), 2, 1)
    ]
    assert (await rollups_report(engine))["ok"]
    # A bucket that has aged past two days is not compared, and the upkeep deletes it.
    async with engine.begin() as conn:
        await conn.execute(
            account_5m.insert().values(
                account_id=who.account_id,
                environment="live",
                bucket=floor_5min(now - timedelta(days=2, minutes=10)),
                calls=5,
                failures=5,
            )
        )
    assert (await rollups_report(engine))["ok"]
    w, sender = worker(engine, FakeClock(now))
    await w.upkeep()
    await sender.close()
    async with engine.connect() as conn:
        assert await conn.scalar(select(text("count(*)")).select_from(account_5m)) == 1


async def test_a_rule_whose_data_cannot_be_read_keeps_its_state_and_says_why(
    client: httpx.AsyncClient, admin_ops: Admin, engine: AsyncEngine
) -> None:
    who = await tenant(admin_ops)
    alert_id = await create(client, who, "month_to_date_cost", budget_usd=10)
    async with engine.begin() as conn:
        await conn.execute(update(alerts).values(state="firing"))
        # A zone the service cannot load (never written by the API): the read fails.
        await conn.execute(update(accounts).values(timezone="Nowhere/Atlantis"))
    await rules.evaluate_due(engine, FakeClock(real_now()))
    view = (await client.get(f"/v1/alerts/{alert_id}", headers=who.headers)).json()
    assert view["state"] == "firing" and view["last_error"]
    assert view["evaluated_at"] is not None
    metrics = (await client.get("/metrics")).text
    assert 'perf_metrics_alert_evaluations_total{outcome="error",type="month_to_date_cost"}' in (
        metrics
    )


async def test_the_worker_command_delivers_and_stops_on_sigterm(
    client: httpx.AsyncClient, admin_ops: Admin, engine: AsyncEngine, settings: Settings
) -> None:
    who = await tenant(admin_ops)
    with running_receiver() as receiver:
        await add_endpoint(client, who, receiver.url)
        (event_id,) = await emit(engine, who, real_now())
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "perf_metrics.cli", "worker"),
            env={
                **os.environ,
                "DATABASE_URL": plain_url(settings),
                "WEBHOOKS_ALLOW_LOOPBACK": "true",
            },
        )
        try:
            (got,) = await asyncio.to_thread(receiver.wait_for, 1, 20)
        finally:
            proc.send_signal(signal.SIGTERM)
            status = await asyncio.wait_for(proc.wait(), 20)
    assert got.headers["webhook-id"] == event_id
    assert status == 0


async def test_serve_runs_a_worker_in_process(
    admin_ops: Admin, engine: AsyncEngine, settings: Settings
) -> None:
    """An alert made over HTTP fires and is delivered by the server's own worker."""
    who = await tenant(admin_ops)
    await store(engine, [call(who.account_id, real_now() - timedelta(minutes=1), cost_usd=9.5)])
    with running_receiver() as receiver:
        env = {"RUN_WORKER": "true", "WEBHOOKS_ALLOW_LOOPBACK": "true"}
        with live_server(plain_url(settings), **env) as base:
            async with httpx.AsyncClient(base_url=base, headers=bearer(who.secret)) as http:
                made = await http.post("/v1/webhook-endpoints", json={"url": receiver.url})
                assert made.status_code == 201
                response = await http.post(
                    "/v1/alerts",
                    json={
                        "name": "tiny budget",
                        "type": "month_to_date_cost",
                        "params": {"budget_usd": 5},
                    },
                )
                assert response.status_code == 201
                (got,) = await asyncio.to_thread(receiver.wait_for, 1, 20)
                view = (await http.get(f"/v1/alerts/{response.json()['id']}")).json()
    assert b'"alert.firing"' in got.body
    assert view["state"] == "firing" and view["value"] == 9.5


async def test_listen_prints_each_event_and_checks_its_signature() -> None:
    from perf_metrics.webhooks import signing
    from perf_metrics.webhooks.egress import Sender
    from tests.servers import free_port

    secret, port = signing.new_secret(), free_port()
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "perf_metrics.cli", "listen", "--port", str(port)),
        *("--secret", secret),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    sender = Sender(allow_loopback=True)
    try:
        assert proc.stderr is not None and proc.stdout is not None
        assert b"listening on" in await asyncio.wait_for(proc.stderr.readline(), 20)
        body = b'{"type":"webhook.test","timestamp":"2026-12-03T10:00:00Z","data":{}}'
        good = signing.headers([secret], "msg_ok", int(real_now().timestamp()), body)
        bad = signing.headers([signing.new_secret()], "msg_bad", int(real_now().timestamp()), body)
        url = f"http://127.0.0.1:{port}/hooks"
        assert (await sender.send(url, good, body)).status_code == 200
        assert (await sender.send(url, bad, body)).status_code == 400
        lines = [await asyncio.wait_for(proc.stdout.readline(), 10) for _ in range(2)]
    finally:
        await sender.close()
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), 20)
    printed = [orjson.loads(line) for line in lines]
    assert [(p["webhook-id"], p["verified"], p["type"]) for p in printed] == [
        ("msg_ok", True, "webhook.test"),
        ("msg_bad", False, "webhook.test"),
    ]
