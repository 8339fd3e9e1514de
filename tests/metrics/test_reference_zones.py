"""The reference's local days (SPEC section 9), checked on cases worked out by hand.

Each instant below is written in UTC and its wall-clock reading in the zone is worked out in the
comment beside it from the zone's rules (tzdata 2025-2026): the expected answers never come from
running the reference. No database: the conftest's autouse table cleaner is overridden below.
"""

from __future__ import annotations

import itertools
import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests import reference as ref
from tests.factories import SAMPLE_ZONES, as_reference, random_log, reference_call

NY = "America/New_York"


@pytest.fixture(autouse=True)
def clean_tables() -> None:
    """Override conftest's autouse fixture: these tests touch no database."""


_call = reference_call.but(call_ids=(f"z{n}" for n in itertools.count(1)))


def call(created_at: datetime, cost: str = "0.01", **fields: Any) -> dict[str, Any]:
    return _call(created_at=created_at, cost_usd=Decimal(cost), **fields)


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, us: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, us, tzinfo=UTC)


def per_day(answer: dict[str, Any]) -> list[tuple[str, int, float | int]]:
    return [(e["date"], e["total_calls"], e["total_cost_usd"]) for e in answer["daily_data"]]


SETTINGS = {
    "cost_vs_quality_ratio": 0.5,
    "latency_sensitivity": 0.5,
    "preferred_models": [],
    "task_overrides": {},
}


# ---------------------------------------------------------------- America/New_York DST


def test_new_york_spring_forward_day_has_23_hours() -> None:
    # 2026-03-08 at 02:00 EST (-05:00) clocks jump to 03:00 EDT (-04:00). The local day runs
    # from 05:00Z to 04:00Z next day: 23 hours.
    calls = [
        call(utc(2026, 3, 8, 4, 59, 59, 999999), "1.00"),  # 03-07 23:59:59.999999 EST
        call(utc(2026, 3, 8, 5), "2.00"),  # 03-08 00:00 EST
        call(utc(2026, 3, 8, 6, 59, 59), "4.00"),  # 03-08 01:59:59 EST
        call(utc(2026, 3, 8, 7), "8.00"),  # 03-08 03:00 EDT (02:00 EST never shows)
        call(utc(2026, 3, 9, 3, 59, 59), "16.00"),  # 03-08 23:59:59 EDT
        call(utc(2026, 3, 9, 4), "32.00"),  # 03-09 00:00 EDT
    ]
    answer = ref.daily(calls, days=3, end_date=date(2026, 3, 9), today=date(2026, 3, 10), zone=NY)
    assert per_day(answer) == [
        ("2026-03-07", 1, 1.0),
        ("2026-03-08", 4, 30.0),  # 2 + 4 + 8 + 16
        ("2026-03-09", 1, 32.0),
    ]
    assert answer["period"] == {
        "start_date": "2026-03-07",
        "end_date": "2026-03-09",
        "timezone": NY,
    }

    one_day = ref.customer(
        calls, account_id="a", settings=SETTINGS, days=1, end_date=date(2026, 3, 8), zone=NY
    )
    # The day starts on EST and ends on EDT.
    assert one_day["period"] == {
        "start_date": "2026-03-08T00:00:00-05:00",
        "end_date": "2026-03-08T23:59:59-04:00",
        "timezone": NY,
    }
    # Four calls, one each in local hours 0, 1, 3, 23; threshold 1.25 x 4 / 24 < 1, so all four.
    # Hour 2 does not exist that day.
    assert one_day["behavior_insights"]["peak_hours"] == [0, 1, 3, 23]


def test_new_york_fall_back_day_has_25_hours() -> None:
    # 2026-11-01 at 02:00 EDT (-04:00) clocks go back to 01:00 EST (-05:00). The local day runs
    # from 04:00Z to 05:00Z next day: 25 hours.
    calls = [
        call(utc(2026, 11, 1, 3, 59, 59), "1.00"),  # 10-31 23:59:59 EDT
        call(utc(2026, 11, 1, 4), "2.00"),  # 11-01 00:00 EDT
        call(utc(2026, 11, 1, 5, 30), "4.00"),  # 11-01 01:30 EDT, first pass
        call(utc(2026, 11, 1, 6, 30), "8.00"),  # 11-01 01:30 EST, second pass
        call(utc(2026, 11, 2, 4, 59, 59), "16.00"),  # 11-01 23:59:59 EST
        call(utc(2026, 11, 2, 5), "32.00"),  # 11-02 00:00 EST
    ]
    answer = ref.daily(calls, days=3, end_date=date(2026, 11, 2), today=date(2026, 11, 3), zone=NY)
    assert per_day(answer) == [
        ("2026-10-31", 1, 1.0),
        ("2026-11-01", 4, 30.0),
        ("2026-11-02", 1, 32.0),
    ]
    one_day = ref.overview(calls, days=1, end_date=date(2026, 11, 1), zone=NY)
    assert one_day["period"] == {
        "start_date": "2026-11-01T00:00:00-04:00",
        "end_date": "2026-11-01T23:59:59-05:00",
        "timezone": NY,
        "days": 1,
    }
    assert one_day["summary"]["total_calls"] == 4


def test_new_york_repeated_hour_counts_both_passes_to_hour_one() -> None:
    # 20 calls on 2026-11-01 local: two at 01:30 (once EDT = 05:30Z, once EST = 06:30Z), one at
    # 00:15 EDT (04:15Z) and one at h:15 EST = (h+5):15Z for h = 2..18 (17 calls).
    # Peak: 96 x count >= 5 x 20 = 100, so hour 1 (2 calls, 192) is the only peak; every other
    # hour has 1 call (96). In UTC hours the two 01:30 calls would fall in hours 5 and 6.
    calls = [call(utc(2026, 11, 1, 5, 30)), call(utc(2026, 11, 1, 6, 30))]
    calls.append(call(utc(2026, 11, 1, 4, 15)))
    calls += [call(utc(2026, 11, 1, h + 5, 15)) for h in range(2, 19)]
    answer = ref.customer(
        calls, account_id="a", settings=SETTINGS, days=1, end_date=date(2026, 11, 1), zone=NY
    )
    assert answer["usage"]["total_calls"] == 20
    assert answer["behavior_insights"]["peak_hours"] == [1]


# ---------------------------------------------------------------- odd offsets


@pytest.mark.parametrize(
    ("zone", "day", "last_before", "first_of", "last_of", "start", "end"),
    [
        # Lord Howe DST ends 2026-04-05 02:00 (+11:00) -> 01:30 (+10:30): a 24.5-hour day,
        # 00:00+11:00 = 04-04 13:00Z to 04-06 00:00+10:30 = 04-05 13:30Z.
        (
            "Australia/Lord_Howe",
            date(2026, 4, 5),
            utc(2026, 4, 4, 12, 59, 59, 999999),
            utc(2026, 4, 4, 13),
            utc(2026, 4, 5, 13, 29, 59, 999999),
            "2026-04-05T00:00:00+11:00",
            "2026-04-05T23:59:59+10:30",
        ),
        # Lord Howe DST starts 2026-10-04 02:00 (+10:30) -> 02:30 (+11:00): 23.5 hours,
        # 00:00+10:30 = 10-03 13:30Z to 10-05 00:00+11:00 = 10-04 13:00Z.
        (
            "Australia/Lord_Howe",
            date(2026, 10, 4),
            utc(2026, 10, 3, 13, 29, 59, 999999),
            utc(2026, 10, 3, 13, 30),
            utc(2026, 10, 4, 12, 59, 59, 999999),
            "2026-10-04T00:00:00+10:30",
            "2026-10-04T23:59:59+11:00",
        ),
        # Kolkata +05:30 all year: 2026-03-10 runs 03-09 18:30Z to 03-10 18:30Z.
        (
            "Asia/Kolkata",
            date(2026, 3, 10),
            utc(2026, 3, 9, 18, 29, 59, 999999),
            utc(2026, 3, 9, 18, 30),
            utc(2026, 3, 10, 18, 29, 59, 999999),
            "2026-03-10T00:00:00+05:30",
            "2026-03-10T23:59:59+05:30",
        ),
        # Kathmandu +05:45 all year: 2026-03-10 runs 03-09 18:15Z to 03-10 18:15Z.
        (
            "Asia/Kathmandu",
            date(2026, 3, 10),
            utc(2026, 3, 9, 18, 14, 59, 999999),
            utc(2026, 3, 9, 18, 15),
            utc(2026, 3, 10, 18, 14, 59, 999999),
            "2026-03-10T00:00:00+05:45",
            "2026-03-10T23:59:59+05:45",
        ),
        # Chatham DST ends 2026-04-05 03:45 (+13:45) -> 02:45 (+12:45): 25 hours,
        # 00:00+13:45 = 04-04 10:15Z to 04-06 00:00+12:45 = 04-05 11:15Z.
        (
            "Pacific/Chatham",
            date(2026, 4, 5),
            utc(2026, 4, 4, 10, 14, 59, 999999),
            utc(2026, 4, 4, 10, 15),
            utc(2026, 4, 5, 11, 14, 59, 999999),
            "2026-04-05T00:00:00+13:45",
            "2026-04-05T23:59:59+12:45",
        ),
        # Chatham DST starts 2026-09-27 02:45 (+12:45) -> 03:45 (+13:45): 23 hours,
        # 00:00+12:45 = 09-26 11:15Z to 09-28 00:00+13:45 = 09-27 10:15Z.
        (
            "Pacific/Chatham",
            date(2026, 9, 27),
            utc(2026, 9, 26, 11, 14, 59, 999999),
            utc(2026, 9, 26, 11, 15),
            utc(2026, 9, 27, 10, 14, 59, 999999),
            "2026-09-27T00:00:00+12:45",
            "2026-09-27T23:59:59+13:45",
        ),
    ],
)
def test_day_edges_in_odd_offsets(
    zone: str,
    day: date,
    last_before: datetime,
    first_of: datetime,
    last_of: datetime,
    start: str,
    end: str,
) -> None:
    after = last_of + timedelta(microseconds=1)  # the next local day's first instant
    calls = [
        call(last_before, "1.00"),
        call(first_of, "2.00"),
        call(last_of, "4.00"),
        call(after, "8.00"),
    ]
    answer = ref.daily(
        calls, days=3, end_date=day + timedelta(days=1), today=date(2027, 1, 1), zone=zone
    )
    assert per_day(answer) == [
        ((day - timedelta(days=1)).isoformat(), 1, 1.0),
        (day.isoformat(), 2, 6.0),
        ((day + timedelta(days=1)).isoformat(), 1, 8.0),
    ]
    for endpoint in (ref.overview, ref.performance, ref.failures):
        assert endpoint(calls, days=1, end_date=day, zone=zone)["period"] == {
            "start_date": start,
            "end_date": end,
            "timezone": zone,
            **({"days": 1} if endpoint is ref.overview else {}),
        }
    assert ref.overview(calls, days=1, end_date=day, zone=zone)["summary"]["total_calls"] == 2


def test_a_skipped_midnight_starts_the_day_at_the_jump() -> None:
    # America/Santiago starts DST on 2026-09-06 at 00:00 (-04:00) -> 01:00 (-03:00): that day
    # has no midnight and begins at 01:00-03:00 = 04:00Z; 09-05 ends at 23:59:59-04:00 = 03:59:59Z.
    zone = "America/Santiago"
    calls = [call(utc(2026, 9, 6, 3, 59, 59)), call(utc(2026, 9, 6, 4))]
    sept_6 = ref.overview(calls, days=1, end_date=date(2026, 9, 6), zone=zone)
    assert sept_6["period"]["start_date"] == "2026-09-06T01:00:00-03:00"
    assert sept_6["summary"]["total_calls"] == 1
    sept_5 = ref.overview(calls, days=1, end_date=date(2026, 9, 5), zone=zone)
    assert sept_5["period"]["end_date"] == "2026-09-05T23:59:59-04:00"
    assert sept_5["summary"]["total_calls"] == 1


def test_utc_keeps_the_z_form_and_an_offset_zero_zone_does_not() -> None:
    # SPEC section 9: "Z" for a UTC account; Europe/London in winter is +00:00 but not UTC.
    assert ref.period(1, date(2026, 1, 15), "UTC") == {
        "start_date": "2026-01-15T00:00:00Z",
        "end_date": "2026-01-15T23:59:59Z",
        "timezone": "UTC",
    }
    assert ref.period(1, date(2026, 1, 15), "Europe/London") == {
        "start_date": "2026-01-15T00:00:00+00:00",
        "end_date": "2026-01-15T23:59:59+00:00",
        "timezone": "Europe/London",
    }
    # Europe/Berlin across its spring change (2026-03-29): SPEC's own example.
    assert ref.period(30, date(2026, 3, 30), "Europe/Berlin") == {
        "start_date": "2026-03-01T00:00:00+01:00",
        "end_date": "2026-03-30T23:59:59+02:00",
        "timezone": "Europe/Berlin",
    }


# ---------------------------------------------------------------- two calendar dates apart


def test_kiritimati_and_gmt_plus_12_put_one_instant_two_dates_apart() -> None:
    # 2026-06-15 11:00Z is 06-16 01:00 in Kiritimati (+14) and 06-14 23:00 in Etc/GMT+12 (-12:
    # POSIX sign, twelve hours west).
    calls = [call(utc(2026, 6, 15, 11), "3.00")]
    end = date(2026, 6, 16)
    east = ref.daily(calls, days=3, end_date=end, today=end, zone="Pacific/Kiritimati")
    west = ref.daily(calls, days=3, end_date=end, today=end, zone="Etc/GMT+12")
    assert per_day(east) == [("2026-06-14", 0, 0), ("2026-06-15", 0, 0), ("2026-06-16", 1, 3.0)]
    assert per_day(west) == [("2026-06-14", 1, 3.0), ("2026-06-15", 0, 0), ("2026-06-16", 0, 0)]
    east_day = ref.overview(calls, days=1, end_date=date(2026, 6, 16), zone="Pacific/Kiritimati")
    west_day = ref.overview(calls, days=1, end_date=date(2026, 6, 14), zone="Etc/GMT+12")
    assert east_day["summary"]["total_calls"] == west_day["summary"]["total_calls"] == 1
    assert east_day["period"]["start_date"] == "2026-06-16T00:00:00+14:00"
    assert west_day["period"]["end_date"] == "2026-06-14T23:59:59-12:00"


# ---------------------------------------------------------------- midnight itself


@pytest.mark.parametrize(
    ("zone", "midnight"),
    [
        ("UTC", utc(2026, 3, 1)),
        ("Europe/Berlin", utc(2026, 2, 28, 23)),  # 03-01 00:00+01:00
        ("Asia/Kathmandu", utc(2026, 2, 28, 18, 15)),  # 03-01 00:00+05:45
        (NY, utc(2026, 3, 1, 5)),  # 03-01 00:00-05:00
        ("Pacific/Kiritimati", utc(2026, 2, 28, 10)),  # 03-01 00:00+14:00
        ("Etc/GMT+12", utc(2026, 3, 1, 12)),  # 03-01 00:00-12:00
    ],
)
def test_local_midnight_opens_the_new_day(zone: str, midnight: datetime) -> None:
    calls = [call(midnight - timedelta(microseconds=1), "1.00"), call(midnight, "2.00")]
    answer = ref.daily(calls, days=2, end_date=date(2026, 3, 1), today=date(2026, 3, 2), zone=zone)
    assert per_day(answer) == [("2026-02-28", 1, 1.0), ("2026-03-01", 1, 2.0)]


# ---------------------------------------------------------------- days add up


@pytest.mark.parametrize("zone", SAMPLE_ZONES)
def test_single_days_add_up_to_the_window(zone: str) -> None:
    # The proxy bug of issue #15: N one-day answers must add up to the N-day answer. Costs are
    # whole cents so every rounded day total is exact and the sum can be compared exactly.
    rng = random.Random(15)
    start, end = utc(2026, 10, 20), utc(2026, 11, 10)  # spans NY's fall back, Chatham's DST
    calls = [as_reference(r) for r in random_log(rng, ["a"], 600, start, end)]
    for c in calls:
        c["cost_usd"] = Decimal(rng.randint(0, 900)) / 100
    # Some calls on this zone's own day edges, not only UTC's.
    for d in range(22, 32):
        midnight = ref.day_start(date(2026, 10, d), zone)
        calls += [call(midnight, "0.07"), call(midnight - timedelta(microseconds=1), "0.05")]

    first, n_days = date(2026, 10, 22), 18
    days = [first + timedelta(days=i) for i in range(n_days)]
    last = days[-1]
    singles = [ref.overview(calls, days=1, end_date=d, zone=zone)["summary"] for d in days]
    whole = ref.overview(calls, days=n_days, end_date=last, zone=zone)["summary"]
    assert sum(s["total_calls"] for s in singles) == whole["total_calls"]
    cents = sum(Decimal(str(s["total_cost_usd"])) for s in singles)
    assert cents == Decimal(str(whole["total_cost_usd"]))

    # The same days from daily's series and from customer's usage.
    series = ref.daily(calls, days=n_days, end_date=last, today=last, zone=zone)["daily_data"]
    assert [e["total_calls"] for e in series] == [s["total_calls"] for s in singles]
    usage = ref.customer(
        calls, account_id="a", settings=SETTINGS, days=n_days, end_date=last, zone=zone
    )["usage"]
    assert usage["total_calls"] == whole["total_calls"]

    # Every call is on exactly one local day: those whose day is in the span are counted once.
    local_dates = [c["created_at"].astimezone(ZoneInfo(zone)).date() for c in calls]
    assert whole["total_calls"] == sum(1 for d in local_dates if first <= d <= last)


# ---------------------------------------------------------------- customer's local months


def test_customer_months_in_kiritimati() -> None:
    # +14 all year. Local March starts 03-01 00:00+14 = 02-28 10:00Z; local February starts
    # 02-01 00:00+14 = 01-31 10:00Z. Today (end_date) is 03-02.
    zone = "Pacific/Kiritimati"
    calls = [
        call(utc(2026, 1, 31, 9, 59, 59), "16.00"),  # 01-31 23:59:59: January
        call(utc(2026, 1, 31, 10), "8.00"),  # 02-01 00:00: February, day 1
        call(utc(2026, 2, 28, 9, 59, 59), "1.00"),  # 02-28 23:59:59: February
        call(utc(2026, 2, 28, 10), "2.00"),  # 03-01 00:00: March, day 1
        call(utc(2026, 3, 1, 12), "4.00"),  # 03-02 02:00: March, today
    ]
    answer = ref.customer(
        calls, account_id="a", settings=SETTINGS, days=30, end_date=date(2026, 3, 2), zone=zone
    )
    assert answer["cost_analysis"] | {"vs_gpt4o_only": None, "vs_baseline": None} == {
        "current_month": 6.0,  # 2 + 4
        "previous_month": 9.0,  # 8 + 1
        # Previous month's days 1..min(2, 28): only 02-01's 8.00; 100 x (6 - 8) / 8.
        "change_percentage": -25.0,
        # Before today: 2.00. R = the 7 days 02-23..03-01: (1 + 2) / 7. Days left counting
        # today: 31 - 2 + 1 = 30. 2 + 3/7 x 30 = 2 + 12.857142... = 14.857... -> 14.86.
        "projected_month_end": 14.86,
        "vs_gpt4o_only": None,
        "vs_baseline": None,
    }
    # Window: 30 local days 02-01..03-02, so every call but January's: 4 calls, 15.00.
    assert answer["usage"] | {"total_tokens": None} == {
        "total_calls": 4,
        "total_tokens": None,
        "total_cost_usd": 15.0,
        "avg_calls_per_day": 0.1,  # 4 / 30 = 0.133
    }
    assert answer["period"] == {
        "start_date": "2026-02-01T00:00:00+14:00",
        "end_date": "2026-03-02T23:59:59+14:00",
        "timezone": zone,
    }
    # In UTC the 02-28 10:00Z call is February's and 01-31 10:00Z January's: other numbers.
    legacy = ref.customer(
        calls, account_id="a", settings=SETTINGS, days=30, end_date=date(2026, 3, 2)
    )
    assert legacy["cost_analysis"]["current_month"] == 4.0


def test_customer_months_in_gmt_minus_12_on_the_first() -> None:
    # Etc/GMT+12 is UTC-12. Local March starts 03-01 00:00-12 = 03-01 12:00Z; local February
    # starts 02-01 12:00Z. Today (end_date) is 03-01, the 1st: nothing of March before today.
    zone = "Etc/GMT+12"
    calls = [
        call(utc(2026, 2, 1, 11, 59, 59), "16.00"),  # 01-31 23:59:59: January
        call(utc(2026, 2, 1, 12), "8.00"),  # 02-01 00:00: February, day 1
        call(utc(2026, 2, 2, 11, 59, 59), "0.50"),  # 02-01 23:59:59: February, day 1
        call(utc(2026, 3, 1, 11, 59, 59, 999999), "1.00"),  # 02-28 23:59:59.999999: February
        call(utc(2026, 3, 1, 12), "2.00"),  # 03-01 00:00: today
        call(utc(2026, 3, 2, 11, 59, 59), "4.00"),  # 03-01 23:59:59: today
    ]
    answer = ref.customer(
        calls, account_id="a", settings=SETTINGS, days=29, end_date=date(2026, 3, 1), zone=zone
    )
    assert answer["cost_analysis"] | {"vs_gpt4o_only": None, "vs_baseline": None} == {
        "current_month": 6.0,  # 2 + 4
        "previous_month": 9.5,  # 8 + 0.5 + 1
        # Previous month's day 1 only: 8.50; 100 x (6 - 8.5) / 8.5 = -29.41... -> -29.4.
        "change_percentage": -29.4,
        # Before today: 0. R = 02-22..02-28: 1.00 / 7. Days left counting today: 31.
        # 31 / 7 = 4.428... -> 4.43.
        "projected_month_end": 4.43,
        "vs_gpt4o_only": None,
        "vs_baseline": None,
    }
    # 29 local days 02-01..03-01: all but January's call, 5 calls, 15.50; 5 / 29 = 0.17 -> 0.2.
    assert answer["usage"]["total_calls"] == 5
    assert answer["usage"]["total_cost_usd"] == 15.5
    assert answer["usage"]["avg_calls_per_day"] == 0.2
    assert answer["period"] == {
        "start_date": "2026-02-01T00:00:00-12:00",
        "end_date": "2026-03-01T23:59:59-12:00",
        "timezone": zone,
    }
