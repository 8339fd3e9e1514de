"""The rollups (docs/rollups.md): each one's key and measure columns, declared once.

A `Rollup` names its table, its key columns and its measures. A measure carries the SQL that
computes it over the rows one fold aggregates (for most rollups, the fold's `c` CTE: the calls
taken from the queue plus their `day` and `hour` in the account's zone (zones.py),
`first_model`, `first_provider` and `provider_side`; see fold.py) and how a fold merges it into
the stored row. Everything else is built from these declarations: the SQLAlchemy tables the
reads use (below), the fold's upserts and the month seal (fold.py), and what `rollups verify`
compares (maintenance.py). A new measure is one `Measure` here, plus the migration that adds
its column.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    Numeric,
    Table,
    Text,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import TypeEngine

from perf_metrics.db import metadata
from perf_metrics.zones import THIS_MONTH_SQL, THIS_WEEK_SQL, week_of_day_sql


@dataclass(frozen=True)
class Merge:
    """How a fold adds a measure's new value to the stored row's (`function(stored, new)`, or
    `stored + new` without one), and the aggregate that adds up many rows' values."""

    function: str | None = None
    aggregate: str | None = "sum"


ADD = Merge()
COUNTS_ADD = Merge("counts_add", aggregate=None)  # equally long count arrays (migration 0005)
HIST_ADD = Merge("hist_add", aggregate="hist_sum")  # latency histograms (migration 0002)


@dataclass(frozen=True)
class Key:
    """A key column of a rollup (its primary key, in order)."""

    name: str
    type: TypeEngine[Any]
    select: str | None = None  # what the fold groups by, when not the column of that name

    @property
    def expression(self) -> str:
        return self.select or self.name


@dataclass(frozen=True)
class Measure:
    """A measure column: its aggregate per key over the folded rows, and its merge."""

    name: str
    type: TypeEngine[Any]
    aggregate: str  # over the rollup's `rows`, per key
    merge: Merge = ADD
    server_default: str | None = "0"

    @property
    def update(self) -> str:
        """The fold's `SET` item: the stored row plus the new one (`excluded`)."""
        if self.merge.function is None:
            return f"{self.name} = r.{self.name} + excluded.{self.name}"
        return f"{self.name} = {self.merge.function}(r.{self.name}, excluded.{self.name})"

    @property
    def total(self) -> str:
        """The aggregate of this column over many stored rows of finer grain."""
        if self.merge.aggregate is None:
            raise ValueError(f"{self.name} has no aggregate to add up its rows")
        return f"{self.merge.aggregate}({self.name})"


@dataclass(frozen=True)
class Rollup:
    """One rollup table: its key (grain), its measures, and the rows a fold aggregates."""

    name: str
    about: str  # one line, the comment above its part of the fold
    keys: tuple[Key, ...]
    measures: tuple[Measure, ...]
    rows: str = "c"  # what the fold aggregates, FROM clause
    stage: str | None = None  # the fold's CTEs that `rows` come from (fold.py's STAGES)
    where: str | None = None  # which of those rows count
    group: bool = True  # False: `rows` holds one row per key already
    # Which stored rows it keeps (SQL over its columns), for a rollup of recent time only:
    # `where` folds no others, and the worker deletes those that have aged out (`prune`).
    keeps: str | None = None

    @property
    def key_names(self) -> tuple[str, ...]:
        return tuple(k.name for k in self.keys)

    @property
    def measure_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.measures)

    @property
    def by_account(self) -> bool:
        """Keyed by account (the provider rollups are platform-wide)."""
        return "account_id" in self.key_names


BIG = BigInteger()
TEXT = Text()
HOURS_PER_DAY = 24


def _count(name: str, condition: str | None = None) -> Measure:
    """A count of the rows, or of those meeting `condition`."""
    where = "" if condition is None else f" FILTER (WHERE {condition})"
    return Measure(name, BIG, f"count(*){where}")


def _account_day(*keys: Key) -> tuple[Key, ...]:
    return (Key("account_id", TEXT), Key("environment", TEXT), Key("day", Date()), *keys)


CALLS = _count("calls")
SUCCESSES = _count("successes", "status = 'success'")
COST_USD = Measure("cost_usd", Numeric(), "sum(cost_usd)")
LATENCY_SUM = Measure("latency_sum", BIG, "sum(latency_ms)")
# Scores are sent as decimals and stored as floats: summed as the decimals they were sent as.
QUALITY_SUM = Measure("quality_sum", Numeric(), "coalesce(sum(quality_score::text::numeric), 0)")
QUALITY_N = Measure("quality_n", BIG, "count(quality_score)")
INPUT_TOKENS = Measure("input_tokens", BIG, "sum(input_tokens)")
OUTPUT_TOKENS = Measure("output_tokens", BIG, "sum(output_tokens)")

account_daily_rollup = Rollup(
    "rollup_account_daily",
    "per account, environment, day: totals and hour-of-day counts",
    _account_day(),
    (
        CALLS,
        SUCCESSES,
        _count(
            "routed_right",
            "failure_mode IS NULL AND (quality_score IS NULL OR quality_score >= 0.7)",
        ),
        _count("fallbacks", "fallback_used"),
        _count("retried", "retry_count > 0"),
        _count("ceiling_hits", "cost_ceiling_hit"),
        COST_USD,
        LATENCY_SUM,
        INPUT_TOKENS,
        OUTPUT_TOKENS,
        QUALITY_SUM,
        QUALITY_N,
        Measure("complexity_sum", Numeric(), "coalesce(sum(complexity_score::text::numeric), 0)"),
        Measure("complexity_n", BIG, "count(complexity_score)"),
        Measure("message_sum", BIG, "coalesce(sum(message_count), 0)"),
        Measure("message_n", BIG, "count(message_count)"),
        # Provider attempts: the first, each retry, and the fallback's (SPEC §14).
        Measure("attempts", BIG, "sum(1 + retry_count::bigint + fallback_used::int)"),
        Measure(
            "hour_calls",
            ARRAY(BigInteger),
            "ARRAY["
            + ", ".join(f"count(*) FILTER (WHERE hour = {h})" for h in range(HOURS_PER_DAY))
            + "]",
            merge=COUNTS_ADD,
            server_default=None,
        ),
    ),
)

# What a breakdown needs of a group (SPEC §10), whatever it groups by: the model rollup's and
# the group rollups' measures.
GROUP_MEASURES = (
    CALLS,
    SUCCESSES,
    COST_USD,
    LATENCY_SUM,
    QUALITY_SUM,
    QUALITY_N,
    INPUT_TOKENS,
    OUTPUT_TOKENS,
    _count("failures", "failure_mode IS NOT NULL"),
)

# Latencies as a histogram (histogram.py's bins): an int[] whose subscripts are bins, from the
# lowest bin to the highest that hold a call; performance's percentiles (SPEC §14).
LATENCY_HIST = Measure(
    "hist",
    ARRAY(Integer),
    "hist_from_bins(array_agg(latency_bin(latency_ms)), array_agg(1::bigint))",
    merge=HIST_ADD,
    server_default=None,
)

model_daily_rollup = Rollup(
    "rollup_model_daily",
    "per day x task x served model x served provider",
    _account_day(Key("task_type", TEXT), Key("model", TEXT), Key("provider", TEXT)),
    (*GROUP_MEASURES, LATENCY_HIST),
)

# The failure rollups' counts, day and month grain alike.
FAILURE_MEASURES = (
    CALLS,
    _count("retry_recovered", "recovery = 'retry'"),
    _count("fallback_recovered", "recovery = 'fallback'"),
    _count("unrecoverable", "status = 'error'"),
)
FAILURE_COUNTS = tuple(m.name for m in FAILURE_MEASURES)
FAILURE_MODE = Key("failure_mode", TEXT, "coalesce(failure_mode, '')")  # '' = no failure

failure_daily_rollup = Rollup(
    "rollup_failure_daily",
    "per day x task x first-choice model x failure mode ('' = none)",
    _account_day(Key("task_type", TEXT), Key("first_model", TEXT), FAILURE_MODE),
    FAILURE_MEASURES,
)

# The 1st of the month of a day (the account's calendar, as `day` is).
MONTH_OF_DAY = "date_trunc('month', day)::date"

# The same at month grain (the 1st of each month): full months inside long windows. Month
# rows only for the months that have ended: the current one is built from its daily rows when
# it ends (fold.py, `seal_ended_months`).
failure_monthly_rollup = Rollup(
    "rollup_failure_monthly",
    "month rows only for the months that have ended (the current one is built when it ends)",
    (
        Key("account_id", TEXT),
        Key("environment", TEXT),
        Key("month", Date(), MONTH_OF_DAY),
        Key("task_type", TEXT),
        Key("first_model", TEXT),
        FAILURE_MODE,
    ),
    FAILURE_MEASURES,
    where="day < (SELECT failure_monthly_before FROM rollup_watermarks)",
)

trigger_daily_rollup = Rollup(
    "rollup_trigger_daily",
    "per day x failure mode x what triggered it",
    _account_day(Key("failure_mode", TEXT), Key("failure_trigger", TEXT)),
    (CALLS,),
    where="failure_mode IS NOT NULL AND failure_trigger IS NOT NULL",
)


# Per end user and per tracked metadata key (SPEC §10): the fold's `g` stage gives each call
# one row per dimension, `user` and `metadata.<key>` for each of its account's tracked keys,
# with the call's value ('' for a call without one: null user_id, key absent or empty).
# Their measures are the model rollup's (GROUP_MEASURES): a breakdown's group, by any dimension.
NO_VALUE = ""  # a group rollup's value for calls without one (the answer's null group)

group_daily_rollup = Rollup(
    "rollup_group_daily",
    "per day x dimension (user, tracked metadata keys) x value",
    (
        Key("account_id", TEXT),
        Key("environment", TEXT),
        Key("dimension", TEXT),
        Key("day", Date()),
        Key("value", TEXT),
    ),
    GROUP_MEASURES,
    rows="g",
    stage="g",
)

# The Monday of a day's ISO week (the account's calendar, as `day` is).
WEEK_OF_DAY = week_of_day_sql("day")

# The same per week (from its Monday): week rows only for the weeks that have ended, built
# from the daily rows when a week ends (fold.py, `seal_ended_blocks`). A breakdown reads whole
# weeks from here and the rest of its window from the daily rows.
group_weekly_rollup = Rollup(
    "rollup_group_weekly",
    "week rows only for the weeks that have ended (the current one is built when it ends)",
    # By value, then week: a group's weeks lie side by side, where a breakdown sums its
    # candidates (one index range each).
    (
        Key("account_id", TEXT),
        Key("environment", TEXT),
        Key("dimension", TEXT),
        Key("value", TEXT),
        Key("week", Date(), WEEK_OF_DAY),
    ),
    GROUP_MEASURES,
    rows="g",
    stage="g",
    where="day < (SELECT group_weekly_before FROM rollup_watermarks)",
)


# Per account and 5 minutes, for the failure-rate alerts (SPEC §11): just the counts their
# rate needs, and only for the last two days (their longest window is a day). A fold counts
# no older call here, and the worker deletes the buckets that have aged out.
FIVE_MINUTE_BUCKET = "date_bin('5 minutes', created_at, TIMESTAMPTZ '2000-01-01 00:00Z')"
RECENT_HORIZON = "interval '2 days'"

account_5m_rollup = Rollup(
    "rollup_account_5m",
    "per account, environment and 5 minutes of the last two days: calls and failures",
    (
        Key("account_id", TEXT),
        Key("environment", TEXT),
        Key("bucket", DateTime(timezone=True), FIVE_MINUTE_BUCKET),
    ),
    (CALLS, _count("failures", "failure_mode IS NOT NULL")),
    where=f"{FIVE_MINUTE_BUCKET} >= now() - {RECENT_HORIZON}",
    keeps=f"bucket >= now() - {RECENT_HORIZON}",
)


def _provider_rollup(name: str, about: str, bucket: str, stage: str) -> Rollup:
    """Platform-wide provider health, per time bucket. The fold computes these in stages
    (fold.py's STAGES): first-choice counts per bucket and first-choice provider
    (`{stage}_fc`), served latency bins per bucket and served provider (`{stage}_served`);
    a provider's row is the two joined."""
    return Rollup(
        name,
        about,
        (
            Key("environment", TEXT),
            Key("bucket", DateTime(timezone=True), bucket),
            Key("provider", TEXT),
        ),
        (
            Measure("fc_calls", BIG, "coalesce(f.fc_calls, 0)"),
            Measure("fc_provider_failures", BIG, "coalesce(f.fc_provider_failures, 0)"),
            Measure("fc_rate_limited", BIG, "coalesce(f.fc_rate_limited, 0)"),
            Measure("served_calls", BIG, "coalesce(s.served_calls, 0)"),
            Measure("latency_sum", BIG, "coalesce(s.latency_sum, 0)"),
            # Subscripts are latency bins (histogram.py).
            Measure(
                "hist",
                ARRAY(Integer),
                "coalesce(s.hist, '{}'::integer[])",
                merge=HIST_ADD,
                server_default=None,
            ),
        ),
        rows=f"{stage}_fc f FULL JOIN {stage}_served s USING (environment, {bucket}, provider)",
        stage=stage,
        group=False,
    )


provider_5m_rollup = _provider_rollup(
    "rollup_provider_5m",
    "platform-wide provider health: first-choice errors and served latency, per 5 minutes",
    "b5",
    "p",
)
provider_hourly_rollup = _provider_rollup(
    "rollup_provider_hourly",
    "the same per hour, built from the bins (one histogram per row, no merging)",
    "bh",
    "ph",
)

# Every rollup, in the order a fold writes them.
ROLLUPS = (
    account_daily_rollup,
    model_daily_rollup,
    failure_daily_rollup,
    failure_monthly_rollup,
    trigger_daily_rollup,
    group_daily_rollup,
    group_weekly_rollup,
    account_5m_rollup,
    provider_5m_rollup,
    provider_hourly_rollup,
)
ROLLUP_TABLES = tuple(r.name for r in ROLLUPS)


def _table(rollup: Rollup) -> Table:
    return Table(
        rollup.name,
        metadata,
        *(Column(k.name, k.type, primary_key=True) for k in rollup.keys),
        *(
            Column(m.name, m.type, nullable=False, server_default=m.server_default)
            for m in rollup.measures
        ),
    )


account_daily = _table(account_daily_rollup)
model_daily = _table(model_daily_rollup)
failure_daily = _table(failure_daily_rollup)
failure_monthly = _table(failure_monthly_rollup)
trigger_daily = _table(trigger_daily_rollup)
group_daily = _table(group_daily_rollup)
group_weekly = _table(group_weekly_rollup)
# A block's (a day's, a week's) groups by cost, with their values: where a breakdown finds each
# block's top groups (metrics/breakdown.py), from the index alone.
for _block in (group_daily, group_weekly):
    _c = _block.c
    Index(
        f"ix_{_block.name}_ranked",
        _c.account_id,
        _c.environment,
        _c.dimension,
        _c.day if "day" in _c else _c.week,
        _c.cost_usd.desc(),
        postgresql_include=["value"],
    )
account_5m = _table(account_5m_rollup)
provider_5m = _table(provider_5m_rollup)
provider_hourly = _table(provider_hourly_rollup)

# A week of an account and environment with fewer calls than this is *thin*: it has no week
# rows, and reads take its days. Its week rows would be about as many as its daily rows (most
# of its users and tag values come once a week), and reading seven days of a few hundred rows
# is cheap; building them was a sixth of the CPU of a 90-day backfill's ingest, four-fifths
# of the rows in thin weeks (bench/results/breakdown.md). Migration 0013 sets it.
THIN_WEEK_CALLS = 1000

# One row: rollup_failure_monthly holds the months before this 1st of a month (migration 0006).
rollup_watermarks = Table(
    "rollup_watermarks",
    metadata,
    Column("id", Boolean, primary_key=True, server_default=true(), comment="one row: always true"),
    Column(
        "failure_monthly_before",
        Date,
        nullable=False,
        comment="rollup_failure_monthly holds the months before this 1st of a month, whole",
    ),
    Column(
        "group_weekly_before",
        Date,
        nullable=False,
        comment="rollup_group_weekly holds the weeks before this Monday, whole",
    ),
    Column(
        "group_weekly_least_calls",
        Integer,
        nullable=False,
        server_default=text(str(THIN_WEEK_CALLS)),
        comment="rollup_group_weekly has rows only for the weeks of an account and environment"
        " with at least this many calls; raise it freely, lower it only with a rollups rebuild",
    ),
    CheckConstraint("id", name="one_row"),
)


@dataclass(frozen=True)
class Seal:
    """A rollup of longer blocks (months, weeks) whose rows exist only for the blocks that have
    ended everywhere, before `mark` (a column of rollup_watermarks): built from the daily rows
    of `days` when a block ends (the fold's seal).

    Calls of days before the mark (late calls) are upserted into the block rows by the fold
    directly, or, with `marks_late`, make their block stale instead (`rollup_stale_blocks`):
    its rows are then incomplete and never read (the reads take its days) until the seal
    builds them afresh from the days, once late calls have stopped coming (fold.py)."""

    rollup: Rollup
    days: Rollup
    mark: str
    block: str  # the block's key column
    now: str  # SQL: the first day of the block it is now on the westernmost clock
    of_day: str  # SQL: the first day of the block of `day`
    length: str  # SQL: a block's length, an interval
    marks_late: bool = False
    # The column of rollup_watermarks below which a block's calls (of its account and
    # environment) leave it thin: no rows, read as its days.
    least_calls: str | None = None


SEALS = (
    Seal(
        failure_monthly_rollup,
        failure_daily_rollup,
        "failure_monthly_before",
        "month",
        THIS_MONTH_SQL,
        MONTH_OF_DAY,
        "interval '1 month'",
    ),
    Seal(
        group_weekly_rollup,
        group_daily_rollup,
        "group_weekly_before",
        "week",
        THIS_WEEK_SQL,
        WEEK_OF_DAY,
        "interval '7 days'",
        # In a backfill of 90 days most calls are late, and their week rows cost a fold as much
        # as their daily rows (EXPLAIN ANALYZE, bench/results/breakdown.md): marks instead.
        marks_late=True,
        least_calls="group_weekly_least_calls",
    ),
)

# The blocks of a `marks_late` rollup that late calls have made stale, per account and
# environment (migration 0010): the first and the last fold that marked each.
rollup_stale_blocks = Table(
    "rollup_stale_blocks",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("environment", Text, primary_key=True),
    Column("rollup", Text, primary_key=True, comment="the rollup of longer blocks"),
    Column("block", Date, primary_key=True, comment="the first day of the stale block"),
    Column("first_at", DateTime(timezone=True), nullable=False),
    Column("last_at", DateTime(timezone=True), nullable=False),
)
