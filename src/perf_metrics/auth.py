"""The bearer dependencies (SPEC §3): who is calling, and what the key may do.

A key's format, generation and hash are `keys.py`; here it is looked up (one query, with its
account and the account's data version), checked for its kind, and charged to its limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import LargeBinary, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from perf_metrics.db import account_versions, accounts, api_keys
from perf_metrics.deps import ConnectionDep, EngineDep, LimiterDep, ReadSnapshotDep, SettingsDep
from perf_metrics.errors import AuthenticationError, PermissionDenied
from perf_metrics.keys import Environment, KeyKind, hash_key, is_well_formed
from perf_metrics.ratelimit import Limiter, client_address
from perf_metrics.settings import TIER_LIMITS, Settings

LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key and, for customer keys, its account."""

    key_id: str
    kind: KeyKind
    environment: Environment | None
    account_id: str | None
    account_name: str | None
    tier: str | None
    # What a cached answer for this account must match: the account's data version in the
    # key's environment (bumped by every committed batch) and its settings' last change.
    data_version: int = 0
    settings_changed_at: datetime | None = None
    # The IANA zone the account's days are counted in (SPEC §9), read in the same snapshot as
    # its data: an answer never mixes two zones.
    timezone: str = "UTC"
    # The metadata keys its breakdowns can group by (SPEC §10), read in the same snapshot.
    tracked_metadata_keys: tuple[str, ...] = ()
    monthly_budget_usd: Decimal | None = None  # SPEC §14; None: no budget

    @property
    def rate_limit_per_minute(self) -> int | None:
        return TIER_LIMITS.get(self.tier) if self.tier else None


# Built once: the key, its account, and the account's data version in the key's environment.
KEY_LOOKUP = (
    select(
        api_keys.c.id,
        api_keys.c.kind,
        api_keys.c.environment,
        api_keys.c.account_id,
        api_keys.c.revoked_at,
        api_keys.c.last_used_at,
        accounts.c.name,
        accounts.c.tier,
        accounts.c.updated_at,
        accounts.c.timezone,
        accounts.c.tracked_metadata_keys,
        accounts.c.monthly_budget_usd,
        account_versions.c.version,
    )
    .select_from(
        api_keys.outerjoin(accounts, accounts.c.id == api_keys.c.account_id).outerjoin(
            account_versions,
            (account_versions.c.account_id == api_keys.c.account_id)
            & (account_versions.c.environment == api_keys.c.environment),
        )
    )
    .where(api_keys.c.key_hash == bindparam("key_hash", type_=LargeBinary))
)


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization")
    if header is None:
        raise AuthenticationError(
            "No API key provided. Send 'Authorization: Bearer <key>'.", code="missing_api_key"
        )
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token or token != token.strip() or " " in token:
        raise AuthenticationError(
            "Malformed Authorization header. Send 'Authorization: Bearer <key>'."
        )
    return token


async def authenticate(conn: AsyncConnection, token: str, defer_touch: Any = None) -> Principal:
    """The key's principal. Its last-used time is written at most once a minute; with
    `defer_touch`, that write is handed over (the request's transaction may be read-only)."""
    if not is_well_formed(token):
        raise AuthenticationError("Invalid API key.")
    row = (await conn.execute(KEY_LOOKUP, {"key_hash": hash_key(token)})).one_or_none()
    if row is None or row.revoked_at is not None:
        raise AuthenticationError("Invalid API key.")
    now = datetime.now(UTC)
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:

        async def touch(c: AsyncConnection) -> None:
            # The guard keeps concurrent requests of one key from piling up writes.
            await c.execute(
                update(api_keys)
                .where(api_keys.c.id == row.id)
                .where(
                    (api_keys.c.last_used_at.is_(None))
                    | (api_keys.c.last_used_at < now - LAST_USED_RESOLUTION)
                )
                .values(last_used_at=now)
            )
            await c.commit()

        if defer_touch is None:
            await touch(conn)
        else:
            defer_touch(touch)
    return Principal(
        key_id=row.id,
        kind=row.kind,
        environment=row.environment,
        account_id=row.account_id,
        account_name=row.name,
        tier=row.tier,
        data_version=row.version or 0,
        settings_changed_at=row.updated_at,
        timezone=row.timezone or "UTC",
        tracked_metadata_keys=tuple(row.tracked_metadata_keys or ()),
        monthly_budget_usd=row.monthly_budget_usd,
    )


async def _authenticate_request(
    request: Request,
    conn: AsyncConnection,
    limiter: Limiter,
    settings: Settings,
    defer_touch: Any = None,
) -> Principal:
    try:
        principal = await authenticate(conn, bearer_token(request), defer_touch)
    except AuthenticationError:
        # Failed attempts are budgeted per client address (429 past it), never per account.
        await limiter.enforce(
            request,
            f"unauth:{client_address(request)}",
            settings.unauthenticated_rate_limit_per_minute,
        )
        raise
    request.state.principal = principal
    return principal


def _touch_after_answer(request: Request) -> Any:
    """The key's last_used_at, written by the connection dependency once the route has
    answered (deps.get_connection)."""
    return lambda touch: setattr(request.state, "touch_key", touch)


async def _principal(
    request: Request, conn: ConnectionDep, limiter: LimiterDep, settings: SettingsDep
) -> Principal:
    """On the request's connection."""
    return await _authenticate_request(
        request, conn, limiter, settings, _touch_after_answer(request)
    )


async def _principal_in_snapshot(
    request: Request, conn: ReadSnapshotDep, limiter: LimiterDep, settings: SettingsDep
) -> Principal:
    """On the request's connection, in the read snapshot its answer is computed in: the key's
    data version (the answer cache's tag) is read with the data itself."""
    return await _authenticate_request(
        request, conn, limiter, settings, _touch_after_answer(request)
    )


async def _principal_briefly(
    request: Request, engine: EngineDep, limiter: LimiterDep, settings: SettingsDep
) -> Principal:
    """On a connection of its own, returned to the pool at once: the ingest route then reads
    and validates up to 10 MB of body holding no connection and no open transaction."""
    async with engine.connect() as conn:
        principal = await _authenticate_request(request, conn, limiter, settings)
        await conn.commit()
    return principal


# The keys of an account: customer keys (pk_) read; secret keys (sk_live_, sk_test_) read too,
# and manage its alerts and webhook endpoints (SPEC §11).
ACCOUNT_KINDS = ("customer", "secret")


def _require_customer(principal: Principal) -> Principal:
    if principal.kind not in ACCOUNT_KINDS:
        raise PermissionDenied("This route needs a customer key (pk_live_ or pk_test_).")
    return principal


def _require_secret(principal: Principal) -> Principal:
    if principal.kind != "secret":
        raise PermissionDenied(
            "This route needs a secret key (sk_live_ or sk_test_): a customer key (pk_) can "
            "read metrics but never manage alerts or send data elsewhere."
        )
    return principal


async def _customer_key(principal: Annotated[Principal, Depends(_principal)]) -> Principal:
    return _require_customer(principal)


async def _ingest_key(
    request: Request,
    principal: Annotated[Principal, Depends(_principal_briefly)],
    limiter: LimiterDep,
    settings: SettingsDep,
) -> Principal:
    if principal.kind != "ingest":
        raise PermissionDenied("This route needs an ingest key (sk_ingest_).")
    limit = settings.ingest_rate_limit_per_minute
    await limiter.enforce(request, f"ingest:{principal.key_id}", limit)
    return principal


@dataclass(frozen=True, slots=True)
class _DeferredCharge:
    """The tier charge of a conditional request, left to the route: due unless it answers
    304 for a copy the client holds."""

    limiter: Limiter
    account_id: str
    limit: int


async def _metrics_key(
    request: Request,
    principal: Annotated[Principal, Depends(_principal_in_snapshot)],
    limiter: LimiterDep,
) -> Principal:
    """A customer key, counted against its account's per-tier budget (shared by its keys).
    A conditional request spends the budget of conditional requests now and the tier's later,
    unless the route answers 304 (`charge_metrics_request`)."""
    _require_customer(principal)
    assert principal.account_id is not None
    limit = principal.rate_limit_per_minute or 0
    if request.headers.get("if-none-match"):
        await limiter.enforce_conditional(request, principal.account_id, limit)
        request.state.deferred_metrics_charge = _DeferredCharge(
            limiter, principal.account_id, limit
        )
    else:
        await limiter.enforce_metrics(request, principal.account_id, limit)
    return principal


def _deferred_charge(request: Request) -> _DeferredCharge | None:
    """The tier charge `_metrics_key` left to the route; None for any other request."""
    deferred: _DeferredCharge | None = getattr(request.state, "deferred_metrics_charge", None)
    return deferred


async def refuse_if_tier_spent(request: Request) -> None:
    """Before a conditional request computes an answer: 429 if its tier's budget is spent."""
    deferred = _deferred_charge(request)
    if deferred is not None:
        await deferred.limiter.refuse_if_spent(request, deferred.account_id, deferred.limit)


async def charge_metrics_request(request: Request, *, not_modified: bool) -> None:
    """The tier's charge `_metrics_key` left to the route, if it left one: none for a 304."""
    deferred = _deferred_charge(request)
    if deferred is None:
        return
    if not_modified:
        await deferred.limiter.show_tier_budget(request, deferred.account_id, deferred.limit)
    else:
        await deferred.limiter.enforce_metrics(request, deferred.account_id, deferred.limit)


async def _secret_key(
    request: Request,
    principal: Annotated[Principal, Depends(_principal)],
    limiter: LimiterDep,
) -> Principal:
    """A secret key, counted against its account's per-tier budget like a metrics read."""
    _require_secret(principal)
    assert principal.account_id is not None
    await limiter.enforce_metrics(
        request, principal.account_id, principal.rate_limit_per_minute or 0
    )
    return principal


CustomerKeyDep = Annotated[Principal, Depends(_customer_key)]
SecretKeyDep = Annotated[Principal, Depends(_secret_key)]
IngestKeyDep = Annotated[Principal, Depends(_ingest_key)]
MetricsKeyDep = Annotated[Principal, Depends(_metrics_key)]
