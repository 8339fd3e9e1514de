"""POST /v1/calls: validation, limits, auth, idempotency, atomicity and exact rollups.

Expected values are computed here, by hand or by plain Python over the records sent, never
read back from the API. SPEC §2 (the call record), §6 (errors), §7 (ingest).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import math
import random
import tracemalloc
import zlib
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from perf_metrics.app import create_app
from perf_metrics.db import account_versions
from perf_metrics.rollups.fold import settle
from perf_metrics.rollups.tables import ROLLUP_TABLES, ROLLUPS, failure_monthly
from perf_metrics.settings import Settings
from tests.conftest import Admin, assert_envelope, bearer
from tests.factories import MISSING, PROVIDER_MODES, QUALITY_MODES, TASKS, iso, json_call
from tests.factories import review_call as _record

# The rollups are compared with their Python counterparts whole, week rows too: none of these
# few calls' weeks is thin (thin weeks are tested in tests/metrics/test_breakdown_groups.py).
pytestmark = pytest.mark.usefixtures("every_week_has_rows")

ACCT = "acct_ingest_a"
ACCT_B = "acct_ingest_b"
# Past, whole UTC days, far enough back that nothing is "in the future".
DAY0 = (datetime.now(UTC) - timedelta(days=20)).replace(hour=0, minute=0, second=0, microsecond=0)

# What a fold writes: every rollup, and the cache versions.
FOLDED_TABLES = {*ROLLUP_TABLES, account_versions.name}
REQUIRED = (
    "call_id",
    "account_id",
    "created_at",
    "task_type",
    "model",
    "provider",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "latency_ms",
    "status",
)


# --- helpers ---------------------------------------------------------------------------------


# A valid, minimal call record.
rec = json_call.but(
    call_id="c-1", account_id=ACCT, created_at=iso(DAY0 + timedelta(hours=12)), latency_ms=800
)


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def ndjson(records: list[dict[str, Any]]) -> bytes:
    return b"".join(dumps(r) + b"\n" for r in records)


async def post(
    client: httpx.AsyncClient, key: str | None, body: Any, content_type: str | None
) -> httpx.Response:
    headers = bearer(key) if key else {}
    if content_type is not None:
        headers["Content-Type"] = content_type
    return await client.post("/v1/calls", content=body, headers=headers)


async def post_json(
    client: httpx.AsyncClient, key: str, records: list[dict[str, Any]]
) -> httpx.Response:
    return await post(client, key, dumps({"calls": records}), "application/json")


async def post_ndjson(
    client: httpx.AsyncClient, key: str, records: list[dict[str, Any]]
) -> httpx.Response:
    return await post(client, key, ndjson(records), "application/x-ndjson")


SENDERS = {"json": post_json, "ndjson": post_ndjson}


async def fetch(engine: AsyncEngine, sql: str, **params: Any) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        result = await conn.execute(text(sql), params)
        return [dict(row._mapping) for row in result]


async def count_calls(engine: AsyncEngine) -> int:
    return int((await fetch(engine, "SELECT count(*) AS n FROM calls"))[0]["n"])


async def snapshot(engine: AsyncEngine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of the schema, in a stable order."""
    async with engine.connect() as conn:
        names = (
            await conn.execute(
                text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                    "ORDER BY tablename"
                )
            )
        ).scalars()
        snap: dict[str, list[tuple[Any, ...]]] = {}
        for name in list(names):
            rows = (await conn.execute(text(f'SELECT * FROM "{name}" ORDER BY 1'))).all()
            snap[name] = sorted((tuple(r) for r in rows), key=repr)
    return snap


def assert_4xx_envelope(response: httpx.Response) -> dict[str, Any]:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:500])
    return assert_envelope(response, response.status_code, response.json()["error"]["code"])


def field_matches(actual: str | None, expected: str) -> bool:
    return actual == expected or (actual or "").startswith(expected + ".")


def only_error(response: httpx.Response) -> dict[str, Any]:
    error = assert_envelope(response, 400, "invalid_call_record")
    assert error["type"] == "invalid_request_error"
    assert len(error["errors"]) == 1, error["errors"]
    return dict(error["errors"][0])


@pytest.fixture
def app_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """Default settings; `@pytest.mark.parametrize("app_settings", [{...}], indirect=True)`."""
    return settings.model_copy(update=getattr(request, "param", None) or {})


@pytest.fixture
async def ingest_key(admin_ops: Admin) -> str:
    return str((await admin_ops.key(None))["key"])


@pytest.fixture
async def acct(admin_ops: Admin) -> str:
    return str(await admin_ops.account(account_id=ACCT))


@pytest.fixture
async def acct_b(admin_ops: Admin) -> str:
    return str(await admin_ops.account(account_id=ACCT_B, tier="free"))


# --- valid batches ---------------------------------------------------------------------------


def _three_records() -> list[dict[str, Any]]:
    d0 = DAY0.date().isoformat()
    d1 = (DAY0 + timedelta(days=1)).date().isoformat()
    return [
        rec(
            "full-1",
            environment="test",
            api_key_id="key_abc",
            created_at=f"{d0}T10:30:00+01:00",
            task_type="extraction",
            complexity_score=0.42,
            model="gpt-4o-mini",
            provider="openai",
            initial_model="gpt-4o",
            initial_provider="openai",
            input_tokens=1200,
            output_tokens=340,
            cost_usd=0.000045,
            latency_ms=1834,
            status="success",
            failure_mode="timeout",
            failure_trigger="long context",
            recovery="fallback",
            retry_count=1,
            fallback_used=True,
            quality_score=0.91,
            message_count=6,
            max_cost_per_call=0.01,
            cost_ceiling_hit=True,
            user_id="user-7",
        ),
        rec("min-2", created_at=f"{d0}T23:59:59.999Z", cost_usd=0.1234),
        rec(
            "err-3",
            created_at=f"{d1}T00:15:00-05:00",
            status="error",
            failure_mode="rate_limited",
            retry_count=2,
            cost_usd=0,
            latency_ms=0,
            input_tokens=0,
            output_tokens=0,
        ),
    ]


async def _assert_three_stored(engine: AsyncEngine) -> None:
    rows = {
        r["call_id"]: r
        for r in await fetch(
            engine,
            "SELECT *, created_at AT TIME ZONE 'UTC' AS utc_naive FROM calls ORDER BY call_id",
        )
    }
    assert set(rows) == {"full-1", "min-2", "err-3"}
    d0 = DAY0.date()
    d1 = d0 + timedelta(days=1)

    full = rows["full-1"]
    # 10:30 at +01:00 is 09:30 UTC.
    assert full["utc_naive"] == datetime(d0.year, d0.month, d0.day, 9, 30)
    assert full["created_at"] == datetime(d0.year, d0.month, d0.day, 9, 30, tzinfo=UTC)
    assert full["cost_usd"] == Decimal("0.000045")
    assert full["max_cost_per_call"] == Decimal("0.01")
    expected_full = {
        "account_id": ACCT,
        "environment": "test",
        "api_key_id": "key_abc",
        "task_type": "extraction",
        "complexity_score": 0.42,
        "model": "gpt-4o-mini",
        "provider": "openai",
        "initial_model": "gpt-4o",
        "initial_provider": "openai",
        "input_tokens": 1200,
        "output_tokens": 340,
        "latency_ms": 1834,
        "status": "success",
        "failure_mode": "timeout",
        "failure_trigger": "long context",
        "recovery": "fallback",
        "retry_count": 1,
        "fallback_used": True,
        "quality_score": 0.91,
        "message_count": 6,
        "cost_ceiling_hit": True,
        "user_id": "user-7",
        "metadata": None,
    }
    assert {k: full[k] for k in expected_full} == expected_full
    assert full["ingested_at"] is not None

    minimal = rows["min-2"]
    assert minimal["utc_naive"] == datetime(d0.year, d0.month, d0.day, 23, 59, 59, 999000)
    assert minimal["cost_usd"] == Decimal("0.1234")
    # Defaults of SPEC §2.
    assert minimal["environment"] == "live"
    assert minimal["retry_count"] == 0
    assert minimal["fallback_used"] is False
    assert minimal["cost_ceiling_hit"] is False
    for nullable in (
        "api_key_id",
        "complexity_score",
        "initial_model",
        "initial_provider",
        "failure_mode",
        "failure_trigger",
        "recovery",
        "quality_score",
        "message_count",
        "max_cost_per_call",
        "user_id",
        "metadata",
    ):
        assert minimal[nullable] is None, nullable

    err = rows["err-3"]
    # 00:15 at -05:00 is 05:15 UTC the same day.
    assert err["utc_naive"] == datetime(d1.year, d1.month, d1.day, 5, 15)
    assert err["cost_usd"] == Decimal(0)
    assert (err["status"], err["failure_mode"], err["retry_count"]) == ("error", "rate_limited", 2)


async def test_json_batch_is_stored(
    client: httpx.AsyncClient, ingest_key: str, acct: str, engine: AsyncEngine
) -> None:
    response = await post_json(client, ingest_key, _three_records())
    assert response.status_code == 200, response.text
    assert response.json() == {"received": 3, "inserted": 3, "duplicates": 0}
    await _assert_three_stored(engine)


@pytest.mark.parametrize(
    "content_type",
    ["application/x-ndjson", "application/x-ndjson; charset=utf-8", "APPLICATION/X-NDJSON"],
)
async def test_ndjson_batch_is_stored(
    client: httpx.AsyncClient, ingest_key: str, acct: str, engine: AsyncEngine, content_type: str
) -> None:
    a, b, c = (dumps(r) for r in _three_records())
    # Blank lines, CRLF and no final newline are all tolerated.
    body = a + b"\r\n\n" + b + b"\n   \n" + c
    response = await post(client, ingest_key, body, content_type)
    assert response.status_code == 200, response.text
    assert response.json() == {"received": 3, "inserted": 3, "duplicates": 0}
    await _assert_three_stored(engine)


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8"])
async def test_json_content_type_variants(
    client: httpx.AsyncClient, ingest_key: str, acct: str, engine: AsyncEngine, content_type: str
) -> None:
    response = await post(client, ingest_key, dumps({"calls": [rec()]}), content_type)
    assert response.status_code == 200, response.text
    assert await count_calls(engine) == 1


@pytest.mark.parametrize("fmt", ["json", "ndjson"])
async def test_metadata_is_stored(
    client: httpx.AsyncClient, ingest_key: str, acct: str, engine: AsyncEngine, fmt: str
) -> None:
    sixteen = {f"k{i}": f"v{i}" for i in range(16)}
    batch = [
        rec("m-1", metadata={"team": "search", "region": "eu"}),
        rec("m-2", metadata=sixteen),
        rec("m-3", metadata={}),
        rec("m-4", metadata={"quote": 'a "b" \\ c', "unicode": "caf\u00e9 \u2603"}),
    ]
    response = await SENDERS[fmt](client, ingest_key, batch)
    assert response.status_code == 200, response.text
    assert response.json() == {"received": 4, "inserted": 4, "duplicates": 0}
    rows = {r["call_id"]: r["metadata"] for r in await fetch(engine, "SELECT * FROM calls")}
    assert rows == {
        "m-1": {"team": "search", "region": "eu"},
        "m-2": sixteen,
        "m-3": {},
        "m-4": {"quote": 'a "b" \\ c', "unicode": "caf\u00e9 \u2603"},
    }


@pytest.mark.parametrize("fmt", ["json", "ndjson"])
async def test_empty_batch_is_zeros(
    client: httpx.AsyncClient, ingest_key: str, engine: AsyncEngine, fmt: str
) -> None:
    response = await SENDERS[fmt](client, ingest_key, [])
    assert response.status_code == 200, response.text
    assert response.json() == {"received": 0, "inserted": 0, "duplicates": 0}
    assert await count_calls(engine) == 0


async def test_boundary_values_are_accepted(
    client: httpx.AsyncClient, ingest_key: str, acct: str, engine: AsyncEngine
) -> None:
    now = datetime.now(UTC)
    records = [
        rec(
            "aZ09_.:-" * 8,  # 64 characters, every allowed class
            model="m" * 100,
            provider="p" * 50,
            user_id="u" * 128,
            failure_trigger="t" * 100,
            latency_ms=2**31 - 1,
            input_tokens=0,
            output_tokens=0,
            cost_usd=0,
            quality_score=0,
            complexity_score=1,
            message_count=1,
            max_cost_per_call=0,
        ),
        rec("future-4min", created_at=iso(now + timedelta(minutes=4)), quality_score=1),
        rec("ints-as-cost", cost_usd=2, metadata=None, api_key_id=None, initial_model=None),
    ]
    response = await post_json(client, ingest_key, records)
    assert response.status_code == 200, response.text
    assert response.json() == {"received": 3, "inserted": 3, "duplicates": 0}
    rows = {r["call_id"]: r for r in await fetch(engine, "SELECT * FROM calls")}
    assert rows["aZ09_.:-" * 8]["latency_ms"] == 2**31 - 1
    assert rows["ints-as-cost"]["cost_usd"] == Decimal(2)
    stored = rows["future-4min"]["created_at"]
    assert abs(stored - (now + timedelta(minutes=4))) < timedelta(milliseconds=1)


# --- field rules (SPEC §2) -------------------------------------------------------------------


def _future(minutes: int) -> Callable[[], str]:
    return lambda: iso(datetime.now(UTC) + timedelta(minutes=minutes))


FIELD_CASES = [
    pytest.param("call_id", "bad id!", "call_id", id="call_id-bad-chars"),
    pytest.param("call_id", "x" * 65, "call_id", id="call_id-65-chars"),
    pytest.param("call_id", "", "call_id", id="call_id-empty"),
    pytest.param("call_id", 12345, "call_id", id="call_id-number"),
    pytest.param("environment", "prod", "environment", id="environment-prod"),
    pytest.param("environment", None, "environment", id="environment-null"),
    pytest.param(
        "created_at", DAY0.strftime("%Y-%m-%dT%H:%M:%S"), "created_at", id="created_at-no-offset"
    ),
    pytest.param("created_at", DAY0.date().isoformat(), "created_at", id="created_at-date-only"),
    pytest.param("created_at", 1_700_000_000, "created_at", id="created_at-number"),
    pytest.param("created_at", "yesterday-ish", "created_at", id="created_at-garbage"),
    pytest.param("created_at", _future(10), "created_at", id="created_at-10min-future"),
    pytest.param(
        "created_at", "9999-12-31T23:30:00-01:00", "created_at", id="created_at-far-future"
    ),
    pytest.param("task_type", "translation", "task_type", id="task_type-unknown"),
    pytest.param("complexity_score", 1.5, "complexity_score", id="complexity-1.5"),
    pytest.param("complexity_score", -0.5, "complexity_score", id="complexity-negative"),
    pytest.param("model", "", "model", id="model-empty"),
    pytest.param("model", "m" * 101, "model", id="model-101"),
    pytest.param("model", None, "model", id="model-null"),
    pytest.param("provider", "p" * 51, "provider", id="provider-51"),
    pytest.param("provider", "", "provider", id="provider-empty"),
    pytest.param("input_tokens", -1, "input_tokens", id="tokens-negative"),
    pytest.param("output_tokens", 1.5, "output_tokens", id="tokens-fraction"),
    pytest.param("input_tokens", "5", "input_tokens", id="tokens-string"),
    pytest.param("output_tokens", True, "output_tokens", id="tokens-bool"),
    pytest.param("input_tokens", None, "input_tokens", id="tokens-null"),
    pytest.param("cost_usd", -0.01, "cost_usd", id="cost-negative"),
    pytest.param("cost_usd", "0.1", "cost_usd", id="cost-string"),
    pytest.param("cost_usd", True, "cost_usd", id="cost-bool"),
    pytest.param("latency_ms", 2**31, "latency_ms", id="latency-2**31"),
    pytest.param("latency_ms", -1, "latency_ms", id="latency-negative"),
    pytest.param("latency_ms", 12.5, "latency_ms", id="latency-fraction"),
    pytest.param("status", "ok", "status", id="status-ok"),
    pytest.param("status", None, "status", id="status-null"),
    pytest.param("failure_mode", "explosion", "failure_mode", id="failure_mode-unknown"),
    pytest.param("failure_trigger", "t" * 101, "failure_trigger", id="trigger-101"),
    pytest.param("recovery", "restart", "recovery", id="recovery-restart"),
    pytest.param("retry_count", -1, "retry_count", id="retry_count-negative"),
    pytest.param("fallback_used", "yes", "fallback_used", id="fallback_used-yes"),
    pytest.param("fallback_used", 1, "fallback_used", id="fallback_used-1"),
    pytest.param("cost_ceiling_hit", "true", "cost_ceiling_hit", id="ceiling-string"),
    pytest.param("quality_score", -0.1, "quality_score", id="quality-negative"),
    pytest.param("quality_score", 1.01, "quality_score", id="quality-above-1"),
    pytest.param("message_count", 0, "message_count", id="message_count-0"),
    pytest.param("max_cost_per_call", -1, "max_cost_per_call", id="max_cost-negative"),
    pytest.param("user_id", "u" * 129, "user_id", id="user_id-129"),
    pytest.param("metadata", {f"k{i}": "v" for i in range(17)}, "metadata", id="metadata-17-keys"),
    pytest.param("metadata", {"k": 1}, "metadata", id="metadata-value-number"),
    pytest.param("metadata", {"k": {"nested": "x"}}, "metadata", id="metadata-value-object"),
    pytest.param("metadata", ["a", "b"], "metadata", id="metadata-list"),
    pytest.param("metadata", "tags", "metadata", id="metadata-string"),
    pytest.param("colour", "crimson-red", "colour", id="unknown-field"),
    *(pytest.param(f, MISSING, f, id=f"missing-{f}") for f in REQUIRED),
]


@pytest.mark.parametrize(("field", "bad", "expected_field"), FIELD_CASES)
async def test_field_rule_rejects_the_batch(
    client: httpx.AsyncClient,
    ingest_key: str,
    acct: str,
    engine: AsyncEngine,
    field: str,
    bad: Any,
    expected_field: str,
) -> None:
    value = bad() if callable(bad) else bad
    batch = [rec("good-0"), rec(**{"call_id": "bad-1", field: value}), rec("good-2")]
    for fmt, send in SENDERS.items():
        response = await send(client, ingest_key, batch)
        item = only_error(response)
        assert set(item) == {"index", "field", "message"}
        assert item["index"] == 1, (fmt, item)
        assert field_matches(item["field"], expected_field), (fmt, item)
        assert item["message"]
        if isinstance(value, str) and len(value) >= 4:
            # The message describes the rule; it never echoes the bad value.
            assert value not in response.text, fmt
    assert await count_calls(engine) == 0


async def test_missing_fields_are_all_listed(
    client: httpx.AsyncClient, ingest_key: str, acct: str, engine: AsyncEngine
) -> None:
    response = await post_json(client, ingest_key, [{"call_id": "only-id"}])
    error = assert_envelope(response, 400, "invalid_call_record")
    fields = {e["field"] for e in error["errors"]}
    assert fields == set(REQUIRED) - {"call_id"}
    assert {e["index"] for e in error["errors"]} == {0}
    assert await count_calls(engine) == 0


# --- consistency rules (SPEC §2) -------------------------------------------------------------

CONSISTENCY_CASES = [
    pytest.param(
        {"status": "error"},
        "failure_mode",
        ("status", "error", "failure_mode"),
        id="error-without-failure_mode",
    ),
    pytest.param(
        {"status": "error", "failure_mode": "timeout", "recovery": "retry", "retry_count": 1},
        "recovery",
        ("status", "error", "recovery"),
        id="error-with-recovery",
    ),
    pytest.param(
        {"recovery": "retry", "retry_count": 1},
        "recovery",
        ("failure_mode", "null", "recovery"),
        id="no-failure-with-recovery",
    ),
    pytest.param(
        {"retry_count": 1},
        "retry_count",
        ("failure_mode", "null", "retry_count"),
        id="no-failure-with-retry_count",
    ),
    pytest.param(
        {"fallback_used": True, "initial_model": "gpt-4o"},
        "fallback_used",
        ("failure_mode", "null", "fallback_used"),
        id="no-failure-with-fallback_used",
    ),
    pytest.param(
        {"failure_mode": "refusal"},
        "recovery",
        ("failure_mode", "success", "recovery"),
        id="failure-success-without-recovery",
    ),
    pytest.param(
        {"failure_mode": "timeout", "recovery": "retry"},
        "retry_count",
        ("retry", "retry_count"),
        id="retry-with-retry_count-0",
    ),
    pytest.param(
        {"failure_mode": "timeout", "recovery": "fallback", "initial_model": "gpt-4o"},
        "fallback_used",
        ("fallback", "fallback_used"),
        id="fallback-without-fallback_used",
    ),
    pytest.param(
        {"failure_mode": "timeout", "recovery": "fallback", "fallback_used": True},
        "initial_model",
        ("fallback_used", "initial_model"),
        id="fallback_used-initial_model-null",
    ),
    pytest.param(
        {
            "failure_mode": "timeout",
            "recovery": "fallback",
            "fallback_used": True,
            "initial_model": "gpt-4o-mini",
        },
        "initial_model",
        ("fallback_used", "initial_model"),
        id="fallback_used-initial_model-same",
    ),
    pytest.param(
        {
            "status": "error",
            "failure_mode": "timeout",
            "fallback_used": True,
            "initial_model": "gpt-4o-mini",
        },
        "initial_model",
        ("fallback_used", "initial_model"),
        id="error-fallback_used-initial_model-same",
    ),
]


@pytest.mark.parametrize(("overrides", "field", "words"), CONSISTENCY_CASES)
async def test_consistency_rule_rejects_the_batch(
    client: httpx.AsyncClient,
    ingest_key: str,
    acct: str,
    engine: AsyncEngine,
    overrides: dict[str, Any],
    field: str,
    words: tuple[str, ...],
) -> None:
    batch = [rec("good-0"), rec("good-1"), rec("bad-2", **overrides)]
    for fmt, send in SENDERS.items():
        response = await send(client, ingest_key, batch)
        error = assert_envelope(response, 400, "invalid_call_record")
        items = error["errors"]
        assert items, fmt
        assert all(set(i) == {"index", "field", "message"} for i in items)
        assert {i["index"] for i in items} == {2}, (fmt, items)
        hits = [i for i in items if i["field"] == field]
        assert hits, (fmt, items)
        message = hits[0]["message"].lower()
        for word in words:
            assert word in message, (fmt, word, message)
    assert await count_calls(engine) == 0


async def test_consistent_failure_records_are_accepted(
    client: httpx.AsyncClient, ingest_key: str, acct: str, engine: AsyncEngine
) -> None:
    batch = [
        rec("e", status="error", failure_mode="provider_error"),
        rec("e-retried", status="error", failure_mode="timeout", retry_count=3),
        rec(
            "e-fb",
            status="error",
            failure_mode="refusal",
            fallback_used=True,
            initial_model="claude-sonnet-4-5",
            initial_provider="anthropic",
        ),
        rec("r", failure_mode="format_violation", recovery="retry", retry_count=1),
        rec(
            "f",
            failure_mode="hallucination",
            recovery="fallback",
            fallback_used=True,
            initial_model="gpt-4o",
        ),
        rec("trigger-only", failure_trigger="nested arrays"),
    ]
    response = await post_json(client, ingest_key, batch)
    assert response.status_code == 200, response.text
    assert response.json() == {"received": 6, "inserted": 6, "duplicates": 0}


# --- hostile input ---------------------------------------------------------------------------

NUL_CASES = [
    pytest.param("call_id", "a\x00b", "call_id", id="call_id"),
    pytest.param("account_id", ACCT + "\x00", "account_id", id="account_id"),
    pytest.param("api_key_id", "key_\x00x", "api_key_id", id="api_key_id"),
    pytest.param("environment", "live\x00", "environment", id="environment"),
    pytest.param("task_type", "code\x00", "task_type", id="task_type"),
    pytest.param("model", "gpt\x00-4o", "model", id="model"),
    pytest.param("provider", "open\x00ai", "provider", id="provider"),
    pytest.param("initial_model", "gpt-4o\x00", "initial_model", id="initial_model"),
    pytest.param("initial_provider", "\x00", "initial_provider", id="initial_provider"),
    pytest.param("failure_trigger", "nested\x00arrays", "failure_trigger", id="failure_trigger"),
    pytest.param("user_id", "user\x00", "user_id", id="user_id"),
    pytest.param("metadata", {"te\x00am": "search"}, "metadata", id="metadata-key"),
    pytest.param("metadata", {"team": "sea\x00rch"}, "metadata", id="metadata-value"),
]


@pytest.mark.parametrize(("field", "value", "expected_field"), NUL_CASES)
async def test_nul_characters_are_rejected(
    client: httpx.AsyncClient,
    ingest_key: str,
    acct: str,
    engine: AsyncEngine,
    field: str,
    value: str | dict[str, str],
    expected_field: str,
) -> None:
    batch = [rec("good-0"), rec(**{"call_id": "nul-1", field: value})]
    for fmt, send in SENDERS.items():
        response = await send(client, ingest_key, batch)
        error = assert_envelope(response, 400, "invalid_call_record")
        assert any(
            e["index"] == 1 and field_matches(e["field"], expected_field) for e in error["errors"]
        ), (fmt, error["errors"])
    assert await count_calls(engine) == 0


async def test_raw_nul_byte_in_json_is_rejected(
    client: httpx.AsyncClient, ingest_key: str, acct: str, engine: AsyncEngine
) -> None:
    body = dumps({"calls": [rec(model="MODEL_X")]}).replace(b"MODEL_X", b"gpt\x00")
    assert_envelope(await post(client, ingest_key, body, "application/json"), 400, "invalid_json")
    response = await post(client, ingest_key, body[10:-2] + b"\n", "application/x-ndjson")
    assert assert_4xx_envelope(response)["code"] in {"invalid_json", "invalid_call_record"}
    assert await count_calls(engine) == 0


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1E+400"])
async def test_non_finite_numbers_are_rejected(
    client: httpx.AsyncClient, ingest_key: str, acct: str, engine: AsyncEngine, token: str
) -> None:
    fields = (
        "cost_usd",
        "quality_score",
        "complexity_score",
        "max_cost_per_call",
        "latency_ms",
        "input_tokens",
    )
    for field in fields:
        # json.dumps would write NaN itself; put the raw token in place of a marker.
        line = dumps(rec("nf-1", **{field: "__RAW__"})).replace(b'"__RAW__"', token.encode())
        for body, content_type in (
            (b'{"calls":[' + dumps(rec("ok-0")) + b"," + line + b"]}", "application/json"),
            (dumps(rec("ok-0")) + b"\n" + line + b"\n", "application/x-ndjson"),
        ):
            response = await post(client, ingest_key, body, content_type)
            assert response.status_code == 400, (field, content_type, response.text)
            error = assert_4xx_envelope(response)
            assert error["code"] in {"invalid_json", "invalid_call_record"}
            if error["code"] == "invalid_call_record":
                assert [(e["index"], e["field"]) for e in error["errors"]] == [(1, field)]
    assert await count_calls(engine) == 0


@pytest.mark.parametrize(
    "field",
    [
        "input_tokens",
        "output_tokens",
        "latency_ms",
        "retry_count",
        "message_count",
        "cost_usd",
        "max_cost_per_call",
        "quality_score",
        "complexity_score",
    ],
)
@pytest.mark.parametrize("magnitude", [10**30, -(10**30), 10**400])
async def test_huge_integers_are_rejected(
    client: httpx.AsyncClient,
    ingest_key: str,
    acct: str,
    engine: AsyncEngine,
    field: str,
    magnitude: int,
) -> None:
    batch = [rec("big-0", **{field: magnitude})]
    for fmt, send in SENDERS.items():
        item = only_error(await send(client, ingest_key, batch))
        assert (item["index"], item["field"]) == (0, field), fmt
    assert await count_calls(engine) == 0


async def test_huge_integer_in_metadata_or_unknown_field(
    client: httpx.AsyncClient, ingest_key: str, acct: str
) -> None:
    for overrides, field in (({"metadata": {"n": 10**30}}, "metadata"), ({"n": 10**30}, "n")):
        item = only_error(await post_json(client, ingest_key, [rec(**overrides)]))
        assert field_matches(item["field"], field)


DEEP = 10_000


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        pytest.param(
            b'{"calls":[' + dumps(rec(metadata="__RAW__")) + b"]}",
            "application/json",
            id="json-nested-arrays-in-field",
        ),
        pytest.param(
            b'{"calls":[' + dumps(rec(extra="__RAW__")) + b"]}",
            "application/json",
            id="json-nested-arrays-in-unknown-field",
        ),
        pytest.param(b"__RAW__", "application/json", id="json-nested-arrays-body"),
        pytest.param(
            b'{"calls":[], "x": __RAW__}', "application/json", id="json-nested-top-level-key"
        ),
        pytest.param(dumps(rec(metadata="__RAW__")), "application/x-ndjson", id="ndjson-field"),
        pytest.param(b"__RAW__", "application/x-ndjson", id="ndjson-line"),
    ],
)
@pytest.mark.parametrize("kind", ["arrays", "objects"])
async def test_deeply_nested_json_is_a_4xx(
    client: httpx.AsyncClient,
    ingest_key: str,
    acct: str,
    engine: AsyncEngine,
    body: bytes,
    content_type: str,
    kind: str,
) -> None:
    nested = b"[" * DEEP + b"]" * DEEP if kind == "arrays" else b'{"a":' * DEEP + b"1" + b"}" * DEEP
    response = await post(client, ingest_key, body.replace(b'"__RAW__"', nested), content_type)
    response_raw = await post(client, ingest_key, body.replace(b"__RAW__", nested), content_type)
    for r in (response, response_raw):
        assert_4xx_envelope(r)
        assert r.status_code == 400
    assert await count_calls(engine) == 0


@pytest.mark.parametrize(
    "body",
    [b"{bad", b"", b'{"calls": [', b'{"calls": [{"call_id": "a",}]}', b"\xff\xfe{}", b"calls"],
    ids=["broken", "empty", "truncated", "trailing-comma", "not-utf8", "bare-word"],
)
async def test_invalid_json_is_400_invalid_json(
    client: httpx.AsyncClient, ingest_key: str, acct: str, engine: AsyncEngine, body: bytes
) -> None:
    error = assert_envelope(
        await post(client, ingest_key, body, "application/json"), 400, "invalid_json"
    )
    assert error["type"] == "invalid_request_error"
    assert await count_calls(engine) == 0


async def test_invalid_ndjson_line_is_400(
    client: httpx.AsyncClient, ingest_key: str, acct: str, engine: AsyncEngine
) -> None:
    body = dumps(rec("ok-0")) + b"\n{bad json\n" + dumps(rec("ok-2")) + b"\n"
    response = await post(client, ingest_key, body, "application/x-ndjson")
    error = assert_4xx_envelope(response)
    assert response.status_code == 400
    assert error["code"] in {"invalid_json", "invalid_call_record"}
    if error["code"] == "invalid_call_record":
        assert [e["index"] for e in error["errors"]] == [1]
    # A line that is JSON but not an object.
    response = await post(client, ingest_key, b"[1, 2]\n", "application/x-ndjson")
    assert response.status_code == 400
    assert_4xx_envelope(response)
    assert await count_calls(engine) == 0


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b"null",
        b"{}",
        b'{"calls": {}}',
        b'{"calls": null}',
        b'{"calls": "x"}',
        b'{"calls": [], "x": 1}',
        b'{"Calls": []}',
        b'{"calls": [1]}',
        b'{"calls": [[]]}',
    ],
)
async def test_wrong_body_shape_is_400(
    client: httpx.AsyncClient, ingest_key: str, acct: str, engine: AsyncEngine, body: bytes
) -> None:
    response = await post(client, ingest_key, body, "application/json")
    error = assert_4xx_envelope(response)
    assert response.status_code == 400
    assert error["code"] in {"invalid_call_record", "invalid_json"}
    assert await count_calls(engine) == 0


# --- the error list --------------------------------------------------------------------------

BAD_KINDS = [
    ("status", "SECRET-status-{i}"),
    ("call_id", "SECRET id {i}"),
    ("created_at", "SECRET-time-{i}"),
    ("input_tokens", "SECRET-{i}"),
    ("model", "SECRET-{i}-" + "m" * 100),
    ("task_type", "SECRET-task-{i}"),
]


@pytest.mark.parametrize("fmt", ["json", "ndjson"])
async def test_at_most_100_errors_never_echoing_input(
    client: httpx.AsyncClient, ingest_key: str, acct: str, engine: AsyncEngine, fmt: str
) -> None:
    batch = []
    expected = []
    for i in range(150):
        field, template = BAD_KINDS[i % len(BAD_KINDS)]
        call_id = f"ok-{i}" if field != "call_id" else template.format(i=i)
        batch.append(rec(call_id, **({} if field == "call_id" else {field: template.format(i=i)})))
        expected.append((i, field))
    batch.insert(0, rec("fine-first"))  # index 0 is valid: indexes shift by one
    response = await SENDERS[fmt](client, ingest_key, batch)
    error = assert_envelope(response, 400, "invalid_call_record")
    items = error["errors"]
    assert len(items) == 100
    assert "150" in error["message"]
    assert [(e["index"], e["field"]) for e in items] == [(i + 1, f) for i, f in expected[:100]]
    for item in items:
        assert set(item) == {"index", "field", "message"}
        assert isinstance(item["index"], int)
        assert isinstance(item["message"], str) and item["message"]
    assert "SECRET" not in response.text
    assert await count_calls(engine) == 0


async def test_bad_metadata_key_is_not_echoed(
    client: httpx.AsyncClient, ingest_key: str, acct: str
) -> None:
    secret_key = "SECRET" + "k" * 80
    item = only_error(await post_json(client, ingest_key, [rec(metadata={secret_key: "v"})]))
    assert field_matches(item["field"], "metadata")
    assert "SECRET" not in json.dumps(item)


@pytest.mark.parametrize("fmt", ["json", "ndjson"])
async def test_created_at_before_year_1_utc_is_a_400_not_a_500(
    client: httpx.AsyncClient, ingest_key: str, acct: str, engine: AsyncEngine, fmt: str
) -> None:
    response = await SENDERS[fmt](client, ingest_key, [rec(created_at="0001-01-01T00:30:00+01:00")])
    item = only_error(response)
    assert item["field"] == "created_at"
    assert await count_calls(engine) == 0


# --- size limits -----------------------------------------------------------------------------


def _many(n: int, prefix: str = "n") -> list[dict[str, Any]]:
    return [rec(f"{prefix}-{i}") for i in range(n)]


async def test_10000_records_are_accepted(
    client: httpx.AsyncClient, ingest_key: str, acct: str, engine: AsyncEngine
) -> None:
    response = await post_json(client, ingest_key, _many(10_000))
    assert response.status_code == 200, response.text
    assert response.json() == {"received": 10_000, "inserted": 10_000, "duplicates": 0}
    assert await count_calls(engine) == 10_000
    rows = await fetch(
        engine, "SELECT sum(calls) AS n, sum(cost_usd) AS c FROM rollup_account_daily"
    )
    assert rows[0]["n"] == 10_000
    assert rows[0]["c"] == Decimal("0.001") * 10_000


@pytest.mark.parametrize("fmt", ["json", "ndjson"])
async def test_10001_records_are_413(
    client: httpx.AsyncClient, ingest_key: str, acct: str, engine: AsyncEngine, fmt: str
) -> None:
    response = await SENDERS[fmt](client, ingest_key, _many(10_001))
    error = assert_envelope(response, 413, "payload_too_large")
    assert error["type"] == "invalid_request_error"
    assert await count_calls(engine) == 0


@pytest.mark.parametrize("content_type", ["application/json", "application/x-ndjson"])
async def test_body_over_10_mb_is_413(
    client: httpx.AsyncClient, ingest_key: str, acct: str, engine: AsyncEngine, content_type: str
) -> None:
    # 11,000,000 bytes: over 10 MB whether a megabyte is 10^6 or 2^20 bytes. Valid otherwise.
    head = dumps({"calls": [rec()]})[:-1] if content_type == "application/json" else dumps(rec())
    tail = b"}" if content_type == "application/json" else b"\n"
    body = head + b" " * (11_000_000 - len(head) - len(tail)) + tail
    assert len(body) == 11_000_000
    response = await post(client, ingest_key, body, content_type)
    assert_envelope(response, 413, "payload_too_large")
    assert await count_calls(engine) == 0


async def _chunks(body: bytes, size: int = 100) -> AsyncIterator[bytes]:
    for i in range(0, len(body), size):
        yield body[i : i + size]


@pytest.mark.parametrize("app_settings", [{"max_ingest_bytes": 1000}], indirect=True)
async def test_smaller_byte_limit_from_settings(
    client: httpx.AsyncClient, ingest_key: str, acct: str, engine: AsyncEngine
) -> None:
    big = dumps({"calls": _many(5)})
    assert len(big) > 1000
    assert_envelope(
        await post(client, ingest_key, big, "application/json"), 413, "payload_too_large"
    )
    # Streamed without a Content-Length: refused when the stream passes the limit.
    headers = {**bearer(ingest_key), "Content-Type": "application/json"}
    response = await client.post("/v1/calls", content=_chunks(big), headers=headers)
    assert "content-length" not in response.request.headers
    assert_envelope(response, 413, "payload_too_large")
    response = await post(client, ingest_key, ndjson(_many(5)), "application/x-ndjson")
    assert_envelope(response, 413, "payload_too_large")
    assert await count_calls(engine) == 0
    # Under the limit, streamed or not, it goes through.
    small = dumps({"calls": _many(2, "s")})
    assert len(small) <= 1000
    response = await client.post("/v1/calls", content=_chunks(small), headers=headers)
    assert response.status_code == 200, response.text
    assert await count_calls(engine) == 2


@pytest.mark.parametrize("app_settings", [{"max_ingest_records": 3}], indirect=True)
async def test_smaller_record_limit_from_settings(
    client: httpx.AsyncClient, ingest_key: str, acct: str, engine: AsyncEngine
) -> None:
    for send in SENDERS.values():
        assert_envelope(await send(client, ingest_key, _many(4)), 413, "payload_too_large")
    assert await count_calls(engine) == 0
    response = await post_json(client, ingest_key, _many(3))
    assert response.status_code == 200, response.text
    assert await count_calls(engine) == 3


# --- gzip bodies ----------------------------------------------------------------------------


async def post_gzip(
    client: httpx.AsyncClient, key: str, body: bytes, content_type: str, encoding: str = "gzip"
) -> httpx.Response:
    headers = {**bearer(key), "Content-Type": content_type, "Content-Encoding": encoding}
    return await client.post("/v1/calls", content=body, headers=headers)


@pytest.mark.parametrize("encoding", ["gzip", "GZIP", " gzip "])
async def test_gzip_bodies_are_stored_as_the_plain_ones(
    client: httpx.AsyncClient, ingest_key: str, acct: str, engine: AsyncEngine, encoding: str
) -> None:
    plain = dumps({"calls": _many(300, "j")})
    packed = gzip.compress(plain)
    response = await post_gzip(client, ingest_key, packed, "application/json", encoding)
    assert response.status_code == 200, response.text
    assert response.json() == {"received": 300, "inserted": 300, "duplicates": 0}
    lines = ndjson(_many(300, "n"))
    response = await post_gzip(client, ingest_key, gzip.compress(lines), "application/x-ndjson")
    assert response.json() == {"received": 300, "inserted": 300, "duplicates": 0}
    # The same batch again, compressed or not: duplicates.
    response = await post_gzip(client, ingest_key, gzip.compress(plain), "application/json")
    assert response.json() == {"received": 300, "inserted": 0, "duplicates": 300}
    assert (await post(client, ingest_key, plain, "application/json")).json()["inserted"] == 0
    assert await count_calls(engine) == 600


@pytest.mark.parametrize("app_settings", [{"max_ingest_bytes": 100_000}], indirect=True)
async def test_a_gzip_bomb_is_413_before_it_expands(
    client: httpx.AsyncClient, ingest_key: str, acct: str, engine: AsyncEngine
) -> None:
    """The limit is on the decompressed body: 1 GB of spaces compresses to ~1 MB, and is
    refused after inflating at most the limit (streamed, chunk by chunk)."""
    head = dumps({"calls": [rec()]})[:-1]
    bomb = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [bomb.compress(head)]
    spaces = b" " * 1_000_000
    parts += [bomb.compress(spaces) for _ in range(1000)]
    parts.append(bomb.compress(b"}") + bomb.flush())
    body = b"".join(parts)
    assert len(body) < 100_000 * 20
    headers = {**bearer(ingest_key), "Content-Type": "application/json", "Content-Encoding": "gzip"}
    tracemalloc.start()
    try:
        response = await client.post("/v1/calls", content=_chunks(body, 65_536), headers=headers)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert_envelope(response, 413, "payload_too_large")
    assert peak < 10_000_000, peak  # one 64 KB chunk of it inflates to ~64 MB
    # Under the limit once inflated: accepted.
    small = gzip.compress(dumps({"calls": _many(3, "z")}))
    response = await post_gzip(client, ingest_key, small, "application/json")
    assert response.status_code == 200, response.text
    assert await count_calls(engine) == 3


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not gzip at all", "not valid gzip"),
        (gzip.compress(dumps({"calls": [rec()]}))[:-12], "cut short"),
        (gzip.compress(dumps({"calls": [rec()]})) * 2, "one gzip member"),
        (gzip.compress(b'{"calls": [}'), ""),  # valid gzip, invalid JSON inside
    ],
)
async def test_bad_gzip_is_400_and_stores_nothing(
    client: httpx.AsyncClient,
    ingest_key: str,
    acct: str,
    engine: AsyncEngine,
    body: bytes,
    message: str,
) -> None:
    response = await post_gzip(client, ingest_key, body, "application/json")
    error = assert_envelope(response, 400, "invalid_json")
    assert message in error["message"]
    assert await count_calls(engine) == 0


@pytest.mark.parametrize("encoding", ["br", "deflate", "compress", "gzip, br", "x-gzip"])
async def test_other_content_encodings_are_415(
    client: httpx.AsyncClient, ingest_key: str, acct: str, engine: AsyncEngine, encoding: str
) -> None:
    body = gzip.compress(dumps({"calls": [rec()]}))
    response = await post_gzip(client, ingest_key, body, "application/json", encoding)
    error = assert_envelope(response, 415, "unsupported_media_type")
    assert error["param"] == "Content-Encoding"
    assert await count_calls(engine) == 0


# --- content type and auth -------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "",
        "text/plain",
        "application/xml",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "application/jsonx",
        "text/json",
    ],
)
async def test_wrong_content_type_is_415(
    client: httpx.AsyncClient,
    ingest_key: str,
    acct: str,
    engine: AsyncEngine,
    content_type: str | None,
) -> None:
    response = await post(client, ingest_key, dumps({"calls": [rec()]}), content_type)
    error = assert_envelope(response, 415, "unsupported_media_type")
    assert error["type"] == "invalid_request_error"
    assert await count_calls(engine) == 0


async def test_missing_key_is_401(
    client: httpx.AsyncClient, acct: str, engine: AsyncEngine
) -> None:
    response = await post(client, None, dumps({"calls": [rec()]}), "application/json")
    error = assert_envelope(response, 401, "missing_api_key")
    assert error["type"] == "authentication_error"
    assert response.headers["www-authenticate"].lower().startswith("bearer")
    assert await count_calls(engine) == 0


async def test_unknown_and_revoked_keys_are_401(
    client: httpx.AsyncClient, admin_ops: Admin, acct: str, engine: AsyncEngine
) -> None:
    body = dumps({"calls": [rec()]})
    fake = "sk_ingest_" + "A" * 49
    assert_envelope(await post(client, fake, body, "application/json"), 401, "invalid_api_key")
    key = await admin_ops.key(None)
    await admin_ops.revoke(key["key_id"])
    assert_envelope(
        await post(client, key["key"], body, "application/json"), 401, "invalid_api_key"
    )
    assert await count_calls(engine) == 0


@pytest.mark.parametrize("environment", ["live", "test"])
async def test_customer_key_is_403(
    client: httpx.AsyncClient, admin_ops: Admin, acct: str, engine: AsyncEngine, environment: str
) -> None:
    key = (await admin_ops.key(acct, environment))["key"]
    response = await post_json(client, key, [rec(environment=environment)])
    error = assert_envelope(response, 403, "insufficient_scope")
    assert error["type"] == "permission_error"
    assert await count_calls(engine) == 0


async def test_unknown_account_rejects_the_whole_batch(
    client: httpx.AsyncClient, ingest_key: str, acct: str, acct_b: str, engine: AsyncEngine
) -> None:
    await post_json(client, ingest_key, [rec("before")])  # data, and the key's last_used_at
    before = await snapshot(engine)
    batch = [
        rec("a-1"),
        rec("ghost-1", account_id="acct_ghost_two"),
        rec("b-1", account_id=ACCT_B),
        rec("ghost-2", account_id="acct_ghost_one"),
        rec("ghost-3", account_id="acct_ghost_one"),
    ]
    for fmt, send in SENDERS.items():
        response = await send(client, ingest_key, batch)
        error = assert_envelope(response, 400, "invalid_call_record")
        assert "acct_ghost_one" in error["message"], fmt
        assert "acct_ghost_two" in error["message"], fmt
        assert ACCT not in error["message"]
        assert await snapshot(engine) == before
    rows = await fetch(engine, "SELECT account_id, call_id FROM calls")
    assert rows == [{"account_id": ACCT, "call_id": "before"}]


# --- idempotency -----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "ndjson"])
async def test_duplicate_in_one_batch_first_occurrence_wins(
    client: httpx.AsyncClient, ingest_key: str, acct: str, engine: AsyncEngine, fmt: str
) -> None:
    batch = [
        rec("dup", model="first-model", cost_usd=0.5, latency_ms=100),
        rec("other", cost_usd=0.25),
        rec("dup", model="second-model", cost_usd=0.7, latency_ms=999),
        rec("dup", model="third-model", cost_usd=0.9),
    ]
    response = await SENDERS[fmt](client, ingest_key, batch)
    assert response.status_code == 200, response.text
    assert response.json() == {"received": 4, "inserted": 2, "duplicates": 2}
    rows = await fetch(
        engine, "SELECT model, cost_usd, latency_ms FROM calls WHERE call_id = 'dup'"
    )
    assert rows == [{"model": "first-model", "cost_usd": Decimal("0.5"), "latency_ms": 100}]
    daily = await fetch(engine, "SELECT calls, cost_usd, latency_sum FROM rollup_account_daily")
    assert daily == [{"calls": 2, "cost_usd": Decimal("0.75"), "latency_sum": 900}]
    models = await fetch(engine, "SELECT model, calls FROM rollup_model_daily ORDER BY model")
    assert models == [{"model": "first-model", "calls": 1}, {"model": "gpt-4o-mini", "calls": 1}]


async def test_same_batch_twice_changes_nothing_the_second_time(
    client: httpx.AsyncClient, ingest_key: str, acct: str, acct_b: str, engine: AsyncEngine
) -> None:
    batch = [rec(f"x-{i}", account_id=(ACCT, ACCT_B)[i % 2]) for i in range(20)]
    first = await post_json(client, ingest_key, batch)
    assert first.json() == {"received": 20, "inserted": 20, "duplicates": 0}
    before = await snapshot(engine)
    for send in SENDERS.values():
        again = await send(client, ingest_key, batch)
        assert again.status_code == 200, again.text
        assert again.json() == {"received": 20, "inserted": 0, "duplicates": 20}
        # Not counted twice anywhere: no rollup, no data version moves.
        assert await snapshot(engine) == before


async def test_stored_call_is_never_overwritten(
    client: httpx.AsyncClient, ingest_key: str, acct: str, engine: AsyncEngine
) -> None:
    await post_json(client, ingest_key, [rec("keep", cost_usd=0.1, model="orig")])
    response = await post_ndjson(
        client, ingest_key, [rec("keep", cost_usd=9.0, model="changed"), rec("new")]
    )
    assert response.json() == {"received": 2, "inserted": 1, "duplicates": 1}
    rows = await fetch(engine, "SELECT model, cost_usd FROM calls WHERE call_id = 'keep'")
    assert rows == [{"model": "orig", "cost_usd": Decimal("0.1")}]
    daily = await fetch(engine, "SELECT calls, cost_usd FROM rollup_account_daily")
    assert daily == [{"calls": 2, "cost_usd": Decimal("0.101")}]


async def test_same_call_id_under_two_accounts_is_two_calls(
    client: httpx.AsyncClient, ingest_key: str, acct: str, acct_b: str, engine: AsyncEngine
) -> None:
    response = await post_json(
        client, ingest_key, [rec("shared"), rec("shared", account_id=ACCT_B)]
    )
    assert response.json() == {"received": 2, "inserted": 2, "duplicates": 0}
    rows = await fetch(engine, "SELECT account_id FROM calls WHERE call_id = 'shared' ORDER BY 1")
    assert [r["account_id"] for r in rows] == [ACCT, ACCT_B]
    again = await post_json(client, ingest_key, [rec("shared", account_id=ACCT_B)])
    assert again.json() == {"received": 1, "inserted": 0, "duplicates": 1}


async def test_concurrent_identical_batches_store_one_copy(
    client: httpx.AsyncClient, ingest_key: str, acct: str, acct_b: str, engine: AsyncEngine
) -> None:
    records = varied_records(random.Random(7), 200)
    responses = await asyncio.gather(*(post_json(client, ingest_key, records) for _ in range(5)))
    bodies = [r.json() for r in responses]
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    assert all(b["received"] == 200 for b in bodies)
    assert all(b["duplicates"] == 200 - b["inserted"] for b in bodies)
    assert sum(b["inserted"] for b in bodies) == 200
    assert await count_calls(engine) == 200
    await assert_rollups_match(engine, records)


async def test_concurrent_overlapping_batches(
    client: httpx.AsyncClient, ingest_key: str, acct: str, acct_b: str, engine: AsyncEngine
) -> None:
    records = varied_records(random.Random(8), 200)
    batches = []
    for k in range(5):
        part = records[k * 30 : k * 30 + 80]
        random.Random(k).shuffle(part)
        batches.append(part)
    union = records[:200]
    responses = await asyncio.gather(
        *(SENDERS[("json", "ndjson")[k % 2]](client, ingest_key, b) for k, b in enumerate(batches))
    )
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    bodies = [r.json() for r in responses]
    assert [b["received"] for b in bodies] == [len(b) for b in batches]
    assert sum(b["inserted"] for b in bodies) == len(union)
    assert await count_calls(engine) == len(union)
    await assert_rollups_match(engine, union)


# --- atomicity -------------------------------------------------------------------------------


@pytest.mark.parametrize("app_settings", [{"max_ingest_records": 20}], indirect=True)
async def test_rejected_batches_leave_every_table_as_it_was(
    client: httpx.AsyncClient, ingest_key: str, acct: str, acct_b: str, engine: AsyncEngine
) -> None:
    seed = varied_records(random.Random(3), 20)
    assert (await post_json(client, ingest_key, seed)).status_code == 200
    before = await snapshot(engine)
    assert FOLDED_TABLES | {"calls", "accounts", "api_keys"} <= set(before)
    # Month rows exist only for ended months: none when the seed's days are all in this one;
    # late calls of ended weeks mark them stale instead of writing week rows; the 5-minute
    # rollup keeps the last two days only.
    recent_only = {failure_monthly.name, "rollup_group_weekly", "rollup_account_5m"}
    touched = FOLDED_TABLES - recent_only | {"calls"}
    assert all(before[name] for name in touched)

    fresh = [rec(f"fresh-{i}", account_id=(ACCT, ACCT_B)[i % 2]) for i in range(5)]
    rejected = [
        ("json", [*fresh, rec("bad", status="ok")], 400),
        ("ndjson", [*fresh, rec("bad", status="ok")], 400),
        ("json", [*fresh, rec("bad", status="error")], 400),
        ("ndjson", [*fresh, rec("bad", retry_count=2)], 400),
        ("json", [*fresh, rec("ghost", account_id="acct_nobody")], 400),
        ("ndjson", [rec("ghost", account_id="acct_nobody"), *fresh], 400),
        ("json", [*fresh, rec("nul", user_id="a\x00b")], 400),
        ("json", [rec(f"many-{i}") for i in range(21)], 413),
        ("ndjson", [rec(f"many-{i}") for i in range(21)], 413),
    ]
    for fmt, batch, status in rejected:
        response = await SENDERS[fmt](client, ingest_key, batch)
        assert response.status_code == status, (fmt, response.text)
        assert await snapshot(engine) == before, (fmt, batch[-1]["call_id"])
    raw = [
        (b'{"calls": [', "application/json", 400),
        (dumps({"calls": fresh}), "text/plain", 415),
        (dumps({"calls": fresh}), None, 415),
    ]
    for body, content_type, status in raw:
        response = await post(client, ingest_key, body, content_type)
        assert response.status_code == status, response.text
        assert await snapshot(engine) == before
    # A batch of stored calls only is accepted and also leaves everything as it was.
    response = await post_ndjson(client, ingest_key, seed[:10])
    assert response.json() == {"received": 10, "inserted": 0, "duplicates": 10}
    assert await snapshot(engine) == before


# --- exact rollups ---------------------------------------------------------------------------

PAIRS = [
    ("gpt-4o-mini", "openai"),
    ("gpt-4o", "openai"),
    ("claude-sonnet-4-5", "anthropic"),
    ("claude-haiku-4-5", "anthropic"),
    ("gemini-2.5-flash", "google"),
    ("mistral-large", "mistral"),
]
MODES = [*QUALITY_MODES, *PROVIDER_MODES]
PROVIDER_SIDE = set(PROVIDER_MODES)
TRIGGERS = ["nested arrays", "long context", "json schema", "tool call"]
OFFSETS = [timedelta(0), timedelta(hours=1), timedelta(hours=-8), timedelta(hours=5, minutes=30)]
OFFSETS += [timedelta(hours=14), timedelta(hours=-12)]
MS = timedelta(milliseconds=1)
SPECIAL_MOMENTS = [
    DAY0 + timedelta(days=1) - MS,  # 23:59:59.999Z
    DAY0 + timedelta(days=1),  # 00:00:00Z
    DAY0 + timedelta(days=1, minutes=5) - MS,  # last ms of a 5-minute bucket
    DAY0 + timedelta(days=1, minutes=5),  # first ms of the next
    DAY0 + timedelta(days=2) - MS,
    DAY0 + timedelta(days=2),
    DAY0 + timedelta(days=1, hours=1) - MS,  # hour boundary
    DAY0 + timedelta(days=1, hours=1),
]


def varied_records(rng: random.Random, n: int) -> list[dict[str, Any]]:
    """Consistent records over two accounts, both environments and three UTC days."""
    records = []
    for i in range(n):
        account = (ACCT, ACCT_B)[i % 2]
        environment = rng.choice(["live", "live", "test"])
        if i < 4 * len(SPECIAL_MOMENTS):
            moment = SPECIAL_MOMENTS[(i // 2) % len(SPECIAL_MOMENTS)]
        else:
            moment = DAY0 + timedelta(milliseconds=rng.randrange(3 * 86_400_000))
        model, provider = rng.choice(PAIRS)
        r: dict[str, Any] = {
            "call_id": f"call-{i // 2:04d}",  # the same id under both accounts
            "account_id": account,
            "created_at": iso(moment, rng.choice(OFFSETS)),
            "task_type": rng.choice(TASKS),
            "model": model,
            "provider": provider,
            "input_tokens": rng.randrange(0, 5000),
            "output_tokens": rng.randrange(0, 2000),
            "cost_usd": round(rng.uniform(0, 0.05), rng.choice([2, 6, 8])),
            "latency_ms": rng.choice([0, 1, 99, 100, 101, rng.randrange(50, 30_000)]),
            "status": "success",
        }
        if environment == "test" or rng.random() < 0.5:
            r["environment"] = environment
        scenario = rng.random()
        mode = rng.choice(MODES)
        if scenario < 0.55:
            pass  # clean success
        elif scenario < 0.67:
            r.update(failure_mode=mode, recovery="retry", retry_count=rng.randint(1, 3))
            if rng.random() < 0.3:
                r["initial_model"] = model  # same first choice, spelled out
        elif scenario < 0.8:
            first_model, first_provider = rng.choice([p for p in PAIRS if p[0] != model])
            r.update(failure_mode=mode, recovery="fallback", fallback_used=True)
            r["initial_model"] = first_model
            if first_provider != provider or rng.random() < 0.5:
                r["initial_provider"] = first_provider
            r["retry_count"] = rng.choice([0, 0, 1])
        else:
            r.update(status="error", failure_mode=mode, retry_count=rng.choice([0, 1, 2]))
            if rng.random() < 0.3:
                first_model, first_provider = rng.choice([p for p in PAIRS if p[0] != model])
                r.update(
                    fallback_used=True, initial_model=first_model, initial_provider=first_provider
                )
        if "failure_mode" in r and rng.random() < 0.7:
            r["failure_trigger"] = rng.choice(TRIGGERS)
        elif rng.random() < 0.05:
            r["failure_trigger"] = "stray tag"  # a trigger without a failure
        quality = rng.random()
        if quality < 0.2:
            r["quality_score"] = None
        elif quality < 0.3:
            r["quality_score"] = rng.choice([0.7, 0.699, 0.0, 1.0])
        elif quality < 0.9:
            r["quality_score"] = round(rng.uniform(0.3, 1.0), 3)
        if rng.random() < 0.7:
            r["complexity_score"] = round(rng.random(), 2)
        if rng.random() < 0.8:
            r["message_count"] = rng.randint(1, 20)
        if rng.random() < 0.1:
            r["cost_ceiling_hit"] = True
            r["max_cost_per_call"] = 0.01
        if rng.random() < 0.2:
            r["metadata"] = None  # non-null metadata: see test_metadata_is_stored
        records.append(r)
    return records


def utc(r: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(r["created_at"]).astimezone(UTC)


def dec(x: float | int) -> Decimal:
    """The decimal number the client wrote (json.dumps writes repr(float))."""
    return Decimal(json.dumps(x))


GROUP_COUNTS = (
    "calls",
    "successes",
    "failures",
    "cost_usd",
    "latency_sum",
    "quality_sum",
    "quality_n",
    "input_tokens",
    "output_tokens",
)


def latency_bin(ms: int) -> int:
    """docs/rollups.md's bins: one per ms below 100, then 2% wide (1.01 / 0.99) from 100 ms."""
    return ms if ms < 100 else 100 + math.floor(math.log(ms / 100) / math.log(1.01 / 0.99))


def expected_rollups(records: list[dict[str, Any]]) -> dict[str, dict[tuple[Any, ...], Any]]:
    """A plain-Python aggregation of unique records, one dict per rollup table."""

    def zeros(*names: str) -> Callable[[], dict[str, Any]]:
        return lambda: dict.fromkeys(names, 0)

    account: dict[tuple[Any, ...], dict[str, Any]] = defaultdict(
        zeros(
            "calls",
            "successes",
            "routed_right",
            "fallbacks",
            "retried",
            "ceiling_hits",
            "cost_usd",
            "latency_sum",
            "input_tokens",
            "output_tokens",
            "quality_sum",
            "quality_n",
            "complexity_sum",
            "complexity_n",
            "message_sum",
            "message_n",
            "attempts",
        )
    )
    hours: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0] * 24)
    model: dict[tuple[Any, ...], dict[str, Any]] = defaultdict(
        lambda: {
            **dict.fromkeys(
                (
                    "calls",
                    "successes",
                    "cost_usd",
                    "latency_sum",
                    "quality_sum",
                    "quality_n",
                    "input_tokens",
                    "output_tokens",
                    "failures",
                ),
                0,
            ),
            "hist": Counter(),
        }
    )
    failure: dict[tuple[Any, ...], dict[str, Any]] = defaultdict(
        zeros("calls", "retry_recovered", "fallback_recovered", "unrecoverable")
    )
    trigger: dict[tuple[Any, ...], int] = defaultdict(int)
    group: dict[tuple[Any, ...], dict[str, Any]] = defaultdict(zeros(*GROUP_COUNTS))
    p5: dict[tuple[Any, ...], dict[str, Any]] = defaultdict(
        zeros("fc_calls", "fc_provider_failures", "fc_rate_limited", "served_calls", "latency_sum")
    )
    ph: dict[tuple[Any, ...], dict[str, Any]] = defaultdict(
        zeros("fc_calls", "fc_provider_failures", "fc_rate_limited", "served_calls", "latency_sum")
    )
    account_5m: defaultdict[tuple[Any, ...], dict[str, Any]] = defaultdict(
        zeros("calls", "failures")
    )
    for r in records:
        t = utc(r)
        env = r.get("environment", "live")
        day = t.date()
        mode = r.get("failure_mode")
        quality = r.get("quality_score")
        success = r["status"] == "success"
        a = account[(r["account_id"], env, day)]
        a["calls"] += 1
        a["successes"] += success
        a["routed_right"] += mode is None and (quality is None or quality >= 0.7)
        a["fallbacks"] += bool(r.get("fallback_used"))
        a["retried"] += r.get("retry_count", 0) > 0
        a["ceiling_hits"] += bool(r.get("cost_ceiling_hit"))
        a["cost_usd"] += dec(r["cost_usd"])
        a["latency_sum"] += r["latency_ms"]
        a["input_tokens"] += r["input_tokens"]
        a["output_tokens"] += r["output_tokens"]
        if quality is not None:
            a["quality_sum"] += dec(quality)
            a["quality_n"] += 1
        if r.get("complexity_score") is not None:
            a["complexity_sum"] += dec(r["complexity_score"])
            a["complexity_n"] += 1
        if r.get("message_count") is not None:
            a["message_sum"] += r["message_count"]
            a["message_n"] += 1
        a["attempts"] += 1 + r.get("retry_count", 0) + bool(r.get("fallback_used"))
        hours[(r["account_id"], env, day)][t.hour] += 1

        m = model[(r["account_id"], env, day, r["task_type"], r["model"], r["provider"])]
        m["calls"] += 1
        m["successes"] += success
        m["cost_usd"] += dec(r["cost_usd"])
        m["latency_sum"] += r["latency_ms"]
        m["input_tokens"] += r["input_tokens"]
        m["output_tokens"] += r["output_tokens"]
        m["failures"] += mode is not None
        if quality is not None:
            m["quality_sum"] += dec(quality)
            m["quality_n"] += 1
        m["hist"][latency_bin(r["latency_ms"])] += 1

        first_model = r.get("initial_model") or r["model"]
        first_provider = r.get("initial_provider") or r["provider"]
        f = failure[(r["account_id"], env, day, r["task_type"], first_model, mode or "")]
        f["calls"] += 1
        f["retry_recovered"] += r.get("recovery") == "retry"
        f["fallback_recovered"] += r.get("recovery") == "fallback"
        f["unrecoverable"] += not success

        if mode is not None and r.get("failure_trigger") is not None:
            trigger[(r["account_id"], env, day, mode, r["failure_trigger"])] += 1

        g = group[(r["account_id"], env, "user", day, r.get("user_id") or "")]
        g["calls"] += 1
        g["successes"] += success
        g["failures"] += mode is not None
        g["cost_usd"] += dec(r["cost_usd"])
        g["latency_sum"] += r["latency_ms"]
        g["input_tokens"] += r["input_tokens"]
        g["output_tokens"] += r["output_tokens"]
        if quality is not None:
            g["quality_sum"] += dec(quality)
            g["quality_n"] += 1

        b5 = t.replace(minute=t.minute - t.minute % 5, second=0, microsecond=0)
        b60 = t.replace(minute=0, second=0, microsecond=0)
        if b5 >= datetime.now(UTC) - timedelta(days=2):  # the last two days only
            recent = account_5m[(r["account_id"], env, b5)]
            recent["calls"] += 1
            recent["failures"] += mode is not None
        for table, bucket in ((p5, b5), (ph, b60)):
            fc = table[(env, bucket, first_provider)]
            fc["fc_calls"] += 1
            fc["fc_provider_failures"] += mode in PROVIDER_SIDE
            fc["fc_rate_limited"] += mode == "rate_limited"
            served = table[(env, bucket, r["provider"])]
            served["served_calls"] += 1
            served["latency_sum"] += r["latency_ms"]
    for key, counts in hours.items():
        account[key]["hour_calls"] = counts
    # Month rows for the months before the watermark, which the tests leave at this month (on
    # the westernmost clock, UTC-12, which the watermark follows).
    this_month = (datetime.now(UTC) - timedelta(hours=12)).date().replace(day=1)
    failure_month: defaultdict[tuple[Any, ...], dict[str, Any]] = defaultdict(
        zeros("calls", "retry_recovered", "fallback_recovered", "unrecoverable")
    )
    for (a, env, day, *rest), measures in failure.items():
        if day < this_month:
            month = failure_month[(a, env, day.replace(day=1), *rest)]
            for name, n in measures.items():
                month[name] += n
    # Week rows for the weeks before the watermark (this week on the westernmost clock).
    today_west = (datetime.now(UTC) - timedelta(hours=12)).date()
    this_week = today_west - timedelta(days=today_west.weekday())
    group_week: defaultdict[tuple[Any, ...], dict[str, Any]] = defaultdict(zeros(*GROUP_COUNTS))
    for (a, env, dim, day, value), measures in group.items():
        if day < this_week:
            week = group_week[(a, env, dim, value, day - timedelta(days=day.weekday()))]
            for name, n in measures.items():
                week[name] += n
    return {
        "rollup_account_daily": dict(account),
        "rollup_model_daily": dict(model),
        "rollup_failure_daily": dict(failure),
        "rollup_failure_monthly": dict(failure_month),
        "rollup_trigger_daily": {k: {"calls": v} for k, v in trigger.items()},
        "rollup_group_daily": dict(group),
        "rollup_group_weekly": dict(group_week),
        "rollup_account_5m": dict(account_5m),
        "rollup_provider_5m": dict(p5),
        "rollup_provider_hourly": dict(ph),
    }


ROLLUP_KEYS = {r.name: r.key_names for r in ROLLUPS}


async def assert_rollups_match(engine: AsyncEngine, unique: list[dict[str, Any]]) -> None:
    expected = expected_rollups(unique)
    # The weeks late calls made stale built from their days, as the next fold due does
    # (test_breakdown_groups tests the stale weeks themselves).
    async with engine.connect() as conn:
        await settle(conn)
    for table, keys in ROLLUP_KEYS.items():
        actual = {}
        lower = ", array_lower(hist, 1) AS lower" if table == "rollup_model_daily" else ""
        for row in await fetch(engine, f"SELECT *{lower} FROM {table}"):
            key = tuple(row.pop(k) for k in keys)
            if table == "rollup_model_daily":
                # Its bins, from its lowest to its highest, as a histogram of its own.
                lower, hist = row.pop("lower"), row.pop("hist")
                row["hist"] = Counter({lower + i: n for i, n in enumerate(hist) if n})
                assert hist[0] and hist[-1], (table, key)  # no empty ends stored
            elif "hist" in row:
                # Every served call is in exactly one histogram bin.
                assert sum(row.pop("hist")) == row["served_calls"], (table, key)
            actual[key] = row
        want = expected[table]
        assert set(actual) == set(want), (table, set(actual) ^ set(want))
        for key, values in want.items():
            got = {k: actual[key][k] for k in values}
            assert got == values, (table, key)
        if table == "rollup_account_daily":
            assert all(isinstance(d, date) for _, _, d in actual)


def _mutated(r: dict[str, Any]) -> dict[str, Any]:
    """Same call_id, other (still consistent) values: must never replace the stored call."""
    return {**r, "cost_usd": 7.77, "latency_ms": 4242, "quality_score": 0.123, "input_tokens": 1}


async def test_rollups_are_exact(
    client: httpx.AsyncClient, ingest_key: str, acct: str, acct_b: str, engine: AsyncEngine
) -> None:
    records = varied_records(random.Random(20261127), 300)
    batches = [
        ("json", records[0:80]),
        ("json", [_mutated(records[5]), *records[70:160], _mutated(records[100])]),
        ("ndjson", [*records[150:230], _mutated(records[75]), records[152]]),
        ("json", [*records[220:300], *records[0:10]]),
        ("ndjson", records[70:160]),  # all stored already
    ]
    stored: dict[tuple[str, str], dict[str, Any]] = {}
    versions: dict[tuple[str, str], int] = defaultdict(int)
    for fmt, batch in batches:
        new = []
        for r in batch:
            key = (r["account_id"], r["call_id"])
            if key not in stored:
                stored[key] = r
                new.append(r)
        for pair in {(r["account_id"], r.get("environment", "live")) for r in new}:
            versions[pair] += 1
        response = await SENDERS[fmt](client, ingest_key, batch)
        assert response.status_code == 200, response.text
        assert response.json() == {
            "received": len(batch),
            "inserted": len(new),
            "duplicates": len(batch) - len(new),
        }
    unique = list(stored.values())
    assert len(unique) == 300
    assert await count_calls(engine) == 300
    await assert_rollups_match(engine, unique)

    # The data version of an (account, environment) moved once per batch that added to it.
    rows = await fetch(engine, "SELECT account_id, environment, version FROM account_data_versions")
    assert {(r["account_id"], r["environment"]): r["version"] for r in rows} == dict(versions)

    # The raw rows are the first-stored versions.
    row = (
        await fetch(
            engine,
            "SELECT * FROM calls WHERE call_id = :c AND account_id = :a",
            c=records[5]["call_id"],
            a=records[5]["account_id"],
        )
    )[0]
    assert row["cost_usd"] == dec(records[5]["cost_usd"])
    assert row["latency_ms"] == records[5]["latency_ms"]


async def test_rollup_score_sums_are_exact_decimals_of_the_values_sent(
    client: httpx.AsyncClient, ingest_key: str, acct: str, engine: AsyncEngine
) -> None:
    score = 0.1234999999999999  # 16 significant digits; exact sum of two is 0.2469999999999998
    batch = [rec(f"q-{i}", quality_score=score, complexity_score=score) for i in range(2)]
    assert (await post_json(client, ingest_key, batch)).status_code == 200
    row = (await fetch(engine, "SELECT quality_sum, complexity_sum FROM rollup_account_daily"))[0]
    model = (await fetch(engine, "SELECT quality_sum FROM rollup_model_daily"))[0]
    exact = Decimal("0.2469999999999998")
    assert row["quality_sum"] == exact
    assert row["complexity_sum"] == exact
    assert model["quality_sum"] == exact


# Found in review: each failed before its fix.


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
