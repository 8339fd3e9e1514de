"""Changing an account's zone (SPEC §9): its rollups recounted from its calls in the new zone,
in one transaction, while ingest and folds go on.

Every day, month and hour of day in the account-keyed rollups is the account's own calendar,
so a new zone means new rows for all of its history. `change_zone`:

1. marks the account in `account_rebuilds` (committed): from then on folds leave its queued
   calls in the queue, and the month seal waits (it would build month rows from the old days);
2. waits out the fold in progress, if any (FOLD_LOCK): one that began before the mark may be
   folding the account's calls in the old zone;
3. in one REPEATABLE READ transaction, so that every statement sees one snapshot: deletes the
   account's rows of the account-keyed rollups, sets `accounts.timezone`, folds every call of
   the account that the snapshot does not show queued (month by month of the log, a progress
   line each), bumps the account's data versions and removes the mark.

Calls queued before the snapshot and after it stay queued and are folded once it commits, by
the next fold, in the new zone: each call is counted once. Readers read in snapshots of their
own, so they see the old rows and zone or the new ones, never a mix; the versions (and with
them cached answers and ETags) change at the same commit. Other accounts are not held up: their
calls fold meanwhile, and the rebuild writes no row they write (the provider rollups are
platform-wide and do not depend on any account's zone, so the rebuild leaves them alone).

The mark carries a lease (`expires_at`): a change whose process dies leaves a mark that only
delays the account's folds until it expires, and the transaction refuses to commit unless its
lease still has `MARGIN` to run, so a fold can never add old-zone calls to new-zone rows.

The rollups can only be recounted from calls that are still stored. If the call log has lost
some of the account's calls (a retention that drops old raw calls, SPEC §13), the recount holds
fewer calls than the rollups it replaces: the change is refused and nothing is written, so an
account's days are never in two zones.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from perf_metrics.accounts import AdminError, checked_zone
from perf_metrics.calls.store import PENDING_COLUMNS
from perf_metrics.db import (
    BEGIN_WRITE,
    account_rebuilds,
    account_versions,
    accounts,
    calls_pending,
    driver_connection,
)
from perf_metrics.rollups.fold import FOLD_LOCK_WAIT_S, FOLD_LOCK_WAITING, fold_statement
from perf_metrics.rollups.tables import ROLLUPS, account_daily

# The rollups keyed by account: all that a zone changes.
ACCOUNT_ROLLUPS = tuple(r for r in ROLLUPS if r.by_account)

LEASE = timedelta(minutes=30)
MARGIN = timedelta(minutes=1)
STATEMENT_TIMEOUT_S = 600
PROGRESS_FROM_CALLS = 100_000  # a progress line per month of the log from this many calls

CLAIM = f"""
INSERT INTO {account_rebuilds.name} AS r (account_id, timezone, started_at, expires_at)
VALUES ($1, $2, now(), now() + $3::interval)
ON CONFLICT (account_id) DO UPDATE SET
  timezone = excluded.timezone, started_at = excluded.started_at,
  expires_at = excluded.expires_at
WHERE r.expires_at <= now()
RETURNING 1
"""
RELEASE = f"DELETE FROM {account_rebuilds.name} WHERE account_id = $1"
# The last statement of the rebuild: its mark, removed only while its lease has time to run.
RELEASE_IN_TIME = f"""
DELETE FROM {account_rebuilds.name}
WHERE account_id = $1 AND expires_at > clock_timestamp() + $2::interval
RETURNING 1
"""

UNNAMED_QUEUED = (
    f"SELECT count(*) FROM {calls_pending.name} WHERE account_id = $1 AND call_id IS NULL"
)
FOLDED_CALLS = (
    f"SELECT coalesce(sum(calls), 0)::bigint FROM {account_daily.name} WHERE account_id = $1"
)
# The months (UTC) of the log the account's calls lie in, with their counts: the steps of the
# recount, each an index range of (account_id, environment, created_at).
MONTHS = """
SELECT environment, date_trunc('month', created_at, 'UTC') AS month, count(*) AS calls
FROM calls WHERE account_id = $1 GROUP BY 1, 2 ORDER BY 1, 2
"""
_columns = ", ".join(f"k.{c}" for c in PENDING_COLUMNS)
# One month of one environment of the account's calls, less those the snapshot shows queued
# (they are folded after the commit, in the new zone).
MONTH_OF_CALLS = f"""
  SELECT {_columns} FROM calls k
  WHERE k.account_id = $1 AND k.environment = $2
    AND k.created_at >= $3
    AND k.created_at < (($3 AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC'
    AND NOT EXISTS (
      SELECT 1 FROM {calls_pending.name} p WHERE p.account_id = $1 AND p.call_id = k.call_id
    )"""
RECOUNT_MONTH = fold_statement(MONTH_OF_CALLS, rollups=ACCOUNT_ROLLUPS)
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
    """Set `account_id`'s timezone to `zone` and recount its rollups in it (see the module's
    text); returns what was done. AdminError for an unknown account or zone, a change of the
    account already running, or calls the log no longer holds. Holds two of the engine's
    connections at once (the mark's and the recount's)."""
    say = progress or (lambda line: None)
    started = time.monotonic()
    async with engine.connect() as conn:
        zone = await checked_zone(conn, zone)
        current = await conn.scalar(select(accounts.c.timezone).where(accounts.c.id == account_id))
        if current is None:
            raise AdminError(f"no account {account_id}")
        if current == zone:
            await conn.rollback()
            return {"account_id": account_id, "timezone": zone, "changed": False}
        raw = await driver_connection(conn)
        claimed = await raw.fetchval(CLAIM, account_id, zone, LEASE)
        await conn.commit()
        if not claimed:
            raise AdminError(f"a zone change of {account_id} is already running; try later")
        try:
            # A fold that began before the mark may be folding the account's calls, in the old
            # zone: it commits before this returns, and every later fold sees the mark.
            await conn.execute(BEGIN_WRITE)
            await raw.execute(FOLD_LOCK_WAITING, timeout=FOLD_LOCK_WAIT_S + 1)
            await conn.commit()
            result = await _recount(engine, account_id, zone, say)
        except BaseException:
            await conn.rollback()
            # The zone stays as it was. If this fails too, the mark's lease runs out, and the
            # first error is the one to report.
            with contextlib.suppress(Exception):
                await raw.execute(RELEASE, account_id)
            raise
    seconds = time.monotonic() - started
    say(f"{account_id}: days now in {zone}, {result['calls']:,} calls in {seconds:.1f} s")
    return {
        "account_id": account_id,
        "timezone": zone,
        "previous_timezone": current,
        "changed": True,
        **result,
        "seconds": round(seconds, 1),
    }


async def _recount(
    engine: AsyncEngine, account_id: str, zone: str, say: Callable[[str], None]
) -> dict[str, Any]:
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="REPEATABLE READ")
        await conn.execute(BEGIN_WRITE)
        raw = await driver_connection(conn)
        await raw.execute(f"SET LOCAL statement_timeout = '{STATEMENT_TIMEOUT_S}s'")
        if await raw.fetchval(UNNAMED_QUEUED, account_id):
            raise AdminError(
                f"{account_id} has calls queued before migration 0007; they are folded within "
                "seconds by a running service: try again then"
            )
        before = await raw.fetchval(FOLDED_CALLS, account_id)
        for rollup in ACCOUNT_ROLLUPS:
            await raw.execute(f"DELETE FROM {rollup.name} WHERE account_id = $1", account_id)
        await raw.execute(
            "UPDATE accounts SET timezone = $2, updated_at = now() WHERE id = $1",
            account_id,
            zone,
        )
        months = await raw.fetch(MONTHS, account_id)
        total = sum(m["calls"] for m in months)
        loud = total >= PROGRESS_FROM_CALLS
        if loud:
            say(f"{account_id}: recounting {total:,} calls in {zone}, {len(months)} steps")
        recounted = rows = 0
        for m in months:
            step = await raw.fetchrow(
                RECOUNT_MONTH,
                account_id,
                m["environment"],
                m["month"],
                timeout=STATEMENT_TIMEOUT_S + 1,
            )
            recounted += step["folded"]
            rows += step["rollup_rows"]
            if loud:
                say(
                    f"  {m['environment']} {m['month']:%Y-%m}: {recounted:,} of {total:,} "
                    f"calls ({100 * recounted // max(total, 1)}%)"
                )
        if recounted < before:
            raise AdminError(
                f"{account_id}'s rollups count {before:,} calls, but the call log holds only "
                f"{recounted:,} of them: calls have been dropped from the log, and their days "
                f"cannot be recounted in {zone}. Nothing was changed; the days stay in the "
                "old zone."
            )
        await raw.execute(BUMP_VERSIONS, account_id)
        if not await raw.fetchval(RELEASE_IN_TIME, account_id, MARGIN):
            raise AdminError(
                f"the zone change of {account_id} outran its {LEASE} lease; nothing was "
                "changed. Try again."
            )
        await conn.commit()
    return {"calls": recounted, "queued_meanwhile": total - recounted, "rollup_rows": rows}
