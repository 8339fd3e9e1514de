"""Alert rules (SPEC §11): their params, their values, their states, their evaluation.

Each value is read by the code that answers the metrics endpoints, not a second copy of a
formula: the budget rules take customer's `cost_analysis_months` over the daily rollup, the
provider rule takes providers' `status` over the same 15 minutes, and the failure-rate rule
counts the per-account 5-minute rollup (`rollup_account_5m`) with the endpoints' `rate`.

A rule is `ok` or `firing`. An evaluation whose condition disagrees with the state counts
towards a flip; a budget rule flips at once, a rate or status rule at the second such
evaluation in a row (one that agrees resets the count). Only a flip makes an event:
`alert.firing` or `alert.resolved`, with a `sequence` one higher than the alert's last, written
with the alert's new state in one transaction (the outbox, webhooks/delivery.py). An
evaluation that fails keeps the state and records its error: a rule never turns `ok` because
its data could not be read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

import orjson
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from perf_metrics import observability
from perf_metrics.alerts.tables import ALERT_TYPES, alerts
from perf_metrics.db import accounts
from perf_metrics.errors import InvalidParameter
from perf_metrics.metrics import queries as q
from perf_metrics.metrics.customer import cost_analysis_months
from perf_metrics.metrics.numbers import rate
from perf_metrics.metrics.providers import provider_status
from perf_metrics.metrics.query import HourQuery, MetricsQuery, Scope
from perf_metrics.metrics.windows import DayWindow, HourWindow, floor_5min
from perf_metrics.webhooks import delivery
from perf_metrics.zones import Zone, iso_z, previous_month_start

log = logging.getLogger("perf_metrics.alerts")

# How often each type is evaluated (seconds); every rule is also evaluated when created.
CADENCE_S = {
    "projected_month_end": 3600,
    "month_to_date_cost": 300,
    "failure_rate": 60,
    "provider_status": 300,
}
# Evaluations in a row that flip a state.
IN_A_ROW = {
    "projected_month_end": 1,
    "month_to_date_cost": 1,
    "failure_rate": 2,
    "provider_status": 2,
}
STATUS_LEVELS = ("degraded", "outage")
MAX_BUDGET = Decimal("1000000000")
EVALUATION_BATCH = 200

Clock = Callable[[], datetime]


# --- params ------------------------------------------------------------------------------


def _number(params: dict[str, Any], name: str, default: Any = None) -> Decimal:
    raw = params.get(name, default)
    if raw is None:
        raise InvalidParameter(f"params.{name} is required.", param=f"params.{name}")
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise InvalidParameter(f"params.{name} must be a number.", param=f"params.{name}")
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise InvalidParameter(f"params.{name} must be a number.", param=f"params.{name}") from None
    if not value.is_finite():
        raise InvalidParameter(f"params.{name} must be a number.", param=f"params.{name}")
    return value


def _whole(params: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name, default)
    if isinstance(raw, bool) or not isinstance(raw, int) or not low <= raw <= high:
        raise InvalidParameter(
            f"params.{name} must be a whole number from {low} to {high}.", param=f"params.{name}"
        )
    return raw


def checked_params(alert_type: str, params: Any) -> dict[str, Any]:
    """The params of a rule of `alert_type`, checked, with their defaults filled in; a 400
    naming the first that is wrong."""
    if alert_type not in ALERT_TYPES:
        raise InvalidParameter(f"'type' must be one of: {', '.join(ALERT_TYPES)}.", param="type")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise InvalidParameter("'params' must be an object.", param="params")
    known = {
        "projected_month_end": ("budget_usd",),
        "month_to_date_cost": ("budget_usd",),
        "failure_rate": ("threshold", "window_minutes", "min_calls"),
        "provider_status": ("provider", "level"),
    }[alert_type]
    for name in params:
        if name not in known:
            raise InvalidParameter(
                f"Unknown param '{name}' for a {alert_type} alert; it takes: {', '.join(known)}.",
                param=f"params.{name}",
            )
    if alert_type in ("projected_month_end", "month_to_date_cost"):
        budget = _number(params, "budget_usd")
        if not 0 < budget <= MAX_BUDGET:
            raise InvalidParameter(
                f"params.budget_usd must be above 0 and at most {MAX_BUDGET}.",
                param="params.budget_usd",
            )
        return {"budget_usd": float(budget)}
    if alert_type == "failure_rate":
        threshold = _number(params, "threshold")
        if not 0 <= threshold <= 1:
            raise InvalidParameter(
                "params.threshold must be from 0 to 1.", param="params.threshold"
            )
        window = _whole(params, "window_minutes", 60, 5, 1440)
        if window % 5:
            raise InvalidParameter(
                "params.window_minutes must be a multiple of 5.", param="params.window_minutes"
            )
        min_calls = _whole(params, "min_calls", 20, 1, 1_000_000_000)
        return {"threshold": float(threshold), "window_minutes": window, "min_calls": min_calls}
    provider = params.get("provider")
    if not isinstance(provider, str) or not 1 <= len(provider) <= 100:
        raise InvalidParameter(
            "params.provider must be a provider's name (1-100 characters).",
            param="params.provider",
        )
    level = params.get("level", "outage")
    if level not in STATUS_LEVELS:
        raise InvalidParameter(
            f"params.level must be one of: {', '.join(STATUS_LEVELS)}.", param="params.level"
        )
    return {"provider": provider, "level": level}


# --- values ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reading:
    """One evaluation's value (as events and the API show it) and whether it breaches."""

    value: Any
    breached: bool


@dataclass(frozen=True, slots=True)
class Rule:
    """What evaluating a rule needs to know of it."""

    account_id: str
    environment: str
    type: str
    params: dict[str, Any]
    timezone: str

    @property
    def scope(self) -> Scope:
        return Scope(self.account_id, self.environment)


MonthCache = dict[tuple[str, str, str], dict[str, Any]]


async def _month_figures(
    conn: AsyncConnection, rule: Rule, now: datetime, cache: MonthCache
) -> dict[str, Any]:
    """customer's cost_analysis month figures for today (SPEC §5), in the account's zone;
    once per evaluation pass and account (its two budget rules read the same days)."""
    key = (rule.account_id, rule.environment, rule.timezone)
    if key not in cache:
        zone = Zone.named(rule.timezone)
        today = zone.today(now)
        first = min(previous_month_start(today), today - timedelta(days=7))
        query = MetricsQuery(rule.scope, DayWindow(first, today, zone))
        rows = await q.select_daily_rows(conn, query)
        cache[key] = cost_analysis_months({r.day: r.cost_usd for r in rows}, today)
    return cache[key]


def _at_or_over(value: float, budget: Any) -> bool:
    return Decimal(str(value)) >= Decimal(str(budget))


async def _budget(
    conn: AsyncConnection, rule: Rule, now: datetime, field: str, cache: MonthCache
) -> Reading:
    value = (await _month_figures(conn, rule, now, cache))[field]
    return Reading(value, _at_or_over(value, rule.params["budget_usd"]))


def failure_window(now: datetime, minutes: int) -> tuple[datetime, datetime]:
    """The 5-minute buckets of the last `minutes`, the current one (up to `now`) the last of
    them: `[start, end)`. With the current bucket in, each minute's evaluation sees the calls
    of the minute before, so two breaches in a row are two readings, not one read twice."""
    end = floor_5min(now) + timedelta(minutes=5)
    return end - timedelta(minutes=minutes), end


async def _failure_rate(conn: AsyncConnection, rule: Rule, now: datetime) -> Reading:
    start, end = failure_window(now, rule.params["window_minutes"])
    row = await q.select_recent_failures(conn, rule.scope, start, end)
    calls, failures = int(row.calls), int(row.failures)
    threshold = Fraction(str(rule.params["threshold"]))
    breached = calls >= rule.params["min_calls"] and Fraction(failures, calls) >= threshold
    return Reading(rate(failures, calls), breached)


ProviderCache = dict[tuple[str, datetime], dict[str, str]]


async def provider_statuses(
    conn: AsyncConnection, environment: str, now: datetime, cache: ProviderCache
) -> dict[str, str]:
    """providers' `status` of every provider with first-choice calls in the last 15 minutes
    of `environment` (platform-wide), once per evaluation pass and 5-minute bucket."""
    end = floor_5min(now)
    key = (environment, end)
    if key not in cache:
        window = HourWindow(end - timedelta(hours=1), end, 1)
        query: HourQuery = MetricsQuery(Scope("", environment), window)
        cache[key] = {
            r.provider: provider_status(int(r.fc_calls), int(r.fc_provider_failures))
            for r in await q.select_recent_errors(conn, query)
        }
    return cache[key]


async def _provider(
    conn: AsyncConnection, rule: Rule, now: datetime, cache: ProviderCache
) -> Reading:
    status = (await provider_statuses(conn, rule.environment, now, cache)).get(
        rule.params["provider"], "unknown"
    )
    wanted = STATUS_LEVELS[STATUS_LEVELS.index(rule.params["level"]) :]
    return Reading(status, status in wanted)


async def read(
    conn: AsyncConnection,
    rule: Rule,
    now: datetime,
    providers: ProviderCache | None = None,
    months: MonthCache | None = None,
) -> Reading:
    """The rule's value now, and whether it breaches (the caches: readings of one pass)."""
    if rule.type == "projected_month_end":
        return await _budget(
            conn, rule, now, "projected_month_end", {} if months is None else months
        )
    if rule.type == "month_to_date_cost":
        return await _budget(conn, rule, now, "current_month", {} if months is None else months)
    if rule.type == "failure_rate":
        return await _failure_rate(conn, rule, now)
    return await _provider(conn, rule, now, {} if providers is None else providers)


# --- states ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Step:
    state: str
    streak: int
    changed: bool


def step(alert_type: str, state: str, streak: int, breached: bool) -> Step:
    """The state after one evaluation: a flip once IN_A_ROW evaluations disagree with it."""
    if breached == (state == "firing"):
        return Step(state, 0, False)
    if streak + 1 >= IN_A_ROW[alert_type]:
        return Step("ok" if state == "firing" else "firing", 0, True)
    return Step(state, streak + 1, False)


def next_due(alert_type: str, now: datetime) -> datetime:
    return now + timedelta(seconds=CADENCE_S[alert_type])


def event_data(row: Any, new: Step, value: Any, now: datetime, sequence: int) -> dict[str, Any]:
    """An alert event's `data` (SPEC §11)."""
    return {
        "alert_id": row.id,
        "name": row.name,
        "type": row.type,
        "state": new.state,
        "previous_state": row.state,
        "value": value,
        "params": row.params,
        "evaluated_at": iso_z(now),
        "account_id": row.account_id,
        "environment": row.environment,
        "sequence": sequence,
    }


DUE = (
    select(alerts, accounts.c.timezone)
    .join(accounts, accounts.c.id == alerts.c.account_id)
    .where(alerts.c.enabled)
    .order_by(alerts.c.next_eval_at)
    .with_for_update(of=alerts, skip_locked=True)
)


# A batch's new states, written in one statement (the rows are locked by the batch).
WRITE_STATES = text(
    """UPDATE alerts a SET state = x.state, streak = x.streak, value = x.value::jsonb,
       evaluated_at = :now, last_error = x.last_error, next_eval_at = x.next_eval_at,
       sequence = x.sequence
FROM unnest(CAST(:accounts AS text[]), CAST(:ids AS text[]), CAST(:states AS text[]),
            CAST(:streaks AS int[]), CAST(:values AS text[]), CAST(:errors AS text[]),
            CAST(:due AS timestamptz[]), CAST(:sequences AS bigint[]))
  AS x(account_id, id, state, streak, value, last_error, next_eval_at, sequence)
WHERE a.account_id = x.account_id AND a.id = x.id"""
)


@dataclass(slots=True)
class Pass:
    """One batch's evaluations: what they share (readings of the same data), and the new
    state of each alert, written together at the end (`write`)."""

    now: datetime
    providers: ProviderCache
    months: dict[tuple[str, str, str], dict[str, Any]]
    states: list[tuple[Any, ...]]

    async def write(self, conn: AsyncConnection) -> None:
        if self.states:
            columns = list(map(list, zip(*self.states, strict=True)))
            names = ("accounts", "ids", "states", "streaks", "values", "errors", "due")
            binds = dict(zip((*names, "sequences"), columns, strict=True))
            await conn.execute(WRITE_STATES, {**binds, "now": self.now})


def _rule(row: Any) -> Rule:
    return Rule(row.account_id, row.environment, row.type, row.params, row.timezone)


async def _readings(
    conn: AsyncConnection, rows: Sequence[Any], batch: Pass
) -> list[Reading | Exception]:
    """Every row's reading: all in one savepoint, or, if one fails, each in its own (a
    failed statement aborts its savepoint; the others' readings must not go with it)."""
    try:
        async with conn.begin_nested():
            return [
                await read(conn, _rule(row), batch.now, batch.providers, batch.months)
                for row in rows
            ]
    except Exception:  # noqa: S110 (found again below, row by row)
        pass
    found: list[Reading | Exception] = []
    for row in rows:
        try:
            async with conn.begin_nested():
                found.append(await read(conn, _rule(row), batch.now, batch.providers, batch.months))
        except Exception as exc:
            log.exception("alert %s could not be evaluated", row.id)
            found.append(exc)
    return found


async def evaluate(
    conn: AsyncConnection, row: Any, reading: Reading | Exception, batch: Pass
) -> str | None:
    """One alert row's evaluation (the row locked by the caller): its new state goes to
    `batch`, and its event, when it flips, is written in the caller's transaction. A failed
    reading keeps the state and records the error. Returns the event's type, if any."""
    now = batch.now
    due = next_due(row.type, now)
    if isinstance(reading, Exception):
        observability.ALERT_EVALUATIONS.labels(row.type, "error").inc()
        error = f"{type(reading).__name__}: {reading}"[:500]
        value = orjson.dumps(row.value).decode()
        batch.states.append(
            (row.account_id, row.id, row.state, row.streak, value, error, due, row.sequence)
        )
        return None
    observability.ALERT_EVALUATIONS.labels(row.type, "ok").inc()
    new = step(row.type, row.state, row.streak, reading.breached)
    sequence = row.sequence + 1 if new.changed else row.sequence
    value = orjson.dumps(reading.value).decode()
    batch.states.append((row.account_id, row.id, new.state, new.streak, value, None, due, sequence))
    if not new.changed:
        return None
    event_type = "alert.firing" if new.state == "firing" else "alert.resolved"
    await delivery.enqueue(
        conn,
        account_id=row.account_id,
        environment=row.environment,
        event_type=event_type,
        data=event_data(row, new, reading.value, now, sequence),
        now=now,
        alert_id=row.id,
        endpoint_ids=row.endpoint_ids,
    )
    return event_type


async def evaluate_due(engine: AsyncEngine, clock: Clock, *, limit: int = EVALUATION_BATCH) -> int:
    """Claim the due rules (FOR UPDATE SKIP LOCKED: another worker takes others) and evaluate
    them in one transaction. Returns how many were evaluated."""
    async with engine.begin() as conn:
        now = clock()
        rows = (await conn.execute(DUE.where(alerts.c.next_eval_at <= now).limit(limit))).all()
        batch = Pass(now, {}, {}, [])
        for row in rows:
            observability.ALERT_EVALUATION_LAG.observe(
                max(0.0, (now - row.next_eval_at).total_seconds())
            )
        for row, reading in zip(rows, await _readings(conn, rows, batch), strict=True):
            await evaluate(conn, row, reading, batch)
        await batch.write(conn)
    return len(rows)


async def preview(conn: AsyncConnection, row: Any, timezone: str, now: datetime) -> dict[str, Any]:
    """What evaluating the alert now would find; nothing is written or sent."""
    rule = Rule(row.account_id, row.environment, row.type, row.params, timezone)
    reading = await read(conn, rule, now)
    new = step(row.type, row.state, row.streak, reading.breached)
    return {
        "alert_id": row.id,
        "type": row.type,
        "value": reading.value,
        "breached": reading.breached,
        "state": row.state,
        "state_after": new.state,
        "would_send": ("alert.firing" if new.state == "firing" else "alert.resolved")
        if new.changed
        else None,
        "evaluated_at": iso_z(now),
    }
