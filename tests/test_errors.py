"""One envelope for every non-2xx response; X-Request-ID on every response (SPEC §6)."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from tests.conftest import assert_envelope


async def test_unknown_route_is_404_in_the_envelope(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/nope")
    error = assert_envelope(response, 404, "not_found")
    assert error["type"] == "invalid_request_error"


async def test_wrong_method_is_405_in_the_envelope(client: httpx.AsyncClient) -> None:
    response = await client.post("/healthz")
    assert_envelope(response, 405, "method_not_allowed")
    assert "GET" in response.headers.get("allow", "")


async def test_request_id_on_success_and_kept_when_sane(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.headers["x-request-id"].startswith("req_")
    response = await client.get("/healthz", headers={"X-Request-ID": "trace-1234-abcd"})
    assert response.headers["x-request-id"] == "trace-1234-abcd"
    response = await client.get("/v1/nope", headers={"X-Request-ID": "trace-1234-abcd"})
    assert response.json()["error"]["request_id"] == "trace-1234-abcd"


async def test_insane_request_id_is_replaced(client: httpx.AsyncClient) -> None:
    for bad in ("x", "a b c d e f g h", "<script>alert(1)</script>", "z" * 500):
        response = await client.get("/healthz", headers={"X-Request-ID": bad})
        assert response.headers["x-request-id"].startswith("req_")


async def test_unhandled_exception_is_500_without_internals(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internal detail /etc/passwd")

    response = await client.get("/boom")
    error = assert_envelope(response, 500, "internal_error")
    assert error["type"] == "api_error"
    assert "secret" not in response.text
    assert "Traceback" not in response.text
