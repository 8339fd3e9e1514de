"""Schemathesis against the app's own OpenAPI schema, in process (its ASGI transport).

Every documented operation is fuzzed with schema-valid and schema-violating input (query
parameters, headers, bodies, other methods), authenticated as an enterprise customer (metrics,
account) or an ingest key (POST /v1/calls), over an account that has calls in both
environments. Every default check applies (no 5xx; status codes, content types, headers and
bodies as documented; valid input accepted, invalid input rejected), plus one of ours: every
non-2xx body is the SPEC §6 envelope, with the headers its status promises.

Valid ingest batches are made storable (the fuzz account, a recent created_at, consistent
failure fields: rules no JSON Schema can state), so that strange but legal records reach the
database, and every endpoint is read back over them.

Bounded and reproducible: derandomized Hypothesis, at most 40 generated examples per operation
and mode, on top of schemathesis's deterministic coverage cases.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import ignored_auth, positive_data_acceptance

from perf_metrics.app import create_app
from perf_metrics.keys import generate_key
from perf_metrics.metrics import schemas
from perf_metrics.settings import Settings
from tests.clock import set_clock
from tests.conftest import Admin, assert_envelope, bearer
from tests.factories import random_log

NOW = datetime(2026, 3, 2, 13, 47, 12, tzinfo=UTC)
ACCOUNT = "acct_fuzz"
ENVELOPE_KEYS = {"type", "code", "message", "param", "request_id"}
TYPE_OF_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
    500: "api_error",
    503: "api_error",
}
FUZZ_SETTINGS = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@schemathesis.serializer("application/x-ndjson")
def ndjson_lines(ctx: Any, value: Any) -> bytes:
    """The documented NDJSON body (an array of records) as one JSON value per line."""
    lines = value if isinstance(value, list) else [value]
    return "\n".join(json.dumps(line) for line in lines).encode()


# The schema is a function of the code alone: no database is involved in building it.
schema = schemathesis.openapi.from_dict(
    create_app(Settings(database_url="postgresql://unused@127.0.0.1/unused")).openapi()
)
# The harness sends a real key with every request (see the test); generated requests
# without one would be "negative" only on paper. Missing and bad keys are tested directly.
schema.config.generation.update(with_security_parameters=False)
# SPEC §7: a batch past 10,000 records (the documented maxItems) is a 413, not a 400.
schema.config.checks.negative_data_rejection.expected_statuses = [
    *schema.config.checks.negative_data_rejection.expected_statuses,
    "413",
]


@pytest.fixture
async def fuzz_keys(admin_ops: Admin) -> dict[str, str]:
    account = await admin_ops.account(tier="enterprise", account_id=ACCOUNT)
    return {
        "live": (await admin_ops.key(account, "live"))["key"],
        "test": (await admin_ops.key(account, "test"))["key"],
        "ingest": (await admin_ops.key(None))["key"],
    }


@pytest.fixture
def fuzz_app(settings: Settings, fuzz_keys: dict[str, str]) -> Iterator[Any]:
    """A fresh app whose lifespan (engine, limiter) runs on schemathesis's event loop, with a
    fixed "now" and 300 calls over the last 40 days; rate limits off (the session settings)."""
    app = create_app(settings)
    set_clock(app, NOW)
    calls = random_log(random.Random(7), [ACCOUNT], 300, NOW - timedelta(days=40), NOW)
    # Entering the client starts the lifespan; shutdown_lifespans() ends it.
    # schemathesis types the app as taking dict scopes; FastAPI takes any MutableMapping.
    with asgi.get_client(app) as client:  # type: ignore[arg-type]
        response = client.post(
            "/v1/calls", json={"calls": calls}, headers=bearer(fuzz_keys["ingest"])
        )
        assert response.status_code == 200, response.text
    try:
        yield app
    finally:
        asgi.shutdown_lifespans()


# ---------------------------------------------------------------- checks


def error_envelope(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every answer carries X-Request-ID; every non-2xx one (but a 304) is exactly the SPEC §6
    envelope, with the headers its status promises."""
    assert len(response.headers.get("x-request-id", [])) == 1, response.headers
    if response.status_code < 300 or response.status_code == 304:
        return None
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert set(error) >= ENVELOPE_KEYS, error
    assert error["type"] == TYPE_OF_STATUS.get(response.status_code), (response.status_code, error)
    assert all(isinstance(error[k], str) and error[k] for k in ("code", "message", "request_id"))
    assert error["param"] is None or isinstance(error["param"], str), error
    assert response.headers["x-request-id"] == [error["request_id"]]
    if response.status_code == 401:
        assert response.headers["www-authenticate"] == ["Bearer"]
    if response.status_code in (429, 503):
        assert response.headers["retry-after"][0].isdigit()
    return None


# Window rules no JSON Schema states: a 400 naming one answers schema-valid input rightly.
DATE_PARAMS = {"end_date", "end_time"}
DATE_RULES = ("in the future", "1970-01-01")


# And breakdown's (SPEC §10): a page token is one the API issued for the same question; a
# metadata key must be one the account tracks; series=daily caps limit; CSV has no pages.
# customer's (SPEC §14): a baseline model must be one the price table prices.
DATA_RULES = {
    "baseline_model": ("has no price",),
    "page": ("not a page token", "another question", "does not go with format=csv"),
    "group_by": ("not a tracked metadata key",),
    "limit": ("with series=daily",),
    "series": ("does not go with format=csv",),
}


def _breaks_a_date_rule(response: Any) -> bool:
    if response.status_code != 400:
        return False
    error = response.json()["error"]
    if error["code"] != "invalid_parameter":
        return False
    if error["param"] in DATE_PARAMS:
        return any(rule in error["message"] for rule in DATE_RULES)
    return any(rule in error["message"] for rule in DATA_RULES.get(error["param"], ()))


def valid_data_is_accepted(ctx: Any, response: Any, case: Any) -> bool | None:
    """Schemathesis's positive_data_acceptance, less the window rules the schema cannot state
    (an end_date/end_time in the future or before 1970). Valid ingest batches are made
    storable before they are sent, so they must all be accepted."""
    try:
        return positive_data_acceptance(ctx, response, case)
    except Exception:
        if _breaks_a_date_rule(response):
            return None
        raise


# ---------------------------------------------------------------- storable batches

INT_FIELDS = ("input_tokens", "output_tokens", "latency_ms", "retry_count", "message_count")
# Two records at 2**63 - 1 tokens overflow the BIGINT rollups (see the xfail test below): the
# fuzzer stays under the sums that fit, so that the rest of the write path is exercised.
TOKEN_CAP = 2**40
CALL_SERIAL = itertools.count()


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {(_without_nul(k) or "k"): _without_nul(v) for k, v in value.items()}
    return value


def _storable(record: Any, index: int) -> Any:
    """A schema-valid record made to pass the rules JSON Schema cannot state (SPEC §2)."""
    if not isinstance(record, dict):
        return record
    r = {k: _without_nul(v) for k, v in record.items()}
    r["account_id"] = ACCOUNT
    # Coverage cases differ in one field and share a call_id: each is stored, not skipped.
    r["call_id"] = f"{r['call_id'][:50]}.{next(CALL_SERIAL)}"
    for name in INT_FIELDS:  # JSON Schema counts 5.0 as an integer; the record format does not
        if isinstance(r.get(name), float):
            r[name] = int(r[name])
    for name in ("input_tokens", "output_tokens"):
        r[name] = min(r.get(name, 0), TOKEN_CAP)
    # Somewhere in the 85 days before NOW, keeping the generated UTC offset.
    moment = datetime.fromisoformat(r["created_at"])
    seconds = (moment.replace(tzinfo=None) - datetime(1, 1, 1)) // timedelta(seconds=1)
    shift = timedelta(seconds=seconds % (85 * 86400), microseconds=index)
    r["created_at"] = (NOW - shift).astimezone(moment.tzinfo).isoformat()
    # Failure fields, in the order SPEC §2 states the rules.
    if r.get("status") == "error":
        r["failure_mode"] = r.get("failure_mode") or "timeout"
        r["recovery"] = None
    if r.get("failure_mode") is None:
        r.update(status="success", recovery=None, retry_count=0, fallback_used=False)
    elif r.get("status", "success") == "success" and r.get("recovery") is None:
        r["recovery"] = "retry"
    if r.get("recovery") == "retry":
        r["retry_count"] = max(1, r.get("retry_count", 0))
    if r.get("recovery") == "fallback":
        r["fallback_used"] = True
    if r.get("fallback_used") and r.get("initial_model") in (None, r["model"]):
        r["initial_model"] = r["model"][:90] + "-first"
    return r


def _make_storable(case: Any) -> None:
    if case.media_type == "application/json" and isinstance(case.body, dict):
        calls = case.body.get("calls")
        if isinstance(calls, list):
            case.body["calls"] = [_storable(c, i) for i, c in enumerate(calls)]
    elif case.media_type == "application/x-ndjson" and isinstance(case.body, list):
        case.body = [_storable(c, i) for i, c in enumerate(case.body)]


READ_BACK: Iterator[tuple[str, tuple[str, type[BaseModel], dict[str, int]]]] = itertools.cycle(
    itertools.product(
        ("live", "test"),
        (
            ("overview", schemas.OverviewResponse, {"days": 90}),
            ("customer", schemas.CustomerResponse, {"days": 90}),
            ("performance", schemas.PerformanceResponse, {"days": 90}),
            ("failures", schemas.FailuresResponse, {"days": 90}),
            ("providers", schemas.ProvidersResponse, {"hours": 168}),
            ("daily", schemas.DailyResponse, {"days": 90}),
        ),
    )
)


def _read_back(app: Any, keys: dict[str, str]) -> None:
    """One endpoint (in turn) over everything stored so far: a 200 of the documented shape."""
    env, (endpoint, model, params) = next(READ_BACK)
    with asgi.get_client(app) as client:
        response = client.get(f"/v1/metrics/{endpoint}", params=params, headers=bearer(keys[env]))
    assert response.status_code == 200, (endpoint, env, response.text)
    model.model_validate(response.json())


# ---------------------------------------------------------------- the fuzz test


@schema.parametrize()
@FUZZ_SETTINGS
def test_every_operation_answers_as_documented(
    case: schemathesis.Case[Any], fuzz_app: Any, fuzz_keys: dict[str, str]
) -> None:
    storable = (
        case.path == "/v1/calls" and case.meta is not None and case.meta.generation.mode.is_positive
    )
    if storable:
        _make_storable(case)
    key = fuzz_keys["ingest"] if case.path == "/v1/calls" else fuzz_keys["live"]
    response = case.call_and_validate(
        headers=bearer(key),
        # ignored_auth replays the request over real HTTP, which an in-process app has not;
        # missing and bad keys are tested directly in test_auth.py and below.
        excluded_checks=[positive_data_acceptance, ignored_auth],
        additional_checks=[valid_data_is_accepted, error_envelope],
        app=fuzz_app,
    )
    if storable and response.status_code == 200 and response.json()["inserted"]:
        _read_back(fuzz_app, fuzz_keys)


# ---------------------------------------------------------------- headers the schema leaves out

# What an HTTP client can send as a header value: latin-1, no controls, no edge whitespace.
LATIN1_TEXT = st.text(
    st.characters(codec="latin-1", exclude_categories=["Cc"]), min_size=0, max_size=80
).map(str.strip)
BASE62 = st.text(st.sampled_from("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"))
TOKENS = st.one_of(
    LATIN1_TEXT,
    st.builds(
        "{}{}".format,
        st.sampled_from(("pk_live_", "pk_test_", "sk_ingest_", "pk_", "")),
        BASE62.map(lambda s: s[:49].ljust(49, "A")),
    ),
    # Well formed, right checksum, never issued.
    st.sampled_from(("pk_live_", "pk_test_", "sk_ingest_")).map(generate_key),
)
AUTHORIZATION = st.one_of(
    st.builds("{} {}".format, st.sampled_from(("Bearer", "bearer", "Basic", "Token")), TOKENS),
    st.builds("Bearer  {}".format, TOKENS),
    TOKENS,
)
SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9_.:-]{8,128}$")
ROUTES = (("GET", "/v1/account"), ("GET", "/v1/metrics/overview"), ("POST", "/v1/calls"))


@FUZZ_SETTINGS
@given(
    route=st.sampled_from(ROUTES),
    authorization=AUTHORIZATION,
    request_id=st.one_of(st.none(), LATIN1_TEXT, st.from_regex(SANE_REQUEST_ID, fullmatch=True)),
)
def test_any_bad_key_is_a_401_and_any_request_id_is_handled(
    fuzz_app: Any, route: tuple[str, str], authorization: str, request_id: str | None
) -> None:
    method, path = route
    headers = {"Authorization": authorization, "Content-Type": "application/json"}
    if request_id is not None:
        headers["X-Request-ID"] = request_id
    with asgi.get_client(fuzz_app) as client:
        response = client.request(method, path, headers=headers, data=b'{"calls": []}')
    assert response.status_code == 401, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) >= ENVELOPE_KEYS
    assert body["error"]["type"] == "authentication_error"
    assert response.headers["WWW-Authenticate"] == "Bearer"
    echoed = response.headers["X-Request-ID"]
    assert echoed == body["error"]["request_id"]
    if request_id is not None and SANE_REQUEST_ID.match(request_id):
        assert echoed == request_id
    else:
        assert echoed.startswith("req_")


# ---------------------------------------------------------------- what fuzzing found


@pytest.mark.parametrize(
    ("endpoint", "params", "param"),
    [
        ("overview", {"end_date": "0001-01-01"}, "end_date"),
        ("customer", {"end_date": "0001-01-31", "days": "1"}, "end_date"),
        ("daily", {"end_date": "1969-12-31"}, "end_date"),
        ("providers", {"end_time": "0001-01-01T00:00:00Z"}, "end_time"),
        ("providers", {"end_time": "0001-01-01T00:04:00+01:00"}, "end_time"),
        ("providers", {"end_time": "1969-12-31T23:59:59Z", "hours": "1"}, "end_time"),
    ],
)
async def test_windows_before_1970_are_a_400_not_an_overflow(
    client: httpx.AsyncClient, admin_ops: Admin, endpoint: str, params: dict[str, Any], param: str
) -> None:
    # Was a 500 (OverflowError in windows.py: end_date - (days - 1) before year 1).
    key = (await admin_ops.key(await admin_ops.account()))["key"]
    response = await client.get(f"/v1/metrics/{endpoint}", params=params, headers=bearer(key))
    assert_envelope(response, 400, "invalid_parameter", param)


async def test_the_earliest_window_answers(client: httpx.AsyncClient, admin_ops: Admin) -> None:
    key = (await admin_ops.key(await admin_ops.account()))["key"]
    for endpoint, params in (
        ("overview", {"end_date": "1970-01-01", "days": "90"}),
        ("customer", {"end_date": "1970-01-01", "days": "90"}),
        ("providers", {"end_time": "1970-01-01T00:00:00Z", "hours": "168"}),
    ):
        response = await client.get(f"/v1/metrics/{endpoint}", params=params, headers=bearer(key))
        assert response.status_code == 200, response.text


async def test_token_counts_the_record_format_allows_add_up(
    client: httpx.AsyncClient, admin_ops: Admin
) -> None:
    """Tokens are capped per call (10^9) so rollup sums (bigint) cannot overflow; beyond the
    cap is a 400 naming the field, not a 500 from the database."""
    await admin_ops.account(account_id="acct_tokens")
    ingest = (await admin_ops.key(None))["key"]
    record = {
        "account_id": "acct_tokens",
        "created_at": "2026-01-10T10:00:00Z",
        "task_type": "code",
        "model": "m",
        "provider": "p",
        "input_tokens": 10**9,
        "output_tokens": 10**9,
        "cost_usd": 0.01,
        "latency_ms": 100,
        "status": "success",
    }
    batch = [{**record, "call_id": f"t{i}"} for i in range(50)]
    response = await client.post("/v1/calls", json={"calls": batch}, headers=bearer(ingest))
    assert response.status_code == 200, response.text
    too_many = {**record, "call_id": "over", "input_tokens": 2**63 - 1}
    response = await client.post("/v1/calls", json={"calls": [too_many]}, headers=bearer(ingest))
    assert response.status_code == 400
    assert response.json()["error"]["errors"][0]["field"] == "input_tokens"
