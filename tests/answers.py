"""Cases worked out by hand that both the API's tests (test_metrics_cases.py) and the
reference's own checks (test_reference.py) run: the calls (built with each file's own
builders) and the answers, written once so that the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tests.factories import at
from tests.reference import DATA_AS_OF

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
    period = {
        "start_date": "2024-03-10T00:00:00Z",
        "end_date": "2024-03-10T23:59:59Z",
        "timezone": "UTC",
    }
    return {
        "overview": {
            "period": {**period, "days": 1},
            "summary": {
                "total_calls": 0,
                "total_cost_usd": 0.0,
                "avg_cost_per_call": None,
                "avg_latency_ms": None,
                "success_rate": None,
                "total_attempts": 0,
                "cost_per_successful_call": None,
            },
            "routing": {"accuracy": None, "fallback_rate": None, "retry_rate": None},
            "models": {},
            "task_distribution": {},
            "data_as_of": DATA_AS_OF,
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
                "vs_baseline": {
                    "model": "gpt-4o",
                    "cost_if_baseline": 0.0,
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
            "data_as_of": DATA_AS_OF,
        },
        "performance": {
            "period": period,
            "by_task_type": {},
            "recommendations": [],
            "data_as_of": DATA_AS_OF,
        },
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
            "data_as_of": DATA_AS_OF,
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
            "data_as_of": DATA_AS_OF,
        },
        "daily": {
            "period": {"start_date": "2024-03-09", "end_date": "2024-03-10", "timezone": "UTC"},
            "daily_data": [empty_day("2024-03-09"), empty_day("2024-03-10")],
            "trends": {  # two complete days, mean 0 -> growth null -> stable
                "calls_trend": "stable",
                "cost_trend": "stable",
                "quality_trend": "stable",
                "avg_daily_growth": None,
            },
            "data_as_of": DATA_AS_OF,
        },
    }


def four_routed_calls(call: Build, retried: Build) -> list[dict[str, Any]]:
    """Four calls in the 7 days 2024-03-04..2024-03-10, three of them routed right, and two
    just outside; costs are decimal strings, which each file's `call` takes."""
    return [
        # routed right: no failure, quality 0.9
        call(model="gpt-4o-mini", task_type="extraction", cost_usd="0.001", latency_ms=100,
             quality_score=0.9),
        # routed right: no failure, no quality score; the first second of the window
        call(model="gpt-4o-mini", task_type="code", cost_usd="0.002", latency_ms=200,
             created_at=at(2024, 3, 4, 0, 0, 0)),
        # routed right: quality exactly 0.7 counts
        call(model="claude-haiku-4-5", provider="anthropic", task_type="code",
             cost_usd="0.00302", latency_ms=300, quality_score=0.7),
        # not routed right: a failure (rescued by a retry) despite quality 0.95
        retried("format_violation", model="claude-sonnet-4-5", provider="anthropic",
                task_type="writing", cost_usd="0.004", latency_ms=402, quality_score=0.95),
        # outside the window 2024-03-04..2024-03-10: last second of 03-03, first of 03-11
        call(created_at=at(2024, 3, 3, 23, 59, 59), cost_usd="9"),
        call(created_at=at(2024, 3, 11, 0, 0, 0), cost_usd="9"),
    ]  # fmt: skip


# /v1/metrics/overview over the 7 days ending 2024-03-10 of `four_routed_calls`.
# cost 0.001 + 0.002 + 0.00302 + 0.004 = 0.01002 -> 0.01; per call 0.002505 -> 0.00251
# (half-up); latency (100 + 200 + 300 + 402) / 4 = 250.5 -> 251; all 4 succeeded, so the
# cost per successful call is the cost per call; attempts 4 + the one retry = 5.
# routing: 3 of 4 routed right = 0.75; no fallback; 1 of 4 retried = 0.25.
# models: mini 2 (0.001 + 0.002) / 2 = 0.0015, (100 + 200) / 2 = 150; haiku and sonnet
# 1 each (tie by name). tasks: code 2, extraction 1, writing 1 (tie by name).
FOUR_ROUTED_ANSWER: dict[str, Any] = {
    "period": {
        "start_date": "2024-03-04T00:00:00Z",
        "end_date": "2024-03-10T23:59:59Z",
        "timezone": "UTC",
        "days": 7,
    },
    "summary": {
        "total_calls": 4,
        "total_cost_usd": 0.01,
        "avg_cost_per_call": 0.00251,
        "avg_latency_ms": 251,
        "success_rate": 1.0,
        "total_attempts": 5,
        "cost_per_successful_call": 0.00251,
    },
    "routing": {"accuracy": 0.75, "fallback_rate": 0.0, "retry_rate": 0.25},
    "models": {
        "gpt-4o-mini": {
            "calls": 2,
            "percentage": 0.5,
            "avg_cost": 0.0015,
            "avg_latency_ms": 150,
        },
        "claude-haiku-4-5": {
            "calls": 1,
            "percentage": 0.25,
            "avg_cost": 0.00302,
            "avg_latency_ms": 300,
        },
        "claude-sonnet-4-5": {
            "calls": 1,
            "percentage": 0.25,
            "avg_cost": 0.004,
            "avg_latency_ms": 402,
        },
    },
    "task_distribution": {"code": 0.5, "extraction": 0.25, "writing": 0.25},
    "data_as_of": DATA_AS_OF,
}


def first_of_march_calls(call: Build) -> list[dict[str, Any]]:
    """customer, end_date 2024-03-01 (days=1): February's costs and one call on the 1st."""
    return [
        call(created_at=at(2024, 2, 22), cost_usd="7.00"),  # 8 days before: not in R
        call(created_at=at(2024, 2, 23), cost_usd="0.70"),
        call(created_at=at(2024, 2, 29), cost_usd="0.70"),
        call(created_at=at(2024, 3, 1, 23, 59, 59), cost_usd="5.00"),
    ]


# Their cost_analysis (vs_gpt4o_only aside): nothing of March before today;
# R = Feb 23..29 = (0.70 + 0.70) / 7 = 0.20; 31 days left counting today -> 6.20.
# P = February's day 1 only = 0 -> change null. previous = 7 + 0.7 + 0.7 = 8.40
FIRST_OF_MARCH_ANSWER: dict[str, Any] = {
    "current_month": 5.0,
    "previous_month": 8.4,
    "change_percentage": None,
    "projected_month_end": 6.2,
}


# customer over the 7 days ending 2024-03-10 of so many calls (on the builders' defaults) in
# each UTC hour of 2024-03-10. 96 calls: threshold 1.25 x 96 / 24 = 5 calls.
# hour 9: 5 (exactly the threshold -> peak), hour 20: 6 (peak), hour 3: 1,
# the 21 other hours: 4 each (not peak). 5 + 6 + 1 + 84 = 96.
PEAK_HOURS_PER_HOUR = {h: 4 for h in range(24)} | {9: 5, 20: 6, 3: 1}
PEAK_HOURS_ANSWER: dict[str, Any] = {
    "peak_hours": [9, 20],
    "avg_calls_per_day": 13.7,  # 96 / 7 = 13.71
}


def profile_log(
    call: Build,
    retried: Build,
    mini: Mapping[str, Any],
    haiku: Mapping[str, Any],
    sonnet: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """10 calls of one account at the builders' default moment (2024-03-10 12:00Z):
    extraction 5 (mini), code 2 (haiku), writing 2 + reasoning 1 (sonnet); `mini`, `haiku`
    and `sonnet` are the fields (model, provider, account) each caller gives those calls."""
    return [
        call(task_type="extraction", complexity_score=0.1, message_count=3, **mini),
        call(task_type="extraction", complexity_score=0.2, message_count=4, **mini),
        call(task_type="extraction", complexity_score=0.25, message_count=4, **mini),
        call(task_type="extraction", message_count=4, cost_ceiling_hit=True, **mini),
        retried("refusal", task_type="extraction", **mini),
        call(task_type="code", **haiku),
        retried("timeout", task_type="code", **haiku),
        call(task_type="writing", **sonnet),
        call(task_type="writing", **sonnet),
        call(task_type="reasoning", **sonnet),
    ]


# customer over the 7 days ending 2024-03-10 of `profile_log`, for an account whose settings
# are the defaults but task_overrides {"reasoning": "claude-sonnet-4-5"}.
PROFILE_ANSWER: dict[str, Any] = {
    # no preferred models set: the two with most calls (mini 5, sonnet 3; haiku 2)
    "quality_preferences": {
        "cost_vs_quality_ratio": 0.5,
        "latency_sensitivity": 0.5,
        "preferred_models": ["gpt-4o-mini", "claude-sonnet-4-5"],
    },
    # extraction 50%, code 20%, writing 20% (tie by name), reasoning 10% (< 20%);
    # complexity (0.1 + 0.2 + 0.25) / 3 = 0.18333 -> 0.183
    "task_profile": {
        "dominant_tasks": ["extraction", "code", "writing"],
        "complexity_avg": 0.183,
        "task_overrides": {"reasoning": "claude-sonnet-4-5"},
    },
    # messages (3 + 4 + 4 + 4) / 4 = 3.75 -> 3.8 (half-up); retries 2 / 10; ceiling 1 / 10;
    # all 10 calls at 12:00: 10 >= 1.25 x 10 / 24 -> [12]
    "behavior_insights": {
        "peak_hours": [12],
        "avg_conversation_length": 3.8,
        "retry_rate": 0.2,
        "cost_ceiling_hit_rate": 0.1,
    },
}


# customer over the 7 days ending 2024-03-10 of so many calls of each task type (on the
# builders' default day): 3, 3, 3, 3, 2, 2 calls of 16, none reaches 20% (3.2 calls) -> the
# largest, ties by name -> code.
NO_DOMINANT_TASK_SIZES = {
    "code": 3,
    "extraction": 3,
    "reasoning": 3,
    "writing": 3,
    "classification": 2,
    "summarization": 2,
}
NO_DOMINANT_TASK_ANSWER = ["code"]


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


def provider_trend_calls(
    call: Build, error: Build, google: Mapping[str, Any], anthropic: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Calls at 11:30 and 10:30 on 2024-03-10: providers hours=1 ending 12:00 and the hour
    before it. `google` and `anthropic` are the fields (provider, model) of those calls."""
    now, before = at(2024, 3, 10, 11, 30), at(2024, 3, 10, 10, 30)
    return [
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


# Their trends, by provider served in the window: 10, 10 (by name), 1.
PROVIDER_TRENDS: dict[str, Any] = {
    "google": {
        "latency_trend": "degrading",  # (550 - 500) / 500 = +0.10
        "error_trend": "stable",  # previous error rate 0 -> change null
        "vs_previous_period": {"latency_change": 0.1, "error_change": None},
    },
    "openai": {
        "latency_trend": "improving",  # -0.05 exactly counts
        "error_trend": "improving",  # (0.1 - 0.2) / 0.2 = -0.5
        "vs_previous_period": {"latency_change": -0.05, "error_change": -0.5},
    },
    "anthropic": {
        "latency_trend": "stable",
        "error_trend": "stable",
        "vs_previous_period": {"latency_change": None, "error_change": None},
    },
}


def daily_log(call: Build, error: Build, haiku: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Calls on 2024-03-07, 09 and 10 (none on 08), for daily days=4 ending 2024-03-10;
    `haiku` is the fields (model, provider) of the one claude-haiku-4-5 call."""
    return [
        call(created_at=at(2024, 3, 7), cost_usd="0.30", quality_score=0.8),
        # 2024-03-08: no calls
        call(created_at=at(2024, 3, 9, 0), cost_usd="0.10", quality_score=0.9, task_type="code",
             latency_ms=100, **haiku),
        call(created_at=at(2024, 3, 9, 1), cost_usd="0.10", quality_score=0.8,
             task_type="code", latency_ms=200),
        error("timeout", created_at=at(2024, 3, 9, 2), cost_usd="0.10", latency_ms=301),
        # today: would turn quality to declining if it were counted
        *[call(created_at=at(2024, 3, 10), quality_score=0.1) for _ in range(5)],
    ]  # fmt: skip


# daily, days=4 ending 2024-03-10 of `daily_log`, on 2024-03-10 (today) and, under
# "a_day_later", on 2024-03-11.
DAILY_ANSWER: dict[str, Any] = {
    "period": {"start_date": "2024-03-07", "end_date": "2024-03-10", "timezone": "UTC"},
    # 3 calls on 03-09: latency 601 / 3 = 200.33 -> 200; 2 of 3 succeeded -> 0.667;
    # today: 5 x 0.001 = 0.005 -> 0.01 (half-up)
    "daily_data": [
        {
            "date": "2024-03-07",
            "total_calls": 1,
            "total_cost_usd": 0.3,
            "avg_latency_ms": 500,
            "success_rate": 1.0,
            "model_distribution": {"gpt-4o-mini": 1},
            "task_distribution": {"extraction": 1},
        },
        empty_day("2024-03-08"),
        {
            "date": "2024-03-09",
            "total_calls": 3,
            "total_cost_usd": 0.3,
            "avg_latency_ms": 200,
            "success_rate": 0.667,
            "model_distribution": {"gpt-4o-mini": 2, "claude-haiku-4-5": 1},
            "task_distribution": {"code": 2, "extraction": 1},
        },
        {
            "date": "2024-03-10",
            "total_calls": 5,
            "total_cost_usd": 0.01,
            "avg_latency_ms": 500,
            "success_rate": 1.0,
            "model_distribution": {"gpt-4o-mini": 5},
            "task_distribution": {"extraction": 5},
        },
    ],
    # complete days 7, 8, 9: calls 1, 0, 3 -> slope ((-1)(-1/3) + (1)(5/3)) / 2 = 1,
    # mean 4/3 -> growth 0.75, increasing. cost 0.3, 0, 0.3 -> slope 0, stable.
    # quality: day 7 0.8, day 9 (0.9 + 0.8) / 2 = 0.85 -> +0.025/day, improving.
    "trends": {
        "calls_trend": "increasing",
        "cost_trend": "stable",
        "quality_trend": "improving",
        "avg_daily_growth": 0.75,
    },
    # a day later, the same window is complete: calls 1, 0, 3, 5: slope
    # ((-1.5)(-1.25) + (-0.5)(-2.25) + (0.5)(0.75) + (1.5)(2.75)) / 5 = 7.5 / 5 = 1.5,
    # mean 2.25 -> 0.667; cost 0.3, 0, 0.3, 0.005: slope -0.2925 / 5 < 0 -> decreasing;
    # quality 0.8 (x=0), 0.85 (x=2), 0.1 (x=3) -> negative slope, declining
    "trends_a_day_later": {
        "calls_trend": "increasing",
        "cost_trend": "decreasing",
        "quality_trend": "declining",
        "avg_daily_growth": 0.667,
    },
}


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
    "period": {
        "start_date": "2024-01-31T00:00:00Z",
        "end_date": "2024-02-29T23:59:59Z",
        "timezone": "UTC",
    },
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
        # the default baseline is gpt-4o: the same figures
        "vs_baseline": {
            "model": "gpt-4o",
            "cost_if_baseline": 17.5,
            "savings_usd": 4.6,
            "savings_percentage": 26.3,
        },
    },
}
