"""`perf-metrics demo`'s set-up (the server itself runs in tests/test_observability.py): the demo
account shows local days at once (SPEC §9)."""

from __future__ import annotations

import random

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from perf_metrics import accounts as admin
from perf_metrics import demo
from perf_metrics.settings import Settings
from tests.conftest import bearer, store_records
from tests.factories import at, random_call


async def test_the_demo_account_is_not_in_utc_and_the_banner_says_its_zone(
    settings: Settings, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(demo, "DEMO_CALLS", 3_000)
    key = await demo._prepare(settings, first_run=True)
    assert key["timezone"] == "Europe/Berlin"

    response = await client.get("/v1/account", headers=bearer(key["key"]))
    assert response.status_code == 200, response.text
    assert response.json()["account_id"] == demo.DEMO_ACCOUNT
    assert response.json()["timezone"] == "Europe/Berlin"
    daily = await client.get("/v1/metrics/daily?days=7", headers=bearer(key["key"]))
    assert daily.status_code == 200, daily.text
    assert daily.json()["period"]["timezone"] == "Europe/Berlin"

    text = demo.banner(
        key["key"], "127.0.0.1", 8000, key["timezone"], key["secret_key"], key["monthly_budget_usd"]
    )
    assert f"account {demo.DEMO_ACCOUNT}" in text and "Europe/Berlin" in text
    # and how to watch its alerts arrive: the secret key, a receiver, an endpoint, an alert
    assert key["secret_key"].startswith("sk_live_") and key["secret_key"] in text
    assert "perf-metrics listen --port 9000" in text and "/v1/webhook-endpoints" in text
    secret = await client.get("/v1/alerts", headers=bearer(key["secret_key"]))
    assert secret.status_code == 200, secret.text

    # A second start (already seeded) makes a new key for the same account, zone unchanged.
    again = await demo._prepare(settings, first_run=False)
    assert again["timezone"] == "Europe/Berlin" and again["key"] != key["key"]


async def test_the_demo_account_made_without_a_seed_is_not_in_utc_either(
    settings: Settings, engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    """On a database of one's own (DATABASE_URL) that already holds calls, the demo seeds
    nothing but still makes its account, in the seed's zone for it."""
    async with engine.begin() as conn:
        await admin.create_account(conn, name="Other", tier="pro", account_id="acct_other")
    async with engine.connect() as conn:
        call = random_call(random.Random(1), "acct_other", "live", at(2026, 11, 1), "c1")
        await store_records(conn, [call])
        await conn.commit()
    key = await demo._prepare(settings, first_run=True)
    response = await client.get("/v1/account", headers=bearer(key["key"]))
    assert response.json()["timezone"] == key["timezone"] == "Europe/Berlin"
