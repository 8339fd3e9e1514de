"""What the alert and webhook tests share: a secret key's account, a test clock, a worker."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from perf_metrics.settings import Settings
from perf_metrics.webhooks.egress import Sender
from perf_metrics.worker import Worker
from tests.conftest import Admin, bearer


@dataclass
class FakeClock:
    """A clock the worker reads; tests move it."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def real_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Tenant:
    account_id: str
    secret: str  # sk_live_...
    public: str  # pk_live_...

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.secret)


async def tenant(admin: Admin, environment: str = "live", **settings: Any) -> Tenant:
    account = await admin.account(**settings)
    secret = await admin.key(account, environment, secret=True)
    public = await admin.key(account, environment)
    return Tenant(account, secret["key"], public["key"])


async def add_endpoint(
    client: httpx.AsyncClient, who: Tenant, url: str, **fields: Any
) -> dict[str, Any]:
    response = await client.post(
        "/v1/webhook-endpoints", headers=who.headers, json={"url": url, **fields}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def plain_url(settings: Settings) -> str:
    """The database URL as a child process (or asyncpg) takes it."""
    return settings.database_url.replace("postgresql+asyncpg://", "postgresql://")


def worker(engine: AsyncEngine, clock: FakeClock, seed: int = 7) -> tuple[Worker, Sender]:
    sender = Sender(allow_loopback=True)
    return Worker(engine, sender, clock=clock, rng=random.Random(seed)), sender
