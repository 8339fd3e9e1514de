"""GET /v1/metrics/providers: platform-wide provider health in the key's environment
(uptime, latency percentiles, errors, incidents, trends)."""

from __future__ import annotations

from collections import defaultdict
from fractions import Fraction
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncConnection

from perf_metrics import histogram
from perf_metrics.metrics import queries as q
from perf_metrics.metrics.histogram_cache import HistogramCache
from perf_metrics.metrics.numbers import mean_ms, rate, ratio, rnd
from perf_metrics.metrics.query import HourQuery
from perf_metrics.metrics.windows import FIVE_MINUTES, HourWindow
from perf_metrics.zones import PLATFORM, iso_z


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


def provider_status(fc_calls: int, failures: int) -> str:
    """A provider's status from its last 15 minutes' first-choice calls and failures."""
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


async def answer(conn: AsyncConnection, query: HourQuery, cache: HistogramCache) -> dict[str, Any]:
    window = query.window
    totals = {r.provider: r for r in await q.select_provider_totals(conn, query)}
    previous = {
        r.provider: r for r in await q.select_provider_totals(conn, query.over(window.previous()))
    }
    intervals = {r.provider: r for r in await q.select_provider_intervals(conn, query)}
    recent = {r.provider: r for r in await q.select_recent_errors(conn, query)}
    incident_rows: dict[str, list[Any]] = defaultdict(list)
    for row in await q.select_incident_intervals(conn, query):
        incident_rows[row.provider].append(row)
    hists: dict[str, dict[int, np.ndarray]] = defaultdict(dict)
    for provider, bucket, counts in await cache.window(conn, query):
        hour = PLATFORM.hour_of_day(bucket)
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
        status = (
            provider_status(int(rc.fc_calls), int(rc.fc_provider_failures)) if rc else "unknown"
        )
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
