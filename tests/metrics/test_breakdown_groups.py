"""Breakdowns by end user and tracked metadata key (SPEC §10) from the group rollups, against
the plain-Python reference: the threshold ranking in every branch, days not yet in week rows
and the week seal, tracked keys (backfilled, refused, removed), tags with more values than a
page, absent tags, empty strings, and other accounts' users and tags."""

from __future__ import annotations

import csv
import io
import random
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from perf_metrics.accounts import AdminError
from perf_metrics.metrics import breakdown, csv_export
from perf_metrics.rollups.fold import STALE_QUIET_S, settle
from perf_metrics.rollups.folder import Folder
from perf_metrics.rollups.maintenance import rebuild_rollups, verify_rollups
from perf_metrics.rollups.rezone import change_account
from tests import reference
from tests.clock import set_clock
from tests.conftest import Admin, assert_envelope, bearer, set_thin_week_calls
from tests.factories import as_reference, random_log
from tests.metrics.test_breakdown import all_pages, get
from tests.metrics.test_local_days import ingest
from tests.metrics.test_metrics_reference import assert_percentiles_close

NOW = datetime(2026, 3, 10, 6, tzinfo=UTC)
FEATURES = ("chat", "search", "agent", "")  # "" counts as none
WORKFLOWS = [f"wf_{i:03d}" for i in range(150)]  # more values than a page of 100


def tagged(rng: random.Random, calls: list[dict[str, Any]], users: int) -> list[dict[str, Any]]:
    """Zipf-like users out of `users` (some calls without one, a few with ""), a `feature` tag
    (sometimes absent), a `workflow` tag of many values, and filler keys up to 16."""
    for c in calls:
        u = rng.random()
        if u < 0.1:
            pass
        elif u < 0.12:
            c["user_id"] = ""
        else:
            c["user_id"] = f"u{int(users * rng.random() ** 3):05d}"
        metadata = {f"k{i}": "x" for i in range(rng.choice((0, 14)))}
        if rng.random() < 0.8:
            metadata["feature"] = rng.choice(FEATURES)
        if rng.random() < 0.9:
            metadata["workflow"] = WORKFLOWS[int(len(WORKFLOWS) * rng.random() ** 2)]
        if metadata:
            c["metadata"] = metadata
    return calls


async def world(
    client: httpx.AsyncClient,
    admin_ops: Admin,
    app: FastAPI,
    engine: AsyncEngine,
    zone: str,
    *,
    n: int = 2000,
    users: int = 400,
    seed: int = 1,
    track: list[str] | None = None,
    least_calls: int = 0,
) -> tuple[str, list[dict[str, Any]]]:
    """An account in `zone` tracking `track` (before its calls arrive) and a neighbour that
    tracks the same keys, with calls; the key and the account's live calls (reference form).
    Weeks with fewer than `least_calls` calls are thin (by default none: every week of these
    few calls has week rows)."""
    set_clock(app, NOW)
    await set_thin_week_calls(engine, least_calls)
    rng = random.Random(seed)
    mine = await admin_ops.account(account_id="acct_mine", timezone=zone)
    other = await admin_ops.account(account_id="acct_other")
    for account in (mine, other):
        if track:
            await change_account(engine, account, tracked_keys=track)
    key = (await admin_ops.key(mine))["key"]
    calls = tagged(
        rng, random_log(rng, [mine, other], n, NOW - timedelta(days=40), NOW, zone), users
    )
    for c in calls:
        if c["account_id"] == other:  # never in mine's groups
            if c.get("user_id"):
                c["user_id"] = "someone-else"
            if c.get("metadata", {}).get("workflow"):
                c["metadata"]["workflow"] = "their-workflow"
    await ingest(client, admin_ops, calls)
    # The weeks of the log (before today's, as the clock of the fold's mark goes) were made
    # stale by these late calls: built as a load's end builds them.
    async with engine.connect() as conn:
        assert await settle(conn) > 0
    return str(key), [
        as_reference(c) for c in calls if c["account_id"] == mine and c["environment"] == "live"
    ]


async def assert_reference(
    client: httpx.AsyncClient,
    key: str,
    records: list[dict[str, Any]],
    zone: str,
    group_by: str,
    days: int,
    limit: int,
) -> list[dict[str, Any]]:
    end = NOW.astimezone(ZoneInfo(zone)).date()
    first, groups = await all_pages(
        client, key, group_by=group_by, days=days, end_date=end.isoformat(), limit=limit
    )
    expected = reference.breakdown(records, group_by=group_by, days=days, end_date=end, zone=zone)
    assert first["totals"] == expected["totals"]
    assert_percentiles_close(groups, expected["groups"], f"{group_by} {days}d")
    assert sum(g["calls"] for g in groups) == first["totals"]["calls"]
    assert not {"someone-else", "their-workflow"} & {g["value"] for g in groups}
    return groups


@pytest.mark.parametrize(
    ("top_first", "top_most"),
    [(100, 6400), (1, 4), (3, 12), (1, 1)],
    ids=["default", "grows", "grows-then-proves", "sums-everything"],
)
async def test_the_threshold_ranking_is_exact_in_every_branch(
    client: httpx.AsyncClient,
    admin_ops: Admin,
    app: FastAPI,
    engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
    top_first: int,
    top_most: int,
) -> None:
    # Small tops make the proof fail and `top` grow, and past TOP_MOST every group is summed;
    # each way the pages are the reference's ranking.
    monkeypatch.setattr(breakdown, "TOP_FIRST", top_first)
    monkeypatch.setattr(breakdown, "TOP_MOST", top_most)
    zone = "America/New_York"
    key, records = await world(client, admin_ops, app, engine, zone, track=["workflow"])
    for group_by, days, limit in (("user", 30, 20), ("user", 9, 7), ("metadata.workflow", 40, 9)):
        await assert_reference(client, key, records, zone, group_by, days, limit)


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata", "Pacific/Chatham"])
async def test_tracked_keys_absent_tags_and_a_tag_of_many_values(
    client: httpx.AsyncClient, admin_ops: Admin, app: FastAPI, engine: AsyncEngine, zone: str
) -> None:
    key, records = await world(
        client, admin_ops, app, engine, zone, track=["feature", "workflow"], seed=2
    )
    features = await assert_reference(client, key, records, zone, "metadata.feature", 30, 2)
    assert None in [g["value"] for g in features]  # absent, or "", or no metadata at all
    assert "" not in [g["value"] for g in features]
    workflows = await assert_reference(client, key, records, zone, "metadata.workflow", 40, 100)
    assert len(workflows) > 100  # two pages
    users = await assert_reference(client, key, records, zone, "user", 40, 100)
    assert any(g["calls"] == 1 for g in users)  # a user with one call, its cost exact
    account = (await client.get("/v1/account", headers=bearer(key))).json()
    assert account["tracked_metadata_keys"] == ["feature", "workflow"]


async def test_an_untracked_key_is_refused_naming_the_tracked_ones(
    client: httpx.AsyncClient, admin_ops: Admin, app: FastAPI, engine: AsyncEngine
) -> None:
    key, _ = await world(client, admin_ops, app, engine, "UTC", n=50, track=["feature"])
    error = assert_envelope(
        await get(client, key, group_by="metadata.team"), 400, "invalid_parameter", "group_by"
    )
    assert "'team' is not a tracked metadata key" in error["message"]
    assert "metadata.feature" in error["message"]
    assert error["tracked_metadata_keys"] == ["feature"]


async def test_tracking_a_key_counts_the_whole_history_and_dropping_it_removes_it(
    client: httpx.AsyncClient, admin_ops: Admin, app: FastAPI, engine: AsyncEngine
) -> None:
    zone = "Europe/Berlin"
    key, records = await world(client, admin_ops, app, engine, zone, seed=3)
    assert_envelope(
        await get(client, key, group_by="metadata.feature"), 400, "invalid_parameter", "group_by"
    )
    before = await assert_reference(client, key, records, zone, "user", 40, 50)
    change = await change_account(engine, "acct_mine", tracked_keys=["feature", "workflow"])
    assert change["changed"] and change["recounted"] == [
        "rollup_group_daily",
        "rollup_group_weekly",
    ]
    async with engine.connect() as conn:
        stored = await conn.scalar(
            text("SELECT count(*) FROM calls WHERE account_id = 'acct_mine'")
        )
    assert change["calls"] == stored  # both environments, all of its history
    await assert_reference(client, key, records, zone, "metadata.feature", 40, 3)
    await assert_reference(client, key, records, zone, "metadata.workflow", 40, 100)
    assert await assert_reference(client, key, records, zone, "user", 40, 50) == before
    async with engine.begin() as conn:
        assert (await verify_rollups(conn))["ok"]
    # The same keys again: nothing to do. Fewer keys: the dropped one is gone.
    assert (await change_account(engine, "acct_mine", tracked_keys=["feature", "workflow"]))[
        "changed"
    ] is False
    await change_account(engine, "acct_mine", tracked_keys=["workflow"])
    assert_envelope(
        await get(client, key, group_by="metadata.feature"), 400, "invalid_parameter", "group_by"
    )
    async with engine.begin() as conn:
        left = await conn.scalar(
            text(
                "SELECT count(*) FROM rollup_group_daily"
                " WHERE account_id = 'acct_mine' AND dimension = 'metadata.feature'"
            )
        )
        assert left == 0
        assert (await verify_rollups(conn))["ok"]
    await assert_reference(client, key, records, zone, "metadata.workflow", 40, 100)


@pytest.mark.parametrize(
    ("keys", "needle"),
    [
        (["a", "b", "c", "d", "e", "f"], "at most 5"),
        (["fe ature"], "letters, digits"),
        (["x" * 65], "letters, digits"),
    ],
)
async def test_refused_keys_change_nothing(
    admin_ops: Admin, engine: AsyncEngine, keys: list[str], needle: str
) -> None:
    account = await admin_ops.account(account_id="acct_keys")
    with pytest.raises(AdminError, match=needle):
        await change_account(engine, account, tracked_keys=keys)
    async with engine.connect() as conn:
        tracked = await conn.scalar(
            text("SELECT tracked_metadata_keys FROM accounts WHERE id = 'acct_keys'")
        )
        assert tracked == []


async def test_days_without_week_rows_then_the_week_seal(
    client: httpx.AsyncClient, admin_ops: Admin, app: FastAPI, engine: AsyncEngine
) -> None:
    # The mark moved back (as if these weeks had not ended yet): the weeks from it on are read
    # from their days, and their week rows are strays until the next fold's seal builds them
    # afresh from the days.
    zone = "Asia/Kolkata"
    key, records = await world(client, admin_ops, app, engine, zone, seed=4, track=["feature"])
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE rollup_watermarks SET group_weekly_before = '2026-02-16'"))
        await conn.execute(  # the week rows from the mark on are strays now, never read
            text("UPDATE rollup_group_weekly SET calls = calls + 1000 WHERE week >= '2026-02-16'")
        )
    await assert_reference(client, key, records, zone, "user", 30, 25)
    await assert_reference(client, key, records, zone, "metadata.feature", 40, 2)
    # A fold (of another account's call) seals the weeks since the mark.
    other = random_log(random.Random(5), ["acct_other"], 1, NOW - timedelta(hours=1), NOW)
    await ingest(client, admin_ops, other)
    async with engine.begin() as conn:
        mark = await conn.scalar(text("SELECT group_weekly_before FROM rollup_watermarks"))
        assert mark > datetime(2026, 3, 9).date()
        assert (await verify_rollups(conn))["ok"]
    await assert_reference(client, key, records, zone, "user", 30, 25)


async def test_late_calls_make_weeks_stale_and_the_fold_builds_them_afresh(
    client: httpx.AsyncClient, admin_ops: Admin, app: FastAPI, engine: AsyncEngine
) -> None:
    zone = "America/New_York"
    key, records = await world(client, admin_ops, app, engine, zone, seed=7, track=["feature"])
    stale = "SELECT account_id, block::text FROM rollup_stale_blocks ORDER BY 1, 2"
    assert await _rows(engine, stale) == []
    await assert_reference(client, key, records, zone, "user", 30, 25)
    # Late calls of two sealed weeks: their weeks are marked, their week rows left incomplete.
    rng = random.Random(8)
    mine = "acct_mine"
    late = tagged(
        rng, random_log(rng, [mine], 60, NOW - timedelta(days=20), NOW - timedelta(days=9)), 400
    )
    await ingest(client, admin_ops, late)
    records += [as_reference(c) for c in late if c["environment"] == "live"]
    marked = await _rows(engine, stale)
    assert marked and {a for a, _ in marked} == {mine}
    weekly = "SELECT sum(calls) FROM rollup_group_weekly WHERE account_id = 'acct_mine'"
    incomplete = await _rows(engine, weekly)
    # Read as their days meanwhile: exact, and verify compares them as read.
    await assert_reference(client, key, records, zone, "user", 30, 25)
    await assert_reference(client, key, records, zone, "metadata.feature", 40, 2)
    async with engine.begin() as conn:
        checked = await verify_rollups(conn)
        assert checked["ok"] and checked["stale_blocks"] == len(marked)
    async with engine.begin() as conn:
        checked = await verify_rollups(conn, mine)
        assert checked["ok"] and checked["stale_blocks"] == len(marked)
    async with engine.begin() as conn:
        checked = await verify_rollups(conn, "acct_other")
        assert checked["ok"] and checked["stale_blocks"] == 0
    # Not due yet: a fold leaves them. Quiet for longer than STALE_QUIET_S: the background
    # folder's next fold builds them from their days.
    folder = Folder(engine)
    assert not await folder.anything_to_fold()
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE rollup_stale_blocks"
                f" SET last_at = last_at - interval '{STALE_QUIET_S + 1} s'"
            )
        )
    assert await folder.anything_to_fold()
    await folder.flush()
    assert await _rows(engine, stale) == []
    assert await _rows(engine, weekly) != incomplete
    await assert_reference(client, key, records, zone, "user", 30, 25)
    await assert_reference(client, key, records, zone, "metadata.feature", 40, 2)
    async with engine.begin() as conn:
        checked = await verify_rollups(conn)
        assert checked["ok"] and checked["stale_blocks"] == 0


# Per account, environment and sealed week: its calls (the account rollup's), and the weeks
# that have week rows.
WEEK_CALLS = """
SELECT account_id, environment, (day - extract(isodow FROM day)::int + 1)::text, sum(calls)
FROM rollup_account_daily WHERE day < (SELECT group_weekly_before FROM rollup_watermarks)
GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"""
WEEKS_WITH_ROWS = "SELECT DISTINCT account_id, environment, week::text FROM rollup_group_weekly"


async def _thick_weeks(engine: AsyncEngine, least: int) -> tuple[set[Any], set[Any]]:
    """The sealed weeks with at least `least` calls, and those with week rows."""
    weeks = await _rows(engine, WEEK_CALLS)
    return {w[:3] for w in weeks if w[3] >= least}, set(await _rows(engine, WEEKS_WITH_ROWS))


async def test_thin_weeks_have_no_week_rows_and_are_read_as_their_days(
    client: httpx.AsyncClient, admin_ops: Admin, app: FastAPI, engine: AsyncEngine
) -> None:
    zone, least = "Europe/Berlin", 200
    key, records = await world(
        client, admin_ops, app, engine, zone, seed=11, track=["feature"], least_calls=least
    )
    weeks = await _rows(engine, WEEK_CALLS)
    mine = [w for w in weeks if w[:2] == ("acct_mine", "live")]
    thin = [w for w in mine if w[3] < least]
    assert thin and any(w[3] >= least for w in mine)  # both kinds in the windows read
    thick, with_rows = await _thick_weeks(engine, least)
    assert with_rows == thick
    for group_by, days in (("user", 30), ("metadata.feature", 40), ("user", 7)):
        await assert_reference(client, key, records, zone, group_by, days, 25)
    async with engine.begin() as conn:
        assert (await verify_rollups(conn))["ok"]

    # Late calls make a thin week thick: stale (read as its days) until built, with week rows.
    monday = datetime.fromisoformat(thin[0][2]).replace(tzinfo=ZoneInfo(zone))
    rng = random.Random(12)
    late = tagged(
        rng, random_log(rng, ["acct_mine"], 2 * least, monday, monday + timedelta(days=7)), 400
    )
    await ingest(client, admin_ops, late)
    records += [as_reference(c) for c in late if c["environment"] == "live"]
    stale = await _rows(
        engine, "SELECT account_id, environment, block::text FROM rollup_stale_blocks"
    )
    assert ("acct_mine", "live", thin[0][2]) in stale
    await assert_reference(client, key, records, zone, "user", 40, 25)
    async with engine.connect() as conn:
        assert await settle(conn) == len(stale)
    thick, with_rows = await _thick_weeks(engine, least)
    assert ("acct_mine", "live", thin[0][2]) in with_rows and with_rows == thick
    await assert_reference(client, key, records, zone, "user", 40, 25)
    async with engine.begin() as conn:
        assert (await verify_rollups(conn))["ok"]

    # Rebuilt from the log, and recounted in another zone: week rows for the thick weeks only.
    async with engine.begin() as conn:
        await rebuild_rollups(conn)
    assert await _thick_weeks(engine, least) == (thick, with_rows)
    await change_account(engine, "acct_mine", zone="Pacific/Auckland")
    thick, with_rows = await _thick_weeks(engine, least)
    assert with_rows == thick
    await assert_reference(client, key, records, "Pacific/Auckland", "user", 30, 25)
    async with engine.begin() as conn:
        assert (await verify_rollups(conn))["ok"]


async def _rows(engine: AsyncEngine, sql: str) -> list[tuple[Any, ...]]:
    async with engine.connect() as conn:
        return [tuple(r) for r in await conn.execute(text(sql))]


async def test_the_csv_is_streamed_and_revalidated_by_its_etag(
    client: httpx.AsyncClient,
    admin_ops: Admin,
    app: FastAPI,
    engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(csv_export, "CHUNK_ROWS", 7)  # many chunks from a few hundred groups
    key, _ = await world(client, admin_ops, app, engine, "Asia/Kolkata", seed=6)
    as_csv = await get(client, key, group_by="user", days=40, format="csv")
    assert as_csv.status_code == 200
    rows = list(csv.DictReader(io.StringIO(as_csv.text, newline="")))
    _, groups = await all_pages(client, key, group_by="user", days=40, limit=100)
    assert [r["value"] for r in rows] == ["" if g["value"] is None else g["value"] for g in groups]
    assert [r["total_cost_usd"] for r in rows] == [repr(g["total_cost_usd"]) for g in groups]
    assert len(rows) > 5 * 7
    # The same question at the same data version: a 304. New calls: a new ETag.
    etag = as_csv.headers["etag"]
    again = await client.get(
        "/v1/metrics/breakdown",
        params={"group_by": "user", "days": 40, "format": "csv"},
        headers={**bearer(key), "If-None-Match": etag},
    )
    assert again.status_code == 304 and again.headers["etag"] == etag
    more = random_log(random.Random(7), ["acct_mine"], 5, NOW - timedelta(hours=2), NOW)
    await ingest(client, admin_ops, more)
    fresh = await get(client, key, group_by="user", days=40, format="csv")
    assert fresh.headers["etag"] != etag


async def test_csv_chunks_hold_whole_rows() -> None:
    async def rows() -> Any:
        for i in range(5):
            yield [csv_export.cell(f"=u{i}"), i, 0.5]

    chunks = [c async for c in csv_export.stream(("value", "calls", "cost"), rows())]
    text_ = b"".join(chunks).decode()
    assert text_ == "value,calls,cost\r\n" + "".join(f"'=u{i},{i},0.5\r\n" for i in range(5))
    assert all(c.endswith(b"\r\n") for c in chunks if c)


@pytest.mark.parametrize("group_by", ["user", "metadata.feature"])
async def test_series_with_the_null_group_on_the_page(
    client: httpx.AsyncClient, admin_ops: Admin, app: FastAPI, engine: AsyncEngine, group_by: str
) -> None:
    zone = "America/New_York"
    key, records = await world(client, admin_ops, app, engine, zone, seed=8, track=["feature"])
    end = NOW.astimezone(ZoneInfo(zone)).date()
    response = await get(client, key, group_by=group_by, days=20, limit=20, series="daily")
    assert response.status_code == 200, response.text
    body = response.json()
    expected = reference.breakdown(
        records, group_by=group_by, days=20, end_date=end, zone=zone, series=True
    )
    page = expected["groups"][:20]
    assert None in [g["value"] for g in page]  # the null group, with its days
    assert_percentiles_close(body["groups"], page)
