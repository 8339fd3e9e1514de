"""The call record (SPEC §2): field types and ranges by pydantic, consistency rules in Python.

`parse_json_body` and `parse_ndjson_lines` turn a batch into validated rows ready for COPY, or
raise `InvalidCallRecord` listing up to 100 `{index, field, message}` errors. Nothing is written
before the whole batch is valid.

Two decoders, one contract. `CallRecord` (pydantic) is the definition: it names every error
and gives OpenAPI its schema. `_FastRecord` (msgspec, about 8x faster) decodes a batch first; it
accepts a subset of what `CallRecord` accepts and yields the same values (tests check both
halves of that), so a batch it refuses is simply decoded again by `CallRecord` to say why.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal, get_args

import msgspec
import orjson
from msgspec import Meta
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


# The fast decoder: CallRecord's fields and bounds in msgspec's terms. Python's `$` also matches
# before a final newline, hence `\Z`. created_at is read as text of a strict RFC 3339 shape and
# parsed by `datetime.fromisoformat` (msgspec would round a 7th fractional digit; pydantic cuts).
_RFC3339 = (
    r"\A\d{4}-[01]\d-[0-3]\dT(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,6})?"
    r"(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)\Z"
)
_FId = Annotated[str, Meta(min_length=1, max_length=64)]
_FModel = Annotated[str, Meta(min_length=1, max_length=100)]
_FProvider = Annotated[str, Meta(min_length=1, max_length=50)]
_FTokens = Annotated[int, Meta(ge=0, le=MAX_TOKENS)]
_FCount = Annotated[int, Meta(ge=0, le=INT32)]
_FMoney = Annotated[float, Meta(ge=0, le=MAX_COST_USD)]
_FUnit = Annotated[float, Meta(ge=0, le=1)]


# gc=False: a record holds only strings, numbers and a str->str dict, so it can be in no reference
# cycle; untracked, the cyclic collector stops walking every record of a batch (that halved the
# time of a 5,000-record body).
class _FastRecord(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, gc=False):
    # kw_only: fields in COLUMNS order, required or not.
    account_id: _FId
    call_id: Annotated[str, Meta(pattern=r"\A[A-Za-z0-9_.:-]{1,64}\Z")]
    environment: Literal["live", "test"] = "live"
    api_key_id: _FId | None = None
    created_at: Annotated[str, Meta(pattern=_RFC3339)]
    task_type: TaskType
    complexity_score: _FUnit | None = None
    model: _FModel
    provider: _FProvider
    initial_model: _FModel | None = None
    initial_provider: _FProvider | None = None
    input_tokens: _FTokens
    output_tokens: _FTokens
    cost_usd: _FMoney
    latency_ms: _FCount
    status: Literal["success", "error"]
    failure_mode: FailureMode | None = None
    failure_trigger: Annotated[str, Meta(max_length=100)] | None = None
    recovery: Literal["retry", "fallback"] | None = None
    retry_count: _FCount = 0
    fallback_used: bool = False
    quality_score: _FUnit | None = None
    message_count: Annotated[int, Meta(ge=1, le=INT32)] | None = None
    max_cost_per_call: _FMoney | None = None
    cost_ceiling_hit: bool = False
    user_id: Annotated[str, Meta(max_length=128)] | None = None
    metadata: (
        Annotated[
            dict[
                Annotated[str, Meta(min_length=1, max_length=64)],
                Annotated[str, Meta(max_length=256)],
            ],
            Meta(max_length=16),
        ]
        | None
    ) = None


class _FastBatch(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    calls: list[_FastRecord]


_FAST_BATCH = msgspec.json.Decoder(_FastBatch)
_FAST_RECORDS = msgspec.json.Decoder(list[_FastRecord])


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


_Record = CallRecord | _FastRecord


def consistency_errors(
    r: _Record, created_at: datetime, now: datetime, may_have_nul: bool
) -> list[tuple[str, str]]:
    """The SPEC §2 rules across fields, each error naming the rule it breaks.

    `created_at` is the record's, parsed (the fast decoder keeps it as text). JSON can only
    carry a NUL inside a string as the escape `\\u0000`, so callers scan the raw bytes once and
    pass `may_have_nul=False` when it is absent.
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
    if created_at.tzinfo is None:
        errors.append(("created_at", "must be an RFC 3339 timestamp with a UTC offset"))
    elif created_at < EARLIEST:
        errors.append(("created_at", "must be after 1970-01-01T00:00:00Z"))
    elif created_at > now + FUTURE_TOLERANCE:
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


def to_row(r: _Record, created_at: datetime) -> tuple[Any, ...]:
    return (
        r.account_id,
        r.call_id,
        r.environment,
        r.api_key_id,
        created_at,  # aware; asyncpg converts to UTC
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


# JSON carries a NUL only as this escape (hex digits have no case; `\U` is not JSON).
NUL_ESCAPE = b"\\u0000"


class _SlowPath(Exception):
    """The fast decoder cannot vouch for this batch: decode it again with CallRecord."""


def _valid_rows(
    indexed: list[tuple[int, _Record]], errors: ErrorList, may_have_nul: bool
) -> list[tuple[Any, ...]]:
    now = datetime.now(UTC)
    rows = []
    for index, record in indexed:
        if isinstance(record, CallRecord):
            created_at = record.created_at
        else:
            try:  # the pattern fixed the shape; 30 February still fails here
                created_at = datetime.fromisoformat(record.created_at)
            except ValueError:
                raise _SlowPath from None
        problems = consistency_errors(record, created_at, now, may_have_nul)
        for field, message in problems:
            errors.add(index, field, message)
        if not problems:
            rows.append(to_row(record, created_at))
    return rows


def parse_json_body(body: bytes) -> list[tuple[Any, ...]]:
    """`{"calls": [...]}` -> rows; raises InvalidJSON / InvalidCallRecord."""
    may_have_nul = NUL_ESCAPE in body
    try:
        errors = ErrorList()
        fast = _FAST_BATCH.decode(body)
        rows = _valid_rows(list(enumerate(fast.calls)), errors, may_have_nul)
    except (msgspec.DecodeError, _SlowPath):
        rows = _parse_json_body_slowly(body, errors := ErrorList(), may_have_nul)
    errors.raise_if_any()
    return rows


def _parse_json_body_slowly(
    body: bytes, errors: ErrorList, may_have_nul: bool
) -> list[tuple[Any, ...]]:
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
    return _valid_rows(list(enumerate(batch.calls)), errors, may_have_nul)


_RECORDS = TypeAdapter(list[CallRecord])


def parse_ndjson_lines(lines: list[bytes], *, first_index: int = 0) -> list[tuple[Any, ...]]:
    """One JSON object per line (blank lines skipped) -> rows; an error's index is the line's
    position (0-based, plus `first_index`)."""
    positions = [i for i, line in enumerate(lines) if line and not line.isspace()]
    array = b"[" + b",".join(lines[i] for i in positions) + b"]"
    may_have_nul = NUL_ESCAPE in array
    try:
        errors = ErrorList()
        records: list[Any] = _FAST_RECORDS.decode(array)
        if len(records) != len(positions):  # a line held more than one value: `{...},{...}`
            raise _SlowPath
        indexed = [(first_index + i, r) for i, r in zip(positions, records, strict=True)]
        rows = _valid_rows(indexed, errors, may_have_nul)
    except (msgspec.DecodeError, _SlowPath):
        errors = ErrorList()
        rows = _valid_rows(
            _parse_lines_slowly(lines, positions, array, first_index, errors), errors, may_have_nul
        )
    errors.raise_if_any()
    return rows


def _parse_lines_slowly(
    lines: list[bytes], positions: list[int], array: bytes, first_index: int, errors: ErrorList
) -> list[tuple[int, _Record]]:
    try:
        # The whole batch in one pass still, when only the fast decoder objected.
        records = _RECORDS.validate_json(array)
        if len(records) == len(positions):
            return [(first_index + i, r) for i, r in zip(positions, records, strict=True)]
    except ValidationError:
        pass
    # Line by line, to name each bad line.
    indexed: list[tuple[int, _Record]] = []
    for i in positions:
        try:
            indexed.append((first_index + i, CallRecord.model_validate_json(lines[i])))
        except ValidationError as exc:
            if any(e["type"] in ("json_invalid", "json_type") for e in exc.errors()):
                errors.add(first_index + i, None, "not a JSON object")
            else:
                errors.add_validation(first_index + i, exc)
    return indexed
