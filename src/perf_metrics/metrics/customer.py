"""GET /v1/metrics/customer: usage, calendar-month cost figures and the monthly budget,
savings against gpt-4o and a baseline model, preferences and behaviour."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction
from types import SimpleNamespace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from perf_metrics.errors import InvalidParameter
from perf_metrics.metrics import queries as q
from perf_metrics.metrics.aggregates import ZERO, by_model, task_calls
from perf_metrics.metrics.numbers import largest_first, money, rate, ratio, rnd
from perf_metrics.metrics.query import DayQuery
from perf_metrics.zones import days_in_month, month_start, previous_month_start

MILLION = Decimal(1_000_000)
GPT4O = "gpt-4o"
# Used only if the price table has no gpt-4o row.
GPT4O_LIST_PRICE = SimpleNamespace(
    effective_from=date(2000, 1, 1),
    input_usd_per_mtok=Decimal("2.50"),
    output_usd_per_mtok=Decimal("10.00"),
)


def _cost_between(daily_cost: dict[date, Decimal], start: date, end: date) -> Decimal:
    return sum((c for d, c in daily_cost.items() if start <= d <= end), ZERO)  # inclusive


def _daily_rate(daily_cost: dict[date, Decimal], today: date) -> Fraction:
    """SPEC §5's R: the mean cost of the 7 days before today."""
    return (
        Fraction(_cost_between(daily_cost, today - timedelta(days=7), today - timedelta(days=1)))
        / 7
    )


def cost_analysis_months(daily_cost: dict[date, Decimal], today: date) -> dict[str, Any]:
    """SPEC §5 customer.cost_analysis month figures, `today` being the window's end_date."""

    def cost(start: date, end: date) -> Decimal:
        return _cost_between(daily_cost, start, end)

    this_month = month_start(today)
    prev_start = previous_month_start(today)
    prev_len = days_in_month(prev_start)
    current = cost(this_month, today)
    previous = cost(prev_start, this_month - timedelta(days=1))
    comparable = cost(prev_start, prev_start.replace(day=min(today.day, prev_len)))
    month_days = days_in_month(today)
    before_today = cost(this_month, today - timedelta(days=1))
    projected = Fraction(before_today) + _daily_rate(daily_cost, today) * (
        month_days - today.day + 1
    )
    change = ratio((current - comparable) * 100, comparable)
    return {
        "current_month": money(current),
        "previous_month": money(previous),
        "change_percentage": rnd(change, 1),
        "projected_month_end": money(projected),
    }


def budget(daily_cost: dict[date, Decimal], today: date, monthly: Decimal) -> dict[str, Any]:
    """SPEC §14 customer.cost_analysis.budget: this (local) month's spending against it."""
    this_month = month_start(today)
    spent = _cost_between(daily_cost, this_month, today)
    before_today = Fraction(_cost_between(daily_cost, this_month, today - timedelta(days=1)))
    rate_per_day = _daily_rate(daily_cost, today)
    days_left = days_in_month(today) - today.day + 1  # counting today
    exceed: date | None = None
    if spent >= monthly:
        status = "over"
        running = ZERO
        for offset in range(today.day):  # the first day whose running total reached it
            running += daily_cost.get(this_month + timedelta(days=offset), ZERO)
            if running >= monthly:
                exceed = this_month + timedelta(days=offset)
                break
    else:
        status = "at_risk" if before_today + rate_per_day * days_left >= monthly else "ok"
        if rate_per_day > 0:
            # The fewest days k (today the 1st of them) with before_today + R k >= budget.
            k = max(1, -(-(Fraction(monthly) - before_today) // rate_per_day))
            if k <= days_left:
                exceed = today + timedelta(days=int(k) - 1)
    return {
        "monthly_budget_usd": money(monthly),
        "spent": money(spent),
        "remaining": money(max(ZERO, monthly - spent)),
        "status": status,
        "projected_exceed_date": None if exceed is None else exceed.isoformat(),
    }


Prices = Sequence[Any]  # (effective_from, input, output) rows, oldest first


def priced_by_day(day_rows: Sequence[Any], prices: Prices) -> Decimal:
    """The rows' (day, input_tokens, output_tokens) priced at the price in force on each day:
    the latest taking effect on or before it (the first price for days before that one)."""
    starts = [p.effective_from for p in prices]
    total = ZERO
    for r in day_rows:
        price = prices[max(0, bisect_right(starts, r.day) - 1)]
        total += r.input_tokens * price.input_usd_per_mtok
        total += r.output_tokens * price.output_usd_per_mtok
    return total / MILLION


def _versus(cost_if: Decimal, cost: Decimal) -> tuple[float, float, float | None]:
    savings = cost_if - cost
    return money(cost_if), money(savings), rnd(ratio(savings * 100, cost_if), 1)


async def answer(conn: AsyncConnection, query: DayQuery) -> dict[str, Any]:
    window, scope = query.window, query.scope
    today = window.end
    first_day = min(window.start, previous_month_start(today), today - timedelta(days=7))
    totals = await q.select_account_totals(conn, query)
    hour_calls = await q.select_hour_calls(conn, query)
    # The month figures reach back to the previous month's 1st and a week before end_date.
    day_rows = await q.select_daily_rows(conn, query.over(window.over(first_day, today)))
    model_rows = await q.select_model_totals(conn, query)
    settings = await q.select_settings(conn, scope.account_id)
    baseline = query.baseline_model or GPT4O
    prices = await q.select_price_histories(conn, (GPT4O, baseline))
    if baseline not in prices:
        known = await q.select_priced_models(conn)
        raise InvalidParameter(
            f"'baseline_model' must be a model of the price table ({', '.join(known)}); "
            f"{baseline!r} has no price.",
            param="baseline_model",
        )
    baseline_prices, gpt4o_prices = prices[baseline], prices.get(GPT4O, [GPT4O_LIST_PRICE])
    in_window = [r for r in day_rows if window.start <= r.day <= window.end]
    n = totals.calls
    daily_cost = {r.day: r.cost_usd for r in day_rows}
    cost_if_gpt4o, savings, savings_pct = _versus(
        priced_by_day(in_window, gpt4o_prices), totals.cost_usd
    )
    cost_if_baseline, baseline_savings, baseline_pct = _versus(
        priced_by_day(in_window, baseline_prices), totals.cost_usd
    )
    models = by_model(model_rows)
    tasks = task_calls(model_rows)
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
            **cost_analysis_months(daily_cost, today),
            "vs_gpt4o_only": {
                "cost_if_gpt4o": cost_if_gpt4o,
                "savings_usd": savings,
                "savings_percentage": savings_pct,
            },
            "vs_baseline": {
                "model": baseline,
                "cost_if_baseline": cost_if_baseline,
                "savings_usd": baseline_savings,
                "savings_percentage": baseline_pct,
            },
            **(
                {}
                if settings.monthly_budget_usd is None
                else {"budget": budget(daily_cost, today, settings.monthly_budget_usd)}
            ),
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
