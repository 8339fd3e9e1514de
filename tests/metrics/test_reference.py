"""Checks of the plain-Python reference itself, on small cases computed by hand.

The expected numbers are worked out in the comments, not taken from running the code.
No database: the conftest's autouse table cleaner is overridden below.
"""

from __future__ import annotations

import itertools
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from tests import answers
from tests import reference as ref
from tests.factories import at, reference_call


@pytest.fixture(autouse=True)
def clean_tables() -> None:
    """Override conftest's autouse fixture: these tests touch no database."""


# A valid, successful call record with every SPEC section 2 key; override as needed.
call = reference_call.but(call_ids=(f"c{n}" for n in itertools.count(1)))


def error(mode: str, **fields: Any) -> dict[str, Any]:
    return call(status="error", failure_mode=mode, **fields)


def retried(mode: str, **fields: Any) -> dict[str, Any]:
    return call(failure_mode=mode, recovery="retry", retry_count=1, **fields)


SETTINGS = {
    "cost_vs_quality_ratio": 0.5,
    "latency_sensitivity": 0.5,
    "preferred_models": [],
    "task_overrides": {},
}


# ---------------------------------------------------------------- rounding


def test_rounding_is_half_up_on_exact_values() -> None:
    assert ref.rnd(Decimal("0.002505"), 5) == 0.00251  # float round() gives 0.0025
    assert ref.rnd(Decimal("-0.125"), 2) == -0.13  # ties away from zero
    assert ref.rnd(Decimal("250.5"), 0) == 251
    assert isinstance(ref.rnd(Decimal("250.5"), 0), int)
    assert ref.rnd(None, 3) is None


# ---------------------------------------------------------------- overview


def test_overview_routing_accuracy_on_four_calls() -> None:
    calls = [
        # routed right: no failure, quality 0.9
        call(model="gpt-4o-mini", task_type="extraction", cost_usd=Decimal("0.001"),
             latency_ms=100, quality_score=0.9),
        # routed right: no failure, no quality score
        call(model="gpt-4o-mini", task_type="code", cost_usd=Decimal("0.002"), latency_ms=200,
             created_at=at(2024, 3, 4, 0, 0, 0)),
        # routed right: quality exactly 0.7 counts
        call(model="claude-haiku-4-5", provider="anthropic", task_type="code",
             cost_usd=Decimal("0.00302"), latency_ms=300, quality_score=0.7),
        # not routed right: a failure (rescued by a retry) despite quality 0.95
        retried("format_violation", model="claude-sonnet-4-5", provider="anthropic",
                task_type="writing", cost_usd=Decimal("0.004"), latency_ms=402,
                quality_score=0.95),
        # outside the window (2024-03-04..2024-03-10): the last second of 03-03, and 03-11
        call(created_at=at(2024, 3, 3, 23, 59, 59), cost_usd=Decimal("9")),
        call(created_at=at(2024, 3, 11, 0, 0, 0), cost_usd=Decimal("9")),
    ]  # fmt: skip
    body = ref.overview(calls, days=7, end_date=date(2024, 3, 10))
    assert body["period"] == {
        "start_date": "2024-03-04T00:00:00Z",
        "end_date": "2024-03-10T23:59:59Z",
        "days": 7,
    }
    # cost 0.001 + 0.002 + 0.00302 + 0.004 = 0.01002 -> 0.01; per call 0.002505 -> 0.00251
    # latency (100 + 200 + 300 + 402) / 4 = 250.5 -> 251
    assert body["summary"] == {
        "total_calls": 4,
        "total_cost_usd": 0.01,
        "avg_cost_per_call": 0.00251,
        "avg_latency_ms": 251,
        "success_rate": 1.0,
    }
    # 3 of 4 routed right; no fallback; 1 of 4 retried
    assert body["routing"] == {"accuracy": 0.75, "fallback_rate": 0.0, "retry_rate": 0.25}
    # mini 2 calls; haiku and sonnet 1 each, tie broken by name
    assert list(body["models"]) == ["gpt-4o-mini", "claude-haiku-4-5", "claude-sonnet-4-5"]
    assert body["models"]["gpt-4o-mini"] == {
        "calls": 2,
        "percentage": 0.5,
        "avg_cost": 0.0015,  # (0.001 + 0.002) / 2
        "avg_latency_ms": 150,
    }
    assert body["models"]["claude-sonnet-4-5"] == {
        "calls": 1,
        "percentage": 0.25,
        "avg_cost": 0.004,
        "avg_latency_ms": 402,
    }
    # code 2, extraction 1, writing 1
    assert list(body["task_distribution"].items()) == [
        ("code", 0.5),
        ("extraction", 0.25),
        ("writing", 0.25),
    ]


# ---------------------------------------------------------------- customer


def test_cost_analysis_leap_day_and_window_from_jan_31() -> None:
    calls = [
        call(created_at=at(y, mo, d), cost_usd=Decimal(cost), input_tokens=1_000_000,
             output_tokens=100_000)
        for (y, mo, d), cost in answers.LEAP_DAY_COSTS
    ]  # fmt: skip
    body = ref.customer(
        calls, account_id="acct_test", settings=SETTINGS, days=30, end_date=date(2024, 2, 29)
    )
    expected = answers.LEAP_DAY_ANSWER
    assert body["period"] == expected["period"]
    assert body["usage"] == expected["usage"]
    assert body["cost_analysis"] == expected["cost_analysis"]


def test_cost_analysis_march_31_against_a_leap_february() -> None:
    calls = [
        call(created_at=at(2024, 2, 1), cost_usd=Decimal("2.00")),
        call(created_at=at(2024, 2, 29), cost_usd=Decimal("2.00")),  # day 29 <= min(31, 29)
        call(created_at=at(2024, 3, 1), cost_usd=Decimal("1.00")),
        call(created_at=at(2024, 3, 31), cost_usd=Decimal("1.00")),
    ]
    body = ref.customer(
        calls, account_id="acct_test", settings=SETTINGS, days=1, end_date=date(2024, 3, 31)
    )
    # current 2.00; previous 4.00; P = Feb 1..29 = 4.00 -> -50.0;
    # projected = 1.00 (Mar 1..30) + 0 (no cost Mar 24..30) / 7 x 1 = 1.00
    ca = body["cost_analysis"]
    assert (ca["current_month"], ca["previous_month"]) == (2.0, 4.0)
    assert ca["change_percentage"] == -50.0
    assert ca["projected_month_end"] == 1.0


def test_projected_month_end_on_the_first() -> None:
    calls = [
        call(created_at=at(2024, 2, 22), cost_usd=Decimal("7.00")),  # 8 days before: not in R
        call(created_at=at(2024, 2, 23), cost_usd=Decimal("0.70")),
        call(created_at=at(2024, 2, 29), cost_usd=Decimal("0.70")),
        call(created_at=at(2024, 3, 1, 23, 59, 59), cost_usd=Decimal("5.00")),
    ]
    body = ref.customer(
        calls, account_id="acct_test", settings=SETTINGS, days=1, end_date=date(2024, 3, 1)
    )
    # nothing of March before today; R = (0.70 + 0.70) / 7 = 0.20; 31 days left -> 6.20.
    # P = February day 1 only = 0 -> change null.
    ca = body["cost_analysis"]
    assert ca["current_month"] == 5.0
    assert ca["previous_month"] == 8.4
    assert ca["change_percentage"] is None
    assert ca["projected_month_end"] == 6.2


def test_customer_peak_hours_profile_and_preferences() -> None:
    # 96 calls: threshold 1.25 x 96 / 24 = 5 calls.
    # hour 9: 5 (exactly the threshold -> peak), hour 20: 6 (peak), hour 3: 1,
    # the 21 other hours: 4 each (not peak). 5 + 6 + 1 + 84 = 96.
    per_hour = {h: 4 for h in range(24)} | {9: 5, 20: 6, 3: 1}
    calls = [
        call(created_at=at(2024, 3, 10, h, i), model="gpt-4o-mini")
        for h, n in per_hour.items()
        for i in range(n)
    ]
    assert len(calls) == 96
    body = ref.customer(
        calls, account_id="acct_test", settings=SETTINGS, days=7, end_date=date(2024, 3, 10)
    )
    assert body["behavior_insights"]["peak_hours"] == [9, 20]
    assert body["usage"]["avg_calls_per_day"] == 13.7  # 96 / 7 = 13.71

    # 10 calls: extraction 5 (mini), code 2 (haiku), writing 2 + reasoning 1 (sonnet)
    calls = [
        call(task_type="extraction", model="gpt-4o-mini", complexity_score=0.1, message_count=3),
        call(task_type="extraction", model="gpt-4o-mini", complexity_score=0.2, message_count=4),
        call(task_type="extraction", model="gpt-4o-mini", complexity_score=0.25, message_count=4),
        call(task_type="extraction", model="gpt-4o-mini", message_count=4, cost_ceiling_hit=True),
        retried("refusal", task_type="extraction", model="gpt-4o-mini"),
        call(task_type="code", model="claude-haiku-4-5"),
        retried("timeout", task_type="code", model="claude-haiku-4-5"),
        call(task_type="writing", model="claude-sonnet-4-5"),
        call(task_type="writing", model="claude-sonnet-4-5"),
        call(task_type="reasoning", model="claude-sonnet-4-5"),
    ]
    settings = {**SETTINGS, "task_overrides": {"reasoning": "claude-sonnet-4-5"}}
    body = ref.customer(
        calls, account_id="acct_x", settings=settings, days=7, end_date=date(2024, 3, 10)
    )
    assert body["account_id"] == "acct_x"
    # no preferred models set: the two with most calls (mini 5, sonnet 3; haiku 2)
    assert body["quality_preferences"] == {
        "cost_vs_quality_ratio": 0.5,
        "latency_sensitivity": 0.5,
        "preferred_models": ["gpt-4o-mini", "claude-sonnet-4-5"],
    }
    # extraction 50%, code 20%, writing 20% (tie by name), reasoning 10%;
    # complexity (0.1 + 0.2 + 0.25) / 3 = 0.18333 -> 0.183
    assert body["task_profile"] == {
        "dominant_tasks": ["extraction", "code", "writing"],
        "complexity_avg": 0.183,
        "task_overrides": {"reasoning": "claude-sonnet-4-5"},
    }
    # messages (3 + 4 + 4 + 4) / 4 = 3.75 -> 3.8; retries 2 / 10; ceiling 1 / 10;
    # 10 calls at 12:00: 10 >= 1.25 x 10 / 24 -> [12]
    assert body["behavior_insights"] == {
        "peak_hours": [12],
        "avg_conversation_length": 3.8,
        "retry_rate": 0.2,
        "cost_ceiling_hit_rate": 0.1,
    }
    # an explicit setting is echoed even without calls of that model
    explicit = {**SETTINGS, "preferred_models": ["gpt-4o"]}
    body = ref.customer(
        calls, account_id="acct_x", settings=explicit, days=7, end_date=date(2024, 3, 10)
    )
    assert body["quality_preferences"]["preferred_models"] == ["gpt-4o"]


def test_dominant_tasks_fall_back_to_the_largest() -> None:
    # six tasks: 3, 3, 3, 3, 2, 2 calls of 16: none reaches 20% (3.2 calls)
    sizes = {"code": 3, "extraction": 3, "reasoning": 3, "writing": 3,
             "classification": 2, "summarization": 2}  # fmt: skip
    calls = [call(task_type=t) for t, n in sizes.items() for _ in range(n)]
    body = ref.customer(
        calls, account_id="acct_test", settings=SETTINGS, days=7, end_date=date(2024, 3, 10)
    )
    assert body["task_profile"]["dominant_tasks"] == ["code"]


# ---------------------------------------------------------------- performance


def scored(
    n: int, model: str, task: str, quality: float | None, cost: str, **kw: Any
) -> list[dict[str, Any]]:
    return [
        call(model=model, task_type=task, quality_score=quality, cost_usd=Decimal(cost), **kw)
        for _ in range(n)
    ]


def test_optimal_model_rules_and_recommendation() -> None:
    calls = [
        # extraction: a is best (0.90), b within exactly 0.02 (0.88) and cheaper -> b (cost)
        *scored(30, "model-a", "extraction", 0.90, "0.002"),
        *scored(20, "model-b", "extraction", 0.88, "0.001"),
        # c is the best and cheapest, but only 19 scored calls: not eligible
        *scored(19, "model-c", "extraction", 0.99, "0.0001"),
        *scored(1, "model-c", "extraction", None, "0.0001"),
        # code: w and x tie on quality (0.80) and cost; y is within 0.02 at the same cost
        # but lower quality -> higher quality first, then name -> w (both)
        *scored(20, "model-x", "code", 0.80, "0.001"),
        *scored(20, "model-w", "code", 0.80, "0.001"),
        *scored(20, "model-y", "code", 0.79, "0.001"),
        # reasoning: q 0.95 x 18/20 success = 0.855; r 0.83 x 1 = 0.83, 0.025 behind -> q
        *scored(18, "model-q", "reasoning", 0.95, "0.01"),
        *[
            error("reasoning_error", model="model-q", task_type="reasoning", quality_score=0.95,
                  cost_usd=Decimal("0.01"))
            for _ in range(2)
        ],
        *scored(20, "model-r", "reasoning", 0.83, "0.001"),
        # writing: 19 scored calls only -> no optimal model
        *scored(19, "model-a", "writing", 0.9, "0.001"),
    ]  # fmt: skip
    body = ref.performance(calls, days=7, end_date=date(2024, 3, 10))
    # extraction 70, code 60, reasoning 40, writing 19
    assert list(body["by_task_type"]) == ["extraction", "code", "reasoning", "writing"]

    extraction = body["by_task_type"]["extraction"]
    assert extraction["total_calls"] == 70
    assert list(extraction["models"]) == ["model-a", "model-b", "model-c"]  # 30, 20, 20
    assert extraction["models"]["model-c"] == {
        "calls": 20,
        "success_rate": 1.0,
        "avg_cost_usd": 0.0001,
        "avg_latency_ms": 500,
        "quality_score": 0.99,
    }
    assert extraction["optimal_model"] == "model-b"
    assert extraction["optimal_reason"] == (
        "Lowest average cost ($0.00100) among models within 0.02 of the best effective "
        "quality (0.900)"
    )

    code = body["by_task_type"]["code"]
    assert list(code["models"]) == ["model-w", "model-x", "model-y"]
    assert code["optimal_model"] == "model-w"
    assert code["optimal_reason"] == (
        "Highest effective quality (0.800) and the lowest cost among models within 0.02 of it"
    )

    reasoning = body["by_task_type"]["reasoning"]
    assert reasoning["models"]["model-q"]["success_rate"] == 0.9
    assert reasoning["optimal_model"] == "model-q"
    assert reasoning["optimal_reason"] == (
        "Highest effective quality (0.855) among models with at least 20 scored calls"
    )

    writing = body["by_task_type"]["writing"]
    assert writing["optimal_model"] is None
    assert writing["optimal_reason"] == (
        "Not enough scored calls: a model needs at least 20 calls with a quality score"
    )

    # only extraction's optimal (b) differs from its current model (a, 30 calls);
    # code's current is w (20 each, by name), reasoning's is q (20 each, by name).
    # savings (0.002 - 0.001) x 30 = 0.03; quality 0.88 - 0.90 = -0.02
    assert body["recommendations"] == [
        {
            "task_type": "extraction",
            "current_model": "model-a",
            "recommended_model": "model-b",
            "potential_savings_usd": 0.03,
            "cost_change_usd": -0.03,
            "quality_improvement": -0.02,
        }
    ]

    only_code = ref.performance(calls, days=7, end_date=date(2024, 3, 10), task_type="code")
    assert list(only_code["by_task_type"]) == ["code"]
    assert only_code["recommendations"] == []


# ---------------------------------------------------------------- failures


def test_failures_summary_modes_models_and_mitigation() -> None:
    calls = answers.failures_log(call, error, retried)
    assert len(calls) == 55
    body = ref.failures(calls, days=7, end_date=date(2024, 3, 10))
    expected = answers.FAILURES_ANSWER
    assert body["summary"] == expected["summary"]
    assert body["by_failure_mode"] == expected["by_failure_mode"]
    assert body["by_model"] == expected["by_model"]
    assert body["mitigation_recommendations"] == expected["mitigation_recommendations"]


# ---------------------------------------------------------------- providers


def test_providers_incidents_uptime_status_and_percentiles() -> None:
    end = at(2024, 3, 10, 12, 0)  # window 11:00 <= t < 12:00, intervals 11:00 .. 11:55

    def interval(
        minute: int, n: int, errors: int, mode: str = "provider_error"
    ) -> list[dict[str, Any]]:
        t = at(2024, 3, 10, 11, minute, 30)
        return [error(mode, created_at=t, latency_ms=1000) for _ in range(errors)] + [
            call(created_at=t, latency_ms=1000) for _ in range(n - errors)
        ]

    calls = [
        *answers.openai_incident_intervals(interval),
        # anthropic: 20 calls at 11:30, latencies 100, 200, ..., 2000
        *[call(provider="anthropic", model="claude-haiku-4-5", latency_ms=100 * i,
               created_at=at(2024, 3, 10, 11, 30)) for i in range(1, 21)],
        # outside the window: at the end instant, and in the previous hour
        error("provider_error", created_at=end),
        *[call(created_at=at(2024, 3, 10, 10, 30), latency_ms=800) for _ in range(9)],
        error("provider_error", created_at=at(2024, 3, 10, 10, 59, 59), latency_ms=800),
    ]  # fmt: skip
    body = ref.providers(calls, hours=1, end_time=end)
    assert body["period"] == {
        "start_time": "2024-03-10T11:00:00Z",
        "end_time": "2024-03-10T12:00:00Z",
        "hours": 1,
    }
    assert list(body["providers"]) == ["openai", "anthropic"]  # 69 served, 20 served
    openai = body["providers"]["openai"]
    # intervals with traffic: 11:00 (1.0), :10, :15, :20, :45, :50 (0.5), :55 -> 5 of 7 up
    # = 0.714; last three: 12 of 30 = 0.4 -> outage; error rate 27 / 69 = 0.391
    assert openai == {
        "status": "outage",
        "uptime": 0.714,
        "avg_latency_ms": 1000,
        "p95_latency_ms": 1000,
        "p99_latency_ms": 1000,
        "error_rate": 0.391,
        "rate_limit_hits": 9,
        "incidents": answers.OPENAI_INCIDENTS,
    }
    # anthropic: p95 = rank ceil(19) = 1900, p99 = rank ceil(19.8) = 20 -> 2000, mean 1050;
    # no traffic in the last three intervals -> unknown
    assert body["providers"]["anthropic"] == {
        "status": "unknown",
        "uptime": 1.0,
        "avg_latency_ms": 1050,
        "p95_latency_ms": 1900,
        "p99_latency_ms": 2000,
        "error_rate": 0.0,
        "rate_limit_hits": 0,
        "incidents": [],
    }
    # openai vs previous hour: latency (1000 - 800) / 800 = 0.25; error (27/69 - 1/10) / (1/10)
    # = 2.913 -> 2.91. anthropic had no previous calls.
    assert body["trends"] == {
        "openai": {
            "latency_trend": "degrading",
            "error_trend": "degrading",
            "vs_previous_period": {"latency_change": 0.25, "error_change": 2.91},
        },
        "anthropic": {
            "latency_trend": "stable",
            "error_trend": "stable",
            "vs_previous_period": {"latency_change": None, "error_change": None},
        },
    }
    assert body["recommendations"] == [
        {
            "provider": "openai",
            "message": "Error rate over the last 15 minutes is 40.0%",
            "action": "Route first-choice traffic to a fallback provider until it recovers",
        }
    ]


def test_provider_trends_with_previous_period_zero() -> None:
    end = at(2024, 3, 10, 12, 0)
    now, before = at(2024, 3, 10, 11, 30), at(2024, 3, 10, 10, 30)
    google, anthropic = {"provider": "google", "model": "gemini"}, {"provider": "anthropic"}
    calls = [
        # google: previous 10 calls at 500 ms, no errors; now 9 + 1 timeout at 550 ms
        *[call(created_at=before, latency_ms=500, **google) for _ in range(10)],
        *[call(created_at=now, latency_ms=550, **google) for _ in range(9)],
        error("timeout", created_at=now, latency_ms=550, **google),
        # openai: previous 1000 ms, 2 of 10 errors; now 950 ms (-5% exactly), 1 of 10
        *[call(created_at=before, latency_ms=1000) for _ in range(8)],
        *[error("provider_error", created_at=before, latency_ms=1000) for _ in range(2)],
        *[call(created_at=now, latency_ms=950) for _ in range(9)],
        error("provider_error", created_at=now, latency_ms=950),
        # anthropic: only now
        call(created_at=now, latency_ms=700, **anthropic),
    ]
    body = ref.providers(calls, hours=1, end_time=end)
    assert list(body["trends"]) == ["google", "openai", "anthropic"]  # 10, 10 (by name), 1
    assert body["trends"]["google"] == {
        "latency_trend": "degrading",  # +0.10
        "error_trend": "stable",  # previous error rate 0 -> change null
        "vs_previous_period": {"latency_change": 0.1, "error_change": None},
    }
    assert body["trends"]["openai"] == {
        "latency_trend": "improving",  # -0.05 exactly counts
        "error_trend": "improving",  # (0.1 - 0.2) / 0.2 = -0.5
        "vs_previous_period": {"latency_change": -0.05, "error_change": -0.5},
    }
    assert body["trends"]["anthropic"]["vs_previous_period"] == {
        "latency_change": None,
        "error_change": None,
    }


def test_provider_latency_recommendation_by_hour_of_day() -> None:
    end = at(2024, 3, 10, 12, 0)  # hours=2: 10:00 .. 11:59

    def served(provider: str, hour: int, latencies: list[int]) -> list[dict[str, Any]]:
        return [call(provider=provider, created_at=at(2024, 3, 10, hour, i % 60),
                     latency_ms=ms) for i, ms in enumerate(latencies)]  # fmt: skip

    calls = [
        # openai: hour 10: 40 x 100 ms; hour 11: 18 x 100 + 2 x 500.
        # window p95 = rank 57 of 60 = 100; hour 11 p95 = rank 19 of 20 = 500 >= 125 -> slow.
        *served("openai", 10, [100] * 40),
        *served("openai", 11, [100] * 18 + [500] * 2),
        # alternatives in hour 11: anthropic p95 300, google p95 250, mistral only 19 calls
        *served("anthropic", 11, [300] * 20),
        *served("google", 11, [250] * 20),
        *served("mistral", 11, [50] * 19),
    ]
    body = ref.providers(calls, hours=2, end_time=end)
    assert list(body["providers"]) == ["openai", "anthropic", "google", "mistral"]
    assert body["providers"]["openai"]["p95_latency_ms"] == 100
    assert body["recommendations"] == [
        {
            "provider": "openai",
            "message": "p95 latency is at least 1.25x its window p95 (100 ms) during UTC hours 11",
            "action": "Consider routing latency-sensitive traffic to google during these hours",
        }
    ]


# ---------------------------------------------------------------- daily


def test_daily_lists_empty_days_and_trends_exclude_today() -> None:
    calls = [
        call(created_at=at(2024, 3, 7), cost_usd=Decimal("0.30"), quality_score=0.8),
        # 2024-03-08: no calls
        call(created_at=at(2024, 3, 9, 0), cost_usd=Decimal("0.10"), quality_score=0.9,
             model="claude-haiku-4-5", task_type="code", latency_ms=100),
        call(created_at=at(2024, 3, 9, 1), cost_usd=Decimal("0.10"), quality_score=0.8,
             task_type="code", latency_ms=200),
        error("timeout", created_at=at(2024, 3, 9, 2), cost_usd=Decimal("0.10"),
              latency_ms=301),
        # today: would turn quality to declining if it were counted
        *[call(created_at=at(2024, 3, 10), quality_score=0.1) for _ in range(5)],
    ]  # fmt: skip
    body = ref.daily(calls, days=4, end_date=date(2024, 3, 10), today=date(2024, 3, 10))
    assert body["period"] == {"start_date": "2024-03-07", "end_date": "2024-03-10"}
    assert [d["date"] for d in body["daily_data"]] == [
        "2024-03-07",
        "2024-03-08",
        "2024-03-09",
        "2024-03-10",
    ]
    assert body["daily_data"][1] == answers.empty_day("2024-03-08")
    # 3 calls; latency 601 / 3 = 200.33 -> 200; 2 of 3 succeeded -> 0.667
    assert body["daily_data"][2] == {
        "date": "2024-03-09",
        "total_calls": 3,
        "total_cost_usd": 0.3,
        "avg_latency_ms": 200,
        "success_rate": 0.667,
        "model_distribution": {"gpt-4o-mini": 2, "claude-haiku-4-5": 1},
        "task_distribution": {"code": 2, "extraction": 1},
    }
    # complete days 7, 8, 9: calls 1, 0, 3 -> slope ((-1)(-1/3) + (1)(5/3)) / 2 = 1,
    # mean 4/3 -> growth 0.75, increasing. cost 0.3, 0, 0.3 -> slope 0, stable.
    # quality: day 7 0.8, day 9 0.85 -> slope +0.025/day, improving.
    assert body["trends"] == {
        "calls_trend": "increasing",
        "cost_trend": "stable",
        "quality_trend": "improving",
        "avg_daily_growth": 0.75,
    }
    # a window ending before today uses every day: adding 03-10 (5 calls, cost 0.005,
    # quality 0.1) -> calls 1, 0, 3, 5: slope (-1.5)(-1.25) + (-0.5)(-2.25) + (0.5)(0.75)
    # + (1.5)(2.75) = 7.5 / 5 = 1.5, mean 2.25 -> 0.667; quality 0.8, 0.85, 0.1 -> declining
    body = ref.daily(calls, days=4, end_date=date(2024, 3, 10), today=date(2024, 3, 11))
    assert body["trends"]["avg_daily_growth"] == 0.667
    assert body["trends"]["quality_trend"] == "declining"


# ---------------------------------------------------------------- empty windows


def test_every_endpoint_on_an_empty_window() -> None:
    # calls exist, but only outside every window ending 2024-03-10 (days=1) / 12:00 (hours=1)
    calls = [call(created_at=at(2024, 2, 1)), call(created_at=at(2024, 3, 11, 0))]
    end_date = date(2024, 3, 10)
    expected = answers.empty_window("acct_test")
    assert ref.overview(calls, days=1, end_date=end_date) == expected["overview"]
    assert (
        ref.customer([], account_id="acct_test", settings=SETTINGS, days=1, end_date=end_date)
        == expected["customer"]
    )
    assert ref.performance(calls, days=1, end_date=end_date) == expected["performance"]
    assert ref.failures(calls, days=1, end_date=end_date) == expected["failures"]
    providers = ref.providers(calls, hours=1, end_time=at(2024, 3, 10, 12, 0))
    assert providers == expected["providers"]
    body = ref.daily(calls, days=2, end_date=end_date, today=end_date)
    assert body["daily_data"] == expected["daily"]["daily_data"]
    assert body["trends"] == expected["daily"]["trends"]


def test_windows_are_whole_utc_days() -> None:
    # a call at 23:30 at +02:00 on 03-11 is 21:30Z on 03-11 (outside); at -05:00 on 03-03
    # 22:00 it is 03:00Z on 03-04 (inside the 7 days ending 03-10)
    calls = [
        call(created_at=datetime(2024, 3, 11, 23, 30, tzinfo=timezone(timedelta(hours=2)))),
        call(created_at=datetime(2024, 3, 3, 22, 0, tzinfo=timezone(timedelta(hours=-5)))),
    ]
    assert ref.overview(calls, days=7, end_date=date(2024, 3, 10))["summary"]["total_calls"] == 1
