"""CSV exports (SPEC §10): `format=csv` on daily and on breakdown.

RFC 4180: a header row, comma-separated, CRLF line ends, fields quoted only when they hold a
comma, a quote or a line break (quotes doubled), UTF-8, `.` decimals. Numbers are written as
the JSON answer writes them (the same rounding), an absent value (JSON null) as an empty field.

Spreadsheet formula injection: a cell that begins with `=`, `+`, `-`, `@`, a tab or a carriage
return is prefixed with `'`, so that a spreadsheet shows it as text instead of running it. The
numbers of these exports are never negative, so the guard never touches one; it is for names
that come from the data (models, and the customer's own user ids and tags).
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from typing import Any

MEDIA_TYPE = "text/csv; charset=utf-8"
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

# daily's columns (SPEC §10), in order.
DAILY_COLUMNS = ("date", "total_calls", "total_cost_usd", "avg_latency_ms", "success_rate")


def cell(value: Any) -> str:
    """One field: JSON's spelling of a number, '' for null, text guarded against formulas."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value) if isinstance(value, float) else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    """The whole table as RFC 4180 CSV, UTF-8."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows([cell(v) for v in row] for row in rows)
    return out.getvalue().encode()


# Rows per chunk of a streamed table: a few tens of KB.
CHUNK_ROWS = 500


async def stream(header: Sequence[str], rows: AsyncIterable[Sequence[Any]]) -> AsyncIterator[bytes]:
    """The table as `table` writes it, in chunks of CHUNK_ROWS rows as `rows` come (already
    cells: `rows` applies `cell` where it is needed): memory stays that of one chunk however
    long the table."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    n = 0
    async for row in rows:
        writer.writerow(row)
        n += 1
        if n % CHUNK_ROWS == 0:
            yield out.getvalue().encode()
            out.seek(0)
            out.truncate()
    yield out.getvalue().encode()


def daily(answer: dict[str, Any]) -> bytes:
    """daily's answer as CSV: one row per day of `daily_data`."""
    return table(DAILY_COLUMNS, ([d[c] for c in DAILY_COLUMNS] for d in answer["daily_data"]))


# breakdown's columns: every field of a group but its series.
BREAKDOWN_COLUMNS = (
    "value",
    "calls",
    "total_cost_usd",
    "cost_share",
    "input_tokens",
    "output_tokens",
    "avg_cost_per_call",
    "avg_latency_ms",
    "success_rate",
    "failure_rate",
    "quality_score",
)


def breakdown_row(group: dict[str, Any]) -> list[Any]:
    """A group's row of breakdown's CSV (a null value as an empty field). Only `value` comes
    from the data; the others are counts and non-negative numbers, which the csv module writes
    as `cell` would (str of an int, repr of a float, '' for None), so they skip its checks."""
    return [cell(group["value"]), *(group[c] for c in BREAKDOWN_NUMBERS)]


BREAKDOWN_NUMBERS = BREAKDOWN_COLUMNS[1:]


def breakdown_table(groups: Iterable[dict[str, Any]]) -> bytes:
    """breakdown's groups as CSV, whole (the documentation's example)."""
    return table(BREAKDOWN_COLUMNS, map(breakdown_row, groups))


async def breakdown(groups: AsyncIterable[dict[str, Any]]) -> AsyncIterator[bytes]:
    """breakdown's groups as CSV, streamed: one row per group."""

    async def rows() -> AsyncIterator[list[Any]]:
        async for g in groups:
            yield breakdown_row(g)

    async for chunk in stream(BREAKDOWN_COLUMNS, rows()):
        yield chunk


def attachment(name: str, period: dict[str, Any]) -> str:
    """Content-Disposition of an export: `{name}-{start}-{end}.csv` (the window's local dates)."""
    start, end = (str(period[k])[:10] for k in ("start_date", "end_date"))
    return f'attachment; filename="{name}-{start}-{end}.csv"'
