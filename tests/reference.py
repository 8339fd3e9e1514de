"""A plain-Python reference for the six Metrics API responses.

Deliberately simple and slow: every field is computed straight from a list of call records
with SPEC.md's formulas and the choices in docs/metrics.md, on exact values (Fractions and
Decimals), rounded half-up once at the end. Tests compare the real SQL/rollup implementation
against it, so it shares no code with ``perf_metrics``.

``calls`` are dicts with every SPEC section 2 key; ``created_at`` is an aware UTC datetime,
``cost_usd`` a Decimal, ``quality_score``/``complexity_score`` a float or None. They are already
scoped to one account and environment (providers: every account of one environment) but not
to the window: each function selects its window itself.

The day endpoints (overview, customer, performance, failures, daily) take ``zone``, the
account's IANA zone (SPEC section 9): a call's day is the calendar date of ``created_at`` on
that zone's wall clock, ``days``/``end_date`` select local days, customer's months and peak
hours are local, and the period gains ``timezone`` (default ``"UTC"``: the ``Z`` form).

Every answer ends with ``data_as_of`` (SPEC section 14), when the rollups last took in the
calls: not a function of the records, so the reference gives ``DATA_AS_OF``, which equals any
RFC 3339 UTC instant to the second; its value is tested on its own (test_more_answers.py).
"""

from __future__ import annotations

import bisect
import calendar
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

Call = dict[str, Any]
UTC_NAME = "UTC"
Number = int | Decimal | Fraction
T = TypeVar("T")

PROVIDER_SIDE_MODES = ("provider_error", "timeout", "rate_limited")
FIVE_MINUTES = timedelta(minutes=5)
GPT4O_PRICE = (Decimal("2.50"), Decimal("10.00"))  # USD per million input / output tokens
# The price table as migrated (USD per million input / output tokens), each in force from
# 2000-01-01: model -> [(effective_from, input, output), ...] oldest first.
LIST_PRICES = {
    "gpt-4o": ("2.50", "10.00"),
    "gpt-4o-mini": ("0.15", "0.60"),
    "gpt-4.1": ("2.00", "8.00"),
    "gpt-4.1-mini": ("0.40", "1.60"),
    "o4-mini": ("1.10", "4.40"),
    "claude-sonnet-4-5": ("3.00", "15.00"),
    "claude-haiku-4-5": ("1.00", "5.00"),
    "claude-opus-4-1": ("15.00", "75.00"),
    "gemini-2.5-pro": ("1.25", "10.00"),
    "gemini-2.5-flash": ("0.30", "2.50"),
    "mistral-large": ("2.00", "6.00"),
}
PriceHistory = dict[str, list[tuple[date, Decimal, Decimal]]]
PRICE_TABLE: PriceHistory = {
    m: [(date(2000, 1, 1), Decimal(i), Decimal(o))] for m, (i, o) in LIST_PRICES.items()
}


class Instant:
    """Any RFC 3339 UTC instant to the second: what the reference says of ``data_as_of``."""

    FORM = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, (str, Instant)) and (
            isinstance(other, Instant) or self.FORM.fullmatch(other) is not None
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return "<any RFC 3339 UTC instant>"


DATA_AS_OF = Instant()


# ---------------------------------------------------------------- small exact helpers


def rnd(value: Number | None, places: int) -> float | int | None:
    """Round an exact value half-up (ties away from zero) to ``places`` decimals.

    Returns None for None, an int for ``places == 0`` and a float otherwise.
    """
    if value is None:
        return None
    exact = Fraction(value)
    scaled = abs(exact) * 10**places
    digits = math.floor(scaled + Fraction(1, 2))
    if exact < 0:
        digits = -digits
    if places == 0:
        return int(digits)
    return float(Decimal(digits).scaleb(-places))


def money(call: Call) -> Fraction:
    return Fraction(call["cost_usd"])


def score(value: float | None) -> Fraction | None:
    """A score as the exact decimal of the value sent."""
    return None if value is None else Fraction(Decimal(str(value)))


def ratio(part: Number, whole: int) -> Fraction | None:
    """part / whole, None when whole is 0 (a rate over zero calls)."""
    return None if whole == 0 else Fraction(part) / whole


def mean(values: Iterable[Number]) -> Fraction | None:
    exact = [Fraction(v) for v in values]
    return None if not exact else sum(exact, Fraction(0)) / len(exact)


def defined(value: T | None) -> T:
    """A value that is None only over no calls, taken where the caller knows there are some."""
    assert value is not None
    return value


def total(values: Iterable[Number]) -> Fraction:
    return sum((Fraction(v) for v in values), Fraction(0))


def count(items: Iterable[T], predicate: Callable[[T], bool]) -> int:
    return sum(1 for c in items if predicate(c))


def largest_first(counts: dict[str, int] | Counter[str]) -> list[str]:
    """Keys with a count > 0, largest count first, ties by name ascending."""
    return sorted((k for k, n in counts.items() if n > 0), key=lambda k: (-counts[k], k))


def first_choice_model(call: Call) -> str:
    model: str = call["initial_model"] or call["model"]
    return model


def first_choice_provider(call: Call) -> str:
    provider: str = call["initial_provider"] or call["provider"]
    return provider


def provider_side(call: Call) -> bool:
    return call["failure_mode"] in PROVIDER_SIDE_MODES


def routed_right(call: Call) -> bool:
    q = score(call["quality_score"])
    return call["failure_mode"] is None and (q is None or q >= Fraction(7, 10))


def nearest_rank(latencies: list[int], p: Fraction) -> int | None:
    """The value at rank ceil(p x n) (1-based) of the sorted latencies."""
    if not latencies:
        return None
    ordered = sorted(latencies)
    rank = max(1, math.ceil(p * len(ordered)))
    return ordered[rank - 1]


def utc(dt: datetime) -> datetime:
    return dt.astimezone(UTC)


def wall_clock(dt: datetime, zone: str) -> datetime:
    """dt as the zone's clocks show it."""
    return dt.astimezone(ZoneInfo(zone))


def day_of(call: Call, zone: str = UTC_NAME) -> date:
    """The calendar date of the call in the zone."""
    return wall_clock(call["created_at"], zone).date()


def iso(dt: datetime) -> str:
    return utc(dt).strftime("%Y-%m-%dT%H:%M:%SZ")


def day_start(day: date, zone: str) -> datetime:
    """The first instant of the local day: its local midnight.

    Built from the wall-clock date, never by adding 24 hours, so a day is 23, 24 or 25 hours
    (23.5/24.5 on Lord Howe) as the zone's clocks make it. fold=0 (the default) is right in both
    odd cases: a midnight that happens twice starts the day at its first occurrence, and a
    midnight skipped by a spring-forward gap is read with the offset before the gap, which is
    the instant the clocks jump from, so the first instant of that day (01:00 in
    America/Santiago on 2026-09-06). Returned in UTC: a skipped wall time kept in the zone would
    still print as 00:00.
    """
    return datetime.combine(day, time(0, 0, 0), ZoneInfo(zone)).astimezone(UTC)


def local_stamp(dt: datetime, zone: str) -> str:
    """RFC 3339 to the second: ``Z`` for a UTC account, else the zone's offset at that instant."""
    if zone == "UTC":
        return iso(dt)
    return wall_clock(dt, zone).isoformat(timespec="seconds")


# ---------------------------------------------------------------- day windows


def window_days(days: int, end_date: date) -> list[date]:
    start = end_date - timedelta(days=days - 1)
    return [start + timedelta(days=i) for i in range(days)]


def in_days(calls: list[Call], first: date, last: date, zone: str = UTC_NAME) -> list[Call]:
    """Calls created on the days first..last of the zone, both included."""
    return [c for c in calls if first <= day_of(c, zone) <= last]


def in_window(calls: list[Call], days: int, end_date: date, zone: str = UTC_NAME) -> list[Call]:
    return in_days(calls, end_date - timedelta(days=days - 1), end_date, zone)


def period(days: int, end_date: date, zone: str = UTC_NAME) -> dict[str, str]:
    """The window's first and last second; with a zone, in its offsets and naming it."""
    start = end_date - timedelta(days=days - 1)
    # The last second is the one before the next local day starts, with the offset in force
    # then (23:59:59 on the wall clock; its second pass where clocks go back at midnight).
    last_second = day_start(end_date + timedelta(days=1), zone) - timedelta(seconds=1)
    return {
        "start_date": local_stamp(day_start(start, zone), zone),
        "end_date": local_stamp(last_second, zone),
        "timezone": zone,
    }


# ---------------------------------------------------------------- shared summaries


def success_rate(calls: list[Call]) -> Fraction | None:
    return ratio(count(calls, lambda c: c["status"] == "success"), len(calls))


def retry_rate(calls: list[Call]) -> Fraction | None:
    return ratio(count(calls, lambda c: c["retry_count"] > 0), len(calls))


def avg_cost(calls: list[Call]) -> Fraction | None:
    return mean(money(c) for c in calls)


def avg_latency(calls: list[Call]) -> Fraction | None:
    return mean(c["latency_ms"] for c in calls)


def mean_quality(calls: list[Call]) -> Fraction | None:
    return mean(q for q in (score(c["quality_score"]) for c in calls) if q is not None)


def group(calls: list[Call], key: Callable[[Call], str]) -> dict[str, list[Call]]:
    """Calls grouped by key, groups ordered largest first, ties by name."""
    groups: dict[str, list[Call]] = {}
    for c in calls:
        groups.setdefault(key(c), []).append(c)
    order = largest_first({k: len(v) for k, v in groups.items()})
    return {k: groups[k] for k in order}


def shares(calls: list[Call], key: Callable[[Call], str]) -> dict[str, float | int | None]:
    return {k: rnd(Fraction(len(v), len(calls)), 3) for k, v in group(calls, key).items()}


# ---------------------------------------------------------------- overview


def overview(
    calls: list[Call], *, days: int, end_date: date, zone: str = UTC_NAME
) -> dict[str, Any]:
    window = in_window(calls, days, end_date, zone)
    n = len(window)
    return {
        "period": {**period(days, end_date, zone), "days": days},
        "summary": {
            "total_calls": n,
            "total_cost_usd": rnd(total(money(c) for c in window), 2),
            "avg_cost_per_call": rnd(avg_cost(window), 5),
            "avg_latency_ms": rnd(avg_latency(window), 0),
            "success_rate": rnd(success_rate(window), 3),
            "total_attempts": sum(1 + c["retry_count"] + int(c["fallback_used"]) for c in window),
            "cost_per_successful_call": rnd(
                ratio(
                    total(money(c) for c in window),
                    count(window, lambda c: c["status"] == "success"),
                ),
                5,
            ),
        },
        "routing": {
            "accuracy": rnd(ratio(count(window, routed_right), n), 3),
            "fallback_rate": rnd(ratio(count(window, lambda c: c["fallback_used"]), n), 3),
            "retry_rate": rnd(retry_rate(window), 3),
        },
        "models": {
            model: {
                "calls": len(group_calls),
                "percentage": rnd(Fraction(len(group_calls), n), 3),
                "avg_cost": rnd(avg_cost(group_calls), 5),
                "avg_latency_ms": rnd(avg_latency(group_calls), 0),
            }
            for model, group_calls in group(window, lambda c: c["model"]).items()
        },
        "task_distribution": shares(window, lambda c: c["task_type"]),
        "data_as_of": DATA_AS_OF,
    }


# ---------------------------------------------------------------- customer


def price_on(history: list[tuple[date, Decimal, Decimal]], day: date) -> tuple[Fraction, Fraction]:
    """The price in force on ``day``: the latest taking effect on or before it (the first one
    for days before it)."""
    starts = [start for start, _, _ in history]
    _, price_in, price_out = history[max(0, bisect.bisect_right(starts, day) - 1)]
    return Fraction(price_in), Fraction(price_out)


def cost_if(
    window: list[Call], history: list[tuple[date, Decimal, Decimal]], zone: str
) -> Fraction:
    """The calls' tokens priced at the list price in force on each call's (local) day."""
    out = Fraction(0)
    for c in window:
        price_in, price_out = price_on(history, day_of(c, zone))
        out += (c["input_tokens"] * price_in + c["output_tokens"] * price_out) / 1_000_000
    return out


def versus(cost_if_model: Fraction, window: list[Call]) -> tuple[Any, Any, Any]:
    savings = cost_if_model - total(money(c) for c in window)
    savings_pct = None if cost_if_model == 0 else 100 * savings / cost_if_model
    return rnd(cost_if_model, 2), rnd(savings, 2), rnd(savings_pct, 1)


def budget(
    calls: list[Call], today: date, monthly: Decimal, zone: str = UTC_NAME
) -> dict[str, Any]:
    """SPEC section 14, day by day: the running total, and the projection walked forward."""
    month_start = today.replace(day=1)
    month_length = calendar.monthrange(today.year, today.month)[1]

    def cost_on(day: date) -> Fraction:
        return total(money(c) for c in in_days(calls, day, day, zone))

    days_so_far = [month_start + timedelta(days=i) for i in range(today.day)]
    spent = sum((cost_on(d) for d in days_so_far), Fraction(0))
    before_today = spent - cost_on(today)
    rate = sum((cost_on(today - timedelta(days=k)) for k in range(1, 8)), Fraction(0)) / 7
    projected = before_today + rate * (month_length - today.day + 1)
    budget_ = Fraction(monthly)
    exceed = None
    if spent >= budget_:
        status = "over"
        running = Fraction(0)
        for d in days_so_far:
            running += cost_on(d)
            if running >= budget_:
                exceed = d
                break
    else:
        status = "at_risk" if projected >= budget_ else "ok"
        d, k = today, 1
        while d.month == today.month:
            if before_today + rate * k >= budget_:
                exceed = d
                break
            d, k = d + timedelta(days=1), k + 1
    return {
        "monthly_budget_usd": rnd(budget_, 2),
        "spent": rnd(spent, 2),
        "remaining": rnd(max(Fraction(0), budget_ - spent), 2),
        "status": status,
        "projected_exceed_date": None if exceed is None else exceed.isoformat(),
    }


def cost_analysis(
    calls: list[Call],
    window: list[Call],
    end_date: date,
    prices: PriceHistory,
    zone: str = UTC_NAME,
    baseline_model: str = "gpt-4o",
    monthly_budget: Decimal | None = None,
) -> dict[str, Any]:
    today = end_date  # months, "today" and the 7 days before it are the zone's calendar
    month_start = today.replace(day=1)
    month_length = calendar.monthrange(today.year, today.month)[1]
    prev_last = month_start - timedelta(days=1)
    prev_first = prev_last.replace(day=1)
    prev_length = prev_last.day

    def cost_between(first: date, last: date) -> Fraction:
        return total(money(c) for c in in_days(calls, first, last, zone))

    current_month = cost_between(month_start, today)
    previous_month = cost_between(prev_first, prev_last)
    comparable = cost_between(prev_first, prev_first.replace(day=min(today.day, prev_length)))
    change = None if comparable == 0 else 100 * (current_month - comparable) / comparable

    before_today = cost_between(month_start, today - timedelta(days=1))  # empty on the 1st
    daily_rate = cost_between(today - timedelta(days=7), today - timedelta(days=1)) / 7
    days_left = month_length - today.day + 1  # counting today
    projected = before_today + daily_rate * days_left

    gpt4o_if, gpt4o_savings, gpt4o_pct = versus(cost_if(window, prices["gpt-4o"], zone), window)
    base_if, base_savings, base_pct = versus(cost_if(window, prices[baseline_model], zone), window)
    out = {
        "current_month": rnd(current_month, 2),
        "previous_month": rnd(previous_month, 2),
        "change_percentage": rnd(change, 1),
        "projected_month_end": rnd(projected, 2),
        "vs_gpt4o_only": {
            "cost_if_gpt4o": gpt4o_if,
            "savings_usd": gpt4o_savings,
            "savings_percentage": gpt4o_pct,
        },
        "vs_baseline": {
            "model": baseline_model,
            "cost_if_baseline": base_if,
            "savings_usd": base_savings,
            "savings_percentage": base_pct,
        },
    }
    if monthly_budget is not None:
        out["budget"] = budget(calls, today, monthly_budget, zone)
    return out


def customer(
    calls: list[Call],
    *,
    account_id: str,
    settings: dict[str, Any],
    days: int,
    end_date: date,
    prices: PriceHistory = PRICE_TABLE,
    zone: str = UTC_NAME,
    baseline_model: str = "gpt-4o",
    monthly_budget: Decimal | None = None,
) -> dict[str, Any]:
    window = in_window(calls, days, end_date, zone)
    n = len(window)

    models = list(group(window, lambda c: c["model"]))
    preferred = list(settings["preferred_models"]) or models[:2]

    tasks = group(window, lambda c: c["task_type"])
    dominant = [t for t, ts in tasks.items() if 5 * len(ts) >= n]  # >= 20% of calls
    if not dominant:
        dominant = list(tasks)[:1]  # the largest one; [] on an empty window

    # The wall-clock hour: both passes through a repeated fall-back hour count to that hour.
    by_hour = Counter(wall_clock(c["created_at"], zone).hour for c in window)
    # count >= 1.25 x n / 24  <=>  96 x count >= 5 x n; a window with calls never picks an
    # hour without calls, and an empty window picks none.
    peak_hours = sorted(h for h in range(24) if by_hour[h] > 0 and 96 * by_hour[h] >= 5 * n)

    complexities = [score(c["complexity_score"]) for c in window]
    messages = [c["message_count"] for c in window if c["message_count"] is not None]

    return {
        "account_id": account_id,
        "period": period(days, end_date, zone),
        "usage": {
            "total_calls": n,
            "total_tokens": sum(c["input_tokens"] + c["output_tokens"] for c in window),
            "total_cost_usd": rnd(total(money(c) for c in window), 2),
            "avg_calls_per_day": rnd(Fraction(n, days), 1),
        },
        "cost_analysis": cost_analysis(
            calls, window, end_date, prices, zone, baseline_model, monthly_budget
        ),
        "quality_preferences": {
            "cost_vs_quality_ratio": settings["cost_vs_quality_ratio"],
            "latency_sensitivity": settings["latency_sensitivity"],
            "preferred_models": preferred,
        },
        "task_profile": {
            "dominant_tasks": dominant,
            "complexity_avg": rnd(mean(x for x in complexities if x is not None), 3),
            "task_overrides": dict(settings["task_overrides"]),
        },
        "behavior_insights": {
            "peak_hours": peak_hours,
            "avg_conversation_length": rnd(mean(messages), 1),
            "retry_rate": rnd(retry_rate(window), 3),
            "cost_ceiling_hit_rate": rnd(
                ratio(count(window, lambda c: c["cost_ceiling_hit"]), n), 3
            ),
        },
        "data_as_of": DATA_AS_OF,
    }


# ---------------------------------------------------------------- performance

MIN_SCORED_CALLS = 20
QUALITY_MARGIN = Fraction(2, 100)


def effective_quality(model_calls: list[Call]) -> Fraction | None:
    q = mean_quality(model_calls)
    rate = success_rate(model_calls)
    return None if q is None or rate is None else q * rate


def optimal_model(models: dict[str, list[Call]]) -> tuple[str | None, str]:
    eligible = {
        m: mc
        for m, mc in models.items()
        if count(mc, lambda c: c["quality_score"] is not None) >= MIN_SCORED_CALLS
    }
    if not eligible:
        return None, "Not enough scored calls: a model needs at least 20 calls with a quality score"
    eff = {m: defined(effective_quality(mc)) for m, mc in eligible.items()}
    cost = {m: defined(avg_cost(mc)) for m, mc in eligible.items()}
    best = max(eff.values())
    near = [m for m in eligible if best - eff[m] <= QUALITY_MARGIN]
    winner = min(near, key=lambda m: (cost[m], -eff[m], m))
    if len(near) == 1:
        reason = (
            f"Highest effective quality ({float(best):.3f}) "
            "among models with at least 20 scored calls"
        )
    elif eff[winner] == best:
        reason = (
            f"Highest effective quality ({float(best):.3f}) "
            "and the lowest cost among models within 0.02 of it"
        )
    else:
        reason = (
            f"Lowest average cost (${float(cost[winner]):.5f}) among models within 0.02 "
            f"of the best effective quality ({float(best):.3f})"
        )
    return winner, reason


def performance(
    calls: list[Call],
    *,
    days: int,
    end_date: date,
    task_type: str | None = None,
    zone: str = UTC_NAME,
) -> dict[str, Any]:
    window = in_window(calls, days, end_date, zone)
    if task_type is not None:
        window = [c for c in window if c["task_type"] == task_type]

    by_task: dict[str, Any] = {}
    recommendations: list[tuple[Fraction, str, dict[str, Any]]] = []
    for task, task_calls in group(window, lambda c: c["task_type"]).items():
        models = group(task_calls, lambda c: c["model"])
        optimal, reason = optimal_model(models)
        by_task[task] = {
            "total_calls": len(task_calls),
            "models": {
                m: {
                    "calls": len(mc),
                    "success_rate": rnd(success_rate(mc), 3),
                    "avg_cost_usd": rnd(avg_cost(mc), 5),
                    "avg_latency_ms": rnd(avg_latency(mc), 0),
                    "p50_latency_ms": nearest_rank([c["latency_ms"] for c in mc], Fraction(1, 2)),
                    "p95_latency_ms": nearest_rank(
                        [c["latency_ms"] for c in mc], Fraction(95, 100)
                    ),
                    "quality_score": rnd(mean_quality(mc), 3),
                }
                for m, mc in models.items()
            },
            "optimal_model": optimal,
            "optimal_reason": reason,
        }
        current = next(iter(models))  # most calls, ties by name
        if optimal is not None and optimal != current:
            cur, rec = models[current], models[optimal]
            cost_cur, cost_rec = defined(avg_cost(cur)), defined(avg_cost(rec))
            savings = max(Fraction(0), (cost_cur - cost_rec) * len(cur))
            cost_change = (cost_rec - cost_cur) * len(cur)
            q_cur, q_rec = mean_quality(cur), mean_quality(rec)
            improvement = None if q_cur is None or q_rec is None else q_rec - q_cur
            recommendations.append(
                (
                    savings,
                    task,
                    {
                        "task_type": task,
                        "current_model": current,
                        "recommended_model": optimal,
                        "potential_savings_usd": rnd(savings, 2),
                        "cost_change_usd": rnd(cost_change, 2),
                        "quality_improvement": rnd(improvement, 3),
                    },
                )
            )
    recommendations.sort(key=lambda r: (-r[0], r[1]))
    return {
        "period": period(days, end_date, zone),
        "by_task_type": by_task,
        "recommendations": [r[2] for r in recommendations],
        "data_as_of": DATA_AS_OF,
    }


# ---------------------------------------------------------------- failures


def top_names(counts: Counter[str], limit: int) -> list[str]:
    return largest_first(counts)[:limit]


def mitigation(window: list[Call], mode: str, mode_calls: list[Call]) -> dict[str, str] | None:
    n_mode = len(mode_calls)
    if n_mode < 10:
        return None
    per_model = Counter(first_choice_model(c) for c in mode_calls)
    top = largest_first(per_model)[0]
    n_top = per_model[top]
    if 2 * n_top < n_mode:  # must hold >= 50%
        return None
    tasks = sorted({c["task_type"] for c in mode_calls if first_choice_model(c) == top})
    on_tasks = [c for c in window if c["task_type"] in tasks]

    def rate(model: str) -> Fraction:
        model_calls = [c for c in on_tasks if first_choice_model(c) == model]
        return Fraction(count(model_calls, lambda c: c["failure_mode"] == mode), len(model_calls))

    calls_on_tasks = Counter(first_choice_model(c) for c in on_tasks)
    candidates = [m for m, k in calls_on_tasks.items() if m != top and k >= 20]
    if not candidates:
        return None
    best = min(candidates, key=lambda m: (rate(m), m))
    rate_top, rate_best = rate(top), rate(best)
    if not rate_best < rate_top:
        return None
    return {
        "issue": (
            f"{mode} failures concentrate on {top}: {n_top} of {n_mode} "
            f"({float(Fraction(n_top, n_mode)):.0%})"
        ),
        "recommendation": (
            f"Route {', '.join(tasks)} tasks from {top} to {best}: its {mode} rate there is "
            f"{float(rate_best):.1%} against {float(rate_top):.1%}"
        ),
        "expected_improvement": (
            f"{float(1 - rate_best / rate_top):.0%} fewer {mode} failures on those tasks"
        ),
    }


def failures(
    calls: list[Call], *, days: int, end_date: date, zone: str = UTC_NAME
) -> dict[str, Any]:
    window = in_window(calls, days, end_date, zone)
    failed = [c for c in window if c["failure_mode"] is not None]
    n_failed = len(failed)

    by_mode: dict[str, Any] = {}
    recommendations = []
    for mode, mode_calls in group(failed, lambda c: c["failure_mode"]).items():
        per_model = Counter(first_choice_model(c) for c in mode_calls)
        affected = [m for m in largest_first(per_model) if 10 * per_model[m] >= len(mode_calls)]
        triggers = Counter(c["failure_trigger"] for c in mode_calls if c["failure_trigger"])
        by_mode[mode] = {
            "count": len(mode_calls),
            "percentage": rnd(Fraction(len(mode_calls), n_failed), 3),
            "affected_models": affected[:5],
            "common_triggers": top_names(triggers, 3),
        }
        rec = mitigation(window, mode, mode_calls)
        if rec is not None:
            recommendations.append(rec)

    by_first_choice = group(window, first_choice_model)
    model_failures = {
        m: [c for c in mc if c["failure_mode"] is not None] for m, mc in by_first_choice.items()
    }
    model_order = sorted(by_first_choice, key=lambda m: (-len(model_failures[m]), m))
    by_model = {
        m: {
            "total_calls": len(by_first_choice[m]),
            "failures": len(model_failures[m]),
            "failure_rate": rnd(Fraction(len(model_failures[m]), len(by_first_choice[m])), 3),
            "top_failure_modes": top_names(
                Counter(c["failure_mode"] for c in model_failures[m]), 2
            ),
        }
        for m in model_order
    }

    return {
        "period": period(days, end_date, zone),
        "summary": {
            "total_failures": n_failed,
            "failure_rate": rnd(ratio(n_failed, len(window)), 3),
            "retries_succeeded": count(window, lambda c: c["recovery"] == "retry"),
            "fallback_succeeded": count(window, lambda c: c["recovery"] == "fallback"),
            "unrecoverable": count(window, lambda c: c["status"] == "error"),
        },
        "by_failure_mode": by_mode,
        "by_model": by_model,
        "mitigation_recommendations": recommendations,
        "data_as_of": DATA_AS_OF,
    }


# ---------------------------------------------------------------- providers

P95 = Fraction(95, 100)
P99 = Fraction(99, 100)


def in_range(calls: list[Call], start: datetime, end: datetime) -> list[Call]:
    """Calls with start <= created_at < end."""
    return [c for c in calls if start <= c["created_at"] < end]


def error_rate(first_choice_calls: list[Call]) -> Fraction | None:
    return ratio(count(first_choice_calls, provider_side), len(first_choice_calls))


def status_of(last_calls: list[Call]) -> str:
    rate = error_rate(last_calls)
    if rate is None:
        return "unknown"
    if rate >= Fraction(25, 100):
        return "outage"
    if rate >= Fraction(5, 100):
        return "degraded"
    return "operational"


def relative_change(current: Fraction | None, previous: Fraction | None) -> Fraction | None:
    if current is None or previous is None or previous == 0:
        return None
    return (current - previous) / previous


def trend_word(change: Fraction | None) -> str:
    if change is None:
        return "stable"
    if change <= Fraction(-5, 100):
        return "improving"
    if change >= Fraction(5, 100):
        return "degrading"
    return "stable"


def providers(calls: list[Call], *, hours: int, end_time: datetime) -> dict[str, Any]:
    end = utc(end_time)
    assert end.second == 0 and end.microsecond == 0 and end.minute % 5 == 0, "not truncated"
    start = end - timedelta(hours=hours)
    window = in_range(calls, start, end)
    previous = in_range(calls, start - timedelta(hours=hours), start)
    # 5-minute intervals of the window; start is on the UTC 5-minute clock as end is.
    n_intervals = hours * 12
    intervals = [start + i * FIVE_MINUTES for i in range(n_intervals)]

    names = {c["provider"] for c in window} | {first_choice_provider(c) for c in window}
    served = {p: [c for c in window if c["provider"] == p] for p in names}
    chosen = {p: [c for c in window if first_choice_provider(c) == p] for p in names}
    order = sorted(names, key=lambda p: (-len(served[p]), -len(chosen[p]), p))

    body: dict[str, Any] = {}
    trends: dict[str, Any] = {}
    latency_recs: list[dict[str, str]] = []
    error_recs: list[dict[str, str]] = []
    for p in order:
        per_interval = [in_range(chosen[p], t, t + FIVE_MINUTES) for t in intervals]
        with_traffic = [ic for ic in per_interval if ic]
        up = count(with_traffic, lambda ic: defined(error_rate(ic)) < Fraction(1, 2))
        last_three = [c for ic in per_interval[-3:] for c in ic]
        status = status_of(last_three)

        incidents = []
        run: list[int] = []
        for i, ic in enumerate([*per_interval, []]):  # a sentinel closes a trailing run
            bad = len(ic) >= 10 and defined(error_rate(ic)) >= Fraction(25, 100)
            if bad:
                run.append(i)
                continue
            if run:
                reaches_edge = run[-1] == n_intervals - 1
                incidents.append(
                    {
                        "started_at": iso(intervals[run[0]]),
                        "ended_at": None
                        if reaches_edge
                        else iso(intervals[run[-1]] + FIVE_MINUTES),
                        "peak_error_rate": rnd(
                            max(defined(error_rate(per_interval[j])) for j in run), 3
                        ),
                        "affected_calls": sum(count(per_interval[j], provider_side) for j in run),
                    }
                )
                run = []

        latencies = [c["latency_ms"] for c in served[p]]
        p95 = nearest_rank(latencies, P95)
        body[p] = {
            "status": status,
            "uptime": rnd(ratio(up, len(with_traffic)), 3),
            "avg_latency_ms": rnd(mean(latencies), 0),
            "p95_latency_ms": p95,
            "p99_latency_ms": nearest_rank(latencies, P99),
            "error_rate": rnd(error_rate(chosen[p]), 3),
            "rate_limit_hits": count(chosen[p], lambda c: c["failure_mode"] == "rate_limited"),
            "incidents": incidents,
        }

        prev_served = [c for c in previous if c["provider"] == p]
        prev_chosen = [c for c in previous if first_choice_provider(c) == p]
        latency_change = relative_change(
            mean(latencies), mean(c["latency_ms"] for c in prev_served)
        )
        error_change = relative_change(error_rate(chosen[p]), error_rate(prev_chosen))
        trends[p] = {
            "latency_trend": trend_word(latency_change),
            "error_trend": trend_word(error_change),
            "vs_previous_period": {
                "latency_change": rnd(latency_change, 2),
                "error_change": rnd(error_change, 2),
            },
        }

        if p95 is not None:
            rec = latency_recommendation(p, p95, served[p], window)
            if rec is not None:
                latency_recs.append(rec)
        if status in ("degraded", "outage"):
            last_rate = float(defined(error_rate(last_three)))
            error_recs.append(
                {
                    "provider": p,
                    "message": (f"Error rate over the last 15 minutes is {last_rate:.1%}"),
                    "action": "Route first-choice traffic to a fallback provider until it recovers",
                }
            )

    return {
        "period": {"start_time": iso(start), "end_time": iso(end), "hours": hours},
        "providers": body,
        "trends": trends,
        "recommendations": latency_recs + error_recs,
        "data_as_of": DATA_AS_OF,
    }


def latency_recommendation(
    provider: str, window_p95: int, served: list[Call], window: list[Call]
) -> dict[str, str] | None:
    def hour(c: Call) -> int:
        return utc(c["created_at"]).hour

    slow_hours = []
    for h in range(24):
        in_hour = [c["latency_ms"] for c in served if hour(c) == h]
        if len(in_hour) >= 20 and 4 * defined(nearest_rank(in_hour, P95)) >= 5 * window_p95:
            slow_hours.append(h)
    if not slow_hours:
        return None

    others = sorted({c["provider"] for c in window} - {provider})
    alternatives = []
    for q in others:
        in_hours = [c["latency_ms"] for c in window if c["provider"] == q and hour(c) in slow_hours]
        if len(in_hours) >= 20:
            alternatives.append((nearest_rank(in_hours, P95), q))
    if alternatives:
        alt = min(alternatives)[1]  # lowest p95, ties by name
        action = f"Consider routing latency-sensitive traffic to {alt} during these hours"
    else:
        action = "Consider a faster fallback provider during these hours"
    return {
        "provider": provider,
        "message": (
            f"p95 latency is at least 1.25x its window p95 ({window_p95} ms) "
            f"during UTC hours {', '.join(str(h) for h in slow_hours)}"
        ),
        "action": action,
    }


# ---------------------------------------------------------------- daily


def slope(points: list[tuple[int, Fraction]]) -> Fraction:
    """Least-squares slope of y on x (needs at least two distinct x)."""
    n = len(points)
    mean_x = Fraction(sum(x for x, _ in points), n)
    mean_y = sum((y for _, y in points), Fraction(0)) / n
    num = sum(((x - mean_x) * (y - mean_y) for x, y in points), Fraction(0))
    den = sum(((x - mean_x) ** 2 for x, _ in points), Fraction(0))
    return num / den


def growth(values: list[Fraction]) -> Fraction | None:
    """Least-squares slope of the daily values / their mean; None under 2 days or mean 0."""
    if len(values) < 2:
        return None
    average = sum(values, Fraction(0)) / len(values)
    if average == 0:
        return None
    return slope(list(enumerate(values))) / average


def direction(value: Fraction | None, threshold: Fraction, up: str, down: str) -> str:
    if value is None:
        return "stable"
    if value > threshold:
        return up
    if value < -threshold:
        return down
    return "stable"


def daily(
    calls: list[Call], *, days: int, end_date: date, today: date, zone: str = UTC_NAME
) -> dict[str, Any]:
    """``today`` is the caller's today in the zone; its day is left out of the trends."""
    window_dates = window_days(days, end_date)
    per_day = {d: [c for c in calls if day_of(c, zone) == d] for d in window_dates}

    daily_data = [
        {
            "date": d.isoformat(),
            "total_calls": len(dc),
            "total_cost_usd": rnd(total(money(c) for c in dc), 2),
            "avg_latency_ms": rnd(avg_latency(dc), 0),
            "success_rate": rnd(success_rate(dc), 3),
            "model_distribution": {m: len(mc) for m, mc in group(dc, lambda c: c["model"]).items()},
            "task_distribution": {
                t: len(tc) for t, tc in group(dc, lambda c: c["task_type"]).items()
            },
        }
        for d, dc in per_day.items()
    ]

    complete = [d for d in window_dates if d != today]
    calls_growth = growth([Fraction(len(per_day[d])) for d in complete])
    cost_growth = growth([total(money(c) for c in per_day[d]) for d in complete])
    quality_points = []
    for d in complete:
        q = mean_quality(per_day[d])
        if q is not None:
            quality_points.append(((d - complete[0]).days, q))  # x in days, gaps kept
    quality_slope = slope(quality_points) if len(quality_points) >= 2 else None

    # daily's period keeps SPEC section 4's local dates (YYYY-MM-DD); a zone adds its name.
    daily_period = {
        "start_date": window_dates[0].isoformat(),
        "end_date": end_date.isoformat(),
        "timezone": zone,
    }
    one_percent = Fraction(1, 100)
    return {
        "period": daily_period,
        "daily_data": daily_data,
        "trends": {
            "calls_trend": direction(calls_growth, one_percent, "increasing", "decreasing"),
            "cost_trend": direction(cost_growth, one_percent, "increasing", "decreasing"),
            "quality_trend": direction(quality_slope, Fraction(1, 1000), "improving", "declining"),
            "avg_daily_growth": rnd(calls_growth, 3),
        },
        "data_as_of": DATA_AS_OF,
    }


# ---------------------------------------------------------------- breakdown (SPEC section 10)


def dimension(group_by: str) -> Callable[[Call], str | None]:
    """The value a call has for `group_by`: served model or provider, task type, user_id, or
    one metadata key (None: the call lacks it, the null group; an empty string counts as
    none, docs/metrics.md)."""
    if group_by in ("model", "provider", "task_type"):
        return lambda c: c[group_by]
    if group_by == "user":
        return lambda c: c.get("user_id") or None
    key = group_by.removeprefix("metadata.")
    assert key != group_by, group_by
    return lambda c: (c.get("metadata") or {}).get(key) or None


def breakdown_order(value: str | None, calls: list[Call]) -> tuple[Fraction, int, int, str]:
    """Exact cost descending, then calls descending, then value ascending (null last)."""
    return (-total(money(c) for c in calls), -len(calls), value is None, value or "")


def breakdown(
    calls: list[Call],
    *,
    group_by: str,
    days: int,
    end_date: date,
    zone: str = UTC_NAME,
    values: list[str] | None = None,
    series: bool = False,
) -> dict[str, Any]:
    """Every group of the window (no paging: a service's pages, concatenated, must equal
    these groups), with `values` keeping only those values (the null group has no value to
    ask for). `totals` are over every call of the window, whatever `values` says."""
    window = in_window(calls, days, end_date, zone)
    key = dimension(group_by)
    by_value: dict[str | None, list[Call]] = {}
    for c in window:
        by_value.setdefault(key(c), []).append(c)
    window_cost = total(money(c) for c in window)
    dates = window_days(days, end_date)
    groups = []
    for value, group_calls in sorted(by_value.items(), key=lambda kv: breakdown_order(*kv)):
        if values is not None and value not in values:
            continue
        n = len(group_calls)
        entry: dict[str, Any] = {
            "value": value,
            "calls": n,
            "total_cost_usd": rnd(total(money(c) for c in group_calls), 2),
            # null when the window cost nothing
            "cost_share": rnd(total(money(c) for c in group_calls) / window_cost, 3)
            if window_cost
            else None,
            "input_tokens": sum(c["input_tokens"] for c in group_calls),
            "output_tokens": sum(c["output_tokens"] for c in group_calls),
            "avg_cost_per_call": rnd(avg_cost(group_calls), 5),
            "avg_latency_ms": rnd(avg_latency(group_calls), 0),
            "success_rate": rnd(success_rate(group_calls), 3),
            "failure_rate": rnd(
                ratio(count(group_calls, lambda c: c["failure_mode"] is not None), n), 3
            ),
            "quality_score": rnd(mean_quality(group_calls), 3),
        }
        if series:
            per_day = {d: [c for c in group_calls if day_of(c, zone) == d] for d in dates}
            entry["daily"] = [
                {
                    "date": d.isoformat(),
                    "calls": len(per_day[d]),
                    "total_cost_usd": rnd(total(money(c) for c in per_day[d]), 2),
                }
                for d in dates
            ]
        groups.append(entry)
    return {
        "period": period(days, end_date, zone),
        "group_by": group_by,
        "totals": {
            "calls": len(window),
            "total_cost_usd": rnd(window_cost, 2),
            "input_tokens": sum(c["input_tokens"] for c in window),
            "output_tokens": sum(c["output_tokens"] for c in window),
        },
        "groups": groups,
    }
