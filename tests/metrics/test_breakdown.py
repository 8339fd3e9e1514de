"""GET /v1/metrics/breakdown (SPEC §10) against the plain-Python reference: every group_by in
several zones, pages concatenated, value filters, series, CSV, page tokens, isolation, and
pages read while calls arrive."""

from __future__ import annotations

import csv
import io
import random
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI

from perf_metrics.metrics.schemas import BreakdownResponse
from tests import reference
from tests.clock import set_clock
from tests.conftest import Admin, assert_envelope, bearer
from tests.factories import as_reference, json_call, random_log
from tests.metrics.test_local_days import ingest
from tests.metrics.test_metrics_reference import assert_percentiles_close

NOW = datetime(2026, 3, 10, 6, tzinfo=UTC)
USERS = [f"user-{i}" for i in range(12)] + ['=HYPERLINK("http://x")']


def with_users(rng: random.Random, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Skewed end users, some calls without one."""
    for c in calls:
        if rng.random() < 0.15:
            continue
        c["user_id"] = rng.choices(USERS, weights=[2**-i for i in range(len(USERS))])[0]
    return calls


async def world(
    client: httpx.AsyncClient, admin_ops: Admin, app: FastAPI, zone: str, seed: int = 1
) -> tuple[str, list[dict[str, Any]]]:
    """An account in `zone` and a neighbour, with calls; the account's key and its live calls
    in the reference's form."""
    set_clock(app, NOW)
    rng = random.Random(seed)
    mine = await admin_ops.account(account_id="acct_mine", timezone=zone)
    other = await admin_ops.account(account_id="acct_other")
    key = (await admin_ops.key(mine))["key"]
    calls = with_users(
        rng, random_log(rng, [mine, other], 1500, NOW - timedelta(days=35), NOW, zone)
    )
    for c in calls:
        if c["account_id"] == other and "user_id" in c:
            c["user_id"] = "someone-else-" + c["user_id"]  # never in mine's groups
    await ingest(client, admin_ops, calls)
    records = [
        as_reference(c) for c in calls if c["account_id"] == mine and c["environment"] == "live"
    ]
    return str(key), records


async def get(client: httpx.AsyncClient, key: str, **params: Any) -> httpx.Response:
    return await client.get("/v1/metrics/breakdown", params=params, headers=bearer(key))


async def all_pages(
    client: httpx.AsyncClient, key: str, **params: Any
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The first page, and the groups of every page in order."""
    first: dict[str, Any] | None = None
    groups: list[dict[str, Any]] = []
    page: str | None = None
    for _ in range(100):
        response = await get(client, key, **params, **({"page": page} if page else {}))
        assert response.status_code == 200, response.text
        body = response.json()
        BreakdownResponse.model_validate(body)
        first = first or body
        groups += body["groups"]
        assert body["has_more"] == (body["next_page"] is not None)
        page = body["next_page"]
        if page is None:
            break
    assert first is not None
    return first, groups


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata", "America/New_York"])
@pytest.mark.parametrize("group_by", ["model", "provider", "task_type", "user"])
async def test_every_page_together_is_the_reference(
    client: httpx.AsyncClient, admin_ops: Admin, app: FastAPI, zone: str, group_by: str
) -> None:
    key, records = await world(client, admin_ops, app, zone)
    today = NOW.astimezone(ZoneInfo(zone)).date()
    for days, end in ((30, today), (7, today - timedelta(days=2)), (1, today)):
        params = {"group_by": group_by, "days": days, "end_date": end.isoformat(), "limit": 3}
        first, groups = await all_pages(client, key, **params)
        expected = reference.breakdown(
            records, group_by=group_by, days=days, end_date=end, zone=zone
        )
        assert first["period"] == expected["period"]
        assert first["totals"] == expected["totals"]
        assert_percentiles_close(groups, expected["groups"], f"{group_by} {days}d")
        # The groups add up to totals, which are overview's.
        assert sum(g["calls"] for g in groups) == first["totals"]["calls"]
        overview = (
            await client.get(
                "/v1/metrics/overview",
                params={"days": days, "end_date": end.isoformat()},
                headers=bearer(key),
            )
        ).json()["summary"]
        assert first["totals"]["calls"] == overview["total_calls"]
        assert first["totals"]["total_cost_usd"] == overview["total_cost_usd"]
        assert not any(str(g["value"]).startswith("someone-else") for g in groups)


async def test_values_series_and_csv(
    client: httpx.AsyncClient, admin_ops: Admin, app: FastAPI
) -> None:
    zone = "Europe/Berlin"
    key, records = await world(client, admin_ops, app, zone, seed=2)
    end = NOW.astimezone(ZoneInfo(zone)).date()
    wanted = ["user-0", "user-3", "nobody"]
    body = (await get(client, key, group_by="user", days=14, value=wanted, series="daily")).json()
    expected = reference.breakdown(
        records, group_by="user", days=14, end_date=end, zone=zone, values=wanted, series=True
    )
    assert_percentiles_close(body["groups"], expected["groups"])
    assert [g["value"] for g in body["groups"]] == [g["value"] for g in expected["groups"]]
    assert len(body["groups"][0]["daily"]) == 14

    as_csv = await get(client, key, group_by="user", days=30, format="csv")
    assert as_csv.status_code == 200
    assert as_csv.headers["content-disposition"].startswith('attachment; filename="breakdown-')
    rows = list(csv.DictReader(io.StringIO(as_csv.text, newline="")))
    _, groups = await all_pages(client, key, group_by="user", days=30, limit=100)
    assert len(rows) == len(groups)
    for row, group in zip(rows, groups, strict=True):
        value = group["value"]
        shown = "" if value is None else ("'" + value if value.startswith("=") else value)
        assert row["value"] == shown  # the formula-looking user id comes out inert
        assert row["calls"] == str(group["calls"])
        assert row["total_cost_usd"] == repr(group["total_cost_usd"])


async def test_ties_across_a_page_boundary(
    client: httpx.AsyncClient, admin_ops: Admin, app: FastAPI
) -> None:
    # Four users of equal cost: two with two calls, two with one; then by name, null last.
    set_clock(app, NOW)
    account = await admin_ops.account(account_id="acct_ties")
    key = (await admin_ops.key(account))["key"]
    at = "2026-03-09T12:00:00Z"
    calls = [
        json_call("t1", account_id=account, created_at=at, cost_usd=0.5, user_id="b"),
        json_call("t2", account_id=account, created_at=at, cost_usd=0.5, user_id="b"),
        json_call("t3", account_id=account, created_at=at, cost_usd=1.0, user_id="d"),
        json_call("t4", account_id=account, created_at=at, cost_usd=0.5, user_id="a"),
        json_call("t5", account_id=account, created_at=at, cost_usd=0.5, user_id="a"),
        json_call("t6", account_id=account, created_at=at, cost_usd=1.0, user_id="c"),
        json_call("t7", account_id=account, created_at=at, cost_usd=1.0),
    ]
    await ingest(client, admin_ops, calls)
    _, groups = await all_pages(
        client, key, group_by="user", days=1, end_date="2026-03-09", limit=1
    )
    assert [(g["value"], g["calls"]) for g in groups] == [
        ("a", 2),
        ("b", 2),
        ("c", 1),
        ("d", 1),
        (None, 1),
    ]


async def test_pages_while_calls_arrive_never_repeat_a_group(
    client: httpx.AsyncClient, admin_ops: Admin, app: FastAPI
) -> None:
    key, _ = await world(client, admin_ops, app, "UTC", seed=3)
    rng = random.Random(4)
    seen: list[str | None] = []
    page: str | None = None
    while True:
        response = await get(
            client, key, group_by="user", days=3, limit=2, **({"page": page} if page else {})
        )
        body = response.json()
        seen += [g["value"] for g in body["groups"]]
        page = body["next_page"]
        if page is None:
            break
        # Between pages, more calls of random users, some expensive.
        extra = with_users(rng, random_log(rng, ["acct_mine"], 30, NOW - timedelta(hours=5), NOW))
        for c in extra:
            c["environment"] = "live"
            c["cost_usd"] = rng.choice((0.0, 5.0))
        await ingest(client, admin_ops, extra)
    assert len(seen) == len(set(seen))


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({}, "group_by"),
        ({"group_by": "color"}, "group_by"),
        ({"group_by": "metadata.feature"}, "group_by"),
        ({"group_by": "user", "limit": "0"}, "limit"),
        ({"group_by": "user", "limit": "101"}, "limit"),
        ({"group_by": "user", "series": "daily", "limit": "21"}, "limit"),
        ({"group_by": "user", "series": "weekly"}, "series"),
        ({"group_by": "user", "format": "csv", "series": "daily"}, "series"),
        ({"group_by": "user", "format": "csv", "page": "abc"}, "page"),
        ({"group_by": "user", "page": "not-a-token"}, "page"),
        ({"group_by": "user", "value": ""}, "value"),
    ],
)
async def test_bad_parameters(
    client: httpx.AsyncClient, admin_ops: Admin, app: FastAPI, params: dict[str, str], param: str
) -> None:
    set_clock(app, NOW)
    account = await admin_ops.account()
    key = (await admin_ops.key(account))["key"]
    assert_envelope(await get(client, key, **params), 400, "invalid_parameter", param)


async def test_a_page_token_only_goes_with_its_own_question(
    client: httpx.AsyncClient, admin_ops: Admin, app: FastAPI
) -> None:
    key, _ = await world(client, admin_ops, app, "UTC", seed=5)
    body = (await get(client, key, group_by="user", days=30, limit=2)).json()
    token = body["next_page"]
    assert token
    for other in ({"days": 29}, {"limit": 3}, {"group_by": "model"}, {"value": "user-1"}):
        params = {"group_by": "user", "days": 30, "limit": 2, **other, "page": token}
        error = assert_envelope(await get(client, key, **params), 400, "invalid_parameter", "page")
        assert "another question" in error["message"]
    tampered = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
    error = assert_envelope(
        await get(client, key, group_by="user", days=30, limit=2, page=tampered),
        400,
        "invalid_parameter",
        "page",
    )
    # Another account's key with this account's token: another question too.
    stranger = await admin_ops.account(account_id="acct_stranger")
    stranger_key = (await admin_ops.key(stranger))["key"]
    assert_envelope(
        await get(client, stranger_key, group_by="user", days=30, limit=2, page=token),
        400,
        "invalid_parameter",
        "page",
    )


async def test_an_empty_window(client: httpx.AsyncClient, admin_ops: Admin, app: FastAPI) -> None:
    key, _ = await world(client, admin_ops, app, "UTC", seed=6)
    body = (await get(client, key, group_by="model", days=3, end_date="2025-01-10")).json()
    assert body["groups"] == [] and body["has_more"] is False and body["next_page"] is None
    assert body["totals"] == {
        "calls": 0,
        "total_cost_usd": 0.0,
        "input_tokens": 0,
        "output_tokens": 0,
    }
    assert body["period"]["start_date"] == "2025-01-08T00:00:00Z"
    assert date.fromisoformat(body["period"]["end_date"][:10]) == date(2025, 1, 10)
