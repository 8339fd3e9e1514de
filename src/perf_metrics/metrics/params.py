"""The one parameter layer of the metrics routes: each route's query parameters are declared
once, as what the OpenAPI document shows, and parsed once, by one dependency per window kind.

FastAPI's own `Query(ge=1, le=90)` parameters would validate too, with messages of their own,
so which message a client got depended on which layer refused (`days=0` got FastAPI's,
`days=+7` ours). Here FastAPI validates nothing: the route's declared parameters are its
OpenAPI parameters (`openapi_extra`) and the names `Params` accepts, and `windows.py`'s strict
rules (digits only, one occurrence, no unknown name, nothing empty) give every answer.

What a dependency returns is the route's whole question, a `MetricsQuery`: the key's scope,
the window resolved against the request's clock (`deps.now`, read once), and the filters.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from fastapi import Depends, Request

from perf_metrics.auth import MetricsKeyDep, Principal
from perf_metrics.calls.schema import TASK_TYPES
from perf_metrics.deps import ClockDep
from perf_metrics.errors import InvalidParameter
from perf_metrics.metrics import breakdown
from perf_metrics.metrics.breakdown import DIMENSIONS, METADATA
from perf_metrics.metrics.query import DayQuery, Filters, Grouping, HourQuery, MetricsQuery, Scope
from perf_metrics.metrics.windows import Params, day_window, hour_window
from perf_metrics.zones import Zone


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
        f"Whole days in the window (1-90), calendar days in the account's timezone; default "
        f"{default}.",
        {"type": "integer", "minimum": 1, "maximum": 90, "default": default},
    )


END_DATE = _query(
    "end_date",
    "Last day of the window, YYYY-MM-DD, a date in the account's timezone (`GET /v1/account`), "
    "from 1970-01-01 and not in the future there; default today there.",
    {"type": "string", "format": "date"},
)
TASK_TYPE = _query(
    "task_type", "Only this task type.", {"type": "string", "enum": list(TASK_TYPES)}
)
FORMAT = _query(
    "format",
    "json (default), or csv: the answer as a CSV attachment (RFC 4180, a header row, UTF-8; "
    "a cell beginning with =, +, -, @, tab or CR is prefixed with ').",
    {"type": "string", "enum": ["json", "csv"], "default": "json"},
)
BASELINE_MODEL = _query(
    "baseline_model",
    "The model whose list prices cost_analysis.vs_baseline compares with (each day at the "
    "price in force that day); default gpt-4o. Any model of the price table "
    "(`perf-metrics prices list`); another is a 400.",
    {"type": "string", "default": "gpt-4o", "minLength": 1, "maxLength": 100},
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


def _scope(key: Principal) -> Scope:
    assert key.account_id is not None and key.environment is not None
    return Scope(key.account_id, key.environment)


@dataclass(frozen=True)
class DayWindowParams:
    """`days` (default per route), `end_date`, and optionally `task_type`. `uses_today`: the
    answer depends on the day the request is made (daily's trends leave out an unfinished
    today), so the query carries it; for the others an answer cached yesterday still holds."""

    default_days: int
    task_filter: bool = False
    uses_today: bool = False
    exports: bool = False  # `format=csv` (SPEC §10)
    baseline: bool = False  # `baseline_model` (customer, SPEC §14)

    @property
    def openapi(self) -> list[dict[str, Any]]:
        return [
            _days(self.default_days),
            END_DATE,
            *([TASK_TYPE] if self.task_filter else []),
            *([FORMAT] if self.exports else []),
            *([BASELINE_MODEL] if self.baseline else []),
        ]

    def dependency(self) -> Any:
        names = tuple(p["name"] for p in self.openapi)

        async def parse(request: Request, key: MetricsKeyDep, at: ClockDep) -> DayQuery:
            params = Params(request.query_params, names)
            task = params.choice("task_type", TASK_TYPES) if self.task_filter else None
            scope = _scope(key)
            zone = Zone.named(key.timezone)
            today = zone.today(at)  # "today" and "the future" are judged in the account's zone
            window = day_window(params, self.default_days, today, zone)
            filters = Filters(task_type=task)
            form = (params.choice("format", ("json", "csv")) if self.exports else None) or "json"
            baseline = params.values.get("baseline_model") if self.baseline else None
            if baseline is not None and len(baseline) > 100:
                raise InvalidParameter(
                    "'baseline_model' must be at most 100 characters.", param="baseline_model"
                )
            return MetricsQuery(
                scope,
                window,
                filters,
                today if self.uses_today else None,
                format=form,
                baseline_model=baseline,
            )

        return Depends(parse)


@dataclass(frozen=True)
class HourWindowParams:
    """`hours` and `end_time` (providers)."""

    @property
    def openapi(self) -> list[dict[str, Any]]:
        return [HOURS, END_TIME]

    def dependency(self) -> Any:
        names = tuple(p["name"] for p in self.openapi)

        async def parse(request: Request, key: MetricsKeyDep, at: ClockDep) -> HourQuery:
            window = hour_window(Params(request.query_params, names), at)
            return MetricsQuery(_scope(key), window)

        return Depends(parse)


# --- breakdown (SPEC §10) ---------------------------------------------------------------------

SERIES_LIMIT = 20

GROUP_BY = {
    **_query(
        "group_by",
        "What to group the window's calls by: model (served), provider (served), task_type, "
        "user (the calls' user_id), or metadata.<key> for one of the account's tracked "
        "metadata keys.",
        {
            "type": "string",
            "pattern": r"^(model|provider|task_type|user|metadata\..+)$",
            "examples": ["model", "user", "metadata.feature"],
        },
    ),
    "required": True,
}
VALUE = {
    **_query(
        "value",
        "Only these values of the dimension; repeat for several (value=a&value=b).",
        {"type": "array", "items": {"type": "string", "minLength": 1}},
    ),
    "style": "form",
    "explode": True,
}
LIMIT = _query(
    "limit",
    f"Groups per page (1-100; at most {SERIES_LIMIT} with series=daily); default 20.",
    {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
)
PAGE = _query(
    "page",
    "The `next_page` of the previous page, unchanged, with the same other parameters.",
    {"type": "string", "minLength": 1},
)
SERIES = _query(
    "series",
    "daily: each group also gets `daily`, one entry per local day of the window.",
    {"type": "string", "enum": ["daily"]},
)
BREAKDOWN_FORMAT = _query(
    "format",
    "json (default), or csv: every group (no paging) as a CSV attachment (RFC 4180, a header "
    "row, UTF-8; a cell beginning with =, +, -, @, tab or CR is prefixed with ').",
    {"type": "string", "enum": ["json", "csv"], "default": "json"},
)


@dataclass(frozen=True)
class BreakdownParams:
    """group_by, the window (default 30 days), value, limit, page, series, format."""

    @property
    def openapi(self) -> list[dict[str, Any]]:
        return [GROUP_BY, _days(30), END_DATE, VALUE, LIMIT, PAGE, SERIES, BREAKDOWN_FORMAT]

    def dependency(self) -> Any:
        names = tuple(p["name"] for p in self.openapi)

        async def parse(request: Request, key: MetricsKeyDep, at: ClockDep) -> DayQuery:
            params = Params(request.query_params, names, repeatable=("value",))
            group_by = _group_by(params.values.get("group_by"), key.tracked_metadata_keys)
            scope = _scope(key)
            zone = Zone.named(key.timezone)
            today = zone.today(at)
            window = day_window(params, 30, today, zone)
            series = params.choice("series", ("daily",)) == "daily"
            form = params.choice("format", ("json", "csv")) or "json"
            limit = params.integer("limit", 20, 1, 100)
            if series and limit > SERIES_LIMIT:
                raise InvalidParameter(
                    f"'limit' is at most {SERIES_LIMIT} with series=daily.", param="limit"
                )
            if form == "csv":
                for name in ("page", "series"):
                    if name in params.values:
                        raise InvalidParameter(
                            f"'{name}' does not go with format=csv: the CSV holds every group.",
                            param=name,
                        )
            values = tuple(params.repeated["value"]) or None
            grouping = Grouping(group_by, values, limit, None, series)
            query = MetricsQuery(scope, window, Filters(), format=form, grouping=grouping)
            token = params.values.get("page")
            if token is not None:
                digest, after = breakdown.read_page_token(token)
                if digest != breakdown.question_digest(query):
                    raise InvalidParameter(
                        "'page' belongs to another question: use it with the same group_by, "
                        "days, end_date, value, limit and series as the page it came from.",
                        param="page",
                    )
                query = replace(query, grouping=replace(grouping, after=after))
            return query

        return Depends(parse)


def _group_by(raw: str | None, tracked: tuple[str, ...]) -> str:
    if raw is None:
        raise InvalidParameter(
            f"'group_by' is required: one of {', '.join(DIMENSIONS)}, or metadata.<key>.",
            param="group_by",
        )
    if raw in DIMENSIONS:
        return raw
    key = raw.removeprefix(METADATA)
    if raw.startswith(METADATA) and key:
        if key in tracked:
            return raw
        keys = ", ".join(METADATA + k for k in tracked)
        raise InvalidParameter(
            f"'{key[:64]}' is not a tracked metadata key of this account, which tracks "
            + (f"{keys}." if tracked else "none yet.")
            + " The operator tracks keys with `perf-metrics accounts update ID "
            "--track-metadata KEY,KEY`.",
            param="group_by",
            extra={"tracked_metadata_keys": list(tracked)},
        )
    raise InvalidParameter(
        f"'group_by' must be one of {', '.join(DIMENSIONS)}, or metadata.<key>.",
        param="group_by",
    )
