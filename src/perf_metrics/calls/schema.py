"""The call record (SPEC §2): field types and ranges by pydantic, consistency rules in Python.

`parse_batch` turns a JSON body or NDJSON lines into validated rows ready for COPY, or raises
`InvalidCallRecord` listing up to 100 `{index, field, message}` errors. Nothing is written
before the whole batch is valid.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal, get_args

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)

from perf_metrics.errors import InvalidCallRecord, InvalidJSON

MAX_ERRORS = 100
FUTURE_TOLERANCE = timedelta(minutes=5)
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)  # older is a unit mistake (and overflows at year 1)
INT32 = 2**31 - 1
# A billion tokens in one call is far past any model's context; the cap keeps every rollup sum
# (bigint) safe for billions of calls per account and day.
MAX_TOKENS = 1_000_000_000
# NUMERIC(20, 12) holds up to 10^8; a single LLM call costing more is a unit mistake.
MAX_COST_USD = 1_000_000.0

TaskType = Literal["extraction", "classification", "summarization", "reasoning", "code", "writing"]
FailureMode = Literal[
    "format_violation",
    "refusal",
    "hallucination",
    "incomplete",
    "reasoning_error",
    "provider_error",
    "timeout",
    "rate_limited",
]
TASK_TYPES: tuple[str, ...] = get_args(TaskType)
FAILURE_MODES: tuple[str, ...] = get_args(FailureMode)  # answer-quality first, then provider
PROVIDER_SIDE_MODES = ("provider_error", "timeout", "rate_limited")
CallId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
Model = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Provider = Annotated[str, StringConstraints(min_length=1, max_length=50)]
Unit = Annotated[float, Field(ge=0, le=1)]
MetaKey = Annotated[str, StringConstraints(min_length=1, max_length=64)]
MetaValue = Annotated[str, StringConstraints(max_length=256)]


class CallRecord(BaseModel):
    """One call as the router logs it. Types are strict: `"5"` is not 5, `5.0` is not an int."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    call_id: CallId
    account_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    environment: Literal["live", "test"] = "live"
    api_key_id: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    created_at: datetime
    task_type: TaskType
    complexity_score: Unit | None = None
    model: Model
    provider: Provider
    initial_model: Model | None = None
    initial_provider: Provider | None = None
    input_tokens: Annotated[int, Field(ge=0, le=MAX_TOKENS)]
    output_tokens: Annotated[int, Field(ge=0, le=MAX_TOKENS)]
    cost_usd: Annotated[float, Field(ge=0, le=MAX_COST_USD)]
    latency_ms: Annotated[int, Field(ge=0, le=INT32)]
    status: Literal["success", "error"]
    failure_mode: FailureMode | None = None
    failure_trigger: Annotated[str, StringConstraints(max_length=100)] | None = None
    recovery: Literal["retry", "fallback"] | None = None
    retry_count: Annotated[int, Field(ge=0, le=INT32)] = 0
    fallback_used: bool = False
    quality_score: Unit | None = None
    message_count: Annotated[int, Field(ge=1, le=INT32)] | None = None
    max_cost_per_call: Annotated[float, Field(ge=0, le=MAX_COST_USD)] | None = None
    cost_ceiling_hit: bool = False
    user_id: Annotated[str, StringConstraints(max_length=128)] | None = None
    metadata: Annotated[dict[MetaKey, MetaValue], Field(max_length=16)] | None = None


class CallBatch(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    calls: list[CallRecord]


# Column order of the rows handed to COPY (and of `calls` in the migration, minus ingested_at).
COLUMNS = (
    "account_id",
    "call_id",
    "environment",
    "api_key_id",
    "created_at",
    "task_type",
    "complexity_score",
    "model",
    "provider",
    "initial_model",
    "initial_provider",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "latency_ms",
    "status",
    "failure_mode",
    "failure_trigger",
    "recovery",
    "retry_count",
    "fallback_used",
    "quality_score",
    "message_count",
    "max_cost_per_call",
    "cost_ceiling_hit",
    "user_id",
    "metadata",
)
_STRING_FIELDS = (
    "call_id",
    "account_id",
    "api_key_id",
    "model",
    "provider",
    "initial_model",
    "initial_provider",
    "failure_trigger",
    "user_id",
)


def consistency_errors(r: CallRecord, now: datetime, may_have_nul: bool) -> list[tuple[str, str]]:
    """The SPEC §2 rules across fields, each error naming the rule it breaks.

    JSON can only carry a NUL inside a string as the escape `\\u0000`, so callers scan the raw
    bytes once and pass `may_have_nul=False` when it is absent.
    """
    errors: list[tuple[str, str]] = []
    for name in _STRING_FIELDS if may_have_nul else ():
        value = getattr(r, name)
        if value is not None and "\x00" in value:
            errors.append((name, "strings must not contain NUL characters"))
    if (
        may_have_nul
        and r.metadata
        and any("\x00" in k or "\x00" in v for k, v in r.metadata.items())
    ):
        errors.append(("metadata", "strings must not contain NUL characters"))
    if r.created_at.tzinfo is None:
        errors.append(("created_at", "must be an RFC 3339 timestamp with a UTC offset"))
    elif r.created_at < EARLIEST:
        errors.append(("created_at", "must be after 1970-01-01T00:00:00Z"))
    elif r.created_at > now + FUTURE_TOLERANCE:
        errors.append(("created_at", "must be at most 5 minutes in the future"))
    if r.status == "error":
        if r.failure_mode is None:
            errors.append(("failure_mode", "status error requires a failure_mode"))
        if r.recovery is not None:
            errors.append(("recovery", "status error requires recovery null"))
    if r.failure_mode is None:
        if r.recovery is not None:
            errors.append(("recovery", "failure_mode null requires recovery null"))
        if r.retry_count != 0:
            errors.append(("retry_count", "failure_mode null requires retry_count 0"))
        if r.fallback_used:
            errors.append(("fallback_used", "failure_mode null requires fallback_used false"))
    elif r.status == "success" and r.recovery is None:
        errors.append(("recovery", "failure_mode set with status success requires a recovery"))
    if r.recovery == "retry" and r.retry_count < 1:
        errors.append(("retry_count", "recovery retry requires retry_count >= 1"))
    if r.recovery == "fallback" and not r.fallback_used:
        errors.append(("fallback_used", "recovery fallback requires fallback_used true"))
    if r.fallback_used and (r.initial_model is None or r.initial_model == r.model):
        errors.append(
            ("initial_model", "fallback_used requires initial_model different from model")
        )
    return errors


def to_row(r: CallRecord) -> tuple[Any, ...]:
    return (
        r.account_id,
        r.call_id,
        r.environment,
        r.api_key_id,
        r.created_at,  # aware; asyncpg converts to UTC
        r.task_type,
        r.complexity_score,
        r.model,
        r.provider,
        r.initial_model,
        r.initial_provider,
        r.input_tokens,
        r.output_tokens,
        # repr() is the shortest string that round-trips: the number the client wrote.
        Decimal(repr(r.cost_usd)),
        r.latency_ms,
        r.status,
        r.failure_mode,
        r.failure_trigger,
        r.recovery,
        r.retry_count,
        r.fallback_used,
        r.quality_score,
        r.message_count,
        None if r.max_cost_per_call is None else Decimal(repr(r.max_cost_per_call)),
        r.cost_ceiling_hit,
        r.user_id,
        # The jsonb codec of SQLAlchemy's asyncpg dialect takes text.
        None if r.metadata is None else orjson.dumps(r.metadata).decode(),
    )


class ErrorList:
    """Collects `{index, field, message}` errors, at most MAX_ERRORS of them."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.total = 0

    def add(self, index: int, field: str | None, message: str) -> None:
        self.total += 1
        if len(self.items) < MAX_ERRORS:
            self.items.append({"index": index, "field": field, "message": message})

    def add_validation(self, index: int, exc: ValidationError, prefix: int = 0) -> None:
        for err in exc.errors(include_input=False, include_url=False):
            self.add(index, _field(tuple(err["loc"][prefix:])), _message(err))

    def raise_if_any(self) -> None:
        if self.total:
            more = f" (showing the first {MAX_ERRORS})" if self.total > MAX_ERRORS else ""
            raise InvalidCallRecord(
                f"{self.total} invalid field(s) in the batch{more}; nothing was stored.",
                param="calls",
                extra={"errors": self.items},
            )


def _field(loc: tuple[Any, ...]) -> str | None:
    """The field an error is about; never a metadata key (that would echo the input)."""
    if loc and loc[0] == "metadata":
        return "metadata"
    return ".".join(str(p) for p in loc) or None


def _message(err: Any) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown field"
    if err["type"] == "missing":
        return "required field is missing"
    return str(err["msg"])


NUL_ESCAPE = b"\\u0000"


def _valid_rows(
    indexed: list[tuple[int, CallRecord]], errors: ErrorList, may_have_nul: bool
) -> list[tuple[Any, ...]]:
    now = datetime.now(UTC)
    rows = []
    for index, record in indexed:
        problems = consistency_errors(record, now, may_have_nul)
        for field, message in problems:
            errors.add(index, field, message)
        if not problems:
            rows.append(to_row(record))
    return rows


def parse_json_body(body: bytes) -> list[tuple[Any, ...]]:
    """`{"calls": [...]}` -> rows; raises InvalidJSON / InvalidCallRecord."""
    errors = ErrorList()
    try:
        batch = CallBatch.model_validate_json(body)
    except ValidationError as exc:
        structural = [e for e in exc.errors() if e["type"] in ("json_invalid", "json_type")]
        if structural:
            raise InvalidJSON("The body is not valid JSON.") from None
        top = [e for e in exc.errors() if len(e["loc"]) < 2 or e["loc"][0] != "calls"]
        if top:
            raise InvalidCallRecord(
                'The body must be an object {"calls": [...]} with no other keys.', param="calls"
            ) from None
        for err in exc.errors(include_input=False, include_url=False):
            index = err["loc"][1]
            errors.add(int(index), _field(tuple(err["loc"][2:])), _message(err))
        errors.raise_if_any()
        raise AssertionError("unreachable") from None
    rows = _valid_rows(list(enumerate(batch.calls)), errors, NUL_ESCAPE in body.lower())
    errors.raise_if_any()
    return rows


_RECORDS = TypeAdapter(list[CallRecord])


class _SlowPath(Exception):
    """The batch must be read line by line to say which lines are wrong."""


def parse_ndjson_lines(lines: list[bytes], *, first_index: int = 0) -> list[tuple[Any, ...]]:
    """One JSON object per line (blank lines skipped) -> rows; an error's index is the line's
    position (0-based, plus `first_index`)."""
    errors = ErrorList()
    positions = [i for i, line in enumerate(lines) if line.strip()]
    try:
        # Fast path: the whole batch as one JSON array, validated in one pass.
        records = _RECORDS.validate_json(b"[" + b",".join(lines[i] for i in positions) + b"]")
        if len(records) != len(positions):  # a line held more than one value: `{...},{...}`
            raise _SlowPath
        indexed = [(first_index + i, r) for i, r in zip(positions, records, strict=True)]
    except (ValidationError, _SlowPath):
        # Slow path, only for a bad batch: line by line, to name each bad line.
        indexed = []
        for i in positions:
            try:
                indexed.append((first_index + i, CallRecord.model_validate_json(lines[i])))
            except ValidationError as exc:
                if any(e["type"] in ("json_invalid", "json_type") for e in exc.errors()):
                    errors.add(first_index + i, None, "not a JSON object")
                else:
                    errors.add_validation(first_index + i, exc)
    rows = _valid_rows(indexed, errors, any(NUL_ESCAPE in lines[i].lower() for i in positions))
    errors.raise_if_any()
    return rows
