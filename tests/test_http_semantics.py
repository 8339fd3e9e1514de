"""HTTP details a client relies on: HEAD wherever GET works, a trailing slash answered in the
envelope (never a redirect to http://), and 304s that spend none of the tier's budget."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from perf_metrics.ratelimit import NOT_MODIFIED_LIMIT_FACTOR
from perf_metrics.settings import TIER_LIMITS, Settings
from tests.conftest import RESPONSE_SCHEMAS, Admin, assert_envelope, bearer
from tests.servers import live_server


@pytest.fixture
def app_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"rate_limit_enabled": True})


# --- HEAD -------------------------------------------------------------------------------------

PUBLIC_GETS = ["/healthz", "/readyz", "/openapi.json", "/docs", "/redoc", "/metrics"]


def _comparable(response: httpx.Response) -> dict[str, str]:
    """Headers that must be the same for HEAD and GET (not the per-request ones)."""
    skip = {"x-request-id", "date", "x-ratelimit-remaining", "ratelimit", "x-ratelimit-reset"}
    return {k: v for k, v in response.headers.items() if k not in skip}


@pytest.mark.parametrize("path", PUBLIC_GETS[:5])
async def test_head_answers_like_get_without_a_body(client: httpx.AsyncClient, path: str) -> None:
    get = await client.get(path)
    head = await client.head(path)
    assert get.status_code == head.status_code == 200
    assert head.content == b""
    assert _comparable(head) == _comparable(get)


@pytest.mark.parametrize("endpoint", [*RESPONSE_SCHEMAS, "../account"])
async def test_head_on_key_routes_checks_the_key_and_counts_like_get(
    client: httpx.AsyncClient, admin_ops: Admin, endpoint: str
) -> None:
    key = (await admin_ops.key(await admin_ops.account(tier="free")))["key"]
    path = f"/v1/metrics/{endpoint}".replace("/metrics/../", "/")
    get = await client.get(path, headers=bearer(key))
    head = await client.head(path, headers=bearer(key))
    assert get.status_code == head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(len(get.content))
    assert head.headers.get("etag") == get.headers.get("etag")
    if endpoint in RESPONSE_SCHEMAS:  # a HEAD is a request like any other
        assert int(head.headers["x-ratelimit-remaining"]) == TIER_LIMITS["free"] - 2
    unauthenticated = await client.head(path)
    assert unauthenticated.status_code == 401 and unauthenticated.content == b""


async def test_head_where_get_is_not_allowed_is_405(client: httpx.AsyncClient) -> None:
    response = await client.head("/v1/calls")
    assert response.status_code == 405
    assert response.content == b""


def test_head_over_real_http(database_url: str) -> None:
    """uvicorn itself knows HEAD has no body: nothing may be left on the connection."""
    with live_server(database_url) as base, httpx.Client(base_url=base) as http:
        for path in ("/healthz", "/openapi.json", "/docs"):
            head = http.head(path)
            assert head.status_code == 200 and head.content == b""
            assert int(head.headers["content-length"]) == len(http.get(path).content)
        assert http.get("/healthz").json() == {"status": "ok"}  # the connection is still sane


# --- trailing slashes -------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/metrics/overview/", "/v1/account/", "/healthz/"])
async def test_a_trailing_slash_is_a_404_naming_the_right_path(
    client: httpx.AsyncClient, admin_ops: Admin, path: str
) -> None:
    key = (await admin_ops.key(await admin_ops.account()))["key"]
    response = await client.get(path + "?days=7", headers=bearer(key))
    error = assert_envelope(response, 404, "not_found")
    assert f"Did you mean {path.rstrip('/')} " in error["message"]
    assert "location" not in response.headers


async def test_an_unknown_path_says_only_that(client: httpx.AsyncClient) -> None:
    error = assert_envelope(await client.get("/v1/metrics/nothing/"), 404, "not_found")
    assert error["message"] == "No such route."


def test_no_redirect_to_plain_http_behind_a_tls_proxy(database_url: str) -> None:
    with live_server(database_url) as base:
        response = httpx.get(
            f"{base}/v1/metrics/overview/",
            headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"},
        )
    assert response.status_code == 404
    assert "location" not in response.headers


# --- conditional requests and the rate limit ---------------------------------------------------


async def _etag(client: httpx.AsyncClient, key: str) -> str:
    first = await client.get("/v1/metrics/overview", headers=bearer(key))
    assert first.status_code == 200
    return str(first.headers["etag"])


async def test_a_304_spends_none_of_the_tier_budget(
    client: httpx.AsyncClient, admin_ops: Admin
) -> None:
    key = (await admin_ops.key(await admin_ops.account(tier="free")))["key"]
    limit = TIER_LIMITS["free"]
    etag = await _etag(client, key)  # 1 of the tier's 10
    conditional = {**bearer(key), "If-None-Match": etag}
    for _ in range(3 * limit):  # three tiers' worth of polling
        polled = await client.get("/v1/metrics/overview", headers=conditional)
        assert polled.status_code == 304
        assert polled.headers["x-ratelimit-limit"] == str(limit)
        assert polled.headers["x-ratelimit-remaining"] == str(limit - 1)
    # the tier's budget is whole but for the first request
    for i in range(limit - 1):
        answer = await client.get("/v1/metrics/customer", headers=bearer(key))
        assert answer.status_code == 200
        assert answer.headers["x-ratelimit-remaining"] == str(limit - 2 - i)
    assert_envelope(
        await client.get("/v1/metrics/daily", headers=bearer(key)), 429, "rate_limit_exceeded"
    )
    # and a 304 still answers while the tier's budget is spent
    assert (await client.get("/v1/metrics/overview", headers=conditional)).status_code == 304


async def test_304s_have_a_budget_of_ten_times_the_tier(
    client: httpx.AsyncClient, admin_ops: Admin
) -> None:
    key = (await admin_ops.key(await admin_ops.account(tier="free")))["key"]
    own_limit = TIER_LIMITS["free"] * NOT_MODIFIED_LIMIT_FACTOR
    assert own_limit == 100
    conditional = {**bearer(key), "If-None-Match": await _etag(client, key)}
    for _ in range(own_limit):
        assert (await client.get("/v1/metrics/overview", headers=conditional)).status_code == 304
    refused = await client.get("/v1/metrics/overview", headers=conditional)
    assert_envelope(refused, 429, "rate_limit_exceeded")
    assert refused.headers["x-ratelimit-limit"] == str(own_limit)
    assert int(refused.headers["retry-after"]) >= 1
    # the tier's own budget is untouched by all of it
    fresh = await client.get("/v1/metrics/failures", headers=bearer(key))
    assert fresh.status_code == 200
    assert fresh.headers["x-ratelimit-remaining"] == str(TIER_LIMITS["free"] - 2)


async def test_a_conditional_request_answered_200_spends_the_tier_budget(
    client: httpx.AsyncClient, admin_ops: Admin
) -> None:
    key = (await admin_ops.key(await admin_ops.account(tier="free")))["key"]
    await _etag(client, key)
    stale = await client.get(
        "/v1/metrics/overview", headers={**bearer(key), "If-None-Match": '"stale"'}
    )
    assert stale.status_code == 200
    assert stale.headers["x-ratelimit-remaining"] == str(TIER_LIMITS["free"] - 2)


async def test_conditional_requests_refused_before_an_answer_are_bounded_too(
    client: httpx.AsyncClient, admin_ops: Admin
) -> None:
    """A conditional request with a bad parameter never reaches an answer: it is bounded by
    the budget of conditional requests, so If-None-Match is no way around the tier's limit."""
    key = (await admin_ops.key(await admin_ops.account(tier="free")))["key"]
    headers = {**bearer(key), "If-None-Match": '"x"'}
    own_limit = TIER_LIMITS["free"] * NOT_MODIFIED_LIMIT_FACTOR
    for _ in range(own_limit):
        bad = await client.get("/v1/metrics/overview?days=0", headers=headers)
        assert bad.status_code == 400
    refused = await client.get("/v1/metrics/overview?days=0", headers=headers)
    assert_envelope(refused, 429, "rate_limit_exceeded")


async def test_if_none_match_star_pays_like_a_plain_request(
    client: httpx.AsyncClient, admin_ops: Admin
) -> None:
    """`*` matches any current answer (RFC 9110), so it gets a 304, but it proves no copy is
    held: it spends the tier's budget, or `*` would be unlimited free reads of new windows."""
    key = (await admin_ops.key(await admin_ops.account(tier="free")))["key"]
    for i in range(TIER_LIMITS["free"]):
        star = await client.get(
            f"/v1/metrics/overview?days={i + 1}", headers={**bearer(key), "If-None-Match": "*"}
        )
        assert star.status_code == 304
        assert star.headers["x-ratelimit-remaining"] == str(TIER_LIMITS["free"] - 1 - i)
    refused = await client.get(
        "/v1/metrics/overview?days=20", headers={**bearer(key), "If-None-Match": "*"}
    )
    assert_envelope(refused, 429, "rate_limit_exceeded")


async def test_past_the_tier_a_conditional_request_computes_nothing(
    client: httpx.AsyncClient, app: FastAPI, admin_ops: Admin
) -> None:
    """Once the tier's budget is spent, a conditional request whose answer is not cached is
    refused before any query runs (nothing new enters the response cache); one for a copy the
    client holds still gets its free 304."""
    key = (await admin_ops.key(await admin_ops.account(tier="free")))["key"]
    etag = await _etag(client, key)
    for _ in range(TIER_LIMITS["free"] - 1):
        assert (await client.get("/v1/metrics/customer", headers=bearer(key))).status_code == 200
    cached = len(app.state.response_cache.entries)
    for days in (2, 3, 4):
        refused = await client.get(
            f"/v1/metrics/overview?days={days}", headers={**bearer(key), "If-None-Match": '"x"'}
        )
        assert_envelope(refused, 429, "rate_limit_exceeded")
        assert refused.headers["x-ratelimit-limit"] == str(TIER_LIMITS["free"])
    assert len(app.state.response_cache.entries) == cached
    held = await client.get("/v1/metrics/overview", headers={**bearer(key), "If-None-Match": etag})
    assert held.status_code == 304


async def test_head_requests_are_counted_under_their_route(client: httpx.AsyncClient) -> None:
    for _ in range(3):
        assert (await client.head("/healthz")).status_code == 200
    metrics = (await client.get("/metrics")).text
    line = next(
        row
        for row in metrics.splitlines()
        if row.startswith("perf_metrics_http_requests_total{")
        and 'method="HEAD"' in row
        and 'route="/healthz"' in row
    )
    assert float(line.rsplit(" ", 1)[1]) >= 3
