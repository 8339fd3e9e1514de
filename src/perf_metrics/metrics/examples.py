"""One example answer per endpoint for the OpenAPI schema: the published Metrics API
reference's examples (their shapes are the contract; their numbers are illustrative and do
not follow the formulas)."""

from typing import Any

EXAMPLES: dict[str, dict[str, Any]] = {
    "overview": {
        "period": {
            "start_date": "2024-01-01T00:00:00Z",
            "end_date": "2024-01-30T23:59:59Z",
            "timezone": "UTC",
            "days": 30,
        },
        "summary": {
            "total_calls": 45678,
            "total_cost_usd": 234.56,
            "avg_cost_per_call": 0.00514,
            "avg_latency_ms": 1245,
            "success_rate": 0.987,
            "total_attempts": 46411,
            "cost_per_successful_call": 0.0052,
        },
        "routing": {"accuracy": 0.923, "fallback_rate": 0.034, "retry_rate": 0.012},
        "models": {
            "gpt-4o-mini": {
                "calls": 23456,
                "percentage": 0.514,
                "avg_cost": 0.00234,
                "avg_latency_ms": 834,
            },
            "claude-sonnet-4-5": {
                "calls": 18234,
                "percentage": 0.399,
                "avg_cost": 0.00876,
                "avg_latency_ms": 1456,
            },
            "gpt-4o": {
                "calls": 3988,
                "percentage": 0.087,
                "avg_cost": 0.01234,
                "avg_latency_ms": 1876,
            },
        },
        "task_distribution": {
            "extraction": 0.34,
            "classification": 0.23,
            "summarization": 0.18,
            "reasoning": 0.12,
            "code": 0.08,
            "writing": 0.05,
        },
        "data_as_of": "2024-01-31T12:04:31Z",
    },
    "customer": {
        "account_id": "acct_abc123",
        "period": {
            "start_date": "2024-01-01T00:00:00+01:00",
            "end_date": "2024-01-30T23:59:59+01:00",
            "timezone": "Europe/Berlin",
        },
        "usage": {
            "total_calls": 12456,
            "total_tokens": 5678901,
            "total_cost_usd": 123.45,
            "avg_calls_per_day": 414,
        },
        "cost_analysis": {
            "current_month": 123.45,
            "previous_month": 156.78,
            "change_percentage": -21.2,
            "projected_month_end": 145.67,
            "vs_gpt4o_only": {
                "cost_if_gpt4o": 412.34,
                "savings_usd": 288.89,
                "savings_percentage": 70.1,
            },
            "vs_baseline": {
                "model": "claude-sonnet-4-5",
                "cost_if_baseline": 587.91,
                "savings_usd": 464.46,
                "savings_percentage": 79.0,
            },
            "budget": {
                "monthly_budget_usd": 140.0,
                "spent": 123.45,
                "remaining": 16.55,
                "status": "at_risk",
                "projected_exceed_date": "2024-01-31",
            },
        },
        "quality_preferences": {
            "cost_vs_quality_ratio": 0.65,
            "latency_sensitivity": 0.42,
            "preferred_models": ["gpt-4o-mini", "claude-sonnet-4-5"],
        },
        "task_profile": {
            "dominant_tasks": ["extraction", "classification"],
            "complexity_avg": 0.42,
            "task_overrides": {"reasoning": "claude-sonnet-4-5"},
        },
        "behavior_insights": {
            "peak_hours": [9, 10, 11, 14, 15, 16],
            "avg_conversation_length": 4.2,
            "retry_rate": 0.023,
            "cost_ceiling_hit_rate": 0.087,
        },
        "data_as_of": "2024-01-31T12:04:31Z",
    },
    "performance": {
        "period": {
            "start_date": "2024-01-24T00:00:00Z",
            "end_date": "2024-01-30T23:59:59Z",
            "timezone": "UTC",
        },
        "by_task_type": {
            "extraction": {
                "total_calls": 5678,
                "models": {
                    "gpt-4o-mini": {
                        "calls": 4234,
                        "success_rate": 0.987,
                        "avg_cost_usd": 0.00123,
                        "avg_latency_ms": 567,
                        "p50_latency_ms": 498,
                        "p95_latency_ms": 1320,
                        "quality_score": 0.92,
                    },
                    "claude-haiku-4-5": {
                        "calls": 1444,
                        "success_rate": 0.991,
                        "avg_cost_usd": 0.00098,
                        "avg_latency_ms": 423,
                        "p50_latency_ms": 377,
                        "p95_latency_ms": 980,
                        "quality_score": 0.94,
                    },
                },
                "optimal_model": "claude-haiku-4-5",
                "optimal_reason": "Best cost/quality balance for structured extraction",
            },
            "reasoning": {
                "total_calls": 1234,
                "models": {
                    "claude-sonnet-4-5": {
                        "calls": 987,
                        "success_rate": 0.956,
                        "avg_cost_usd": 0.00876,
                        "avg_latency_ms": 1876,
                        "p50_latency_ms": 1650,
                        "p95_latency_ms": 4120,
                        "quality_score": 0.95,
                    },
                    "gpt-4o": {
                        "calls": 247,
                        "success_rate": 0.943,
                        "avg_cost_usd": 0.01234,
                        "avg_latency_ms": 2134,
                        "p50_latency_ms": 1890,
                        "p95_latency_ms": 4870,
                        "quality_score": 0.93,
                    },
                },
                "optimal_model": "claude-sonnet-4-5",
                "optimal_reason": "Superior reasoning with better cost efficiency",
            },
        },
        "recommendations": [
            {
                "task_type": "extraction",
                "current_model": "gpt-4o-mini",
                "recommended_model": "claude-haiku-4-5",
                "potential_savings_usd": 14.23,
                "cost_change_usd": -14.23,
                "quality_improvement": 0.02,
            }
        ],
        "data_as_of": "2024-01-31T12:04:31Z",
    },
    "failures": {
        "period": {
            "start_date": "2024-01-24T00:00:00Z",
            "end_date": "2024-01-30T23:59:59Z",
            "timezone": "UTC",
        },
        "summary": {
            "total_failures": 234,
            "failure_rate": 0.013,
            "retries_succeeded": 156,
            "fallback_succeeded": 67,
            "unrecoverable": 11,
        },
        "by_failure_mode": {
            "format_violation": {
                "count": 89,
                "percentage": 0.38,
                "affected_models": ["gpt-4o-mini", "claude-haiku-4-5"],
                "common_triggers": ["complex JSON structures", "nested arrays"],
            },
            "refusal": {
                "count": 56,
                "percentage": 0.24,
                "affected_models": ["gpt-4o", "claude-sonnet-4-5"],
                "common_triggers": ["policy violations", "ambiguous requests"],
            },
            "hallucination": {
                "count": 34,
                "percentage": 0.15,
                "affected_models": ["gpt-4o-mini"],
                "common_triggers": ["data extraction from noise", "edge cases"],
            },
            "incomplete": {
                "count": 31,
                "percentage": 0.13,
                "affected_models": ["claude-haiku-4-5"],
                "common_triggers": ["max tokens exceeded", "complex outputs"],
            },
            "reasoning_error": {
                "count": 24,
                "percentage": 0.1,
                "affected_models": ["gpt-4o-mini"],
                "common_triggers": ["multi-step logic", "mathematical reasoning"],
            },
        },
        "by_model": {
            "gpt-4o-mini": {
                "total_calls": 8234,
                "failures": 123,
                "failure_rate": 0.015,
                "top_failure_modes": ["hallucination", "format_violation"],
            },
            "claude-sonnet-4-5": {
                "total_calls": 5678,
                "failures": 67,
                "failure_rate": 0.012,
                "top_failure_modes": ["refusal", "format_violation"],
            },
        },
        "mitigation_recommendations": [
            {
                "issue": "High format_violation rate for complex JSON",
                "recommendation": "Add schema validation to prompts",
                "expected_improvement": "40% reduction in failures",
            },
            {
                "issue": "Hallucinations in data extraction",
                "recommendation": "Use Claude Haiku for structured extraction",
                "expected_improvement": "60% reduction in hallucinations",
            },
        ],
        "data_as_of": "2024-01-31T12:04:31Z",
    },
    "providers": {
        "period": {
            "start_time": "2024-01-30T10:00:00Z",
            "end_time": "2024-01-31T10:00:00Z",
            "hours": 24,
        },
        "providers": {
            "openai": {
                "status": "operational",
                "uptime": 0.998,
                "avg_latency_ms": 1234,
                "p95_latency_ms": 2345,
                "p99_latency_ms": 3456,
                "error_rate": 0.002,
                "rate_limit_hits": 12,
                "incidents": [],
            },
            "anthropic": {
                "status": "operational",
                "uptime": 0.999,
                "avg_latency_ms": 1567,
                "p95_latency_ms": 2876,
                "p99_latency_ms": 4123,
                "error_rate": 0.001,
                "rate_limit_hits": 3,
                "incidents": [],
            },
        },
        "trends": {
            "openai": {
                "latency_trend": "stable",
                "error_trend": "improving",
                "vs_previous_period": {"latency_change": -0.05, "error_change": -0.43},
            },
            "anthropic": {
                "latency_trend": "stable",
                "error_trend": "stable",
                "vs_previous_period": {"latency_change": 0.02, "error_change": 0.0},
            },
        },
        "recommendations": [
            {
                "provider": "openai",
                "message": "Experiencing slightly elevated latency during peak hours (2-4pm UTC)",
                "action": "Consider using Anthropic for latency-sensitive tasks during this window",
            }
        ],
        "data_as_of": "2024-01-31T12:04:31Z",
    },
    "daily": {
        "period": {"start_date": "2024-01-01", "end_date": "2024-01-30", "timezone": "UTC"},
        "daily_data": [
            {
                "date": "2024-01-01",
                "total_calls": 456,
                "total_cost_usd": 2.34,
                "avg_latency_ms": 1234,
                "success_rate": 0.987,
                "model_distribution": {"gpt-4o-mini": 234, "claude-sonnet-4-5": 178, "gpt-4o": 44},
                "task_distribution": {
                    "extraction": 145,
                    "classification": 98,
                    "summarization": 76,
                    "reasoning": 54,
                    "code": 45,
                    "writing": 38,
                },
            },
            {
                "date": "2024-01-02",
                "total_calls": 523,
                "total_cost_usd": 2.87,
                "avg_latency_ms": 1187,
                "success_rate": 0.991,
                "model_distribution": {"gpt-4o-mini": 289, "claude-sonnet-4-5": 198, "gpt-4o": 36},
                "task_distribution": {
                    "extraction": 167,
                    "classification": 112,
                    "summarization": 89,
                    "reasoning": 61,
                    "code": 52,
                    "writing": 42,
                },
            },
        ],
        "trends": {
            "calls_trend": "increasing",
            "cost_trend": "stable",
            "quality_trend": "improving",
            "avg_daily_growth": 0.034,
        },
        "data_as_of": "2024-01-31T12:04:31Z",
    },
    "breakdown": {
        "period": {
            "start_date": "2024-01-01T00:00:00+01:00",
            "end_date": "2024-01-30T23:59:59+01:00",
            "timezone": "Europe/Berlin",
        },
        "group_by": "model",
        "totals": {
            "calls": 45678,
            "total_cost_usd": 234.56,
            "input_tokens": 41234567,
            "output_tokens": 9876543,
        },
        "groups": [
            {
                "value": "claude-sonnet-4-5",
                "calls": 9012,
                "total_cost_usd": 152.34,
                "cost_share": 0.649,
                "input_tokens": 12345678,
                "output_tokens": 3456789,
                "avg_cost_per_call": 0.0169,
                "avg_latency_ms": 1650,
                "success_rate": 0.981,
                "failure_rate": 0.034,
                "quality_score": 0.91,
            },
            {
                "value": "gpt-4o-mini",
                "calls": 27406,
                "total_cost_usd": 41.12,
                "cost_share": 0.175,
                "input_tokens": 20123456,
                "output_tokens": 4321098,
                "avg_cost_per_call": 0.0015,
                "avg_latency_ms": 780,
                "success_rate": 0.968,
                "failure_rate": 0.052,
                "quality_score": 0.84,
            },
        ],
        "has_more": True,
        "next_page": "eyJxIjoiMWYyZTNkNGM1YjZhNzk4OCIsImMiOiI0MS4xMiIsIm4iOjI3NDA2LCJ2IjoiZ3B0In0",
        "data_as_of": "2024-01-31T12:04:31Z",
    },
}
