"""Per-tier limits, shared budgets, bad-key throttling, headers, Redis across processes."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import secrets
import subprocess
import sys
import time

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from perf_metrics.app import create_app
from perf_metrics.keys import generate_key
from perf_metrics.settings import Settings
from tests.conftest import Admin, assert_envelope, bearer
from tests.servers import free_port

REDIS_URL = os.environ.get("TEST_REDIS_URL")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="TEST_REDIS_URL not set")


@pytest.fixture
def app_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "rate_limit_enabled": True,
            "unauthenticated_rate_limit_per_minute": 5,
            "ingest_rate_limit_per_minute": 3,
        }
    )


async def overview(client: httpx.AsyncClient, key: str) -> httpx.Response:
    return await client.get("/v1/metrics/overview", headers=bearer(key))


@pytest.mark.parametrize(("tier", "limit"), [("free", 10), ("pro", 60), ("enterprise", 300)])
async def test_exactly_the_tier_limit_succeeds(
    client: httpx.AsyncClient, admin_ops: Admin, tier: str, limit: int
) -> None:
    acct = await admin_ops.account(tier=tier)
    key = (await admin_ops.key(acct))["key"]
    started = time.time()
    for i in range(limit):
        if time.time() - started > 55:  # the 60 s window may turn over: nothing to judge
            pytest.skip("the machine was too slow to send the requests within one window")
        response = await overview(client, key)
        assert response.status_code == 200, (i, response.text)
        assert response.headers["x-ratelimit-limit"] == str(limit)
        assert response.headers["x-ratelimit-remaining"] == str(limit - i - 1)
        reset = int(response.headers["x-ratelimit-reset"])
        # The window opened at the first request, at most now; the header rounds its end up.
        assert started <= reset <= math.ceil(time.time()) + 60
        assert response.headers["ratelimit-policy"] == f'"default";q={limit};w=60'
    refused = await overview(client, key)
    error = assert_envelope(refused, 429, "rate_limit_exceeded")
    assert error["type"] == "rate_limit_error"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert refused.headers["x-ratelimit-limit"] == str(limit)


async def test_keys_of_one_account_share_a_budget_and_others_are_untouched(
    client: httpx.AsyncClient, admin_ops: Admin
) -> None:
    acct = await admin_ops.account(tier="free")
    live, test = (
        (await admin_ops.key(acct, "live"))["key"],
        (await admin_ops.key(acct, "test"))["key"],
    )
    other = (await admin_ops.key(await admin_ops.account(tier="free")))["key"]
    statuses = [(await overview(client, k)).status_code for k in [live, test] * 5]
    assert statuses == [200] * 10
    assert (await overview(client, live)).status_code == 429
    assert (await client.get("/v1/metrics/daily", headers=bearer(test))).status_code == 429
    assert (await overview(client, other)).status_code == 200


async def test_every_metrics_endpoint_draws_on_the_same_budget(
    client: httpx.AsyncClient, admin_ops: Admin
) -> None:
    key = (await admin_ops.key(await admin_ops.account(tier="free")))["key"]
    endpoints = ["overview", "customer", "performance", "failures", "providers", "daily"] * 2
    codes = [
        (await client.get(f"/v1/metrics/{e}", headers=bearer(key))).status_code
        for e in endpoints[:11]
    ]
    assert codes == [200] * 10 + [429]


async def test_a_tier_change_applies_without_a_restart(
    client: httpx.AsyncClient, admin_ops: Admin, engine: AsyncEngine
) -> None:
    from perf_metrics import accounts as admin

    acct = await admin_ops.account(tier="free")
    key = (await admin_ops.key(acct))["key"]
    for _ in range(10):
        assert (await overview(client, key)).status_code == 200
    assert (await overview(client, key)).status_code == 429
    async with engine.begin() as conn:
        await admin.update_account(conn, acct, tier="pro")
    response = await overview(client, key)
    assert response.status_code == 200
    assert response.headers["x-ratelimit-limit"] == "60"


async def test_budget_comes_back_after_the_window(settings: Settings, admin_ops: Admin) -> None:
    app = create_app(
        settings.model_copy(update={"rate_limit_enabled": True, "rate_limit_window_s": 1})
    )
    key = (await admin_ops.key(await admin_ops.account(tier="free")))["key"]
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            codes = [(await overview(client, key)).status_code for _ in range(11)]
            assert codes.count(200) >= 10 and codes[-1] in (200, 429)
            while codes[-1] == 200:  # crossed a window edge: exhaust the new window
                codes.append((await overview(client, key)).status_code)
            await asyncio.sleep(1.1)
            assert (await overview(client, key)).status_code == 200


async def test_bad_keys_are_throttled_per_address_but_good_keys_are_not(
    client: httpx.AsyncClient, admin_ops: Admin
) -> None:
    acct = await admin_ops.account(tier="pro")
    good = (await admin_ops.key(acct))["key"]
    codes = [(await overview(client, generate_key("pk_live_"))).status_code for _ in range(8)]
    assert codes == [401] * 5 + [429] * 3
    assert_envelope(await overview(client, "pk_live_nonsense"), 429, "rate_limit_exceeded")
    assert (await client.get("/v1/metrics/overview")).status_code == 429  # missing key too
    ok = await overview(client, good)
    assert ok.status_code == 200
    assert ok.headers["x-ratelimit-remaining"] == "59"  # the account budget was not touched


async def test_health_and_openapi_are_never_limited(client: httpx.AsyncClient) -> None:
    for _ in range(40):
        for path in ("/healthz", "/readyz", "/openapi.json"):
            assert (await client.get(path)).status_code == 200


async def test_ingest_has_its_own_limit_per_key(
    client: httpx.AsyncClient, admin_ops: Admin
) -> None:
    first, second = (await admin_ops.key(None))["key"], (await admin_ops.key(None))["key"]

    async def post(key: str) -> httpx.Response:
        return await client.post("/v1/calls", json={"calls": []}, headers=bearer(key))

    assert [(await post(first)).status_code for _ in range(4)] == [200, 200, 200, 429]
    assert (await post(second)).status_code == 200


async def test_redis_down_fails_open_with_a_warning(
    settings: Settings, admin_ops: Admin, caplog: pytest.LogCaptureFixture
) -> None:
    dead = Settings(
        **{
            **settings.model_dump(),
            "rate_limit_enabled": True,
            "redis_url": "redis://127.0.0.1:1/0",
        }
    )
    app = create_app(dead)
    key = (await admin_ops.key(await admin_ops.account(tier="free")))["key"]
    caplog.set_level(logging.WARNING)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            started = time.monotonic()
            codes = [(await overview(client, key)).status_code for _ in range(12)]
            assert codes == [200] * 12
            assert time.monotonic() - started < 10
    assert "rate-limit storage unavailable" in caplog.text
    assert sum("rate-limit storage unavailable" in r.message for r in caplog.records) == 1


@needs_redis
async def test_redis_backed_limits_count_once_across_apps(
    settings: Settings, admin_ops: Admin
) -> None:
    shared = settings.model_copy(
        update={
            "rate_limit_enabled": True,
            "redis_url": REDIS_URL,
            "rate_limit_key_prefix": "pm-test-" + secrets.token_hex(4),
        }
    )
    key = (await admin_ops.key(await admin_ops.account(tier="free")))["key"]
    apps = [create_app(shared), create_app(shared)]
    async with apps[0].router.lifespan_context(apps[0]), apps[1].router.lifespan_context(apps[1]):
        clients = [
            httpx.AsyncClient(transport=httpx.ASGITransport(app=a), base_url="http://t")
            for a in apps
        ]
        codes = [(await overview(clients[i % 2], key)).status_code for i in range(30)]
        for c in clients:
            await c.aclose()
    assert codes.count(200) == 10 and codes.count(429) == 20


@needs_redis
@pytest.mark.slow
async def test_two_uvicorn_processes_enforce_one_limit(database_url: str, admin_ops: Admin) -> None:
    key = (await admin_ops.key(await admin_ops.account(tier="free")))["key"]
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL or "",
        "RATE_LIMIT_KEY_PREFIX": "pm-proc-" + secrets.token_hex(4),
    }
    ports = [free_port(), free_port()]
    procs = [
        subprocess.Popen(  # noqa: ASYNC220 - servers outlive this call
            [
                sys.executable,
                "-m",
                "uvicorn",
                "perf_metrics.main:app",
                "--port",
                str(p),
                "--log-level",
                "warning",
            ],
            env=env,
        )
        for p in ports
    ]
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            for p in ports:
                for _ in range(100):
                    try:
                        if (await client.get(f"http://127.0.0.1:{p}/healthz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        await asyncio.sleep(0.1)
            codes = [
                (
                    await client.get(
                        f"http://127.0.0.1:{ports[i % 2]}/v1/metrics/overview", headers=bearer(key)
                    )
                ).status_code
                for i in range(30)
            ]
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=20)
    assert codes.count(200) == 10
    assert codes.count(429) == 20
