"""Days in the account's own zone (SPEC §9), through the service: every day endpoint against the
reference's local days in many zones and around DST changes; days that add up; hand-worked
DST days, offsets of :30 and :45, the two ends of the offset range, local months.

The reference (tests/reference.py) computes local days itself, with `zoneinfo`, from the raw
records; the service counts them in its rollups, keyed by the fold in Postgres's zone database.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI

from tests import reference
from tests.clock import set_clock
from tests.conftest import Admin, bearer
from tests.factories import SAMPLE_ZONES, as_reference, iso, json_call, random_log
from tests.metrics.test_metrics_reference import SETTINGS, assert_percentiles_close, get

ZONES = SAMPLE_ZONES
# Clocks just after DST changes: the US spring one (2026-03-08), the US and EU autumn ones
# (2026-11-01, 2026-10-25), Lord Howe's and Chatham's April ones (2026-04-05).
CLOCKS = (
    datetime(2026, 3, 10, 6, 0, 0, tzinfo=UTC),
    datetime(2026, 11, 3, 9, 30, 0, tzinfo=UTC),
    datetime(2026, 4, 6, 13, 15, 0, tzinfo=UTC),
)
DAY_ENDPOINTS = ("overview", "customer", "performance", "failures", "daily")


async def ingest(client: httpx.AsyncClient, admin_ops: Admin, calls: list[dict[str, Any]]) -> None:
    key = (await admin_ops.key(None))["key"]
    for i in range(0, len(calls), 500):
        response = await client.post(
            "/v1/calls", json={"calls": calls[i : i + 500]}, headers=bearer(key)
        )
        assert response.status_code == 200, response.text


def expected(
    endpoint: str, calls: list[dict[str, Any]], account: str, zone: str, **window: Any
) -> dict[str, Any]:
    """The reference's answer of a day endpoint, in `zone`."""
    if endpoint == "customer":
        return reference.customer(calls, account_id=account, settings=SETTINGS, zone=zone, **window)
    if endpoint == "daily":
        return reference.daily(calls, zone=zone, **window)
    function = {
        "overview": reference.overview,
        "performance": reference.performance,
        "failures": reference.failures,
    }[endpoint]
    result: dict[str, Any] = function(calls, zone=zone, **window)
    return result


@pytest.mark.parametrize("now", CLOCKS, ids=lambda c: c.strftime("%m-%d"))
@pytest.mark.parametrize("zone", ZONES)
async def test_every_day_endpoint_matches_the_reference(
    client: httpx.AsyncClient, admin_ops: Admin, app: FastAPI, zone: str, now: datetime
) -> None:
    set_clock(app, now)
    seed = ZONES.index(zone) * 10 + CLOCKS.index(now)
    rng = random.Random(seed)
    mine = await admin_ops.account(account_id=f"acct_z{seed}", timezone=zone)
    other = await admin_ops.account(account_id=f"acct_u{seed}")  # a UTC neighbour
    key = (await admin_ops.key(mine, "live"))["key"]
    calls = random_log(rng, [mine, other], 1200, now - timedelta(days=45), now, zone=zone)
    await ingest(client, admin_ops, calls)
    records = [
        as_reference(c) for c in calls if c["account_id"] == mine and c["environment"] == "live"
    ]
    today = now.astimezone(ZoneInfo(zone)).date()
    for days, end_date in ((1, today), (7, today), (30, today - timedelta(days=1)), (45, today)):
        window = {"days": days, "end_date": end_date}
        params = {"days": days, "end_date": end_date.isoformat()}
        for endpoint in DAY_ENDPOINTS:
            extra = {"today": today} if endpoint == "daily" else {}
            assert_percentiles_close(
                await get(client, key, endpoint, **params),
                expected(endpoint, records, mine, zone, **window, **extra),
                f"{zone} {endpoint} {days}d",
            )
    # The default end_date is today in the zone.
    assert (await get(client, key, "daily"))["period"]["end_date"] == today.isoformat()


@pytest.mark.parametrize("zone", ZONES)
async def test_one_day_answers_add_up_to_the_n_day_answer(
    client: httpx.AsyncClient, admin_ops: Admin, app: FastAPI, zone: str
) -> None:
    # The bug of a proxy that widened UTC day rows by an offset fails exactly this.
    now = CLOCKS[1]
    set_clock(app, now)
    rng = random.Random(ZONES.index(zone))
    mine = await admin_ops.account(account_id="acct_sum", timezone=zone)
    key = (await admin_ops.key(mine, "live"))["key"]
    await ingest(
        client, admin_ops, random_log(rng, [mine], 900, now - timedelta(days=12), now, zone)
    )
    today = now.astimezone(ZoneInfo(zone)).date()
    n = 10
    whole = await get(client, key, "daily", days=n, end_date=today.isoformat())
    whole_overview = await get(client, key, "overview", days=n, end_date=today.isoformat())
    whole_failures = await get(client, key, "failures", days=n, end_date=today.isoformat())
    calls = failures = 0
    for i, entry in enumerate(whole["daily_data"]):
        day = (today - timedelta(days=n - 1 - i)).isoformat()
        single = await get(client, key, "daily", days=1, end_date=day)
        assert single["daily_data"] == [entry]
        calls += (await get(client, key, "overview", days=1, end_date=day))["summary"][
            "total_calls"
        ]
        failures += (await get(client, key, "failures", days=1, end_date=day))["summary"][
            "total_failures"
        ]
    assert calls == whole_overview["summary"]["total_calls"] > 0
    assert failures == whole_failures["summary"]["total_failures"]


# --------------------------------------------------------------- hand-worked days and hours


async def one_account(
    client: httpx.AsyncClient, admin_ops: Admin, zone: str, stamps: list[tuple[str, float]]
) -> str:
    """An account in `zone` with one live call per (created_at, cost); its live key."""
    account = await admin_ops.account(account_id="acct_hand", timezone=zone)
    key = (await admin_ops.key(account, "live"))["key"]
    calls = [
        json_call(f"h{i}", account_id=account, created_at=at, cost_usd=cost)
        for i, (at, cost) in enumerate(stamps)
    ]
    await ingest(client, admin_ops, calls)
    return str(key)


def by_date(body: dict[str, Any]) -> list[tuple[str, int, float]]:
    return [(d["date"], d["total_calls"], d["total_cost_usd"]) for d in body["daily_data"]]


async def test_new_york_23_and_25_hour_days(
    client: httpx.AsyncClient, admin_ops: Admin, app: FastAPI
) -> None:
    set_clock(app, datetime(2026, 11, 10, 12, tzinfo=UTC))
    key = await one_account(
        client,
        admin_ops,
        "America/New_York",
        [
            ("2026-03-08T04:59:59.999Z", 1.0),  # 03-07 23:59:59.999 EST
            ("2026-03-08T05:00:00Z", 2.0),  # 03-08 00:00 EST: the 23-hour day begins
            ("2026-03-09T03:59:59Z", 4.0),  # 03-08 23:59:59 EDT: and ends
            ("2026-03-09T04:00:00Z", 8.0),  # 03-09 00:00 EDT
            ("2026-11-01T04:00:00Z", 16.0),  # 11-01 00:00 EDT: the 25-hour day begins
            ("2026-11-01T05:30:00Z", 32.0),  # 01:30 EDT
            ("2026-11-01T06:30:00Z", 64.0),  # 01:30 EST, the repeated hour
            ("2026-11-02T04:59:59Z", 128.0),  # 11-01 23:59:59 EST: and ends
            ("2026-11-02T05:00:00Z", 256.0),  # 11-02 00:00 EST
        ],
    )
    spring = await get(client, key, "daily", days=3, end_date="2026-03-09")
    assert by_date(spring) == [
        ("2026-03-07", 1, 1.0),
        ("2026-03-08", 2, 6.0),
        ("2026-03-09", 1, 8.0),
    ]
    autumn = await get(client, key, "daily", days=2, end_date="2026-11-02")
    assert by_date(autumn) == [("2026-11-01", 4, 240.0), ("2026-11-02", 1, 256.0)]
    day = await get(client, key, "customer", days=1, end_date="2026-11-01")
    assert day["period"] == {
        "start_date": "2026-11-01T00:00:00-04:00",
        "end_date": "2026-11-01T23:59:59-05:00",
        "timezone": "America/New_York",
    }
    # Hours 0, 1, 1, 23: both 01:30s count to hour 1 (threshold 1.25 x 4 / 24 < 1: all peak).
    assert day["behavior_insights"]["peak_hours"] == [0, 1, 23]
    assert day["usage"]["avg_calls_per_day"] == 4.0  # a calendar day, though 25 hours long
    short = await get(client, key, "overview", days=1, end_date="2026-03-08")
    assert short["period"] == {
        "start_date": "2026-03-08T00:00:00-05:00",
        "end_date": "2026-03-08T23:59:59-04:00",
        "timezone": "America/New_York",
        "days": 1,
    }


async def test_lord_howe_half_hour_shift(
    client: httpx.AsyncClient, admin_ops: Admin, app: FastAPI
) -> None:
    # 2026-04-05 02:00 +11 becomes 01:30 +10:30: a 24.5-hour day.
    set_clock(app, datetime(2026, 4, 10, tzinfo=UTC))
    key = await one_account(
        client,
        admin_ops,
        "Australia/Lord_Howe",
        [
            ("2026-04-04T12:59:59Z", 1.0),  # 04-04 23:59:59 +11
            ("2026-04-04T13:00:00Z", 2.0),  # 04-05 00:00 +11
            ("2026-04-05T13:29:59Z", 4.0),  # 04-05 23:59:59 +10:30
            ("2026-04-05T13:30:00Z", 8.0),  # 04-06 00:00 +10:30
        ],
    )
    body = await get(client, key, "daily", days=3, end_date="2026-04-06")
    assert by_date(body) == [
        ("2026-04-04", 1, 1.0),
        ("2026-04-05", 2, 6.0),
        ("2026-04-06", 1, 8.0),
    ]
    period = (await get(client, key, "failures", days=1, end_date="2026-04-05"))["period"]
    assert period == {
        "start_date": "2026-04-05T00:00:00+11:00",
        "end_date": "2026-04-05T23:59:59+10:30",
        "timezone": "Australia/Lord_Howe",
    }


@pytest.mark.parametrize(
    ("zone", "midnight", "offset"),
    [
        ("Asia/Kolkata", "2026-06-14T18:30:00Z", "+05:30"),
        ("Asia/Kathmandu", "2026-06-14T18:15:00Z", "+05:45"),
        ("Pacific/Chatham", "2026-06-14T11:15:00Z", "+12:45"),
    ],
)
async def test_odd_offsets_at_local_midnight(
    client: httpx.AsyncClient, admin_ops: Admin, app: FastAPI, zone: str, midnight: str, offset: str
) -> None:
    # A call exactly at local midnight of 06-15 and one a microsecond before it.
    set_clock(app, datetime(2026, 6, 20, tzinfo=UTC))
    at = datetime.fromisoformat(midnight)
    key = await one_account(
        client,
        admin_ops,
        zone,
        [(iso(at - timedelta(microseconds=1), timespec="microseconds"), 1.0), (midnight, 2.0)],
    )
    body = await get(client, key, "daily", days=2, end_date="2026-06-15")
    assert by_date(body) == [("2026-06-14", 1, 1.0), ("2026-06-15", 1, 2.0)]
    period = (await get(client, key, "performance", days=1, end_date="2026-06-15"))["period"]
    assert period["start_date"] == f"2026-06-15T00:00:00{offset}"
    assert period["end_date"] == f"2026-06-15T23:59:59{offset}"


async def test_the_same_instant_two_dates_apart(
    client: httpx.AsyncClient, admin_ops: Admin, app: FastAPI
) -> None:
    # 2026-06-15T11:00Z is 06-16 01:00 in Kiritimati (+14) and 06-14 23:00 at UTC-12.
    set_clock(app, datetime(2026, 6, 15, 11, 30, tzinfo=UTC))
    keys = {}
    for zone in ("Pacific/Kiritimati", "Etc/GMT+12"):
        account = await admin_ops.account(timezone=zone)
        keys[zone] = (await admin_ops.key(account, "live"))["key"]
        await ingest(
            client,
            admin_ops,
            [json_call(f"same-{len(keys)}", account_id=account, created_at="2026-06-15T11:00:00Z")],
        )
    east = await get(client, keys["Pacific/Kiritimati"], "daily", days=1)
    west = await get(client, keys["Etc/GMT+12"], "daily", days=1)
    assert [(d["date"], d["total_calls"]) for d in east["daily_data"]] == [("2026-06-16", 1)]
    assert [(d["date"], d["total_calls"]) for d in west["daily_data"]] == [("2026-06-14", 1)]
    # "Not in the future" is judged in the zone: 06-16 is today in Kiritimati only.
    assert (await get(client, keys["Pacific/Kiritimati"], "overview", end_date="2026-06-16"))[
        "summary"
    ]["total_calls"] == 1
    response = await client.get(
        "/v1/metrics/overview",
        params={"end_date": "2026-06-15"},
        headers=bearer(keys["Etc/GMT+12"]),
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "end_date"
    assert "Etc/GMT+12" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("zone", "feb_first", "jan_last"),
    [
        # UTC+14: February begins at 2026-01-31T10:00Z.
        ("Pacific/Kiritimati", "2026-01-31T10:00:00Z", "2026-01-31T09:59:59Z"),
        # UTC-12: February begins at 2026-02-01T12:00Z.
        ("Etc/GMT+12", "2026-02-01T12:00:00Z", "2026-02-01T11:59:59Z"),
    ],
)
async def test_local_months_in_customer(
    client: httpx.AsyncClient,
    admin_ops: Admin,
    app: FastAPI,
    zone: str,
    feb_first: str,
    jan_last: str,
) -> None:
    tz = ZoneInfo(zone)
    # Local 2026-02-01 noon: the first day of a month, so today is all of month-to-date.
    now = datetime(2026, 2, 1, 12, tzinfo=tz).astimezone(UTC)
    set_clock(app, now)
    stamps = [(feb_first, 8.0), (jan_last, 4.0)]
    # The 7 local days before today (01-25..01-31) at 1.00 a day, one at each local noon.
    stamps += [
        (iso(datetime(2026, 1, d, 12, tzinfo=tz).astimezone(UTC)), 1.0) for d in range(25, 31)
    ]
    stamps += [(iso(datetime(2025, 12, 31, 12, tzinfo=tz).astimezone(UTC)), 2.0)]  # December
    key = await one_account(client, admin_ops, zone, stamps)
    body = await get(client, key, "customer", days=7)
    months = body["cost_analysis"]
    assert months["current_month"] == 8.0
    assert months["previous_month"] == 4.0 + 6.0  # January, local: 01-31 and 01-25..30
    # before today 0 + (7 days before today: 4 + 6 = 10) / 7 x 28 days left counting today
    assert months["projected_month_end"] == round(10 / 7 * 28, 2)
    records = [
        as_reference(json_call(f"h{i}", account_id="acct_hand", created_at=a, cost_usd=c))
        for i, (a, c) in enumerate(stamps)
    ]
    assert_percentiles_close(
        body,
        reference.customer(
            records,
            account_id="acct_hand",
            settings=SETTINGS,
            days=7,
            end_date=date(2026, 2, 1),
            zone=zone,
        ),
    )
