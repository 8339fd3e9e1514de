"""Reads of the rollups. Every account query starts from one scoped base: this account's rows
in this environment and day range, so tenant scoping is written once (`_scoped`).

Each `select_*` takes the request's `MetricsQuery` and binds what its statement needs of it.
Statements are built once, at import, with bind parameters: building a SQLAlchemy statement
costs more than running these index-range reads, and every request would pay it again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    Numeric,
    Row,
    Select,
    Table,
    Text,
    and_,
    bindparam,
    cast,
    func,
    literal,
    or_,
    select,
    text,
    tuple_,
    type_coerce,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import NullType

from perf_metrics.db import accounts, calls_pending, model_prices
from perf_metrics.metrics.query import DayQuery, HourQuery, Scope
from perf_metrics.metrics.windows import FIVE_MINUTES
from perf_metrics.rollups.tables import (
    ADD,
    FAILURE_COUNTS,
    WEEK_OF_DAY,
    account_5m,
    account_daily,
    account_daily_rollup,
    failure_daily,
    failure_monthly,
    group_daily,
    group_weekly,
    model_daily,
    provider_5m,
    provider_hourly,
    rollup_stale_blocks,
    rollup_watermarks,
    trigger_daily,
)
from perf_metrics.zones import full_months

ACCOUNT = bindparam("account_id", type_=Text)
ENVIRONMENT = bindparam("environment", type_=Text)
START = bindparam("start", type_=Date)
END = bindparam("end", type_=Date)


def _scoped(table: Table) -> Any:
    """This account's rows, in this environment, for days START..END (both included)."""
    return and_(
        table.c.account_id == ACCOUNT,
        table.c.environment == ENVIRONMENT,
        table.c.day >= START,
        table.c.day <= END,
    )


def _count_sum(column: Any) -> Any:
    """sum() of a bigint is numeric in Postgres; counts come back as int."""
    return cast(func.sum(column), BigInteger)


def cast_row(row: Any) -> Row[Any]:
    """SQLAlchemy types a row by its columns; these helpers hand out plain Row[Any]."""
    return row  # type: ignore[no-any-return]


def _window(query: DayQuery) -> dict[str, Any]:
    """The binds of `_scoped`: the query's account, environment and days."""
    scope, window = query.scope, query.window
    return {
        "account_id": scope.account_id,
        "environment": scope.environment,
        "start": window.start,
        "end": window.end,
    }


async def _all(
    conn: AsyncConnection, query: Select[Any], params: dict[str, Any]
) -> Sequence[Row[Any]]:
    rows: Sequence[Row[Any]] = (await conn.execute(query, params)).all()
    return rows


# --- per account -------------------------------------------------------------------------

# Every summable measure of the account rollup (rollups/tables.py): counts come back as int,
# money and score sums as Decimal.
_summed = [m for m in account_daily_rollup.measures if m.merge is ADD]
_COUNT_COLUMNS = tuple(m.name for m in _summed if isinstance(m.type, BigInteger))
_DECIMAL_COLUMNS = tuple(m.name for m in _summed if isinstance(m.type, Numeric))

ACCOUNT_TOTALS = select(
    *(func.coalesce(_count_sum(account_daily.c[c]), 0).label(c) for c in _COUNT_COLUMNS),
    *(func.coalesce(func.sum(account_daily.c[c]), 0).label(c) for c in _DECIMAL_COLUMNS),
).where(_scoped(account_daily))

_hours = (
    func.unnest(account_daily.c.hour_calls).table_valued("n", with_ordinality="h").render_derived()
)
HOUR_CALLS = (
    select(_hours.c.h, _count_sum(_hours.c.n).label("n"))
    .select_from(account_daily)
    .join(_hours, literal(True))
    .where(_scoped(account_daily))
    .group_by(_hours.c.h)
)

DAILY_ROWS = (
    select(
        account_daily.c.day,
        account_daily.c.calls,
        account_daily.c.successes,
        account_daily.c.cost_usd,
        account_daily.c.latency_sum,
        account_daily.c.quality_sum,
        account_daily.c.quality_n,
        account_daily.c.input_tokens,
        account_daily.c.output_tokens,
    )
    .where(_scoped(account_daily))
    .order_by(account_daily.c.day)
)

MODEL_TOTALS = (
    select(
        model_daily.c.task_type,
        model_daily.c.model,
        _count_sum(model_daily.c.calls).label("calls"),
        _count_sum(model_daily.c.successes).label("successes"),
        func.sum(model_daily.c.cost_usd).label("cost_usd"),
        _count_sum(model_daily.c.latency_sum).label("latency_sum"),
        func.sum(model_daily.c.quality_sum).label("quality_sum"),
        _count_sum(model_daily.c.quality_n).label("quality_n"),
    )
    .where(_scoped(model_daily))
    .group_by(model_daily.c.task_type, model_daily.c.model)
)
MODEL_TOTALS_OF_TASK = MODEL_TOTALS.where(
    model_daily.c.task_type == bindparam("task_type", type_=Text)
)

# The per-model rows' calls per day of a window (a day's sum only grows, so it tells a changed
# day apart: metrics/histogram_cache.py), and the latency histograms of some of its days.
_md = model_daily
MODEL_DAY_CALLS = (
    select(_md.c.day, _count_sum(_md.c.calls).label("calls"))
    .where(_scoped(_md))
    .group_by(_md.c.day)
)
MODEL_DAY_HISTOGRAMS = select(
    _md.c.day,
    _md.c.task_type,
    _md.c.model,
    func.array_lower(_md.c.hist, 1).label("lower"),
    # As asyncpg decodes it: SQLAlchemy's per-item ARRAY processing is slow.
    type_coerce(_md.c.hist, NullType()).label("hist"),
).where(_scoped(_md), _md.c.day == func.any(bindparam("days", type_=ARRAY(Date))))

# A row has either `model` or `task_type` set (GROUPING SETS), never both.
DAILY_DISTRIBUTIONS = (
    select(
        model_daily.c.day,
        model_daily.c.task_type,
        model_daily.c.model,
        _count_sum(model_daily.c.calls).label("calls"),
    )
    .where(_scoped(model_daily))
    .group_by(
        func.grouping_sets(
            tuple_(model_daily.c.day, model_daily.c.model),
            tuple_(model_daily.c.day, model_daily.c.task_type),
        )
    )
)

# Failures: full calendar months inside the window from the month-grain rollup, the days
# before the first and after the last full month from the day-grain one. Month rows exist
# only for the months before the watermark (the current month until it ends: rollups/fold.py), so
# the month range stops there and the days from it on come from the daily rows.
M_LO = bindparam("m_lo", type_=Date)
M_HI = bindparam("m_hi", type_=Date)
_SEALED = select(rollup_watermarks.c.failure_monthly_before).scalar_subquery()
_M_END = func.greatest(M_LO, func.least(M_HI, _SEALED))
_fd, _fm = failure_daily, failure_monthly
_failure_rows = union_all(
    select(
        _fd.c.task_type, _fd.c.first_model, _fd.c.failure_mode, *(_fd.c[c] for c in FAILURE_COUNTS)
    ).where(_scoped(_fd), or_(_fd.c.day < M_LO, _fd.c.day >= _M_END)),
    select(
        _fm.c.task_type, _fm.c.first_model, _fm.c.failure_mode, *(_fm.c[c] for c in FAILURE_COUNTS)
    ).where(
        _fm.c.account_id == ACCOUNT,
        _fm.c.environment == ENVIRONMENT,
        _fm.c.month >= M_LO,
        _fm.c.month < _M_END,
    ),
).subquery()
FAILURE_TOTALS = select(
    _failure_rows.c.task_type,
    _failure_rows.c.first_model,
    _failure_rows.c.failure_mode,
    *(_count_sum(_failure_rows.c[c]).label(c) for c in FAILURE_COUNTS),
).group_by(_failure_rows.c.task_type, _failure_rows.c.first_model, _failure_rows.c.failure_mode)


TRIGGER_TOTALS = (
    select(
        trigger_daily.c.failure_mode,
        trigger_daily.c.failure_trigger,
        _count_sum(trigger_daily.c.calls).label("calls"),
    )
    .where(_scoped(trigger_daily))
    .group_by(trigger_daily.c.failure_mode, trigger_daily.c.failure_trigger)
)

SETTINGS = select(
    accounts.c.cost_vs_quality_ratio,
    accounts.c.latency_sensitivity,
    accounts.c.preferred_models,
    accounts.c.task_overrides,
    accounts.c.monthly_budget_usd,
).where(accounts.c.id == ACCOUNT)
PRICED_MODELS = select(model_prices.c.model).distinct().order_by(model_prices.c.model)


# The answers' data_as_of (SPEC §14): every call whose ingest was answered before it is in the
# rollups. A call is queued in its batch's transaction, before that is answered, and leaves the
# queue in the fold's that adds it to the rollups; so the earliest instant still queued (in this
# snapshot), or this transaction's start (before its snapshot) when none is, says it. The
# queue's index (account, environment, queued_at) answers for an account at once; providers,
# platform-wide, reads every queued call of the environment.
_qp = calls_pending
DATA_AS_OF = select(func.coalesce(func.min(_qp.c.queued_at), func.now())).where(
    _qp.c.account_id == ACCOUNT, _qp.c.environment == ENVIRONMENT
)
PLATFORM_DATA_AS_OF = select(func.coalesce(func.min(_qp.c.queued_at), func.now())).where(
    _qp.c.environment == ENVIRONMENT
)


async def select_data_as_of(
    conn: AsyncConnection, query: DayQuery | HourQuery, *, platform: bool = False
) -> datetime:
    """The instant before which every call of the query's account (with `platform`: of every
    account in its environment) is in the rollups."""
    scope = query.scope
    if not platform:
        found = await conn.scalar(
            DATA_AS_OF, {"account_id": scope.account_id, "environment": scope.environment}
        )
    else:
        found = await conn.scalar(PLATFORM_DATA_AS_OF, {"environment": scope.environment})
    assert isinstance(found, datetime)
    return found


# Some models' prices with the day they take effect, oldest first (migration 0011).
PRICE_HISTORY = (
    select(
        model_prices.c.model,
        model_prices.c.effective_from,
        model_prices.c.input_usd_per_mtok,
        model_prices.c.output_usd_per_mtok,
    )
    .where(model_prices.c.model == func.any(bindparam("models", type_=ARRAY(Text))))
    .order_by(model_prices.c.model, model_prices.c.effective_from)
)


async def select_price_histories(
    conn: AsyncConnection, models: Sequence[str]
) -> dict[str, list[Row[Any]]]:
    """Per model of `models` that has prices: (effective_from, input, output), oldest first."""
    out: dict[str, list[Row[Any]]] = {}
    for row in await _all(conn, PRICE_HISTORY, {"models": list(models)}):
        out.setdefault(row.model, []).append(row)
    return out


async def select_account_totals(conn: AsyncConnection, query: DayQuery) -> Row[Any]:
    """Every account-level total over the window, summed in Postgres: one row."""
    return (await conn.execute(ACCOUNT_TOTALS, _window(query))).one()


async def select_hour_calls(conn: AsyncConnection, query: DayQuery) -> list[int]:
    """Calls per hour of day (0-23, in the account's zone: the fold's hour keys) over the
    window."""
    counts = [0] * 24
    for r in await _all(conn, HOUR_CALLS, _window(query)):
        counts[r.h - 1] = r.n
    return counts


async def select_daily_rows(conn: AsyncConnection, query: DayQuery) -> Sequence[Row[Any]]:
    """Per day with calls: the daily series' totals."""
    return await _all(conn, DAILY_ROWS, _window(query))


async def select_model_totals(conn: AsyncConnection, query: DayQuery) -> Sequence[Row[Any]]:
    """Per task type x served model over the window (of the filter's task type, if any)."""
    params = _window(query)
    task_type = query.filters.task_type
    if task_type is None:
        return await _all(conn, MODEL_TOTALS, params)
    return await _all(conn, MODEL_TOTALS_OF_TASK, {**params, "task_type": task_type})


async def select_model_day_calls(conn: AsyncConnection, query: DayQuery) -> Sequence[Row[Any]]:
    """(day, calls) of the window's days with per-model rows (every task type)."""
    return await _all(conn, MODEL_DAY_CALLS, _window(query))


async def select_model_day_histograms(
    conn: AsyncConnection, query: DayQuery, days: Sequence[date]
) -> Sequence[Row[Any]]:
    """(day, task type, model, first bin, counts) of the per-model rows of `days`."""
    return await _all(conn, MODEL_DAY_HISTOGRAMS, {**_window(query), "days": list(days)})


async def select_daily_distributions(conn: AsyncConnection, query: DayQuery) -> Sequence[Row[Any]]:
    """Calls per (day, served model) and per (day, task type)."""
    return await _all(conn, DAILY_DISTRIBUTIONS, _window(query))


async def select_failure_totals(conn: AsyncConnection, query: DayQuery) -> Sequence[Row[Any]]:
    """Per task x first-choice model x failure mode ('' = none) over the window."""
    m_lo, m_hi = full_months(query.window.start, query.window.end)
    params = {**_window(query), "m_lo": m_lo, "m_hi": m_hi}
    return await _all(conn, FAILURE_TOTALS, params)


async def select_trigger_totals(conn: AsyncConnection, query: DayQuery) -> Sequence[Row[Any]]:
    return await _all(conn, TRIGGER_TOTALS, _window(query))


async def select_settings(conn: AsyncConnection, account_id: str) -> Row[Any]:
    """The account's settings that customer shows and uses."""
    return cast_row((await conn.execute(SETTINGS, {"account_id": account_id})).one())


async def select_priced_models(conn: AsyncConnection) -> list[str]:
    """Every model of the price table, by name."""
    return list((await conn.execute(PRICED_MODELS)).scalars())


# --- providers: platform-wide, per environment ----------------------------------------------

P_ENV = bindparam("environment", type_=Text)
P_START = bindparam("start", type_=DateTime(timezone=True))
P_END = bindparam("end", type_=DateTime(timezone=True))
H_LO = bindparam("h_lo", type_=DateTime(timezone=True))
H_HI = bindparam("h_hi", type_=DateTime(timezone=True))


def _hour_ceil(moment: datetime) -> datetime:
    floor = moment.replace(minute=0, second=0, microsecond=0)
    return floor if floor == moment else floor + timedelta(hours=1)


def _interval(query: HourQuery) -> dict[str, Any]:
    """The binds of the 5-minute reads: the query's environment and [start, end)."""
    window = query.window
    return {"environment": query.scope.environment, "start": window.start, "end": window.end}


def _bounds(query: HourQuery) -> dict[str, Any]:
    """[start, end) split into whole hours [h_lo, h_hi) and the 5-minute edges around them."""
    start, end = query.window.start, query.window.end
    h_lo = _hour_ceil(start)
    h_hi = end.replace(minute=0, second=0, microsecond=0)
    if h_hi < h_lo:  # the window lies inside one clock hour
        h_lo = h_hi = end
    return {**_interval(query), "h_lo": h_lo, "h_hi": h_hi}


def _provider_rows(*columns: str) -> Any:
    """Rows covering exactly [start, end): whole hours from the hourly rollup, the partial
    hours at either edge from the 5-minute rollup (`grain` 'h' or '5m' tells them apart)."""
    hourly = select(
        literal("h").label("grain"),
        provider_hourly.c.provider,
        provider_hourly.c.bucket,
        *(provider_hourly.c[c] for c in columns),
    ).where(
        provider_hourly.c.environment == P_ENV,
        provider_hourly.c.bucket >= H_LO,
        provider_hourly.c.bucket < H_HI,
    )
    edges = select(
        literal("5m").label("grain"),
        provider_5m.c.provider,
        provider_5m.c.bucket,
        *(provider_5m.c[c] for c in columns),
    ).where(
        provider_5m.c.environment == P_ENV,
        or_(
            and_(provider_5m.c.bucket >= P_START, provider_5m.c.bucket < H_LO),
            and_(provider_5m.c.bucket >= H_HI, provider_5m.c.bucket < P_END),
        ),
    )
    return union_all(hourly, edges).subquery()


_TOTAL_COLUMNS = (
    "fc_calls", "fc_provider_failures", "fc_rate_limited", "served_calls", "latency_sum",
)  # fmt: skip
_totals_rows = _provider_rows(*_TOTAL_COLUMNS)
PROVIDER_TOTALS = select(
    _totals_rows.c.provider, *(_count_sum(_totals_rows.c[c]).label(c) for c in _TOTAL_COLUMNS)
).group_by(_totals_rows.c.provider)

_index_rows = _provider_rows("served_calls")
HISTOGRAM_INDEX = select(
    _index_rows.c.grain, _index_rows.c.provider, _index_rows.c.bucket, _index_rows.c.served_calls
).where(_index_rows.c.served_calls > 0)

t5 = provider_5m
PROVIDER_INTERVALS = (
    select(
        t5.c.provider,
        func.count().label("intervals"),
        func.count().filter(t5.c.fc_provider_failures * 2 < t5.c.fc_calls).label("healthy"),
    )
    .where(
        t5.c.environment == P_ENV, t5.c.bucket >= P_START, t5.c.bucket < P_END, t5.c.fc_calls > 0
    )
    .group_by(t5.c.provider)
)
INCIDENT_INTERVALS = (
    select(t5.c.provider, t5.c.bucket, t5.c.fc_calls, t5.c.fc_provider_failures)
    .where(
        t5.c.environment == P_ENV,
        t5.c.bucket >= P_START,
        t5.c.bucket < P_END,
        t5.c.fc_calls >= 10,
        t5.c.fc_provider_failures * 4 >= t5.c.fc_calls,
    )
    .order_by(t5.c.provider, t5.c.bucket)
)
# A provider's status is that of its last 15 minutes.
RECENT = 3 * FIVE_MINUTES
RECENT_ERRORS = (
    select(
        t5.c.provider,
        _count_sum(t5.c.fc_calls).label("fc_calls"),
        _count_sum(t5.c.fc_provider_failures).label("fc_provider_failures"),
    )
    .where(t5.c.environment == P_ENV, t5.c.bucket >= P_START, t5.c.bucket < P_END)
    .group_by(t5.c.provider)
)


async def select_provider_totals(conn: AsyncConnection, query: HourQuery) -> Sequence[Row[Any]]:
    return await _all(conn, PROVIDER_TOTALS, _bounds(query))


async def select_histogram_index(conn: AsyncConnection, query: HourQuery) -> Sequence[Row[Any]]:
    """(grain, provider, bucket, served calls) of the rows holding the window's latencies.
    A row's served_calls is the sum of its histogram, so it tells a changed row apart."""
    return await _all(conn, HISTOGRAM_INDEX, _bounds(query))


async def select_provider_intervals(conn: AsyncConnection, query: HourQuery) -> Sequence[Row[Any]]:
    """Per provider: 5-minute intervals with first-choice traffic, and those below 0.5 errors."""
    return await _all(conn, PROVIDER_INTERVALS, _interval(query))


async def select_incident_intervals(conn: AsyncConnection, query: HourQuery) -> Sequence[Row[Any]]:
    """5-minute intervals with >= 10 first-choice calls and an error rate >= 0.25."""
    return await _all(conn, INCIDENT_INTERVALS, _interval(query))


async def select_recent_errors(conn: AsyncConnection, query: HourQuery) -> Sequence[Row[Any]]:
    """First-choice calls and provider failures over the window's last RECENT (three
    5-minute intervals): what a provider's status is judged on."""
    binds = _interval(query)
    return await _all(conn, RECENT_ERRORS, {**binds, "start": query.window.end - RECENT})


async def select_histograms(
    conn: AsyncConnection, query: HourQuery, keys: Sequence[tuple[Any, ...]]
) -> Sequence[Row[Any]]:
    """(grain, provider, bucket, served calls, first bin, counts) for the given rows."""
    environment = query.scope.environment
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


# --- breakdowns (SPEC §10) --------------------------------------------------------------------

# What every group of a breakdown sums, by the name the answer reads.
GROUP_MEASURES = (
    "calls",
    "successes",
    "cost_usd",
    "latency_sum",
    "quality_sum",
    "quality_n",
    "input_tokens",
    "output_tokens",
    "failures",
)
_DECIMAL_MEASURES = ("cost_usd", "quality_sum")


def _group_sum(column: Any, name: str) -> Any:
    summed = func.sum(column) if name in _DECIMAL_MEASURES else _count_sum(column)
    return summed.label(name)


# Served model, served provider, task type: from the model rollup.
MODEL_DIMENSIONS = ("model", "provider", "task_type")
MODEL_GROUPS = {
    d: select(
        model_daily.c[d].label("value"),
        *(_group_sum(model_daily.c[m], m) for m in GROUP_MEASURES),
    )
    .where(_scoped(model_daily))
    .group_by(model_daily.c[d])
    for d in MODEL_DIMENSIONS
}
_VALUES = bindparam("values", expanding=True, type_=Text)
MODEL_GROUP_DAYS = {
    d: select(
        model_daily.c[d].label("value"),
        model_daily.c.day,
        _count_sum(model_daily.c.calls).label("calls"),
        func.sum(model_daily.c.cost_usd).label("cost_usd"),
    )
    .where(_scoped(model_daily), model_daily.c[d].in_(_VALUES))
    .group_by(model_daily.c[d], model_daily.c.day)
    for d in MODEL_DIMENSIONS
}

# End users and tracked metadata keys: from the group rollups (rollups/tables.py), a window
# read as the whole weeks it holds that have week rows, and its other days (breakdown.py).
_GROUP_SUMS = ", ".join(
    f"sum({m})" + ("" if m in _DECIMAL_MEASURES else "::bigint") + f" AS {m}"
    for m in GROUP_MEASURES
)
_GROUP_COLUMNS = ", ".join(GROUP_MEASURES)
_GROUP_SCOPE = "account_id = :account_id AND environment = :environment AND dimension = :dimension"


def _group_blocks(where: str) -> str:
    """The window's rows of the group rollups: its sealed weeks' (a range: they follow each
    other, less the stale and thin ones in it) and its other days'."""
    return f"""
  SELECT value, {_GROUP_COLUMNS} FROM {group_weekly.name}
  WHERE {_GROUP_SCOPE} AND week >= :first_week AND week <= :last_week
    AND week <> ALL(CAST(:weeks_as_days AS date[])){where}
  UNION ALL
  SELECT value, {_GROUP_COLUMNS} FROM {group_daily.name}
  WHERE {_GROUP_SCOPE} AND day = ANY(CAST(:days AS date[])){where}"""


# How the group reads are planned, for the rest of the answer's transaction. They are index
# ranges of a few hundred rows, but their bitmap scans' estimates tempt the planner into
# parallel plans, whose two workers took 10-20 ms to start for 0.5 ms of work (EXPLAIN ANALYZE
# at 1M calls: 17.5 ms against 0.6 ms): no workers. And their arrays of days and values decide
# the plan: after five runs of a prepared statement Postgres may switch to a generic plan,
# which summed 21 users in 147 ms at 10M calls against 1.7 ms: always a plan for the values.
# A CSV export sums every group of the window (38,000 users, 200,000 rows at 10M calls): with
# the default 4 MB its hash aggregate and sort went to disk (21 batches), and JIT compiled it
# for 29 ms; in memory and without JIT it took less than half the time (EXPLAIN ANALYZE).
GROUP_READS = text(
    "SELECT set_config('max_parallel_workers_per_gather', '0', true),"
    " set_config('plan_cache_mode', 'force_custom_plan', true),"
    " set_config('work_mem', '64MB', true), set_config('jit', 'off', true)"
)
# The week rows' mark: the weeks before it have week rows (read in the answer's snapshot), but
# for the account's stale weeks (rollups/fold.py) and its thin ones among the days from
# :first_day to :last_day (too few calls, by the account rollup: rollups/tables.py), read as
# their days.
GROUP_WEEKS = text(f"""
SELECT group_weekly_before AS before, ARRAY(
  SELECT block FROM {rollup_stale_blocks.name}
  WHERE account_id = :account_id AND environment = :environment
    AND rollup = '{group_weekly.name}') AS stale,
  ARRAY(
  SELECT {WEEK_OF_DAY} FROM {account_daily.name}
  WHERE account_id = :account_id AND environment = :environment
    AND day >= :first_day AND day <= :last_day
  GROUP BY 1 HAVING sum(calls) < group_weekly_least_calls) AS thin
FROM {rollup_watermarks.name}""")
# Each block's `:top` dearest groups, with the block's kind and start.
GROUP_TOPS = text(f"""
SELECT 'w' AS kind, b.block, t.value, t.cost_usd
FROM unnest(CAST(:weeks AS date[])) AS b(block) CROSS JOIN LATERAL (
  SELECT value, cost_usd FROM {group_weekly.name}
  WHERE {_GROUP_SCOPE} AND week = b.block ORDER BY cost_usd DESC LIMIT :top) t
UNION ALL
SELECT 'd', b.block, t.value, t.cost_usd
FROM unnest(CAST(:days AS date[])) AS b(block) CROSS JOIN LATERAL (
  SELECT value, cost_usd FROM {group_daily.name}
  WHERE {_GROUP_SCOPE} AND day = b.block ORDER BY cost_usd DESC LIMIT :top) t""")
# The exact sums of the given values over the window.
GROUPS_OF_VALUES = text(f"""
SELECT value, {_GROUP_SUMS}
FROM ({_group_blocks(" AND value = ANY(CAST(:values AS text[]))")}) x
GROUP BY value""")
# Every group, ranked (SPEC §10: cost, calls, value with the null group after the names; in
# code point order, as Python compares strings).
ALL_GROUPS = text(f"""
SELECT value, {_GROUP_SUMS}
FROM ({_group_blocks("")}) x
GROUP BY value
ORDER BY cost_usd DESC, calls DESC, value = '', value COLLATE "C"
""")
# Per (value, day) of the given values: the daily series.
GROUP_VALUE_DAYS = text(f"""
SELECT value, day, calls, cost_usd FROM {group_daily.name}
WHERE {_GROUP_SCOPE} AND day = ANY(CAST(:days AS date[]))
  AND value = ANY(CAST(:values AS text[]))""")


async def select_groups(
    conn: AsyncConnection, query: DayQuery, group_by: str
) -> Sequence[Row[Any]]:
    """Per value of a model rollup dimension over the window: the sums of GROUP_MEASURES."""
    return await _all(conn, MODEL_GROUPS[group_by], _window(query))


async def select_group_days(
    conn: AsyncConnection, query: DayQuery, group_by: str, values: list[str | None]
) -> Sequence[Row[Any]]:
    """Per (value, local day) of the given values of a model rollup dimension: calls and
    cost."""
    named = [v for v in values if v is not None]
    return await _all(conn, MODEL_GROUP_DAYS[group_by], {**_window(query), "values": named})


# --- per account and 5 minutes: the failure-rate alerts (SPEC §11) -------------------------

A_START = bindparam("start", type_=DateTime(timezone=True))
A_END = bindparam("end", type_=DateTime(timezone=True))
RECENT_FAILURES = select(
    func.coalesce(_count_sum(account_5m.c.calls), 0).label("calls"),
    func.coalesce(_count_sum(account_5m.c.failures), 0).label("failures"),
).where(
    account_5m.c.account_id == ACCOUNT,
    account_5m.c.environment == ENVIRONMENT,
    account_5m.c.bucket >= A_START,
    account_5m.c.bucket < A_END,
)


async def select_recent_failures(
    conn: AsyncConnection, scope: Scope, start: datetime, end: datetime
) -> Row[Any]:
    """Calls, and calls with a failure mode, of the 5-minute buckets in `[start, end)`."""
    binds = {
        "account_id": scope.account_id,
        "environment": scope.environment,
        "start": start,
        "end": end,
    }
    return cast_row((await conn.execute(RECENT_FAILURES, binds)).one())
