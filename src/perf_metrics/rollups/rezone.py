"""Changing an account's zone (SPEC §9) or its tracked metadata keys (SPEC §10): its rollups
recounted from its calls, in one transaction, while ingest and folds go on.

Every day, month and hour of day in the account-keyed rollups is the account's own calendar,
so a new zone means new rows for all of its history; a new set of tracked keys means new rows
of the group rollups (the only ones keyed by metadata). `change_account` (the CLI's `accounts
update --timezone / --track-metadata`):

1. marks the account in `account_rebuilds` (committed): from then on folds leave its queued
   calls in the queue, and the month seal waits (it would build month rows from the old days);
2. waits out the fold in progress, if any (FOLD_LOCK): one that began before the mark may be
   folding the account's calls in the old zone;
3. in one REPEATABLE READ transaction, so that every statement sees one snapshot: locks the
   mark's row (for as long as it holds that lock, folds leave the account alone, lease or
   not), sets `accounts.timezone` and `tracked_metadata_keys`, deletes the account's rows of
   the account-keyed rollups (of the group rollups only, when only the keys change),
   folds every call of the account that the snapshot does not show queued (week by week of
   the log, a progress line each), bumps the account's data versions and removes the mark.

Calls queued before the snapshot and after it stay queued and are folded once it commits, by
the next fold, in the new zone: each call is counted once. Readers read in snapshots of their
own, so they see the old rows and zone or the new ones, never a mix; the versions (and with
them cached answers and ETags) change at the same commit. Other accounts are not held up: their
calls fold meanwhile, and the rebuild writes no row they write (the provider rollups are
platform-wide and do not depend on any account's zone, so the rebuild leaves them alone).

A mark counts while its lease (`expires_at`) runs or while a recount holds its row lock (fold.py's
REBUILDING): a change whose process dies leaves a mark that delays the account's folds only until
the lease has run out, and a recount that outlasts the lease still keeps every fold off the
account until it commits or rolls back, so a fold can never add old-zone calls to new-zone rows.
A mark is named by its start time: a change only ever removes its own.

Calls held back meanwhile are stored, but missing from answers until the commit, the provider
rollups included (they are folded with the rest of the account's queue). Deploying: every
process must run this code (migration 0007 and after) before the first zone change; a process
on older code folds every account in UTC and ignores the marks.

The rollups can only be recounted from calls that are still stored. If the call log has lost
some of the account's calls (a retention that drops old raw calls, SPEC §13), the recount holds
fewer calls than the rollups it replaces: the change is refused and nothing is written, so an
account's days are never in two zones.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from perf_metrics.accounts import AdminError, checked_metadata_keys, checked_zone
from perf_metrics.calls.store import PENDING_COLUMNS
from perf_metrics.db import (
    BEGIN_WRITE,
    account_rebuilds,
    account_versions,
    accounts,
    calls_pending,
    driver_connection,
)
from perf_metrics.errors import sqlstate
from perf_metrics.rollups.fold import (
    FOLD_LOCK,
    SEAL_TIMEOUT_S,
    STALE,
    aggregate_statement,
    block_rows_from_days,
    merge_json_statement,
)
from perf_metrics.rollups.tables import (
    ROLLUPS,
    SEALS,
    Rollup,
    account_daily,
    group_daily_rollup,
    group_weekly_rollup,
    rollup_watermarks,
)

# The rollups keyed by account: all that a zone changes. Tracked metadata keys change only the
# group rollups.
ACCOUNT_ROLLUPS = tuple(r for r in ROLLUPS if r.by_account)
GROUP_ROLLUPS = (group_daily_rollup, group_weekly_rollup)

# The mark's lease covers the change until its recount holds the mark's row lock (from then on
# the lock keeps folds off the account, however long the recount takes): the wait for the fold
# lock, at most FOLD_WAIT_S.
LEASE = timedelta(minutes=30)
FOLD_WAIT_S = SEAL_TIMEOUT_S + 60  # a fold in progress may be sealing a month
CLAIM_LOCK_TIMEOUT_S = 5
STATEMENT_TIMEOUT_S = 600
WORK_MEM = "256MB"
# Connections that compute the recount's steps at once (besides the recount's own and the
# mark's): a statement that writes runs on one core, these reads run side by side.
READERS = 2
PROGRESS_FROM_CALLS = 100_000  # a progress line per week of the log from this many calls

# A new mark, or one whose change died (expired, and no recount holds it: a live recount's row
# lock makes this wait, until CLAIM_LOCK_TIMEOUT_S). Its start time identifies it.
CLAIM = f"""
INSERT INTO {account_rebuilds.name} AS r (account_id, timezone, started_at, expires_at)
VALUES ($1, $2, clock_timestamp(), clock_timestamp() + $3::interval)
ON CONFLICT (account_id) DO UPDATE SET
  timezone = excluded.timezone, started_at = excluded.started_at,
  expires_at = excluded.expires_at
WHERE r.expires_at <= now()
RETURNING started_at
"""
WAIT_FOR_FOLDS = f"SET LOCAL statement_timeout = '{FOLD_WAIT_S}s'; {FOLD_LOCK}"
# The recount's first statement: its snapshot, and the lock that marks it alive.
HOLD = f"""
SELECT 1 FROM {account_rebuilds.name} WHERE account_id = $1 AND started_at = $2 FOR UPDATE
"""
RELEASE = f"DELETE FROM {account_rebuilds.name} WHERE account_id = $1 AND started_at = $2"

UNNAMED_QUEUED = (
    f"SELECT count(*) FROM {calls_pending.name} WHERE account_id = $1 AND call_id IS NULL"
)
FOLDED_CALLS = (
    f"SELECT coalesce(sum(calls), 0)::bigint FROM {account_daily.name} WHERE account_id = $1"
)
# The weeks (168 hours from a Monday 00:00 UTC) of the log the account's calls lie in, with
# their counts: the steps of the recount, each an index range of (account_id, environment,
# created_at). Weeks rather than months: steps of a few percent of the work each keep the
# readers busy to the end.
WEEKS = """
SELECT environment, date_bin('168 hours', created_at, TIMESTAMPTZ '2000-01-03 00:00Z') AS week,
       count(*) AS calls
FROM calls WHERE account_id = $1 GROUP BY 1, 2 ORDER BY 1, 2
"""
_columns = ", ".join(f"k.{c}" for c in PENDING_COLUMNS)
# One week of one environment of the account's calls, less those the snapshot shows queued
# (they are folded after the commit, in the new zone).
WEEK_OF_CALLS = f"""
  SELECT {_columns} FROM calls k
  WHERE k.account_id = $1 AND k.environment = $2
    AND k.created_at >= $3 AND k.created_at < $3 + interval '168 hours'
    AND NOT EXISTS (
      SELECT 1 FROM {calls_pending.name} p WHERE p.account_id = $1 AND p.call_id = k.call_id
    )"""
# In the new zone ($4), with the new tracked keys ($5), the new rows of the account-keyed
# rollups but those of longer blocks (built from the new daily rows at the end, as the seal
# does: cheaper than from the calls). Computed on reader connections in the recount's
# snapshot, merged by the recount.
SEALED = {seal.rollup.name: seal for seal in SEALS}
STEP_ROLLUPS = tuple(r for r in ACCOUNT_ROLLUPS if r.name not in SEALED)
MERGE_STEP = {r.name: merge_json_statement(r) for r in STEP_ROLLUPS}
BLOCK_ROWS = {
    name: block_rows_from_days(
        seal, f"account_id = $1 AND day < (SELECT {seal.mark} FROM {rollup_watermarks.name})"
    )
    for name, seal in SEALED.items()
}


def recount_step(rollups: tuple[Rollup, ...]) -> str:
    """A week of the account's calls (rezone's WEEK_OF_CALLS) aggregated into `rollups`."""
    return aggregate_statement(
        WEEK_OF_CALLS, tuple(r for r in rollups if r.name not in SEALED), "$4", "$5::text[]"
    )


RECOUNT_STEP = {rollups: recount_step(rollups) for rollups in (ACCOUNT_ROLLUPS, GROUP_ROLLUPS)}
UNMARK = f"DELETE FROM {STALE} WHERE account_id = $1 AND rollup = ANY($2::text[])"
BUMP_VERSIONS = f"""
INSERT INTO {account_versions.name} AS r (account_id, environment, version, updated_at)
SELECT $1, e, 1, now() FROM unnest(ARRAY['live', 'test']) AS e
ON CONFLICT (account_id, environment) DO UPDATE SET
  version = r.version + 1, updated_at = excluded.updated_at
"""


async def change_zone(
    engine: AsyncEngine,
    account_id: str,
    zone: str,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Set `account_id`'s timezone to `zone` and recount its rollups in it (change_account)."""
    return await change_account(engine, account_id, zone=zone, progress=progress)


async def change_account(
    engine: AsyncEngine,
    account_id: str,
    *,
    zone: str | None = None,
    tracked_keys: list[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Set `account_id`'s timezone to `zone` and/or its tracked metadata keys to
    `tracked_keys` (None: unchanged), and recount the rollups they change (see the module's
    text): every account-keyed rollup for a new zone, the group rollups for new keys; returns
    what was done. AdminError for an unknown account, zone or key, a change of the account
    already running, or calls the log no longer holds. Holds 2 + READERS of the engine's
    connections at once (the mark's, the recount's, its readers')."""
    say = progress or (lambda line: None)
    started = time.monotonic()
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(accounts.c.timezone, accounts.c.tracked_metadata_keys).where(
                    accounts.c.id == account_id
                )
            )
        ).one_or_none()
        if row is None:
            raise AdminError(f"no account {account_id}")
        current = (row.timezone, list(row.tracked_metadata_keys))
        new = (
            current[0] if zone is None else await checked_zone(conn, zone),
            current[1] if tracked_keys is None else checked_metadata_keys(tracked_keys),
        )
        changed = {
            "timezone": new[0],
            "tracked_metadata_keys": new[1],
        }
        if new == current:
            await conn.rollback()
            return {"account_id": account_id, **changed, "changed": False}
        rollups = ACCOUNT_ROLLUPS if new[0] != current[0] else GROUP_ROLLUPS
        raw = await driver_connection(conn)
        await raw.execute(f"SET LOCAL lock_timeout = '{CLAIM_LOCK_TIMEOUT_S}s'")
        try:
            mark = await raw.fetchval(CLAIM, account_id, new[0], LEASE)
        except asyncpg.LockNotAvailableError:
            mark = None
        await conn.commit()
        if mark is None:
            raise AdminError(f"a change of {account_id}'s rollups is already running; try later")
        try:
            # A fold that began before the mark may be folding the account's calls, in the old
            # zone: it commits before this returns, and every later fold sees the mark. (Not in
            # the recount's transaction: waiting there would come after its snapshot.)
            await conn.execute(BEGIN_WRITE)
            await raw.execute(WAIT_FOR_FOLDS, timeout=FOLD_WAIT_S + 1)
            await conn.commit()
            result = await _recount(engine, account_id, new, rollups, mark, say)
        except BaseException as exc:
            await conn.rollback()
            # The settings stay as they were. If this fails too, the mark dies when its lease
            # has run out and no recount holds it; the first error is the one to report.
            with contextlib.suppress(Exception):
                await conn.execute(BEGIN_WRITE)
                await raw.execute(f"SET LOCAL lock_timeout = '{CLAIM_LOCK_TIMEOUT_S}s'")
                await raw.execute(RELEASE, account_id, mark)
                await conn.commit()
            if sqlstate(exc) == "40001":
                raise AdminError(
                    f"{account_id} was changed by someone else during the change of its "
                    "rollups; nothing was changed: try again"
                ) from exc
            raise
    seconds = time.monotonic() - started
    what = [f"days now in {new[0]}"] if new[0] != current[0] else []
    if new[1] != current[1]:
        what.append(f"tracking {', '.join(new[1]) or 'no metadata keys'}")
    say(f"{account_id}: {'; '.join(what)}, {result['calls']:,} calls in {seconds:.1f} s")
    return {
        "account_id": account_id,
        **changed,
        "previous_timezone": current[0],
        "previous_tracked_metadata_keys": current[1],
        "changed": True,
        "recounted": [r.name for r in rollups],
        **result,
        "seconds": round(seconds, 1),
    }


async def _recount(
    engine: AsyncEngine,
    account_id: str,
    settings: tuple[str, list[str]],
    rollups: tuple[Rollup, ...],
    mark: datetime,
    say: Callable[[str], None],
) -> dict[str, Any]:
    zone, keys = settings
    step_rollups = tuple(r for r in rollups if r.name not in SEALED)
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="REPEATABLE READ")
        await conn.execute(BEGIN_WRITE)  # takes no snapshot (SET does not)
        raw = await driver_connection(conn)
        await raw.execute(f"SET LOCAL statement_timeout = '{STATEMENT_TIMEOUT_S}s'")
        # A week of the largest account's calls, with their keys, in memory rather than in
        # temporary files.
        await raw.execute(f"SET LOCAL work_mem = '{WORK_MEM}'")
        if not await raw.fetchval(HOLD, account_id, mark):  # the snapshot is taken here
            raise AdminError(f"the change of {account_id}'s rollups lost its mark; try again")
        await raw.execute(
            "UPDATE accounts SET timezone = $2, tracked_metadata_keys = $3, updated_at = now()"
            " WHERE id = $1",
            account_id,
            zone,
            keys,
        )
        if await raw.fetchval(UNNAMED_QUEUED, account_id):
            raise AdminError(
                f"{account_id} has calls queued before migration 0007; they are folded within "
                "seconds by a running service: try again then"
            )
        before = await raw.fetchval(FOLDED_CALLS, account_id)
        for rollup in rollups:
            await raw.execute(f"DELETE FROM {rollup.name} WHERE account_id = $1", account_id)
        weeks = await raw.fetch(WEEKS, account_id)
        total = sum(w["calls"] for w in weeks)
        loud = total >= PROGRESS_FROM_CALLS
        if loud:
            say(f"{account_id}: recounting {total:,} calls in {zone}, {len(weeks)} steps")
        snapshot = await raw.fetchval("SELECT pg_export_snapshot()")
        recounted = rows = 0
        steps = _steps(engine, snapshot, RECOUNT_STEP[rollups], (account_id, zone, keys), weeks)
        async for week, step in steps:
            recounted += step["folded"]
            for rollup in step_rollups:
                status = await raw.execute(
                    MERGE_STEP[rollup.name], step[rollup.name], timeout=STATEMENT_TIMEOUT_S + 1
                )
                rows += int(status.rsplit(" ", 1)[-1])
            if loud:
                say(
                    f"  {week['environment']} week of {week['week']:%Y-%m-%d}: {recounted:,} of "
                    f"{total:,} calls ({100 * recounted // max(total, 1)}%)"
                )
        if recounted < before:
            raise AdminError(
                f"{account_id}'s rollups count {before:,} calls, but the call log holds only "
                f"{recounted:,} of them: calls have been dropped from the log, and their days "
                "cannot be recounted. Nothing was changed; the account's settings stay as "
                "they were."
            )
        for rollup in rollups:
            if rollup.name in BLOCK_ROWS:
                await raw.execute(
                    BLOCK_ROWS[rollup.name], account_id, timeout=STATEMENT_TIMEOUT_S + 1
                )
        # Every block is whole again: no stale ones (folds left the account alone meanwhile).
        await raw.execute(UNMARK, account_id, [r.name for r in rollups])
        await raw.execute(BUMP_VERSIONS, account_id)
        await raw.execute(RELEASE, account_id, mark)
        await conn.commit()
    return {"calls": recounted, "queued_meanwhile": total - recounted, "rollup_rows": rows}


async def _steps(
    engine: AsyncEngine,
    snapshot: str,
    statement: str,
    args: tuple[str, str, list[str]],
    weeks: list[Any],
) -> AsyncIterator[tuple[Any, Any]]:
    """The new rows of each week of the log, computed on READERS connections at once, each
    in the recount's snapshot (`SET TRANSACTION SNAPSHOT`), yielded as they come: the work of
    a recount is these aggregates; merging them is a small part of it."""
    todo: asyncio.Queue[Any] = asyncio.Queue()
    for week in sorted(weeks, key=lambda w: -w["calls"]):  # the largest first
        todo.put_nowait(week)
    done: asyncio.Queue[tuple[Any, Any] | BaseException | None] = asyncio.Queue()

    async def read() -> None:
        try:
            async with engine.connect() as conn:
                await conn.execution_options(isolation_level="REPEATABLE READ")
                await conn.execute(BEGIN_WRITE)
                raw = await driver_connection(conn)
                await raw.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
                await raw.execute(f"SET LOCAL work_mem = '{WORK_MEM}'")
                await raw.execute(f"SET LOCAL statement_timeout = '{STATEMENT_TIMEOUT_S}s'")
                while not todo.empty():
                    week = todo.get_nowait()
                    account_id, zone, keys = args
                    step = await raw.fetchrow(
                        statement,
                        account_id,
                        week["environment"],
                        week["week"],
                        zone,
                        keys,
                        timeout=STATEMENT_TIMEOUT_S + 1,
                    )
                    await done.put((week, step))
                await conn.rollback()
        except BaseException as exc:
            await done.put(exc)
            raise
        finally:
            await done.put(None)

    readers = [asyncio.create_task(read()) for _ in range(min(READERS, len(weeks)))]
    try:
        finished = 0
        while finished < len(readers):
            item = await done.get()
            if item is None:
                finished += 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item
    finally:
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
