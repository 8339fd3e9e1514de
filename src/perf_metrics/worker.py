"""The worker (SPEC §11): evaluates the alert rules that are due and delivers the webhooks
that are due, until stopped; and keeps their tables trim (the 5-minute rollup's aged buckets,
the delivery log past 30 days).

Any number of workers may run at once: each claims its rules and deliveries with
`FOR UPDATE SKIP LOCKED` (alerts/rules.py, webhooks/delivery.py), so no rule is evaluated
twice at once and no attempt is sent twice. `serve` runs one in every process unless
RUN_WORKER=false; `perf-metrics worker` runs one on its own.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from perf_metrics.alerts import rules
from perf_metrics.rollups.tables import ROLLUPS
from perf_metrics.webhooks import delivery
from perf_metrics.webhooks.egress import Sender

log = logging.getLogger("perf_metrics.worker")

UPKEEP_EVERY_S = 60.0
# The rollups of recent time only lose their aged rows here (tables.py's `keeps`).
PRUNE_ROLLUPS = tuple(
    text(f"DELETE FROM {r.name} WHERE NOT ({r.keeps})") for r in ROLLUPS if r.keeps is not None
)


def utc_now() -> datetime:
    return datetime.now(UTC)


class Worker:
    """One worker: `run_once` does one round of due work; `run` loops until cancelled."""

    def __init__(
        self,
        engine: AsyncEngine,
        sender: Sender,
        *,
        clock: Callable[[], datetime] = utc_now,
        interval_s: float = 0.25,
        rng: random.Random | None = None,
    ) -> None:
        self.engine = engine
        self.sender = sender
        self.clock = clock
        self.interval_s = interval_s
        self.rng = rng or random.Random()
        self._last_upkeep = -UPKEEP_EVERY_S

    async def run_once(self) -> int:
        """Evaluate the due rules, then deliver the due webhooks (their events included);
        returns how many of both."""
        evaluated = await rules.evaluate_due(self.engine, self.clock)
        delivered = await delivery.deliver_due(self.engine, self.sender, self.clock, self.rng)
        if time.monotonic() - self._last_upkeep >= UPKEEP_EVERY_S:
            await self.upkeep()
        return evaluated + delivered

    async def upkeep(self) -> None:
        self._last_upkeep = time.monotonic()
        async with self.engine.begin() as conn:
            for statement in PRUNE_ROLLUPS:
                await conn.execute(statement)
            await delivery.prune(conn, self.clock())

    async def run(self) -> None:
        """Until cancelled: a round, then a pause when there was nothing to do. Database
        trouble is logged at most once a minute and retried."""
        last_warning = 0.0
        while True:
            try:
                busy = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                busy = 0
                now = time.monotonic()
                if now - last_warning > 60:
                    last_warning = now
                    log.warning("worker round failed, retrying: %s: %s", type(exc).__name__, exc)
            if not busy:
                await asyncio.sleep(self.interval_s)
