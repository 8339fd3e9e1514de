"""Each rule type fires and resolves at exactly the values the plain-Python reference gives
(SPEC §11): a budget crossed mid-month, the account's local month rolling over, a failure rate
just under and just over its threshold, min_calls, a provider outage from injected errors."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import orjson
import pytest
from fastapi import FastAPI
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks import Webhook

from perf_metrics.alerts import rules
from perf_metrics.alerts.tables import alerts
from perf_metrics.metrics.windows import floor_5min
from perf_metrics.settings import Settings
from perf_metrics.webhooks.tables import webhook_deliveries
from tests import reference as ref
from tests.alerts.helpers import FakeClock, Tenant, add_endpoint, real_now, tenant, worker
from tests.clock import set_clock
from tests.conftest import Admin, store_records
from tests.factories import as_reference, iso, json_call
from tests.receiver import running_receiver

ZONE = "America/New_York"
_ids = (f"r{i}" for i in itertools.count())


@pytest.fixture
def app_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"webhooks_allow_loopback": True})


def call(account: str, moment: datetime, **fields: Any) -> dict[str, Any]:
    return json_call(next(_ids), account_id=account, created_at=iso(moment), **fields)


async def store(engine: AsyncEngine, records: list[dict[str, Any]]) -> None:
    async with engine.connect() as conn:
        await store_records(conn, records)


async def create(client: httpx.AsyncClient, who: Tenant, type_: str, **params: Any) -> str:
    response = await client.post(
        "/v1/alerts", headers=who.headers, json={"name": type_, "type": type_, "params": params}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def evaluate_at(engine: AsyncEngine, moment: datetime) -> None:
    """Evaluate every alert at `moment` (each made due first, as its cadence would)."""
    async with engine.begin() as conn:
        await conn.execute(update(alerts).values(next_eval_at=moment))
    assert await rules.evaluate_due(engine, FakeClock(moment)) >= 1


async def alert_row(engine: AsyncEngine, alert_id: str) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(select(alerts).where(alerts.c.id == alert_id))).one()


async def events(client: httpx.AsyncClient, who: Tenant, alert_id: str) -> list[dict[str, Any]]:
    body = (await client.get(f"/v1/alerts/{alert_id}/events", headers=who.headers)).json()
    return list(reversed(body["data"]))  # oldest first


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), ZoneInfo(ZONE)).astimezone(UTC)


async def test_budget_rules_fire_mid_month_and_resolve_at_the_local_month_rollover(
    client: httpx.AsyncClient, admin_ops: Admin, engine: AsyncEngine
) -> None:
    who = await tenant(admin_ops, timezone=ZONE)
    # $4 a day through February and March (local days), one call each at 10:00 local, and
    # one call at 23:30 local on March 31 (04:30 UTC on April 1: March's, locally).
    records = [
        call(who.account_id, local(date(2026, 2, 1) + timedelta(days=i), 10), cost_usd=4.0)
        for i in range(59)
    ]
    records.append(call(who.account_id, local(date(2026, 3, 31), 23, 30), cost_usd=4.0))
    await store(engine, records)
    calls = [as_reference(r) for r in records]
    mtd = await create(client, who, "month_to_date_cost", budget_usd=50)
    projected = await create(client, who, "projected_month_end", budget_usd=130)

    seen: dict[str, list[tuple[date, str]]] = {mtd: [], projected: []}
    for day in [date(2026, 3, 1) + timedelta(days=i) for i in range(31)] + [date(2026, 4, 1)]:
        moment = local(day, 0, 30)  # half past midnight, local (the log holds the whole day)
        await evaluate_at(engine, moment)
        expected = ref.cost_analysis(calls, [], day, ref.PRICE_TABLE, ZONE)
        for alert_id, field, budget in (
            (mtd, "current_month", 50),
            (projected, "projected_month_end", 130),
        ):
            row = await alert_row(engine, alert_id)
            assert row.value == expected[field], (day, field)
            want = "firing" if Decimal(str(expected[field])) >= budget else "ok"
            assert row.state == want, (day, field, expected[field])
            seen[alert_id].append((day, row.state))

    # $4 a day: March 1-13 make $52, the first total at or over $50.
    assert [d for d, s in seen[mtd] if s == "firing"] == [
        date(2026, 3, 13) + timedelta(days=i) for i in range(19)
    ]
    # April 1st locally (still March 31st in UTC at 04:30): the new month resolves it.
    assert seen[mtd][-1] == (date(2026, 4, 1), "ok")
    history = await events(client, who, mtd)
    assert [(e["type"], e["data"]["sequence"]) for e in history] == [
        ("alert.firing", 1),
        ("alert.resolved", 2),
    ]
    fired, resolved = (e["data"] for e in history)
    assert fired["value"] == 52.0 and fired["previous_state"] == "ok"
    assert fired["evaluated_at"] == iso(local(date(2026, 3, 13), 0, 30), timespec="seconds")
    assert resolved["value"] == 0.0 and resolved["state"] == "ok"
    assert {k: fired[k] for k in ("alert_id", "type", "account_id", "environment")} == {
        "alert_id": mtd,
        "type": "month_to_date_cost",
        "account_id": who.account_id,
        "environment": "live",
    }
    assert fired["params"] == {"budget_usd": 50.0}
    # The projection (before today + the 7-day rate x the days left) is $124 all March; on
    # April 1st the rate holds March 31st's two calls: 32/7 a day x 30 days = $137.14.
    assert [d for d, s in seen[projected] if s == "firing"] == [date(2026, 4, 1)]
    assert (await alert_row(engine, projected)).value == 137.14


def failure_call(account: str, moment: datetime, failed: bool, **fields: Any) -> dict[str, Any]:
    if not failed:
        return call(account, moment, **fields)
    return call(account, moment, failure_mode="timeout", recovery="retry", retry_count=1, **fields)


def reference_failure_rate(
    records: list[dict[str, Any]], account: str, start: datetime, end: datetime
) -> tuple[int, int]:
    """Calls and failed calls of the account's live calls in [start, end)."""
    mine = [
        as_reference(r)
        for r in records
        if r["account_id"] == account and r.get("environment", "live") == "live"
    ]
    window = ref.in_range(mine, start, end)
    return len(window), ref.count(window, lambda c: c["failure_mode"] is not None)


async def test_failure_rate_fires_on_the_second_breach_and_resolves_likewise(
    client: httpx.AsyncClient, admin_ops: Admin, engine: AsyncEngine
) -> None:
    who, other = await tenant(admin_ops), await tenant(admin_ops)
    # The window of 30 minutes: five whole buckets and the current one, up to `now`.
    now = floor_5min(real_now()) + timedelta(seconds=30)
    start, end = floor_5min(now) - timedelta(minutes=25), floor_5min(now) + timedelta(minutes=5)
    alert_id = await create(client, who, "failure_rate", threshold=0.1, window_minutes=30)
    strict = await create(
        client, who, "failure_rate", threshold=0.1, window_minutes=30, min_calls=1000
    )
    spread = [start + timedelta(seconds=15 * i) for i in range(100)]  # to 30 s before `now`
    records = [failure_call(who.account_id, m, i % 11 == 3) for i, m in enumerate(spread)]
    # Outside the window or the scope: never counted.
    records += [
        failure_call(who.account_id, start - timedelta(seconds=1), True),
        failure_call(who.account_id, now - timedelta(minutes=3), True, environment="test"),
        *(failure_call(other.account_id, now - timedelta(minutes=2), True) for _ in range(50)),
    ]
    await store(engine, records)

    async def check(expected_state: str) -> Any:
        await evaluate_at(engine, now)
        row = await alert_row(engine, alert_id)
        calls, failures = reference_failure_rate(records, who.account_id, start, end)
        assert row.value == ref.rnd(ref.ratio(failures, calls), 3)
        assert row.state == expected_state, (failures, calls)
        assert (await alert_row(engine, strict)).state == "ok"  # min_calls never reached
        return Fraction(failures, calls)

    assert await check("ok") == Fraction(9, 100)  # just under
    assert await check("ok") == Fraction(9, 100)
    records.append(failure_call(who.account_id, now - timedelta(seconds=20), False))
    records.append(failure_call(who.account_id, now - timedelta(seconds=20), True))
    await store(engine, records[-2:])
    assert await check("ok") < Fraction(1, 10)  # 10/102
    records.append(failure_call(who.account_id, now - timedelta(seconds=10), True))
    await store(engine, records[-1:])
    assert await check("ok") > Fraction(1, 10)  # 11/103: the first breach
    assert await check("firing") > Fraction(1, 10)  # the second: fires
    assert await check("firing") > Fraction(1, 10)  # no second event
    records += [
        failure_call(who.account_id, start + timedelta(minutes=4), False) for _ in range(20)
    ]
    await store(engine, records[-20:])
    assert await check("firing") < Fraction(1, 10)  # 11/123: once below
    assert await check("ok") < Fraction(1, 10)  # twice: resolved
    history = await events(client, who, alert_id)
    assert [(e["type"], e["data"]["sequence"], e["data"]["previous_state"]) for e in history] == [
        ("alert.firing", 1, "ok"),
        ("alert.resolved", 2, "firing"),
    ]
    assert history[0]["data"]["value"] == ref.rnd(Fraction(11, 103), 3)
    assert (await events(client, who, strict)) == []


async def test_exactly_at_the_threshold_is_a_breach_and_min_calls_is_inclusive(
    client: httpx.AsyncClient, admin_ops: Admin, engine: AsyncEngine
) -> None:
    who = await tenant(admin_ops)
    bucket = floor_5min(real_now())
    now = bucket + timedelta(seconds=20)
    alert_id = await create(
        client, who, "failure_rate", threshold=0.25, window_minutes=5, min_calls=8
    )
    # A 5-minute window is the current bucket alone: the call before it is not counted.
    records = [failure_call(who.account_id, bucket + timedelta(seconds=i), i < 2) for i in range(8)]
    records.append(failure_call(who.account_id, bucket - timedelta(seconds=1), False))
    await store(engine, records)
    for expected in ("ok", "firing"):  # 2/8 = 0.25 with exactly 8 calls
        await evaluate_at(engine, now)
        assert (await alert_row(engine, alert_id)).state == expected


async def test_provider_outage_from_injected_errors_platform_wide(
    client: httpx.AsyncClient, admin_ops: Admin, engine: AsyncEngine
) -> None:
    who, other = await tenant(admin_ops), await tenant(admin_ops)
    now = floor_5min(real_now()) + timedelta(seconds=20)
    end = floor_5min(now)
    outage = await create(client, who, "provider_status", provider="anthropic")
    degraded = await create(client, who, "provider_status", provider="anthropic", level="degraded")
    elsewhere = await create(client, who, "provider_status", provider="openai")

    def anthropic(account: str, seconds_ago: int, failed: bool) -> dict[str, Any]:
        return failure_call(
            account,
            end - timedelta(seconds=seconds_ago),
            failed,
            model="claude-haiku-4-5",
            provider="anthropic",
        )

    # 40 first-choice calls in the last 15 minutes, 3 of them provider errors: degraded.
    records = [anthropic(who.account_id, 20 + 20 * i, i < 3) for i in range(20)]
    records += [anthropic(other.account_id, 30 + 20 * i, False) for i in range(20)]
    records += [call(who.account_id, end - timedelta(minutes=2))]  # openai, fine
    await store(engine, records)

    async def states() -> dict[str, str]:
        await evaluate_at(engine, now)
        expected = ref.providers(
            [as_reference(r) for r in records if r.get("environment", "live") == "live"],
            hours=1,
            end_time=end,
        )["providers"]
        rows = {a: await alert_row(engine, a) for a in (outage, degraded, elsewhere)}
        assert rows[outage].value == expected["anthropic"]["status"]
        assert rows[elsewhere].value == expected["openai"]["status"]
        return {a: r.state for a, r in rows.items()}

    assert await states() == {outage: "ok", degraded: "ok", elsewhere: "ok"}
    assert await states() == {outage: "ok", degraded: "firing", elsewhere: "ok"}
    # The provider falls over: 10 more errors, 13 of 50 (>= 1/4).
    records += [anthropic(other.account_id, 5 + i, True) for i in range(10)]
    await store(engine, records[-10:])
    assert (await alert_row(engine, outage)).value == "degraded"
    assert await states() == {outage: "ok", degraded: "firing", elsewhere: "ok"}
    assert await states() == {outage: "firing", degraded: "firing", elsewhere: "ok"}
    # Fifteen minutes later its calls have aged out: unknown is below both levels.
    later = now + timedelta(minutes=15)
    for _ in range(2):
        await evaluate_at(engine, later)
    # (end_time of the reference: the window providers would answer for)
    assert {(await alert_row(engine, a)).state for a in (outage, degraded)} == {"ok"}
    assert (await alert_row(engine, outage)).value == "unknown"


async def test_an_event_reaches_the_receiver_signed_and_preview_sends_nothing(
    app: FastAPI, client: httpx.AsyncClient, admin_ops: Admin, engine: AsyncEngine
) -> None:
    who = await tenant(admin_ops)
    start = datetime(2026, 3, 10, 12, tzinfo=UTC)
    set_clock(app, start)
    await store(engine, [call(who.account_id, start - timedelta(days=1), cost_usd=75.0)])
    with running_receiver() as receiver:
        endpoint = await add_endpoint(client, who, f"{receiver.url}/alerts")
        unrelated = await add_endpoint(client, who, f"{receiver.url}/other")
        response = await client.post(
            "/v1/alerts",
            headers=who.headers,
            json={
                "name": "March budget",
                "type": "month_to_date_cost",
                "params": {"budget_usd": 60},
                "endpoint_ids": [endpoint["id"]],
            },
        )
        alert_id = response.json()["id"]
        preview = (await client.post(f"/v1/alerts/{alert_id}/preview", headers=who.headers)).json()
        assert preview == {
            "alert_id": alert_id,
            "type": "month_to_date_cost",
            "value": 75.0,
            "breached": True,
            "state": "ok",
            "state_after": "firing",
            "would_send": "alert.firing",
            "evaluated_at": "2026-03-10T12:00:00Z",
        }
        unchanged = await alert_row(engine, alert_id)
        assert (unchanged.state, unchanged.evaluated_at, unchanged.sequence) == ("ok", None, 0)
        assert receiver.received == []
        clock = FakeClock(start)
        w, sender = worker(engine, clock)
        assert await w.run_once() >= 2  # evaluated at once (created due), then delivered
        await sender.close()
        (got,) = receiver.wait_for(1)
    assert got.path == "/alerts"  # only the endpoint it names
    body = Webhook(endpoint["secret"]).verify(got.body, got.headers)
    assert body["type"] == "alert.firing"
    assert body["data"]["value"] == 75.0 and body["data"]["name"] == "March budget"
    assert body["timestamp"] == "2026-03-10T12:00:00Z"
    async with engine.connect() as conn:  # and none was written for the endpoint it does not
        written = await conn.scalar(
            select(text("count(*)"))
            .select_from(webhook_deliveries)
            .where(webhook_deliveries.c.endpoint_id == unrelated["id"])
        )
    assert written == 0
    row = await alert_row(engine, alert_id)
    assert (row.state, row.sequence) == ("firing", 1)
    assert orjson.loads(got.body)["data"]["sequence"] == 1
