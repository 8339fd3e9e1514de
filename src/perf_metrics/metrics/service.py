"""The six metrics: rollup rows in, response bodies out. Every number is computed here, once.

All arithmetic is exact (int counts, Decimal money, Fraction ratios) until `numbers` rounds it.
"""

from __future__ import annotations

import calendar
from collections import OrderedDict, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncConnection

from perf_metrics import histogram
from perf_metrics.metrics import queries as q
from perf_metrics.metrics.numbers import (
    largest_first,
    mean_ms,
    money,
    per_call_money,
    rate,
    ratio,
    rnd,
)
from perf_metrics.metrics.windows import FIVE_MINUTES, DayWindow, HourWindow, iso_z

ZERO = Decimal(0)
MILLION = Decimal(1_000_000)
GPT4O = "gpt-4o"
GPT4O_LIST_PRICE = (Decimal("2.50"), Decimal("10.00"))  # used only if the price row is missing
ELIGIBLE_SCORED_CALLS = 20
QUALITY_MARGIN = Fraction(2, 100)


@dataclass(frozen=True, slots=True)
class Scope:
    account_id: str
    environment: str


# --- shared aggregates ------------------------------------------------------------------------


@dataclass(slots=True)
class ModelStats:
    calls: int = 0
    successes: int = 0
    cost: Decimal = ZERO
    latency_sum: int = 0
    quality_sum: Decimal = ZERO
    quality_n: int = 0

    def add(self, row: Any) -> None:
        self.calls += row.calls
        self.successes += row.successes
        self.cost += row.cost_usd
        self.latency_sum += row.latency_sum
        self.quality_sum += row.quality_sum
        self.quality_n += row.quality_n

    @property
    def quality(self) -> Fraction | None:
        return ratio(self.quality_sum, self.quality_n)

    @property
    def avg_cost(self) -> Fraction:
        return Fraction(self.cost) / self.calls

    @property
    def effective_quality(self) -> Fraction | None:
        quality = self.quality
        if quality is None:
            return None
        return quality * Fraction(self.successes, self.calls)


def _by_model(rows: Any) -> dict[str, ModelStats]:
    stats: dict[str, ModelStats] = defaultdict(ModelStats)
    for row in rows:
        stats[row.model].add(row)
    return stats


def _task_calls(rows: Any) -> dict[str, int]:
    calls: dict[str, int] = defaultdict(int)
    for row in rows:
        calls[row.task_type] += row.calls
    return calls


# --- overview ---------------------------------------------------------------------------------


async def get_overview(conn: AsyncConnection, scope: Scope, window: DayWindow) -> dict[str, Any]:
    args = (scope.account_id, scope.environment, window.start, window.end)
    totals = await q.select_account_totals(conn, *args)
    model_rows = await q.select_model_totals(conn, *args)
    models = _by_model(model_rows)
    tasks = _task_calls(model_rows)
    n = totals.calls
    return {
        "period": {**window.period(), "days": window.days},
        "summary": {
            "total_calls": n,
            "total_cost_usd": money(totals.cost_usd),
            "avg_cost_per_call": per_call_money(totals.cost_usd, n),
            "avg_latency_ms": mean_ms(totals.latency_sum, n),
            "success_rate": rate(totals.successes, n),
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


# --- customer ---------------------------------------------------------------------------------


def _month_start(day: date) -> date:
    return day.replace(day=1)


def _previous_month_start(day: date) -> date:
    return (_month_start(day) - timedelta(days=1)).replace(day=1)


def cost_analysis_months(daily_cost: dict[date, Decimal], today: date) -> dict[str, Any]:
    """SPEC §5 customer.cost_analysis month figures, `today` being the window's end_date."""

    def cost(start: date, end: date) -> Decimal:  # inclusive
        return sum((c for d, c in daily_cost.items() if start <= d <= end), ZERO)

    month_start = _month_start(today)
    prev_start = _previous_month_start(today)
    prev_len = calendar.monthrange(prev_start.year, prev_start.month)[1]
    current = cost(month_start, today)
    previous = cost(prev_start, month_start - timedelta(days=1))
    comparable = cost(prev_start, prev_start.replace(day=min(today.day, prev_len)))
    days_in_month = calendar.monthrange(today.year, today.month)[1]
    before_today = cost(month_start, today - timedelta(days=1))
    daily_rate = Fraction(cost(today - timedelta(days=7), today - timedelta(days=1))) / 7
    projected = Fraction(before_today) + daily_rate * (days_in_month - today.day + 1)
    change = ratio((current - comparable) * 100, comparable)
    return {
        "current_month": money(current),
        "previous_month": money(previous),
        "change_percentage": rnd(change, 1),
        "projected_month_end": money(projected),
    }


async def get_customer(conn: AsyncConnection, scope: Scope, window: DayWindow) -> dict[str, Any]:
    today = window.end
    first_day = min(window.start, _previous_month_start(today), today - timedelta(days=7))
    args = (scope.account_id, scope.environment, window.start, window.end)
    totals = await q.select_account_totals(conn, *args)
    hour_calls = await q.select_hour_calls(conn, *args)
    day_rows = await q.select_daily_rows(
        conn, scope.account_id, scope.environment, first_day, today
    )
    model_rows = await q.select_model_totals(
        conn, scope.account_id, scope.environment, window.start, window.end
    )
    settings = await q.select_settings_and_price(conn, scope.account_id, GPT4O)
    price_in, price_out = (
        (settings.input_usd_per_mtok, settings.output_usd_per_mtok)
        if settings.input_usd_per_mtok is not None
        else GPT4O_LIST_PRICE
    )
    n = totals.calls
    cost_if_gpt4o = (totals.input_tokens * price_in + totals.output_tokens * price_out) / MILLION
    savings = cost_if_gpt4o - totals.cost_usd
    models = _by_model(model_rows)
    tasks = _task_calls(model_rows)
    task_order = largest_first(tasks)
    dominant = [t for t in task_order if tasks[t] * 5 >= n] or task_order[:1]
    preferred = (
        list(settings.preferred_models)
        or largest_first({m: s.calls for m, s in models.items()})[:2]
    )
    return {
        "account_id": scope.account_id,
        "period": window.period(),
        "usage": {
            "total_calls": n,
            "total_tokens": totals.input_tokens + totals.output_tokens,
            "total_cost_usd": money(totals.cost_usd),
            "avg_calls_per_day": rnd(Fraction(n, window.days), 1),
        },
        "cost_analysis": {
            **cost_analysis_months({r.day: r.cost_usd for r in day_rows}, today),
            "vs_gpt4o_only": {
                "cost_if_gpt4o": money(cost_if_gpt4o),
                "savings_usd": money(savings),
                "savings_percentage": rnd(ratio(savings * 100, cost_if_gpt4o), 1),
            },
        },
        "quality_preferences": {
            "cost_vs_quality_ratio": settings.cost_vs_quality_ratio,
            "latency_sensitivity": settings.latency_sensitivity,
            "preferred_models": preferred,
        },
        "task_profile": {
            "dominant_tasks": dominant,
            "complexity_avg": rnd(ratio(totals.complexity_sum, totals.complexity_n), 3),
            "task_overrides": dict(sorted(settings.task_overrides.items())),
        },
        "behavior_insights": {
            # 96 * count >= 5 * calls  <=>  count >= 1.25 * calls / 24, in integers.
            "peak_hours": [h for h in range(24) if n and hour_calls[h] * 96 >= 5 * n],
            "avg_conversation_length": rnd(ratio(totals.message_sum, totals.message_n), 1),
            "retry_rate": rate(totals.retried, n),
            "cost_ceiling_hit_rate": rate(totals.ceiling_hits, n),
        },
    }


# --- performance ------------------------------------------------------------------------------


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


def _model_view(s: ModelStats) -> dict[str, Any]:
    return {
        "calls": s.calls,
        "success_rate": rate(s.successes, s.calls),
        "avg_cost_usd": per_call_money(s.cost, s.calls),
        "avg_latency_ms": mean_ms(s.latency_sum, s.calls),
        "quality_score": rnd(s.quality, 3),
    }


async def get_performance(
    conn: AsyncConnection, scope: Scope, window: DayWindow, task_type: str | None
) -> dict[str, Any]:
    rows = await q.select_model_totals(
        conn, scope.account_id, scope.environment, window.start, window.end, task_type
    )
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
            "models": {m: _model_view(models[m]) for m in order},
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
        "period": window.period(),
        "by_task_type": body,
        "recommendations": [item[2] for item in recommendations],
    }


# --- failures ---------------------------------------------------------------------------------


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


async def get_failures(conn: AsyncConnection, scope: Scope, window: DayWindow) -> dict[str, Any]:
    args = (scope.account_id, scope.environment, window.start, window.end)
    rows = await q.select_failure_totals(conn, *args)
    trigger_rows = await q.select_trigger_totals(conn, *args)

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
        "period": window.period(),
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


# --- providers --------------------------------------------------------------------------------


def _trend(change: Fraction | None, lower_is_better: bool = True) -> str:
    if change is None:
        return "stable"
    if change <= Fraction(-5, 100):
        return "improving" if lower_is_better else "degrading"
    if change >= Fraction(5, 100):
        return "degrading" if lower_is_better else "improving"
    return "stable"


def _change(current: Fraction | None, previous: Fraction | None) -> Fraction | None:
    if current is None or previous is None or previous == 0:
        return None
    return (current - previous) / previous


def _status(fc_calls: int, failures: int) -> str:
    if fc_calls == 0:
        return "unknown"
    if failures * 4 >= fc_calls:
        return "outage"
    if failures * 20 >= fc_calls:
        return "degraded"
    return "operational"


def _incidents(intervals: list[Any], window: HourWindow) -> list[dict[str, Any]]:
    """Maximal runs of consecutive qualifying 5-minute intervals, oldest first."""
    runs: list[list[Any]] = []
    for row in intervals:
        if runs and row.bucket - runs[-1][-1].bucket == FIVE_MINUTES:
            runs[-1].append(row)
        else:
            runs.append([row])
    last_interval = window.end - FIVE_MINUTES
    return [
        {
            "started_at": iso_z(run[0].bucket),
            "ended_at": None
            if run[-1].bucket == last_interval
            else iso_z(run[-1].bucket + FIVE_MINUTES),
            "peak_error_rate": rnd(
                max(Fraction(r.fc_provider_failures, r.fc_calls) for r in run), 3
            ),
            "affected_calls": sum(r.fc_provider_failures for r in run),
        }
        for run in runs
    ]


def _latency_recommendations(
    order: list[str], hists: dict[str, dict[int, np.ndarray]], window_p95: dict[str, int | None]
) -> list[dict[str, str]]:
    out = []
    for provider in order:
        p95 = window_p95.get(provider)
        if p95 is None:
            continue
        slow_hours = [
            h
            for h, dense in sorted(hists.get(provider, {}).items())
            if dense.sum() >= 20 and (histogram.percentile(dense, 95) or 0) * 4 >= p95 * 5
        ]
        if not slow_hours:
            continue
        alternatives: dict[str, int] = {}
        for other in order:
            if other == provider:
                continue
            merged = histogram.empty()
            for h in slow_hours:
                if h in hists.get(other, {}):
                    merged += hists[other][h]
            if merged.sum() >= 20:
                alternatives[other] = histogram.percentile(merged, 95) or 0
        hours_text = ", ".join(str(h) for h in slow_hours)
        message = (
            f"p95 latency is at least 1.25x its window p95 ({p95} ms) during UTC hours {hours_text}"
        )
        if alternatives:
            alt = min(alternatives, key=lambda m: (alternatives[m], m))
            action = f"Consider routing latency-sensitive traffic to {alt} during these hours"
        else:
            action = "Consider a faster fallback provider during these hours"
        out.append({"provider": provider, "message": message, "action": action})
    return out


class HistogramCache:
    """The latency histograms of provider rollup rows, kept between requests.

    A row's `served_calls` is the sum of its histogram and only grows, so an entry is fresh
    exactly when its count matches the row's: each request reads the (cheap) row index of its
    window and fetches only the histograms that are new or changed. Past hours rarely change;
    a 168-hour window then moves a few kilobytes instead of a few hundred.
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        self.entries: OrderedDict[tuple[str, str, str, datetime], tuple[int, tuple[int, Any]]]
        self.entries = OrderedDict()

    async def window(
        self, conn: AsyncConnection, environment: str, window: HourWindow
    ) -> list[tuple[str, datetime, tuple[int, Any]]]:
        index = await q.select_histogram_index(conn, environment, window.start, window.end)
        out: list[tuple[str, datetime, tuple[int, Any]]] = []
        missing = []
        for r in index:
            key = (environment, r.grain, r.provider, r.bucket)
            entry = self.entries.get(key)
            if entry is not None and entry[0] == r.served_calls:
                self.entries.move_to_end(key)
                out.append((r.provider, r.bucket, entry[1]))
            else:
                missing.append(r)
        if missing:
            # Read in this request's snapshot, like the index: used from here, not re-read from
            # the shared cache (a concurrent request may store another snapshot's version).
            keys = [(r.grain, r.provider, r.bucket) for r in missing]
            fetched = {
                (f.grain, f.provider, f.bucket): f
                for f in await q.select_histograms(conn, environment, keys)
            }
            for r in missing:
                f = fetched[(r.grain, r.provider, r.bucket)]
                counts = (f.lower, np.asarray(f.hist, dtype=np.int64))
                out.append((r.provider, r.bucket, counts))
                self.entries[(environment, r.grain, r.provider, r.bucket)] = (
                    f.served_calls,
                    counts,
                )
        while len(self.entries) > self.max_entries:
            self.entries.popitem(last=False)
        return out


async def get_providers(
    conn: AsyncConnection, environment: str, window: HourWindow, cache: HistogramCache
) -> dict[str, Any]:
    totals = {
        r.provider: r
        for r in await q.select_provider_totals(conn, environment, window.start, window.end)
    }
    previous = {
        r.provider: r
        for r in await q.select_provider_totals(
            conn, environment, window.previous().start, window.start
        )
    }
    intervals = {
        r.provider: r
        for r in await q.select_provider_intervals(conn, environment, window.start, window.end)
    }
    recent = {
        r.provider: r
        for r in await q.select_recent_errors(
            conn, environment, window.end - 3 * FIVE_MINUTES, window.end
        )
    }
    incident_rows: dict[str, list[Any]] = defaultdict(list)
    for row in await q.select_incident_intervals(conn, environment, window.start, window.end):
        incident_rows[row.provider].append(row)
    hists: dict[str, dict[int, np.ndarray]] = defaultdict(dict)
    for provider, bucket, counts in await cache.window(conn, environment, window):
        hour = bucket.astimezone(UTC).hour
        dense = hists[provider].get(hour)
        if dense is None:
            dense = hists[provider][hour] = histogram.empty()
        histogram.add_into(dense, *counts)

    active = {p: t for p, t in totals.items() if t.fc_calls or t.served_calls}
    order = sorted(active, key=lambda p: (-active[p].served_calls, -active[p].fc_calls, p))
    providers: dict[str, Any] = {}
    trends: dict[str, Any] = {}
    window_p95: dict[str, int | None] = {}
    for p in order:
        t = active[p]
        merged = histogram.empty()
        for dense in hists.get(p, {}).values():
            merged += dense
        window_p95[p] = histogram.percentile(merged, 95)
        iv = intervals.get(p)
        rc = recent.get(p)
        status = _status(int(rc.fc_calls), int(rc.fc_provider_failures)) if rc else "unknown"
        providers[p] = {
            "status": status,
            "uptime": rate(iv.healthy, iv.intervals) if iv else None,
            "avg_latency_ms": mean_ms(t.latency_sum, t.served_calls),
            "p95_latency_ms": window_p95[p],
            "p99_latency_ms": histogram.percentile(merged, 99),
            "error_rate": rate(t.fc_provider_failures, t.fc_calls),
            "rate_limit_hits": int(t.fc_rate_limited),
            "incidents": _incidents(incident_rows.get(p, []), window),
        }
        prev = previous.get(p)
        latency_change = _change(
            ratio(t.latency_sum, t.served_calls),
            ratio(prev.latency_sum, prev.served_calls) if prev else None,
        )
        error_change = _change(
            ratio(t.fc_provider_failures, t.fc_calls),
            ratio(prev.fc_provider_failures, prev.fc_calls) if prev else None,
        )
        trends[p] = {
            "latency_trend": _trend(latency_change),
            "error_trend": _trend(error_change),
            "vs_previous_period": {
                "latency_change": rnd(latency_change, 2),
                "error_change": rnd(error_change, 2),
            },
        }
    recommendations = _latency_recommendations(order, hists, window_p95)
    for p in order:
        status = providers[p]["status"]
        if status in ("degraded", "outage"):
            rc = recent[p]
            recommendations.append(
                {
                    "provider": p,
                    "message": "Error rate over the last 15 minutes is "
                    f"{float(Fraction(int(rc.fc_provider_failures), int(rc.fc_calls))):.1%}",
                    "action": "Route first-choice traffic to a fallback provider until it recovers",
                }
            )
    return {
        "period": window.period(),
        "providers": providers,
        "trends": trends,
        "recommendations": recommendations,
    }


# --- daily ------------------------------------------------------------------------------------


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


async def get_daily(
    conn: AsyncConnection, scope: Scope, window: DayWindow, today: date
) -> dict[str, Any]:
    args = (scope.account_id, scope.environment, window.start, window.end)
    day_rows = {r.day: r for r in await q.select_daily_rows(conn, *args)}
    model_days: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    task_days: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in await q.select_daily_distributions(conn, *args):
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
        "period": {"start_date": window.start.isoformat(), "end_date": window.end.isoformat()},
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


__all__ = [
    "Scope",
    "get_customer",
    "get_daily",
    "get_failures",
    "get_overview",
    "get_performance",
    "get_providers",
]
