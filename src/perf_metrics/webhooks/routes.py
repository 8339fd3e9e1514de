"""/v1/webhook-endpoints and /v1/webhook-deliveries (SPEC §11): secret keys only.

An endpoint belongs to the account and environment of the key that made it; every lookup is
by that account and environment as well as the id, so one account can never see, change or
trigger another's (a foreign id is a 404, as an unknown one is).
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from perf_metrics.auth import Principal, SecretKeyDep
from perf_metrics.deps import ClockDep, ConnectionDep
from perf_metrics.errors import Conflict, InvalidParameter, NotFound, documented_error
from perf_metrics.keys import new_id
from perf_metrics.owned import mine, owned, within_limit
from perf_metrics.webhooks import delivery, signing
from perf_metrics.webhooks.egress import RefusedDestination, Sender, check_url
from perf_metrics.webhooks.tables import (
    webhook_attempts,
    webhook_deliveries,
    webhook_endpoints,
    webhook_events,
)
from perf_metrics.zones import iso_z

router = APIRouter(tags=["webhooks"])

EVENT_TYPES = ("alert.firing", "alert.resolved")
MAX_ENDPOINTS = 5  # per account and environment
ROTATION_OVERLAP = timedelta(hours=24)

ERRORS: dict[int | str, dict[str, Any]] = {
    400: documented_error("A field is missing or wrong (its name in `param`)"),
    401: documented_error("Missing, malformed, unknown or revoked key", WWW_Authenticate="Bearer"),
    403: documented_error(
        "Not a secret key (sk_live_ or sk_test_): pk_ keys cannot manage webhooks"
    ),
    404: documented_error("No such endpoint in this account and environment"),
    429: documented_error(
        "The account's per-tier budget is spent; see Retry-After",
        Retry_After="Seconds to wait before retrying.",
    ),
}


async def app_sender(request: Request) -> Sender:
    sender: Sender = request.app.state.sender
    return sender


SenderDep = Annotated[Sender, Depends(app_sender)]


class EndpointCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        description="Where events are POSTed: https, resolving only to public addresses.",
        examples=["https://hooks.example.com/perf"],
    )
    description: str = Field("", max_length=500)
    event_types: list[Literal["alert.firing", "alert.resolved"]] | None = Field(
        None, description="The event types sent to it; null or absent: all of them."
    )
    enabled: bool = True


class EndpointUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(
        None, description="A new URL, checked as at creation; absent: kept (never null)."
    )
    description: str | None = Field(None, max_length=500, description="absent or null: kept.")
    event_types: list[Literal["alert.firing", "alert.resolved"]] | None = Field(
        None, description="null: every event type; absent: kept."
    )
    enabled: bool | None = Field(None, description="absent or null: kept.")


class Endpoint(BaseModel):
    id: str = Field(examples=["we_5fG2kQ9..."])
    url: str
    description: str
    event_types: list[str] | None = Field(description="null: every event type.")
    enabled: bool
    disabled_reason: str | None = Field(
        description="Why the service disabled it: `gone` (the receiver answered 410) or "
        "`failing` (every attempt failed for 5 days); null otherwise."
    )
    environment: str
    secret_rotation_ends_at: str | None = Field(
        description="While a rotation's overlap lasts, when the previous secret stops signing; "
        "null otherwise."
    )
    created_at: str
    updated_at: str


class EndpointWithSecret(Endpoint):
    secret: str = Field(
        description="The signing secret, `whsec_` + base64; shown only in this answer.",
        examples=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
    )


class EndpointList(BaseModel):
    data: list[Endpoint]


class Deleted(BaseModel):
    id: str
    deleted: bool = True


class AttemptView(BaseModel):
    attempt: int
    at: str
    status_code: int | None = Field(description="The receiver's status; null if none came.")
    error: str | None = Field(
        description="Why it failed (HTTP 500, timeout: ..., refused: ...); null for a 2xx."
    )
    latency_ms: int


class DeliveryView(BaseModel):
    id: str = Field(examples=["whd_3hQ..."])
    event_id: str = Field(description="The event's id: the `webhook-id` of every attempt.")
    event_type: str
    endpoint_id: str
    status: Literal["pending", "succeeded", "failed", "cancelled"]
    next_attempt_at: str | None = Field(
        description="When it is next tried, while pending; null once it has ended."
    )
    created_at: str
    attempts: list[AttemptView]


class DeliveryList(BaseModel):
    data: list[DeliveryView]


class TestResult(BaseModel):
    delivery_id: str
    event_id: str
    succeeded: bool
    status_code: int | None = Field(description="The receiver's status; null if none came.")
    error: str | None = Field(description="Why it failed; null for a 2xx.")
    latency_ms: int


class RotatedSecret(BaseModel):
    id: str
    secret: str = Field(description="The new secret; shown only in this answer.")
    previous_secret_expires_at: str = Field(
        description="Until then both secrets sign every delivery (two signatures)."
    )


def _view(row: Any, now: datetime) -> dict[str, Any]:
    rotating = row.previous_secret_expires_at
    return {
        "id": row.id,
        "url": row.url,
        "description": row.description,
        "event_types": row.event_types,
        "enabled": row.enabled,
        "disabled_reason": row.disabled_reason,
        "environment": row.environment,
        "secret_rotation_ends_at": iso_z(rotating) if rotating and rotating > now else None,
        "created_at": iso_z(row.created_at),
        "updated_at": iso_z(row.updated_at),
    }


async def _endpoint(conn: AsyncConnection, key: Principal, endpoint_id: str) -> Any:
    return await owned(conn, webhook_endpoints, key, endpoint_id, "webhook endpoint")


def _event_types(types: Sequence[str] | None) -> list[str] | None:
    """As stored: null for every type, else each type once, in order."""
    return None if types is None else sorted(set(types))


async def _checked_url(url: str, sender: Sender) -> str:
    try:
        await check_url(url, allow_loopback=sender.allow_loopback, resolver=sender.resolver)
    except RefusedDestination as exc:
        raise InvalidParameter(f"'url' is refused: {exc}.", param="url") from None
    return url


@router.post(
    "/v1/webhook-endpoints",
    status_code=201,
    response_model=EndpointWithSecret,
    summary="Create a webhook endpoint (its secret is shown once)",
    responses=ERRORS,
)
async def create_webhook_endpoint(
    body: EndpointCreate, key: SecretKeyDep, conn: ConnectionDep, sender: SenderDep, at: ClockDep
) -> dict[str, Any]:
    """The URL must be https and resolve only to public addresses (checked now and again at
    every delivery). At most 5 endpoints per account and environment."""
    url = await _checked_url(body.url, sender)
    await within_limit(conn, webhook_endpoints, key, MAX_ENDPOINTS, "webhook endpoints")
    secret = signing.new_secret()
    values = {
        "account_id": key.account_id,
        "id": new_id("we_"),
        "environment": key.environment,
        "url": url,
        "description": body.description,
        "event_types": _event_types(body.event_types),
        "enabled": body.enabled,
        "secret": secret,
        "created_at": at,
        "updated_at": at,
    }
    row = (
        await conn.execute(insert(webhook_endpoints).values(**values).returning(webhook_endpoints))
    ).one()
    await conn.commit()  # before the answer: a 201 is a promise that it is stored
    return {**_view(row, at), "secret": secret}


@router.get(
    "/v1/webhook-endpoints",
    response_model=EndpointList,
    summary="List the webhook endpoints",
    responses=ERRORS,
)
async def list_webhook_endpoints(
    key: SecretKeyDep, conn: ConnectionDep, at: ClockDep
) -> dict[str, Any]:
    rows = await conn.execute(
        select(webhook_endpoints)
        .where(mine(webhook_endpoints, key))
        .order_by(webhook_endpoints.c.created_at, webhook_endpoints.c.id)
    )
    return {"data": [_view(r, at) for r in rows]}


@router.get(
    "/v1/webhook-endpoints/{endpoint_id}",
    response_model=Endpoint,
    summary="One webhook endpoint",
    responses=ERRORS,
)
async def get_webhook_endpoint(
    endpoint_id: str, key: SecretKeyDep, conn: ConnectionDep, at: ClockDep
) -> dict[str, Any]:
    return _view(await _endpoint(conn, key, endpoint_id), at)


@router.patch(
    "/v1/webhook-endpoints/{endpoint_id}",
    response_model=Endpoint,
    summary="Change a webhook endpoint (url, description, event_types, enabled)",
    responses=ERRORS,
)
async def update_webhook_endpoint(
    endpoint_id: str,
    body: EndpointUpdate,
    key: SecretKeyDep,
    conn: ConnectionDep,
    sender: SenderDep,
    at: ClockDep,
) -> dict[str, Any]:
    """Enabling an endpoint the service disabled clears the reason and its failure record;
    disabling one cancels its pending deliveries."""
    row = await _endpoint(conn, key, endpoint_id)
    values: dict[str, Any] = {}
    given = body.model_fields_set
    if "url" in given:
        if body.url is None:
            raise InvalidParameter("'url' may not be null.", param="url")
        values["url"] = await _checked_url(body.url, sender)
        values["failing_since"] = None  # a new URL's failures count from its own first
    if "description" in given:
        values["description"] = body.description or ""
    if "event_types" in given:
        values["event_types"] = _event_types(body.event_types)
    if "enabled" in given and body.enabled is not None and body.enabled != row.enabled:
        if body.enabled:
            values.update(enabled=True, disabled_reason=None, failing_since=None)
        else:
            await delivery.disable(conn, key.account_id or "", endpoint_id, None, at)
    if values:
        w = webhook_endpoints.c
        await conn.execute(
            update(webhook_endpoints)
            .where(mine(webhook_endpoints, key), w.id == endpoint_id)
            .values(**values, updated_at=at)
        )
    view = _view(await _endpoint(conn, key, endpoint_id), at)
    await conn.commit()
    return view


@router.delete(
    "/v1/webhook-endpoints/{endpoint_id}",
    response_model=Deleted,
    summary="Delete a webhook endpoint (its pending deliveries with it)",
    responses=ERRORS,
)
async def delete_webhook_endpoint(
    endpoint_id: str, key: SecretKeyDep, conn: ConnectionDep
) -> dict[str, Any]:
    await _endpoint(conn, key, endpoint_id)
    await conn.execute(
        delete(webhook_endpoints).where(
            mine(webhook_endpoints, key), webhook_endpoints.c.id == endpoint_id
        )
    )
    await conn.commit()
    return {"id": endpoint_id, "deleted": True}


@router.post(
    "/v1/webhook-endpoints/{endpoint_id}/rotate-secret",
    response_model=RotatedSecret,
    summary="Rotate the signing secret (the old one signs beside it for 24 h)",
    responses={**ERRORS, 409: documented_error("A rotation's overlap is still open")},
)
async def rotate_webhook_secret(
    endpoint_id: str, key: SecretKeyDep, conn: ConnectionDep, at: ClockDep
) -> dict[str, Any]:
    """For 24 hours every delivery carries two signatures, one per secret, so a receiver can
    switch to the new secret at its own pace. A second rotation inside that overlap is a 409:
    it would end the old secret's day early."""
    row = await _endpoint(conn, key, endpoint_id)
    if row.previous_secret_expires_at is not None and row.previous_secret_expires_at > at:
        raise Conflict(
            "This endpoint's secret was rotated less than 24 h ago; the previous secret signs "
            f"until {iso_z(row.previous_secret_expires_at)}. Rotate again after that."
        )
    secret, ends = signing.new_secret(), at + ROTATION_OVERLAP
    rotated = await conn.execute(
        update(webhook_endpoints)
        # (the secret read above: of two rotations at once, one wins and one is a 409)
        .where(mine(webhook_endpoints, key), webhook_endpoints.c.id == endpoint_id)
        .where(webhook_endpoints.c.secret == row.secret)
        .values(
            secret=secret,
            previous_secret=row.secret,
            previous_secret_expires_at=ends,
            updated_at=at,
        )
    )
    if rotated.rowcount != 1:
        raise Conflict("This endpoint's secret is being rotated by another request.")
    await conn.commit()
    return {"id": endpoint_id, "secret": secret, "previous_secret_expires_at": iso_z(ends)}


@router.post(
    "/v1/webhook-endpoints/{endpoint_id}/test",
    response_model=TestResult,
    summary="Send a webhook.test event now; answers with the attempt's outcome",
    responses={**ERRORS, 409: documented_error("The endpoint is disabled")},
)
async def test_webhook_endpoint(
    endpoint_id: str,
    key: SecretKeyDep,
    conn: ConnectionDep,
    sender: SenderDep,
    at: ClockDep,
) -> dict[str, Any]:
    """One attempt, signed like any delivery; it is logged among the endpoint's deliveries and
    not retried (redeliver it to try again)."""
    row = await _endpoint(conn, key, endpoint_id)
    if not row.enabled:
        raise Conflict("This endpoint is disabled; enable it (PATCH enabled=true) first.")
    assert key.account_id and key.environment
    event_id = await delivery.enqueue(
        conn,
        account_id=key.account_id,
        environment=key.environment,
        event_type="webhook.test",
        data={
            "endpoint_id": endpoint_id,
            "account_id": key.account_id,
            "environment": key.environment,
        },
        now=at,
        endpoint_ids=[endpoint_id],
        every_type=True,
        lease_until=at + delivery.LEASE,  # ours to send: no worker takes it meanwhile
    )
    d = webhook_deliveries.c
    delivery_id = (
        await conn.execute(
            select(d.id).where(d.account_id == key.account_id, d.event_id == event_id)
        )
    ).scalar_one()
    (item,) = await delivery.claimed(conn, key.account_id, [delivery_id], at)
    await conn.commit()
    outcome = await delivery.send(sender, replace(item, start_by=time.monotonic() + 60))
    assert outcome is not None  # (no deadline that could pass)
    await delivery.record(conn, item, outcome, at, random.Random(), retry=False)
    await conn.commit()
    return {
        "delivery_id": delivery_id,
        "event_id": event_id,
        "succeeded": outcome.succeeded,
        "status_code": outcome.status_code,
        "error": outcome.error,
        "latency_ms": outcome.latency_ms,
    }


async def _deliveries(
    conn: AsyncConnection, key: Principal, at: datetime, limit: int, **where: str
) -> list[dict[str, Any]]:
    d, e, a = webhook_deliveries.c, webhook_events.c, webhook_attempts.c
    query = (
        select(d.id, d.event_id, d.endpoint_id, d.status, d.next_attempt_at, d.created_at, e.type)
        .join(webhook_events, and_(e.account_id == d.account_id, e.id == d.event_id))
        .where(
            d.account_id == key.account_id,
            e.environment == key.environment,
            d.created_at >= at - timedelta(days=delivery.LOG_DAYS),
        )
        .order_by(d.created_at.desc(), d.id.desc())
        .limit(limit)
    )
    for column, value in where.items():
        query = query.where(d[column] == value)
    rows = (await conn.execute(query)).all()
    attempts: dict[str, list[dict[str, Any]]] = {r.id: [] for r in rows}
    if rows:
        for t in await conn.execute(
            select(webhook_attempts)
            .where(a.account_id == key.account_id, a.delivery_id.in_(list(attempts)))
            .order_by(a.delivery_id, a.attempt)
        ):
            attempts[t.delivery_id].append(
                {
                    "attempt": t.attempt,
                    "at": iso_z(t.started_at),
                    "status_code": t.status_code,
                    "error": t.error,
                    "latency_ms": t.latency_ms,
                }
            )
    return [
        {
            "id": r.id,
            "event_id": r.event_id,
            "event_type": r.type,
            "endpoint_id": r.endpoint_id,
            "status": r.status,
            "next_attempt_at": iso_z(r.next_attempt_at) if r.next_attempt_at else None,
            "created_at": iso_z(r.created_at),
            "attempts": attempts[r.id],
        }
        for r in rows
    ]


@router.get(
    "/v1/webhook-endpoints/{endpoint_id}/deliveries",
    response_model=DeliveryList,
    summary="The endpoint's deliveries of the last 30 days, newest first",
    responses=ERRORS,
)
async def list_webhook_deliveries(
    endpoint_id: str,
    key: SecretKeyDep,
    conn: ConnectionDep,
    at: ClockDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> dict[str, Any]:
    """Each delivery with its event and every attempt: when, the status code or the error,
    and how long it took."""
    await _endpoint(conn, key, endpoint_id)
    return {"data": await _deliveries(conn, key, at, limit, endpoint_id=endpoint_id)}


@router.post(
    "/v1/webhook-deliveries/{delivery_id}/redeliver",
    status_code=202,
    response_model=DeliveryView,
    summary="Send a delivery's event again (same webhook-id), as a new delivery due now",
    responses={**ERRORS, 409: documented_error("The endpoint is disabled")},
)
async def redeliver_webhook(
    delivery_id: str, key: SecretKeyDep, conn: ConnectionDep, at: ClockDep
) -> dict[str, Any]:
    """The worker sends it with the usual retries; the receiver sees the same `webhook-id`
    and body as the original, and dedupes on it if it already has it."""
    found = await _deliveries(conn, key, at, 1, id=delivery_id)
    if not found:
        raise NotFound(f"No webhook delivery {delivery_id!r} in this account and environment.")
    original = found[0]
    endpoint = await _endpoint(conn, key, original["endpoint_id"])
    if not endpoint.enabled:
        raise Conflict("The delivery's endpoint is disabled; enable it first.")
    new = new_id("whd_")
    await conn.execute(
        insert(webhook_deliveries).values(
            account_id=key.account_id,
            id=new,
            event_id=original["event_id"],
            endpoint_id=original["endpoint_id"],
            next_attempt_at=at,
            created_at=at,
            updated_at=at,
        )
    )
    (view,) = await _deliveries(conn, key, at, 1, id=new)
    await conn.commit()
    return view
