"""Tables and the engine factory (the per-request connection is a dependency: deps.py).

The schema itself is owned by the Alembic migrations in `migrations/` (the repository root); the
`Table` objects here describe it for queries (SQLAlchemy Core) and must agree with them.
"""

from __future__ import annotations

from typing import Any

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
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

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

# --- Rollups (docs/rollups.md). Maintained by the ingest write path, in its transaction.
# Only the columns the read path names are declared; the migrations own the full DDL.


def _account_day(name: str, *columns: Column[Any]) -> Table:
    return Table(
        name,
        metadata,
        Column("account_id", Text, primary_key=True),
        Column("environment", Text, primary_key=True),
        Column("day", Date, primary_key=True),
        *columns,
    )


account_daily = _account_day(
    "rollup_account_daily",
    *(
        Column(n, BigInteger)
        for n in (
            "calls",
            "successes",
            "routed_right",
            "fallbacks",
            "retried",
            "ceiling_hits",
            "latency_sum",
            "input_tokens",
            "output_tokens",
            "quality_n",
            "complexity_n",
            "message_sum",
            "message_n",
        )
    ),
    Column("cost_usd", Numeric),
    Column("quality_sum", Numeric),
    Column("complexity_sum", Numeric),
    Column("hour_calls", ARRAY(BigInteger)),
)
model_daily = _account_day(
    "rollup_model_daily",
    Column("task_type", Text, primary_key=True),
    Column("model", Text, primary_key=True),
    *(Column(n, BigInteger) for n in ("calls", "successes", "latency_sum", "quality_n")),
    Column("cost_usd", Numeric),
    Column("quality_sum", Numeric),
)
# The failure rollups' counts, day and month grain alike.
FAILURE_COUNTS = ("calls", "retry_recovered", "fallback_recovered", "unrecoverable")
failure_daily = _account_day(
    "rollup_failure_daily",
    Column("task_type", Text, primary_key=True),
    Column("first_model", Text, primary_key=True),
    Column("failure_mode", Text, primary_key=True),  # '' for calls without a failure
    *(Column(n, BigInteger) for n in FAILURE_COUNTS),
)
# The same at month grain (the 1st of each UTC month): full months inside long windows.
failure_monthly = Table(
    "rollup_failure_monthly",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("environment", Text, primary_key=True),
    Column("month", Date, primary_key=True),
    Column("task_type", Text, primary_key=True),
    Column("first_model", Text, primary_key=True),
    Column("failure_mode", Text, primary_key=True),
    *(Column(n, BigInteger) for n in FAILURE_COUNTS),
)
# One row: rollup_failure_monthly holds the months before this 1st of a month (migration 0006).
rollup_watermarks = Table(
    "rollup_watermarks",
    metadata,
    Column("id", Boolean, primary_key=True),
    Column("failure_monthly_before", Date, nullable=False),
)
trigger_daily = _account_day(
    "rollup_trigger_daily",
    Column("failure_mode", Text, primary_key=True),
    Column("failure_trigger", Text, primary_key=True),
    Column("calls", BigInteger),
)


def _provider_table(name: str) -> Table:
    return Table(
        name,
        metadata,
        Column("environment", Text, primary_key=True),
        Column("bucket", DateTime(timezone=True), primary_key=True),
        Column("provider", Text, primary_key=True),
        *(
            Column(n, BigInteger)
            for n in (
                "fc_calls",
                "fc_provider_failures",
                "fc_rate_limited",
                "served_calls",
                "latency_sum",
            )
        ),
        Column("hist", ARRAY(Integer)),  # subscripts are latency bins (histogram.py)
    )


provider_5m = _provider_table("rollup_provider_5m")
provider_hourly = _provider_table("rollup_provider_hourly")

# A change counter per account and environment: ETags key on it.
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
        # No pre-ping: it costs a round trip per request. A connection that died with the
        # database fails its request (a 503), and SQLAlchemy then invalidates the whole pool.
        "pool_pre_ping": False,
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
