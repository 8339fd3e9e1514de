"""The write path of a batch: raw call rows, and the queue of new calls for the rollups.

A batch is COPYed into a per-connection temporary table, then one statement inserts the new
calls (ON CONFLICT DO NOTHING: a stored call_id is skipped, never overwritten) and queues
exactly the inserted rows in `calls_pending`, in the batch's transaction: the whole batch is
stored and queued at once, or not at all. A duplicate or a rejected batch never reaches the queue.

The queue is folded into the rollups by `perf_metrics.rollups` (fold.py, folder.py). The SQL here
is raw text, not SQLAlchemy Core: COPY and the insert-and-queue CTE are asyncpg statements on the
driver's connection, built once from the declared column lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from perf_metrics.calls.schema import COLUMNS
from perf_metrics.db import BEGIN_WRITE, calls_pending, commit_retrying, driver_connection
from perf_metrics.errors import InvalidCallRecord

STAGE_DDL = """
CREATE TEMP TABLE IF NOT EXISTS calls_stage
  (LIKE calls INCLUDING DEFAULTS EXCLUDING CONSTRAINTS) ON COMMIT DELETE ROWS
"""

_COLS = ", ".join(COLUMNS)

# What the rollups read of a call: the queue's columns.
PENDING_COLUMNS = tuple(c for c in COLUMNS if c in calls_pending.c)
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


async def store_calls(conn: AsyncConnection, rows: Sequence[tuple[Any, ...]]) -> int:
    """Insert a batch and queue its new calls, and commit; returns how many were new.

    The connection must not be inside a transaction with other pending work: this commits.
    """
    inserted: int = await commit_retrying(conn, lambda c: insert_calls(c, rows))
    return inserted
