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


_call = reference_call.but(call_ids=(f"c{n}" for n in itertools.count(1)))


def call(**fields: Any) -> dict[str, Any]:
    """A valid, successful call record with every SPEC section 2 key; override as needed.
    `cost_usd` may be a decimal string, as tests/answers.py writes costs."""
    if isinstance(fields.get("cost_usd"), str):
        fields["cost_usd"] = Decimal(fields["cost_usd"])
    return _call(**fields)


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
    calls = answers.four_routed_calls(call, retried)
    body = ref.overview(calls, days=7, end_date=date(2024, 3, 10))
    expected = answers.FOUR_ROUTED_ANSWER
    assert body["period"] == expected["period"]
    assert body["summary"] == expected["summary"]
    assert body["routing"] == expected["routing"]
    assert list(body["models"]) == ["gpt-4o-mini", "claude-haiku-4-5", "claude-sonnet-4-5"]
    assert body["models"]["gpt-4o-mini"] == expected["models"]["gpt-4o-mini"]
    assert body["models"]["claude-sonnet-4-5"] == expected["models"]["claude-sonnet-4-5"]
    # code 0.5, extraction 0.25, writing 0.25, in that order
    assert list(body["task_distribution"].items()) == list(expected["task_distribution"].items())


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
    calls = answers.first_of_march_calls(call)
    body = ref.customer(
        calls, account_id="acct_test", settings=SETTINGS, days=1, end_date=date(2024, 3, 1)
    )
    ca = body["cost_analysis"]
    expected = answers.FIRST_OF_MARCH_ANSWER  # its four fields; vs_gpt4o_only is not checked
    assert {field: ca[field] for field in expected} == expected


def test_customer_peak_hours_profile_and_preferences() -> None:
    per_hour = answers.PEAK_HOURS_PER_HOUR
    calls = [
        call(created_at=at(2024, 3, 10, h, i), model="gpt-4o-mini")
        for h, n in per_hour.items()
        for i in range(n)
    ]
    assert len(calls) == 96
    body = ref.customer(
        calls, account_id="acct_test", settings=SETTINGS, days=7, end_date=date(2024, 3, 10)
    )
    expected = answers.PEAK_HOURS_ANSWER
    assert body["behavior_insights"]["peak_hours"] == expected["peak_hours"]
    assert body["usage"]["avg_calls_per_day"] == expected["avg_calls_per_day"]

    mini, haiku, sonnet = (
        {"model": "gpt-4o-mini"},
        {"model": "claude-haiku-4-5"},
        {"model": "claude-sonnet-4-5"},
    )
    calls = answers.profile_log(call, retried, mini, haiku, sonnet)
    settings = {**SETTINGS, "task_overrides": {"reasoning": "claude-sonnet-4-5"}}
    body = ref.customer(
        calls, account_id="acct_x", settings=settings, days=7, end_date=date(2024, 3, 10)
    )
    assert body["account_id"] == "acct_x"
    expected = answers.PROFILE_ANSWER
    assert body["quality_preferences"] == expected["quality_preferences"]
    assert body["task_profile"] == expected["task_profile"]
    assert body["behavior_insights"] == expected["behavior_insights"]
    # an explicit setting is echoed even without calls of that model
    explicit = {**SETTINGS, "preferred_models": ["gpt-4o"]}
    body = ref.customer(
        calls, account_id="acct_x", settings=explicit, days=7, end_date=date(2024, 3, 10)
    )
    assert body["quality_preferences"]["preferred_models"] == ["gpt-4o"]


def test_dominant_tasks_fall_back_to_the_largest() -> None:
    sizes = answers.NO_DOMINANT_TASK_SIZES
    calls = [call(task_type=t) for t, n in sizes.items() for _ in range(n)]
    body = ref.customer(
        calls, account_id="acct_test", settings=SETTINGS, days=7, end_date=date(2024, 3, 10)
    )
    assert body["task_profile"]["dominant_tasks"] == answers.NO_DOMINANT_TASK_ANSWER


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
        "p50_latency_ms": 500,
        "p95_latency_ms": 500,
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
    google, anthropic = {"provider": "google", "model": "gemini"}, {"provider": "anthropic"}
    calls = answers.provider_trend_calls(call, error, google, anthropic)
    body = ref.providers(calls, hours=1, end_time=end)
    expected = answers.PROVIDER_TRENDS
    assert list(body["trends"]) == ["google", "openai", "anthropic"]  # 10, 10 (by name), 1
    assert body["trends"]["google"] == expected["google"]
    assert body["trends"]["openai"] == expected["openai"]
    assert (
        body["trends"]["anthropic"]["vs_previous_period"]
        == expected["anthropic"]["vs_previous_period"]
    )


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
    calls = answers.daily_log(call, error, {"model": "claude-haiku-4-5"})
    body = ref.daily(calls, days=4, end_date=date(2024, 3, 10), today=date(2024, 3, 10))
    expected = answers.DAILY_ANSWER
    assert body["period"] == expected["period"]
    assert [d["date"] for d in body["daily_data"]] == [
        "2024-03-07",
        "2024-03-08",
        "2024-03-09",
        "2024-03-10",
    ]
    assert body["daily_data"][1] == expected["daily_data"][1]
    assert body["daily_data"][2] == expected["daily_data"][2]
    assert body["trends"] == expected["trends"]
    # a window ending before today uses every day
    body = ref.daily(calls, days=4, end_date=date(2024, 3, 10), today=date(2024, 3, 11))
    later = expected["trends_a_day_later"]
    assert body["trends"]["avg_daily_growth"] == later["avg_daily_growth"]
    assert body["trends"]["quality_trend"] == later["quality_trend"]


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
