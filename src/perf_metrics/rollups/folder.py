"""A process's folds: group commit, the background folder, and the queue's vacuum.

Each process folds through its `Folder` (the service's background folder, requests that wait
for their fold, the CLI's pipeline): batches store in parallel instead of queueing on each
other's rollup row locks, and a fold of several batches upserts each account-day row once. A
queue left behind by a crash is folded by the service's background folder within seconds
(SPEC §7: 5 s).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from perf_metrics.db import driver_connection
from perf_metrics.errors import is_database_unavailable
from perf_metrics.rollups.fold import ANY_STALE_DUE, STALE_QUIET_S, fold, settle

log = logging.getLogger("perf_metrics.ingest")

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
    caller committed before calling is then in the rollups (but for an account whose zone is
    being changed: rezone.py). Requests that commit while a fold runs all share the next one,
    so under load one fold counts several batches, and each account-day row is upserted once
    for all of them.
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

    async def settle(self) -> None:
        """Build every stale block now (fold.py's `settle`): the end of a load."""
        async with self._lock, self._engine.connect() as conn:
            await settle(conn)

    async def anything_to_fold(self) -> bool:
        """Calls queued, or stale blocks due to be built (a fold builds those first)."""
        async with self._engine.connect() as conn:
            if await conn.scalar(PENDING_EXISTS):
                return True
            raw = await driver_connection(conn)
            due = bool(await raw.fetchval(ANY_STALE_DUE, float(STALE_QUIET_S)))
            await conn.rollback()
            return due


async def fold_continuously(folder: Folder, interval_s: float) -> None:
    """The service's background folder: at start and then every `interval_s`, fold what is
    queued (calls a crashed or failed writer left behind) and build the stale blocks due.
    Runs until cancelled; database trouble is logged at most once a minute and retried."""
    last_warning = 0.0
    while True:
        try:
            if await folder.anything_to_fold():
                await folder.flush()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # keep folding once the database is back
            now = time.monotonic()
            if now - last_warning > 60:
                last_warning = now
                log.warning("background fold failed, retrying: %s", type(exc).__name__)
        await asyncio.sleep(interval_s)
