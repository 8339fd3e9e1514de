"""CSV exports (SPEC §10): daily's `format=csv` against its own JSON answer, RFC 4180 read back
with Python's `csv` module, the formula-injection guard, headers, ETags and the rate limit."""

from __future__ import annotations

import csv
import io
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from perf_metrics.metrics.csv_export import cell, table
from perf_metrics.settings import Settings
from tests.clock import set_clock
from tests.conftest import Admin, assert_envelope, bearer
from tests.factories import random_log

NOW = datetime(2026, 3, 10, 6, tzinfo=UTC)


@pytest.fixture
def app_settings(settings: Settings) -> Settings:
    """Rate limits on: an export counts like any other request."""
    return settings.model_copy(update={"rate_limit_enabled": True})


async def account_with_calls(
    client: httpx.AsyncClient, admin_ops: Admin, app: FastAPI, zone: str = "America/New_York"
) -> str:
    set_clock(app, NOW)
    account = await admin_ops.account(tier="enterprise", timezone=zone)
    key = (await admin_ops.key(account))["key"]
    ingest = (await admin_ops.key(None))["key"]
    calls = random_log(random.Random(3), [account], 600, NOW - timedelta(days=20), NOW, zone)
    response = await client.post("/v1/calls", json={"calls": calls}, headers=bearer(ingest))
    assert response.status_code == 200, response.text
    return str(key)


def json_spelling(value: Any) -> str:
    """How the CSV must write a JSON value: its number as JSON writes it, '' for null."""
    return "" if value is None else repr(value) if isinstance(value, float) else str(value)


async def test_daily_csv_is_the_json_answer_as_rfc_4180(
    client: httpx.AsyncClient, admin_ops: Admin, app: FastAPI
) -> None:
    key = await account_with_calls(client, admin_ops, app)
    params: dict[str, str | int] = {"days": 14, "end_date": "2026-03-09"}
    as_json = await client.get("/v1/metrics/daily", params=params, headers=bearer(key))
    as_csv = await client.get(
        "/v1/metrics/daily", params={**params, "format": "csv"}, headers=bearer(key)
    )
    assert as_csv.status_code == 200, as_csv.text
    assert as_csv.headers["content-type"] == "text/csv; charset=utf-8"
    assert as_csv.headers["content-disposition"] == (
        'attachment; filename="daily-2026-02-24-2026-03-09.csv"'
    )
    text = as_csv.content.decode("utf-8")
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == ["date", "total_calls", "total_cost_usd", "avg_latency_ms", "success_rate"]
    days = as_json.json()["daily_data"]
    assert len(rows) == 1 + len(days) == 15
    for row, day in zip(rows[1:], days, strict=True):
        assert row == [json_spelling(day[c]) for c in rows[0]]
    # Its own ETag, and a 304 for it.
    assert as_csv.headers["etag"] != as_json.headers["etag"]
    again = await client.get(
        "/v1/metrics/daily",
        params={**params, "format": "csv"},
        headers={**bearer(key), "If-None-Match": as_csv.headers["etag"]},
    )
    assert again.status_code == 304
    # Counted against the tier's limit like any other request: JSON, CSV, then the 304 (free).
    assert int(as_csv.headers["x-ratelimit-remaining"]) == (
        int(as_json.headers["x-ratelimit-remaining"]) - 1
    )
    assert again.headers["x-ratelimit-remaining"] == as_csv.headers["x-ratelimit-remaining"]


async def test_an_empty_window_is_a_header_and_zero_rows(
    client: httpx.AsyncClient, admin_ops: Admin, app: FastAPI
) -> None:
    key = await account_with_calls(client, admin_ops, app)
    response = await client.get(
        "/v1/metrics/daily",
        params={"days": 2, "end_date": "2025-01-02", "format": "csv"},
        headers=bearer(key),
    )
    assert response.text == (
        "date,total_calls,total_cost_usd,avg_latency_ms,success_rate\r\n"
        "2025-01-01,0,0.0,,\r\n"
        "2025-01-02,0,0.0,,\r\n"
    )


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"format": "xml"}, "format"),
        ({"format": "CSV"}, "format"),
        ({"format": ""}, "format"),
    ],
)
async def test_bad_formats_are_refused(
    client: httpx.AsyncClient, admin_ops: Admin, app: FastAPI, params: dict[str, str], param: str
) -> None:
    key = await account_with_calls(client, admin_ops, app)
    response = await client.get("/v1/metrics/daily", params=params, headers=bearer(key))
    assert_envelope(response, 400, "invalid_parameter", param)


async def test_endpoints_without_an_export_refuse_format(
    client: httpx.AsyncClient, admin_ops: Admin, app: FastAPI
) -> None:
    key = await account_with_calls(client, admin_ops, app)
    response = await client.get(
        "/v1/metrics/overview", params={"format": "csv"}, headers=bearer(key)
    )
    assert_envelope(response, 400, "invalid_parameter", "format")


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ('=HYPERLINK("http://evil","x")', '\'=HYPERLINK("http://evil","x")'),
        ("+1+1", "'+1+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("plain", "plain"),
        ("a=b", "a=b"),
        (None, ""),
        (0.1, "0.1"),
        (12, "12"),
    ],
)
def test_cells_that_a_spreadsheet_would_run_are_inert(value: Any, written: str) -> None:
    assert cell(value) == written
    # Read back with the csv module (quotes, commas and line breaks survive RFC 4180).
    body = table(["v", "w"], [[value, 'x,"y"\r\nz']]).decode()
    assert list(csv.reader(io.StringIO(body, newline="")))[1] == [written, 'x,"y"\r\nz']
