"""Answers worked out by hand that both the API's cases (test_metrics_cases.py) and the
reference's own checks (test_reference.py) expect, written once so that the two cannot drift.
"""

from __future__ import annotations

from typing import Any


def empty_window(account_id: str) -> dict[str, dict[str, Any]]:
    """Each endpoint's answer where no call falls in the window, by endpoint: days=1 ending
    2024-03-10 (daily: days=2), providers hours=1 ending 2024-03-10 12:00Z, default settings."""
    period = {"start_date": "2024-03-10T00:00:00Z", "end_date": "2024-03-10T23:59:59Z"}
    empty_day: dict[str, Any] = {
        "total_calls": 0,
        "total_cost_usd": 0.0,
        "avg_latency_ms": None,
        "success_rate": None,
        "model_distribution": {},
        "task_distribution": {},
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
            "daily_data": [{"date": d, **empty_day} for d in ("2024-03-09", "2024-03-10")],
            "trends": {  # two complete days, mean 0 -> growth null -> stable
                "calls_trend": "stable",
                "cost_trend": "stable",
                "quality_trend": "stable",
                "avg_daily_growth": None,
            },
        },
    }
