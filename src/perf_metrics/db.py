"""Tables, the engine factory and write transactions (the per-request connection is a
dependency: deps.py).

The schema itself is owned by the Alembic migrations in `migrations/` (the repository root); the
`Table` objects here and in `rollups/tables.py` describe all of it (columns, keys, indexes,
constraints), for queries (SQLAlchemy Core) and for Alembic's autogenerate, which must find
no difference from a migrated database (tests/test_migrations.py). The SQL functions the
rollups use (latency_bin, hist_*, counts_add) and the queue's autovacuum settings exist in the
migrations only: autogenerate compares neither.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    Table,
    Text,
    false,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from perf_metrics.errors import sqlstate
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
    Column("cost_vs_quality_ratio", Float, nullable=False, server_default="0.5"),
    Column("latency_sensitivity", Float, nullable=False, server_default="0.5"),
    Column("preferred_models", ARRAY(Text), nullable=False, server_default=text("'{}'::text[]")),
    Column("task_overrides", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # The IANA zone its days are counted in (SPEC §9), canonical spelling (zones.py).
    Column("timezone", Text, nullable=False, server_default="UTC"),
    # The metadata keys its breakdowns group by (SPEC §10), at most 5, in the order set.
    Column(
        "tracked_metadata_keys",
        ARRAY(Text),
        nullable=False,
        server_default=text("'{}'::text[]"),
    ),
    # Customer's cost_analysis.budget (SPEC §14); null: none.
    Column("monthly_budget_usd", Numeric(14, 2)),
    CheckConstraint("cardinality(tracked_metadata_keys) <= 5", name="tracked_metadata_keys"),
    CheckConstraint("monthly_budget_usd > 0", name="monthly_budget_usd"),
    CheckConstraint("id ~ '^acct_[A-Za-z0-9_]{1,59}$'", name="id_format"),
    CheckConstraint("tier IN ('free', 'pro', 'enterprise')", name="tier"),
    CheckConstraint("cost_vs_quality_ratio BETWEEN 0 AND 1", name="cost_vs_quality_ratio"),
    CheckConstraint("latency_sensitivity BETWEEN 0 AND 1", name="latency_sensitivity"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Text, primary_key=True),
    # null for ingest keys (platform-wide)
    Column("account_id", Text, ForeignKey("accounts.id"), index=True),
    Column("kind", Text, nullable=False),  # customer | secret | ingest
    Column("environment", Text),  # live | test for an account's keys, null for ingest keys
    Column("name", Text),
    Column("key_hash", LargeBinary, nullable=False, unique=True),
    Column("display_prefix", Text, nullable=False),
    Column("last4", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("revoked_at", DateTime(timezone=True)),
    Column("last_used_at", DateTime(timezone=True)),
    CheckConstraint(
        "(kind IN ('customer', 'secret') AND account_id IS NOT NULL"
        " AND environment IN ('live', 'test'))"
        " OR (kind = 'ingest' AND account_id IS NULL AND environment IS NULL)",
        name="kind_scope",
    ),
    CheckConstraint("octet_length(key_hash) = 32", name="sha256"),
)

# List prices, USD per million tokens, each in force from `effective_from` until the model's
# next one (migration 0011: history, not overwrite); the first rows take effect on 2000-01-01.
model_prices = Table(
    "model_prices",
    metadata,
    Column("model", Text, primary_key=True),
    Column("effective_from", Date, primary_key=True),
    Column("provider", Text, nullable=False),
    Column("input_usd_per_mtok", Numeric(12, 6), nullable=False),
    Column("output_usd_per_mtok", Numeric(12, 6), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# No foreign key to accounts (migration 0004): the write path locks each batch's accounts once.
calls = Table(
    "calls",
    metadata,
    # The idempotency key; account_id first so the table can be distributed by account.
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
    Column("retry_count", Integer, nullable=False, server_default="0"),
    Column("fallback_used", Boolean, nullable=False, server_default=false()),
    Column("quality_score", Float),
    Column("message_count", Integer),
    Column("max_cost_per_call", Money),
    Column("cost_ceiling_hit", Boolean, nullable=False, server_default=false()),
    Column("user_id", Text),
    Column("metadata", JSONB),
    Column("ingested_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("environment IN ('live', 'test')", name="environment"),
    CheckConstraint(
        "task_type IN ('extraction', 'classification', 'summarization', 'reasoning',"
        " 'code', 'writing')",
        name="task_type",
    ),
    CheckConstraint("status IN ('success', 'error')", name="status"),
    CheckConstraint(
        "failure_mode IS NULL OR failure_mode IN ('format_violation', 'refusal',"
        " 'hallucination', 'incomplete', 'reasoning_error', 'provider_error', 'timeout',"
        " 'rate_limited')",
        name="failure_mode",
    ),
    CheckConstraint("recovery IS NULL OR recovery IN ('retry', 'fallback')", name="recovery"),
    CheckConstraint(
        "input_tokens >= 0 AND output_tokens >= 0 AND cost_usd >= 0 AND latency_ms >= 0"
        " AND retry_count >= 0",
        name="non_negative",
    ),
)
# Per-account time-range reads (raw exports, the naive baseline, rebuilding rollups).
Index(None, calls.c.account_id, calls.c.environment, calls.c.created_at)

# New calls queued for the rollups (migration 0005): the columns of a call that a fold reads,
# and its id (migration 0007: a zone change rebuilds from the calls not queued), its end user
# and metadata (migration 0009: the group rollups).
# No key: every fold reads the queue in batches and deletes what it took; one index, by account
# and the instant queued, for data_as_of (migration 0011).
NOT_QUEUED = ("api_key_id", "max_cost_per_call", "ingested_at")
calls_pending = Table(
    "calls_pending",
    metadata,
    *(
        # call_id: null in rows queued before migration 0007
        Column(c.name, c.type, nullable=c.nullable or c.name == "call_id")
        for c in calls.c
        if c.name not in NOT_QUEUED
    ),
    # When it was queued (migration 0011): the answers' data_as_of is the earliest of an
    # account's queued calls.
    Column("queued_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
Index(None, calls_pending.c.account_id, calls_pending.c.environment, calls_pending.c.queued_at)

# The accounts whose rollups a zone change is rebuilding (rollups/rezone.py): folds leave
# their queued calls alone until `expires_at`, so a change that died only delays them.
account_rebuilds = Table(
    "account_rebuilds",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("timezone", Text, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

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


# --- Write transactions (ingest, folds, rollup maintenance).

# Run through SQLAlchemy, it also BEGINs the transaction the raw asyncpg statements then join.
# The memory: enough for the fold's hash aggregates not to spill to disk.
BEGIN_WRITE = text("SET LOCAL work_mem = '64MB'")

DEADLOCK_RETRIES = 3

log = logging.getLogger("perf_metrics.ingest")


async def driver_connection(conn: AsyncConnection) -> Any:
    """The asyncpg connection under `conn`: for COPY and the write path's raw statements."""
    raw = await conn.get_raw_connection()
    return raw.driver_connection


async def commit_retrying(conn: AsyncConnection, work: Any) -> Any:
    """Run `work(conn)` and commit; the whole of it again when Postgres breaks a deadlock."""
    for attempt in range(DEADLOCK_RETRIES + 1):
        try:
            result = await work(conn)
            await conn.commit()
            return result
        except (DBAPIError, asyncpg.PostgresError) as exc:
            await conn.rollback()
            state = sqlstate(exc)
            if state in ("40P01", "40001") and attempt < DEADLOCK_RETRIES:
                log.warning("ingest retried after %s (attempt %d)", state, attempt + 1)
                await asyncio.sleep(0.05 * (attempt + 1))
                continue
            raise
        except BaseException:
            await conn.rollback()
            raise
    raise AssertionError("unreachable")
