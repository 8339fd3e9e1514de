"""The outbox and its delivery (SPEC §11): at least once, never lost, never twice at once.

`enqueue` writes an event and one delivery per endpoint that takes it, in the caller's
transaction: an alert's change of state commits with its event, or neither does. `deliver_due`
(the worker) claims due deliveries with `FOR UPDATE SKIP LOCKED` and moves each one's
`next_attempt_at` a lease ahead in the same commit, so no other worker takes it while it is in
flight; it then sends them, and records each outcome. A worker that dies between claim and send
leaves its claims to be retried once their lease runs out: a receiver may see an event more
than once (it dedupes on `webhook-id`, the event's id, the same on every attempt), but never
not at all.

Retries: after about 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h (each +-10%), or after the
receiver's Retry-After when it sends one (at most 1 h). A 410 disables the endpoint at once; an
endpoint whose every attempt has failed for 5 days is disabled; a disabled (or deleted)
endpoint's pending deliveries are cancelled.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Text, and_, any_, func, insert, literal, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from perf_metrics import observability
from perf_metrics.keys import new_id
from perf_metrics.webhooks import signing
from perf_metrics.webhooks.egress import Outcome, Sender
from perf_metrics.webhooks.tables import (
    webhook_deliveries,
    webhook_endpoints,
    webhook_events,
)
from perf_metrics.zones import iso_z

log = logging.getLogger("perf_metrics.webhooks")

# Seconds to wait after the n-th failed attempt (n = 1..7); the 8th failure is the last.
RETRY_DELAYS_S = (5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600)
MAX_ATTEMPTS = len(RETRY_DELAYS_S) + 1
JITTER = 0.10
RETRY_AFTER_CAP_S = 3600
DISABLE_AFTER = timedelta(days=5)
# How long a claimed delivery is left to its worker. An attempt starts only while at least
# SEND_WINDOW of it is left (a send takes at most 15 s, resolving included, and its outcome
# is recorded as soon as it ends), so no other worker can take it while it is in flight.
LEASE = timedelta(seconds=60)
SEND_WINDOW = timedelta(seconds=25)
LOG_DAYS = 30  # deliveries and events are kept this long
CLAIM_BATCH = 200
CONCURRENT_SENDS = 64

Clock = Callable[[], datetime]


def retry_delay(attempt: int, outcome: Outcome, rng: random.Random) -> float | None:
    """Seconds until the next attempt after failed attempt number `attempt`, or None when it
    was the last (or the receiver said 410)."""
    if outcome.status_code == 410 or attempt >= MAX_ATTEMPTS:
        return None
    if outcome.retry_after_s is not None:
        return max(1.0, min(outcome.retry_after_s, RETRY_AFTER_CAP_S))
    return RETRY_DELAYS_S[attempt - 1] * rng.uniform(1 - JITTER, 1 + JITTER)


def event_body(event_type: str, data: dict[str, Any], at: datetime) -> bytes:
    """The body of an event, as it is signed and sent on every attempt."""
    return orjson.dumps({"type": event_type, "timestamp": iso_z(at), "data": data})


async def enqueue(
    conn: AsyncConnection,
    *,
    account_id: str,
    environment: str,
    event_type: str,
    data: dict[str, Any],
    now: datetime,
    alert_id: str | None = None,
    endpoint_ids: Sequence[str] | None = None,
    every_type: bool = False,
    lease_until: datetime | None = None,
) -> str:
    """Write an event and a delivery to each enabled endpoint of the account and environment
    that takes its type (of `endpoint_ids` only, if given; whatever types they take, with
    `every_type`), in the caller's transaction. With `lease_until`, the deliveries are
    written claimed for their first attempt (the caller sends them: `claimed`). Returns the
    event's id."""
    event_id = new_id("msg_")
    await conn.execute(
        insert(webhook_events).values(
            account_id=account_id,
            id=event_id,
            environment=environment,
            type=event_type,
            alert_id=alert_id,
            body=event_body(event_type, data, now).decode(),
            created_at=now,
        )
    )
    w = webhook_endpoints.c
    chosen = select(w.id).where(w.account_id == account_id, w.environment == environment, w.enabled)
    if not every_type:
        chosen = chosen.where(
            or_(w.event_types.is_(None), literal(event_type, Text) == any_(w.event_types))
        )
    if endpoint_ids is not None:
        chosen = chosen.where(w.id.in_(list(endpoint_ids)))
    for endpoint_id in (await conn.execute(chosen.order_by(w.id))).scalars().all():
        await conn.execute(
            insert(webhook_deliveries).values(
                account_id=account_id,
                id=new_id("whd_"),
                event_id=event_id,
                endpoint_id=endpoint_id,
                attempts=0 if lease_until is None else 1,
                next_attempt_at=now if lease_until is None else lease_until,
                created_at=now,
                updated_at=now,
            )
        )
    return event_id


@dataclass(frozen=True, slots=True)
class Claim:
    """A delivery taken for one attempt, with what sending it needs."""

    account_id: str
    delivery_id: str
    attempt: int
    event_id: str
    body: bytes
    endpoint_id: str
    url: str
    secrets: tuple[str, ...]
    claimed_at: datetime
    # time.monotonic() by which its send must start: the lease then outlasts the attempt.
    start_by: float


# The due deliveries, claimed: their attempt counted and their lease taken in one statement.
CLAIM = text(
    """
WITH due AS (
  SELECT account_id, id FROM webhook_deliveries
  WHERE status = 'pending' AND next_attempt_at <= :now AND attempts < :max_attempts
  ORDER BY next_attempt_at
  LIMIT :limit
  FOR UPDATE SKIP LOCKED
)
UPDATE webhook_deliveries d
SET attempts = d.attempts + 1, next_attempt_at = :lease_until, updated_at = :now
FROM due, webhook_events e, webhook_endpoints w
WHERE d.account_id = due.account_id AND d.id = due.id
  AND e.account_id = d.account_id AND e.id = d.event_id
  AND w.account_id = d.account_id AND w.id = d.endpoint_id
RETURNING d.account_id, d.id AS delivery_id, d.attempts AS attempt, e.id AS event_id,
          e.body, w.id AS endpoint_id, w.url, w.secret, w.previous_secret,
          w.previous_secret_expires_at
"""
)


# Deliveries written already claimed (a test send's), with what sending them needs.
CLAIMED = text(
    """
SELECT d.account_id, d.id AS delivery_id, d.attempts AS attempt, e.id AS event_id, e.body,
       w.id AS endpoint_id, w.url, w.secret, w.previous_secret, w.previous_secret_expires_at
FROM webhook_deliveries d
JOIN webhook_events e ON e.account_id = d.account_id AND e.id = d.event_id
JOIN webhook_endpoints w ON w.account_id = d.account_id AND w.id = d.endpoint_id
WHERE d.account_id = :account_id AND d.id = ANY(CAST(:ids AS text[]))
"""
)


def _claims(rows: Any, now: datetime) -> list[Claim]:
    start_by = time.monotonic() + (LEASE - SEND_WINDOW).total_seconds()
    claims = []
    for r in rows:
        secrets = [r.secret]
        if (
            r.previous_secret
            and r.previous_secret_expires_at
            and r.previous_secret_expires_at > now
        ):
            secrets.append(r.previous_secret)
        claims.append(
            Claim(
                r.account_id,
                r.delivery_id,
                r.attempt,
                r.event_id,
                r.body.encode(),
                r.endpoint_id,
                r.url,
                tuple(secrets),
                now,
                start_by,
            )
        )
    return claims


async def claim(conn: AsyncConnection, now: datetime, *, limit: int = CLAIM_BATCH) -> list[Claim]:
    """Claim up to `limit` due deliveries and commit."""
    binds = {"now": now, "lease_until": now + LEASE, "limit": limit, "max_attempts": MAX_ATTEMPTS}
    rows = (await conn.execute(CLAIM, binds)).all()
    await conn.commit()
    return _claims(rows, now)


async def claimed(
    conn: AsyncConnection, account_id: str, delivery_ids: Sequence[str], now: datetime
) -> list[Claim]:
    """The given deliveries, enqueued already claimed (`enqueue(lease_until=...)`)."""
    binds = {"account_id": account_id, "ids": list(delivery_ids)}
    return _claims((await conn.execute(CLAIMED, binds)).all(), now)


async def send(sender: Sender, item: Claim) -> Outcome | None:
    """One attempt: signed now (the receiver checks the timestamp against its own clock).
    None if it could not start while its lease had SEND_WINDOW left (it is then released)."""
    headers = signing.headers(item.secrets, item.event_id, int(time.time()), item.body)
    outcome = await sender.send(item.url, headers, item.body, start_by=item.start_by)
    if outcome is None:
        return None
    observability.WEBHOOK_DELIVERIES.labels(outcome=outcome_label(outcome)).inc()
    observability.WEBHOOK_LATENCY.observe(outcome.latency_ms / 1000)
    return outcome


def outcome_label(outcome: Outcome) -> str:
    if outcome.succeeded:
        return "succeeded"
    if outcome.status_code is not None:
        return f"http_{outcome.status_code // 100}xx"
    return (outcome.error or "error").split(":", 1)[0]


# An attempt's log line; none if its delivery went meanwhile (its endpoint was deleted).
LOG_ATTEMPT = text(
    """INSERT INTO webhook_attempts (account_id, delivery_id, attempt, started_at, status_code,
                              error, latency_ms, response_excerpt)
SELECT :account_id, :delivery_id, :attempt, :started_at, :status_code, :error, :latency_ms,
       :excerpt
WHERE EXISTS (SELECT 1 FROM webhook_deliveries
              WHERE account_id = :account_id AND id = :delivery_id)"""
)
# A claim that could not start in time, given back: due again at once, its attempt uncounted.
RELEASE = text(
    """UPDATE webhook_deliveries SET attempts = attempts - 1, next_attempt_at = :now
WHERE account_id = :account_id AND id = :delivery_id AND status = 'pending'
  AND attempts = :attempt"""
)
# Deliveries whose last claim died with its worker after their last attempt: ended.
EXHAUSTED = text(
    """UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL, updated_at = :now
WHERE status = 'pending' AND attempts >= :max_attempts AND next_attempt_at <= :now"""
)


def _text(value: str | None) -> str | None:
    """As a text column takes it: no NUL."""
    return None if value is None else value.replace("\x00", "")


async def record(
    conn: AsyncConnection,
    item: Claim,
    outcome: Outcome,
    now: datetime,
    rng: random.Random,
    *,
    retry: bool = True,
) -> str:
    """Log the attempt and move the delivery on (done, retried, or ended); the endpoint
    disabled on a 410 or after 5 days of failures. Returns the delivery's new status.
    Runs in the caller's transaction."""
    if outcome.succeeded:
        await record_successes(conn, [(item, outcome)], now)
        return "succeeded"
    d, w = webhook_deliveries.c, webhook_endpoints.c
    await conn.execute(
        LOG_ATTEMPT,
        {
            "account_id": item.account_id,
            "delivery_id": item.delivery_id,
            "attempt": item.attempt,
            "started_at": item.claimed_at,
            "status_code": outcome.status_code,
            "error": _text(outcome.error),
            "latency_ms": outcome.latency_ms,
            "excerpt": _text(outcome.excerpt),
        },
    )
    this = and_(d.account_id == item.account_id, d.id == item.delivery_id)
    endpoint = and_(w.account_id == item.account_id, w.id == item.endpoint_id)
    delay = retry_delay(item.attempt, outcome, rng) if retry else None
    status = "pending" if delay is not None else "failed"
    await conn.execute(
        update(webhook_deliveries)
        .where(this, d.status == "pending", d.attempts == item.attempt)
        .values(
            status=status,
            next_attempt_at=None if delay is None else now + timedelta(seconds=delay),
            updated_at=now,
        )
    )
    since = (
        await conn.execute(
            update(webhook_endpoints)
            .where(endpoint)
            .values(failing_since=func.coalesce(w.failing_since, now))
            .returning(w.failing_since)
        )
    ).scalar_one_or_none()
    if outcome.status_code == 410:
        await disable(conn, item.account_id, item.endpoint_id, "gone", now)
    elif since is not None and now - since >= DISABLE_AFTER:
        await disable(conn, item.account_id, item.endpoint_id, "failing", now)
    return status


async def disable(
    conn: AsyncConnection, account_id: str, endpoint_id: str, reason: str | None, now: datetime
) -> None:
    """Disable an endpoint (`reason`: why the service did; None: its owner did) and cancel
    its pending deliveries."""
    w, d = webhook_endpoints.c, webhook_deliveries.c
    await conn.execute(
        update(webhook_endpoints)
        .where(w.account_id == account_id, w.id == endpoint_id)
        .values(enabled=False, disabled_reason=reason, updated_at=now)
    )
    await conn.execute(
        update(webhook_deliveries)
        .where(d.account_id == account_id, d.endpoint_id == endpoint_id, d.status == "pending")
        .values(status="cancelled", next_attempt_at=None, updated_at=now)
    )


# The successes of a round, recorded in three statements whatever their number.
RECORD_SUCCESSES = (
    text(
        """INSERT INTO webhook_attempts (account_id, delivery_id, attempt, started_at,
                                      status_code, latency_ms, response_excerpt)
SELECT x.* FROM unnest(CAST(:accounts AS text[]), CAST(:deliveries AS text[]),
                       CAST(:attempts AS int[]), CAST(:started AS timestamptz[]),
                       CAST(:codes AS int[]), CAST(:latencies AS bigint[]),
                       CAST(:excerpts AS text[])) AS x(a, i, n, s, c, l, e)
WHERE EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.account_id = x.a AND d.id = x.i)"""
    ),
    text(
        """UPDATE webhook_deliveries d SET status = 'succeeded', next_attempt_at = NULL,
                                        updated_at = :now
FROM unnest(CAST(:accounts AS text[]), CAST(:deliveries AS text[]), CAST(:attempts AS int[]))
  AS x(a, i, n)
WHERE d.account_id = x.a AND d.id = x.i AND d.status = 'pending' AND d.attempts = x.n"""
    ),
    text(
        """UPDATE webhook_endpoints w SET failing_since = NULL
FROM unnest(CAST(:accounts AS text[]), CAST(:endpoints AS text[])) AS x(a, i)
WHERE w.account_id = x.a AND w.id = x.i AND w.failing_since IS NOT NULL"""
    ),
)


async def record_successes(
    conn: AsyncConnection, done: Sequence[tuple[Claim, Outcome]], now: datetime
) -> None:
    """`record` for many successful attempts at once (a round's, mostly)."""
    if not done:
        return
    binds = {
        "accounts": [c.account_id for c, _ in done],
        "deliveries": [c.delivery_id for c, _ in done],
        "attempts": [c.attempt for c, _ in done],
        "started": [c.claimed_at for c, _ in done],
        "codes": [o.status_code for _, o in done],
        "latencies": [o.latency_ms for _, o in done],
        "excerpts": [_text(o.excerpt) for _, o in done],
        "endpoints": [c.endpoint_id for c, _ in done],
        "now": now,
    }
    for statement in RECORD_SUCCESSES:
        await conn.execute(statement, binds)


Done = tuple[Claim, Outcome | None]  # None: released, not sent


async def _record_outcomes(
    conn: AsyncConnection, done: Sequence[Done], now: datetime, rng: random.Random
) -> None:
    await record_successes(conn, [(c, o) for c, o in done if o is not None and o.succeeded], now)
    for item, outcome in done:
        if outcome is None:
            binds = {
                "account_id": item.account_id,
                "delivery_id": item.delivery_id,
                "attempt": item.attempt,
                "now": now,
            }
            await conn.execute(RELEASE, binds)
        elif not outcome.succeeded:
            await record(conn, item, outcome, now, rng)


async def record_outcomes(
    engine: AsyncEngine, done: Sequence[Done], now: datetime, rng: random.Random
) -> None:
    """Record attempts that have ended, in one transaction; if that fails, each in its own
    (an outcome that cannot be recorded is logged and left to its lease: sent again)."""
    try:
        async with engine.begin() as conn:
            await _record_outcomes(conn, done, now, rng)
        return
    except Exception:
        if len(done) == 1:
            log.exception("delivery %s: its attempt could not be recorded", done[0][0].delivery_id)
            return
    for one in done:
        await record_outcomes(engine, [one], now, rng)


async def deliver_due(
    engine: AsyncEngine,
    sender: Sender,
    clock: Clock,
    rng: random.Random,
    *,
    limit: int = CLAIM_BATCH,
) -> int:
    """Claim due deliveries, send them (CONCURRENT_SENDS at a time, the sender's few per
    host), and record each outcome as it comes (those ended meanwhile, in one transaction).
    Returns how many were claimed."""
    async with engine.connect() as conn:
        claims = await claim(conn, clock(), limit=limit)
    if not claims:
        return 0
    gate = asyncio.Semaphore(CONCURRENT_SENDS)
    ended: asyncio.Queue[Done] = asyncio.Queue()

    async def attempt(item: Claim) -> None:
        async with gate:
            ended.put_nowait((item, await send(sender, item)))

    async def recorder() -> None:
        left = len(claims)
        while left:
            done = [await ended.get()]
            while not ended.empty():
                done.append(ended.get_nowait())
            left -= len(done)
            await record_outcomes(engine, done, clock(), rng)

    await asyncio.gather(recorder(), *(attempt(item) for item in claims))
    return len(claims)


async def prune(conn: AsyncConnection, now: datetime) -> int:
    """Delete the events (their deliveries and attempts with them) older than LOG_DAYS, and
    end the deliveries whose last attempt's claim has lapsed unrecorded."""
    await conn.execute(EXHAUSTED, {"now": now, "max_attempts": MAX_ATTEMPTS})
    result = await conn.execute(
        webhook_events.delete().where(webhook_events.c.created_at < now - timedelta(days=LOG_DAYS))
    )
    return result.rowcount or 0


async def queue_depth(conn: AsyncConnection, now: datetime) -> tuple[int, float | None]:
    """Pending deliveries, and how long the oldest due one has waited (s; None: none due)."""
    d = webhook_deliveries.c
    row = (
        await conn.execute(
            select(
                func.count(),
                func.min(d.next_attempt_at).filter(d.next_attempt_at <= now),
            ).where(d.status == "pending")
        )
    ).one()
    oldest = None if row[1] is None else (now - row[1]).total_seconds()
    return int(row[0]), oldest
