"""Checking and rebuilding the rollups against the call log (`perf-metrics rollups ...`).

The write path keeps one invariant: in any snapshot, the rollups plus what is still queued
count every stored call exactly once. `verify_rollups` checks it the direct way: in one
snapshot it folds the whole call log (or one account's) into empty copies of the rollup
tables, folds the queue into copies of the stored rollups, and compares the two row by row.
It uses the fold's own statement, so it finds drift (a call counted twice or never, rows
edited or deleted by hand, calls deleted without their rollups), not a wrong formula: the
tests check the formulas against a plain Python reference.

`rebuild_rollups` recomputes every rollup from the call log in one transaction.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from perf_metrics.accounts import AdminError
from perf_metrics.calls.store import PENDING_LIST
from perf_metrics.db import BEGIN_WRITE, account_versions, calls_pending, driver_connection
from perf_metrics.rollups.fold import (
    FOLD_LOCK,
    MARKED_LATE,
    REBUILDING,
    STALE,
    fold_statement,
    stale_rows_from_days,
    thin_rows_deleted,
)
from perf_metrics.rollups.tables import ROLLUP_TABLES, ROLLUPS, SEALS, rollup_watermarks

REBUILD_LOCK_TIMEOUT_S = 10
# The rollups of longer blocks: their rows from the mark on are strays, never read; and so are
# those of stale blocks, which are read as their days.
SEALED_BEFORE = {
    seal.rollup.name: f"t.{seal.block} < (SELECT {seal.mark} FROM {rollup_watermarks.name})"
    + (
        f""" AND NOT EXISTS (SELECT 1 FROM {STALE} s WHERE s.account_id = t.account_id
  AND s.environment = t.environment AND s.rollup = '{seal.rollup.name}'
  AND s.block = t.{seal.block})"""
        if seal.marks_late
        else ""
    )
    for seal in SEALS
}
# The rollups of recent time only: the rows they keep (older ones are deleted as they age).
KEPT = {r.name: f"t.{r.keeps}" for r in ROLLUPS if r.keeps is not None}
# A stale block as the reads see it: its rows built from its days.
STALE_BLOCKS = f"""SELECT account_id, environment, block FROM {STALE}
  WHERE rollup = $1 AND ($2::text IS NULL OR account_id = $2)"""
STALE_AS_READ = {
    name: stale_rows_from_days(seal, "v_stored_") for name, seal in MARKED_LATE.items()
}
# Thin blocks have no rows (they are read as their days): the folds into the copies upsert
# them, and a rebuild's fold too. Which blocks are thin is the stored account rollup's say.
THIN = tuple(seal for seal in SEALS if seal.least_calls is not None)
RESTORE_MARK = f"""
INSERT INTO {rollup_watermarks.name} ({", ".join(seal.mark for seal in SEALS)})
VALUES ({", ".join(seal.now for seal in SEALS)})
ON CONFLICT (id) DO NOTHING
"""

# The rollups keyed by account; the provider ones are platform-wide.
ACCOUNT_TABLES = tuple(r.name for r in ROLLUPS if r.by_account)
KEYS = {r.name: ", ".join(r.key_names) for r in ROLLUPS}


async def verify_rollups(
    conn: AsyncConnection, account_id: str | None = None, examples: int = 5
) -> dict[str, Any]:
    """Compare the stored rollups (plus the queue) with the rollups of the call log.

    Runs in the caller's transaction, which should be REPEATABLE READ so that every statement
    sees the same snapshot; it writes only temporary tables, dropped at commit. With
    `account_id`, checks that account's rows of the account-keyed rollups only.
    """
    await conn.execute(BEGIN_WRITE)
    raw = await driver_connection(conn)
    where, args = ("", ()) if account_id is None else (" WHERE account_id = $1", (account_id,))
    checked = ROLLUP_TABLES if account_id is None else ACCOUNT_TABLES
    for table in (*ROLLUP_TABLES, account_versions.name):
        for copy in ("v_stored_", "v_expected_"):
            await raw.execute(
                f"CREATE TEMP TABLE {copy}{table} (LIKE {table} INCLUDING ALL) ON COMMIT DROP"
            )
    stale_blocks = 0
    for table in checked:
        stored = f"SELECT * FROM {table} t{where}"
        for condition in (SEALED_BEFORE.get(table), KEPT.get(table)):
            if condition is not None:
                stored += (" AND " if " WHERE " in stored else " WHERE ") + condition
        await raw.execute(f"INSERT INTO v_stored_{table} {stored}", *args)
        if table in STALE_AS_READ:
            stale = await raw.fetch(STALE_BLOCKS, table, account_id)
            if stale:
                blocks = tuple(map(list, zip(*stale, strict=True)))
                await raw.execute(STALE_AS_READ[table], *blocks)
            stale_blocks += len(stale)
    # Queued calls are stored but not folded yet: stored rollups + queue = the log's rollups.
    # (Both folds upsert late calls into the block rows of the copies: no marks.)
    queued = await raw.fetchrow(
        fold_statement(
            f"SELECT {PENDING_LIST} FROM calls_pending{where}", "v_stored_", late_rows=True
        ),
        *args,
    )
    logged = await raw.fetchrow(
        fold_statement(f"SELECT {PENDING_LIST} FROM calls{where}", "v_expected_", late_rows=True),
        *args,
    )
    for seal in THIN:
        for copy in ("v_stored_", "v_expected_"):
            await raw.execute(thin_rows_deleted(seal, copy))
    tables = []
    for table in checked:
        differing = f"""
            SELECT to_jsonb(s)::text AS stored, to_jsonb(e)::text AS expected
            FROM v_stored_{table} s FULL JOIN v_expected_{table} e USING ({KEYS[table]})
            WHERE s IS DISTINCT FROM e"""
        tables.append(
            {
                "table": table,
                "rows": await raw.fetchval(f"SELECT count(*) FROM v_stored_{table}"),
                "expected_rows": await raw.fetchval(f"SELECT count(*) FROM v_expected_{table}"),
                "differing_rows": await raw.fetchval(f"SELECT count(*) FROM ({differing}) d"),
                "examples": [
                    {"stored": _exact(r["stored"]), "expected": _exact(r["expected"])}
                    for r in await raw.fetch(f"{differing} LIMIT {int(examples)}")
                ],
            }
        )
    return {
        "ok": not any(t["differing_rows"] for t in tables),
        "account_id": account_id,
        "calls": logged["folded"],
        "queued": queued["folded"],
        "stale_blocks": stale_blocks,  # compared as read: built from their days
        "tables": tables,
    }


def _exact(row: str | None) -> orjson.Fragment | None:
    """A row as Postgres wrote it in JSON: sums of money keep every digit."""
    return None if row is None else orjson.Fragment(row)


async def rebuild_rollups(conn: AsyncConnection) -> dict[str, Any]:
    """Recompute every rollup from the call log, in the caller's transaction.

    Ingest waits (the call log is locked against writes) and so do folds; readers go on
    reading the old rollups (DELETE, not TRUNCATE, which would show them empty tables once it
    commits) and see the new ones at commit. Every account's cache version is bumped, those of
    accounts left without calls too, so no cached answer outlives the rebuild.
    """
    await conn.execute(BEGIN_WRITE)
    raw = await driver_connection(conn)
    # Waiting long for a lock here would hold up all ingest behind it: give up instead.
    await raw.execute(f"SET LOCAL lock_timeout = '{REBUILD_LOCK_TIMEOUT_S}s'")
    await raw.execute("LOCK TABLE calls IN SHARE MODE")  # no batch commits meanwhile
    await raw.execute(FOLD_LOCK)  # and no fold
    await raw.execute("SET LOCAL lock_timeout = 0")
    # A zone change recounts its account in a snapshot of its own: the two would count the
    # account's calls twice. (One that begins after this waits for the fold lock.)
    changing = await raw.fetch(REBUILDING)
    if changing:
        raise AdminError(
            "a zone change is recounting "
            + ", ".join(r["account_id"] for r in changing)
            + ": run the rebuild when it is done"
        )
    # The marks, back if they were lost (blocks before them get their rows below).
    await raw.execute(RESTORE_MARK)
    for table in (*ROLLUP_TABLES, calls_pending.name, STALE):
        await raw.execute(f"DELETE FROM {table}")
    await raw.execute(
        f"UPDATE {account_versions.name} SET version = version + 1, updated_at = now()"
    )
    # Every block whole: the late calls' rows upserted, no marks.
    row = await raw.fetchrow(fold_statement(f"SELECT {PENDING_LIST} FROM calls", late_rows=True))
    for seal in THIN:
        await raw.execute(thin_rows_deleted(seal))
    return {"calls": row["folded"], "rollup_rows": row["rollup_rows"]}
