"""Structured access logs and the Prometheus endpoint."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from perf_metrics.observability import JsonFormatter
from perf_metrics.settings import Settings
from tests.conftest import Admin, bearer
from tests.servers import free_port, wait_until_healthy


async def test_one_access_line_per_request_without_secrets(
    client: httpx.AsyncClient, admin_ops: Admin, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="perf_metrics.access")
    acct = await admin_ops.account()
    key = await admin_ops.key(acct)
    await client.get("/v1/metrics/overview?days=3", headers=bearer(key["key"]))
    await client.get("/v1/metrics/overview", headers=bearer(key["key"] + "x"))
    # The access fields are LogRecord extras, which the type does not declare.
    records: list[Any] = [r for r in caplog.records if r.name == "perf_metrics.access"]
    assert len(records) == 2
    ok, bad = records
    assert (ok.method, ok.route, ok.status) == ("GET", "/v1/metrics/overview", 200)
    assert ok.account_id == acct and ok.key_id == key["key_id"]
    assert ok.request_id.startswith("req_") and ok.duration_ms >= 0
    assert (bad.status, bad.account_id) == (401, None)
    line = JsonFormatter().format(ok)
    parsed = json.loads(line)
    assert parsed["route"] == "/v1/metrics/overview" and parsed["status"] == 200
    assert key["key"] not in caplog.text and key["key"] not in line
    assert "days=3" not in line  # no query strings either


def _sample(body: str, name: str, **labels: str) -> float:
    """The value of one Prometheus sample in a text exposition (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in body.splitlines():
        if line.startswith(name + "{"):
            got = ",".join(sorted(line[len(name) + 1 : line.index("}")].split(",")))
            if got == want:
                return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_prometheus_endpoint_counts_requests_ingest_and_rejections(
    client: httpx.AsyncClient, admin_ops: Admin, settings: Settings
) -> None:
    import random
    from datetime import UTC, datetime

    from perf_metrics.app import create_app
    from tests.factories import random_call

    acct = await admin_ops.account()
    key = await admin_ops.key(acct)
    ingest = await admin_ops.key(None)
    before = (await client.get("/metrics")).text
    await client.get("/v1/metrics/daily", headers=bearer(key["key"]))
    rng = random.Random(2)
    calls = [
        random_call(rng, acct, "live", datetime(2026, 10, 1, tzinfo=UTC), f"o{i}") for i in range(7)
    ]
    await client.post("/v1/calls", json={"calls": calls + calls[:2]}, headers=bearer(ingest["key"]))
    # A 429 from an app whose unauthenticated budget is 1 a minute.
    limited = create_app(
        settings.model_copy(
            update={"rate_limit_enabled": True, "unauthenticated_rate_limit_per_minute": 1}
        )
    )
    async with limited.router.lifespan_context(limited):
        transport = httpx.ASGITransport(app=limited)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as other:
            codes = [(await other.get("/v1/metrics/overview")).status_code for _ in range(2)]
    assert codes == [401, 429]

    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    after = response.text

    def delta(name: str, **labels: str) -> float:
        return _sample(after, name, **labels) - _sample(before, name, **labels)

    route = {"method": "GET", "route": "/v1/metrics/daily", "status": "200"}
    assert delta("perf_metrics_http_requests_total", **route) == 1
    assert (
        delta(
            "perf_metrics_http_request_duration_seconds_count",
            route="/v1/metrics/daily",
            status="200",
        )
        == 1
    )
    assert delta("perf_metrics_ingest_calls_total", outcome="inserted") == 7
    assert delta("perf_metrics_ingest_calls_total", outcome="duplicate") == 2
    assert delta("perf_metrics_rate_limit_rejections_total", bucket="unauth") == 1
    assert "perf_metrics_db_pool_checked_out " in after
    assert key["key"] not in after


@pytest.mark.slow
def test_demo_prints_a_key_and_every_curl_line_answers(database_url: str) -> None:
    """The README's demo, on its own embedded Postgres, stopped with Ctrl-C."""
    home = tempfile.mkdtemp(prefix="perf-metrics-demo-")
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(PERF_METRICS_HOME=home, PERF_METRICS_DEMO_CALLS="20000")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "perf_metrics.cli", "demo", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        curls = []
        dashboard = None
        for line in proc.stdout:
            if line.startswith("curl "):
                curls.append(line.strip())
            if line.startswith("dashboard"):
                dashboard = line.rsplit(" ", 1)[1].strip()
            if line.startswith("API docs"):
                break
        # the six endpoints, two breakdowns, a CSV of the users, customer with a baseline
        assert len(curls) == 10
        wait_until_healthy(f"http://127.0.0.1:{port}", proc)
        assert dashboard == f"http://127.0.0.1:{port}/dashboard"
        assert httpx.get(dashboard, timeout=10).status_code == 200
        for curl in curls:
            url = re.search(r'"(http[^"]+)"', curl).group(1)  # type: ignore[union-attr]
            key = re.search(r"Bearer (\S+?)\"", curl).group(1)  # type: ignore[union-attr]
            response = httpx.get(url, headers={"Authorization": f"Bearer {key}"}, timeout=10)
            assert response.status_code == 200, (url, response.text)
            if "format=csv" in url:
                assert response.text.startswith("value,calls,") and response.text.count("\n") > 10
                continue
            body = response.json()
            assert any(v not in ({}, [], None, 0) for v in body.values() if v != body.get("period"))
            if "group_by=metadata." in url:  # the demo account tracks it: named groups
                assert any(g["value"] is not None for g in body["groups"])
            if "baseline_model=" in url:  # and has a monthly budget
                analysis = body["cost_analysis"]
                assert analysis["budget"]["status"] in ("ok", "at_risk", "over")
                assert analysis["vs_baseline"]["model"] == "claude-sonnet-4-5"
        overview = httpx.get(
            re.search(r'"(http[^"]+)"', curls[0]).group(1),  # type: ignore[union-attr]
            headers={"Authorization": f"Bearer {key}"},
        ).json()
        assert overview["summary"]["total_calls"] > 0
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        if proc.stdout is not None:
            proc.stdout.close()
    assert not any(home in " ".join(p) for p in _postgres_cmdlines()), (
        "the embedded Postgres is still running"
    )


def _postgres_cmdlines() -> list[list[str]]:
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    out.append(f.read().decode(errors="replace").split("\0"))
            except OSError:
                pass
    return out


def _gauge(body: str, name: str) -> float:
    """An unlabelled sample's value."""
    return next(
        float(line.split(" ")[1]) for line in body.splitlines() if line.startswith(name + " ")
    )


async def test_metrics_show_how_long_the_oldest_queued_call_has_waited(
    client: httpx.AsyncClient, admin_ops: Admin, engine: AsyncEngine, monkeypatch: Any
) -> None:
    import random
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import text

    from perf_metrics.rollups import fold as folds
    from perf_metrics.rollups.fold import FOLD_LOCK, FoldSize, fold
    from tests.conftest import store_records
    from tests.factories import random_log

    assert _gauge((await client.get("/metrics")).text, "perf_metrics_fold_lag_seconds") == 0
    accounts = [await admin_ops.account() for _ in range(3)]
    rng = random.Random(4)
    now = datetime.now(UTC)
    async with engine.connect() as holder:
        await holder.execute(text(FOLD_LOCK))  # every fold waits meanwhile
        async with engine.connect() as conn:
            for account in accounts:
                await store_records(
                    conn, random_log(rng, [account], 20, now - timedelta(days=2), now), folded=False
                )
            # The middle account's calls have waited longest (the scopes are walked in order).
            await conn.execute(
                text(
                    "UPDATE calls_pending SET queued_at = now() - interval '90 s'"
                    " WHERE account_id = :a AND environment = 'live'"
                ),
                {"a": sorted(accounts)[1]},
            )
            await conn.commit()
        body = (await client.get("/metrics")).text
        await holder.rollback()
    assert 90 <= _gauge(body, "perf_metrics_fold_lag_seconds") < 150
    # The process's fold size, after folds that ran out of time.
    monkeypatch.setattr(folds, "SIZE", FoldSize(calls=1_562, shrunk=5))
    body = (await client.get("/metrics")).text
    assert _gauge(body, "perf_metrics_fold_calls") == 1_562
    assert _gauge(body, "perf_metrics_fold_timeouts") == 5
    monkeypatch.undo()
    async with engine.connect() as conn:
        await fold(conn)
    assert _gauge((await client.get("/metrics")).text, "perf_metrics_fold_lag_seconds") == 0
