"""GET /v1/metrics/*: parameters at the edge, one answer module per endpoint below, JSON with
an ETag out. No SQL here: the answers, and the versions that tag them, come from below."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Hashable
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel

from perf_metrics.auth import MetricsKeyDep, charge_metrics_request, refuse_if_tier_spent
from perf_metrics.deps import HistogramCacheDep, ReadSnapshotDep, ResponseCacheDep, if_none_match
from perf_metrics.errors import ErrorResponse, ServiceUnavailable
from perf_metrics.metrics import (
    breakdown,
    csv_export,
    customer,
    daily,
    failures,
    overview,
    performance,
    providers,
    schemas,
)
from perf_metrics.metrics import queries as q
from perf_metrics.metrics.cache import CachedAnswer, ResponseCache
from perf_metrics.metrics.examples import EXAMPLES
from perf_metrics.metrics.params import BreakdownParams, DayWindowParams, HourWindowParams
from perf_metrics.metrics.query import DayQuery, HourQuery
from perf_metrics.metrics.versions import PlatformVersionDep, PricesVersionDep
from perf_metrics.zones import iso_z

router = APIRouter(prefix="/v1/metrics", tags=["metrics"])


def _header(description: str) -> dict[str, Any]:
    return {"description": description, "schema": {"type": "string"}, "required": True}


REQUEST_ID = {"X-Request-ID": _header("The request's id (the error envelope's request_id).")}
CACHING = {
    "ETag": _header("Hash of the body; send it back in If-None-Match to get a 304."),
    "Cache-Control": _header("private, max-age=60"),
}
RETRY_AFTER = {"Retry-After": _header("Seconds to wait before retrying.")}
RATE_LIMIT = {  # absent only when rate limiting is switched off (RATE_LIMIT_ENABLED=false)
    "X-RateLimit-Limit": {
        "description": "Requests a minute the account's tier allows.",
        "schema": {"type": "integer"},
    },
    "X-RateLimit-Remaining": {
        "description": "Requests left in the current window.",
        "schema": {"type": "integer"},
    },
    "X-RateLimit-Reset": {
        "description": "When the window resets (Unix seconds).",
        "schema": {"type": "integer"},
    },
}
ERRORS: dict[int | str, dict[str, Any]] = {
    200: {"headers": {**REQUEST_ID, **CACHING, **RATE_LIMIT}},
    304: {
        "description": "Not modified: If-None-Match matched the current ETag (or was *); no "
        "body. A 304 spends none of the tier's budget (its rate-limit headers show that budget, "
        "untouched); 304s have a budget of their own, 10x the tier's.",
        "headers": {**REQUEST_ID, **CACHING, **RATE_LIMIT},
    },
    400: {
        "model": ErrorResponse,
        "description": "A parameter is invalid, repeated, empty or unknown (error.param names it).",
        "headers": REQUEST_ID,
    },
    401: {
        "model": ErrorResponse,
        "description": "Missing, malformed, unknown or revoked key.",
        "headers": {
            **REQUEST_ID,
            "WWW-Authenticate": _header("Bearer"),
        },
    },
    403: {
        "model": ErrorResponse,
        "description": "Not a customer key (an ingest key).",
        "headers": REQUEST_ID,
    },
    429: {
        "model": ErrorResponse,
        "description": "The account's per-tier rate limit, or the per-address limit on bad keys, "
        "is exceeded; see Retry-After.",
        "headers": {**REQUEST_ID, **RETRY_AFTER, **RATE_LIMIT},
    },
    503: {
        "model": ErrorResponse,
        "description": "Database unavailable or too slow; see Retry-After.",
        "headers": {**REQUEST_ID, **RETRY_AFTER},
    },
    "default": {
        "model": ErrorResponse,
        "description": "Any other error (500 internal_error), in the same envelope.",
        "headers": REQUEST_ID,
    },
}
CACHE_CONTROL = "private, max-age=60"


async def _respond(request: Request, answer: CachedAnswer) -> Response:
    headers = {"ETag": answer.etag, "Cache-Control": CACHE_CONTROL, "Vary": "Authorization"}
    tags = if_none_match(request)
    held = answer.etag in tags  # the client holds this very answer: its 304 is free
    await charge_metrics_request(request, not_modified=held)
    if held or "*" in tags:  # RFC 9110 §13.1.2: * matches any current representation
        return Response(status_code=304, headers=headers)
    if answer.disposition is not None:
        headers["Content-Disposition"] = answer.disposition
    return Response(answer.body, media_type=answer.media_type, headers=headers)


async def _answer(
    request: Request,
    cache: ResponseCache,
    key: Hashable,
    version: Hashable,
    compute: Callable[[], Awaitable[dict[str, Any]]],
    as_of: Callable[[], Awaitable[datetime]],
    export: Callable[[dict[str, Any]], tuple[bytes, str]] | None = None,
) -> Response:
    """The cached answer for `key` if it was computed at `version`, else a fresh one, with
    the `data_as_of` of the data it was computed from (`as_of`, in the same snapshot); written
    as JSON, or by `export` (body, Content-Disposition) as CSV."""
    answer = cache.get(key, version)
    if answer is None:
        await refuse_if_tier_spent(request)  # no work past the tier's limit, conditional or not
        try:
            result = await compute()
            result["data_as_of"] = iso_z(await as_of())
        except TimeoutError:
            raise ServiceUnavailable("The query took too long; retry shortly.") from None
        if export is None:
            body, media_type, disposition = orjson.dumps(result), "application/json", None
        else:
            body, disposition = export(result)
            media_type = csv_export.MEDIA_TYPE
        etag = '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'
        answer = CachedAnswer(version, body, etag, media_type, disposition)
        cache.put(key, answer)
    return await _respond(request, answer)


def _daily_csv(answer: dict[str, Any]) -> tuple[bytes, str]:
    return csv_export.daily(answer), csv_export.attachment("daily", answer["period"])


# What format=csv writes, for the documentation of the endpoints that export.
CSV_EXAMPLES = {
    "daily": csv_export.daily(EXAMPLES["daily"]).decode(),
    "breakdown": csv_export.breakdown_table(EXAMPLES["breakdown"]["groups"]).decode(),
}


async def _streamed_export(
    request: Request, question: Hashable, version: Hashable, name: str, rows: Any
) -> Response:
    """A large export (breakdown's CSV), streamed from the request's snapshot as it is read:
    `rows()` gives the period and the body's chunks. Not kept in the response cache. Its ETag
    names the question and the data version it was read at (the same pair gives the same
    bytes), so a client holding it gets its 304 as cheaply as from any other endpoint."""
    etag = '"' + hashlib.blake2b(repr((question, version)).encode(), digest_size=16).hexdigest()
    etag += '"'
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL, "Vary": "Authorization"}
    tags = if_none_match(request)
    if etag in tags or "*" in tags:
        await charge_metrics_request(request, not_modified=etag in tags)
        return Response(status_code=304, headers=headers)
    await refuse_if_tier_spent(request)
    await charge_metrics_request(request, not_modified=False)
    period, chunks = await rows()
    headers["Content-Disposition"] = csv_export.attachment(name, period)
    return StreamingResponse(chunks, media_type=csv_export.MEDIA_TYPE, headers=headers)


IF_NONE_MATCH = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "description": "ETags of a copy you hold (or *): 304 with no body when one is current, "
    "which does not count against the tier's rate limit.",
    "schema": {"type": "string"},
}


def _doc(
    model: type[BaseModel], params: DayWindowParams | HourWindowParams | BreakdownParams
) -> dict[str, Any]:
    # The query parameters are parsed by `params`' dependency and If-None-Match from the raw
    # headers in `_respond`: both are documented here.
    endpoint = model.__name__.removesuffix("Response").lower()
    content: dict[str, Any] = {"application/json": {"example": EXAMPLES[endpoint]}}
    ok = {**ERRORS[200], "content": content}
    if endpoint in CSV_EXAMPLES:
        content["text/csv"] = {"schema": {"type": "string"}, "example": CSV_EXAMPLES[endpoint]}
        ok["headers"] = {
            **ok.get("headers", {}),
            "Content-Disposition": {
                "description": "With format=csv: attachment; "
                'filename="<endpoint>-<first day>-<last day>.csv".',
                "schema": {"type": "string"},
            },
        }
    return {
        "response_model": model,
        "responses": {**ERRORS, 200: ok},
        "openapi_extra": {"parameters": [*params.openapi, IF_NONE_MATCH]},
    }


OVERVIEW = DayWindowParams(default_days=7)
CUSTOMER = DayWindowParams(default_days=30, baseline=True)
PERFORMANCE = DayWindowParams(default_days=7, task_filter=True)
FAILURES = DayWindowParams(default_days=7)
PROVIDERS = HourWindowParams()
DAILY = DayWindowParams(default_days=30, uses_today=True, exports=True)
OverviewQuery = Annotated[DayQuery, OVERVIEW.dependency()]
CustomerQuery = Annotated[DayQuery, CUSTOMER.dependency()]
PerformanceQuery = Annotated[DayQuery, PERFORMANCE.dependency()]
FailuresQuery = Annotated[DayQuery, FAILURES.dependency()]
ProvidersQuery = Annotated[HourQuery, PROVIDERS.dependency()]
DailyQuery = Annotated[DayQuery, DAILY.dependency()]
BREAKDOWN = BreakdownParams()
BreakdownQuery = Annotated[DayQuery, BREAKDOWN.dependency()]

# Every route: the key (authenticated in the read snapshot, charged to its tier), the query
# its parameters resolve to, the snapshot connection, and the answer cache. An account's
# answer is cached under (endpoint, query), providers' under (endpoint, environment, window),
# and tagged with the versions of the data it was computed from: the account's data version,
# and what else it reads (versions.py).


@router.get(
    "/overview",
    summary="High-level summary of the account's calls",
    **_doc(schemas.OverviewResponse, OVERVIEW),
)
async def get_overview(
    request: Request,
    key: MetricsKeyDep,
    query: OverviewQuery,
    conn: ReadSnapshotDep,
    cache: ResponseCacheDep,
) -> Response:
    """Totals, success and routing rates, per-model and per-task shares over `days` whole days
    of the account's timezone (default 7) ending `end_date`."""
    return await _answer(
        request,
        cache,
        ("overview", query),
        key.data_version,
        lambda: overview.answer(conn, query),
        lambda: q.select_data_as_of(conn, query),
    )


@router.get(
    "/customer",
    summary="Account usage, month-to-date cost, projection, behaviour",
    **_doc(schemas.CustomerResponse, CUSTOMER),
)
async def get_customer(
    request: Request,
    key: MetricsKeyDep,
    query: CustomerQuery,
    conn: ReadSnapshotDep,
    cache: ResponseCacheDep,
    prices: PricesVersionDep,
) -> Response:
    """Usage over the window (default 30 days), calendar-month cost figures relative to
    `end_date`, savings against gpt-4o list prices, preferences and behaviour."""
    return await _answer(
        request,
        cache,
        ("customer", query),
        (key.data_version, key.settings_changed_at, prices),
        lambda: customer.answer(conn, query),
        lambda: q.select_data_as_of(conn, query),
    )


@router.get(
    "/performance",
    summary="Per task type, per model: success, cost, latency, quality",
    **_doc(schemas.PerformanceResponse, PERFORMANCE),
)
async def get_performance(
    request: Request,
    key: MetricsKeyDep,
    query: PerformanceQuery,
    conn: ReadSnapshotDep,
    cache: ResponseCacheDep,
    histograms: HistogramCacheDep,
) -> Response:
    """Per task type and served model over the window (default 7 days), the optimal model per
    task and recommendations to switch."""
    return await _answer(
        request,
        cache,
        ("performance", query),
        key.data_version,
        lambda: performance.answer(conn, query, histograms),
        lambda: q.select_data_as_of(conn, query),
    )


@router.get(
    "/failures",
    summary="Failure modes, recovery, per-model failure rates",
    **_doc(schemas.FailuresResponse, FAILURES),
)
async def get_failures(
    request: Request,
    key: MetricsKeyDep,
    query: FailuresQuery,
    conn: ReadSnapshotDep,
    cache: ResponseCacheDep,
) -> Response:
    """Failures over the window (default 7 days): by mode, by first-choice model, and
    mitigations derived from the data."""
    return await _answer(
        request,
        cache,
        ("failures", query),
        key.data_version,
        lambda: failures.answer(conn, query),
        lambda: q.select_data_as_of(conn, query),
    )


@router.get(
    "/providers",
    summary="Provider health: uptime, latency percentiles, errors",
    **_doc(schemas.ProvidersResponse, PROVIDERS),
)
async def get_providers(
    request: Request,
    query: ProvidersQuery,
    conn: ReadSnapshotDep,
    cache: ResponseCacheDep,
    histograms: HistogramCacheDep,
    platform: PlatformVersionDep,
) -> Response:
    """Platform-wide provider health over `[end_time - hours, end_time)` for the key's
    environment (all accounts)."""
    # Every account's calls: one answer per environment and window, whoever asks.
    return await _answer(
        request,
        cache,
        ("providers", query.scope.environment, query.window),
        platform,
        lambda: providers.answer(conn, query, histograms),
        lambda: q.select_data_as_of(conn, query, platform=True),
    )


@router.get(
    "/daily",
    summary="One row per day, for charts and reports",
    **_doc(schemas.DailyResponse, DAILY),
)
async def get_daily(
    request: Request,
    key: MetricsKeyDep,
    query: DailyQuery,
    conn: ReadSnapshotDep,
    cache: ResponseCacheDep,
) -> Response:
    """One entry per day of the window (default 30; local dates of the account's timezone),
    empty days included, and trends over the complete days. `format=csv`: the days as a CSV
    attachment, columns date, total_calls, total_cost_usd, avg_latency_ms, success_rate."""
    return await _answer(
        request,
        cache,
        ("daily", query),
        key.data_version,
        lambda: daily.answer(conn, query),
        lambda: q.select_data_as_of(conn, query),
        _daily_csv if query.format == "csv" else None,
    )


@router.get(
    "/breakdown",
    summary="The window's calls by model, provider, task type or end user",
    **_doc(schemas.BreakdownResponse, BREAKDOWN),
)
async def get_breakdown(
    request: Request,
    key: MetricsKeyDep,
    query: BreakdownQuery,
    conn: ReadSnapshotDep,
    cache: ResponseCacheDep,
) -> Response:
    """Every call of the window (default 30 days of the account's timezone) in exactly one
    group of `group_by`, ranked by exact cost, `limit` groups a page, with `totals` equal to
    overview's.

    **Pages.** `next_page` holds the last group of its page; pass it as `page` with the same
    other parameters (anything else is a 400). A group's cost and calls only grow as calls
    arrive, so a group already shown only moves up the ranking and never comes again, and no
    group is skipped while nothing changes. While calls arrive, a group not yet shown whose
    cost grows past the last group of the page you hold moves onto the pages already read,
    so a later page does not show it; `totals` and `has_more` are those of the moment each
    page is computed. A window that ended before today pages exactly. `format=csv` gives
    every group at once, from one snapshot."""
    if query.format == "csv":

        async def rows() -> tuple[dict[str, Any], Any]:
            period, groups = await breakdown.export(conn, query)
            return period, csv_export.breakdown(groups)

        return await _streamed_export(
            request, ("breakdown", query), key.data_version, "breakdown", rows
        )
    return await _answer(
        request,
        cache,
        ("breakdown", query),
        key.data_version,
        lambda: breakdown.answer(conn, query),
        lambda: q.select_data_as_of(conn, query),
    )
