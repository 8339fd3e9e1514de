"""The one parameter layer of the metrics routes: each route's query parameters are declared
once, as what the OpenAPI document shows, and parsed once, by one dependency per window kind.

FastAPI's own `Query(ge=1, le=90)` parameters would validate too, with messages of their own,
so which message a client got depended on which layer refused (`days=0` got FastAPI's,
`days=+7` ours). Here FastAPI validates nothing: the route's declared parameters are its
OpenAPI parameters (`openapi_extra`) and the names `Params` accepts, and `windows.py`'s strict
rules (digits only, one occurrence, no unknown name, nothing empty) give every answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from fastapi import Depends, Request

from perf_metrics.calls.schema import TASK_TYPES
from perf_metrics.metrics.windows import DayWindow, HourWindow, Params, day_window, hour_window


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


def _days(default: int) -> dict[str, Any]:
    return _query(
        "days",
        f"Whole UTC days in the window (1-90); default {default}.",
        {"type": "integer", "minimum": 1, "maximum": 90, "default": default},
    )


END_DATE = _query(
    "end_date",
    "Last day of the window, YYYY-MM-DD (UTC), from 1970-01-01 and not in the future; default "
    "today.",
    {"type": "string", "format": "date"},
)
TASK_TYPE = _query(
    "task_type", "Only this task type.", {"type": "string", "enum": list(TASK_TYPES)}
)
HOURS = _query(
    "hours",
    "Hours in the window (1-168); default 24.",
    {"type": "integer", "minimum": 1, "maximum": 168, "default": 24},
)
END_TIME = _query(
    "end_time",
    "RFC 3339 end of the window (exclusive), from 1970-01-01T00:00:00Z and not in the future, "
    "truncated to 5 minutes; default now.",
    {"type": "string", "format": "date-time"},
)


def now(request: Request) -> datetime:
    """The request's clock: tests set `app.state.clock`."""
    clock: Callable[[], datetime] | None = getattr(request.app.state, "clock", None)
    return clock() if clock else datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class DayQuery:
    """A days-window request: its window, the "today" it was computed from (one reading of
    the clock, so a request crossing midnight stays consistent), and `task_type` where the
    route takes one."""

    window: DayWindow
    today: date
    task_type: str | None = None


@dataclass(frozen=True)
class DayWindowParams:
    """`days` (default per route), `end_date`, and optionally `task_type`."""

    default_days: int
    task_filter: bool = False

    @property
    def openapi(self) -> list[dict[str, Any]]:
        return [_days(self.default_days), END_DATE, *([TASK_TYPE] if self.task_filter else [])]

    def dependency(self) -> Any:
        names = tuple(p["name"] for p in self.openapi)

        def parse(request: Request) -> DayQuery:
            params = Params(request.query_params, names)
            task = params.choice("task_type", TASK_TYPES) if self.task_filter else None
            today = now(request).date()
            return DayQuery(day_window(params, self.default_days, today), today, task)

        return Depends(parse)


@dataclass(frozen=True)
class HourWindowParams:
    """`hours` and `end_time` (providers)."""

    @property
    def openapi(self) -> list[dict[str, Any]]:
        return [HOURS, END_TIME]

    def dependency(self) -> Any:
        names = tuple(p["name"] for p in self.openapi)

        def parse(request: Request) -> HourWindow:
            return hour_window(Params(request.query_params, names), now(request))

        return Depends(parse)
