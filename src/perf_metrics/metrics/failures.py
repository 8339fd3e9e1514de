"""GET /v1/metrics/failures: failures by mode and by first-choice model, recovery, and
mitigations derived from the data."""

from __future__ import annotations

from collections import defaultdict
from fractions import Fraction
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from perf_metrics.metrics import queries as q
from perf_metrics.metrics.numbers import largest_first, rate
from perf_metrics.metrics.query import DayQuery


def _top(counts: dict[str, int], k: int) -> list[str]:
    return [name for name in largest_first(counts) if counts[name] > 0][:k]


def mitigations(
    mode_order: list[str],
    mode_counts: dict[str, int],
    cells: dict[tuple[str, str, str], int],
    calls_by_task_model: dict[tuple[str, str], int],
) -> list[dict[str, str]]:
    """docs/metrics.md: for a mode concentrated on one model, the model to switch to."""
    out = []
    for mode in mode_order:
        count = mode_counts[mode]
        if count < 10:
            continue
        per_model: dict[str, int] = defaultdict(int)
        for (_task, model, m), n in cells.items():
            if m == mode:
                per_model[model] += n
        top = largest_first(per_model)[0]
        if per_model[top] * 2 < count:
            continue
        tasks = sorted({t for (t, model, m), n in cells.items() if m == mode and model == top})

        def mode_rate(model: str, tasks: list[str] = tasks, mode: str = mode) -> Fraction | None:
            calls = sum(calls_by_task_model.get((t, model), 0) for t in tasks)
            fails = sum(cells.get((t, model, mode), 0) for t in tasks)
            return Fraction(fails, calls) if calls else None

        top_rate = mode_rate(top)
        candidates = {
            model: mode_rate(model)
            for model in {m for (_t, m) in calls_by_task_model}
            if model != top and sum(calls_by_task_model.get((t, model), 0) for t in tasks) >= 20
        }
        if not candidates or top_rate is None:
            continue
        best = min(candidates, key=lambda m: (candidates[m], m))
        best_rate = candidates[best]
        assert best_rate is not None
        if best_rate >= top_rate:
            continue
        share = Fraction(per_model[top], count)
        out.append(
            {
                "issue": f"{mode} failures concentrate on {top}: {per_model[top]} of {count} "
                f"({float(share):.0%})",
                "recommendation": f"Route {', '.join(tasks)} tasks from {top} to {best}: its "
                f"{mode} rate there is {float(best_rate):.1%} against {float(top_rate):.1%}",
                "expected_improvement": f"{float(1 - best_rate / top_rate):.0%} fewer {mode} "
                "failures on those tasks",
            }
        )
    return out


async def answer(conn: AsyncConnection, query: DayQuery) -> dict[str, Any]:
    rows = await q.select_failure_totals(conn, query)
    trigger_rows = await q.select_trigger_totals(conn, query)

    calls = retries = fallbacks = unrecoverable = 0
    mode_counts: dict[str, int] = defaultdict(int)
    mode_models: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    model_calls: dict[str, int] = defaultdict(int)
    model_failures: dict[str, int] = defaultdict(int)
    model_modes: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    cells: dict[tuple[str, str, str], int] = defaultdict(int)
    calls_by_task_model: dict[tuple[str, str], int] = defaultdict(int)
    for r in rows:
        calls += r.calls
        model_calls[r.first_model] += r.calls
        calls_by_task_model[(r.task_type, r.first_model)] += r.calls
        if r.failure_mode:
            retries += r.retry_recovered
            fallbacks += r.fallback_recovered
            unrecoverable += r.unrecoverable
            mode_counts[r.failure_mode] += r.calls
            mode_models[r.failure_mode][r.first_model] += r.calls
            model_failures[r.first_model] += r.calls
            model_modes[r.first_model][r.failure_mode] += r.calls
            cells[(r.task_type, r.first_model, r.failure_mode)] += r.calls
    triggers: dict[str, dict[str, int]] = defaultdict(dict)
    for r in trigger_rows:
        triggers[r.failure_mode][r.failure_trigger] = r.calls

    total_failures = sum(mode_counts.values())
    mode_order = largest_first(mode_counts)
    by_mode = {}
    for mode in mode_order:
        count = mode_counts[mode]
        affected = {m: n for m, n in mode_models[mode].items() if n * 10 >= count}
        by_mode[mode] = {
            "count": count,
            "percentage": rate(count, total_failures),
            "affected_models": largest_first(affected)[:5],
            "common_triggers": largest_first(triggers.get(mode, {}))[:3],
        }
    by_model = {
        model: {
            "total_calls": model_calls[model],
            "failures": model_failures[model],
            "failure_rate": rate(model_failures[model], model_calls[model]),
            "top_failure_modes": _top(model_modes[model], 2),
        }
        for model in sorted(model_calls, key=lambda m: (-model_failures[m], m))
    }
    return {
        "period": query.window.period(),
        "summary": {
            "total_failures": total_failures,
            "failure_rate": rate(total_failures, calls),
            "retries_succeeded": retries,
            "fallback_succeeded": fallbacks,
            "unrecoverable": unrecoverable,
        },
        "by_failure_mode": by_mode,
        "by_model": by_model,
        "mitigation_recommendations": mitigations(
            mode_order, mode_counts, cells, calls_by_task_model
        ),
    }
