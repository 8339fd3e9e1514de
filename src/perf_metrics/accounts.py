"""Accounts and keys: the admin operations behind the CLI (SPEC §3, §8)."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from perf_metrics.calls.schema import TASK_TYPES
from perf_metrics.db import accounts, api_keys
from perf_metrics.keys import generate_key, hash_key, new_key_id
from perf_metrics.settings import TIER_LIMITS
from perf_metrics.zones import canonical_zone_name

ACCOUNT_ID = re.compile(r"^acct_[A-Za-z0-9_]{1,59}$")
# A tracked metadata key: written in `group_by=metadata.<key>` and in a comma-separated list.
METADATA_KEY = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
MAX_TRACKED_KEYS = 5


class AdminError(ValueError):
    """A refused admin operation; the CLI prints it and exits non-zero."""


def new_account_id() -> str:
    return "acct_" + secrets.token_hex(8)


def _check_unit(name: str, value: float | None) -> None:
    if value is not None and not 0 <= value <= 1:
        raise AdminError(f"{name} must be between 0 and 1")


async def checked_zone(conn: AsyncConnection, name: str) -> str:
    """The canonical spelling of the IANA zone `name`, which both Python's zone database and
    the database server's know (the fold counts days with the server's). AdminError, saying
    what to write instead, for anything else."""
    try:
        zone = canonical_zone_name(name)
    except ValueError as exc:
        raise AdminError(str(exc)) from None
    try:
        async with conn.begin_nested():
            await conn.execute(text("SELECT now() AT TIME ZONE :zone"), {"zone": zone})
    except DBAPIError:
        raise AdminError(
            f"The database server's zone database does not know {zone}: update its tzdata "
            "package (or use a zone both know)."
        ) from None
    return zone


def checked_metadata_keys(keys: list[str]) -> list[str]:
    """The metadata keys to track, in order, each once; AdminError for more than
    MAX_TRACKED_KEYS or a key that is not 1-64 of letters, digits and `_.:-`."""
    wanted = list(dict.fromkeys(k.strip() for k in keys if k.strip()))
    bad = [k for k in wanted if not METADATA_KEY.match(k)]
    if bad:
        raise AdminError(
            f"metadata key {bad[0]!r}: a tracked key is 1-64 letters, digits or _ . : -"
        )
    if len(wanted) > MAX_TRACKED_KEYS:
        raise AdminError(
            f"at most {MAX_TRACKED_KEYS} metadata keys can be tracked, got {len(wanted)}: "
            + ", ".join(wanted)
        )
    return wanted


async def create_account(
    conn: AsyncConnection,
    *,
    name: str,
    tier: str,
    account_id: str | None = None,
    timezone: str = "UTC",
    tracked_metadata_keys: list[str] | None = None,
) -> dict[str, Any]:
    """A new account. Its tracked keys are set here only because it has no calls yet: later
    changes recount its history (rollups/rezone.py)."""
    account_id = account_id or new_account_id()
    if not ACCOUNT_ID.match(account_id):
        raise AdminError("account id must look like acct_[A-Za-z0-9_]{1,59}")
    if tier not in TIER_LIMITS:
        raise AdminError(f"tier must be one of {', '.join(TIER_LIMITS)}")
    if not name.strip():
        raise AdminError("name must not be empty")
    exists = await conn.scalar(select(accounts.c.id).where(accounts.c.id == account_id))
    if exists:
        raise AdminError(f"account {account_id} already exists")
    zone = await checked_zone(conn, timezone)
    keys = checked_metadata_keys(tracked_metadata_keys or [])
    now = datetime.now(UTC)
    await conn.execute(
        insert(accounts).values(
            id=account_id,
            name=name,
            tier=tier,
            cost_vs_quality_ratio=0.5,
            latency_sensitivity=0.5,
            preferred_models=[],
            task_overrides={},
            timezone=zone,
            tracked_metadata_keys=keys,
            created_at=now,
            updated_at=now,
        )
    )
    return await get_account(conn, account_id)


class Unset:
    """A parameter not given (where None means something: clear it)."""


UNSET = Unset()
MAX_BUDGET = Decimal("999999999999.99")  # numeric(14, 2)


def checked_budget(budget: Decimal | None) -> Decimal | None:
    """A monthly budget in USD: more than 0, whole cents at most; None clears it."""
    if budget is None:
        return None
    if not budget.is_finite() or budget <= 0 or budget > MAX_BUDGET:
        raise AdminError(f"the monthly budget must be more than 0 and at most {MAX_BUDGET} USD")
    if budget != budget.quantize(Decimal("0.01")):
        raise AdminError("the monthly budget is in USD with at most 2 decimals (cents)")
    return budget


async def get_account(conn: AsyncConnection, account_id: str) -> dict[str, Any]:
    row = (
        (await conn.execute(select(accounts).where(accounts.c.id == account_id)))
        .mappings()
        .one_or_none()
    )
    if row is None:
        raise AdminError(f"no account {account_id}")
    return {
        "account_id": row["id"],
        "name": row["name"],
        "tier": row["tier"],
        "timezone": row["timezone"],
        "tracked_metadata_keys": list(row["tracked_metadata_keys"]),
        "monthly_budget_usd": (
            None if row["monthly_budget_usd"] is None else str(row["monthly_budget_usd"])
        ),
        "settings": {
            "cost_vs_quality_ratio": row["cost_vs_quality_ratio"],
            "latency_sensitivity": row["latency_sensitivity"],
            "preferred_models": list(row["preferred_models"]),
            "task_overrides": dict(row["task_overrides"]),
        },
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
    }


async def update_account(
    conn: AsyncConnection,
    account_id: str,
    *,
    tier: str | None = None,
    cost_vs_quality_ratio: float | None = None,
    latency_sensitivity: float | None = None,
    preferred_models: list[str] | None = None,
    task_overrides: dict[str, str] | None = None,
    monthly_budget_usd: Decimal | Unset | None = UNSET,
) -> dict[str, Any]:
    """Change what is given; `monthly_budget_usd` None clears the budget."""
    await get_account(conn, account_id)  # raises when missing
    values: dict[str, Any] = {}
    if tier is not None:
        if tier not in TIER_LIMITS:
            raise AdminError(f"tier must be one of {', '.join(TIER_LIMITS)}")
        values["tier"] = tier
    _check_unit("cost_vs_quality_ratio", cost_vs_quality_ratio)
    _check_unit("latency_sensitivity", latency_sensitivity)
    if cost_vs_quality_ratio is not None:
        values["cost_vs_quality_ratio"] = cost_vs_quality_ratio
    if latency_sensitivity is not None:
        values["latency_sensitivity"] = latency_sensitivity
    if preferred_models is not None:
        if any(not m or len(m) > 100 for m in preferred_models):
            raise AdminError("preferred models must be 1-100 characters each")
        values["preferred_models"] = preferred_models
    if task_overrides is not None:
        for task, model in task_overrides.items():
            if task not in TASK_TYPES:
                raise AdminError(f"unknown task type {task!r}; one of {', '.join(TASK_TYPES)}")
            if not model or len(model) > 100:
                raise AdminError("override models must be 1-100 characters")
        values["task_overrides"] = task_overrides
    if not isinstance(monthly_budget_usd, Unset):
        values["monthly_budget_usd"] = checked_budget(monthly_budget_usd)
    if values:
        values["updated_at"] = datetime.now(UTC)
        await conn.execute(update(accounts).where(accounts.c.id == account_id).values(**values))
    return await get_account(conn, account_id)


async def create_key(
    conn: AsyncConnection,
    *,
    account_id: str | None,
    environment: str = "live",
    ingest: bool = False,
    secret: bool = False,
    name: str | None = None,
) -> dict[str, Any]:
    """Create a key; the only time the secret is ever returned. An account's key is a customer
    key (`pk_`), or with `secret` a secret key (`sk_live_`, `sk_test_`: SPEC §11)."""
    if ingest:
        prefix, kind, env, account_id = "sk_ingest_", "ingest", None, None
    else:
        if account_id is None:
            raise AdminError("an account's key needs --account")
        await get_account(conn, account_id)
        if environment not in ("live", "test"):
            raise AdminError("environment must be live or test")
        if secret:
            prefix, kind, env = f"sk_{environment}_", "secret", environment
        else:
            prefix, kind, env = f"pk_{environment}_", "customer", environment
    key = generate_key(prefix)
    key_id = new_key_id()
    await conn.execute(
        insert(api_keys).values(
            id=key_id,
            account_id=account_id,
            kind=kind,
            environment=env,
            name=name,
            key_hash=hash_key(key),
            display_prefix=key[: len(prefix) + 4],
            last4=key[-4:],
            created_at=datetime.now(UTC),
        )
    )
    return {
        "key": key,
        "key_id": key_id,
        "kind": kind,
        "account_id": account_id,
        "environment": env,
        "name": name,
    }


def _key_view(row: Any) -> dict[str, Any]:
    return {
        "key_id": row.id,
        "kind": row.kind,
        "account_id": row.account_id,
        "environment": row.environment,
        "name": row.name,
        "display": f"{row.display_prefix}...{row.last4}",
        "created_at": row.created_at.isoformat(),
        "last_used_at": row.last_used_at.isoformat() if row.last_used_at else None,
        "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
    }


async def list_keys(conn: AsyncConnection, *, account_id: str | None) -> list[dict[str, Any]]:
    query = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
    if account_id is None:
        query = query.where(api_keys.c.kind == "ingest")
    else:
        await get_account(conn, account_id)
        query = query.where(api_keys.c.account_id == account_id)
    return [_key_view(row) for row in (await conn.execute(query)).all()]


async def revoke_key(conn: AsyncConnection, key_id: str) -> dict[str, Any]:
    row = (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).one_or_none()
    if row is None:
        raise AdminError(f"no key {key_id}")
    if row.revoked_at is None:
        await conn.execute(
            update(api_keys).where(api_keys.c.id == key_id).values(revoked_at=datetime.now(UTC))
        )
        row = (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).one()
    return _key_view(row)
