"""GET /v1/metrics/overview: totals, rates and shares over a window of days."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from perf_metrics.metrics import queries as q
from perf_metrics.metrics.aggregates import by_model, task_calls
from perf_metrics.metrics.numbers import largest_first, mean_ms, money, per_call_money, rate
from perf_metrics.metrics.query import DayQuery


async def answer(conn: AsyncConnection, query: DayQuery) -> dict[str, Any]:
    window = query.window
    totals = await q.select_account_totals(conn, query)
    model_rows = await q.select_model_totals(conn, query)
    models = by_model(model_rows)
    tasks = task_calls(model_rows)
    n = totals.calls
    return {
        "period": {**window.period(), "days": window.days},
        "summary": {
            "total_calls": n,
            "total_cost_usd": money(totals.cost_usd),
            "avg_cost_per_call": per_call_money(totals.cost_usd, n),
            "avg_latency_ms": mean_ms(totals.latency_sum, n),
            "success_rate": rate(totals.successes, n),
            "total_attempts": totals.attempts,
            "cost_per_successful_call": per_call_money(totals.cost_usd, totals.successes),
        },
        "routing": {
            "accuracy": rate(totals.routed_right, n),
            "fallback_rate": rate(totals.fallbacks, n),
            "retry_rate": rate(totals.retried, n),
        },
        "models": {
            name: {
                "calls": models[name].calls,
                "percentage": rate(models[name].calls, n),
                "avg_cost": per_call_money(models[name].cost, models[name].calls),
                "avg_latency_ms": mean_ms(models[name].latency_sum, models[name].calls),
            }
            for name in largest_first({m: s.calls for m, s in models.items()})
        },
        "task_distribution": {task: rate(tasks[task], n) for task in largest_first(tasks)},
    }
