"""GET /v1/metrics/breakdown (SPEC §10): the window's calls by one dimension, exact, ranked by
cost, in pages.

Served model, served provider and task type come from the model rollup (per day x task x model
x provider). End users come from the call log over the window's instants, less the calls still
queued for the rollups, so that in every snapshot the groups add up to `totals` (the account
rollup's, equal to overview's) exactly. (Per-user rollups, for the speed SPEC asks at tens of
thousands of users, are the rest of issue #16.)

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
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from perf_metrics.errors import InvalidParameter
from perf_metrics.metrics import queries as q
from perf_metrics.metrics.numbers import mean_ms, money, per_call_money, rate, ratio, rnd
from perf_metrics.metrics.query import DayQuery, Grouping

# What a breakdown groups by (metadata.<key>: one of the account's tracked keys, to come).
DIMENSIONS = (*q.MODEL_DIMENSIONS, "user")


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


async def answer(
    conn: AsyncConnection, query: DayQuery, *, everything: bool = False
) -> dict[str, Any]:
    """The page the query asks for; with `everything`, all groups (the CSV export)."""
    g: Grouping | None = query.grouping
    assert g is not None
    window = query.window
    totals = await q.select_account_totals(conn, query)
    window_cost: Decimal = totals.cost_usd
    rows = sorted(
        await q.select_groups(conn, query, g.group_by),
        key=lambda r: _rank(r.value, r.cost_usd, r.calls),
    )
    if g.values is not None:
        asked = set(g.values)
        rows = [r for r in rows if r.value in asked]
    if g.after is not None and not everything:
        cost, calls, value = g.after
        after = _rank(value, Decimal(cost), calls)
        rows = [r for r in rows if _rank(r.value, r.cost_usd, r.calls) > after]
    page = rows if everything else rows[: g.limit]
    has_more = not everything and len(rows) > g.limit
    groups = [_group(r, window_cost) for r in page]
    if g.series and page:
        days: dict[str | None, dict[date, Any]] = defaultdict(dict)
        for r in await q.select_group_days(conn, query, g.group_by, [p.value for p in page]):
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


def _group(r: Any, window_cost: Decimal) -> dict[str, Any]:
    n = r.calls
    return {
        "value": r.value,
        "calls": n,
        "total_cost_usd": money(r.cost_usd),
        "cost_share": rnd(ratio(r.cost_usd, window_cost), 3),  # null when the window cost 0
        "input_tokens": r.input_tokens,
        "output_tokens": r.output_tokens,
        "avg_cost_per_call": per_call_money(r.cost_usd, n),
        "avg_latency_ms": mean_ms(r.latency_sum, n),
        "success_rate": rate(r.successes, n),
        "failure_rate": rate(r.failures, n),
        "quality_score": rnd(ratio(r.quality_sum, r.quality_n), 3),
    }
