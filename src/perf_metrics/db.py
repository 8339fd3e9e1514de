"""Tables, the engine factory and the per-request connection dependency.

The schema itself is owned by the Alembic migrations in `perf_metrics/migrations`; the
`Table` objects here describe it for queries (SQLAlchemy Core) and must agree with them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    SmallInteger,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from perf_metrics.settings import Settings

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING_CONVENTION)

# Money: NUMERIC with 12 decimals. Sums over millions of calls stay exact to the cent and far
# beyond; floats would not.
Money = Numeric(20, 12)

accounts = Table(
    "accounts",
    metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("tier", Text, nullable=False),
    Column("cost_vs_quality_ratio", Float, nullable=False),
    Column("latency_sensitivity", Float, nullable=False),
    Column("preferred_models", ARRAY(Text), nullable=False),
    Column("task_overrides", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Text, primary_key=True),
    Column("account_id", Text),  # null for ingest keys (platform-wide)
    Column("kind", Text, nullable=False),  # customer | ingest
    Column("environment", Text),  # live | test for customer keys, null for ingest keys
    Column("name", Text),
    Column("key_hash", LargeBinary, nullable=False, unique=True),
    Column("display_prefix", Text, nullable=False),
    Column("last4", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
    Column("last_used_at", DateTime(timezone=True)),
)

model_prices = Table(
    "model_prices",
    metadata,
    Column("model", Text, primary_key=True),
    Column("provider", Text, nullable=False),
    Column("input_usd_per_mtok", Numeric(12, 6), nullable=False),
    Column("output_usd_per_mtok", Numeric(12, 6), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

calls = Table(
    "calls",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("call_id", Text, primary_key=True),
    Column("environment", Text, nullable=False),
    Column("api_key_id", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("task_type", Text, nullable=False),
    Column("complexity_score", Float),
    Column("model", Text, nullable=False),
    Column("provider", Text, nullable=False),
    Column("initial_model", Text),
    Column("initial_provider", Text),
    Column("input_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("cost_usd", Money, nullable=False),
    Column("latency_ms", Integer, nullable=False),
    Column("status", Text, nullable=False),
    Column("failure_mode", Text),
    Column("failure_trigger", Text),
    Column("recovery", Text),
    Column("retry_count", Integer, nullable=False),
    Column("fallback_used", Boolean, nullable=False),
    Column("quality_score", Float),
    Column("message_count", Integer),
    Column("max_cost_per_call", Money),
    Column("cost_ceiling_hit", Boolean, nullable=False),
    Column("user_id", Text),
    Column("metadata", JSONB),
    Column("ingested_at", DateTime(timezone=True), nullable=False),
)

# --- Rollups (see docs/rollups.md). Maintained by the ingest write path, in its transaction.

account_daily = Table(
    "rollup_account_daily",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("environment", Text, primary_key=True),
    Column("day", Date, primary_key=True),
    Column("calls", BigInteger, nullable=False),
    Column("successes", BigInteger, nullable=False),
    Column("routed_right", BigInteger, nullable=False),
    Column("fallbacks", BigInteger, nullable=False),
    Column("retried", BigInteger, nullable=False),
    Column("ceiling_hits", BigInteger, nullable=False),
    Column("cost_usd", Numeric, nullable=False),
    Column("latency_sum", BigInteger, nullable=False),
    Column("input_tokens", Numeric, nullable=False),
    Column("output_tokens", Numeric, nullable=False),
    Column("quality_sum", Float, nullable=False),
    Column("quality_n", BigInteger, nullable=False),
    Column("complexity_sum", Float, nullable=False),
    Column("complexity_n", BigInteger, nullable=False),
    Column("message_sum", BigInteger, nullable=False),
    Column("message_n", BigInteger, nullable=False),
    Column("hour_calls", ARRAY(BigInteger), nullable=False),  # 24 counts, UTC hour of day
)

model_daily = Table(
    "rollup_model_daily",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("environment", Text, primary_key=True),
    Column("day", Date, primary_key=True),
    Column("task_type", Text, primary_key=True),
    Column("model", Text, primary_key=True),
    Column("calls", BigInteger, nullable=False),
    Column("successes", BigInteger, nullable=False),
    Column("cost_usd", Numeric, nullable=False),
    Column("latency_sum", BigInteger, nullable=False),
    Column("quality_sum", Float, nullable=False),
    Column("quality_n", BigInteger, nullable=False),
)

failure_daily = Table(
    "rollup_failure_daily",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("environment", Text, primary_key=True),
    Column("day", Date, primary_key=True),
    Column("task_type", Text, primary_key=True),
    Column("first_model", Text, primary_key=True),
    Column("failure_mode", Text, primary_key=True),  # '' for calls without a failure
    Column("calls", BigInteger, nullable=False),
    Column("retry_recovered", BigInteger, nullable=False),
    Column("fallback_recovered", BigInteger, nullable=False),
    Column("unrecoverable", BigInteger, nullable=False),
)

trigger_daily = Table(
    "rollup_trigger_daily",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("environment", Text, primary_key=True),
    Column("day", Date, primary_key=True),
    Column("failure_mode", Text, primary_key=True),
    Column("failure_trigger", Text, primary_key=True),
    Column("calls", BigInteger, nullable=False),
)


def _provider_table(name: str) -> Table:
    return Table(
        name,
        metadata,
        Column("environment", Text, primary_key=True),
        Column("bucket", DateTime(timezone=True), primary_key=True),
        Column("provider", Text, primary_key=True),
        Column("fc_calls", BigInteger, nullable=False),  # first-choice calls
        Column("fc_provider_failures", BigInteger, nullable=False),
        Column("fc_rate_limited", BigInteger, nullable=False),
        Column("served_calls", BigInteger, nullable=False),
        Column("latency_sum", BigInteger, nullable=False),
        Column("hist_lo", SmallInteger, nullable=False),  # bin index of hist[1]
        Column("hist", ARRAY(Integer), nullable=False),  # latency histogram, see histogram.py
    )


provider_5m = _provider_table("rollup_provider_5m")
provider_hourly = _provider_table("rollup_provider_hourly")

# A per-account change counter: ETags and caches key on it.
account_versions = Table(
    "account_data_versions",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("environment", Text, primary_key=True),
    Column("version", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)


def create_engine(settings: Settings, **overrides: Any) -> AsyncEngine:
    """The app's engine. Nothing connects until the first query."""
    options: dict[str, Any] = {
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_timeout": settings.db_pool_timeout_s,
        "pool_pre_ping": True,
        "connect_args": {
            "timeout": settings.db_connect_timeout_s,
            "command_timeout": settings.db_statement_timeout_ms / 1000 + 1,
            "server_settings": {
                "statement_timeout": str(settings.db_statement_timeout_ms),
                "application_name": "perf-metrics",
            },
        },
    }
    options.update(overrides)
    return create_async_engine(settings.database_url, **options)


async def get_connection(request: Request) -> AsyncIterator[AsyncConnection]:
    """One connection per request, in a transaction committed when the handler returns."""
    engine: AsyncEngine = request.app.state.engine
    async with engine.begin() as conn:
        yield conn


ConnectionDep = Annotated[AsyncConnection, Depends(get_connection)]
