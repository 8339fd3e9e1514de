"""POST /v1/calls: how the router writes the call log (SPEC §7)."""

from __future__ import annotations

import zlib
from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from perf_metrics.auth import IngestKeyDep
from perf_metrics.calls.schema import CallRecord, parse_json_body, parse_ndjson_lines
from perf_metrics.calls.store import store_calls
from perf_metrics.deps import EngineDep, FolderDep, SettingsDep
from perf_metrics.errors import InvalidJSON, PayloadTooLarge, PerfError, documented_error
from perf_metrics.observability import INGESTED
from perf_metrics.rollups.folder import leave_queued_if_unavailable

router = APIRouter(tags=["ingest"])

JSON_TYPES = {"application/json"}
NDJSON_TYPES = {"application/x-ndjson", "application/jsonl", "application/ndjson"}


class UnsupportedMediaType(PerfError):
    status = 415
    code = "unsupported_media_type"


class IngestResponse(BaseModel):
    received: int = Field(description="Records in the batch.")
    inserted: int = Field(description="Records newly stored.")
    duplicates: int = Field(
        description="Records skipped because their call_id was already stored for that account "
        "(or appeared earlier in the same batch): received - inserted."
    )


async def read_limited_body(request: Request, limit: int) -> bytes:
    """The body, decompressed if sent with `Content-Encoding: gzip`, refusing (413) as soon as
    it passes `limit` bytes, compressed or not: never more than that in memory, whatever a
    small compressed body would expand to."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip"):
        raise UnsupportedMediaType(
            "Send the body uncompressed or with Content-Encoding: gzip.", param="Content-Encoding"
        )
    too_large = PayloadTooLarge(f"The body is larger than {limit} bytes.")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    gunzip = zlib.decompressobj(wbits=31) if encoding == "gzip" else None
    chunks: list[bytes] = []
    received = size = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise too_large
            if gunzip is not None:
                # At most one byte past the limit: output left over means a 413 anyway.
                chunk = gunzip.decompress(chunk, limit + 1 - size)
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
        if gunzip is not None and not gunzip.eof:
            raise InvalidJSON("The gzip body is cut short.", param="Content-Encoding")
        if gunzip is not None and gunzip.unused_data:
            raise InvalidJSON(
                "Bytes follow the end of the gzip stream: send the batch as one gzip member.",
                param="Content-Encoding",
            )
    except zlib.error as exc:
        raise InvalidJSON(f"The body is not valid gzip: {exc}.", param="Content-Encoding") from None
    return b"".join(chunks)


def _request_body() -> dict[str, Any]:
    """The body as OpenAPI shows it; the route reads the raw bytes itself (10 MB cap, NDJSON)."""
    records = {"type": "array", "items": CallRecord.model_json_schema(), "maxItems": 10_000}
    batch = {
        "type": "object",
        "properties": {"calls": records},
        "required": ["calls"],
        "additionalProperties": False,
    }
    return {
        "required": True,
        "description": '`{"calls": [...]}` as application/json, or the records one per line '
        "as application/x-ndjson (shown as an array of lines), optionally with "
        "Content-Encoding: gzip; at most 10,000 records and 10 MB (uncompressed). Rules "
        "across fields (SPEC §2) and the account's existence are checked too: a "
        "record that breaks one is a 400 naming it.",
        "content": {
            "application/json": {"schema": batch},
            "application/x-ndjson": {"schema": records},
        },
    }


@router.post(
    "/v1/calls",
    response_model=IngestResponse,
    summary="Ingest a batch of call records",
    openapi_extra={"requestBody": _request_body()},
    responses={
        400: documented_error("Invalid JSON, invalid records (up to 100 errors), unknown account"),
        401: documented_error("Missing or invalid ingest key", WWW_Authenticate="Bearer"),
        403: documented_error("Not an ingest key"),
        413: documented_error("More than 10,000 records or 10 MB (uncompressed)"),
        415: documented_error(
            "Content-Type is neither application/json nor application/x-ndjson, or "
            "Content-Encoding is neither gzip nor identity"
        ),
        429: documented_error(
            "Rate limit of the ingest key, or of bad keys from one address; see Retry-After",
            Retry_After="Seconds to wait before retrying.",
        ),
        503: documented_error(
            "Database unavailable or too slow; see Retry-After",
            Retry_After="Seconds to wait before retrying.",
        ),
        "default": documented_error("Any other error (500 internal_error), in the same envelope"),
    },
)
async def ingest_calls(
    request: Request,
    key: IngestKeyDep,
    settings: SettingsDep,
    engine: EngineDep,
    folder: FolderDep,
) -> IngestResponse:
    """Store a batch of calls: `{"calls": [...]}` as `application/json`, or one record per line
    as `application/x-ndjson`. All or nothing: one invalid record rejects the batch. A call_id
    already stored for its account is skipped, never overwritten. The answer comes after commit;
    the batch shows in every metric within about a second (SPEC: 5 s).
    """
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in JSON_TYPES | NDJSON_TYPES:
        raise UnsupportedMediaType(
            'Send application/json ({"calls": [...]}) or application/x-ndjson.',
            param="Content-Type",
        )
    body = await read_limited_body(request, settings.max_ingest_bytes)
    too_many = PayloadTooLarge(f"A batch holds at most {settings.max_ingest_records} records.")
    if media in NDJSON_TYPES:
        lines = body.split(b"\n")
        if sum(1 for line in lines if line.strip()) > settings.max_ingest_records:
            raise too_many
        rows = await to_thread.run_sync(parse_ndjson_lines, lines)
    else:
        rows = await to_thread.run_sync(parse_json_body, body)
        if len(rows) > settings.max_ingest_records:
            raise too_many
    # A connection only now, for the write (committed before answering).
    async with engine.connect() as conn:
        inserted = await store_calls(conn, rows)
    if settings.ingest_waits_for_fold:
        # Into the rollups before answering, in a fold shared with the batches committed
        # meanwhile. Otherwise the background folder takes the batch within a second or so.
        await leave_queued_if_unavailable(folder.flush())
    INGESTED.labels("inserted").inc(inserted)
    INGESTED.labels("duplicate").inc(len(rows) - inserted)
    return IngestResponse(received=len(rows), inserted=inserted, duplicates=len(rows) - inserted)
