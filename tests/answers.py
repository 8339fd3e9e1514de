"""Cases worked out by hand that both the API's tests (test_metrics_cases.py) and the
reference's own checks (test_reference.py) run: the calls (built with each file's own
builders) and the answers, written once so that the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Build = Callable[..., dict[str, Any]]


def empty_day(day: str) -> dict[str, Any]:
    """A day without calls, as /v1/metrics/daily lists it."""
    return {
        "date": day,
        "total_calls": 0,
        "total_cost_usd": 0.0,
        "avg_latency_ms": None,
        "success_rate": None,
        "model_distribution": {},
        "task_distribution": {},
    }


def empty_window(account_id: str) -> dict[str, dict[str, Any]]:
    """Each endpoint's answer where no call falls in the window, by endpoint: days=1 ending
    2024-03-10 (daily: days=2), providers hours=1 ending 2024-03-10 12:00Z, default settings."""
    period = {"start_date": "2024-03-10T00:00:00Z", "end_date": "2024-03-10T23:59:59Z"}
    return {
        "overview": {
            "period": {**period, "days": 1},
            "summary": {
                "total_calls": 0,
                "total_cost_usd": 0.0,
                "avg_cost_per_call": None,
                "avg_latency_ms": None,
                "success_rate": None,
            },
            "routing": {"accuracy": None, "fallback_rate": None, "retry_rate": None},
            "models": {},
            "task_distribution": {},
        },
        "customer": {
            "account_id": account_id,
            "period": period,
            "usage": {
                "total_calls": 0,
                "total_tokens": 0,
                "total_cost_usd": 0.0,
                "avg_calls_per_day": 0.0,
            },
            "cost_analysis": {
                "current_month": 0.0,
                "previous_month": 0.0,
                "change_percentage": None,
                "projected_month_end": 0.0,
                "vs_gpt4o_only": {
                    "cost_if_gpt4o": 0.0,
                    "savings_usd": 0.0,
                    "savings_percentage": None,
                },
            },
            "quality_preferences": {
                "cost_vs_quality_ratio": 0.5,
                "latency_sensitivity": 0.5,
                "preferred_models": [],
            },
            "task_profile": {"dominant_tasks": [], "complexity_avg": None, "task_overrides": {}},
            "behavior_insights": {
                "peak_hours": [],
                "avg_conversation_length": None,
                "retry_rate": None,
                "cost_ceiling_hit_rate": None,
            },
        },
        "performance": {"period": period, "by_task_type": {}, "recommendations": []},
        "failures": {
            "period": period,
            "summary": {
                "total_failures": 0,
                "failure_rate": None,
                "retries_succeeded": 0,
                "fallback_succeeded": 0,
                "unrecoverable": 0,
            },
            "by_failure_mode": {},
            "by_model": {},
            "mitigation_recommendations": [],
        },
        "providers": {
            "period": {
                "start_time": "2024-03-10T11:00:00Z",
                "end_time": "2024-03-10T12:00:00Z",
                "hours": 1,
            },
            "providers": {},
            "trends": {},
            "recommendations": [],
        },
        "daily": {
            "period": {"start_date": "2024-03-09", "end_date": "2024-03-10"},
            "daily_data": [empty_day("2024-03-09"), empty_day("2024-03-10")],
            "trends": {  # two complete days, mean 0 -> growth null -> stable
                "calls_trend": "stable",
                "cost_trend": "stable",
                "quality_trend": "stable",
                "avg_daily_growth": None,
            },
        },
    }


def failures_log(call: Build, error: Build, retried: Build) -> list[dict[str, Any]]:
    """55 calls on the builders' default day (2024-03-10) whose failures touch every part of
    the failures answer; `call`, `error(mode)` and `retried(mode)` build them in either form."""
    mini = {"model": "gpt-4o-mini", "provider": "openai", "task_type": "extraction"}
    to_haiku = {
        "initial_model": "gpt-4o-mini",
        "initial_provider": "openai",
        "model": "claude-haiku-4-5",
        "provider": "anthropic",
        "task_type": "extraction",
    }
    haiku = {"model": "claude-haiku-4-5", "provider": "anthropic", "task_type": "extraction"}
    sonnet = {"model": "claude-sonnet-4-5", "provider": "anthropic", "task_type": "code"}
    return [
        # first choice mini, extraction: 30 calls, 10 format violations
        *[retried("format_violation", failure_trigger="nested arrays", **mini) for _ in range(5)],
        retried("format_violation", failure_trigger="long schema", **mini),
        *[call(failure_mode="format_violation", recovery="fallback", fallback_used=True,
               failure_trigger="long schema", **to_haiku) for _ in range(2)],
        *[call(failure_mode="format_violation", recovery="fallback", fallback_used=True,
               **to_haiku) for _ in range(2)],
        *[call(**mini) for _ in range(20)],
        # first choice haiku, extraction: 20 calls, 1 unrecoverable format violation
        error("format_violation", failure_trigger="long schema", **haiku),
        *[call(**haiku) for _ in range(19)],
        # first choice sonnet, code: 5 calls, a refusal (error) and a retried timeout
        error("refusal", failure_trigger="policy", **sonnet),
        retried("timeout", **sonnet),
        *[call(**sonnet) for _ in range(3)],
    ]  # fmt: skip


# /v1/metrics/failures over the 7 days ending 2024-03-10 of `failures_log`.
FAILURES_ANSWER: dict[str, Any] = {
    # 13 failures of 55 = 0.23636 -> 0.236; retries 6 + 1 = 7; fallbacks 4; errors 2;
    # 7 + 4 + 2 = 13
    "summary": {
        "total_failures": 13,
        "failure_rate": 0.236,
        "retries_succeeded": 7,
        "fallback_succeeded": 4,
        "unrecoverable": 2,
    },
    # format_violation 11 (first choice mini 10 = 91%, haiku 1 = 9% < 10%: not affected);
    # refusal 1 and timeout 1 (tie by name); 11/13 = 0.846, 1/13 = 0.0769 -> 0.077.
    # triggers: nested arrays 5, long schema 1 + 2 + 1 = 4
    "by_failure_mode": {
        "format_violation": {
            "count": 11,
            "percentage": 0.846,
            "affected_models": ["gpt-4o-mini"],
            "common_triggers": ["nested arrays", "long schema"],
        },
        "refusal": {
            "count": 1,
            "percentage": 0.077,
            "affected_models": ["claude-sonnet-4-5"],
            "common_triggers": ["policy"],
        },
        "timeout": {
            "count": 1,
            "percentage": 0.077,
            "affected_models": ["claude-sonnet-4-5"],
            "common_triggers": [],
        },
    },
    # first-choice models: mini 30 calls / 10 failures, sonnet 5 / 2, haiku 20 / 1
    "by_model": {
        "gpt-4o-mini": {
            "total_calls": 30,
            "failures": 10,
            "failure_rate": 0.333,
            "top_failure_modes": ["format_violation"],
        },
        "claude-sonnet-4-5": {
            "total_calls": 5,
            "failures": 2,
            "failure_rate": 0.4,
            "top_failure_modes": ["refusal", "timeout"],
        },
        "claude-haiku-4-5": {
            "total_calls": 20,
            "failures": 1,
            "failure_rate": 0.05,
            "top_failure_modes": ["format_violation"],
        },
    },
    # format_violation: 11 >= 10, mini holds 10/11 (91%) >= 50%; T = {extraction};
    # rate(mini) = 10/30 = 33.3%; haiku has 20 first-choice extraction calls, 1/20 = 5.0%;
    # 1 - 0.05 / (1/3) = 0.85 -> 85%. refusal and timeout: fewer than 10 failures.
    "mitigation_recommendations": [
        {
            "issue": "format_violation failures concentrate on gpt-4o-mini: 10 of 11 (91%)",
            "recommendation": (
                "Route extraction tasks from gpt-4o-mini to claude-haiku-4-5: its "
                "format_violation rate there is 5.0% against 33.3%"
            ),
            "expected_improvement": "85% fewer format_violation failures on those tasks",
        }
    ],
}


def openai_incident_intervals(
    interval: Callable[..., list[dict[str, Any]]],
) -> list[dict[str, Any]]:
    """openai's first-choice traffic in the hour 11:00 <= t < 12:00 on 2024-03-10, by 5-minute
    interval: `interval(minute, calls, errors[, mode])` builds one (latency is the caller's)."""
    return [
        *interval(0, 9, 9, "rate_limited"),  # rate 1.0 but only 9 calls: no incident
        *interval(10, 10, 3),  # 0.3 \ incident 1: 11:10 - 11:20, peak 0.3, 6 failed
        *interval(15, 10, 3, "timeout"),  # 0.3 /
        *interval(20, 10, 0),
        *interval(45, 10, 4),  # 0.4 \
        *interval(50, 10, 5),  # 0.5  > incident 2 reaches the last interval: ended_at null,
        *interval(55, 10, 3),  # 0.3 /  peak 0.5, 12 failed
    ]


# Those intervals' incidents (>= 10 first-choice calls and an error rate >= 0.25, in runs).
OPENAI_INCIDENTS = [
    {
        "started_at": "2024-03-10T11:10:00Z",
        "ended_at": "2024-03-10T11:20:00Z",
        "peak_error_rate": 0.3,
        "affected_calls": 6,
    },
    {
        "started_at": "2024-03-10T11:45:00Z",
        "ended_at": None,
        "peak_error_rate": 0.5,
        "affected_calls": 12,
    },
]


# customer, 30 days ending on the leap day 2024-02-29: (day, cost) of calls of 1,000,000 input
# tokens ($2.50 at gpt-4o) and 100,000 output ($1.00), $3.50 each at gpt-4o.
LEAP_DAY_COSTS = [
    ((2024, 1, 1), "1.00"),
    ((2024, 1, 29), "2.00"),  # Jan 29 <= min(29, 31): in P, compared with Feb 1..29
    ((2024, 1, 30), "4.00"),
    ((2024, 1, 31), "8.00"),  # first day of the 30-day window
    ((2024, 2, 1), "0.50"),
    ((2024, 2, 22), "0.70"),  # first of the 7 days before the 29th (22..28)
    ((2024, 2, 28), "0.70"),
    ((2024, 2, 29), "3.00"),  # today
    ((2024, 3, 1), "100.00"),  # after end_date: ignored everywhere
]
LEAP_DAY_ANSWER: dict[str, Any] = {
    # 30 days ending on the leap day: Jan 31 + Feb 1..29
    "period": {"start_date": "2024-01-31T00:00:00Z", "end_date": "2024-02-29T23:59:59Z"},
    # window: 5 calls, 8 + 0.5 + 0.7 + 0.7 + 3 = 12.90; 5 x 1.1M tokens; 5 / 30 = 0.17 -> 0.2
    "usage": {
        "total_calls": 5,
        "total_tokens": 5_500_000,
        "total_cost_usd": 12.9,
        "avg_calls_per_day": 0.2,
    },
    # current Feb 1..29 = 0.5 + 0.7 + 0.7 + 3 = 4.90; previous = January = 15.00;
    # P = Jan 1..29 = 3.00; change = 100 x 1.90 / 3 = 63.33 -> 63.3;
    # projected = Feb 1..28 (1.90) + (0.7 + 0.7) / 7 x 1 day left = 1.90 + 0.20 = 2.10;
    # gpt-4o: 5 x 3.50 = 17.50; savings 17.50 - 12.90 = 4.60 = 26.29% -> 26.3
    "cost_analysis": {
        "current_month": 4.9,
        "previous_month": 15.0,
        "change_percentage": 63.3,
        "projected_month_end": 2.1,
        "vs_gpt4o_only": {"cost_if_gpt4o": 17.5, "savings_usd": 4.6, "savings_percentage": 26.3},
    },
}
