"""GET /v1/metrics/performance: per task type and served model, the optimal model per task
and recommendations to switch."""

from __future__ import annotations

from collections import defaultdict
from fractions import Fraction
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncConnection

from perf_metrics import histogram
from perf_metrics.metrics import queries as q
from perf_metrics.metrics.aggregates import ModelStats
from perf_metrics.metrics.histogram_cache import HistogramCache
from perf_metrics.metrics.numbers import largest_first, mean_ms, money, per_call_money, rate, rnd
from perf_metrics.metrics.query import DayQuery

ELIGIBLE_SCORED_CALLS = 20
QUALITY_MARGIN = Fraction(2, 100)


def choose_optimal(models: dict[str, ModelStats]) -> tuple[str | None, str]:
    """SPEC §5 optimal model and the sentence saying what decided it."""
    eligible = {name: s for name, s in models.items() if s.quality_n >= ELIGIBLE_SCORED_CALLS}
    if not eligible:
        return None, (
            "Not enough scored calls: a model needs at least 20 calls with a quality score"
        )
    quality = {name: s.effective_quality for name, s in eligible.items()}
    best = max(q for q in quality.values() if q is not None)
    near = [name for name, q in quality.items() if q is not None and q >= best - QUALITY_MARGIN]
    winner = min(near, key=lambda m: (eligible[m].avg_cost, -(quality[m] or 0), m))
    win_q = quality[winner] or Fraction(0)
    if len(near) == 1:
        return winner, (
            f"Highest effective quality ({float(win_q):.3f}) among models with at least 20 "
            "scored calls"
        )
    if win_q == best:
        return winner, (
            f"Highest effective quality ({float(win_q):.3f}) and the lowest cost among models "
            "within 0.02 of it"
        )
    return winner, (
        f"Lowest average cost (${float(eligible[winner].avg_cost):.5f}) among models within "
        f"0.02 of the best effective quality ({float(best):.3f})"
    )


def _model_view(s: ModelStats, latencies: np.ndarray | None) -> dict[str, Any]:
    return {
        "calls": s.calls,
        "success_rate": rate(s.successes, s.calls),
        "avg_cost_usd": per_call_money(s.cost, s.calls),
        "avg_latency_ms": mean_ms(s.latency_sum, s.calls),
        "p50_latency_ms": None if latencies is None else histogram.percentile(latencies, 50),
        "p95_latency_ms": None if latencies is None else histogram.percentile(latencies, 95),
        "quality_score": rnd(s.quality, 3),
    }


async def answer(conn: AsyncConnection, query: DayQuery, cache: HistogramCache) -> dict[str, Any]:
    rows = await q.select_model_totals(conn, query)
    latencies = await cache.model_window(conn, query)
    by_task: dict[str, dict[str, ModelStats]] = defaultdict(lambda: defaultdict(ModelStats))
    for row in rows:
        by_task[row.task_type][row.model].add(row)
    task_calls = {t: sum(s.calls for s in ms.values()) for t, ms in by_task.items()}
    body: dict[str, Any] = {}
    recommendations: list[tuple[Fraction, str, dict[str, Any]]] = []
    for task in largest_first(task_calls):
        models = by_task[task]
        order = largest_first({m: s.calls for m, s in models.items()})
        optimal, reason = choose_optimal(models)
        body[task] = {
            "total_calls": task_calls[task],
            "models": {m: _model_view(models[m], latencies.get((task, m))) for m in order},
            "optimal_model": optimal,
            "optimal_reason": reason,
        }
        current = order[0]
        if optimal is not None and optimal != current:
            cur, rec = models[current], models[optimal]
            # Signed (SPEC §14): a dearer recommendation shows what its quality would cost.
            cost_change = (rec.avg_cost - cur.avg_cost) * cur.calls
            savings = max(Fraction(0), -cost_change)
            improvement = (
                rec.quality - cur.quality
                if rec.quality is not None and cur.quality is not None
                else None
            )
            recommendations.append(
                (
                    savings,
                    task,
                    {
                        "task_type": task,
                        "current_model": current,
                        "recommended_model": optimal,
                        "potential_savings_usd": money(savings),
                        "cost_change_usd": money(cost_change),
                        "quality_improvement": rnd(improvement, 3),
                    },
                )
            )
    recommendations.sort(key=lambda item: (-item[0], item[1]))
    return {
        "period": query.window.period(),
        "by_task_type": body,
        "recommendations": [item[2] for item in recommendations],
    }
