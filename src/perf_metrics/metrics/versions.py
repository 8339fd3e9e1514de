"""What an answer's cache entry is tagged with besides the account's data version (which the
key lookup reads): the price table for customer, every account's versions for providers. Each
is read in the request's snapshot, before the cache is consulted."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends
from sqlalchemy import BigInteger, Text, bindparam, cast, func, select

from perf_metrics.auth import MetricsKeyDep
from perf_metrics.db import account_versions, model_prices
from perf_metrics.deps import ReadSnapshotDep

PLATFORM_VERSION = select(
    cast(func.coalesce(func.sum(account_versions.c.version), 0), BigInteger),
    func.count(),
).where(account_versions.c.environment == bindparam("environment", type_=Text))


PRICES_VERSION = select(func.max(model_prices.c.updated_at), func.count()).select_from(model_prices)


async def prices_version(conn: ReadSnapshotDep) -> tuple[Any, int]:
    """Changes when the price table does (customer's savings use gpt-4o's list price)."""
    row = (await conn.execute(PRICES_VERSION)).one()
    return row[0], int(row[1])


async def platform_version(key: MetricsKeyDep, conn: ReadSnapshotDep) -> tuple[int, int]:
    """Changes with every batch committed in the key's environment, for any account."""
    row = (await conn.execute(PLATFORM_VERSION, {"environment": key.environment})).one()
    return int(row[0]), int(row[1])


# Read in the answer's snapshot, before the cache is consulted.
PricesVersionDep = Annotated[tuple[Any, int], Depends(prices_version)]
PlatformVersionDep = Annotated[tuple[int, int], Depends(platform_version)]
