"""The price table (SPEC §14): list prices per model, USD per million tokens, each with the
day it takes effect. A new price is a new row, never an overwrite, so the days before it keep
the price they had: customer's `vs_gpt4o_only` and `vs_baseline` price each day of a window at
the price in force that day (metrics/customer.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from perf_metrics.accounts import AdminError
from perf_metrics.db import model_prices

MAX_PRICE = Decimal("999999.999999")  # numeric(12, 6)


def checked_price(name: str, text: str) -> Decimal:
    """A price in USD per million tokens: 0 or more, at most 6 decimals."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise AdminError(f"{name} must be a number of USD per million tokens, e.g. 2.50") from None
    if not value.is_finite() or value < 0 or value > MAX_PRICE:
        raise AdminError(f"{name} must be from 0 to {MAX_PRICE} USD per million tokens")
    if value != value.quantize(Decimal("0.000001")):
        raise AdminError(f"{name} has more than 6 decimals")
    return value


def _view(row: Any, today: date, current: dict[str, date]) -> dict[str, Any]:
    return {
        "model": row.model,
        "provider": row.provider,
        "input_usd_per_mtok": str(row.input_usd_per_mtok),
        "output_usd_per_mtok": str(row.output_usd_per_mtok),
        "effective_from": row.effective_from.isoformat(),
        "in_force_today": current.get(row.model) == row.effective_from,
    }


async def list_prices(
    conn: AsyncConnection, model: str | None = None, today: date | None = None
) -> list[dict[str, Any]]:
    """Every price row (of `model`), by model and then the day it takes effect, marking the
    one in force today (UTC): the latest to have taken effect, or a model's first if none
    has yet."""
    today = today or datetime.now(UTC).date()
    query = select(model_prices).order_by(model_prices.c.model, model_prices.c.effective_from)
    if model is not None:
        query = query.where(model_prices.c.model == model)
    rows = (await conn.execute(query)).all()
    if model is not None and not rows:
        raise AdminError(f"no price for model {model!r}")
    current: dict[str, date] = {}
    for row in rows:  # oldest first: the last one on or before today wins
        if row.model not in current or row.effective_from <= today:
            current[row.model] = row.effective_from
    return [_view(row, today, current) for row in rows]


async def set_price(
    conn: AsyncConnection,
    model: str,
    *,
    provider: str | None,
    input_usd_per_mtok: Decimal,
    output_usd_per_mtok: Decimal,
    effective_from: date | None = None,
) -> list[dict[str, Any]]:
    """The model's price from `effective_from` (default today, UTC) until its next one; a
    price already set for that very day is corrected. Returns the model's prices."""
    if not model or len(model) > 100:
        raise AdminError("a model name is 1-100 characters")
    effective_from = effective_from or datetime.now(UTC).date()
    if provider is None:
        latest = (
            await conn.execute(
                select(model_prices.c.provider)
                .where(model_prices.c.model == model)
                .order_by(model_prices.c.effective_from.desc())
                .limit(1)
            )
        ).scalar_one_or_none()
        if latest is None:
            raise AdminError(f"{model!r} has no price yet: give its --provider")
        provider = latest
    if not provider or len(provider) > 100:
        raise AdminError("a provider name is 1-100 characters")
    values = {
        "provider": provider,
        "input_usd_per_mtok": input_usd_per_mtok,
        "output_usd_per_mtok": output_usd_per_mtok,
        "updated_at": datetime.now(UTC),
    }
    statement = insert(model_prices).values(model=model, effective_from=effective_from, **values)
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=[model_prices.c.model, model_prices.c.effective_from], set_=values
        )
    )
    return await list_prices(conn, model)
