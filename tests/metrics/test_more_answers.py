"""SPEC §14, through the real API: monthly budgets and their burn date, any baseline model with
the price in force each day, provider attempts, per-model percentiles, data_as_of.

Expected values are worked out by hand in the comments and, where the data is larger, computed
by the plain-Python reference (tests/reference.py) from the same records.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from perf_metrics import accounts as admin
from perf_metrics import prices
from perf_metrics.rollups.fold import FOLD_LOCK, fold
from tests import reference
from tests.clock import set_clock
from tests.conftest import RESPONSE_SCHEMAS, Admin, assert_envelope, bearer, store_records
from tests.factories import as_reference, at, iso, json_call
from tests.metrics.test_metrics_reference import assert_percentiles_close

ACCT = "acct_more"

_call = json_call.but(
    call_ids=(f"more-{n}" for n in itertools.count(1)),
    account_id=ACCT,
    environment="live",
    task_type="extraction",
    retry_count=0,
    fallback_used=False,
)


def call(when: datetime, cost: str = "0.001", **fields: Any) -> dict[str, Any]:
    record = _call(created_at=iso(when), cost_usd=float(cost), **fields)
    return record


async def post(client: httpx.AsyncClient, ingest: str, records: list[dict[str, Any]]) -> None:
    for i in range(0, len(records), 1000):
        response = await client.post(
            "/v1/calls", json={"calls": records[i : i + 1000]}, headers=bearer(ingest)
        )
        assert response.status_code == 200, response.text


async def get(client: httpx.AsyncClient, key: str, endpoint: str, **params: Any) -> dict[str, Any]:
    response = await client.get(f"/v1/metrics/{endpoint}", params=params, headers=bearer(key))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    RESPONSE_SCHEMAS[endpoint].model_validate(body)
    return body


async def setup(admin_ops: Admin, zone: str = "UTC") -> tuple[str, str]:
    await admin_ops.account(account_id=ACCT, timezone=zone)
    return (await admin_ops.key(None))["key"], (await admin_ops.key(ACCT))["key"]


async def set_budget(engine: AsyncEngine, budget: str | None) -> None:
    async with engine.begin() as conn:
        await admin.update_account(
            conn, ACCT, monthly_budget_usd=None if budget is None else Decimal(budget)
        )


@pytest.fixture
async def price_table(engine: AsyncEngine) -> AsyncIterator[None]:
    """The price table as migrated again after the test (the suite keeps it between tests)."""
    yield
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM model_prices WHERE effective_from <> '2000-01-01'"))


# ---------------------------------------------------------------- budget


def march_costs() -> list[dict[str, Any]]:
    """1.00 on each of 2024-03-01..09 and 0.50 on the 10th (today)."""
    days = [call(at(2024, 3, d), "1.00") for d in range(1, 10)]
    return [*days, call(at(2024, 3, 10, 8), "0.50")]


# Today 2024-03-10: spent 9.50; before today 9.00; R = Mar 3..9 = 7.00 / 7 = 1.00; 22 days
# left counting today: projected 9 + 22 = 31.00.
# (budget, remaining, status, projected_exceed_date); spent is 9.50 in every case.
BUDGET_CASES = [
    # 100: spent < 100, projected 31 < 100: ok; 9 + k >= 100 needs k = 91 > 22 days: never
    ("100", 90.5, "ok", None),
    # 20: projected 31 >= 20: at risk; 9 + k >= 20 first at k = 11: the 10th + 10 = the 20th
    ("20", 10.5, "at_risk", "2024-03-20"),
    # 31: projected exactly 31 >= 31: at risk, reached on the 31st (k = 22)
    ("31", 21.5, "at_risk", "2024-03-31"),
    # 31.01: k = 22.01 -> 23 > 22 days left: ok, never this month
    ("31.01", 21.51, "ok", None),
    # 5: spent 9.50 >= 5: over since the running total reached 5 on the 5th
    ("5", 0.0, "over", "2024-03-05"),
    # 9.50: over exactly today (9.00 by the 9th, 9.50 on the 10th)
    ("9.50", 0.0, "over", "2024-03-10"),
    # 9.25: over; 9.00 by the 9th is not enough, the 10th is
    ("9.25", 0.0, "over", "2024-03-10"),
]


async def test_budget_states_by_hand_and_by_the_reference(
    client: httpx.AsyncClient, app: FastAPI, admin_ops: Admin, engine: AsyncEngine
) -> None:
    set_clock(app, at(2024, 3, 10, 20))
    ingest, key = await setup(admin_ops)
    records = march_costs()
    await post(client, ingest, records)
    body = await get(client, key, "customer", days=7)
    assert "budget" not in body["cost_analysis"]  # none set
    account = (await client.get("/v1/account", headers=bearer(key))).json()
    assert account["monthly_budget_usd"] is None
    for budget, remaining, status, exceed in BUDGET_CASES:
        await set_budget(engine, budget)
        body = await get(client, key, "customer", days=7)
        want = {
            "monthly_budget_usd": float(budget),
            "spent": 9.5,
            "remaining": remaining,
            "status": status,
            "projected_exceed_date": exceed,
        }
        assert body["cost_analysis"]["budget"] == want, budget
        assert body["cost_analysis"]["current_month"] == want["spent"]
        mine = [as_reference(r) for r in records]
        assert want == reference.budget(mine, date(2024, 3, 10), Decimal(budget))
        account = (await client.get("/v1/account", headers=bearer(key))).json()
        assert account["monthly_budget_usd"] == float(budget)
    await set_budget(engine, None)
    assert "budget" not in (await get(client, key, "customer", days=7))["cost_analysis"]


async def test_budget_on_the_first_of_a_month_and_with_no_rate(
    client: httpx.AsyncClient, app: FastAPI, admin_ops: Admin, engine: AsyncEngine
) -> None:
    set_clock(app, at(2024, 4, 1, 20))
    ingest, key = await setup(admin_ops)
    # 1.00 on each of Mar 25..31; today Apr 1 has 0.25 so far.
    await post(
        client,
        ingest,
        [*(call(at(2024, 3, d), "1.00") for d in range(25, 32)), call(at(2024, 4, 1, 9), "0.25")],
    )
    await set_budget(engine, "20")
    body = await get(client, key, "customer", days=1)
    # Nothing of April before today; R = 7 / 7 = 1.00; 30 days left: projected 30 >= 20; the
    # projection reaches 20 after 20 days counting today: Apr 20. Spent is today's 0.25.
    assert body["cost_analysis"]["projected_month_end"] == 30.0
    assert body["cost_analysis"]["budget"] == {
        "monthly_budget_usd": 20.0,
        "spent": 0.25,
        "remaining": 19.75,
        "status": "at_risk",
        "projected_exceed_date": "2024-04-20",
    }
    # Ten days later nothing more came: R over Apr 4..10 is 0, so it never crosses.
    set_clock(app, at(2024, 4, 11, 20))
    body = await get(client, key, "customer", days=1)
    assert body["cost_analysis"]["budget"] == {
        "monthly_budget_usd": 20.0,
        "spent": 0.25,
        "remaining": 19.75,
        "status": "ok",
        "projected_exceed_date": None,
    }


@pytest.mark.parametrize("zone", ["Pacific/Kiritimati", "America/New_York"])
async def test_budget_counts_the_local_month(
    client: httpx.AsyncClient, app: FastAPI, admin_ops: Admin, engine: AsyncEngine, zone: str
) -> None:
    set_clock(app, at(2024, 4, 2, 12))
    ingest, key = await setup(admin_ops, zone)
    # Around the UTC month end: Kiritimati (+14) has 03-31 12:00Z already on April 1st; New
    # York (-4) still has 04-01 02:00Z on March 31st.
    records = [
        call(at(2024, 3, 31, 12), "4.00"),
        call(at(2024, 4, 1, 2), "2.00"),
        call(at(2024, 3, 29, 12), "1.00"),
        call(at(2024, 4, 1, 12), "0.50"),
    ]
    await post(client, ingest, records)
    await set_budget(engine, "5")
    today = at(2024, 4, 2, 12).astimezone(ZoneInfo(zone)).date()
    body = await get(client, key, "customer", days=1)
    mine = [as_reference(r) for r in records]
    expected = reference.budget(mine, today, Decimal("5"), zone)
    assert body["cost_analysis"]["budget"] == expected
    # By hand: Kiritimati's April holds 4 + 2 + 0.5 = 6.50 (over on April 1st, 4 + 2 >= 5);
    # New York's holds only the 0.50 of 04-01 12:00Z.
    spent = {"Pacific/Kiritimati": 6.5, "America/New_York": 0.5}[zone]
    assert expected["spent"] == spent


async def test_a_budget_is_checked_when_set(engine: AsyncEngine, admin_ops: Admin) -> None:
    await admin_ops.account(account_id=ACCT)
    for bad in ("0", "-5", "1.005", "NaN", "1e13"):
        with pytest.raises(admin.AdminError):
            async with engine.begin() as conn:
                await admin.update_account(conn, ACCT, monthly_budget_usd=Decimal(bad))
    async with engine.begin() as conn:
        shown = await admin.update_account(conn, ACCT, monthly_budget_usd=Decimal("1250.5"))
    assert shown["monthly_budget_usd"] == "1250.50"


# ---------------------------------------------------------------- baseline and prices


async def test_every_model_of_the_price_table_as_baseline(
    client: httpx.AsyncClient, app: FastAPI, admin_ops: Admin
) -> None:
    set_clock(app, at(2024, 3, 15))
    ingest, key = await setup(admin_ops)
    rng = random.Random(5)
    records = [
        call(at(2024, 3, rng.randint(1, 14), rng.randint(0, 23)), f"0.{rng.randint(1, 9999):04d}",
             input_tokens=rng.randint(0, 20_000), output_tokens=rng.randint(0, 5_000))
        for _ in range(60)
    ]  # fmt: skip
    await post(client, ingest, records)
    mine = [as_reference(r) for r in records]
    for model in reference.LIST_PRICES:
        body = await get(
            client, key, "customer", days=14, end_date="2024-03-14", baseline_model=model
        )
        expected = reference.customer(
            mine, account_id=ACCT, settings=SETTINGS, days=14, end_date=date(2024, 3, 14),
            baseline_model=model,
        )  # fmt: skip
        assert body["cost_analysis"]["vs_baseline"] == expected["cost_analysis"]["vs_baseline"]
        assert body["cost_analysis"]["vs_baseline"]["model"] == model
    default = await get(client, key, "customer", days=14, end_date="2024-03-14")
    assert default["cost_analysis"]["vs_baseline"]["model"] == "gpt-4o"
    assert (
        default["cost_analysis"]["vs_baseline"]["cost_if_baseline"]
        == (default["cost_analysis"]["vs_gpt4o_only"]["cost_if_gpt4o"])
    )


SETTINGS = {
    "cost_vs_quality_ratio": 0.5,
    "latency_sensitivity": 0.5,
    "preferred_models": [],
    "task_overrides": {},
}


async def test_an_unpriced_baseline_is_a_400_naming_the_parameter(
    client: httpx.AsyncClient, app: FastAPI, admin_ops: Admin
) -> None:
    set_clock(app, at(2024, 3, 15))
    _, key = await setup(admin_ops)
    for model in ("gpt-5-turbo-max", "GPT-4O", "x" * 101):
        response = await client.get(
            "/v1/metrics/customer", params={"baseline_model": model}, headers=bearer(key)
        )
        error = assert_envelope(response, 400, "invalid_parameter", "baseline_model")
        assert "baseline_model" in error["message"]
    response = await client.get(
        "/v1/metrics/customer", params={"baseline_model": "nope"}, headers=bearer(key)
    )
    assert "gpt-4o-mini" in response.json()["error"]["message"]  # names the priced models


async def test_a_price_change_mid_window_prices_each_day_at_its_own_price(
    client: httpx.AsyncClient,
    app: FastAPI,
    admin_ops: Admin,
    engine: AsyncEngine,
    price_table: None,
) -> None:
    set_clock(app, at(2024, 3, 15))
    ingest, key = await setup(admin_ops)
    # One call a day on Mar 1..10, each 1M input tokens and 100k output tokens, cost 0.10.
    records = [
        call(at(2024, 3, d), "0.10", input_tokens=1_000_000, output_tokens=100_000)
        for d in range(1, 11)
    ]
    await post(client, ingest, records)
    before = await get(client, key, "customer", days=10, end_date="2024-03-10",
                       baseline_model="gpt-4o-mini")  # fmt: skip
    # gpt-4o-mini at 0.15 / 0.60: 0.15 + 0.06 = 0.21 a day, 2.10 for 10 days, against 1.00.
    assert before["cost_analysis"]["vs_baseline"] == {
        "model": "gpt-4o-mini",
        "cost_if_baseline": 2.1,
        "savings_usd": 1.1,
        "savings_percentage": 52.4,  # 110 / 2.1 = 52.38
    }
    async with engine.begin() as conn:
        await prices.set_price(
            conn, "gpt-4o-mini", provider=None, input_usd_per_mtok=Decimal("1.00"),
            output_usd_per_mtok=Decimal("2.00"), effective_from=date(2024, 3, 8),
        )  # fmt: skip
        await prices.set_price(
            conn, "gpt-4o", provider="openai", input_usd_per_mtok=Decimal("5.00"),
            output_usd_per_mtok=Decimal("10.00"), effective_from=date(2024, 3, 10),
        )  # fmt: skip
        history = await prices.list_prices(conn, "gpt-4o-mini", today=date(2024, 3, 15))
    assert [(p["effective_from"], p["in_force_today"]) for p in history] == [
        ("2000-01-01", False),
        ("2024-03-08", True),
    ]
    after = await get(client, key, "customer", days=10, end_date="2024-03-10",
                      baseline_model="gpt-4o-mini")  # fmt: skip
    # Mar 1..7 at the old 0.21; Mar 8..10 at 1.00 + 0.20 = 1.20: 1.47 + 3.60 = 5.07.
    assert after["cost_analysis"]["vs_baseline"]["cost_if_baseline"] == 5.07
    # gpt-4o: Mar 1..9 at 2.50 + 1.00 = 3.50, Mar 10 at 5.00 + 1.00 = 6.00: 31.50 + 6 = 37.50.
    assert after["cost_analysis"]["vs_gpt4o_only"]["cost_if_gpt4o"] == 37.5
    table = {
        **reference.PRICE_TABLE,
        "gpt-4o-mini": [
            (date(2000, 1, 1), Decimal("0.15"), Decimal("0.60")),
            (date(2024, 3, 8), Decimal("1.00"), Decimal("2.00")),
        ],
        "gpt-4o": [
            (date(2000, 1, 1), Decimal("2.50"), Decimal("10.00")),
            (date(2024, 3, 10), Decimal("5.00"), Decimal("10.00")),
        ],
    }
    expected = reference.customer(
        [as_reference(r) for r in records], account_id=ACCT, settings=SETTINGS, days=10,
        end_date=date(2024, 3, 10), prices=table, baseline_model="gpt-4o-mini",
    )  # fmt: skip
    assert after["cost_analysis"] == expected["cost_analysis"]
    # A correction of a day's price replaces that day's, not the history.
    async with engine.begin() as conn:
        await prices.set_price(
            conn, "gpt-4o-mini", provider=None, input_usd_per_mtok=Decimal("0.15"),
            output_usd_per_mtok=Decimal("0.60"), effective_from=date(2024, 3, 8),
        )  # fmt: skip
        assert len(await prices.list_prices(conn, "gpt-4o-mini")) == 2
    again = await get(client, key, "customer", days=10, end_date="2024-03-10",
                      baseline_model="gpt-4o-mini")  # fmt: skip
    assert again["cost_analysis"]["vs_baseline"]["cost_if_baseline"] == 2.1


async def test_prices_are_checked(engine: AsyncEngine) -> None:
    for bad in ("-1", "abc", "1.0000001", "1e9"):
        with pytest.raises(admin.AdminError):
            prices.checked_price("--input", bad)
    with pytest.raises(admin.AdminError, match="provider"):
        async with engine.begin() as conn:
            await prices.set_price(
                conn, "brand-new", provider=None, input_usd_per_mtok=Decimal(1),
                output_usd_per_mtok=Decimal(2),
            )  # fmt: skip


# ---------------------------------------------------------------- attempts


async def test_attempts_and_cost_per_successful_call(
    client: httpx.AsyncClient, app: FastAPI, admin_ops: Admin
) -> None:
    set_clock(app, at(2024, 3, 15))
    ingest, key = await setup(admin_ops)
    records = [
        call(at(2024, 3, 10), "0.010"),  # 1 attempt
        call(at(2024, 3, 10), "0.020", failure_mode="timeout", recovery="retry", retry_count=2),
        call(at(2024, 3, 11), "0.030", failure_mode="provider_error", recovery="fallback",
             fallback_used=True, initial_model="gpt-4o", initial_provider="openai"),
        call(at(2024, 3, 11), "0.004", failure_mode="timeout", retry_count=3,
             fallback_used=True, initial_model="gpt-4o", initial_provider="openai",
             status="error"),
    ]  # fmt: skip
    await post(client, ingest, records)
    body = await get(client, key, "overview", days=7, end_date="2024-03-14")
    # 1 + (1 + 2) + (1 + 1) + (1 + 3 + 1) = 11 attempts; 0.064 over 3 successes = 0.021333
    assert body["summary"]["total_attempts"] == 11
    assert body["summary"]["cost_per_successful_call"] == 0.02133
    expected = reference.overview(
        [as_reference(r) for r in records], days=7, end_date=date(2024, 3, 14)
    )
    assert body == expected
    # No success in the window: null, not a division by zero.
    body = await get(client, key, "overview", days=1, end_date="2024-03-12")
    assert body["summary"]["cost_per_successful_call"] is None
    assert body["summary"]["total_attempts"] == 0


# ---------------------------------------------------------------- percentiles


def lognormal_latencies(rng: random.Random, n: int) -> list[int]:
    """Skewed, with a long tail: most calls near 800 ms, a few minutes-long ones."""
    out = [int(math.exp(rng.gauss(math.log(800), 0.9))) for _ in range(n)]
    return [*out[: n - n // 50], *(rng.randint(60_000, 300_000) for _ in range(n // 50))]


async def test_percentiles_per_task_and_model_against_the_exact_nearest_rank(
    client: httpx.AsyncClient, app: FastAPI, admin_ops: Admin
) -> None:
    set_clock(app, at(2024, 3, 15))
    ingest, key = await setup(admin_ops)
    rng = random.Random(11)
    records = []
    for model, task, n in (
        ("gpt-4o", "reasoning", 1),
        ("gpt-4o-mini", "reasoning", 2),
        ("claude-haiku-4-5", "reasoning", 19),
        ("gpt-4o-mini", "extraction", 600),
        ("gemini-2.5-flash", "extraction", 40),
    ):
        for latency in lognormal_latencies(rng, n):
            day = at(2024, 3, rng.randint(1, 14), rng.randint(0, 23))
            records.append(call(day, model=model, task_type=task, latency_ms=latency))
    # Ties: 30 calls at exactly 250 ms and 10 at 4,000 ms: p50 250, p95 4000.
    tie = {"model": "o4-mini", "task_type": "code"}
    records += [call(at(2024, 3, 5), latency_ms=250, **tie) for _ in range(30)]
    records += [call(at(2024, 3, 6), latency_ms=4000, **tie) for _ in range(10)]
    await post(client, ingest, records)
    mine = [as_reference(r) for r in records]
    for days, end in ((14, "2024-03-14"), (3, "2024-03-06"), (1, "2024-03-05")):
        body = await get(client, key, "performance", days=days, end_date=end)
        expected = reference.performance(mine, days=days, end_date=date.fromisoformat(end))
        assert_percentiles_close(body, expected)
    body = await get(client, key, "performance", days=14, end_date="2024-03-14")
    code = body["by_task_type"]["code"]["models"]["o4-mini"]
    # 40 calls: rank ceil(0.5 x 40) = 20 is a 250; rank ceil(0.95 x 40) = 38 is a 4000. Both
    # within 2% (the bins are 2% wide, their values at most 1% off, then whole ms).
    assert abs(code["p50_latency_ms"] - 250) <= 0.02 * 250
    assert abs(code["p95_latency_ms"] - 4000) <= 0.02 * 4000
    one = body["by_task_type"]["reasoning"]["models"]["gpt-4o"]
    exact = next(r["latency_ms"] for r in records if r["model"] == "gpt-4o")
    assert one["p50_latency_ms"] == one["p95_latency_ms"]
    assert abs(one["p50_latency_ms"] - exact) <= 0.02 * exact + 0.5
    # The task filter keeps them per model of that task.
    only = await get(client, key, "performance", days=14, end_date="2024-03-14", task_type="code")
    assert only["by_task_type"]["code"]["models"]["o4-mini"] == code


# ---------------------------------------------------------------- data_as_of


def instant(text_: str) -> datetime:
    return datetime.fromisoformat(text_.replace("Z", "+00:00"))


async def test_data_as_of_never_claims_a_queued_call(
    client: httpx.AsyncClient, app: FastAPI, admin_ops: Admin, engine: AsyncEngine
) -> None:
    now = datetime.now(UTC)
    set_clock(app, now)
    ingest, key = await setup(admin_ops)
    await post(client, ingest, [call(now - timedelta(hours=1))])
    first = await get(client, key, "overview", days=1)
    assert first["summary"]["total_calls"] == 1
    answered_before = datetime.now(UTC)
    # A call stored but not yet folded (as a batch between its commit and the fold): the fold
    # lock held meanwhile keeps the service's background folder from it.
    blocker = await engine.connect()
    await blocker.execute(text(FOLD_LOCK))
    async with engine.connect() as conn:
        await store_records(conn, [call(now - timedelta(minutes=30))], folded=False)
        queued_at = (await conn.execute(text("SELECT min(queued_at) FROM calls_pending"))).scalar()
    assert queued_at is not None
    for endpoint in ("overview", "customer", "performance", "failures", "daily", "breakdown"):
        params = {"group_by": "model"} if endpoint == "breakdown" else {}
        response = await client.get(
            f"/v1/metrics/{endpoint}", params={"days": 1, **params}, headers=bearer(key)
        )
        body = response.json()
        # Not counted, and not claimed: the instant is before the queued call's.
        assert instant(body["data_as_of"]) <= queued_at, endpoint
    overview = await get(client, key, "overview", days=1)
    assert overview["summary"]["total_calls"] == 1
    providers = await get(client, key, "providers", hours=24)
    assert instant(providers["data_as_of"]) <= queued_at
    # After the fold both are in, and the instant is no earlier than the moment the first
    # ingest was answered (to the second).
    await blocker.rollback()
    await blocker.close()
    async with engine.connect() as conn:
        await fold(conn)
    overview = await get(client, key, "overview", days=1)
    assert overview["summary"]["total_calls"] == 2
    after = instant(overview["data_as_of"])
    assert after >= answered_before.replace(microsecond=0)
    assert after <= datetime.now(UTC)


async def test_a_cached_answer_keeps_its_data_as_of(
    client: httpx.AsyncClient, app: FastAPI, admin_ops: Admin, engine: AsyncEngine
) -> None:
    now = datetime.now(UTC)
    set_clock(app, now)
    ingest, key = await setup(admin_ops)
    await post(client, ingest, [call(now - timedelta(hours=1))])
    response = await client.get("/v1/metrics/overview", headers=bearer(key))
    first, etag = response.json()["data_as_of"], response.headers["etag"]
    async with engine.connect() as conn:  # a second later, nothing new: the same answer
        await conn.execute(text("SELECT pg_sleep(1.1)"))
    response = await client.get("/v1/metrics/overview", headers=bearer(key))
    assert (response.json()["data_as_of"], response.headers["etag"]) == (first, etag)
    await post(client, ingest, [call(now - timedelta(minutes=5))])
    response = await client.get("/v1/metrics/overview", headers=bearer(key))
    assert response.json()["summary"]["total_calls"] == 2  # a new answer, of newer data
    assert response.json()["data_as_of"] >= first
