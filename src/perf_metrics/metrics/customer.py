"""GET /v1/metrics/customer: usage, calendar-month cost figures, savings against gpt-4o,
preferences and behaviour."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from perf_metrics.metrics import queries as q
from perf_metrics.metrics.aggregates import ZERO, by_model, task_calls
from perf_metrics.metrics.numbers import largest_first, money, rate, ratio, rnd
from perf_metrics.metrics.query import DayQuery
from perf_metrics.zones import days_in_month, month_start, previous_month_start

MILLION = Decimal(1_000_000)
GPT4O = "gpt-4o"
GPT4O_LIST_PRICE = (Decimal("2.50"), Decimal("10.00"))  # used only if the price row is missing


def cost_analysis_months(daily_cost: dict[date, Decimal], today: date) -> dict[str, Any]:
    """SPEC §5 customer.cost_analysis month figures, `today` being the window's end_date."""

    def cost(start: date, end: date) -> Decimal:  # inclusive
        return sum((c for d, c in daily_cost.items() if start <= d <= end), ZERO)

    this_month = month_start(today)
    prev_start = previous_month_start(today)
    prev_len = days_in_month(prev_start)
    current = cost(this_month, today)
    previous = cost(prev_start, this_month - timedelta(days=1))
    comparable = cost(prev_start, prev_start.replace(day=min(today.day, prev_len)))
    month_days = days_in_month(today)
    before_today = cost(this_month, today - timedelta(days=1))
    daily_rate = Fraction(cost(today - timedelta(days=7), today - timedelta(days=1))) / 7
    projected = Fraction(before_today) + daily_rate * (month_days - today.day + 1)
    change = ratio((current - comparable) * 100, comparable)
    return {
        "current_month": money(current),
        "previous_month": money(previous),
        "change_percentage": rnd(change, 1),
        "projected_month_end": money(projected),
    }


async def answer(conn: AsyncConnection, query: DayQuery) -> dict[str, Any]:
    window, scope = query.window, query.scope
    today = window.end
    first_day = min(window.start, previous_month_start(today), today - timedelta(days=7))
    totals = await q.select_account_totals(conn, query)
    hour_calls = await q.select_hour_calls(conn, query)
    # The month figures reach back to the previous month's 1st and a week before end_date.
    day_rows = await q.select_daily_rows(conn, query.over(window.over(first_day, today)))
    model_rows = await q.select_model_totals(conn, query)
    settings = await q.select_settings_and_price(conn, scope.account_id, GPT4O)
    price_in, price_out = (
        (settings.input_usd_per_mtok, settings.output_usd_per_mtok)
        if settings.input_usd_per_mtok is not None
        else GPT4O_LIST_PRICE
    )
    n = totals.calls
    cost_if_gpt4o = (totals.input_tokens * price_in + totals.output_tokens * price_out) / MILLION
    savings = cost_if_gpt4o - totals.cost_usd
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
