"""The write path: raw call rows, a queue of new calls, and the rollups folded from it.

A batch is COPYed into a per-connection temporary table, then one statement inserts the new
calls (ON CONFLICT DO NOTHING: a stored call_id is skipped, never overwritten) and queues
exactly the inserted rows in `calls_pending`, in the batch's transaction: the whole batch is
stored and queued at once, or not at all. A duplicate or a rejected batch never reaches the queue.

`fold` empties the queue into every rollup in one transaction (DELETE ... RETURNING feeds the
upserts, so each queued call is counted exactly once), one fold at a time under an advisory
lock. Each process folds through its `Folder` (the service's background folder, requests that
wait for their fold, the CLI's pipeline): batches store in parallel instead of queueing on each
other's rollup row locks, and a fold of several batches upserts each account-day row once. A
queue left behind by a crash is folded by the service's background folder within seconds
(SPEC §7: 5 s).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Sequence
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from perf_metrics.calls.schema import COLUMNS
from perf_metrics.errors import InvalidCallRecord, is_database_unavailable, sqlstate

log = logging.getLogger("perf_metrics.ingest")

STAGE_DDL = """
CREATE TEMP TABLE IF NOT EXISTS calls_stage
  (LIKE calls INCLUDING DEFAULTS EXCLUDING CONSTRAINTS) ON COMMIT DELETE ROWS
"""
# Run through SQLAlchemy, it also BEGINs the transaction the raw asyncpg statements then join.
# The memory: enough for the fold's hash aggregates not to spill to disk.
BEGIN_WRITE = text("SET LOCAL work_mem = '64MB'")

_COLS = ", ".join(COLUMNS)

# What the rollups read of a call: the queue's columns.
PENDING_COLUMNS = tuple(
    c
    for c in COLUMNS
    if c not in ("call_id", "api_key_id", "max_cost_per_call", "user_id", "metadata")
)
PENDING_LIST = ", ".join(PENDING_COLUMNS)

# Insert what is new and queue it for the rollups. Rows go in key order so that concurrent
# batches lock in the same order.
INSERT_AND_QUEUE = f"""
WITH ins AS (
  INSERT INTO calls ({_COLS})
  SELECT {_COLS} FROM calls_stage ORDER BY account_id, call_id
  ON CONFLICT (account_id, call_id) DO NOTHING
  RETURNING {PENDING_LIST}
),
queued AS (
  INSERT INTO calls_pending ({PENDING_LIST}) SELECT {PENDING_LIST} FROM ins RETURNING 1
)
SELECT count(*) FROM queued
"""

PENDING_EXISTS = text("SELECT EXISTS (SELECT 1 FROM calls_pending)")

# Every fold leaves the calls it took as dead rows in the queue. Autovacuum reclaims them
# (migration 0005 sets low thresholds), but a server may run with autovacuum off, and then the
# queue only grows: every insert extends the file, and every fold's scan starts by walking
# the dead rows of all folds before. So each process's folder also vacuums the queue itself
# after this many folded calls (~35 MB of dead rows). No TRUNCATE: giving the empty pages back
# needs an exclusive lock, which busy writers keep from it; the pages are reused instead.
# SKIP_LOCKED: when another process (or autovacuum) is at it, there is nothing to wait for.
VACUUM_EVERY = 200_000
VACUUM_QUEUE = "VACUUM (TRUNCATE false, SKIP_LOCKED) calls_pending"
VACUUM_TIMEOUT_S = 60  # a queue bloated before this existed takes longer than a statement may

# One fold at a time, platform-wide (the provider rollups have no account dimension).
FOLD_LOCK = "SELECT pg_advisory_xact_lock(7233510)"
FOLD_LOCK_WAIT_S = 60
FOLD_LOCK_WAITING = (
    f"SET LOCAL statement_timeout = '{FOLD_LOCK_WAIT_S}s'; {FOLD_LOCK};"
    " SET LOCAL statement_timeout TO DEFAULT"
)
# rollup_failure_monthly holds the months before `failure_monthly_before`, whole (migration
# 0006): live traffic's month has as many month rows as day rows, and upserting both was a
# fifth of a fold. The mark moves when a month ends (`seal_ended_months`).
THIS_MONTH = "date_trunc('month', now() AT TIME ZONE 'UTC')::date"
WATERMARK = f"SELECT failure_monthly_before, {THIS_MONTH} FROM rollup_watermarks"
SEAL_DELETE = "DELETE FROM rollup_failure_monthly WHERE month >= $1"
SEAL_INSERT = """
INSERT INTO rollup_failure_monthly
  (account_id, environment, month, task_type, first_model, failure_mode, calls,
   retry_recovered, fallback_recovered, unrecoverable)
SELECT account_id, environment, date_trunc('month', day)::date, task_type, first_model,
       failure_mode, sum(calls), sum(retry_recovered), sum(fallback_recovered),
       sum(unrecoverable)
FROM rollup_failure_daily WHERE day >= $1 AND day < $2
GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6
"""
SEAL_MARK = """
UPDATE rollup_watermarks SET failure_monthly_before = $2 WHERE failure_monthly_before = $1
"""
SEAL_TIMEOUT_S = 600

# Calls per fold transaction: a backlog is folded in steps well inside the statement timeout.
FOLD_LIMIT = 50_000

# The two provider rollups (5-minute, hourly) share their columns and their merge.
_PROVIDER_COLUMNS = """(environment, bucket, provider, fc_calls, fc_provider_failures,
    fc_rate_limited, served_calls, latency_sum, hist)"""
_PROVIDER_UPSERT = """  ON CONFLICT (environment, bucket, provider) DO UPDATE SET
    fc_calls = r.fc_calls + excluded.fc_calls,
    fc_provider_failures = r.fc_provider_failures + excluded.fc_provider_failures,
    fc_rate_limited = r.fc_rate_limited + excluded.fc_rate_limited,
    served_calls = r.served_calls + excluded.served_calls,
    latency_sum = r.latency_sum + excluded.latency_sum,
    hist = hist_add(r.hist, excluded.hist)
  RETURNING 1"""

# The two failure rollups (day, month) share their measures and their merge.
_FAILURE_MEASURES = """count(*),
         count(*) FILTER (WHERE recovery = 'retry'),
         count(*) FILTER (WHERE recovery = 'fallback'),
         count(*) FILTER (WHERE status = 'error')"""
_FAILURE_UPSERT = """  DO UPDATE SET
    calls = r.calls + excluded.calls,
    retry_recovered = r.retry_recovered + excluded.retry_recovered,
    fallback_recovered = r.fallback_recovered + excluded.fallback_recovered,
    unrecoverable = r.unrecoverable + excluded.unrecoverable
  RETURNING 1"""

# What a fold takes: up to FOLD_LIMIT queued calls, deleted as they are read.
TAKE_QUEUED = f"""
  DELETE FROM calls_pending
  WHERE ctid = ANY(ARRAY(SELECT ctid FROM calls_pending LIMIT {FOLD_LIMIT}))
  RETURNING {PENDING_LIST}"""

# The rollup tables a fold writes, in the order it writes them (account_data_versions, a
# counter for cache keys, is not a rollup of the calls).
ROLLUP_TABLES = (
    "rollup_account_daily",
    "rollup_model_daily",
    "rollup_failure_daily",
    "rollup_failure_monthly",
    "rollup_trigger_daily",
    "rollup_provider_5m",
    "rollup_provider_hourly",
)


def fold_statement(taken: str = TAKE_QUEUED, into: str = "") -> str:
    """One statement: fold the calls the `taken` query returns (the queue's columns) into every
    rollup; `into` prefixes the rollup tables' names (verification folds into copies).

    Each rollup's rows go in key order. Not for locks (only a fold or a rebuild writes the
    rollups, one at a time under FOLD_LOCK) but for reads: new rows of an account-day then lie
    side by side in the table. In hash order a fold was 8-10% cheaper, but the 10M-call
    benchmark's failures answer for the largest account read ~4,400 heap pages for 5,600 daily
    rows and took 41 ms at p95, over its 30 ms target.
    """
    return f"""
WITH taken AS ({taken}
),
c AS (
  SELECT taken.*,
         (created_at AT TIME ZONE 'UTC')::date AS day,
         coalesce(initial_model, model) AS first_model,
         coalesce(initial_provider, provider) AS first_provider,
         failure_mode IN ('provider_error', 'timeout', 'rate_limited') AS provider_side,
         extract(hour FROM created_at AT TIME ZONE 'UTC')::int AS hour
  FROM taken
),
-- per account, environment, day: totals and hour-of-day counts
r_account AS (
  INSERT INTO {into}rollup_account_daily AS r
    (account_id, environment, day, calls, successes, routed_right, fallbacks, retried,
     ceiling_hits, cost_usd, latency_sum, input_tokens, output_tokens, quality_sum, quality_n,
     complexity_sum, complexity_n, message_sum, message_n, hour_calls)
  SELECT account_id, environment, day,
           count(*),
           count(*) FILTER (WHERE status = 'success'),
           count(*) FILTER (WHERE failure_mode IS NULL
                              AND (quality_score IS NULL OR quality_score >= 0.7)),
           count(*) FILTER (WHERE fallback_used),
           count(*) FILTER (WHERE retry_count > 0),
           count(*) FILTER (WHERE cost_ceiling_hit),
           sum(cost_usd),
           sum(latency_ms),
           sum(input_tokens),
           sum(output_tokens),
           coalesce(sum(quality_score::text::numeric), 0),
           count(quality_score),
           coalesce(sum(complexity_score::text::numeric), 0),
           count(complexity_score),
           coalesce(sum(message_count), 0),
           count(message_count),
           ARRAY[count(*) FILTER (WHERE hour = 0),
           count(*) FILTER (WHERE hour = 1),
           count(*) FILTER (WHERE hour = 2),
           count(*) FILTER (WHERE hour = 3),
           count(*) FILTER (WHERE hour = 4),
           count(*) FILTER (WHERE hour = 5),
           count(*) FILTER (WHERE hour = 6),
           count(*) FILTER (WHERE hour = 7),
           count(*) FILTER (WHERE hour = 8),
           count(*) FILTER (WHERE hour = 9),
           count(*) FILTER (WHERE hour = 10),
           count(*) FILTER (WHERE hour = 11),
           count(*) FILTER (WHERE hour = 12),
           count(*) FILTER (WHERE hour = 13),
           count(*) FILTER (WHERE hour = 14),
           count(*) FILTER (WHERE hour = 15),
           count(*) FILTER (WHERE hour = 16),
           count(*) FILTER (WHERE hour = 17),
           count(*) FILTER (WHERE hour = 18),
           count(*) FILTER (WHERE hour = 19),
           count(*) FILTER (WHERE hour = 20),
           count(*) FILTER (WHERE hour = 21),
           count(*) FILTER (WHERE hour = 22),
           count(*) FILTER (WHERE hour = 23)]
  FROM c GROUP BY 1, 2, 3
  ORDER BY 1, 2, 3
  ON CONFLICT (account_id, environment, day) DO UPDATE SET
    calls = r.calls + excluded.calls,
    successes = r.successes + excluded.successes,
    routed_right = r.routed_right + excluded.routed_right,
    fallbacks = r.fallbacks + excluded.fallbacks,
    retried = r.retried + excluded.retried,
    ceiling_hits = r.ceiling_hits + excluded.ceiling_hits,
    cost_usd = r.cost_usd + excluded.cost_usd,
    latency_sum = r.latency_sum + excluded.latency_sum,
    input_tokens = r.input_tokens + excluded.input_tokens,
    output_tokens = r.output_tokens + excluded.output_tokens,
    quality_sum = r.quality_sum + excluded.quality_sum,
    quality_n = r.quality_n + excluded.quality_n,
    complexity_sum = r.complexity_sum + excluded.complexity_sum,
    complexity_n = r.complexity_n + excluded.complexity_n,
    message_sum = r.message_sum + excluded.message_sum,
    message_n = r.message_n + excluded.message_n,
    hour_calls = counts_add(r.hour_calls, excluded.hour_calls)
  RETURNING 1
),
-- per day x task x served model
r_model AS (
  INSERT INTO {into}rollup_model_daily AS r
    (account_id, environment, day, task_type, model, calls, successes, cost_usd, latency_sum,
     quality_sum, quality_n)
  SELECT account_id, environment, day, task_type, model,
         count(*), count(*) FILTER (WHERE status = 'success'), sum(cost_usd), sum(latency_ms),
         coalesce(sum(quality_score::text::numeric), 0), count(quality_score)
  FROM c GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
  ON CONFLICT (account_id, environment, day, task_type, model) DO UPDATE SET
    calls = r.calls + excluded.calls,
    successes = r.successes + excluded.successes,
    cost_usd = r.cost_usd + excluded.cost_usd,
    latency_sum = r.latency_sum + excluded.latency_sum,
    quality_sum = r.quality_sum + excluded.quality_sum,
    quality_n = r.quality_n + excluded.quality_n
  RETURNING 1
),
-- per day x task x first-choice model x failure mode ('' = none)
r_failure AS (
  INSERT INTO {into}rollup_failure_daily AS r
    (account_id, environment, day, task_type, first_model, failure_mode, calls,
     retry_recovered, fallback_recovered, unrecoverable)
  SELECT account_id, environment, day, task_type, first_model, coalesce(failure_mode, ''),
{_FAILURE_MEASURES}
  FROM c GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6
  ON CONFLICT (account_id, environment, day, task_type, first_model, failure_mode)
{_FAILURE_UPSERT}
),
-- month rows only for the months that have ended (the current one is built when it ends)
r_failure_month AS (
  INSERT INTO {into}rollup_failure_monthly AS r
    (account_id, environment, month, task_type, first_model, failure_mode, calls,
     retry_recovered, fallback_recovered, unrecoverable)
  SELECT account_id, environment, date_trunc('month', day)::date, task_type, first_model,
         coalesce(failure_mode, ''),
{_FAILURE_MEASURES}
  FROM c WHERE day < (SELECT failure_monthly_before FROM rollup_watermarks)
  GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6
  ON CONFLICT (account_id, environment, month, task_type, first_model, failure_mode)
{_FAILURE_UPSERT}
),
r_trigger AS (
  INSERT INTO {into}rollup_trigger_daily AS r
    (account_id, environment, day, failure_mode, failure_trigger, calls)
  SELECT account_id, environment, day, failure_mode, failure_trigger, count(*)
  FROM c WHERE failure_mode IS NOT NULL AND failure_trigger IS NOT NULL
  GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
  ON CONFLICT (account_id, environment, day, failure_mode, failure_trigger)
  DO UPDATE SET calls = r.calls + excluded.calls
  RETURNING 1
),
-- platform-wide provider health: first-choice errors and served latency, per 5 minutes
p AS (
  SELECT environment, date_bin('5 minutes', created_at, TIMESTAMPTZ '2000-01-01 00:00Z') AS b5,
         first_provider, provider, provider_side, failure_mode, latency_ms
  FROM c
),
p_fc AS (
  SELECT environment, b5, first_provider AS provider, count(*) AS fc_calls,
         count(*) FILTER (WHERE provider_side) AS fc_provider_failures,
         count(*) FILTER (WHERE failure_mode = 'rate_limited') AS fc_rate_limited
  FROM p GROUP BY 1, 2, 3
),
p_bins AS (
  SELECT environment, b5, provider, latency_bin(latency_ms) AS bin, count(*) AS n,
         sum(latency_ms) AS latency_sum
  FROM p GROUP BY 1, 2, 3, 4
),
p_served AS (
  SELECT environment, b5, provider, sum(n)::bigint AS served_calls,
         sum(latency_sum)::bigint AS latency_sum,
         hist_from_bins(array_agg(bin), array_agg(n)) AS hist
  FROM p_bins GROUP BY 1, 2, 3
),
p_rows AS (
  SELECT environment, b5, provider,
         coalesce(f.fc_calls, 0) AS fc_calls,
         coalesce(f.fc_provider_failures, 0) AS fc_provider_failures,
         coalesce(f.fc_rate_limited, 0) AS fc_rate_limited,
         coalesce(s.served_calls, 0) AS served_calls,
         coalesce(s.latency_sum, 0) AS latency_sum,
         coalesce(s.hist, '{{}}'::integer[]) AS hist
  FROM p_fc f FULL JOIN p_served s USING (environment, b5, provider)
),
r_p5 AS (
  INSERT INTO {into}rollup_provider_5m AS r {_PROVIDER_COLUMNS}
  SELECT * FROM p_rows ORDER BY 1, 2, 3
{_PROVIDER_UPSERT}
),
-- the same per hour, built from the bins (one histogram per row, no merging)
ph_fc AS (
  SELECT environment, date_trunc('hour', b5, 'UTC') AS bh, provider, sum(fc_calls) AS fc_calls,
         sum(fc_provider_failures) AS fc_provider_failures, sum(fc_rate_limited) AS fc_rate_limited
  FROM p_fc GROUP BY 1, 2, 3
),
ph_bins AS (
  SELECT environment, date_trunc('hour', b5, 'UTC') AS bh, provider, bin, sum(n) AS n,
         sum(latency_sum) AS latency_sum
  FROM p_bins GROUP BY 1, 2, 3, 4
),
ph_served AS (
  SELECT environment, bh, provider, sum(n)::bigint AS served_calls,
         sum(latency_sum)::bigint AS latency_sum,
         hist_from_bins(array_agg(bin), array_agg(n::bigint)) AS hist
  FROM ph_bins GROUP BY 1, 2, 3
),
r_ph AS (
  INSERT INTO {into}rollup_provider_hourly AS r {_PROVIDER_COLUMNS}
  SELECT environment, bh, provider,
         coalesce(f.fc_calls, 0), coalesce(f.fc_provider_failures, 0),
         coalesce(f.fc_rate_limited, 0), coalesce(s.served_calls, 0),
         coalesce(s.latency_sum, 0), coalesce(s.hist, '{{}}'::integer[])
  FROM ph_fc f FULL JOIN ph_served s USING (environment, bh, provider)
  ORDER BY 1, 2, 3
{_PROVIDER_UPSERT}
),
r_version AS (
  INSERT INTO {into}account_data_versions AS r (account_id, environment, version, updated_at)
  SELECT DISTINCT account_id, environment, 1, now() FROM c ORDER BY 1, 2
  ON CONFLICT (account_id, environment) DO UPDATE SET
    version = r.version + 1, updated_at = excluded.updated_at
  RETURNING 1
)
SELECT (SELECT count(*) FROM taken) AS folded,
       (SELECT count(*) FROM r_account) + (SELECT count(*) FROM r_model)
       + (SELECT count(*) FROM r_failure) + (SELECT count(*) FROM r_failure_month)
       + (SELECT count(*) FROM r_trigger)
       + (SELECT count(*) FROM r_p5) + (SELECT count(*) FROM r_ph) AS rollup_rows
"""


# Take everything queued (up to FOLD_LIMIT), and fold it into every rollup.
FOLD = fold_statement()

_DEADLOCK_RETRIES = 3


def dedupe(rows: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """First occurrence of each (account_id, call_id) wins; sorted by that key for locking."""
    seen: dict[tuple[str, str], tuple[Any, ...]] = {}
    for row in rows:
        seen.setdefault((row[0], row[1]), row)
    return [seen[k] for k in sorted(seen)]


# The ids that name no account. The others are locked FOR KEY SHARE until commit, as a foreign
# key would lock them row by row: once per account instead of once per call.
KNOWN_ACCOUNTS = """
SELECT array_agg(id) FROM (
  SELECT id FROM accounts WHERE id = ANY($1::text[]) ORDER BY id FOR KEY SHARE
) locked
"""


async def driver_connection(conn: AsyncConnection) -> Any:
    raw = await conn.get_raw_connection()
    return raw.driver_connection


async def insert_calls(conn: AsyncConnection, rows: Sequence[tuple[Any, ...]]) -> int:
    """Insert rows (already validated) and queue the new ones, in the caller's transaction;
    returns how many were new. Raises InvalidCallRecord when an account does not exist;
    nothing is written then."""
    if not rows:
        return 0
    await conn.execute(BEGIN_WRITE)
    raw = await driver_connection(conn)
    await raw.execute(STAGE_DDL)
    ids = sorted({r[0] for r in rows})
    unknown = sorted(set(ids) - set(await raw.fetchval(KNOWN_ACCOUNTS, ids) or ()))
    if unknown:
        raise InvalidCallRecord(
            f"Unknown account_id: {', '.join(unknown[:20])}"
            + (f" and {len(unknown) - 20} more" if len(unknown) > 20 else "")
            + ". Nothing was stored.",
            param="account_id",
            extra={"unknown_account_ids": unknown[:100]},
        )
    await raw.copy_records_to_table("calls_stage", records=dedupe(rows), columns=COLUMNS)
    inserted: int = await raw.fetchval(INSERT_AND_QUEUE)
    return inserted  # the stage empties itself at commit (or rollback)


async def _retrying(conn: AsyncConnection, work: Any) -> Any:
    """Run `work(conn)` and commit; the whole of it again when Postgres breaks a deadlock."""
    for attempt in range(_DEADLOCK_RETRIES + 1):
        try:
            result = await work(conn)
            await conn.commit()
            return result
        except (DBAPIError, asyncpg.PostgresError) as exc:
            await conn.rollback()
            state = sqlstate(exc)
            if state in ("40P01", "40001") and attempt < _DEADLOCK_RETRIES:
                log.warning("ingest retried after %s (attempt %d)", state, attempt + 1)
                await asyncio.sleep(0.05 * (attempt + 1))
                continue
            raise
        except BaseException:
            await conn.rollback()
            raise
    raise AssertionError("unreachable")


async def _fold_once(conn: AsyncConnection) -> int:
    await conn.execute(BEGIN_WRITE)
    raw = await driver_connection(conn)
    # Waiting for the lock counts against the statement timeout: a fold waits out another
    # process's (or a month's sealing, seconds) rather than fail.
    await raw.execute(FOLD_LOCK_WAITING, timeout=FOLD_LOCK_WAIT_S + 1)
    await seal_ended_months(raw)
    folded: int = await raw.fetchval(FOLD)
    return folded


async def seal_ended_months(raw: Any) -> None:
    """The first fold of a month builds the month rows of the months that have ended since the
    mark, from their daily rows, and moves the mark: from then on folds upsert those months'
    rows as the daily ones. Runs under FOLD_LOCK, in the fold's transaction."""
    mark = await raw.fetchrow(WATERMARK)
    if mark is None:
        raise RuntimeError(
            "rollup_watermarks has lost its row: `perf-metrics rollups rebuild` restores it"
        )
    before, this_month = mark
    if before >= this_month:
        return
    # Once a month, a scan of every account's daily rows since the mark: longer than a fold.
    await raw.execute(f"SET LOCAL statement_timeout = '{SEAL_TIMEOUT_S}s'")
    # Month rows from the mark on can only be strays (of a process still running the code
    # before migration 0006): they go, and the ended months are built afresh.
    await raw.execute(SEAL_DELETE, before, timeout=SEAL_TIMEOUT_S + 1)
    await raw.execute(SEAL_INSERT, before, this_month, timeout=SEAL_TIMEOUT_S + 1)
    await raw.execute(SEAL_MARK, before, this_month)
    await raw.execute("SET LOCAL statement_timeout TO DEFAULT")  # the fold's own, again
    log.info("failure month rows built for %s..%s", before, this_month)


async def fold(conn: AsyncConnection) -> int:
    """Fold every queued call into the rollups, committing every FOLD_LIMIT calls; returns how
    many calls it took.

    Waits for a fold in progress (one at a time): when it returns, every call committed before
    it was called is in the rollups, whoever folded it.
    """
    total = 0
    while True:
        folded: int = await _retrying(conn, _fold_once)
        total += folded
        if folded < FOLD_LIMIT:
            return total


async def store_calls(conn: AsyncConnection, rows: Sequence[tuple[Any, ...]]) -> int:
    """Insert a batch and queue its new calls, and commit; returns how many were new.

    The connection must not be inside a transaction with other pending work: this commits.
    """
    inserted: int = await _retrying(conn, lambda c: insert_calls(c, rows))
    return inserted


async def leave_queued_if_unavailable(folding: Awaitable[Any]) -> None:
    """Await a fold that follows a committed batch. If the database fails it (down, timed
    out), the batch is stored and queued all the same: say so in the log, not to the client,
    and let the next fold (the background folder's, within seconds) take it."""
    try:
        await folding
    except Exception as exc:
        if not is_database_unavailable(exc):
            raise
        log.warning("fold after a stored batch failed; left to the next fold: %s", exc)


class Folder:
    """A process's folds, shared by the requests that wait for one (group commit).

    `flush()` returns once a fold that started after the call has completed: every call the
    caller committed before calling is then in the rollups. Requests that commit while a fold
    runs all share the next one, so under load one fold counts several batches, and each
    account-day row is upserted once for all of them.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._lock = asyncio.Lock()
        self._started = 0
        self._done = 0
        self._folded_since_vacuum = 0

    async def flush(self) -> None:
        wanted = self._started + 1  # any fold numbered from here on starts after this moment
        async with self._lock:
            if self._done >= wanted:
                return  # one did, while this request waited
            self._started += 1
            number = self._started
            async with self._engine.connect() as conn:
                self._folded_since_vacuum += await fold(conn)
            self._done = number  # not after a failure: the waiters then try their own
            vacuum = self._folded_since_vacuum >= VACUUM_EVERY
            if vacuum:
                self._folded_since_vacuum = 0
        if vacuum:  # out of the lock: the next fold need not wait for it
            await self.vacuum_queue()

    async def vacuum_queue(self) -> None:
        """Reclaim the queue's dead rows. The fold has committed whatever happens here, so a
        failure is only logged: the next vacuum (or autovacuum) takes them."""
        try:
            async with self._engine.connect() as conn:
                # On the driver's connection, outside any transaction (VACUUM cannot run in
                # one), with a session-wide timeout: so the connection is closed afterwards
                # rather than returned to the pool with that setting.
                raw = await driver_connection(conn)
                try:
                    await raw.execute(f"SET statement_timeout = '{VACUUM_TIMEOUT_S}s'")
                    await raw.execute(VACUUM_QUEUE, timeout=VACUUM_TIMEOUT_S + 1)
                finally:
                    await conn.invalidate()
        except Exception as exc:
            log.warning("vacuum of the ingest queue failed, left for later: %s", exc)

    async def anything_queued(self) -> bool:
        async with self._engine.connect() as conn:
            return bool(await conn.scalar(PENDING_EXISTS))


async def fold_continuously(folder: Folder, interval_s: float) -> None:
    """The service's background folder: at start and then every `interval_s`, fold what is
    queued (calls a crashed or failed writer left behind). Runs until cancelled; database
    trouble is logged at most once a minute and retried."""
    last_warning = 0.0
    while True:
        try:
            if await folder.anything_queued():
                await folder.flush()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # keep folding once the database is back
            now = time.monotonic()
            if now - last_warning > 60:
                last_warning = now
                log.warning("background fold failed, retrying: %s", type(exc).__name__)
        await asyncio.sleep(interval_s)
