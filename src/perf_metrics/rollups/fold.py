"""The fold: queued calls into every rollup, in one statement; and the month seal.

`fold` empties the queue (`calls_pending`) into every rollup in one transaction (DELETE ...
RETURNING feeds the upserts, so each queued call is counted exactly once), one fold at a time
under an advisory lock. Each process folds through its `Folder` (folder.py).

The fold is one big CTE statement kept as raw SQL text, on purpose: one INSERT ... ON CONFLICT
per rollup, all fed by one materialized scan of the taken calls (`c`), reads far better as SQL
than as nested Core constructs, and it runs on the driver's connection (asyncpg) like the rest
of the write path. The text is built from declared constants only: every rollup's column
lists, aggregates, conflict keys and merges come from its declaration in tables.py; the few
expressions of time (a call's day and hour in its account's zone) come from zones.py.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from perf_metrics.calls.store import PENDING_LIST
from perf_metrics.db import (
    BEGIN_WRITE,
    account_rebuilds,
    account_versions,
    accounts,
    commit_retrying,
    driver_connection,
)
from perf_metrics.errors import is_statement_timeout
from perf_metrics.rollups.tables import (
    HIST_ADD,
    ROLLUPS,
    SEALS,
    Rollup,
    Seal,
    account_daily,
    rollup_stale_blocks,
    rollup_watermarks,
)
from perf_metrics.zones import (
    ACCOUNT_ZONE_SQL,
    local_day_sql,
    local_hour_sql,
    platform_hour_sql,
)

log = logging.getLogger("perf_metrics.ingest")

# The rollups' time (zones.py): a call's day and hour of day in its account's zone, a 5-minute
# bucket's hour on the platform's UTC.
DAY = local_day_sql("taken.created_at", ACCOUNT_ZONE_SQL)
HOUR_OF_DAY = local_hour_sql("taken.created_at", ACCOUNT_ZONE_SQL)
HOUR_OF_BUCKET = platform_hour_sql("b5")

# One fold at a time, platform-wide (the provider rollups have no account dimension).
FOLD_LOCK = "SELECT pg_advisory_xact_lock(7233510)"
FOLD_LOCK_WAIT_S = 60
# A fold is not a request: its statement may take longer than a request's (the service's 5 s
# default). With the group rollups a fold of 50,000 calls of a 90-day backfill took 4-8 s on
# a busy 2-core machine (EXPLAIN ANALYZE, bench/results/breakdown.md), and seed and ingest
# failed on the request timeout. (Folding at most 20,000 calls instead cost 1.60x the CPU per
# call of ingest against the commit before the group rollups, where 50,000 cost 1.50x:
# smaller folds merge less.)
FOLD_TIMEOUT_S = 60
FOLD_LOCK_WAITING = f"SET LOCAL statement_timeout = '{FOLD_LOCK_WAIT_S}s'; {FOLD_LOCK}"


def _least_calls(seal: Seal) -> str:
    """SQL: the calls below which a block of `seal` is thin (tables.py's THIN_WEEK_CALLS)."""
    assert seal.least_calls is not None
    return f"(SELECT {seal.least_calls} FROM {rollup_watermarks.name})"


# The rollups of longer blocks (tables.py's SEALS: failure months, group weeks) hold rows only
# for the blocks before their mark, whole: live traffic's month has as many month rows as day
# rows, and upserting both was a fifth of a fold. A mark moves when its block has ended
# everywhere (`seal_ended_blocks`).
def block_rows_from_days(seal: Seal, where: str) -> str:
    """Block rows of a sealed rollup built from its daily rows (`where` selects them, whole
    blocks): the same keys, `day` to its block; none for a thin block (Seal.least_calls)."""
    rollup, days = seal.rollup, seal.days
    positions = ", ".join(str(i) for i in range(1, len(rollup.keys) + 1))
    if seal.least_calls is not None:  # the blocks with enough calls, by the account rollup
        where += f"""
  AND (account_id, environment, {seal.of_day}) IN (
    SELECT account_id, environment, {seal.of_day} FROM {account_daily.name} WHERE {where}
    GROUP BY 1, 2, 3 HAVING sum(calls) >= {_least_calls(seal)})"""
    return f"""
INSERT INTO {rollup.name}
  ({", ".join((*rollup.key_names, *rollup.measure_names))})
SELECT {", ".join(seal.of_day if k == seal.block else k for k in rollup.key_names)},
       {", ".join(m.total for m in rollup.measures)}
FROM {days.name} WHERE {where}
GROUP BY {positions} ORDER BY {positions}
"""


def thin_rows_deleted(seal: Seal, into: str = "") -> str:
    """Delete the rows of the thin blocks (by the account rollup's calls) from a sealed rollup
    (`into` prefixes its name): after a fold that upserts every late row (verify, rebuild)."""
    return f"""DELETE FROM {into}{seal.rollup.name} r USING (
  SELECT account_id, environment, {seal.of_day} AS block FROM {account_daily.name}
  GROUP BY 1, 2, 3 HAVING sum(calls) < {_least_calls(seal)}) thin
WHERE r.account_id = thin.account_id AND r.environment = thin.environment
  AND r.{seal.block} = thin.block"""


def _seal_statements(seal: Seal) -> tuple[str, str, str, str]:
    """The mark and the current block; delete the strays; build the ended blocks; move it."""
    marks = rollup_watermarks.name
    return (
        f"SELECT {seal.mark}, {seal.now} FROM {marks}",
        f"DELETE FROM {seal.rollup.name} WHERE {seal.block} >= $1",
        block_rows_from_days(seal, "day >= $1 AND day < $2"),
        f"UPDATE {marks} SET {seal.mark} = $2 WHERE {seal.mark} = $1",
    )


SEALING = {seal.rollup.name: _seal_statements(seal) for seal in SEALS}
SEAL_TIMEOUT_S = 600

# A fold's sorts and hashes in memory: with the default 4 MB, sorting the group rows of 50,000
# calls (150,000 rows, 16 MB) went to temporary files, and so did the join of the taken calls
# to their accounts (EXPLAIN ANALYZE). One fold runs at a time (FOLD_LOCK).
FOLD_WORK_MEM = "64MB"

# Calls per fold transaction: a backlog is folded in steps well inside FOLD_TIMEOUT_S. Under
# CPU and checkpoint pressure a fold of 50,000 calls has still run past its timeout, three
# times in a row, and a bulk load died of it: a fold that runs out of time is rolled back and
# the next takes half as many calls (FoldSize), down to FOLD_LEAST.
FOLD_LIMIT = 50_000
FOLD_LEAST = 500

# The accounts a zone change is recounting (rollups/rezone.py): their queued calls wait for
# it, to be folded in the new zone once it commits. A mark counts while its lease runs (the
# change is starting) and for as long as the recount's transaction holds its row lock, lease
# or not: a mark is dead only when it has expired and nobody holds it (a change that died).
REBUILDING = f"""SELECT account_id FROM {account_rebuilds.name}
  WHERE expires_at > now()
     OR account_id <> ALL(ARRAY(
          SELECT account_id FROM {account_rebuilds.name} FOR KEY SHARE SKIP LOCKED))"""

# What a fold takes: up to $1 queued calls (FoldSize), deleted as they are read.
TAKE_QUEUED = f"""
  DELETE FROM calls_pending
  WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM calls_pending
    WHERE account_id <> ALL(ARRAY({REBUILDING}))
    LIMIT $1))
  RETURNING {PENDING_LIST}"""


# Late calls of a `marks_late` rollup (tables.py's Seal) mark their blocks stale; reads take a
# stale block's days. The seal builds a stale block's rows afresh from its days once no fold has
# marked it for STALE_QUIET_S (a backfill marks the same weeks fold after fold: built once, at
# its end), or STALE_MOST_S after the first mark whatever comes (a steady trickle of late
# calls). A load (the CLI's ingest and seed) builds them all when it has folded its last
# batch (`settle`).
STALE_QUIET_S = 60
STALE_MOST_S = 900
MARKED_LATE = {seal.rollup.name: seal for seal in SEALS if seal.marks_late}
STALE = rollup_stale_blocks.name
# The stale blocks due to be built ($1: quiet seconds), of accounts no settings change is
# recounting (it builds their block rows itself: rezone.py).
STALE_DUE = f"""(last_at < now() - make_interval(secs => $1)
       OR first_at < now() - interval '{STALE_MOST_S} s')
  AND account_id <> ALL(ARRAY({REBUILDING}))"""
ANY_STALE_DUE = f"SELECT EXISTS (SELECT 1 FROM {STALE} WHERE {STALE_DUE})"


# Blocks as arrays of account, environment and first day ($1-$3).
BLOCKS_GIVEN = "unnest($1::text[], $2::text[], $3::date[]) AS due(a, e, b)"


def stale_rows_from_days(seal: Seal, into: str = "") -> str:
    """The rows of the given blocks (BLOCKS_GIVEN) of a `marks_late` rollup, built from their
    daily rows, into the rollup (`into` prefixes its name: verify's copy)."""
    rollup, days = seal.rollup, seal.days
    positions = ", ".join(str(i) for i in range(1, len(rollup.keys) + 1))
    end = f"(due.b + {seal.length})::date"
    thick = (
        ""
        if seal.least_calls is None
        else f"""
WHERE (SELECT sum(calls) FROM {account_daily.name} ad WHERE ad.account_id = due.a
         AND ad.environment = due.e AND ad.day >= due.b AND ad.day < {end})
      >= {_least_calls(seal)}"""
    )
    return f"""INSERT INTO {into}{rollup.name}
  ({", ".join((*rollup.key_names, *rollup.measure_names))})
SELECT {", ".join("due.b" if k == seal.block else k for k in rollup.key_names)},
       {", ".join(m.total for m in rollup.measures)}
FROM {BLOCKS_GIVEN} JOIN {days.name} d
  ON d.account_id = due.a AND d.environment = due.e
 AND d.day >= due.b AND d.day < {end}{thick}
GROUP BY {positions} ORDER BY {positions}"""


def _stale_statements(seal: Seal) -> tuple[str, str, str]:
    """Take the due stale blocks; delete their rows; build them from their days."""
    rollup = seal.rollup
    return (
        f"DELETE FROM {STALE} WHERE rollup = '{rollup.name}' AND {STALE_DUE}"
        " RETURNING account_id, environment, block",
        f"""DELETE FROM {rollup.name} r USING {BLOCKS_GIVEN}
  WHERE r.account_id = due.a AND r.environment = due.e AND r.{seal.block} = due.b""",
        stale_rows_from_days(seal),
    )


STALE_BUILDING = {name: _stale_statements(seal) for name, seal in MARKED_LATE.items()}

# The metadata keys the account of a call tracks (the fold joins it as `a`).
ACCOUNT_KEYS_SQL = "a.tracked_metadata_keys"


def calls_cte(zone: str | None = None, keys: str | None = None) -> str:
    """The taken calls with what the rollups group by. Their day and hour of day are counted in
    the zone of each call's account, `a` (every call has one: ingest refuses unknown accounts),
    or with `zone` (an SQL expression), in that one zone for all of them; likewise the metadata
    keys tracked (`keys`, an SQL text[] expression)."""
    if zone is None:
        day, hour = DAY, HOUR_OF_DAY
        source = f"taken JOIN {accounts.name} a ON a.id = taken.account_id"
    else:
        day, hour = local_day_sql("created_at", zone), local_hour_sql("created_at", zone)
        source = "taken"
    return f"""c AS (
  SELECT taken.*,
         {day} AS day,
         coalesce(initial_model, model) AS first_model,
         coalesce(initial_provider, provider) AS first_provider,
         failure_mode IN ('provider_error', 'timeout', 'rate_limited') AS provider_side,
         {hour} AS hour,
         {ACCOUNT_KEYS_SQL if keys is None else keys} AS tracked_keys
  FROM {source}
)"""


# The rows some rollups aggregate, as CTEs over `c`: the group rollups' (`g`), and the provider
# rollups', per 5-minute bucket (`p`) and per hour (`ph`, built from the 5-minute bins):
# first-choice counts per first-choice provider (`*_fc`), and served latency as histogram bins
# per served provider (`*_bins`, then `*_served`).
STAGES = {
    # The group rollups' rows: each call once per dimension, with its value ('' for none).
    "g": """g AS (
  SELECT account_id, environment, day, status, failure_mode, cost_usd, latency_ms,
         quality_score, input_tokens, output_tokens, 'user' AS dimension,
         coalesce(user_id, '') AS value
  FROM c
  UNION ALL
  SELECT account_id, environment, day, status, failure_mode, cost_usd, latency_ms,
         quality_score, input_tokens, output_tokens, 'metadata.' || k,
         coalesce(metadata ->> k, '')
  FROM c CROSS JOIN unnest(c.tracked_keys) AS k
)""",
    "p": """p AS (
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
)""",
    # One histogram per row, no merging.
    "ph": f"""ph_fc AS (
  SELECT environment, {HOUR_OF_BUCKET} AS bh, provider, sum(fc_calls) AS fc_calls,
         sum(fc_provider_failures) AS fc_provider_failures, sum(fc_rate_limited) AS fc_rate_limited
  FROM p_fc GROUP BY 1, 2, 3
),
ph_bins AS (
  SELECT environment, {HOUR_OF_BUCKET} AS bh, provider, bin, sum(n) AS n,
         sum(latency_sum) AS latency_sum
  FROM p_bins GROUP BY 1, 2, 3, 4
),
ph_served AS (
  SELECT environment, bh, provider, sum(n)::bigint AS served_calls,
         sum(latency_sum)::bigint AS latency_sum,
         hist_from_bins(array_agg(bin), array_agg(n::bigint)) AS hist
  FROM ph_bins GROUP BY 1, 2, 3
)""",
}


def _bump_versions(into: str) -> str:
    """Not a rollup of the calls: a counter per account and environment for cache keys."""
    return f"""r_version AS (
  INSERT INTO {into}{account_versions.name} AS r (account_id, environment, version, updated_at)
  SELECT DISTINCT account_id, environment, 1, now() FROM c ORDER BY 1, 2
  ON CONFLICT (account_id, environment) DO UPDATE SET
    version = r.version + 1, updated_at = excluded.updated_at
  RETURNING 1
)"""


def _cte(rollup: Rollup) -> str:
    return f"r_{rollup.name.removeprefix('rollup_')}"


def _aggregate(rollup: Rollup, *, json: bool = False) -> str:
    """A rollup's new rows: its measures over the fold's rows, per key, in key order. For
    `json`, histograms as text: JSON arrays would lose their subscripts (their bins)."""
    positions = ", ".join(str(i) for i in range(1, len(rollup.keys) + 1))
    where = "" if rollup.where is None else f" WHERE {rollup.where}"
    group = f" GROUP BY {positions}" if rollup.group else ""
    keys = ", ".join(f"{k.expression} AS {k.name}" for k in rollup.keys)
    measures = ",\n         ".join(
        f"({m.aggregate})::text AS {m.name}"
        if json and m.merge is HIST_ADD
        else f"{m.aggregate} AS {m.name}"
        for m in rollup.measures
    )
    return f"""SELECT {keys},
         {measures}
  FROM {rollup.rows}{where}{group}
  ORDER BY {positions}"""


def _merge(rollup: Rollup, into: str, rows: str) -> str:
    """INSERT the `rows` (a rollup's columns, in key order) added to the stored ones."""
    updates = ",\n    ".join(m.update for m in rollup.measures)
    return f"""INSERT INTO {into}{rollup.name} AS r
    ({", ".join((*rollup.key_names, *rollup.measure_names))})
  {rows}
  ON CONFLICT ({", ".join(rollup.key_names)}) DO UPDATE SET
    {updates}"""


def _upsert(rollup: Rollup, into: str) -> str:
    """One rollup's part of the fold: its rows, aggregated per key, added to the stored ones."""
    return f"""-- {rollup.about}
{_cte(rollup)} AS (
  {_merge(rollup, into, _aggregate(rollup))}
  RETURNING 1
)"""


def _mark_stale(seal: Seal) -> str:
    """A `marks_late` rollup's part of the fold: the blocks of its late rows, marked stale
    (their rows are left as they are: incomplete now, and never read until built afresh)."""
    rollup = seal.rollup
    assert rollup.where is not None  # the rows of days before the mark
    # Every call has a row in each of the rollup's blocks (a group rollup's calls: one per
    # dimension): the blocks of the calls themselves, a third of the rows to go through.
    return f"""-- {rollup.about}: late calls mark their blocks stale
{_cte(rollup)} AS (
  INSERT INTO {STALE} AS s (account_id, environment, rollup, block, first_at, last_at)
  SELECT DISTINCT account_id, environment, '{rollup.name}', {seal.of_day}, now(), now()
  FROM c WHERE {rollup.where}
  ORDER BY 1, 2, 4
  ON CONFLICT (account_id, environment, rollup, block) DO UPDATE SET last_at = excluded.last_at
  RETURNING 1
)"""


def _stages(rollups: tuple[Rollup, ...]) -> list[str]:
    """The stages (CTEs) the `rollups` read, once each, in order."""
    return [STAGES[s] for s in dict.fromkeys(r.stage for r in rollups if r.stage is not None)]


def aggregate_statement(taken: str, rollups: tuple[Rollup, ...], zone: str, keys: str) -> str:
    """One read-only statement: the new rows of each of `rollups` for the calls `taken`
    returns, with days in `zone` and the metadata keys `keys` (SQL expressions), as one JSON
    array per rollup. A settings change (rezone.py) computes these on several connections at
    once, in one snapshot, and merges them (`merge_json_statement`) in its own transaction."""
    ctes = ",\n".join([f"taken AS ({taken}\n)", calls_cte(zone, keys), *_stages(rollups)])
    arrays = ",\n       ".join(
        f"(SELECT coalesce(json_agg(x), '[]')::text FROM ({_aggregate(r, json=True)}) x)"
        f" AS {r.name}"
        for r in rollups
    )
    return f"""
WITH {ctes}
SELECT (SELECT count(*) FROM c) AS folded,
       {arrays}
"""


def merge_json_statement(rollup: Rollup) -> str:
    """Add the rows of a JSON array ($1, from `aggregate_statement`) to a rollup's."""
    columns = ", ".join((*rollup.key_names, *rollup.measure_names))
    rows = (
        f"SELECT {columns} FROM json_populate_recordset(NULL::{rollup.name}, $1::text::json)"
        f" ORDER BY {', '.join(str(i) for i in range(1, len(rollup.keys) + 1))}"
    )
    return _merge(rollup, "", rows)


def fold_statement(
    taken: str = TAKE_QUEUED,
    into: str = "",
    rollups: tuple[Rollup, ...] = ROLLUPS,
    *,
    zone: str | None = None,
    keys: str | None = None,
    versions: bool = True,
    late_rows: bool = False,
) -> str:
    """One statement: fold the calls the `taken` query returns (the queue's columns) into
    `rollups` (default: every rollup) and, with `versions`, bump their accounts' versions;
    `into` prefixes the rollup tables' names (verification folds into copies). Days are those
    of each call's account's zone, or of `zone`, and the metadata keys those the account
    tracks, or `keys` (calls_cte). Late calls of a `marks_late` rollup mark their blocks stale,
    or with `late_rows` are upserted into its block rows as into the others (a fold into copies,
    whose blocks are never marked: verify and rebuild, maintenance.py).

    Each rollup's rows go in key order. Not for locks (only a fold or a rebuild writes the
    rollups, one at a time under FOLD_LOCK) but for reads: new rows of an account-day then lie
    side by side in the table. In hash order a fold was 8-10% cheaper, but the 10M-call
    benchmark's failures answer for the largest account read ~4,400 heap pages for 5,600 daily
    rows and took 41 ms at p95, over its 30 ms target.
    """
    ctes = [f"taken AS ({taken}\n)", calls_cte(zone, keys), *_stages(rollups)]
    for rollup in rollups:
        if rollup.name in MARKED_LATE and not late_rows:
            if into:
                raise ValueError("a fold into copies upserts late rows (late_rows=True)")
            ctes.append(_mark_stale(MARKED_LATE[rollup.name]))
        else:
            ctes.append(_upsert(rollup, into))
    if versions:
        ctes.append(_bump_versions(into))
    body = ",\n".join(ctes)
    rollup_rows = "\n       + ".join(f"(SELECT count(*) FROM {_cte(r)})" for r in rollups)
    return f"""
WITH {body}
SELECT (SELECT count(*) FROM c) AS folded,
       {rollup_rows} AS rollup_rows
"""


# Take up to $1 queued calls, and fold them into every rollup.
FOLD = fold_statement()


class FoldTimedOut(TimeoutError):
    """Even a fold of FOLD_LEAST calls ran past its statement timeout. A TimeoutError: the
    database is unavailable for folding, as for a request timed out (errors.py)."""


@dataclass
class FoldSize:
    """How many calls a process's next fold takes, and its statement timeout. A fold that
    runs out of time halves the next one's calls (down to FOLD_LEAST); each that takes less
    than a quarter of its time doubles them back (up to FOLD_LIMIT)."""

    calls: int = FOLD_LIMIT
    timeout_s: float = FOLD_TIMEOUT_S
    shrunk: int = 0  # times a fold ran out of time and was retried smaller (for /metrics)

    def timed_out(self) -> None:
        if self.calls <= FOLD_LEAST:
            raise FoldTimedOut(
                f"a fold of {self.calls:,} calls ran past its {self.timeout_s:g} s statement"
                " timeout: the database is reachable but too busy or slow to fold; the calls"
                " stay queued for the next fold"
            )
        self.calls = max(FOLD_LEAST, self.calls // 2)
        self.shrunk += 1
        log.warning(
            "fold ran past its %g s statement timeout; the next takes %d calls",
            self.timeout_s,
            self.calls,
        )

    def took(self, seconds: float) -> None:
        if seconds < self.timeout_s / 4 and self.calls < FOLD_LIMIT:
            self.calls = min(FOLD_LIMIT, self.calls * 2)


# The process's: every Folder's fold shares it.
SIZE = FoldSize()

# How long the oldest queued call has waited for its fold, in seconds (0: none queued): what
# tells an operator a fold has stalled or fallen behind (/metrics). The queue's index (account,
# environment, queued_at) gives each scope's oldest at once; its scopes are walked a step at a
# time (a loose index scan), so a backlog of millions costs a few probes per scope, not a scan.
FOLD_LAG = """
WITH RECURSIVE scopes AS (
  (SELECT account_id, environment FROM calls_pending ORDER BY 1, 2 LIMIT 1)
  UNION ALL
  SELECT n.account_id, n.environment FROM scopes s CROSS JOIN LATERAL (
    SELECT p.account_id, p.environment FROM calls_pending p
    WHERE (p.account_id, p.environment) > (s.account_id, s.environment)
    ORDER BY 1, 2 LIMIT 1) n
)
SELECT coalesce(extract(epoch FROM now() - min((
  SELECT min(p.queued_at) FROM calls_pending p
  WHERE p.account_id = s.account_id AND p.environment = s.environment))), 0)::float8
FROM scopes s"""


async def _fold_once(conn: AsyncConnection, size: FoldSize) -> int:
    await conn.execute(BEGIN_WRITE)
    raw = await driver_connection(conn)
    # Waiting for the lock counts against the statement timeout: a fold waits out another
    # process's (or a month's sealing, seconds) rather than fail.
    await raw.execute(FOLD_LOCK_WAITING, timeout=FOLD_LOCK_WAIT_S + 1)
    await raw.execute(
        f"SET LOCAL statement_timeout = '{int(size.timeout_s * 1000)}ms';"
        f" SET LOCAL work_mem = '{FOLD_WORK_MEM}'"
    )
    await seal_ended_blocks(raw, size.timeout_s)
    await build_stale_blocks(raw, STALE_QUIET_S, size.timeout_s)
    folded: int = await raw.fetchval(FOLD, size.calls, timeout=size.timeout_s + 1)
    return folded


async def build_stale_blocks(
    raw: Any, quiet_s: float, fold_timeout_s: float = FOLD_TIMEOUT_S
) -> int:
    """Build afresh the rows of the stale blocks due (STALE_QUIET_S, STALE_MOST_S; every one
    with `quiet_s` 0) from their days, and drop their marks; returns how many blocks. Runs
    under FOLD_LOCK, in the fold's transaction: a reader sees a block stale or built."""
    built = 0
    for name, (take, delete, build) in STALE_BUILDING.items():
        due = await raw.fetch(take, float(quiet_s))
        if not due:
            continue
        blocks = tuple(map(list, zip(*due, strict=True)))  # accounts, environments, blocks
        # A backfill's stale weeks are built at once: longer than a fold.
        await raw.execute(f"SET LOCAL statement_timeout = '{SEAL_TIMEOUT_S}s'")
        await raw.execute(delete, *blocks, timeout=SEAL_TIMEOUT_S + 1)
        await raw.execute(build, *blocks, timeout=SEAL_TIMEOUT_S + 1)
        await raw.execute(f"SET LOCAL statement_timeout = '{int(fold_timeout_s * 1000)}ms'")
        built += len(due)
        log.info("%s: %d stale blocks built afresh", name, len(due))
    return built


async def _settle_once(conn: AsyncConnection) -> int:
    await conn.execute(BEGIN_WRITE)
    raw = await driver_connection(conn)
    await raw.execute(FOLD_LOCK_WAITING, timeout=FOLD_LOCK_WAIT_S + 1)
    await raw.execute(f"SET LOCAL statement_timeout = '{FOLD_TIMEOUT_S}s'")
    return await build_stale_blocks(raw, 0)


async def settle(conn: AsyncConnection) -> int:
    """Build every stale block now (not waiting for STALE_QUIET_S): a load's last step, once
    its late calls are all folded. Returns how many blocks were built."""
    built: int = await commit_retrying(conn, _settle_once)
    return built


async def seal_ended_blocks(raw: Any, fold_timeout_s: float = FOLD_TIMEOUT_S) -> None:
    """The first fold of a month (of a week) builds the block rows of the months (weeks) that
    have ended since the mark, from their daily rows, and moves the mark: from then on folds
    upsert those blocks' rows as the daily ones. Runs under FOLD_LOCK, in the fold's
    transaction."""
    rebuilding: bool | None = None
    for name, (mark, delete, build, move) in SEALING.items():
        row = await raw.fetchrow(mark)
        if row is None:
            raise RuntimeError(
                "rollup_watermarks has lost its row: `perf-metrics rollups rebuild` restores it"
            )
        before, now = row
        if before >= now:
            continue
        if rebuilding is None:
            rebuilding = await raw.fetchval(f"SELECT EXISTS ({REBUILDING})")
        if rebuilding:
            # A settings change is rebuilding an account's block rows from the mark it read:
            # the mark moves after it, at the next fold (rezone.py).
            return
        # Once a block, a scan of every account's daily rows since the mark: longer than a fold.
        await raw.execute(f"SET LOCAL statement_timeout = '{SEAL_TIMEOUT_S}s'")
        # Block rows from the mark on can only be strays (of a process still running older
        # code): they go, and the ended blocks are built afresh.
        await raw.execute(delete, before, timeout=SEAL_TIMEOUT_S + 1)
        await raw.execute(build, before, now, timeout=SEAL_TIMEOUT_S + 1)
        await raw.execute(move, before, now)
        await raw.execute(f"SET LOCAL statement_timeout = '{int(fold_timeout_s * 1000)}ms'")
        log.info("%s rows built for %s..%s", name, before, now)


async def fold(conn: AsyncConnection, size: FoldSize = SIZE) -> int:
    """Fold every queued call into the rollups, committing every `size.calls` calls; returns
    how many calls it took. A fold that runs out of time is retried smaller (FoldSize); one of
    FOLD_LEAST calls that does raises FoldTimedOut.

    Waits for a fold in progress (one at a time): when it returns, every call committed before
    it was called is in the rollups, whoever folded it, but for the calls of an account whose
    zone is being changed (they wait for the change's commit: rezone.py).
    """
    total = 0
    while True:
        calls = size.calls
        started = time.perf_counter()
        try:
            folded: int = await commit_retrying(conn, lambda c: _fold_once(c, size))
        except (DBAPIError, asyncpg.PostgresError, TimeoutError) as exc:
            if not is_statement_timeout(exc):
                raise
            size.timed_out()  # raises at FOLD_LEAST
            continue
        size.took(time.perf_counter() - started)
        total += folded
        if folded < calls:
            return total
