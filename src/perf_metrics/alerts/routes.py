"""/v1/alerts (SPEC §11): alert rules of the key's account and environment; secret keys only."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from perf_metrics.alerts import rules
from perf_metrics.alerts.tables import alerts
from perf_metrics.auth import Principal, SecretKeyDep
from perf_metrics.deps import ClockDep, ConnectionDep
from perf_metrics.errors import InvalidParameter, documented_error
from perf_metrics.keys import new_id
from perf_metrics.owned import mine, owned, within_limit
from perf_metrics.webhooks.routes import ERRORS, Deleted
from perf_metrics.webhooks.tables import webhook_endpoints, webhook_events
from perf_metrics.zones import iso_z

router = APIRouter(tags=["alerts"])

MAX_ALERTS = 20  # per account and environment

ALERT_ERRORS = {**ERRORS, 404: documented_error("No such alert in this account and environment")}


class AlertCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, examples=["Budget: month-end forecast"])
    type: str = Field(
        description="projected_month_end, month_to_date_cost, failure_rate or provider_status.",
        examples=["projected_month_end"],
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="By type: budget_usd (the budget types); threshold, window_minutes "
        "(default 60), min_calls (default 20) (failure_rate); provider, level (degraded or "
        "outage, default outage) (provider_status).",
        examples=[{"budget_usd": 5000}],
    )
    endpoint_ids: list[str] | None = Field(
        None, description="Where its events go; null or absent: every endpoint of the account."
    )
    enabled: bool = True


class AlertUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(
        None, min_length=1, max_length=200, description="A new name; absent (or null): kept."
    )
    params: dict[str, Any] | None = Field(
        None, description="New params (all of them, as at creation); absent or null: kept."
    )
    endpoint_ids: list[str] | None = Field(
        None, description="New endpoints; null: every endpoint of the account; absent: kept."
    )
    enabled: bool | None = Field(None, description="absent or null: kept.")


class Alert(BaseModel):
    id: str = Field(examples=["al_2b9XkQ..."])
    name: str
    type: str
    params: dict[str, Any]
    endpoint_ids: list[str] | None = Field(description="null: every endpoint of the account.")
    enabled: bool
    state: str = Field(description="ok or firing.")
    value: Any = Field(
        description="The last evaluation's value: USD for the budget types, a rate (null "
        "with no calls) for failure_rate, a status (operational, degraded, outage, unknown) "
        "for provider_status; null before the first evaluation."
    )
    evaluated_at: str | None = Field(description="Its last evaluation; null before the first.")
    last_error: str | None = Field(
        description="Why the last evaluation failed; null when it did not."
    )
    sequence: int = Field(description="Its last event's sequence (0: none yet).")
    environment: str
    next_evaluation_at: str
    created_at: str
    updated_at: str


class AlertList(BaseModel):
    data: list[Alert]


class Preview(BaseModel):
    alert_id: str
    type: str
    value: Any
    breached: bool = Field(description="Whether the value is at or past the rule's level now.")
    state: str
    state_after: str = Field(description="The state this evaluation would leave.")
    would_send: str | None = Field(
        description="The event it would send (alert.firing, alert.resolved); null: none."
    )
    evaluated_at: str


class AlertEvent(BaseModel):
    id: str = Field(description="The event's id: its deliveries' webhook-id.")
    type: str
    timestamp: str
    data: dict[str, Any]


class AlertEventList(BaseModel):
    data: list[AlertEvent]


def _view(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "type": row.type,
        "params": row.params,
        "endpoint_ids": row.endpoint_ids,
        "enabled": row.enabled,
        "state": row.state,
        "value": row.value,
        "evaluated_at": iso_z(row.evaluated_at) if row.evaluated_at else None,
        "last_error": row.last_error,
        "sequence": row.sequence,
        "environment": row.environment,
        "next_evaluation_at": iso_z(row.next_eval_at),
        "created_at": iso_z(row.created_at),
        "updated_at": iso_z(row.updated_at),
    }


async def _alert(conn: AsyncConnection, key: Principal, alert_id: str) -> Any:
    return await owned(conn, alerts, key, alert_id, "alert")


async def _checked_endpoints(
    conn: AsyncConnection, key: Principal, endpoint_ids: list[str] | None
) -> list[str] | None:
    if endpoint_ids is None:
        return None
    wanted = sorted(set(endpoint_ids))
    w = webhook_endpoints
    found = set(
        (await conn.execute(select(w.c.id).where(mine(w, key), w.c.id.in_(wanted)))).scalars()
    )
    missing = [e for e in wanted if e not in found]
    if missing:
        raise InvalidParameter(
            f"No webhook endpoint {missing[0]!r} in this account and environment.",
            param="endpoint_ids",
        )
    return wanted


@router.post(
    "/v1/alerts",
    status_code=201,
    response_model=Alert,
    summary="Create an alert rule (evaluated at once, then on its cadence)",
    responses=ALERT_ERRORS,
)
async def create_alert(
    body: AlertCreate, key: SecretKeyDep, conn: ConnectionDep, at: ClockDep
) -> dict[str, Any]:
    """At most 20 alerts per account and environment. The worker evaluates a new rule at
    once, then every minute (failure_rate), 5 minutes (month_to_date_cost, provider_status)
    or hour (projected_month_end)."""
    params = rules.checked_params(body.type, body.params)
    endpoint_ids = await _checked_endpoints(conn, key, body.endpoint_ids)
    await within_limit(conn, alerts, key, MAX_ALERTS, "alerts")
    row = (
        await conn.execute(
            insert(alerts)
            .values(
                account_id=key.account_id,
                id=new_id("al_"),
                environment=key.environment,
                name=body.name,
                type=body.type,
                params=params,
                endpoint_ids=endpoint_ids,
                enabled=body.enabled,
                next_eval_at=at,
                created_at=at,
                updated_at=at,
            )
            .returning(alerts)
        )
    ).one()
    await conn.commit()  # before the answer: a 201 is a promise that it is stored
    return _view(row)


@router.get("/v1/alerts", response_model=AlertList, summary="List the alerts", responses=ERRORS)
async def list_alerts(key: SecretKeyDep, conn: ConnectionDep) -> dict[str, Any]:
    """Every alert of the account and environment, each with its state and last value."""
    rows = await conn.execute(
        select(alerts).where(mine(alerts, key)).order_by(alerts.c.created_at, alerts.c.id)
    )
    return {"data": [_view(r) for r in rows]}


@router.get(
    "/v1/alerts/{alert_id}", response_model=Alert, summary="One alert", responses=ALERT_ERRORS
)
async def get_alert(alert_id: str, key: SecretKeyDep, conn: ConnectionDep) -> dict[str, Any]:
    return _view(await _alert(conn, key, alert_id))


@router.patch(
    "/v1/alerts/{alert_id}",
    response_model=Alert,
    summary="Change an alert (name, params, endpoint_ids, enabled)",
    responses=ALERT_ERRORS,
)
async def update_alert(
    alert_id: str, body: AlertUpdate, key: SecretKeyDep, conn: ConnectionDep, at: ClockDep
) -> dict[str, Any]:
    """New params are evaluated at once; the state is kept (a change that moves the value
    across the level sends its event at that evaluation). Its type cannot change."""
    row = await _alert(conn, key, alert_id)
    given = body.model_fields_set
    values: dict[str, Any] = {}
    if "name" in given:
        if body.name is None:
            raise InvalidParameter("'name' may not be null.", param="name")
        values["name"] = body.name
    if "params" in given:
        values["params"] = rules.checked_params(row.type, body.params)
        values["next_eval_at"] = at
        values["streak"] = 0
    if "endpoint_ids" in given:
        values["endpoint_ids"] = await _checked_endpoints(conn, key, body.endpoint_ids)
    if "enabled" in given and body.enabled is not None:
        values["enabled"] = body.enabled
        if body.enabled and not row.enabled:
            values["next_eval_at"] = at
    if values:
        await conn.execute(
            update(alerts)
            .where(mine(alerts, key), alerts.c.id == alert_id)
            .values(**values, updated_at=at)
        )
    view = _view(await _alert(conn, key, alert_id))
    await conn.commit()
    return view


@router.delete(
    "/v1/alerts/{alert_id}",
    response_model=Deleted,
    summary="Delete an alert",
    responses=ALERT_ERRORS,
)
async def delete_alert(alert_id: str, key: SecretKeyDep, conn: ConnectionDep) -> dict[str, Any]:
    """Its events already written are still delivered."""
    await _alert(conn, key, alert_id)
    await conn.execute(delete(alerts).where(mine(alerts, key), alerts.c.id == alert_id))
    await conn.commit()
    return {"id": alert_id, "deleted": True}


@router.post(
    "/v1/alerts/{alert_id}/preview",
    response_model=Preview,
    summary="Evaluate an alert now; nothing is written or sent",
    responses=ALERT_ERRORS,
)
async def preview_alert(
    alert_id: str, key: SecretKeyDep, conn: ConnectionDep, at: ClockDep
) -> dict[str, Any]:
    row = await _alert(conn, key, alert_id)
    return await rules.preview(conn, row, key.timezone, at)


@router.get(
    "/v1/alerts/{alert_id}/events",
    response_model=AlertEventList,
    summary="The alert's events of the last 30 days, newest first",
    responses=ALERT_ERRORS,
)
async def list_alert_events(
    alert_id: str, key: SecretKeyDep, conn: ConnectionDep
) -> dict[str, Any]:
    """Each event as it was sent (`type`, `timestamp`, `data`), with its id."""
    await _alert(conn, key, alert_id)
    e = webhook_events.c
    rows = await conn.execute(
        select(e.id, e.body)
        .where(e.account_id == key.account_id, e.environment == key.environment)
        .where(e.alert_id == alert_id)
        .order_by(e.created_at.desc(), e.id.desc())
        .limit(100)
    )
    found = [{"id": r.id, **orjson.loads(r.body)} for r in rows]
    # Its sequence orders them where two share an instant (evaluations on one clock tick).
    return {"data": sorted(found, key=lambda e: -e["data"]["sequence"])}
