"""Hostile input the other suites do not cover: odd Unicode, lone surrogates, odd headers, a
body over the limit sent slowly. Each is a clear 4xx in the envelope (or a clean success for
legal input), nothing half-written, no secret echoed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from perf_metrics.keys import generate_key
from perf_metrics.settings import Settings
from tests.conftest import Admin, assert_envelope, bearer
from tests.factories import json_call

ODD = [
    "zero\u200bwidth",
    "rtl\u202eoverride",
    "emoji 🚀👩‍💻",
    "combining e\u0301",
    "cjk 模型",
    "line\u2028sep",
    "bom\ufeff",
]


_record = json_call.but(
    account_id="acct_hostile",
    created_at="2026-11-01T10:00:00Z",
    model="gpt-4o",
    input_tokens=10,
    output_tokens=5,
    latency_ms=300,
)


async def _rows(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(text("SELECT count(*) FROM calls")))


@pytest.mark.parametrize("value", ODD)
async def test_odd_unicode_in_every_string_field_is_stored_as_sent(
    client: httpx.AsyncClient, admin_ops: Admin, engine: AsyncEngine, value: str
) -> None:
    await admin_ops.account(account_id="acct_hostile")
    ingest = (await admin_ops.key(None))["key"]
    record = _record(
        "u1",
        model=value,
        provider=value[:50],
        failure_trigger=value,
        user_id=value,
        metadata={value[:64]: value},
        failure_mode="refusal",
        recovery="retry",
        retry_count=1,
    )
    response = await client.post("/v1/calls", json={"calls": [record]}, headers=bearer(ingest))
    assert response.status_code == 200, response.text
    async with engine.connect() as conn:
        stored = (
            await conn.execute(text("SELECT model, failure_trigger, user_id, metadata FROM calls"))
        ).one()
    assert stored.model == value and stored.failure_trigger == value and stored.user_id == value
    assert stored.metadata == {value[:64]: value}


@pytest.mark.parametrize("escape", ["\\ud800", "\\udfff", "\\ud83d"])
async def test_lone_surrogates_are_a_400_not_a_500(
    client: httpx.AsyncClient, admin_ops: Admin, engine: AsyncEngine, escape: str
) -> None:
    await admin_ops.account(account_id="acct_hostile")
    ingest = (await admin_ops.key(None))["key"]
    body = (
        '{"calls": [{"call_id": "s1", "account_id": "acct_hostile", "created_at": '
        '"2026-11-01T10:00:00Z", "task_type": "code", "model": "x' + escape + '", '
        '"provider": "p", "input_tokens": 1, "output_tokens": 1, "cost_usd": 0.1, '
        '"latency_ms": 1, "status": "success"}]}'
    ).encode()
    response = await client.post(
        "/v1/calls", content=body, headers={**bearer(ingest), "Content-Type": "application/json"}
    )
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert await _rows(engine) == 0


@pytest.mark.parametrize(
    "raw",
    [
        b"Bearer pk_live_\xff\xfe",
        b"Bearer \xe2\x80\x8bpk_live_x",
        b"\xf0\x9f\x94\x91",
        b"Bearer " + b"\x00" * 10,
    ],
)
async def test_odd_bytes_in_authorization_are_401(client: httpx.AsyncClient, raw: bytes) -> None:
    response = await client.get("/v1/metrics/overview", headers=[(b"authorization", raw)])
    assert_envelope(response, 401, "invalid_api_key")


async def test_odd_bytes_in_request_id_are_replaced(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers=[(b"x-request-id", b"\xff\xfe\x00abcdefgh")])
    assert response.headers["x-request-id"].startswith("req_")


async def test_a_secret_in_the_query_string_is_not_echoed(
    client: httpx.AsyncClient, admin_ops: Admin
) -> None:
    acct = await admin_ops.account()
    key = (await admin_ops.key(acct))["key"]
    response = await client.get(f"/v1/metrics/overview?api_key={key}", headers=bearer(key))
    assert_envelope(response, 400, "invalid_parameter", param="api_key")
    assert key not in response.text
    other = generate_key("pk_live_")
    response = await client.get(f"/v1/metrics/overview?days={other}", headers=bearer(key))
    assert_envelope(response, 400, "invalid_parameter", param="days")
    assert other not in response.text


@pytest.fixture
def app_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"max_ingest_bytes": 50_000})


async def test_a_body_over_the_limit_sent_slowly_is_413_early(
    client: httpx.AsyncClient, admin_ops: Admin, engine: AsyncEngine
) -> None:
    await admin_ops.account(account_id="acct_hostile")
    ingest = (await admin_ops.key(None))["key"]
    sent = 0

    async def slow_body() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"calls": ['
        for i in range(1000):  # ~250 kB in all, 5x the limit, a piece every 2 ms
            piece = (
                (b"," if i else b"") + b'{"call_id": "slow%d", "model": "' % i + b"x" * 200 + b'"}'
            )
            sent += len(piece)
            yield piece
            await asyncio.sleep(0.002)
        yield b"]}"

    response = await client.post(
        "/v1/calls",
        content=slow_body(),
        headers={**bearer(ingest), "Content-Type": "application/json"},
    )
    assert_envelope(response, 413, "payload_too_large")
    assert sent < 100_000, "the body was read to its end before refusing it"
    assert await _rows(engine) == 0
