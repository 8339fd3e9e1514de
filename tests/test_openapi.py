"""The OpenAPI schema documents each metrics formula and shows an example per endpoint."""

from __future__ import annotations

import importlib
import random
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from perf_metrics.app import create_app
from perf_metrics.metrics.examples import EXAMPLES
from perf_metrics.settings import Settings
from tests.conftest import RESPONSE_SCHEMAS, Admin, store_records
from tests.factories import random_log
from tests.servers import live_server


def _models(model: type[BaseModel], seen: set[type[BaseModel]]) -> set[type[BaseModel]]:
    if model in seen:
        return seen
    seen.add(model)
    for field in model.model_fields.values():
        for arg in (field.annotation, *getattr(field.annotation, "__args__", ())):
            for inner in (arg, *getattr(arg, "__args__", ())):
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    _models(inner, seen)
    return seen


@pytest.mark.parametrize("endpoint", RESPONSE_SCHEMAS)
def test_every_field_has_a_description(endpoint: str) -> None:
    undocumented = [
        f"{model.__name__}.{name}"
        for model in _models(RESPONSE_SCHEMAS[endpoint], set())
        for name, field in model.model_fields.items()
        if not field.description
        and not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel))
    ]
    assert undocumented == []


@pytest.mark.parametrize("endpoint", RESPONSE_SCHEMAS)
def test_each_endpoint_shows_the_published_example(endpoint: str) -> None:
    RESPONSE_SCHEMAS[endpoint].model_validate(EXAMPLES[endpoint])  # the published shape is ours
    schema = create_app(Settings()).openapi()
    ok = schema["paths"][f"/v1/metrics/{endpoint}"]["get"]["responses"]["200"]
    assert ok["content"]["application/json"]["example"] == EXAMPLES[endpoint]
    assert ok["content"]["application/json"]["schema"]["$ref"].endswith(
        RESPONSE_SCHEMAS[endpoint].__name__
    )


# --- the document as client generators and linters read it ------------------------------------

OPERATION_IDS = {
    ("get", "/healthz"): "get_liveness",
    ("get", "/readyz"): "get_readiness",
    ("get", "/metrics"): "get_prometheus_metrics",
    ("get", "/v1/account"): "get_account",
    ("post", "/v1/calls"): "ingest_calls",
    **{("get", f"/v1/metrics/{name}"): f"get_{name}" for name in RESPONSE_SCHEMAS},
    ("get", "/v1/metrics/breakdown"): "get_breakdown",
    ("post", "/v1/webhook-endpoints"): "create_webhook_endpoint",
    ("get", "/v1/webhook-endpoints"): "list_webhook_endpoints",
    ("get", "/v1/webhook-endpoints/{endpoint_id}"): "get_webhook_endpoint",
    ("patch", "/v1/webhook-endpoints/{endpoint_id}"): "update_webhook_endpoint",
    ("delete", "/v1/webhook-endpoints/{endpoint_id}"): "delete_webhook_endpoint",
    ("post", "/v1/webhook-endpoints/{endpoint_id}/rotate-secret"): "rotate_webhook_secret",
    ("post", "/v1/webhook-endpoints/{endpoint_id}/test"): "test_webhook_endpoint",
    ("get", "/v1/webhook-endpoints/{endpoint_id}/deliveries"): "list_webhook_deliveries",
    ("post", "/v1/webhook-deliveries/{delivery_id}/redeliver"): "redeliver_webhook",
    ("post", "/v1/alerts"): "create_alert",
    ("get", "/v1/alerts"): "list_alerts",
    ("get", "/v1/alerts/{alert_id}"): "get_alert",
    ("patch", "/v1/alerts/{alert_id}"): "update_alert",
    ("delete", "/v1/alerts/{alert_id}"): "delete_alert",
    ("post", "/v1/alerts/{alert_id}/preview"): "preview_alert",
    ("get", "/v1/alerts/{alert_id}/events"): "list_alert_events",
}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return create_app(Settings()).openapi()


def _operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method, path): operation
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }


def test_the_document_is_valid_openapi(document: dict[str, Any]) -> None:
    from openapi_spec_validator import validate

    validate(document)


def test_operation_ids_make_method_names(document: dict[str, Any]) -> None:
    assert {key: op["operationId"] for key, op in _operations(document).items()} == OPERATION_IDS


def test_routes_without_a_key_say_so_and_the_others_name_the_scheme(
    document: dict[str, Any],
) -> None:
    for (_, path), operation in _operations(document).items():
        expected: list[dict[str, list[str]]] = (
            [{"bearerAuth": []}] if path.startswith("/v1/") else []
        )
        assert operation["security"] == expected, path


def test_servers_and_tags_are_declared(document: dict[str, Any]) -> None:
    assert document["servers"] and all(server["url"] for server in document["servers"])
    declared = {tag["name"]: tag.get("description") for tag in document["tags"]}
    assert all(declared.values())
    used = {tag for operation in _operations(document).values() for tag in operation["tags"]}
    assert used == set(declared)


def _property(document: dict[str, Any], model: str, name: str) -> dict[str, Any]:
    schema: dict[str, Any] = document["components"]["schemas"][model]["properties"][name]
    return schema


@pytest.mark.parametrize(
    ("model", "field", "format_"),
    [
        ("DayPeriod", "start_date", "date-time"),
        ("DayPeriod", "end_date", "date-time"),
        ("OverviewPeriod", "start_date", "date-time"),
        ("HourPeriod", "start_time", "date-time"),
        ("HourPeriod", "end_time", "date-time"),
        ("Incident", "started_at", "date-time"),
        ("Incident", "ended_at", "date-time"),
        ("DailyPeriod", "start_date", "date"),
        ("DailyPeriod", "end_date", "date"),
        ("Day", "date", "date"),
    ],
)
def test_dates_and_times_carry_their_format(
    document: dict[str, Any], model: str, field: str, format_: str
) -> None:
    schema = _property(document, model, field)
    strings = [s for s in schema.get("anyOf", [schema]) if s.get("type") == "string"]
    assert [s.get("format") for s in strings] == [format_]


def _nullable(schema: dict[str, Any]) -> bool:
    branches = schema.get("anyOf", [schema])
    additional = schema.get("additionalProperties")
    return any(b.get("type") == "null" for b in branches) or (
        isinstance(additional, dict) and _nullable(additional)
    )


def test_every_nullable_response_field_says_when_it_is_null(document: dict[str, Any]) -> None:
    silent = [
        f"{model}.{name}"
        for model, schema in document["components"]["schemas"].items()
        for name, prop in schema.get("properties", {}).items()
        if _nullable(prop) and "null" not in prop.get("description", "")
    ]
    assert silent == []
    # and the fields that can be null are those that can (a sample both ways)
    assert _nullable(_property(document, "OverviewSummary", "success_rate"))
    assert not _nullable(_property(document, "OverviewModel", "avg_cost"))
    assert not _nullable(_property(document, "OverviewResponse", "task_distribution"))


# --- a client generated as a user would generate one ------------------------------------------

GENERATED_PACKAGE = "perf_metrics_generated_client"


@pytest.fixture(scope="module")
def generated_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """`openapi-python-client generate` over our document, imported as a package."""
    out = tmp_path_factory.mktemp("client")
    spec = out / "openapi.json"
    spec.write_bytes(orjson.dumps(create_app(Settings()).openapi()))
    done = subprocess.run(
        [
            *(sys.executable, "-m", "openapi_python_client", "generate", "--path", str(spec)),
            *("--meta", "none", "--output-path", str(out / GENERATED_PACKAGE)),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # The one warning: NDJSON bodies of POST /v1/calls have no generated type (JSON ones do).
    assert "Unsupported content type application/x-ndjson" in done.stdout + done.stderr
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module(GENERATED_PACKAGE)
    finally:
        sys.path.remove(str(out))
        for name in [m for m in sys.modules if m.startswith(GENERATED_PACKAGE)]:
            del sys.modules[name]


def _same(parsed: Any, raw: Any) -> bool:
    """The generated model's to_dict() equals the raw JSON, dates compared as dates."""
    if isinstance(raw, dict):
        return (
            isinstance(parsed, dict)
            and set(parsed) == set(raw)
            and all(_same(parsed[k], raw[k]) for k in raw)
        )
    if isinstance(raw, list):
        return isinstance(parsed, list) and all(map(_same, parsed, raw)) and len(parsed) == len(raw)
    if isinstance(raw, str) and isinstance(parsed, str) and parsed != raw:
        return datetime.fromisoformat(parsed) == datetime.fromisoformat(raw)
    return bool(parsed == raw)


@pytest.mark.slow
async def test_a_generated_client_parses_every_answer(
    database_url: str, engine: AsyncEngine, admin_ops: Admin, generated_client: Any
) -> None:
    busy = await admin_ops.account()
    empty = await admin_ops.account()
    now = datetime.now(UTC)
    records = random_log(random.Random(7), [busy], 400, now - timedelta(days=6), now)
    async with engine.connect() as conn:
        await store_records(conn, records)
        await conn.commit()
    api = importlib.import_module(f"{GENERATED_PACKAGE}.api.metrics")
    account_api = importlib.import_module(f"{GENERATED_PACKAGE}.api.account.get_account")
    with live_server(database_url) as base:
        for account in (busy, empty):
            key = (await admin_ops.key(account))["key"]
            client = generated_client.AuthenticatedClient(base_url=base, token=key)
            async with client:
                me = await account_api.asyncio_detailed(client=client)
                assert me.status_code == 200 and me.parsed.account_id == account
                for name, model in RESPONSE_SCHEMAS.items():
                    module = importlib.import_module(f"{api.__name__}.get_{name}")
                    answer = await module.asyncio_detailed(client=client)
                    assert answer.status_code == 200, answer.content
                    assert type(answer.parsed).__name__ == model.__name__
                    assert _same(answer.parsed.to_dict(), orjson.loads(answer.content)), name
                overview = (await api.get_overview.asyncio_detailed(client=client)).parsed
                assert isinstance(overview.period.start_date, datetime)
                daily = (await api.get_daily.asyncio_detailed(client=client)).parsed
                assert isinstance(daily.daily_data[0].date, date)
                bad = await api.get_overview.asyncio_detailed(client=client, days=0)
                assert bad.status_code == 400
                assert bad.parsed.error.param == "days"


# --- the parameter layer: one declaration, documented and enforced -----------------------------

DAY_DEFAULTS = {"overview": 7, "customer": 30, "performance": 7, "failures": 7, "daily": 30}


@pytest.mark.parametrize("endpoint", RESPONSE_SCHEMAS)
def test_each_route_documents_its_parameters_with_types_and_ranges(
    document: dict[str, Any], endpoint: str
) -> None:
    parameters = document["paths"][f"/v1/metrics/{endpoint}"]["get"]["parameters"]
    query = {p["name"]: p for p in parameters if p["in"] == "query"}
    assert all(p["description"] and p["required"] is False for p in query.values())
    if endpoint == "providers":
        assert set(query) == {"hours", "end_time"}
        assert query["hours"]["schema"] == {
            "type": "integer",
            "minimum": 1,
            "maximum": 168,
            "default": 24,
        }
        assert query["end_time"]["schema"] == {"type": "string", "format": "date-time"}
        return
    expected = {"days", "end_date"} | ({"task_type"} if endpoint == "performance" else set())
    expected |= {"format"} if endpoint == "daily" else set()  # its CSV export (SPEC §10)
    expected |= {"baseline_model"} if endpoint == "customer" else set()  # SPEC §14
    assert set(query) == expected
    assert query["days"]["schema"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 90,
        "default": DAY_DEFAULTS[endpoint],
    }
    assert query["end_date"]["schema"] == {"type": "string", "format": "date"}
    if endpoint == "daily":
        assert query["format"]["schema"] == {
            "type": "string",
            "enum": ["json", "csv"],
            "default": "json",
        }
    if endpoint == "performance":
        assert query["task_type"]["schema"]["enum"] == [
            "extraction",
            "classification",
            "summarization",
            "reasoning",
            "code",
            "writing",
        ]


@pytest.mark.parametrize("raw", ["0", "91", "%2B7", "7.5", "-1"])
async def test_one_layer_refuses_days_with_one_message(
    client: httpx.AsyncClient, admin_ops: Admin, raw: str
) -> None:
    """`days=0` (which FastAPI's Query(ge=1) used to refuse with its own words) and `days=+7`
    (which it let through) get the same answer."""
    key = (await admin_ops.key(await admin_ops.account()))["key"]
    response = await client.get(
        f"/v1/metrics/overview?days={raw}", headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "days"
    assert response.json()["error"]["message"] == "'days' must be a whole number from 1 to 90."
