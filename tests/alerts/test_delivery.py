"""Delivery from the outbox (SPEC §11): the retry schedule on a test clock, Retry-After, 410,
five days of failures, two workers at once, a worker killed mid-delivery, a rolled-back
transaction. Real HTTP to a receiver on 127.0.0.1, signatures checked by hand."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import signal
import sys
import time
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from perf_metrics.settings import Settings
from perf_metrics.webhooks import delivery
from perf_metrics.webhooks.tables import webhook_deliveries, webhook_endpoints
from tests.alerts.helpers import (
    FakeClock,
    Tenant,
    add_endpoint,
    plain_url,
    real_now,
    tenant,
    worker,
)
from tests.conftest import Admin
from tests.receiver import Answer, Received, running_receiver


@pytest.fixture
def app_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"webhooks_allow_loopback": True})


def signed_by(secret: str, request: Received) -> bool:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    h = request.headers
    mac = hmac.new(
        key, f"{h['webhook-id']}.{h['webhook-timestamp']}.".encode() + request.body, hashlib.sha256
    ).digest()
    return ("v1," + base64.b64encode(mac).decode()) in h["webhook-signature"].split(" ")


async def emit(
    engine: AsyncEngine, who: Tenant, now: datetime, n: int = 1, **data: Any
) -> list[str]:
    """`n` events to every endpoint of `who`, committed."""
    async with engine.begin() as conn:
        return [
            await delivery.enqueue(
                conn,
                account_id=who.account_id,
                environment="live",
                event_type="alert.firing",
                data={"n": i, **data},
                now=now,
            )
            for i in range(n)
        ]


async def deliveries(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as conn:
        return list(
            await conn.execute(select(webhook_deliveries).order_by(webhook_deliveries.c.created_at))
        )


async def endpoint_row(engine: AsyncEngine, endpoint_id: str) -> Any:
    async with engine.connect() as conn:
        return (
            await conn.execute(
                select(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id)
            )
        ).one()


async def test_three_failures_then_success_follow_the_schedule_with_one_webhook_id(
    client: httpx.AsyncClient, admin_ops: Admin, engine: AsyncEngine
) -> None:
    who = await tenant(admin_ops)
    clock = FakeClock(real_now())
    w, sender = worker(engine, clock)
    with running_receiver() as receiver:
        receiver.answer(Answer(500), Answer(503), Answer(502))
        endpoint = await add_endpoint(client, who, f"{receiver.url}/hook")
        (event_id,) = await emit(engine, who, clock.now)
        waits = []
        for expected_wait in (5, 300, 1800):
            attempted_at = clock.now
            assert await w.run_once() == 1
            (row,) = await deliveries(engine)
            assert row.status == "pending"
            wait = (row.next_attempt_at - attempted_at).total_seconds()
            assert 0.9 * expected_wait <= wait <= 1.1 * expected_wait  # the jitter
            waits.append(wait)
            # Not before it is due
            clock.now = row.next_attempt_at - timedelta(seconds=0.5)
            assert await w.run_once() == 0
            clock.now = row.next_attempt_at
        assert await w.run_once() == 1
        (row,) = await deliveries(engine)
        assert (row.status, row.attempts, row.next_attempt_at) == ("succeeded", 4, None)
        clock.advance(days=2)
        assert await w.run_once() == 0
        got = receiver.wait_for(4)
    await sender.close()
    assert len(got) == 4  # three failures and the one success, nothing after
    assert {r.headers["webhook-id"] for r in got} == {event_id}
    assert len({r.body for r in got}) == 1  # the same bytes every time
    assert all(signed_by(endpoint["secret"], r) for r in got)
    body = orjson.loads(got[0].body)
    assert body["type"] == "alert.firing" and body["data"] == {"n": 0}
    log = (
        await client.get(f"/v1/webhook-endpoints/{endpoint['id']}/deliveries", headers=who.headers)
    ).json()["data"]
    assert [a["status_code"] for a in log[0]["attempts"]] == [500, 503, 502, 200]
    assert (await endpoint_row(engine, endpoint["id"])).failing_since is None


async def test_every_retry_then_failed(
    client: httpx.AsyncClient, admin_ops: Admin, engine: AsyncEngine
) -> None:
    who = await tenant(admin_ops)
    clock = FakeClock(real_now())
    w, sender = worker(engine, clock)
    with running_receiver() as receiver:
        receiver.default = Answer(500)
        await add_endpoint(client, who, receiver.url)
        await emit(engine, who, clock.now)
        schedule = []
        while True:
            start = clock.now
            await w.run_once()
            (row,) = await deliveries(engine)
            if row.status != "pending":
                break
            schedule.append((row.next_attempt_at - start).total_seconds())
            clock.now = row.next_attempt_at
    await sender.close()
    assert row.status == "failed" and row.attempts == 8 == len(receiver.received)
    nominal = [5, 300, 1800, 7200, 18000, 36000, 36000]  # seconds
    assert all(0.9 * n <= s <= 1.1 * n for s, n in zip(schedule, nominal, strict=True))


async def test_retry_after_is_honoured_up_to_an_hour(
    client: httpx.AsyncClient, admin_ops: Admin, engine: AsyncEngine
) -> None:
    who = await tenant(admin_ops)
    clock = FakeClock(real_now())
    w, sender = worker(engine, clock)
    with running_receiver() as receiver:
        receiver.answer(
            Answer(429, {"retry-after": "120"}), Answer(503, {"retry-after": "86400"}), Answer(200)
        )
        await add_endpoint(client, who, receiver.url)
        await emit(engine, who, clock.now)
        await w.run_once()
        (row,) = await deliveries(engine)
        assert row.next_attempt_at - clock.now == timedelta(seconds=120)
        clock.now = row.next_attempt_at
        await w.run_once()
        (row,) = await deliveries(engine)
        assert row.next_attempt_at - clock.now == timedelta(hours=1)  # capped
        clock.now = row.next_attempt_at
        await w.run_once()
    await sender.close()
    assert (await deliveries(engine))[0].status == "succeeded"


async def test_410_disables_the_endpoint_at_once_and_cancels_its_queue(
    client: httpx.AsyncClient, admin_ops: Admin, engine: AsyncEngine
) -> None:
    who = await tenant(admin_ops)
    clock = FakeClock(real_now())
    w, sender = worker(engine, clock)
    with running_receiver() as gone, running_receiver() as fine:
        gone.default = Answer(410)
        dead = await add_endpoint(client, who, gone.url)
        alive = await add_endpoint(client, who, fine.url)
        await emit(engine, who, clock.now, n=3)
        await w.run_once()
    await sender.close()
    row = await endpoint_row(engine, dead["id"])
    assert (row.enabled, row.disabled_reason) == (False, "gone")
    assert (await endpoint_row(engine, alive["id"])).enabled
    by_endpoint: dict[str, list[str]] = {}
    for d in await deliveries(engine):
        by_endpoint.setdefault(d.endpoint_id, []).append(d.status)
    assert sorted(by_endpoint[alive["id"]]) == ["succeeded"] * 3
    # each attempted once at most: a 410 ends its delivery, the others are cancelled
    assert set(by_endpoint[dead["id"]]) <= {"failed", "cancelled"}
    assert len(gone.received) <= 3 and len(fine.received) == 3
    view = (await client.get(f"/v1/webhook-endpoints/{dead['id']}", headers=who.headers)).json()
    assert (view["enabled"], view["disabled_reason"]) == (False, "gone")
    # no new deliveries to a disabled endpoint; enabling it again takes events again
    await emit(engine, who, clock.now)
    assert {d.endpoint_id for d in await deliveries(engine) if d.status == "pending"} == {
        alive["id"]
    }
    await client.patch(
        f"/v1/webhook-endpoints/{dead['id']}", headers=who.headers, json={"enabled": True}
    )
    view = (await client.get(f"/v1/webhook-endpoints/{dead['id']}", headers=who.headers)).json()
    assert (view["enabled"], view["disabled_reason"]) == (True, None)


async def test_an_endpoint_failing_every_attempt_for_five_days_is_disabled(
    client: httpx.AsyncClient, admin_ops: Admin, engine: AsyncEngine
) -> None:
    who = await tenant(admin_ops)
    start = real_now()
    clock = FakeClock(start)
    w, sender = worker(engine, clock)
    with running_receiver() as receiver:
        receiver.default = Answer(500)
        endpoint = await add_endpoint(client, who, receiver.url)
        next_event = start
        while clock.now < start + timedelta(days=7):
            if clock.now >= next_event:  # an event every 12 hours
                await emit(engine, who, clock.now)
                next_event = clock.now + timedelta(hours=12)
            await w.run_once()
            row = await endpoint_row(engine, endpoint["id"])
            if not row.enabled:
                break
            due = [d.next_attempt_at for d in await deliveries(engine) if d.status == "pending"]
            clock.now = min([*due, next_event])
    await sender.close()
    assert (row.enabled, row.disabled_reason) == (False, "failing")
    first = min(
        (await deliveries(engine)), key=lambda d: d.created_at
    ).created_at  # the first failure
    assert first + timedelta(days=5) <= clock.now < first + timedelta(days=5, hours=12)
    assert all(d.status != "pending" for d in await deliveries(engine))


async def test_a_success_clears_the_failure_record(
    client: httpx.AsyncClient, admin_ops: Admin, engine: AsyncEngine
) -> None:
    who = await tenant(admin_ops)
    clock = FakeClock(real_now())
    w, sender = worker(engine, clock)
    with running_receiver() as receiver:
        receiver.answer(Answer(500))
        endpoint = await add_endpoint(client, who, receiver.url)
        await emit(engine, who, clock.now)
        await w.run_once()
        assert (await endpoint_row(engine, endpoint["id"])).failing_since == clock.now
        clock.advance(seconds=6)
        await w.run_once()
    await sender.close()
    assert (await endpoint_row(engine, endpoint["id"])).failing_since is None


async def test_two_workers_never_both_deliver_one_attempt(
    client: httpx.AsyncClient, admin_ops: Admin, engine: AsyncEngine
) -> None:
    who = await tenant(admin_ops)
    clock = FakeClock(real_now())
    (a, sender_a), (b, sender_b) = worker(engine, clock, 1), worker(engine, clock, 2)
    with running_receiver() as receiver:
        receiver.default = Answer(200, delay_s=0.05)
        await add_endpoint(client, who, receiver.url)
        events = await emit(engine, who, clock.now, n=120)
        for _ in range(3):
            await asyncio.gather(*(x.run_once() for x in (a, b, a, b)), return_exceptions=False)
        got = receiver.wait_for(120)
    await sender_a.close()
    await sender_b.close()
    ids = [r.headers["webhook-id"] for r in got]
    assert sorted(ids) == sorted(events)  # every event once, none twice
    rows = await deliveries(engine)
    assert all(d.status == "succeeded" and d.attempts == 1 for d in rows), [
        (d.status, d.attempts) for d in rows if d.attempts != 1
    ]


async def test_a_worker_killed_between_claim_and_send_leaves_it_to_be_redelivered(
    client: httpx.AsyncClient, admin_ops: Admin, engine: AsyncEngine, settings: Settings
) -> None:
    who = await tenant(admin_ops)
    with running_receiver() as receiver:
        await add_endpoint(client, who, receiver.url)
        (event_id,) = await emit(engine, who, real_now())
        url = plain_url(settings)
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "tests.alerts.claim_and_hang", url),
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ},
        )
        try:
            assert proc.stdout is not None
            assert (await proc.stdout.readline()).strip() == b"claimed 1"
        finally:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
        (row,) = await deliveries(engine)
        assert (row.status, row.attempts) == ("pending", 1)  # claimed, never sent
        assert receiver.received == []
        clock = FakeClock(real_now())
        w, sender = worker(engine, clock)
        assert await w.run_once() == 0  # its lease still runs
        clock.advance(seconds=delivery.LEASE.total_seconds() + 1)
        assert await w.run_once() == 1  # then it is sent
        await sender.close()
        (got,) = receiver.wait_for(1)
    assert got.headers["webhook-id"] == event_id
    (row,) = await deliveries(engine)
    assert (row.status, row.attempts) == ("succeeded", 2)


async def test_nothing_is_sent_for_a_transaction_that_rolled_back_or_has_not_committed(
    client: httpx.AsyncClient, admin_ops: Admin, engine: AsyncEngine
) -> None:
    who = await tenant(admin_ops)
    clock = FakeClock(real_now())
    w, sender = worker(engine, clock)
    with running_receiver() as receiver:
        await add_endpoint(client, who, receiver.url)
        async with engine.connect() as conn:
            await delivery.enqueue(
                conn,
                account_id=who.account_id,
                environment="live",
                event_type="alert.firing",
                data={"x": 1},
                now=clock.now,
            )
            assert await w.run_once() == 0  # not committed: not there for the worker
            await conn.rollback()
        assert await w.run_once() == 0
        async with engine.connect() as conn:
            count = await conn.scalar(text("SELECT count(*) FROM webhook_events"))
        assert count == 0
        await emit(engine, who, clock.now)
        assert await w.run_once() == 1
        receiver.wait_for(1)
    await sender.close()
    assert len(receiver.received) == 1


async def test_after_the_rotation_overlap_only_the_new_secret_signs(
    client: httpx.AsyncClient, admin_ops: Admin, engine: AsyncEngine
) -> None:
    who = await tenant(admin_ops)
    with running_receiver() as receiver:
        endpoint = await add_endpoint(client, who, receiver.url)
        rotated = await client.post(
            f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret", headers=who.headers
        )
        new = rotated.json()["secret"]
        ends = datetime.fromisoformat(rotated.json()["previous_secret_expires_at"])
        clock = FakeClock(ends - timedelta(minutes=1))
        w, sender = worker(engine, clock)
        await emit(engine, who, clock.now)
        await w.run_once()
        clock.now = ends + timedelta(seconds=1)
        await emit(engine, who, clock.now)
        await w.run_once()
        await sender.close()
        during, after = receiver.wait_for(2)
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    assert signed_by(new, during) and signed_by(endpoint["secret"], during)
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    assert signed_by(new, after) and not signed_by(endpoint["secret"], after)
    view = (await client.get(f"/v1/webhook-endpoints/{endpoint['id']}", headers=who.headers)).json()
    assert view["secret_rotation_ends_at"] == rotated.json()["previous_secret_expires_at"]


async def test_prometheus_shows_deliveries_and_the_queue(
    client: httpx.AsyncClient, admin_ops: Admin, engine: AsyncEngine
) -> None:
    who = await tenant(admin_ops)
    clock = FakeClock(real_now())
    w, sender = worker(engine, clock)
    with running_receiver() as receiver:
        receiver.answer(Answer(500))
        await add_endpoint(client, who, receiver.url)
        await emit(engine, who, clock.now - timedelta(seconds=30), n=2)
        before = (await client.get("/metrics")).text
        assert "perf_metrics_webhook_queue_depth 2.0" in before
        oldest = next(
            line for line in before.splitlines() if line.startswith("perf_metrics_webhook_oldest")
        )
        assert float(oldest.split()[1]) >= 30
        await w.run_once()
    await sender.close()
    text_ = (await client.get("/metrics")).text
    assert 'perf_metrics_webhook_deliveries_total{outcome="http_5xx"}' in text_
    assert 'perf_metrics_webhook_deliveries_total{outcome="succeeded"}' in text_
    assert "perf_metrics_webhook_queue_depth 1.0" in text_  # the one waiting for its retry
    assert "perf_metrics_webhook_delivery_seconds_count" in text_
    assert "perf_metrics_alert_evaluation_lag_seconds" in text_


async def test_an_odd_delivery_never_holds_up_the_others_round(
    client: httpx.AsyncClient, admin_ops: Admin, engine: AsyncEngine
) -> None:
    """An endpoint URL that cannot be sent to (written around the API's checks) and one
    deleted while its delivery is in flight: the rest of the round is sent and recorded."""
    who = await tenant(admin_ops)
    clock = FakeClock(real_now())
    w, sender = worker(engine, clock)
    with running_receiver() as receiver:
        good = await add_endpoint(client, who, f"{receiver.url}/good")
        odd = await add_endpoint(client, who, f"{receiver.url}/odd")
        gone = await add_endpoint(client, who, f"{receiver.url}/gone")
        async with engine.begin() as conn:
            await conn.execute(
                update(webhook_endpoints)
                .where(webhook_endpoints.c.id == odd["id"])
                .values(url="http://127.0.0.1:1/a\x01b")
            )
        await emit(engine, who, clock.now)
        async with engine.connect() as conn:
            claims = await delivery.claim(conn, clock.now)
        by_endpoint = {c.endpoint_id: c for c in claims}
        outcomes = {c.endpoint_id: await delivery.send(sender, c) for c in claims}
        await client.delete(f"/v1/webhook-endpoints/{gone['id']}", headers=who.headers)
        done = [(by_endpoint[e], outcomes[e]) for e in (good["id"], odd["id"], gone["id"])]
        await delivery.record_outcomes(engine, done, clock.now, w.rng)
        await sender.close()
    rows = {d.endpoint_id: d for d in await deliveries(engine)}
    assert rows[good["id"]].status == "succeeded"
    assert rows[odd["id"]].status == "pending" and rows[odd["id"]].attempts == 1  # retried
    assert gone["id"] not in rows
    odd_outcome = outcomes[odd["id"]]
    assert odd_outcome is not None and "refused" in (odd_outcome.error or "")
    assert sorted(r.path for r in receiver.received) == ["/gone", "/good"]


async def test_a_claim_that_cannot_start_within_its_lease_is_given_back(
    client: httpx.AsyncClient, admin_ops: Admin, engine: AsyncEngine
) -> None:
    who = await tenant(admin_ops)
    clock = FakeClock(real_now())
    w, sender = worker(engine, clock)
    with running_receiver() as receiver:
        await add_endpoint(client, who, receiver.url)
        await emit(engine, who, clock.now)
        async with engine.connect() as conn:
            (item,) = await delivery.claim(conn, clock.now)
        late = replace(item, start_by=time.monotonic() - 1)  # its lease nearly spent
        assert await delivery.send(sender, late) is None
        await delivery.record_outcomes(engine, [(late, None)], clock.now, w.rng)
        (row,) = await deliveries(engine)
        assert (row.status, row.attempts, row.next_attempt_at) == ("pending", 0, clock.now)
        assert receiver.received == []
        assert await w.run_once() == 1  # due again at once, sent as its first attempt
        await sender.close()
    (row,) = await deliveries(engine)
    assert (row.status, row.attempts) == ("succeeded", 1)


async def test_concurrent_creations_stop_at_the_limit(
    client: httpx.AsyncClient, admin_ops: Admin
) -> None:
    who = await tenant(admin_ops)
    responses = await asyncio.gather(
        *(
            client.post(
                "/v1/webhook-endpoints",
                headers=who.headers,
                json={"url": "http://127.0.0.1:9/x"},
            )
            for _ in range(8)
        )
    )
    assert sorted(r.status_code for r in responses) == [201] * 5 + [400] * 3
