"""Bulk loading for the CLI: JSONL files (`perf-metrics ingest`) and generated logs (`seed`).

Batches go through the same validation and write path as POST /v1/calls. Each batch is one
transaction: a bad line stops the load before its batch is written, so earlier batches stay
and nothing of the failing batch does; re-running the same file inserts nothing new.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import IO, Any

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from perf_metrics.calls.schema import parse_ndjson_lines
from perf_metrics.calls.store import store_calls
from perf_metrics.errors import InvalidCallRecord
from perf_metrics.rollups.folder import Folder

BATCH_LINES = 20_000
log = logging.getLogger("perf_metrics.ingest")


@dataclass
class LoadResult:
    received: int = 0
    inserted: int = 0

    def as_json(self) -> dict[str, int]:
        return {
            "received": self.received,
            "inserted": self.inserted,
            "duplicates": self.received - self.inserted,
        }


class BadLine(Exception):
    """A line failed validation; `errors` carry 1-based line numbers."""

    def __init__(self, errors: list[dict[str, Any]], total: int) -> None:
        super().__init__(f"{total} invalid field(s)")
        self.errors = errors
        self.total = total


def read_batches(stream: IO[bytes], size: int = BATCH_LINES) -> Iterator[tuple[int, list[bytes]]]:
    """(index of the batch's first line, its lines)."""
    batch: list[bytes] = []
    first = 0
    for number, line in enumerate(stream):
        if not batch:
            first = number
        batch.append(line)
        if len(batch) >= size:
            yield first, batch
            batch = []
    if batch:
        yield first, batch


def parse_batch(first: int, lines: list[bytes]) -> list[tuple[Any, ...]]:
    try:
        return parse_ndjson_lines(lines, first_index=first + 1)
    except InvalidCallRecord as exc:
        errors = exc.extra.get("errors", [])
        raise BadLine(
            [{"line": e["index"], "field": e["field"], "message": e["message"]} for e in errors],
            len(errors),
        ) from None


async def load_jsonl(engine: AsyncEngine, stream: IO[bytes], progress: Any = None) -> LoadResult:
    """Load a JSONL stream batch by batch, each batch its own transaction. A bad line in batch
    N+1 stops the load after N has committed (and is folded); nothing of N+1 is written."""
    batches = read_batches(stream)

    def parse_next() -> tuple[list[tuple[Any, ...]], int] | None:
        for first, lines in batches:
            return parse_batch(first, lines), sum(len(line) for line in lines)
        return None

    return await load_pipelined(engine, parse_next, progress)


async def load_pipelined(
    engine: AsyncEngine,
    next_batch: Callable[[], tuple[list[tuple[Any, ...]], int] | None],
    progress: Any = None,
) -> LoadResult:
    """Store the batches `next_batch()` returns ((validated rows, progress units), None at
    the end), each in its own transaction, until it returns None or raises.

    Pipelined on both cores: while Postgres stores batch N, a thread builds and validates batch
    N+1 (the event loop only waits on sockets then, so the two share the GIL well), and a
    second connection folds the batches before into the rollups (`Folder`). Returns once every
    stored batch is folded, after a failure too, and (but after a failure) the stale blocks its
    late calls left are built.
    """
    result = LoadResult()
    folder = Folder(engine)  # its own connection: it folds while `conn` stores
    folds: list[asyncio.Future[None]] = []
    with automatic_gc_paused():
        async with engine.connect() as conn:
            failed = False
            try:
                parsed = await asyncio.to_thread(next_batch)
                while parsed is not None:
                    rows, size = parsed
                    following = asyncio.ensure_future(asyncio.to_thread(next_batch))
                    try:
                        inserted = await store_calls(conn, rows)
                    except BaseException:
                        await asyncio.wait([following])  # the thread cannot be cancelled
                        if not following.cancelled():
                            following.exception()  # retrieved: this batch's error is told
                        raise
                    # Batches stored while a fold runs share the next one.
                    folds.append(asyncio.ensure_future(folder.flush()))
                    result.received += len(rows)
                    result.inserted += inserted
                    if progress is not None:
                        progress.update(size)
                    parsed = await following
            except BaseException:
                failed = True
                raise
            finally:
                # Every stored batch folded before returning, after a bad line too.
                outcomes = await asyncio.gather(*folds, return_exceptions=True)
                errors = [e for e in outcomes if isinstance(e, BaseException)]
                if errors and not failed:
                    raise errors[0]
                if errors:
                    log.error("fold failed; the service's folder will take the rest: %s", errors[0])
            # A load's late calls (a backfill's, most of them) leave their weeks stale: built
            # now, once, rather than by a service's folder a minute later (fold.py).
            await folder.settle()
    return result


@contextmanager
def automatic_gc_paused() -> Iterator[None]:
    """A bulk load allocates millions of short-lived rows without cycles; the cyclic collector
    would walk them again and again (~20% of the validation time). Reference counting frees
    them; one collection runs at the end."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
        gc.collect()


def open_input(path: str) -> IO[bytes]:
    if path == "-":
        return sys.stdin.buffer
    return open(path, "rb")


async def seed(
    engine: AsyncEngine,
    *,
    accounts: int,
    days: int,
    calls: int,
    seed_value: int,
    end: datetime,
    progress: Any = None,
) -> dict[str, Any]:
    """Create the planned accounts (if missing; each in its `synthetic.account_zone`) and load
    a generated log through the ingest path. Returns the load counts and the generator's own
    per-account totals."""
    from perf_metrics import accounts as admin
    from perf_metrics import synthetic

    plan = synthetic.plan_accounts(accounts, seed_value)
    # Accounts that exist keep their settings, their zone too (a change of zone recounts).
    zones: dict[str, str] = {}
    async with engine.begin() as conn:
        for index, spec in enumerate(plan):
            try:
                account = await admin.get_account(conn, spec.account_id)
            except admin.AdminError:
                account = await admin.create_account(
                    conn,
                    name=spec.name,
                    tier=spec.tier,
                    account_id=spec.account_id,
                    timezone=synthetic.account_zone(index),
                    tracked_metadata_keys=list(synthetic.TRACKED_KEYS),
                )
            zones[spec.account_id] = account["timezone"]
    totals: dict[str, list[Any]] = {}
    chunks = synthetic.generate_calls(
        plan, days=days, calls=calls, seed=seed_value, end=end, chunk_size=BATCH_LINES
    )

    def generate_next() -> tuple[list[tuple[Any, ...]], int] | None:
        for chunk in chunks:  # in the loader's thread, one chunk at a time
            for record in chunk:
                entry = totals.setdefault(record["account_id"], [0, Decimal(0)])
                entry[0] += 1
                entry[1] += Decimal(repr(record["cost_usd"]))
            return parse_ndjson_lines([orjson.dumps(r) for r in chunk]), len(chunk)
        return None

    result = await load_pipelined(engine, generate_next, progress)
    return {
        **result.as_json(),
        "accounts": [
            {
                "account_id": spec.account_id,
                "name": spec.name,
                "tier": spec.tier,
                "timezone": zones[spec.account_id],
                "calls": totals.get(spec.account_id, [0])[0],
                "cost_usd": str(totals.get(spec.account_id, [0, Decimal(0)])[1]),
            }
            for spec in plan
        ],
    }
