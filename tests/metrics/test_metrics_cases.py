"""Small cases checked by hand, run through the real API: records go in with POST /v1/calls
(an ingest key), numbers come out of GET /v1/metrics/* (a customer key).

Every expected number is worked out in the comments from SPEC.md §4-§5 and docs/metrics.md;
several cases reuse the records of tests/metrics/test_reference.py. Nothing is taken from the API's
output and nothing is imported from tests/reference.py.

"Now" is fixed with `set_clock` (a dependency override); records' created_at lie in the past of
the real wall clock too (ingest refuses anything more than 5 minutes ahead of it).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests import answers
from tests.clock import set_clock
from tests.conftest import RESPONSE_SCHEMAS, Admin, assert_envelope, bearer, without_data_as_of
from tests.factories import at, iso, json_call
from tests.factories import review_call as _record

ACCT_A = "acct_cases_a"
ACCT_B = "acct_cases_b"

ENDPOINTS = tuple(RESPONSE_SCHEMAS)
DAY_ENDPOINTS = ("overview", "customer", "performance", "failures", "daily")


# ---------------------------------------------------------------- helpers


_case = json_call.but(
    call_ids=(f"case-{n}" for n in itertools.count(1)),
    account_id=ACCT_A,
    environment="live",
    created_at=at(2024, 3, 10),
    task_type="extraction",
    cost_usd="0.001",
    retry_count=0,
    fallback_used=False,
)


def call(**fields: Any) -> dict[str, Any]:
    """A valid, successful live call of account A on 2024-03-10 12:00Z; override as needed.

    `cost_usd` is given as a decimal string and sent as the JSON number with those digits;
    `created_at` may be a datetime (sent in UTC) or a string (sent as is)."""
    record = _case(**fields)
    if isinstance(record["created_at"], datetime):
        record["created_at"] = iso(record["created_at"], timespec="auto")
    record["cost_usd"] = float(record["cost_usd"])  # repr keeps the digits as written
    return record


def error(mode: str, **fields: Any) -> dict[str, Any]:
    """An unrecoverable call: status error, failure_mode set, no recovery."""
    return call(status="error", failure_mode=mode, **fields)


def retried(mode: str, **fields: Any) -> dict[str, Any]:
    """A call whose first attempt failed with `mode`, rescued by one retry."""
    return call(failure_mode=mode, recovery="retry", retry_count=1, **fields)


def scored(n: int, model: str, task: str, quality: float | None, cost: str) -> list[dict[str, Any]]:
    return [
        call(model=model, task_type=task, quality_score=quality, cost_usd=cost) for _ in range(n)
    ]


@dataclass
class World:
    ingest: str
    a_live: str
    a_test: str
    b_live: str
    b_test: str


@pytest.fixture
async def world(admin_ops: Admin) -> World:
    await admin_ops.account(account_id=ACCT_A)
    await admin_ops.account(account_id=ACCT_B)
    return World(
        ingest=(await admin_ops.key(None))["key"],
        a_live=(await admin_ops.key(ACCT_A, "live"))["key"],
        a_test=(await admin_ops.key(ACCT_A, "test"))["key"],
        b_live=(await admin_ops.key(ACCT_B, "live"))["key"],
        b_test=(await admin_ops.key(ACCT_B, "test"))["key"],
    )


async def ingest(client: httpx.AsyncClient, world: World, records: list[dict[str, Any]]) -> None:
    for i in range(0, len(records), 1000):
        batch = records[i : i + 1000]
        response = await client.post(
            "/v1/calls", json={"calls": batch}, headers=bearer(world.ingest)
        )
        assert response.status_code == 200, response.text
        assert response.json() == {"received": len(batch), "inserted": len(batch), "duplicates": 0}


async def fetch(
    client: httpx.AsyncClient, key: str, endpoint: str, **params: Any
) -> httpx.Response:
    return await client.get(f"/v1/metrics/{endpoint}", params=params, headers=bearer(key))


async def get(client: httpx.AsyncClient, key: str, endpoint: str, **params: Any) -> dict[str, Any]:
    response = await fetch(client, key, endpoint, **params)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "private, max-age=60"
    body: dict[str, Any] = response.json()
    RESPONSE_SCHEMAS[endpoint].model_validate(body)
    return body


# ---------------------------------------------------------------- overview


async def test_overview_routing_accuracy_on_four_calls(
    client: httpx.AsyncClient, app: FastAPI, world: World
) -> None:
    set_clock(app, at(2024, 3, 15))
    await ingest(client, world, answers.four_routed_calls(call, retried))
    body = await get(client, world.a_live, "overview", days=7, end_date="2024-03-10")
    assert body == answers.FOUR_ROUTED_ANSWER
    assert list(body["models"]) == ["gpt-4o-mini", "claude-haiku-4-5", "claude-sonnet-4-5"]
    assert list(body["task_distribution"]) == ["code", "extraction", "writing"]


async def test_windows_are_whole_utc_days(
    client: httpx.AsyncClient, app: FastAPI, world: World
) -> None:
    set_clock(app, at(2024, 3, 15))
    await ingest(
        client,
        world,
        [
            # inside 2024-03-04..10: 22:00 -05:00 on 03-03 is 03:00Z on 03-04
            call(created_at="2024-03-03T22:00:00-05:00", cost_usd="0.10"),
            # inside: 01:30 +02:00 on 03-11 is 23:30Z on 03-10
            call(created_at="2024-03-11T01:30:00+02:00", cost_usd="0.20"),
            # outside: 01:00 +02:00 on 03-04 is 23:00Z on 03-03
            call(created_at="2024-03-04T01:00:00+02:00", cost_usd="1"),
            # outside: 20:00 -04:00 on 03-10 is 00:00Z on 03-11
            call(created_at="2024-03-10T20:00:00-04:00", cost_usd="1"),
        ],
    )
    body = await get(client, world.a_live, "overview", days=7, end_date="2024-03-10")
    assert body["summary"]["total_calls"] == 2
    assert body["summary"]["total_cost_usd"] == 0.3  # 0.10 + 0.20


# ---------------------------------------------------------------- customer


def _month_call(y: int, mo: int, d: int, cost: str) -> dict[str, Any]:
    # 1,000,000 input tokens ($2.50 at gpt-4o) + 100,000 output ($1.00) = $3.50 at gpt-4o
    return call(created_at=at(y, mo, d), cost_usd=cost, input_tokens=1_000_000,
                output_tokens=100_000)  # fmt: skip


async def test_cost_analysis_leap_day_and_window_from_jan_31(
    client: httpx.AsyncClient, app: FastAPI, world: World
) -> None:
    set_clock(app, at(2028, 3, 15))  # end_date 2024-02-29 lies well in the past
    calls = [_month_call(*day, cost) for day, cost in answers.LEAP_DAY_COSTS]
    await ingest(client, world, calls)
    body = await get(client, world.a_live, "customer", days=30, end_date="2024-02-29")
    assert body["account_id"] == ACCT_A
    expected = answers.LEAP_DAY_ANSWER
    assert body["period"] == expected["period"]
    assert body["usage"] == expected["usage"]
    assert body["cost_analysis"] == expected["cost_analysis"]
    # 2028 is a leap year too: Feb 29 2028 is a valid end_date in the past of the clock
    body = await get(client, world.a_live, "customer", days=30, end_date="2028-02-29")
    assert body["period"] == {
        "start_date": "2028-01-31T00:00:00Z",
        "end_date": "2028-02-29T23:59:59Z",
        "timezone": "UTC",
    }
    assert body["usage"]["total_calls"] == 0
    # ... and 2027 is not
    response = await fetch(client, world.a_live, "customer", end_date="2027-02-29")
    assert_envelope(response, 400, "invalid_parameter", "end_date")


async def test_cost_analysis_end_date_jan_31_against_december(
    client: httpx.AsyncClient, app: FastAPI, world: World
) -> None:
    set_clock(app, at(2024, 3, 15))
    await ingest(
        client,
        world,
        [
            _month_call(2023, 11, 30, "50.00"),  # two months back: in nothing
            _month_call(2023, 12, 1, "1.00"),
            _month_call(2023, 12, 31, "2.00"),  # day 31 <= min(31, 31): in P
            _month_call(2024, 1, 1, "0.50"),
            _month_call(2024, 1, 23, "5.00"),  # 8 days before the 31st: not in R
            _month_call(2024, 1, 24, "0.70"),  # R: Jan 24..30
            _month_call(2024, 1, 30, "0.70"),
            _month_call(2024, 1, 31, "3.00"),  # today
            _month_call(2024, 2, 1, "100.00"),  # after end_date
        ],
    )
    body = await get(client, world.a_live, "customer", days=1, end_date="2024-01-31")
    # window = Jan 31 only: 1 call, 3.00, 1.1M tokens; gpt-4o 3.50 -> savings 0.50 = 14.29%
    assert body["usage"] == {
        "total_calls": 1,
        "total_tokens": 1_100_000,
        "total_cost_usd": 3.0,
        "avg_calls_per_day": 1.0,
    }
    # current Jan 1..31 = 0.5 + 5 + 0.7 + 0.7 + 3 = 9.90; previous December = 3.00;
    # P = Dec 1..31 = 3.00; change = 100 x 6.90 / 3 = 230.0;
    # projected = Jan 1..30 (6.90) + (0.7 + 0.7) / 7 x 1 = 7.10
    assert body["cost_analysis"] == {
        "current_month": 9.9,
        "previous_month": 3.0,
        "change_percentage": 230.0,
        "projected_month_end": 7.1,
        "vs_gpt4o_only": {"cost_if_gpt4o": 3.5, "savings_usd": 0.5, "savings_percentage": 14.3},
        "vs_baseline": {
            "model": "gpt-4o",
            "cost_if_baseline": 3.5,
            "savings_usd": 0.5,
            "savings_percentage": 14.3,
        },
    }


async def test_cost_analysis_february_and_march_month_lengths(
    client: httpx.AsyncClient, app: FastAPI, world: World
) -> None:
    set_clock(app, at(2025, 4, 15))
    await ingest(
        client,
        world,
        [
            # non-leap 2025: end_date Feb 28 compares with Jan 1..28
            call(created_at=at(2025, 1, 28), cost_usd="1.00"),
            call(created_at=at(2025, 1, 29), cost_usd="2.00"),  # day 29 > 28: not in P
            call(created_at=at(2025, 2, 28), cost_usd="1.50"),
            # leap 2024: end_date Mar 31 compares with the whole Feb 1..29
            call(created_at=at(2024, 2, 1), cost_usd="2.00"),
            call(created_at=at(2024, 2, 29), cost_usd="2.00"),
            call(created_at=at(2024, 3, 1), cost_usd="1.00"),
            call(created_at=at(2024, 3, 31), cost_usd="1.00"),
        ],
    )
    ca = (await get(client, world.a_live, "customer", days=1, end_date="2025-02-28"))[
        "cost_analysis"
    ]
    # current 1.50; previous January 3.00; P = Jan 1..28 = 1.00 -> +50.0;
    # projected = Feb 1..27 (0) + R (Feb 21..27: 0) x 1 = 0
    assert (ca["current_month"], ca["previous_month"]) == (1.5, 3.0)
    assert ca["change_percentage"] == 50.0
    assert ca["projected_month_end"] == 0.0

    ca = (await get(client, world.a_live, "customer", days=1, end_date="2024-03-31"))[
        "cost_analysis"
    ]
    # current 2.00; previous 4.00; P = Feb 1..min(31, 29) = 4.00 -> -50.0;
    # projected = Mar 1..30 (1.00) + R (Mar 24..30: 0) x 1 = 1.00
    assert (ca["current_month"], ca["previous_month"]) == (2.0, 4.0)
    assert ca["change_percentage"] == -50.0
    assert ca["projected_month_end"] == 1.0


async def test_projected_month_end_on_the_first(
    client: httpx.AsyncClient, app: FastAPI, world: World
) -> None:
    set_clock(app, at(2024, 3, 15))
    await ingest(client, world, answers.first_of_march_calls(call))
    ca = (await get(client, world.a_live, "customer", days=1, end_date="2024-03-01"))[
        "cost_analysis"
    ]
    expected = answers.FIRST_OF_MARCH_ANSWER  # its four fields; vs_gpt4o_only is not checked
    assert {field: ca[field] for field in expected} == expected


async def test_peak_hours_include_an_hour_exactly_at_the_threshold(
    client: httpx.AsyncClient, app: FastAPI, world: World
) -> None:
    set_clock(app, at(2024, 3, 15))
    per_hour = answers.PEAK_HOURS_PER_HOUR
    records = [
        call(created_at=at(2024, 3, 10, h, i)) for h, n in per_hour.items() for i in range(n)
    ]
    assert len(records) == 96
    await ingest(client, world, records)
    body = await get(client, world.a_live, "customer", days=7, end_date="2024-03-10")
    expected = answers.PEAK_HOURS_ANSWER
    assert body["behavior_insights"]["peak_hours"] == expected["peak_hours"]
    assert body["usage"]["avg_calls_per_day"] == expected["avg_calls_per_day"]


async def test_customer_profile_and_preferences(
    client: httpx.AsyncClient, app: FastAPI, admin_ops: Admin, world: World
) -> None:
    set_clock(app, at(2024, 3, 15))
    acct = await admin_ops.account(
        account_id="acct_cases_x", task_overrides={"reasoning": "claude-sonnet-4-5"}
    )
    key = (await admin_ops.key(acct))["key"]
    x = {"account_id": acct}
    sonnet = {"model": "claude-sonnet-4-5", "provider": "anthropic", **x}
    haiku = {"model": "claude-haiku-4-5", "provider": "anthropic", **x}
    await ingest(client, world, answers.profile_log(call, retried, x, haiku, sonnet))
    body = await get(client, key, "customer", days=7, end_date="2024-03-10")
    assert body["account_id"] == acct
    expected = answers.PROFILE_ANSWER
    assert body["quality_preferences"] == expected["quality_preferences"]
    assert body["task_profile"] == expected["task_profile"]
    assert body["behavior_insights"] == expected["behavior_insights"]
    # 10 calls x 100 in / 50 out: gpt-4o 10 x (0.00025 + 0.0005) = 0.0075 -> 0.01;
    # cost 10 x 0.001 = 0.01; savings -0.0025 -> 0.00 (half-up of -0.0025 is -0.00) and
    # -0.0025 / 0.0075 = -33.3%
    assert body["cost_analysis"]["vs_gpt4o_only"]["savings_percentage"] == -33.3

    # an explicit setting is echoed even without calls of that model
    other = await admin_ops.account(account_id="acct_cases_y", preferred_models=["gpt-4o"])
    other_key = (await admin_ops.key(other))["key"]
    body = await get(client, other_key, "customer", days=7, end_date="2024-03-10")
    assert body["quality_preferences"]["preferred_models"] == ["gpt-4o"]


async def test_dominant_tasks_fall_back_to_the_largest(
    client: httpx.AsyncClient, app: FastAPI, world: World
) -> None:
    set_clock(app, at(2024, 3, 15))
    sizes = answers.NO_DOMINANT_TASK_SIZES
    await ingest(client, world, [call(task_type=t) for t, n in sizes.items() for _ in range(n)])
    body = await get(client, world.a_live, "customer", days=7, end_date="2024-03-10")
    assert body["task_profile"]["dominant_tasks"] == answers.NO_DOMINANT_TASK_ANSWER


# ---------------------------------------------------------------- performance


async def test_optimal_model_rules_reasons_and_recommendations(
    client: httpx.AsyncClient, app: FastAPI, world: World
) -> None:
    set_clock(app, at(2024, 3, 15))
    await ingest(
        client,
        world,
        [
            # extraction: a is best (0.90); b exactly 0.02 behind (0.88) and cheaper -> b (cost)
            *scored(30, "model-a", "extraction", 0.90, "0.002"),
            *scored(20, "model-b", "extraction", 0.88, "0.001"),
            # c is the best and cheapest, but only 19 scored calls: not eligible
            *scored(19, "model-c", "extraction", 0.99, "0.0001"),
            *scored(1, "model-c", "extraction", None, "0.0001"),
            # code: all within 0.02 at the same cost 0.001; v (first by name) has 0.79, w and
            # x 0.80: equal cost -> higher effective quality (w, x) -> name -> w (both)
            *scored(20, "model-x", "code", 0.80, "0.001"),
            *scored(20, "model-w", "code", 0.80, "0.001"),
            *scored(20, "model-v", "code", 0.79, "0.001"),
            # summarization: n (0.90) alone within 0.02 -> n (quality), though it costs more
            # than the current model m (25 calls, 0.70)
            *scored(25, "model-m", "summarization", 0.70, "0.001"),
            *scored(20, "model-n", "summarization", 0.90, "0.003"),
            # reasoning: q 0.95 x 18/20 success = 0.855; r 0.83 x 1 = 0.83, 0.025 behind -> q
            *scored(18, "model-q", "reasoning", 0.95, "0.01"),
            *[
                error("reasoning_error", model="model-q", task_type="reasoning",
                      quality_score=0.95, cost_usd="0.01")
                for _ in range(2)
            ],
            *scored(20, "model-r", "reasoning", 0.83, "0.001"),
            # writing: 19 scored calls only -> no optimal model
            *scored(19, "model-a", "writing", 0.9, "0.001"),
        ],
    )  # fmt: skip
    body = await get(client, world.a_live, "performance", days=7, end_date="2024-03-10")
    assert body["period"] == {
        "start_date": "2024-03-04T00:00:00Z",
        "end_date": "2024-03-10T23:59:59Z",
        "timezone": "UTC",
    }
    by_task = body["by_task_type"]
    # extraction 70, code 60, summarization 45, reasoning 40, writing 19
    assert list(by_task) == ["extraction", "code", "summarization", "reasoning", "writing"]

    def view(
        calls: int, cost: float, quality: float | None, success: float = 1.0
    ) -> dict[str, Any]:
        return {
            "calls": calls,
            "success_rate": success,
            "avg_cost_usd": cost,
            "avg_latency_ms": 500,
            # every latency 500 ms; its histogram bin's value is 500 too
            "p50_latency_ms": 500,
            "p95_latency_ms": 500,
            "quality_score": quality,
        }

    assert by_task["extraction"] == {
        "total_calls": 70,
        "models": {  # 30, 20, 20 (tie by name)
            "model-a": view(30, 0.002, 0.9),
            "model-b": view(20, 0.001, 0.88),
            "model-c": view(20, 0.0001, 0.99),  # mean of the 19 non-null scores
        },
        "optimal_model": "model-b",
        "optimal_reason": (
            "Lowest average cost ($0.00100) among models within 0.02 of the best effective "
            "quality (0.900)"
        ),
    }
    assert list(by_task["extraction"]["models"]) == ["model-a", "model-b", "model-c"]
    assert list(by_task["code"]["models"]) == ["model-v", "model-w", "model-x"]
    assert by_task["code"]["optimal_model"] == "model-w"
    assert by_task["code"]["optimal_reason"] == (
        "Highest effective quality (0.800) and the lowest cost among models within 0.02 of it"
    )
    assert by_task["summarization"]["optimal_model"] == "model-n"
    assert by_task["summarization"]["optimal_reason"] == (
        "Highest effective quality (0.900) among models with at least 20 scored calls"
    )
    assert by_task["reasoning"]["models"]["model-q"] == view(20, 0.01, 0.95, success=0.9)
    assert by_task["reasoning"]["optimal_model"] == "model-q"
    assert by_task["reasoning"]["optimal_reason"] == (
        "Highest effective quality (0.855) among models with at least 20 scored calls"
    )
    assert by_task["writing"] == {
        "total_calls": 19,
        "models": {"model-a": view(19, 0.001, 0.9)},
        "optimal_model": None,
        "optimal_reason": (
            "Not enough scored calls: a model needs at least 20 calls with a quality score"
        ),
    }
    # extraction: current a (30 calls) -> b: savings (0.002 - 0.001) x 30 = 0.03, cost change
    #   (0.001 - 0.002) x 30 = -0.03, quality 0.88 - 0.90 = -0.02.
    # summarization: current m (25) -> n: savings max(0, (0.001 - 0.003) x 25) = 0, cost
    #   change (0.003 - 0.001) x 25 = +0.05 (better quality costs more), quality +0.2.
    # code: current v (20 each, first by name) -> w: savings max(0, 0 x 20) = 0,
    #   quality 0.80 - 0.79 = +0.01.
    # reasoning: current q (20 each, by name) = optimal: no recommendation.
    # Largest savings first; code and summarization tie at 0 -> by task name.
    assert body["recommendations"] == [
        {
            "task_type": "extraction",
            "current_model": "model-a",
            "recommended_model": "model-b",
            "potential_savings_usd": 0.03,
            "cost_change_usd": -0.03,
            "quality_improvement": -0.02,
        },
        {
            "task_type": "code",
            "current_model": "model-v",
            "recommended_model": "model-w",
            "potential_savings_usd": 0.0,
            "cost_change_usd": 0.0,
            "quality_improvement": 0.01,
        },
        {
            "task_type": "summarization",
            "current_model": "model-m",
            "recommended_model": "model-n",
            "potential_savings_usd": 0.0,
            "cost_change_usd": 0.05,
            "quality_improvement": 0.2,
        },
    ]

    only_code = await get(
        client, world.a_live, "performance", days=7, end_date="2024-03-10", task_type="code"
    )
    assert list(only_code["by_task_type"]) == ["code"]
    assert only_code["by_task_type"]["code"] == by_task["code"]
    assert only_code["recommendations"] == [body["recommendations"][1]]
    only_reasoning = await get(
        client, world.a_live, "performance", days=7, end_date="2024-03-10", task_type="reasoning"
    )
    assert list(only_reasoning["by_task_type"]) == ["reasoning"]
    assert only_reasoning["recommendations"] == []
    only_summ = await get(
        client,
        world.a_live,
        "performance",
        days=7,
        end_date="2024-03-10",
        task_type="summarization",
    )
    assert list(only_summ["by_task_type"]) == ["summarization"]
    assert only_summ["recommendations"] == [body["recommendations"][2]]


# ---------------------------------------------------------------- failures


async def test_failures_summary_modes_models_and_mitigation(
    client: httpx.AsyncClient, app: FastAPI, world: World
) -> None:
    set_clock(app, at(2024, 3, 15))
    records = answers.failures_log(call, error, retried)
    assert len(records) == 55
    await ingest(client, world, records)
    body = await get(client, world.a_live, "failures", days=7, end_date="2024-03-10")
    expected = answers.FAILURES_ANSWER
    assert body["summary"] == expected["summary"]
    s = body["summary"]
    assert s["retries_succeeded"] + s["fallback_succeeded"] + s["unrecoverable"] == 13
    assert body["by_failure_mode"] == expected["by_failure_mode"]
    assert list(body["by_failure_mode"]) == ["format_violation", "refusal", "timeout"]
    assert body["by_model"] == expected["by_model"]
    assert list(body["by_model"]) == ["gpt-4o-mini", "claude-sonnet-4-5", "claude-haiku-4-5"]
    assert body["mitigation_recommendations"] == expected["mitigation_recommendations"]


async def test_failures_ten_percent_rule_and_trigger_ties(
    client: httpx.AsyncClient, app: FastAPI, world: World
) -> None:
    set_clock(app, at(2024, 3, 15))
    providers = {
        "gpt-4o-mini": "openai",
        "gpt-4o": "openai",
        "claude-haiku-4-5": "anthropic",
        "claude-sonnet-4-5": "anthropic",
        "gemini-2.5-flash": "google",
        "mistral-small": "mistral",
    }

    def m(model: str) -> dict[str, str]:
        return {"model": model, "provider": providers[model]}

    hallucinations = [
        # 10 hallucinations (retried): mini 6, haiku 3, sonnet 1 (exactly 10% -> affected);
        # triggers: b 3, a 3, d 2, c 2 -> a, b (tie of 3 by name), c (tie of 2 by name)
        *[retried("hallucination", failure_trigger="b-trigger", **m("gpt-4o-mini"))
          for _ in range(3)],
        *[retried("hallucination", failure_trigger="a-trigger", **m("gpt-4o-mini"))
          for _ in range(3)],
        *[retried("hallucination", failure_trigger="d-trigger", **m("claude-haiku-4-5"))
          for _ in range(2)],
        retried("hallucination", failure_trigger="c-trigger", **m("claude-haiku-4-5")),
        retried("hallucination", failure_trigger="c-trigger", **m("claude-sonnet-4-5")),
    ]  # fmt: skip
    # 6 timeouts (errors), one per model: each 1/6 >= 10%, at most 5, by name
    timeouts = [error("timeout", **m(model)) for model in providers]
    clean = [call(**m("gemini-2.5-flash")) for _ in range(2)]
    await ingest(client, world, hallucinations + timeouts + clean)
    body = await get(client, world.a_live, "failures", days=7, end_date="2024-03-10")
    # 16 failures of 18 calls = 0.889; 10 retried + 0 fallbacks + 6 errors = 16
    assert body["summary"] == {
        "total_failures": 16,
        "failure_rate": 0.889,
        "retries_succeeded": 10,
        "fallback_succeeded": 0,
        "unrecoverable": 6,
    }
    # hallucination 10/16 = 0.625, timeout 6/16 = 0.375
    assert body["by_failure_mode"] == {
        "hallucination": {
            "count": 10,
            "percentage": 0.625,
            "affected_models": ["gpt-4o-mini", "claude-haiku-4-5", "claude-sonnet-4-5"],
            "common_triggers": ["a-trigger", "b-trigger", "c-trigger"],
        },
        "timeout": {
            "count": 6,
            "percentage": 0.375,
            "affected_models": [
                "claude-haiku-4-5",
                "claude-sonnet-4-5",
                "gemini-2.5-flash",
                "gpt-4o",
                "gpt-4o-mini",
            ],
            "common_triggers": [],
        },
    }
    # by first-choice model: mini 7 failures / 7 calls, haiku 4 / 4, sonnet 2 / 2 (its two
    # modes tie at 1: by name), then 1 failure each: gemini (of 3 calls), gpt-4o, mistral
    assert body["by_model"] == {
        "gpt-4o-mini": {
            "total_calls": 7,
            "failures": 7,
            "failure_rate": 1.0,
            "top_failure_modes": ["hallucination", "timeout"],
        },
        "claude-haiku-4-5": {
            "total_calls": 4,
            "failures": 4,
            "failure_rate": 1.0,
            "top_failure_modes": ["hallucination", "timeout"],
        },
        "claude-sonnet-4-5": {
            "total_calls": 2,
            "failures": 2,
            "failure_rate": 1.0,
            "top_failure_modes": ["hallucination", "timeout"],
        },
        "gemini-2.5-flash": {
            "total_calls": 3,
            "failures": 1,
            "failure_rate": 0.333,
            "top_failure_modes": ["timeout"],
        },
        "gpt-4o": {
            "total_calls": 1,
            "failures": 1,
            "failure_rate": 1.0,
            "top_failure_modes": ["timeout"],
        },
        "mistral-small": {
            "total_calls": 1,
            "failures": 1,
            "failure_rate": 1.0,
            "top_failure_modes": ["timeout"],
        },
    }
    assert list(body["by_model"]) == [
        "gpt-4o-mini",
        "claude-haiku-4-5",
        "claude-sonnet-4-5",
        "gemini-2.5-flash",
        "gpt-4o",
        "mistral-small",
    ]
    # hallucination: 10 failures, mini holds 6 (>= 50%), but no other model has 20 calls on
    # extraction: no candidate -> no mitigation; timeout has fewer than 10
    assert body["mitigation_recommendations"] == []


# ---------------------------------------------------------------- providers


async def test_providers_incidents_status_uptime_and_errors(
    client: httpx.AsyncClient, app: FastAPI, world: World
) -> None:
    end = at(2024, 3, 10, 12, 0)  # window 11:00 <= t < 12:00, intervals 11:00 .. 11:55
    set_clock(app, end)

    def interval(
        minute: int, n: int, errors: int, mode: str = "provider_error"
    ) -> list[dict[str, Any]]:
        t = at(2024, 3, 10, 11, minute, 30)
        return [error(mode, created_at=t, latency_ms=50) for _ in range(errors)] + [
            call(created_at=t, latency_ms=50) for _ in range(n - errors)
        ]

    google = {"provider": "google", "model": "gemini-2.5-flash"}
    mistral = {"provider": "mistral", "model": "mistral-small", "account_id": ACCT_B}
    records = [
        # openai (latencies 50 ms, below 100 ms where percentiles are exact)
        *answers.openai_incident_intervals(interval),
        # anthropic: 20 calls at 11:30, latencies 4, 8, ..., 80
        *[call(provider="anthropic", model="claude-haiku-4-5", latency_ms=4 * i,
               created_at=at(2024, 3, 10, 11, 30)) for i in range(1, 21)],
        # google, last three intervals: 1 provider error in 20 = 0.05 exactly -> degraded
        *[call(created_at=at(2024, 3, 10, 11, 50), latency_ms=30, **google) for _ in range(19)],
        error("provider_error", created_at=at(2024, 3, 10, 11, 50), latency_ms=30, **google),
        # mistral (another account: providers are platform-wide): 1 timeout in 21 = 0.048
        # -> operational
        *[call(created_at=at(2024, 3, 10, 11, 55), latency_ms=20, **mistral) for _ in range(20)],
        error("timeout", created_at=at(2024, 3, 10, 11, 55), latency_ms=20, **mistral),
        # outside the window: at the end instant, and in the previous hour (openai 40 ms,
        # 1 provider error in 10)
        error("provider_error", created_at=end, latency_ms=5000),
        *[call(created_at=at(2024, 3, 10, 10, 30), latency_ms=40) for _ in range(9)],
        error("provider_error", created_at=at(2024, 3, 10, 10, 59, 59), latency_ms=40),
    ]  # fmt: skip
    await ingest(client, world, records)
    body = await get(client, world.a_live, "providers", hours=1, end_time="2024-03-10T12:00:00Z")
    assert body["period"] == {
        "start_time": "2024-03-10T11:00:00Z",
        "end_time": "2024-03-10T12:00:00Z",
        "hours": 1,
    }
    # served: openai 69, mistral 21, anthropic 20 and google 20 (tie: first-choice calls
    # 20 each, then name)
    assert list(body["providers"]) == ["openai", "mistral", "anthropic", "google"]
    # openai: intervals with traffic 11:00 (1.0), :10, :15, :20, :45, :50 (0.5, not below),
    # :55 -> 5 of 7 healthy = 0.714; last three: 12 of 30 = 0.4 -> outage;
    # error rate 27 / 69 = 0.391; rate limited 9
    assert body["providers"]["openai"] == {
        "status": "outage",
        "uptime": 0.714,
        "avg_latency_ms": 50,
        "p95_latency_ms": 50,
        "p99_latency_ms": 50,
        "error_rate": 0.391,
        "rate_limit_hits": 9,
        "incidents": answers.OPENAI_INCIDENTS,
    }
    # anthropic: p95 = rank ceil(19) = 19th = 76, p99 = rank ceil(19.8) = 20th = 80,
    # mean 4 x 210 / 20 = 42; no traffic in the last three intervals -> unknown
    assert body["providers"]["anthropic"] == {
        "status": "unknown",
        "uptime": 1.0,
        "avg_latency_ms": 42,
        "p95_latency_ms": 76,
        "p99_latency_ms": 80,
        "error_rate": 0.0,
        "rate_limit_hits": 0,
        "incidents": [],
    }
    assert body["providers"]["google"] == {
        "status": "degraded",
        "uptime": 1.0,  # one interval, 0.05 < 0.5
        "avg_latency_ms": 30,
        "p95_latency_ms": 30,
        "p99_latency_ms": 30,
        "error_rate": 0.05,
        "rate_limit_hits": 0,
        "incidents": [],
    }
    assert body["providers"]["mistral"] == {
        "status": "operational",
        "uptime": 1.0,
        "avg_latency_ms": 20,
        "p95_latency_ms": 20,
        "p99_latency_ms": 20,
        "error_rate": 0.048,  # 1 / 21 = 0.0476
        "rate_limit_hits": 0,
        "incidents": [],
    }
    # openai vs previous hour: latency (50 - 40) / 40 = 0.25; error (27/69 - 1/10) / (1/10)
    # = 2.913 -> 2.91. The others had no previous calls.
    none = {"latency_change": None, "error_change": None}
    stable = {"latency_trend": "stable", "error_trend": "stable", "vs_previous_period": none}
    assert body["trends"] == {
        "openai": {
            "latency_trend": "degrading",
            "error_trend": "degrading",
            "vs_previous_period": {"latency_change": 0.25, "error_change": 2.91},
        },
        "mistral": stable,
        "anthropic": stable,
        "google": stable,
    }
    # no latency recommendation (every provider has one hour, its own window p95);
    # error ones for outage/degraded providers in providers order: openai 12/30, google 1/20
    action = "Route first-choice traffic to a fallback provider until it recovers"
    assert body["recommendations"] == [
        {
            "provider": "openai",
            "message": "Error rate over the last 15 minutes is 40.0%",
            "action": action,
        },
        {
            "provider": "google",
            "message": "Error rate over the last 15 minutes is 5.0%",
            "action": action,
        },
    ]

    # the default end_time is now, truncated down to 5 minutes: 12:03:41 -> 12:00
    set_clock(app, at(2024, 3, 10, 12, 3, 41))
    again = await get(client, world.a_live, "providers", hours=1)
    assert again == body


async def test_provider_trends_with_previous_period_zero(
    client: httpx.AsyncClient, app: FastAPI, world: World
) -> None:
    set_clock(app, at(2024, 3, 10, 12, 0))
    google = {"provider": "google", "model": "gemini-2.5-flash"}
    anthropic = {"provider": "anthropic", "model": "claude-haiku-4-5"}
    await ingest(client, world, answers.provider_trend_calls(call, error, google, anthropic))
    body = await get(client, world.a_live, "providers", hours=1)
    assert body["trends"] == answers.PROVIDER_TRENDS
    assert list(body["trends"]) == ["google", "openai", "anthropic"]
    assert body["providers"]["google"]["error_rate"] == 0.1


async def test_provider_latency_recommendation_by_hour_of_day(
    client: httpx.AsyncClient, app: FastAPI, world: World
) -> None:
    set_clock(app, at(2024, 3, 10, 12, 0))  # hours=2: 10:00 .. 11:59

    def served(provider: str, hour: int, latencies: list[int]) -> list[dict[str, Any]]:
        return [
            call(provider=provider, model=f"{provider}-model", latency_ms=ms,
                 created_at=at(2024, 3, 10, hour, i % 60))
            for i, ms in enumerate(latencies)
        ]  # fmt: skip

    await ingest(
        client,
        world,
        [
            # openai: hour 10: 40 x 40 ms; hour 11: 18 x 40 + 2 x 90 (all exact, < 100 ms).
            # window p95 = rank 57 of 60 = 40; hour 11 p95 = rank 19 of 20 = 90 >= 50 -> slow;
            # hour 10 p95 = 40 < 50.
            *served("openai", 10, [40] * 40),
            *served("openai", 11, [40] * 18 + [90] * 2),
            # alternatives in hour 11: anthropic p95 70, google p95 60, mistral only 19 calls
            *served("anthropic", 11, [70] * 20),
            *served("google", 11, [60] * 20),
            *served("mistral", 11, [10] * 19),
        ],
    )
    body = await get(client, world.a_live, "providers", hours=2)
    assert list(body["providers"]) == ["openai", "anthropic", "google", "mistral"]
    assert body["providers"]["openai"]["p95_latency_ms"] == 40
    assert body["providers"]["openai"]["p99_latency_ms"] == 90  # rank ceil(59.4) = 60
    assert body["recommendations"] == [
        {
            "provider": "openai",
            "message": "p95 latency is at least 1.25x its window p95 (40 ms) during UTC hours 11",
            "action": "Consider routing latency-sensitive traffic to google during these hours",
        }
    ]


async def test_providers_window_off_the_hour_grid(
    client: httpx.AsyncClient, app: FastAPI, world: World
) -> None:
    # now 12:37:10 -> end 12:35; hours=2 -> [10:35, 12:35); previous [08:35, 10:35)
    set_clock(app, at(2024, 3, 10, 12, 37, 10))
    await ingest(
        client,
        world,
        [
            call(created_at=at(2024, 3, 10, 10, 35, 0), latency_ms=10),  # first instant: in
            call(created_at=at(2024, 3, 10, 11, 30), latency_ms=20),  # a whole hour: in
            error("provider_error", created_at=at(2024, 3, 10, 12, 34, 59), latency_ms=30),
            call(created_at=at(2024, 3, 10, 12, 35, 0), latency_ms=99),  # end: out
            # previous window: 08:35:00 and 10:34:59 (an error); 08:34:59 is in neither
            call(created_at=at(2024, 3, 10, 8, 35, 0), latency_ms=70),
            error("timeout", created_at=at(2024, 3, 10, 10, 34, 59), latency_ms=90),
            call(created_at=at(2024, 3, 10, 8, 34, 59), latency_ms=5000),
        ],
    )
    body = await get(client, world.a_live, "providers", hours=2)
    assert body["period"] == {
        "start_time": "2024-03-10T10:35:00Z",
        "end_time": "2024-03-10T12:35:00Z",
        "hours": 2,
    }
    # 3 calls: mean (10 + 20 + 30) / 3 = 20; p95 rank ceil(2.85) = 3 -> 30; errors 1/3;
    # intervals 10:35 (ok), 11:30 (ok), 12:30 (1/1, not below 0.5) -> 2/3 = 0.667;
    # last three intervals (12:20..12:30): 1 of 1 -> outage; 1 call: no incident
    assert body["providers"] == {
        "openai": {
            "status": "outage",
            "uptime": 0.667,
            "avg_latency_ms": 20,
            "p95_latency_ms": 30,
            "p99_latency_ms": 30,
            "error_rate": 0.333,
            "rate_limit_hits": 0,
            "incidents": [],
        }
    }
    # previous: mean (70 + 90) / 2 = 80, errors 1/2: latency (20 - 80) / 80 = -0.75;
    # errors (1/3 - 1/2) / (1/2) = -0.333 -> -0.33
    assert body["trends"] == {
        "openai": {
            "latency_trend": "improving",
            "error_trend": "improving",
            "vs_previous_period": {"latency_change": -0.75, "error_change": -0.33},
        }
    }
    assert body["recommendations"] == [
        {
            "provider": "openai",
            "message": "Error rate over the last 15 minutes is 100.0%",
            "action": "Route first-choice traffic to a fallback provider until it recovers",
        }
    ]


@pytest.mark.parametrize("with_alternative", [True, False])
async def test_provider_latency_hours_merge_across_days(
    client: httpx.AsyncClient, app: FastAPI, world: World, with_alternative: bool
) -> None:
    set_clock(app, at(2024, 3, 10, 12, 0))  # hours=48: 2024-03-08 12:00 .. 03-10 11:59

    def served(provider: str, day: int, hour: int, n: int, ms: int) -> list[dict[str, Any]]:
        return [
            call(provider=provider, model=f"{provider}-model", latency_ms=ms,
                 created_at=at(2024, 3, day, hour, i % 60, i // 60))
            for i in range(n)
        ]  # fmt: skip

    records = [
        # openai: 1000 calls at 20 ms (hour 15 of two days), 20 at 80 ms in hour 9 (03-09),
        # 10 + 10 at 90 ms in hour 13 of 03-08 and 03-09 (20 only when the days merge).
        # 1040 calls: window p95 = rank ceil(988) = 988th = 20 ms; threshold 25 ms:
        # hour 9 p95 80 and hour 13 p95 90 are slow, hour 15 (20) is not.
        *served("openai", 8, 15, 500, 20),
        *served("openai", 9, 15, 500, 20),
        *served("openai", 9, 9, 20, 80),
        *served("openai", 8, 13, 10, 90),
        *served("openai", 9, 13, 10, 90),
        # anthropic: 19 calls in hour 9 only: not enough in those hours to be an alternative
        *served("anthropic", 9, 9, 19, 10),
    ]
    if with_alternative:
        # google: 10 calls in hour 9 and 10 in hour 13 at 50 ms: 20 over the slow hours
        records += served("google", 9, 9, 10, 50) + served("google", 8, 13, 10, 50)
    await ingest(client, world, records)
    body = await get(client, world.a_live, "providers", hours=48)
    assert body["providers"]["openai"]["p95_latency_ms"] == 20
    action = (
        "Consider routing latency-sensitive traffic to google during these hours"
        if with_alternative
        else "Consider a faster fallback provider during these hours"
    )
    assert body["recommendations"] == [
        {
            "provider": "openai",
            "message": (
                "p95 latency is at least 1.25x its window p95 (20 ms) during UTC hours 9, 13"
            ),
            "action": action,
        }
    ]


# ---------------------------------------------------------------- daily


async def test_daily_lists_empty_days_and_trends_exclude_today(
    client: httpx.AsyncClient, app: FastAPI, world: World
) -> None:
    set_clock(app, at(2024, 3, 10, 15, 0))  # today 2024-03-10
    haiku = {"model": "claude-haiku-4-5", "provider": "anthropic"}
    await ingest(client, world, answers.daily_log(call, error, haiku))
    body = await get(client, world.a_live, "daily", days=4)
    expected = answers.DAILY_ANSWER
    assert body["period"] == expected["period"]
    assert body["daily_data"] == expected["daily_data"]
    assert list(body["daily_data"][2]["model_distribution"]) == ["gpt-4o-mini", "claude-haiku-4-5"]
    assert body["trends"] == expected["trends"]
    set_clock(app, at(2024, 3, 11, 9, 0))
    body = await get(client, world.a_live, "daily", days=4, end_date="2024-03-10")
    assert body["trends"] == expected["trends_a_day_later"]
    # one complete day (03-09, 3 calls): growth needs 2 days -> null, all stable
    body = await get(client, world.a_live, "daily", days=1, end_date="2024-03-09")
    assert body["trends"] == {
        "calls_trend": "stable",
        "cost_trend": "stable",
        "quality_trend": "stable",
        "avg_daily_growth": None,
    }
    # a window of today only has no complete day: the same
    body = await get(client, world.a_live, "daily", days=1)
    assert body["period"] == {
        "start_date": "2024-03-11",
        "end_date": "2024-03-11",
        "timezone": "UTC",
    }
    assert body["trends"]["avg_daily_growth"] is None
    # 03-08 and 03-09: calls 0, 3 -> slope 3, mean 1.5 -> growth 2.0; quality on one day
    # only (03-09) -> stable
    body = await get(client, world.a_live, "daily", days=2, end_date="2024-03-09")
    assert body["trends"] == {
        "calls_trend": "increasing",
        "cost_trend": "increasing",
        "quality_trend": "stable",
        "avg_daily_growth": 2.0,
    }


# ---------------------------------------------------------------- empty windows


async def test_every_endpoint_on_an_empty_window(
    client: httpx.AsyncClient, app: FastAPI, world: World
) -> None:
    set_clock(app, at(2024, 3, 12, 8, 0))
    # calls exist, but outside every window and month figure for end_date 2024-03-10
    # (windows 03-10 / 03-09..10, months Feb and Mar 1..10, R over 03-03..09) and outside
    # the providers windows 10:00..12:00 on 03-10
    await ingest(
        client, world, [call(created_at=at(2024, 1, 15)), call(created_at=at(2024, 3, 11, 0))]
    )
    key = world.a_live
    expected = answers.empty_window(ACCT_A)
    day = {"days": 1, "end_date": "2024-03-10"}
    assert await get(client, key, "overview", **day) == expected["overview"]
    assert await get(client, key, "customer", **day) == expected["customer"]
    assert await get(client, key, "performance", **day) == expected["performance"]
    assert await get(client, key, "performance", **day, task_type="code") == expected["performance"]
    assert await get(client, key, "failures", **day) == expected["failures"]
    providers = await get(client, key, "providers", hours=1, end_time="2024-03-10T12:00:00Z")
    assert providers == expected["providers"]
    assert await get(client, key, "daily", days=2, end_date="2024-03-10") == expected["daily"]
    # an account that never sent a call, default parameters
    empty = await get(client, world.b_live, "overview")
    assert empty["summary"]["total_calls"] == 0
    assert empty["period"]["days"] == 7
    assert empty["period"]["end_date"] == "2024-03-12T23:59:59Z"


# ---------------------------------------------------------------- isolation


def _mixed_calls(**fields: Any) -> list[dict[str, Any]]:
    """A small log touching every endpoint: failures, scores, several providers."""
    day = at(2024, 3, 10, 9, 12)
    return [
        *[call(created_at=day, quality_score=0.9, **fields) for _ in range(3)],
        retried("format_violation", created_at=day, failure_trigger="nested", **fields),
        error("timeout", created_at=day, **fields),
        call(created_at=at(2024, 3, 9, 23), model="claude-haiku-4-5", provider="anthropic",
             task_type="code", cost_usd="0.02", latency_ms=900, **fields),
        call(created_at=day, failure_mode="rate_limited", recovery="fallback",
             fallback_used=True, initial_model="gpt-4o", initial_provider="openai",
             model="gemini-2.5-flash", provider="google", **fields),
    ]  # fmt: skip


async def _snapshot(client: httpx.AsyncClient, key: str) -> dict[str, dict[str, Any]]:
    return {
        endpoint: without_data_as_of(
            await get(client, key, endpoint, **({"days": 3} if endpoint != "providers" else {}))
        )
        for endpoint in ENDPOINTS
    }


async def test_other_accounts_and_environments_never_change_a_number(
    client: httpx.AsyncClient, app: FastAPI, world: World
) -> None:
    set_clock(app, at(2024, 3, 10, 12, 0))
    await ingest(client, world, _mixed_calls())
    before = await _snapshot(client, world.a_live)
    assert before["overview"]["summary"]["total_calls"] == 7
    assert before["failures"]["summary"]["total_failures"] == 3

    # A's and B's test-environment calls: no live number moves, providers included
    await ingest(
        client,
        world,
        _mixed_calls(environment="test")
        + _mixed_calls(environment="test", account_id=ACCT_B)
        + [error("provider_error", environment="test", created_at=at(2024, 3, 10, 11, 58))],
    )
    assert await _snapshot(client, world.a_live) == before
    # ... and A's test key sees exactly A's 8 test calls
    test_view = await get(client, world.a_test, "overview", days=3)
    assert test_view["summary"]["total_calls"] == 8
    assert (await get(client, world.b_test, "overview", days=3))["summary"]["total_calls"] == 7

    # B's live calls: A's account endpoints unchanged; providers (platform-wide) change
    await ingest(client, world, _mixed_calls(account_id=ACCT_B) * 1)
    after = await _snapshot(client, world.a_live)
    for endpoint in DAY_ENDPOINTS:
        assert after[endpoint] == before[endpoint], endpoint
    # openai: first choice of 6 + 6 calls (the gemini fallback started on gpt-4o), 2 + 2
    # provider-side failures (timeout, rate_limited): error rate 1/3 both times; the rate
    # limit hits double
    openai_before = before["providers"]["providers"]["openai"]
    openai_after = after["providers"]["providers"]["openai"]
    assert (openai_before["error_rate"], openai_before["rate_limit_hits"]) == (0.333, 1)
    assert (openai_after["error_rate"], openai_after["rate_limit_hits"]) == (0.333, 2)
    assert (await get(client, world.b_live, "overview", days=3))["summary"]["total_calls"] == 7


# ---------------------------------------------------------------- caching


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_etag_304_and_a_new_etag_after_ingest(
    client: httpx.AsyncClient, app: FastAPI, world: World, endpoint: str
) -> None:
    set_clock(app, at(2024, 3, 10, 12, 0))
    await ingest(client, world, [call(created_at=at(2024, 3, 10, 9, 0))])
    first = await fetch(client, world.a_live, endpoint)
    assert first.status_code == 200, first.text
    assert first.headers["cache-control"] == "private, max-age=60"
    etag = first.headers["etag"]
    assert etag

    headers = {**bearer(world.a_live), "If-None-Match": etag}
    second = await client.get(f"/v1/metrics/{endpoint}", headers=headers)
    assert second.status_code == 304
    assert second.content == b""
    assert second.headers["etag"] == etag
    assert second.headers["cache-control"] == "private, max-age=60"

    # one more call in every window (the providers' 24 h included): the body, so the ETag,
    # changes and the old tag no longer matches
    await ingest(client, world, [call(created_at=at(2024, 3, 10, 9, 5), latency_ms=700)])
    third = await client.get(f"/v1/metrics/{endpoint}", headers=headers)
    assert third.status_code == 200, third.text
    assert third.headers["etag"] != etag
    assert third.json() != first.json()
    assert third.headers["cache-control"] == "private, max-age=60"


async def test_if_none_match_lists_and_weak_tags(
    client: httpx.AsyncClient, app: FastAPI, world: World
) -> None:
    set_clock(app, at(2024, 3, 10, 12, 0))
    await ingest(client, world, [call(created_at=at(2024, 3, 10, 9, 0))])
    first = await fetch(client, world.a_live, "overview")
    etag = first.headers["etag"]

    async def status(if_none_match: str) -> int:
        headers = {**bearer(world.a_live), "If-None-Match": if_none_match}
        return (await client.get("/v1/metrics/overview", headers=headers)).status_code

    assert await status(f'"other", {etag}') == 304  # any tag of a list may match
    assert await status(f"W/{etag}") == 304  # If-None-Match compares weakly
    assert await status('"other"') == 200
    assert await status("*") == 304  # RFC 9110 §13.1.2: * matches any current representation


# ---------------------------------------------------------------- parameters


DAY_PARAM_ERRORS = [
    ("days=0", "days"),
    ("days=91", "days"),
    ("days=7.5", "days"),
    ("days=abc", "days"),
    ("days=", "days"),
    ("days=%2B7", "days"),
    ("days=%207", "days"),
    ("days=7&days=8", "days"),
    ("days=7&days=7", "days"),
    ("bogus=1", "bogus"),
    ("hours=24", "hours"),  # a providers parameter is unknown here
    ("end_date=2024-03-11", "end_date"),  # tomorrow of the clock's 2024-03-10
    ("end_date=2026-02-30", "end_date"),
    ("end_date=2024-02-30", "end_date"),
    ("end_date=2024-3-1", "end_date"),
    ("end_date=2024-03-10T00:00:00Z", "end_date"),
    ("end_date=", "end_date"),
    ("end_date=2024-03-09&end_date=2024-03-10", "end_date"),
]
PROVIDER_PARAM_ERRORS = [
    ("hours=0", "hours"),
    ("hours=169", "hours"),
    ("hours=7.5", "hours"),
    ("hours=abc", "hours"),
    ("hours=", "hours"),
    ("hours=1&hours=2", "hours"),
    ("days=7", "days"),
    ("bogus=1", "bogus"),
    ("end_time=2024-03-10T11:00:00", "end_time"),  # no offset
    ("end_time=2024-03-10T11:00Z", "end_time"),  # RFC 3339 needs seconds
    ("end_time=2024-03-10T12:05:00Z", "end_time"),  # after the clock's 12:00
    ("end_time=2024-03-10T12:00:01Z", "end_time"),
    ("end_time=2024-03-10T13:00:01%2B01:00", "end_time"),
    ("end_time=2024-03-10", "end_time"),
    ("end_time=abc", "end_time"),
    ("end_time=", "end_time"),
]
PERFORMANCE_PARAM_ERRORS = [
    ("task_type=unknown", "task_type"),
    ("task_type=Code", "task_type"),
    ("task_type=", "task_type"),
    ("task_type=code&task_type=code", "task_type"),
]
PARAM_CASES = [
    *[(e, q, p) for e in DAY_ENDPOINTS for q, p in DAY_PARAM_ERRORS],
    *[("performance", q, p) for q, p in PERFORMANCE_PARAM_ERRORS],
    *[("overview", "task_type=code", "task_type")],
    *[("providers", q, p) for q, p in PROVIDER_PARAM_ERRORS],
]


@pytest.mark.parametrize(("endpoint", "query", "param"), PARAM_CASES)
async def test_invalid_parameters_are_400_naming_them(
    client: httpx.AsyncClient, app: FastAPI, world: World, endpoint: str, query: str, param: str
) -> None:
    set_clock(app, at(2024, 3, 10, 12, 0))
    response = await client.get(f"/v1/metrics/{endpoint}?{query}", headers=bearer(world.a_live))
    error = assert_envelope(response, 400, "invalid_parameter", param)
    assert error["type"] == "invalid_request_error"


VALID_CASES = [
    *[(e, q) for e in DAY_ENDPOINTS for q in ("days=1", "days=90", "end_date=2024-03-10")],
    ("performance", "task_type=writing&days=90&end_date=2024-02-29"),
    ("providers", "hours=1"),
    ("providers", "hours=168"),
    ("providers", "end_time=2024-03-10T12:00:00Z"),
    ("providers", "end_time=2024-03-10T13:00:00%2B01:00"),
    ("providers", "end_time=2024-03-10T06:59:59-05:00&hours=3"),
]


@pytest.mark.parametrize(("endpoint", "query"), VALID_CASES)
async def test_parameters_at_their_limits_are_accepted(
    client: httpx.AsyncClient, app: FastAPI, world: World, endpoint: str, query: str
) -> None:
    set_clock(app, at(2024, 3, 10, 12, 0))
    response = await client.get(f"/v1/metrics/{endpoint}?{query}", headers=bearer(world.a_live))
    assert response.status_code == 200, response.text
    RESPONSE_SCHEMAS[endpoint].model_validate(response.json())


async def test_effective_windows_echo_the_parameters(
    client: httpx.AsyncClient, app: FastAPI, world: World
) -> None:
    set_clock(app, at(2024, 3, 10, 12, 0))
    key = world.a_live
    # 90 days ending 2024-03-10: from 2023-12-12 (Dec 12..31 = 20, Jan 31, Feb 29, Mar 10)
    body = await get(client, key, "overview", days=90, end_date="2024-03-10")
    assert body["period"] == {
        "start_date": "2023-12-12T00:00:00Z",
        "end_date": "2024-03-10T23:59:59Z",
        "timezone": "UTC",
        "days": 90,
    }
    # defaults: customer and daily 30 days, performance and failures 7, ending today
    assert (await get(client, key, "customer"))["period"]["start_date"] == "2024-02-10T00:00:00Z"
    assert (await get(client, key, "daily"))["period"] == {
        "start_date": "2024-02-10",
        "end_date": "2024-03-10",
        "timezone": "UTC",
    }
    assert len((await get(client, key, "daily"))["daily_data"]) == 30
    assert (await get(client, key, "failures"))["period"]["start_date"] == "2024-03-04T00:00:00Z"
    # providers: 06:59:59 -05:00 = 11:59:59Z, truncated to 11:55; default hours 24
    body = await get(client, key, "providers", end_time="2024-03-10T06:59:59-05:00")
    assert body["period"] == {
        "start_time": "2024-03-09T11:55:00Z",
        "end_time": "2024-03-10T11:55:00Z",
        "hours": 24,
    }


# Found in review: each failed before its fix.


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
