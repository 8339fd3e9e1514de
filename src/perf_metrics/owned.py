"""What a secret key's management routes share (SPEC §11): the rows of the key's account and
environment, one of them by id or a 404, and a per-account limit that holds under concurrency.

Every lookup is by account and environment as well as id, so another account's id answers as
an unknown one does.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, and_, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from perf_metrics.auth import Principal
from perf_metrics.errors import InvalidParameter, NotFound


def mine(table: Table, key: Principal) -> Any:
    """The rows of `table` that belong to the key's account and environment."""
    return and_(table.c.account_id == key.account_id, table.c.environment == key.environment)


async def owned(conn: AsyncConnection, table: Table, key: Principal, row_id: str, noun: str) -> Any:
    """The key's row of `table` with this id, or a 404 naming the `noun`."""
    row = (
        await conn.execute(select(table).where(mine(table, key), table.c.id == row_id))
    ).one_or_none()
    if row is None:
        raise NotFound(f"No {noun} {row_id!r} in this account and environment.")
    return row


async def within_limit(
    conn: AsyncConnection, table: Table, key: Principal, limit: int, nouns: str
) -> None:
    """A 400 `limit_reached` if the key's account and environment has `limit` rows already.
    The creations of one account and environment wait for each other here until commit, so
    two at once cannot both pass the count."""
    await conn.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
        {"k": f"{table.name}:{key.account_id}:{key.environment}"},
    )
    count = (
        await conn.execute(select(func.count()).select_from(table).where(mine(table, key)))
    ).scalar_one()
    if count >= limit:
        raise InvalidParameter(
            f"An account has at most {limit} {nouns} per environment; delete one first.",
            code="limit_reached",
        )
