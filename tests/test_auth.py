"""Keys: format, checksum, scopes, environments, revocation (SPEC §3)."""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from perf_metrics.db import api_keys
from perf_metrics.keys import KEY_PATTERN, generate_key, hash_key, is_well_formed
from tests.conftest import Admin, assert_envelope, bearer


def test_generated_keys_have_the_spec_format_and_enough_randomness() -> None:
    for prefix in ("pk_live_", "pk_test_", "sk_ingest_"):
        keys = {generate_key(prefix) for _ in range(200)}
        assert len(keys) == 200
        for key in keys:
            assert key.startswith(prefix)
            assert len(key) - len(prefix) >= 32
            assert KEY_PATTERN.match(key)
            assert is_well_formed(key)
    # 43 base62 characters carry log2(62)*43 = 256 bits.


def test_a_typo_fails_the_checksum_without_a_lookup() -> None:
    key = generate_key("pk_live_")
    i = len("pk_live_") + 5
    typo = key[:i] + ("A" if key[i] != "A" else "B") + key[i + 1 :]
    assert not is_well_formed(typo)
    assert not is_well_formed(key[:-1])
    assert not is_well_formed("pk_prod_" + key[8:])


def test_hash_is_sha256_of_the_whole_key() -> None:
    key = generate_key("pk_test_")
    assert hash_key(key) == hashlib.sha256(key.encode()).digest()


async def test_account_route_answers_for_a_live_key(
    client: httpx.AsyncClient, admin_ops: Admin
) -> None:
    acct = await admin_ops.account(tier="enterprise")
    key = await admin_ops.key(acct, "live")
    response = await client.get("/v1/account", headers=bearer(key["key"]))
    assert response.status_code == 200
    assert response.json() == {
        "account_id": acct,
        "name": "Test Co",
        "tier": "enterprise",
        "environment": "live",
        "key_id": key["key_id"],
        "rate_limit_per_minute": 300,
        "timezone": "UTC",
        "tracked_metadata_keys": [],
        "monthly_budget_usd": None,
    }


async def test_test_key_reports_test_environment(
    client: httpx.AsyncClient, admin_ops: Admin
) -> None:
    acct = await admin_ops.account(tier="free")
    key = await admin_ops.key(acct, "test")
    body = (await client.get("/v1/account", headers=bearer(key["key"]))).json()
    assert body["environment"] == "test"
    assert body["rate_limit_per_minute"] == 10


async def test_only_the_hash_is_stored(engine: AsyncEngine, admin_ops: Admin) -> None:
    acct = await admin_ops.account()
    key = await admin_ops.key(acct)
    async with engine.connect() as conn:
        row = (await conn.execute(select(api_keys).where(api_keys.c.id == key["key_id"]))).one()
    assert row.key_hash == hashlib.sha256(key["key"].encode()).digest()
    stored = " ".join(str(v) for v in row)
    assert key["key"] not in stored
    assert key["key"][12:-4] not in stored


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (None, "missing_api_key"),
        ("Bearer", "invalid_api_key"),
        ("Bearer ", "invalid_api_key"),
        ("Bearer  pk_live_x", "invalid_api_key"),
        ("Basic dXNlcjpwYXNz", "invalid_api_key"),
        ("Bearer pk_live_short", "invalid_api_key"),
        ("Bearer " + "A" * 10_000, "invalid_api_key"),
        ("Bearer sk_ingest_" + "0" * 49, "invalid_api_key"),
    ],
)
async def test_bad_authorization_is_401_with_challenge(
    client: httpx.AsyncClient, header: str | None, code: str
) -> None:
    headers = {"Authorization": header} if header is not None else {}
    response = await client.get("/v1/account", headers=headers)
    error = assert_envelope(response, 401, code)
    assert error["type"] == "authentication_error"
    assert response.headers["www-authenticate"] == "Bearer"
    if header:
        assert header[7:] not in response.text or len(header) < 12


async def test_unknown_but_well_formed_key_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/account", headers=bearer(generate_key("pk_live_")))
    assert_envelope(response, 401, "invalid_api_key")


async def test_lowercase_scheme_is_accepted(client: httpx.AsyncClient, admin_ops: Admin) -> None:
    # RFC 9110 §11.1: the auth scheme is case-insensitive.
    acct = await admin_ops.account()
    key = await admin_ops.key(acct)
    response = await client.get("/v1/account", headers={"Authorization": f"bearer {key['key']}"})
    assert response.status_code == 200


async def test_revoked_key_stops_working_on_the_next_request(
    client: httpx.AsyncClient, admin_ops: Admin
) -> None:
    acct = await admin_ops.account()
    key = await admin_ops.key(acct)
    assert (await client.get("/v1/account", headers=bearer(key["key"]))).status_code == 200
    await admin_ops.revoke(key["key_id"])
    response = await client.get("/v1/account", headers=bearer(key["key"]))
    assert_envelope(response, 401, "invalid_api_key")
    assert response.headers["www-authenticate"] == "Bearer"


async def test_rotation_old_and_new_key_both_work_until_revoked(
    client: httpx.AsyncClient, admin_ops: Admin
) -> None:
    acct = await admin_ops.account()
    old = await admin_ops.key(acct)
    new = await admin_ops.key(acct)
    for key in (old, new):
        assert (await client.get("/v1/account", headers=bearer(key["key"]))).status_code == 200
    await admin_ops.revoke(old["key_id"])
    assert (await client.get("/v1/account", headers=bearer(old["key"]))).status_code == 401
    assert (await client.get("/v1/account", headers=bearer(new["key"]))).status_code == 200


async def test_ingest_key_on_a_customer_route_is_403(
    client: httpx.AsyncClient, admin_ops: Admin
) -> None:
    ingest = await admin_ops.key(None)
    response = await client.get("/v1/account", headers=bearer(ingest["key"]))
    error = assert_envelope(response, 403, "insufficient_scope")
    assert error["type"] == "permission_error"


async def test_last_used_is_written_at_most_once_a_minute(
    client: httpx.AsyncClient, admin_ops: Admin, engine: AsyncEngine
) -> None:
    acct = await admin_ops.account()
    key = await admin_ops.key(acct)

    async def last_used() -> datetime | None:
        async with engine.connect() as conn:
            return await conn.scalar(
                select(api_keys.c.last_used_at).where(api_keys.c.id == key["key_id"])
            )

    assert await last_used() is None
    await client.get("/v1/account", headers=bearer(key["key"]))
    first = await last_used()
    assert first is not None
    for _ in range(3):
        await client.get("/v1/account", headers=bearer(key["key"]))
    assert await last_used() == first


async def test_the_secret_is_never_logged(
    client: httpx.AsyncClient, admin_ops: Admin, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    acct = await admin_ops.account()
    key = await admin_ops.key(acct)
    await client.get("/v1/account", headers=bearer(key["key"]))
    await client.get("/v1/account", headers=bearer(key["key"] + "x"))
    assert key["key"] not in caplog.text


async def test_metrics_requests_record_last_used_too(
    client: httpx.AsyncClient, admin_ops: Admin, engine: AsyncEngine
) -> None:
    # Metrics read in a read-only transaction; the last-used write happens after it.
    acct = await admin_ops.account()
    key = await admin_ops.key(acct)
    response = await client.get("/v1/metrics/overview", headers=bearer(key["key"]))
    assert response.status_code == 200
    async with engine.connect() as conn:
        used = await conn.scalar(
            select(api_keys.c.last_used_at).where(api_keys.c.id == key["key_id"])
        )
    assert used is not None
