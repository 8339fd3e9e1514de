"""GET /v1/metrics/daily: one entry per day of the window, empty days included, and trends
over the complete days."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date
from fractions import Fraction
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from perf_metrics.metrics import queries as q
from perf_metrics.metrics.numbers import largest_first, mean_ms, money, rate, rnd
from perf_metrics.metrics.query import DayQuery


def _slope(ys: Sequence[int | Fraction], xs: Sequence[int]) -> Fraction | None:
    """Least-squares slope of ys over xs, exact: (n Sxy - Sx Sy) / (n Sxx - Sx^2)."""
    n = len(ys)
    if n < 2:
        return None
    sx, sxx = sum(xs), sum(x * x for x in xs)
    denominator = n * sxx - sx * sx
    if denominator == 0:
        return None
    sy = sum(ys)
    sxy = sum(x * y for x, y in zip(xs, ys, strict=True))
    return Fraction(n * sxy - sx * sy) / denominator


def _growth(values: list[int]) -> Fraction | None:
    """Slope of the daily values over their mean (scale-free, so costs may come scaled)."""
    slope = _slope(values, range(len(values)))
    total = sum(values)
    if slope is None or total == 0:
        return None
    return slope * len(values) / total


def _direction(value: Fraction | None, threshold: Fraction, up: str, down: str) -> str:
    if value is None:
        return "stable"
    if value > threshold:
        return up
    if value < -threshold:
        return down
    return "stable"


async def answer(conn: AsyncConnection, query: DayQuery) -> dict[str, Any]:
    window, today = query.window, query.today
    assert today is not None, "a day query carries the day it was resolved on"
    day_rows = {r.day: r for r in await q.select_daily_rows(conn, query)}
    model_days: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    task_days: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in await q.select_daily_distributions(conn, query):
        if r.model is not None:
            model_days[r.day][r.model] += r.calls
        else:
            task_days[r.day][r.task_type] += r.calls

    series = []
    for day in window.dates():
        row = day_rows.get(day)
        calls = row.calls if row else 0
        models = model_days.get(day, {})
        tasks = task_days.get(day, {})
        series.append(
            {
                "date": day.isoformat(),
                "total_calls": calls,
                "total_cost_usd": money(row.cost_usd) if row else 0.0,
                "avg_latency_ms": mean_ms(row.latency_sum, calls) if row else None,
                "success_rate": rate(row.successes, calls) if row else None,
                "model_distribution": {m: models[m] for m in largest_first(models)},
                "task_distribution": {t: tasks[t] for t in largest_first(tasks)},
            }
        )

    complete = [d for d in window.dates() if d < today]
    calls_series = [day_rows[d].calls if d in day_rows else 0 for d in complete]
    # Growth is scale-free: costs as whole 1e-12 dollars keep the arithmetic in integers.
    cost_series = [int(day_rows[d].cost_usd.scaleb(12)) if d in day_rows else 0 for d in complete]
    quality_points = [
        (i, Fraction(day_rows[d].quality_sum) / day_rows[d].quality_n)
        for i, d in enumerate(complete)
        if d in day_rows and day_rows[d].quality_n
    ]
    growth = _growth(calls_series)
    quality_slope = _slope([y for _, y in quality_points], [x for x, _ in quality_points])
    return {
        "period": window.date_period(),
        "daily_data": series,
        "trends": {
            "calls_trend": _direction(growth, Fraction(1, 100), "increasing", "decreasing"),
            "cost_trend": _direction(
                _growth(cost_series), Fraction(1, 100), "increasing", "decreasing"
            ),
            "quality_trend": _direction(quality_slope, Fraction(1, 1000), "improving", "declining"),
            "avg_daily_growth": rnd(growth, 3),
        },
    }
