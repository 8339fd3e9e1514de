"""GET /v1/metrics/breakdown (SPEC §10): the window's calls by one dimension, exact, ranked by
cost, in pages.

Served model, served provider and task type come from the model rollup (per day x task x model
x provider): a few hundred rows a window, summed and ranked whole. End users and tracked
metadata keys come from the group rollups (docs/rollups.md): per day, and per week for the
weeks that have ended, so that a window is its whole sealed weeks plus at most a dozen days,
each a *block* (a week that late calls have made stale is read as its days, until the fold
builds it afresh; so is a thin week, whose calls are too few for week rows). An account can
have tens of thousands of users, so a page is not found by summing every user of the window:
each block's `top` dearest groups are read from its index by cost. A group in no block's top
has cost at most tau, the sum of each full block's `top`-th cost; a candidate (a group in some
block's top) costs between what its tops show and that plus the `top`-th cost of each full
block it is missing from. The candidates that can still make
the page are summed exactly, and once the group after the page costs more than tau and than
every other candidate's bound, the page is the exact ranking (a threshold algorithm, Fagin's
TA in the form of Cao and Wang's TPUT). Otherwise `top` grows, and past TOP_MOST every group
is summed. Either way the answer is exact; only its cost varies. Every read is in the
request's snapshot, with `totals` from the account rollup: in each snapshot the groups add up
to `totals` exactly (each fold writes both in one transaction).

Paging is keyset paging over the ranking (exact cost descending, calls descending, value
ascending, null after the names). A `next_page` token holds the last group of its page and a
digest of the question; a group's cost and calls only grow as calls arrive, so a group already
shown can only move up the ranking, past the token, and never comes again. What can happen
while calls arrive: a group not yet shown whose cost grows past the token's is not on a later
page (it moved onto pages already read), and `totals` and `has_more` are those of the moment
each page is computed. A window that ended before today (and receives no late calls) pages
exactly.
"""

from __future__ import annotations

import base64
import hashlib
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from perf_metrics.errors import InvalidParameter
from perf_metrics.metrics import queries as q
from perf_metrics.metrics.numbers import mean_ms, money, per_call_money, rate, rnd_ratio
from perf_metrics.metrics.query import DayQuery, Grouping
from perf_metrics.metrics.windows import DayWindow
from perf_metrics.rollups.tables import NO_VALUE

# What a breakdown groups by, besides metadata.<key> for one of the account's tracked keys.
DIMENSIONS = (*q.MODEL_DIMENSIONS, "user")
METADATA = "metadata."

# Each block's dearest groups read first, and the most before every group is summed instead.
TOP_FIRST = 50
TOP_GROWTH = 4
TOP_MOST = 6400
# Rows a CSV export takes from its cursor at a time.
EXPORT_ROWS = 500


def _rank(value: str | None, cost: Decimal, calls: int) -> tuple[Decimal, int, bool, str]:
    """Sort key: exact cost descending, calls descending, value ascending, null last."""
    return (-cost, -calls, value is None, value or "")


# --- page tokens ------------------------------------------------------------------------------


def question_digest(query: DayQuery) -> str:
    """What a page token must be used with: the scope, window, zone and grouping but its
    position (the same question asked again, page after page)."""
    g = query.grouping
    assert g is not None
    asked = [
        query.scope.account_id,
        query.scope.environment,
        query.window.start.isoformat(),
        query.window.end.isoformat(),
        query.window.zone.name,
        g.group_by,
        list(g.values) if g.values is not None else None,
        g.limit,
        g.series,
    ]
    return hashlib.blake2b(orjson.dumps(asked), digest_size=12).hexdigest()


def page_token(digest: str, last: tuple[Decimal, int, str | None]) -> str:
    cost, calls, value = last
    payload = orjson.dumps({"q": digest, "c": str(cost), "n": calls, "v": value})
    check = hashlib.blake2b(payload, digest_size=6).digest()
    return base64.urlsafe_b64encode(payload + check).decode().rstrip("=")


def read_page_token(token: str) -> tuple[str, tuple[str, int, str | None]]:
    """The digest and position a token holds; InvalidParameter for anything else (a token
    edited by hand fails its check)."""
    invalid = InvalidParameter(
        "'page' is not a page token of this API: pass the `next_page` of the previous page "
        "unchanged.",
        param="page",
    )
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload, check = raw[:-6], raw[-6:]
        if hashlib.blake2b(payload, digest_size=6).digest() != check:
            raise invalid
        data = orjson.loads(payload)
        Decimal(data["c"])
        position = (str(data["c"]), int(data["n"]), data["v"])
        if not isinstance(data["q"], str) or not (
            position[2] is None or isinstance(position[2], str)
        ):
            raise invalid
    except (ValueError, KeyError, TypeError, InvalidOperation, orjson.JSONDecodeError):
        raise invalid from None
    return data["q"], position


# --- the answer -------------------------------------------------------------------------------


async def answer(conn: AsyncConnection, query: DayQuery) -> dict[str, Any]:
    """The page the query asks for."""
    g: Grouping | None = query.grouping
    assert g is not None
    window = query.window
    totals = await q.select_account_totals(conn, query)
    window_cost: Decimal = totals.cost_usd
    if g.group_by in q.MODEL_DIMENSIONS:
        rows = await _model_groups(conn, query)
    else:
        rows = await _rollup_groups(conn, query)
    page = rows[: g.limit]
    has_more = len(rows) > g.limit
    groups = [_group(r, window_cost) for r in page]
    if g.series and page:
        days: dict[str | None, dict[date, Any]] = defaultdict(dict)
        for r in await _group_days(conn, query, [p.value for p in page]):
            days[r.value][r.day] = r
        for entry, r in zip(groups, page, strict=True):
            entry["daily"] = [
                {
                    "date": d.isoformat(),
                    "calls": days[r.value][d].calls if d in days[r.value] else 0,
                    "total_cost_usd": money(days[r.value][d].cost_usd)
                    if d in days[r.value]
                    else 0.0,
                }
                for d in window.dates()
            ]
    last = page[-1] if page else None
    return {
        "period": window.period(),
        "group_by": g.group_by,
        "totals": {
            "calls": totals.calls,
            "total_cost_usd": money(window_cost),
            "input_tokens": totals.input_tokens,
            "output_tokens": totals.output_tokens,
        },
        "groups": groups,
        "has_more": has_more,
        "next_page": page_token(question_digest(query), (last.cost_usd, last.calls, last.value))
        if has_more and last is not None
        else None,
    }


class Group(NamedTuple):
    """A group's sums over the window (q.GROUP_MEASURES), `value` None for the null group. A
    tuple: a CSV export makes tens of thousands (a frozen dataclass took 4 µs each)."""

    value: str | None
    calls: int
    successes: int
    cost_usd: Decimal
    latency_sum: int
    quality_sum: Decimal
    quality_n: int
    input_tokens: int
    output_tokens: int
    failures: int

    @classmethod
    def of(cls, row: Any) -> Group:
        """From a row of `value` and q.GROUP_MEASURES, in that order."""
        value, *measures = row
        return cls(None if value == NO_VALUE else value, *measures)

    @property
    def rank(self) -> tuple[Decimal, int, bool, str]:
        return _rank(self.value, self.cost_usd, self.calls)


assert Group._fields == ("value", *q.GROUP_MEASURES)


def _ranked(groups: Any, g: Grouping) -> list[Group]:
    """Groups in rank order, of the values asked for, after the page token's group."""
    ranked = sorted((Group.of(r) for r in groups), key=lambda x: x.rank)
    if g.values is not None:
        asked = set(g.values)
        ranked = [x for x in ranked if x.value in asked]
    if g.after is not None:
        cost, calls, value = g.after
        after = _rank(value, Decimal(cost), calls)
        ranked = [x for x in ranked if x.rank > after]
    return ranked


async def _model_groups(conn: AsyncConnection, query: DayQuery) -> list[Group]:
    """Served model, provider or task type: every group of the window, from the model rollup."""
    g = query.grouping
    assert g is not None
    return _ranked(await q.select_groups(conn, query, g.group_by), g)


@dataclass(frozen=True)
class Blocks:
    """A window as the group rollups hold it: the Mondays of its whole weeks that have week
    rows (before the mark, neither stale nor thin), and its other days."""

    weeks: list[date]
    days: list[date]
    as_days: list[date]  # the stale and thin weeks' Mondays (their days are among `days`)

    @classmethod
    def of(cls, window: DayWindow, weeks_before: date, as_days: list[date]) -> Blocks:
        weeks: list[date] = []
        days: list[date] = []
        for day in window.dates():
            monday = day - timedelta(days=day.weekday())
            whole = monday >= window.start and monday + timedelta(days=6) <= window.end
            if whole and monday < weeks_before and monday not in as_days:
                if monday == day:
                    weeks.append(monday)
            else:
                days.append(day)
        return cls(weeks, days, as_days)


async def _group_binds(conn: AsyncConnection, query: DayQuery) -> dict[str, Any]:
    """The binds of the group rollups' reads: the scope, dimension and blocks."""
    g = query.grouping
    assert g is not None
    await conn.execute(q.GROUP_READS)
    scope = {"account_id": query.scope.account_id, "environment": query.scope.environment}
    window = {"first_day": query.window.start, "last_day": query.window.end}
    marks = (await conn.execute(q.GROUP_WEEKS, {**scope, **window})).one()
    blocks = Blocks.of(query.window, marks.before, [*marks.stale, *marks.thin])
    return {
        **scope,
        "dimension": g.group_by,  # as the group rollups name it
        "weeks": blocks.weeks,
        "weeks_as_days": blocks.as_days,
        # The same weeks as a range (an empty one when there are none).
        "first_week": blocks.weeks[0] if blocks.weeks else date.max,
        "last_week": blocks.weeks[-1] if blocks.weeks else date.min,
        "days": blocks.days,
    }


async def _rollup_groups(conn: AsyncConnection, query: DayQuery) -> list[Group]:
    """End users or a tracked metadata key: the page's groups (and the next one, for
    `has_more`) from the group rollups, exact (see the module's text)."""
    g = query.grouping
    assert g is not None
    binds = await _group_binds(conn, query)
    if g.values is not None:
        asked = list(g.values)
        return _ranked(await conn.execute(q.GROUPS_OF_VALUES, {**binds, "values": asked}), g)
    wanted = g.limit + 1  # the page and the group after it (has_more)
    # Groups that cost more than the token's certainly come before it (earlier pages).
    ceiling = None if g.after is None else Decimal(g.after[0])
    top = TOP_FIRST
    while top <= TOP_MOST:
        blocks: dict[tuple[str, date], list[tuple[str, Decimal]]] = defaultdict(list)
        for r in await conn.execute(q.GROUP_TOPS, {**binds, "top": top}):
            blocks[(r.kind, r.block)].append((r.value, r.cost_usd))
        # A block that gave `top` rows may hold more, each costing at most its last; one that
        # gave fewer gave them all. A group in no block's top costs at most tau.
        least = {b: rows[-1][1] for b, rows in blocks.items() if len(rows) == top}
        tau = sum(least.values(), Decimal(0))
        if not least:  # every group of the window is a candidate
            values = sorted({v for rows in blocks.values() for v, _ in rows})
            return _ranked(await conn.execute(q.GROUPS_OF_VALUES, {**binds, "values": values}), g)
        # Each candidate's cost lies between what its tops show (low) and that plus the last
        # cost of every full block whose top it is not in (high).
        low: dict[str, Decimal] = defaultdict(Decimal)
        shown: dict[str, Decimal] = defaultdict(Decimal)
        for b, rows in blocks.items():
            for value, cost in rows:
                low[value] += cost
                shown[value] += least.get(b, Decimal(0))
        high = {v: low[v] + tau - shown[v] for v in low}
        # Sum exactly only the candidates that can reach the `wanted`-th highest low cost,
        # more as long as some of those summed turn out to rank before the token.
        open_ = [v for v in low if ceiling is None or low[v] <= ceiling]
        open_.sort(key=lambda v: low[v], reverse=True)
        found: dict[str, Any] = {}
        reach = wanted
        while True:
            cut = low[open_[reach - 1]] if len(open_) >= reach else Decimal(0)
            more = [v for v in open_ if high[v] >= cut and v not in found]
            if more:
                for row in await conn.execute(q.GROUPS_OF_VALUES, {**binds, "values": more}):
                    found[row.value] = row
            ranked = _ranked(found.values(), g)
            bound = max([tau, *(high[v] for v in open_ if v not in found)])
            if len(ranked) >= wanted and ranked[wanted - 1].cost_usd > bound:
                return ranked[:wanted]  # every other group costs at most `bound`: below these
            if len(ranked) >= wanted or reach >= len(open_):
                break  # the tops are too shallow to prove it
            reach += wanted - len(ranked)
        top *= TOP_GROWTH
    return _ranked(await conn.execute(q.ALL_GROUPS, binds), g)


async def export(
    conn: AsyncConnection, query: DayQuery
) -> tuple[dict[str, Any], AsyncIterator[dict[str, Any]]]:
    """The window's period, and every group of the answer in rank order as they are read
    (`format=csv`: a large account's users are streamed from a cursor, never all in memory)."""
    g = query.grouping
    assert g is not None
    totals = await q.select_account_totals(conn, query)
    window_cost: Decimal = totals.cost_usd

    async def groups() -> AsyncIterator[dict[str, Any]]:
        if g.group_by in q.MODEL_DIMENSIONS or g.values is not None:
            small = (
                await _model_groups(conn, query)
                if g.group_by in q.MODEL_DIMENSIONS
                else await _rollup_groups(conn, query)
            )
            for group in small:
                yield _group(group, window_cost)
            return
        rows = await conn.stream(q.ALL_GROUPS, await _group_binds(conn, query))
        async for part in rows.partitions(EXPORT_ROWS):  # a row at a time costs a greenlet switch
            for row in part:
                yield _group(Group.of(row), window_cost)

    return query.window.period(), groups()


async def _group_days(
    conn: AsyncConnection, query: DayQuery, values: list[str | None]
) -> list[Any]:
    """Per (value, local day) of the page's values: calls and cost."""
    g = query.grouping
    assert g is not None
    if g.group_by in q.MODEL_DIMENSIONS:
        return list(await q.select_group_days(conn, query, g.group_by, values))
    binds = {
        "account_id": query.scope.account_id,
        "environment": query.scope.environment,
        "dimension": g.group_by,  # as the group rollups name it
        "days": list(query.window.dates()),
        "values": [NO_VALUE if v is None else v for v in values],
    }
    return [
        DayOfGroup(None if r.value == NO_VALUE else r.value, r.day, r.calls, r.cost_usd)
        for r in await conn.execute(q.GROUP_VALUE_DAYS, binds)
    ]


@dataclass(frozen=True)
class DayOfGroup:
    """A group's calls and cost on one day of the window (its `daily` series)."""

    value: str | None
    day: date
    calls: int
    cost_usd: Decimal


def _group(r: Any, window_cost: Decimal) -> dict[str, Any]:
    n = r.calls
    return {
        "value": r.value,
        "calls": n,
        "total_cost_usd": money(r.cost_usd),
        "cost_share": rnd_ratio(r.cost_usd, window_cost, 3),  # null when the window cost 0
        "input_tokens": r.input_tokens,
        "output_tokens": r.output_tokens,
        "avg_cost_per_call": per_call_money(r.cost_usd, n),
        "avg_latency_ms": mean_ms(r.latency_sum, n),
        "success_rate": rate(r.successes, n),
        "failure_rate": rate(r.failures, n),
        "quality_score": rnd_ratio(r.quality_sum, r.quality_n, 3),
    }
