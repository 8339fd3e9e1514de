"""Every field of every endpoint against the plain-Python reference (tests/reference.py), over
random call logs loaded through the real ingest path."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests import reference
from tests.clock import set_clock
from tests.conftest import RESPONSE_SCHEMAS, Admin, bearer
from tests.factories import as_reference, random_log

NOW = datetime(2026, 3, 2, 13, 47, 12, tzinfo=UTC)
SETTINGS = {
    "cost_vs_quality_ratio": 0.5,
    "latency_sensitivity": 0.5,
    "preferred_models": [],
    "task_overrides": {},
}


def assert_percentiles_close(actual: Any, expected: Any, path: str = "") -> None:
    """Equal everywhere, except p50/p95/p99 latencies: within 2% of the exact nearest rank."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), path
        assert list(actual) == list(expected), f"{path}: keys {list(actual)} != {list(expected)}"
        for k in expected:
            assert_percentiles_close(actual[k], expected[k], f"{path}.{k}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), (
            f"{path}: {actual} != {expected}"
        )
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_percentiles_close(a, e, f"{path}[{i}]")
    elif path.endswith(("p50_latency_ms", "p95_latency_ms", "p99_latency_ms")) and expected:
        assert actual is not None and abs(actual - expected) <= 0.02 * expected + 0.5, (
            f"{path}: {actual} vs exact {expected}"
        )
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


async def load(
    client: httpx.AsyncClient, admin_ops: Admin, seed: int, n: int
) -> tuple[list[dict[str, Any]], dict[str, dict[str, str]]]:
    rng = random.Random(seed)
    accounts = [await admin_ops.account(account_id=f"acct_r{seed}_{i}") for i in range(3)]
    keys = {
        a: {env: (await admin_ops.key(a, env))["key"] for env in ("live", "test")} for a in accounts
    }
    ingest = (await admin_ops.key(None))["key"]
    start = NOW - timedelta(days=rng.choice((3, 3, 20, 75)))
    calls = random_log(rng, accounts, n, start, NOW)
    # Bursts of provider-side failures in consecutive 5-minute intervals: incidents, status.
    for burst in range(rng.randint(0, 3)):
        first = _floor5(NOW) - timedelta(minutes=5 * rng.choice((0, 1, 2, 8, 60, 300)))
        for interval in range(rng.randint(1, 3)):
            at = first - timedelta(minutes=5 * interval)
            for j in range(rng.randint(8, 30)):
                spike = random_log(rng, accounts, 1, at, at + timedelta(minutes=5))[0]
                spike.update(call_id=f"b{burst}-{interval}-{j}-{seed}", environment="live")
                if rng.random() < 0.6:
                    spike.update(
                        failure_mode="timeout",
                        status="error",
                        recovery=None,
                        fallback_used=False,
                        initial_model=None,
                        initial_provider=None,
                        retry_count=0,
                        model="gpt-4o",
                        provider="openai",
                    )
                calls.append(spike)
    for i in range(0, len(calls), 400):
        response = await client.post(
            "/v1/calls", json={"calls": calls[i : i + 400]}, headers=bearer(ingest)
        )
        assert response.status_code == 200, response.text
    return [as_reference(c) for c in calls], keys


async def get(client: httpx.AsyncClient, key: str, endpoint: str, **params: Any) -> dict[str, Any]:
    response = await client.get(f"/v1/metrics/{endpoint}", params=params, headers=bearer(key))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    RESPONSE_SCHEMAS[endpoint].model_validate(body)
    return body


@pytest.fixture
def fixed_clock(app: FastAPI) -> datetime:
    set_clock(app, NOW)
    return NOW


@pytest.mark.parametrize("seed", range(20))
async def test_every_endpoint_matches_the_reference(
    client: httpx.AsyncClient, admin_ops: Admin, fixed_clock: datetime, seed: int
) -> None:
    records, keys = await load(
        client, admin_ops, seed, n=random.Random(seed).choice((40, 1500, 2500, 2500))
    )
    rng = random.Random(seed + 1000)
    today = NOW.date()
    account = rng.choice(list(keys)[:2])
    env = rng.choice(("live", "live", "test"))
    key = keys[account][env]
    mine = [r for r in records if r["account_id"] == account and r["environment"] == env]
    days = rng.choice((1, 7, 30, 90))
    end_date = rng.choice(
        (today, today, today, today - timedelta(days=1), date(2026, 2, 28), date(2026, 1, 31))
    )
    params = {"days": days, "end_date": end_date.isoformat()}

    assert_percentiles_close(
        await get(client, key, "overview", **params),
        reference.overview(mine, days=days, end_date=end_date),
    )
    assert_percentiles_close(
        await get(client, key, "customer", **params),
        reference.customer(
            mine, account_id=account, settings=SETTINGS, days=days, end_date=end_date
        ),
    )
    task = rng.choice((None, "extraction", "code"))
    perf_params = {**params, **({"task_type": task} if task else {})}
    assert_percentiles_close(
        await get(client, key, "performance", **perf_params),
        reference.performance(mine, days=days, end_date=end_date, task_type=task),
    )
    assert_percentiles_close(
        await get(client, key, "failures", **params),
        reference.failures(mine, days=days, end_date=end_date),
    )
    assert_percentiles_close(
        await get(client, key, "daily", **params),
        reference.daily(mine, days=days, end_date=end_date, today=today),
    )
    hours = rng.choice((1, 6, 24, 168))
    end_time = rng.choice(
        (NOW, NOW, NOW - timedelta(minutes=17), NOW - timedelta(hours=5, minutes=2))
    )
    platform = [r for r in records if r["environment"] == env]
    expected = reference.providers(platform, hours=hours, end_time=_floor5(end_time))
    actual = await get(
        client, key, "providers", hours=hours, end_time=end_time.isoformat().replace("+00:00", "Z")
    )
    # Latency recommendations hinge on p95 thresholds, which the histogram approximates:
    # compared on hand-made data in test_metrics_cases.py instead.
    actual.pop("recommendations")
    expected.pop("recommendations")
    assert_percentiles_close(actual, expected)


def _floor5(moment: datetime) -> datetime:
    return moment.replace(minute=moment.minute - moment.minute % 5, second=0, microsecond=0)


async def test_defaults_use_today_and_the_spec_default_days(
    client: httpx.AsyncClient, admin_ops: Admin, fixed_clock: datetime
) -> None:
    records, keys = await load(client, admin_ops, 99, n=300)
    account = next(iter(keys))
    mine = [r for r in records if r["account_id"] == account and r["environment"] == "live"]
    today = NOW.date()
    key = keys[account]["live"]
    assert_percentiles_close(
        await get(client, key, "overview"), reference.overview(mine, days=7, end_date=today)
    )
    assert_percentiles_close(
        await get(client, key, "customer"),
        reference.customer(mine, account_id=account, settings=SETTINGS, days=30, end_date=today),
    )
    assert_percentiles_close(
        await get(client, key, "daily"),
        reference.daily(mine, days=30, end_date=today, today=today),
    )
