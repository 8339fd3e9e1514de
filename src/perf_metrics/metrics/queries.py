"""Reads of the rollups. Every account query starts from one scoped base: this account's rows
in this environment and day range, so tenant scoping is written once (`_scoped`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Row,
    Select,
    Table,
    and_,
    cast,
    func,
    literal,
    or_,
    select,
    tuple_,
    type_coerce,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import NullType

from perf_metrics.db import (
    account_daily,
    accounts,
    failure_daily,
    model_daily,
    model_prices,
    provider_5m,
    provider_hourly,
    trigger_daily,
)


def _scoped(table: Table, account_id: str, environment: str, start: date, end: date) -> Any:
    return and_(
        table.c.account_id == account_id,
        table.c.environment == environment,
        table.c.day >= start,
        table.c.day <= end,
    )


def _count_sum(column: Any) -> Any:
    """sum() of a bigint is numeric in Postgres; counts come back as int."""
    return cast(func.sum(column), BigInteger)


async def _all(conn: AsyncConnection, query: Select[Any]) -> Sequence[Row[Any]]:
    return (await conn.execute(query)).all()


async def select_account_days(
    conn: AsyncConnection, account_id: str, environment: str, start: date, end: date
) -> Sequence[Row[Any]]:
    """One row per day with calls: every per-day total the endpoints need."""
    t = account_daily
    return await _all(
        conn,
        select(t).where(_scoped(t, account_id, environment, start, end)).order_by(t.c.day),
    )


async def select_model_totals(
    conn: AsyncConnection,
    account_id: str,
    environment: str,
    start: date,
    end: date,
    task_type: str | None = None,
) -> Sequence[Row[Any]]:
    """Per task type x served model over the window."""
    t = model_daily
    query = (
        select(
            t.c.task_type,
            t.c.model,
            _count_sum(t.c.calls).label("calls"),
            _count_sum(t.c.successes).label("successes"),
            func.sum(t.c.cost_usd).label("cost_usd"),
            _count_sum(t.c.latency_sum).label("latency_sum"),
            func.sum(t.c.quality_sum).label("quality_sum"),
            _count_sum(t.c.quality_n).label("quality_n"),
        )
        .where(_scoped(t, account_id, environment, start, end))
        .group_by(t.c.task_type, t.c.model)
    )
    if task_type is not None:
        query = query.where(t.c.task_type == task_type)
    return await _all(conn, query)


async def select_daily_distributions(
    conn: AsyncConnection, account_id: str, environment: str, start: date, end: date
) -> Sequence[Row[Any]]:
    """Calls per (day, served model) and per (day, task type): the daily distributions.
    A row has either `model` or `task_type` set (GROUPING SETS), never both."""
    t = model_daily
    return await _all(
        conn,
        select(t.c.day, t.c.task_type, t.c.model, _count_sum(t.c.calls).label("calls"))
        .where(_scoped(t, account_id, environment, start, end))
        .group_by(func.grouping_sets(tuple_(t.c.day, t.c.model), tuple_(t.c.day, t.c.task_type))),
    )


async def select_failure_totals(
    conn: AsyncConnection, account_id: str, environment: str, start: date, end: date
) -> Sequence[Row[Any]]:
    """Per task x first-choice model x failure mode ('' = none) over the window."""
    t = failure_daily
    return await _all(
        conn,
        select(
            t.c.task_type,
            t.c.first_model,
            t.c.failure_mode,
            _count_sum(t.c.calls).label("calls"),
            _count_sum(t.c.retry_recovered).label("retry_recovered"),
            _count_sum(t.c.fallback_recovered).label("fallback_recovered"),
            _count_sum(t.c.unrecoverable).label("unrecoverable"),
        )
        .where(_scoped(t, account_id, environment, start, end))
        .group_by(t.c.task_type, t.c.first_model, t.c.failure_mode),
    )


async def select_trigger_totals(
    conn: AsyncConnection, account_id: str, environment: str, start: date, end: date
) -> Sequence[Row[Any]]:
    t = trigger_daily
    return await _all(
        conn,
        select(t.c.failure_mode, t.c.failure_trigger, _count_sum(t.c.calls).label("calls"))
        .where(_scoped(t, account_id, environment, start, end))
        .group_by(t.c.failure_mode, t.c.failure_trigger),
    )


async def select_account_settings(conn: AsyncConnection, account_id: str) -> Row[Any]:
    return (
        await conn.execute(
            select(
                accounts.c.cost_vs_quality_ratio,
                accounts.c.latency_sensitivity,
                accounts.c.preferred_models,
                accounts.c.task_overrides,
            ).where(accounts.c.id == account_id)
        )
    ).one()


async def select_model_price(conn: AsyncConnection, model: str) -> Row[Any] | None:
    return (
        await conn.execute(
            select(model_prices.c.input_usd_per_mtok, model_prices.c.output_usd_per_mtok).where(
                model_prices.c.model == model
            )
        )
    ).one_or_none()


# --- providers: platform-wide, per environment ----------------------------------------------


def _hour_ceil(moment: datetime) -> datetime:
    floor = moment.replace(minute=0, second=0, microsecond=0)
    return floor if floor == moment else floor + timedelta(hours=1)


def _provider_rows(environment: str, start: datetime, end: datetime, *columns: str) -> Any:
    """Rows covering exactly [start, end): whole hours from the hourly rollup, the partial
    hours at either edge from the 5-minute rollup. Both bounds are on the 5-minute grid.
    `grain` ('h' or '5m') tells the two apart."""
    h_lo = _hour_ceil(start)
    h_hi = end.replace(minute=0, second=0, microsecond=0)
    if h_hi < h_lo:  # the window lies inside one clock hour
        h_lo = h_hi = end
    hourly = select(
        literal("h").label("grain"),
        provider_hourly.c.provider,
        provider_hourly.c.bucket,
        *(provider_hourly.c[c] for c in columns),
    ).where(
        provider_hourly.c.environment == environment,
        provider_hourly.c.bucket >= h_lo,
        provider_hourly.c.bucket < h_hi,
    )
    edges = select(
        literal("5m").label("grain"),
        provider_5m.c.provider,
        provider_5m.c.bucket,
        *(provider_5m.c[c] for c in columns),
    ).where(
        provider_5m.c.environment == environment,
        or_(
            and_(provider_5m.c.bucket >= start, provider_5m.c.bucket < h_lo),
            and_(provider_5m.c.bucket >= h_hi, provider_5m.c.bucket < end),
        ),
    )
    return union_all(hourly, edges).subquery()


async def select_provider_totals(
    conn: AsyncConnection, environment: str, start: datetime, end: datetime
) -> Sequence[Row[Any]]:
    cols = ("fc_calls", "fc_provider_failures", "fc_rate_limited", "served_calls", "latency_sum")
    rows = _provider_rows(environment, start, end, *cols)
    return await _all(
        conn,
        select(rows.c.provider, *(_count_sum(rows.c[c]).label(c) for c in cols)).group_by(
            rows.c.provider
        ),
    )


async def select_histogram_index(
    conn: AsyncConnection, environment: str, start: datetime, end: datetime
) -> Sequence[Row[Any]]:
    """(grain, provider, bucket, served calls) of the rows holding the window's latencies.
    A row's served_calls is the sum of its histogram, so it tells a changed row apart."""
    rows = _provider_rows(environment, start, end, "served_calls")
    return await _all(
        conn,
        select(rows.c.grain, rows.c.provider, rows.c.bucket, rows.c.served_calls).where(
            rows.c.served_calls > 0
        ),
    )


async def select_histograms(
    conn: AsyncConnection, environment: str, keys: list[tuple[str, str, datetime]]
) -> Sequence[Row[Any]]:
    """(grain, provider, bucket, served calls, first bin, counts) for the given rows."""
    parts = []
    for grain, table in (("h", provider_hourly), ("5m", provider_5m)):
        wanted = [(bucket, provider) for g, provider, bucket in keys if g == grain]
        if wanted:
            parts.append(
                select(
                    literal(grain).label("grain"),
                    table.c.provider,
                    table.c.bucket,
                    table.c.served_calls,
                    func.array_lower(table.c.hist, 1).label("lower"),
                    # As asyncpg decodes it: SQLAlchemy's per-item ARRAY processing is slow.
                    type_coerce(table.c.hist, NullType()).label("hist"),
                ).where(
                    table.c.environment == environment,
                    tuple_(table.c.bucket, table.c.provider).in_(wanted),
                )
            )
    if not parts:
        return []
    return (await conn.execute(union_all(*parts))).all()


async def select_provider_intervals(
    conn: AsyncConnection, environment: str, start: datetime, end: datetime
) -> Sequence[Row[Any]]:
    """Per provider: 5-minute intervals with first-choice traffic, and those below 0.5 errors."""
    t = provider_5m
    return await _all(
        conn,
        select(
            t.c.provider,
            func.count().label("intervals"),
            func.count().filter(t.c.fc_provider_failures * 2 < t.c.fc_calls).label("healthy"),
        )
        .where(
            t.c.environment == environment,
            t.c.bucket >= start,
            t.c.bucket < end,
            t.c.fc_calls > 0,
        )
        .group_by(t.c.provider),
    )


async def select_incident_intervals(
    conn: AsyncConnection, environment: str, start: datetime, end: datetime
) -> Sequence[Row[Any]]:
    """5-minute intervals with >= 10 first-choice calls and an error rate >= 0.25."""
    t = provider_5m
    return await _all(
        conn,
        select(t.c.provider, t.c.bucket, t.c.fc_calls, t.c.fc_provider_failures)
        .where(
            t.c.environment == environment,
            t.c.bucket >= start,
            t.c.bucket < end,
            t.c.fc_calls >= 10,
            t.c.fc_provider_failures * 4 >= t.c.fc_calls,
        )
        .order_by(t.c.provider, t.c.bucket),
    )


async def select_recent_errors(
    conn: AsyncConnection, environment: str, start: datetime, end: datetime
) -> Sequence[Row[Any]]:
    t = provider_5m
    return await _all(
        conn,
        select(
            t.c.provider,
            _count_sum(t.c.fc_calls).label("fc_calls"),
            _count_sum(t.c.fc_provider_failures).label("fc_provider_failures"),
        )
        .where(t.c.environment == environment, t.c.bucket >= start, t.c.bucket < end)
        .group_by(t.c.provider),
    )
