"""The two decoders of a call record keep one contract (no database needed).

The msgspec decoder runs first; pydantic's CallRecord is the definition. Whatever the fast one
accepts, the definition accepts with the very same row; whatever it refuses goes to the
definition, which accepts or names the error. So the public parse functions must give, for any
input, exactly what the definition alone gives.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perf_metrics.calls import schema
from perf_metrics.errors import InvalidCallRecord, InvalidJSON
from tests.factories import random_call

NOW = datetime.now(UTC)


def by_definition(lines: list[bytes]) -> list[tuple[Any, ...]]:
    """Rows from pydantic alone, errors raised as the public functions raise them."""
    positions = [i for i, line in enumerate(lines) if line and not line.isspace()]
    array = b"[" + b",".join(lines[i] for i in positions) + b"]"
    errors = schema.ErrorList()
    indexed = schema._parse_lines_slowly(lines, positions, array, 0, errors)
    rows = schema._valid_rows(indexed, errors, schema.NUL_ESCAPE in array)
    errors.raise_if_any()
    return rows


def outcome(parse: Any, *args: Any) -> Any:
    try:
        return ("rows", parse(*args))
    except (InvalidCallRecord, InvalidJSON) as exc:
        return ("error", type(exc).__name__, exc.message, exc.extra)


def base_record(rng: random.Random) -> dict[str, Any]:
    moment = NOW - timedelta(seconds=rng.randint(60, 3 * 86400), microseconds=rng.randint(0, 10**6))
    record = random_call(
        rng, "acct_x", rng.choice(("live", "test")), moment, f"c-{rng.randint(0, 10**9)}"
    )
    if rng.random() < 0.5:  # the optional fields the factory leaves out
        record.update(
            api_key_id="key_1",
            user_id="user 7",
            metadata={"team": "search", "ticket": "INC-1"},
            max_cost_per_call=0.25,
            initial_provider=record.get("initial_provider"),
        )
    return record


def test_realistic_batches_take_the_fast_path_with_the_same_rows() -> None:
    rng = random.Random(11)
    records = [base_record(rng) for _ in range(2000)]
    lines = [orjson.dumps(r) for r in records]
    # The fast decoder itself accepts them all (else every batch would pay for both)...
    decoded = schema._FAST_RECORDS.decode(b"[" + b",".join(lines) + b"]")
    assert len(decoded) == len(records)
    # ...and the rows equal the definition's, field for field (Decimal money, aware times).
    assert schema.parse_ndjson_lines(lines) == by_definition(lines)
    body = orjson.dumps({"calls": records})
    assert schema.parse_json_body(body) == by_definition(lines)


# Values on, or just past, every bound either decoder checks, and the shapes they may disagree on.
BOUNDARY_VALUES: list[Any] = [
    None,
    True,
    False,
    *(-1, 0, 1, 2**31 - 1, 2**31, 10**9, 10**9 + 1, 2**63, 2**64, 2**70, -(2**70)),
    *(-0.0, 0.0, 0.5, 1.0, 1.0000000000000002, 1e6, 1000000.0000001, 5e-324, -1e-300, 1e308),
    *("x" * n for n in (0, 1, 50, 51, 64, 65, 100, 101, 128, 129, 256, 257)),
    *("a\n", "abc\n", " abc", "a\x00b", "\u00e9\u0301", "\U0001f600" * 20, "LIVE", "5"),
    *("live", "test", "success", "error", "retry", "fallback", "refusal", "timeout", "code"),
    *(
        "2026-11-20T10:00:00Z",
        "2026-11-20T10:00:00.1234567Z",
        "2026-11-20T10:00:00.123456+05:30",
        "2026-11-20t10:00:00z",
        "2026-11-20 10:00:00Z",
        "2026-11-20T10:00:00",
        "2026-11-20T10:00:00+0530",
        "2026-11-20T10:00:00+23:59",
        "2026-11-20T10:00:00-00:00",
        "2026-02-30T10:00:00Z",
        "2026-11-20T24:00:00Z",
        "2026-11-20T10:00:60Z",
        "2026-11-20T10:00Z",
        "2026-11-20",
        "1969-12-31T23:59:59Z",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
    ),
    [],
    [1],
    {},
    {"k": "v"},
    {"": "v"},
    {"k" * 64: "v" * 256},
    {"k" * 65: "v"},
    {"k": "v" * 257},
    {"k": 1},
    {"k": None},
    {f"k{i}": "v" for i in range(16)},
    {f"k{i}": "v" for i in range(17)},
]
ODD_VALUES = st.one_of(
    st.sampled_from(BOUNDARY_VALUES),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=70),
    st.dictionaries(st.text(max_size=66), st.text(max_size=3), max_size=18),
)
FIELDS = [*sorted(schema.CallRecord.model_fields), "unknown_field"]


def encode(record: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(record)
    except TypeError:  # an integer past 64 bits
        return msgspec.json.encode(record)


def assert_same_as_definition(record: dict[str, Any], seed: int) -> None:
    other = orjson.dumps(base_record(random.Random(seed + 1)))
    lines = [other, encode(record), b"", other.replace(b'"call_id":"', b'"call_id":"z')]
    expected = outcome(by_definition, lines)
    assert outcome(schema.parse_ndjson_lines, lines) == expected
    body = b'{"calls":[' + b",".join(x for x in lines if x) + b"]}"
    json_outcome = outcome(schema.parse_json_body, body)
    if expected[0] == "rows":
        assert json_outcome == expected
    else:
        assert json_outcome[0] == "error"


@pytest.mark.parametrize("field", FIELDS)
def test_every_field_at_every_boundary_parses_as_the_definition_says(field: str) -> None:
    for i, value in enumerate(BOUNDARY_VALUES):
        record = base_record(random.Random(i))
        record[field] = value
        assert_same_as_definition(record, i)
        del record[field]
        assert_same_as_definition(record, i)


@settings(
    max_examples=300,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 10**6),
    edits=st.lists(
        st.tuples(st.sampled_from(FIELDS), st.one_of(st.just("<drop>"), ODD_VALUES)),
        min_size=1,
        max_size=3,
    ),
)
def test_any_record_parses_exactly_as_the_definition_says(
    seed: int, edits: list[tuple[str, Any]]
) -> None:
    record = base_record(random.Random(seed))
    for field, value in edits:
        if value == "<drop>":
            record.pop(field, None)
        else:
            record[field] = value
    assert_same_as_definition(record, seed)


@pytest.mark.parametrize(
    ("created_at", "stored"),
    [
        # msgspec would round the 7th digit; the definition cuts it, and so do we.
        ("2026-11-20T10:00:00.1234567Z", datetime(2026, 11, 20, 10, 0, 0, 123456, tzinfo=UTC)),
        ("2026-11-20T15:30:00+05:30", datetime(2026, 11, 20, 10, 0, 0, tzinfo=UTC)),
        ("2026-11-20 10:00:00Z", datetime(2026, 11, 20, 10, 0, 0, tzinfo=UTC)),
    ],
)
def test_timestamps_the_fast_decoder_leaves_to_the_definition(
    created_at: str, stored: datetime
) -> None:
    record = {**base_record(random.Random(1)), "created_at": created_at}
    (row,) = schema.parse_ndjson_lines([orjson.dumps(record)])
    assert row[schema.COLUMNS.index("created_at")] == stored
