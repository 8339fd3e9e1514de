"""The reference's breakdown (tests/reference.py, SPEC §10) on hand-worked calls: groups,
the null group, the order with its ties, value filters, totals, local days in the series.
The service's `GET /v1/metrics/breakdown` (issue #16) will be compared against it."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from tests import reference as ref
from tests.factories import reference_call


def call(at: datetime, cost: str, **fields: object) -> dict[str, object]:
    return reference_call(created_at=at, cost_usd=Decimal(cost), **fields)


CALLS = [
    # alice: 2 calls, 3.00; bob: 1 call, 3.00 (a cost tie: more calls first); carol: 1.00;
    # two calls without a user: 0.50 together, the null group (placed by its cost like any
    # group; only in a tie of cost and calls does null come after the names).
    call(
        datetime(2026, 3, 1, 10, tzinfo=UTC),
        "1.00",
        user_id="alice",
        input_tokens=10,
        output_tokens=1,
        latency_ms=100,
        metadata={"feature": "search"},
    ),
    call(
        datetime(2026, 3, 2, 10, tzinfo=UTC),
        "2.00",
        user_id="alice",
        input_tokens=20,
        output_tokens=2,
        latency_ms=301,
        failure_mode="refusal",
        recovery="retry",
        retry_count=1,
        quality_score=0.5,
        metadata={"feature": "chat"},
    ),
    call(
        datetime(2026, 3, 2, 11, tzinfo=UTC),
        "3.00",
        user_id="bob",
        input_tokens=30,
        output_tokens=3,
        latency_ms=200,
        status="error",
        failure_mode="timeout",
        quality_score=0.9,
    ),
    call(
        datetime(2026, 3, 2, 12, tzinfo=UTC),
        "1.00",
        user_id="carol",
        latency_ms=50,
        metadata={"feature": "search"},
    ),
    call(datetime(2026, 3, 2, 13, tzinfo=UTC), "0.25", latency_ms=10),
    call(datetime(2026, 3, 2, 23, 30, tzinfo=UTC), "0.25", latency_ms=20),  # 03-03 in Berlin
]


def test_groups_by_user_in_cost_order() -> None:
    answer = ref.breakdown(CALLS, group_by="user", days=2, end_date=date(2026, 3, 2))
    assert answer["period"] == {
        "start_date": "2026-03-01T00:00:00Z",
        "end_date": "2026-03-02T23:59:59Z",
        "timezone": "UTC",
    }
    assert answer["totals"] == {
        "calls": 6,
        "total_cost_usd": 7.5,
        "input_tokens": 10 + 20 + 30 + 3 * 100,  # carol's and the two others: the default 100
        "output_tokens": 1 + 2 + 3 + 3 * 50,
    }
    assert [(g["value"], g["calls"], g["total_cost_usd"]) for g in answer["groups"]] == [
        ("alice", 2, 3.0),
        ("bob", 1, 3.0),
        ("carol", 1, 1.0),
        (None, 2, 0.5),
    ]
    alice = answer["groups"][0]
    assert alice["cost_share"] == 0.4  # 3.00 / 7.50
    assert alice["avg_cost_per_call"] == 1.5
    assert alice["avg_latency_ms"] == 201  # (100 + 301) / 2 = 200.5, half up
    assert alice["success_rate"] == 1.0  # the refusal was rescued by a retry
    assert alice["failure_rate"] == 0.5
    assert alice["quality_score"] == 0.5  # the one scored call
    bob = answer["groups"][1]
    assert (bob["success_rate"], bob["failure_rate"], bob["quality_score"]) == (0.0, 1.0, 0.9)
    # Every call of the window is in exactly one group.
    assert sum(g["calls"] for g in answer["groups"]) == answer["totals"]["calls"]


def test_a_metadata_key_and_value_filters() -> None:
    answer = ref.breakdown(CALLS, group_by="metadata.feature", days=2, end_date=date(2026, 3, 2))
    assert [(g["value"], g["calls"], g["total_cost_usd"]) for g in answer["groups"]] == [
        (None, 3, 3.5),  # bob's call and the two without a user lack the key
        ("search", 2, 2.0),  # a cost tie with chat: more calls first
        ("chat", 1, 2.0),
    ]
    tie = ref.breakdown(
        [
            call(datetime(2026, 3, 2, tzinfo=UTC), "1.00", metadata={"feature": "b"}),
            call(datetime(2026, 3, 2, tzinfo=UTC), "1.00"),
            call(datetime(2026, 3, 2, tzinfo=UTC), "1.00", metadata={"feature": "a"}),
        ],
        group_by="metadata.feature",
        days=1,
        end_date=date(2026, 3, 2),
    )
    # Cost and calls tied: values ascending, null after the names.
    assert [g["value"] for g in tie["groups"]] == ["a", "b", None]
    only = ref.breakdown(
        CALLS, group_by="metadata.feature", days=2, end_date=date(2026, 3, 2), values=["search"]
    )
    assert [g["value"] for g in only["groups"]] == ["search"]
    assert only["totals"]["calls"] == 6  # totals stay the window's


def test_series_and_days_in_the_accounts_zone() -> None:
    utc = ref.breakdown(CALLS, group_by="task_type", days=2, end_date=date(2026, 3, 2), series=True)
    assert [d["calls"] for d in utc["groups"][0]["daily"]] == [1, 5]
    berlin = ref.breakdown(
        CALLS,
        group_by="task_type",
        days=2,
        end_date=date(2026, 3, 3),
        zone="Europe/Berlin",
        series=True,
    )
    # In Berlin the 23:30Z call is on 03-03, and 03-01 10:00Z stays on 03-01 (outside).
    assert [(d["date"], d["calls"]) for d in berlin["groups"][0]["daily"]] == [
        ("2026-03-02", 4),
        ("2026-03-03", 1),
    ]
    assert berlin["totals"]["calls"] == 5
