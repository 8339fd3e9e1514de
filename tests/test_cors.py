"""CORS (SPEC §12): the read routes open to pages on other origins, preflights free, ingest
closed to browsers. Over the ASGI app with real keys and a real rate limiter."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI

from perf_metrics.app import create_app
from perf_metrics.settings import Settings
from tests.conftest import Admin, assert_envelope, bearer

DASHBOARD = "https://dash.example.com"
ELSEWHERE = "https://evil.example.net"
PREFLIGHT = {
    "Access-Control-Request-Method": "GET",
    "Access-Control-Request-Headers": "authorization",
}


@asynccontextmanager
async def served(settings: Settings, **changes: object) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = create_app(settings.model_copy(update=changes))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


async def test_any_origin_by_default(client: httpx.AsyncClient, admin_ops: Admin) -> None:
    await admin_ops.account(account_id="acct_cors")
    key = (await admin_ops.key("acct_cors"))["key"]
    for path in ("/v1/metrics/overview", "/v1/metrics/breakdown?group_by=model", "/v1/account"):
        pre = await client.options(path, headers={"Origin": ELSEWHERE, **PREFLIGHT})
        assert pre.status_code == 204, path  # no key needed
        assert pre.headers["access-control-allow-origin"] == "*"
        assert pre.headers["access-control-allow-methods"] == "GET, HEAD"
        assert "Authorization" in pre.headers["access-control-allow-headers"]
        assert "access-control-allow-credentials" not in pre.headers  # never credentials
        got = await client.get(path, headers={"Origin": ELSEWHERE, **bearer(key)})
        assert got.status_code == 200, got.text
        assert got.headers["access-control-allow-origin"] == "*"
        exposed = got.headers["access-control-expose-headers"]
        for name in ("ETag", "X-RateLimit-Remaining", "Retry-After", "X-Request-ID"):
            assert name in exposed
    # Errors too, so that the page can say what went wrong (a bad key, a bad parameter).
    for headers in ({"Authorization": "Bearer pk_live_nope"}, bearer(key)):
        bad = await client.get(
            "/v1/metrics/overview?days=0", headers={"Origin": ELSEWHERE, **headers}
        )
        assert bad.status_code in (400, 401)
        assert bad.headers["access-control-allow-origin"] == "*"
    # A request without Origin (curl, a server) gets no CORS headers at all.
    plain = await client.get("/v1/metrics/overview", headers=bearer(key))
    assert "access-control-allow-origin" not in plain.headers


async def test_ingest_is_not_opened_to_browsers(
    client: httpx.AsyncClient, admin_ops: Admin
) -> None:
    ingest = (await admin_ops.key(None))["key"]
    pre = await client.options(
        "/v1/calls",
        headers={"Origin": DASHBOARD, "Access-Control-Request-Method": "POST", **bearer(ingest)},
    )
    assert "access-control-allow-origin" not in pre.headers
    assert pre.status_code in (404, 405)
    sent = await client.post(
        "/v1/calls", json={"calls": []}, headers={"Origin": DASHBOARD, **bearer(ingest)}
    )
    assert "access-control-allow-origin" not in sent.headers
    health = await client.get("/healthz", headers={"Origin": DASHBOARD})
    assert "access-control-allow-origin" not in health.headers


async def test_a_list_of_origins_echoes_the_allowed_and_refuses_the_rest(
    settings: Settings, admin_ops: Admin
) -> None:
    await admin_ops.account(account_id="acct_cors")
    key = (await admin_ops.key("acct_cors"))["key"]
    async with served(settings, cors_allow_origins=f"{DASHBOARD}, https://other.example.org") as c:
        pre = await c.options("/v1/metrics/daily", headers={"Origin": DASHBOARD, **PREFLIGHT})
        assert pre.status_code == 204
        assert pre.headers["access-control-allow-origin"] == DASHBOARD
        assert pre.headers["vary"] == "Origin"
        got = await c.get("/v1/metrics/daily", headers={"Origin": DASHBOARD, **bearer(key)})
        assert got.headers["access-control-allow-origin"] == DASHBOARD
        assert "Origin" in got.headers["vary"]

        refused = await c.options("/v1/metrics/daily", headers={"Origin": ELSEWHERE, **PREFLIGHT})
        error = assert_envelope(refused, 403, "origin_not_allowed")
        assert ELSEWHERE in error["message"] and "CORS_ALLOW_ORIGINS" in error["message"]
        assert "access-control-allow-origin" not in refused.headers
        other = await c.get("/v1/metrics/daily", headers={"Origin": ELSEWHERE, **bearer(key)})
        assert other.status_code == 200  # answered (curl could ask too), but not to the page
        assert "access-control-allow-origin" not in other.headers
    async with served(settings, cors_allow_origins="") as closed:
        pre = await closed.options("/v1/metrics/daily", headers={"Origin": DASHBOARD, **PREFLIGHT})
        assert pre.status_code == 403


async def test_preflights_spend_no_rate_limit(settings: Settings, admin_ops: Admin) -> None:
    await admin_ops.account(account_id="acct_cors", tier="free")  # 10 a minute
    key = (await admin_ops.key("acct_cors"))["key"]
    async with served(settings, rate_limit_enabled=True) as c:
        first = await c.get("/v1/metrics/overview", headers={"Origin": DASHBOARD, **bearer(key)})
        remaining = int(first.headers["x-ratelimit-remaining"])
        for _ in range(15):  # more than the tier allows
            pre = await c.options(
                "/v1/metrics/overview", headers={"Origin": DASHBOARD, **PREFLIGHT}
            )
            assert pre.status_code == 204
        then = await c.get("/v1/metrics/overview", headers={"Origin": DASHBOARD, **bearer(key)})
        assert then.status_code == 200
        assert int(then.headers["x-ratelimit-remaining"]) == remaining - 1


@pytest.mark.parametrize("setting", ["*", " * ", f"{DASHBOARD},", ""])
def test_the_setting_parses(setting: str) -> None:
    from perf_metrics.cors import parse_origins

    expected = {"*": None, " * ": None, f"{DASHBOARD},": (DASHBOARD,), "": ()}[setting]
    assert parse_origins(setting) == expected
