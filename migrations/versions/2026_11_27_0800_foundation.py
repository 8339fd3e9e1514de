"""foundation: accounts, API keys, model prices, the call log

Revision ID: 0001_foundation
Revises:
Create Date: 2026-11-27 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001_foundation"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
MONEY = sa.Numeric(20, 12)

# List prices in USD per million tokens (input, output), as published in November 2026.
PRICES = [
    ("gpt-4o", "openai", "2.50", "10.00"),
    ("gpt-4o-mini", "openai", "0.15", "0.60"),
    ("gpt-4.1", "openai", "2.00", "8.00"),
    ("gpt-4.1-mini", "openai", "0.40", "1.60"),
    ("o4-mini", "openai", "1.10", "4.40"),
    ("claude-sonnet-4-5", "anthropic", "3.00", "15.00"),
    ("claude-haiku-4-5", "anthropic", "1.00", "5.00"),
    ("claude-opus-4-1", "anthropic", "15.00", "75.00"),
    ("gemini-2.5-pro", "google", "1.25", "10.00"),
    ("gemini-2.5-flash", "google", "0.30", "2.50"),
    ("mistral-large", "mistral", "2.00", "6.00"),
]


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("tier", sa.Text, nullable=False),
        sa.Column("cost_vs_quality_ratio", sa.Float, nullable=False, server_default="0.5"),
        sa.Column("latency_sensitivity", sa.Float, nullable=False, server_default="0.5"),
        sa.Column(
            "preferred_models",
            postgresql.ARRAY(sa.Text),
            nullable=False,
            server_default=sa.text("'{}'::text[]"),
        ),
        sa.Column(
            "task_overrides",
            postgresql.JSONB,
            nullable=False,
            server_default=sa.text("'{}'::jsonb"),
        ),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", TS, nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("id ~ '^acct_[A-Za-z0-9_]{1,59}$'", name="id_format"),
        sa.CheckConstraint("tier IN ('free', 'pro', 'enterprise')", name="tier"),
        sa.CheckConstraint("cost_vs_quality_ratio BETWEEN 0 AND 1", name="cost_vs_quality_ratio"),
        sa.CheckConstraint("latency_sensitivity BETWEEN 0 AND 1", name="latency_sensitivity"),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("account_id", sa.Text, sa.ForeignKey("accounts.id"), nullable=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("environment", sa.Text, nullable=True),
        sa.Column("name", sa.Text, nullable=True),
        sa.Column("key_hash", sa.LargeBinary, nullable=False, unique=True),
        sa.Column("display_prefix", sa.Text, nullable=False),
        sa.Column("last4", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("revoked_at", TS, nullable=True),
        sa.Column("last_used_at", TS, nullable=True),
        sa.CheckConstraint(
            "(kind = 'customer' AND account_id IS NOT NULL AND environment IN ('live', 'test'))"
            " OR (kind = 'ingest' AND account_id IS NULL AND environment IS NULL)",
            name="kind_scope",
        ),
        sa.CheckConstraint("octet_length(key_hash) = 32", name="sha256"),
    )
    op.create_index("ix_api_keys_account_id", "api_keys", ["account_id"])
    prices = op.create_table(
        "model_prices",
        sa.Column("model", sa.Text, primary_key=True),
        sa.Column("provider", sa.Text, nullable=False),
        sa.Column("input_usd_per_mtok", sa.Numeric(12, 6), nullable=False),
        sa.Column("output_usd_per_mtok", sa.Numeric(12, 6), nullable=False),
        sa.Column("updated_at", TS, nullable=False, server_default=sa.func.now()),
    )
    op.bulk_insert(
        prices,
        [
            {"model": m, "provider": p, "input_usd_per_mtok": i, "output_usd_per_mtok": o}
            for m, p, i, o in PRICES
        ],
    )
    op.create_table(
        "calls",
        sa.Column("account_id", sa.Text, sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("call_id", sa.Text, nullable=False),
        sa.Column("environment", sa.Text, nullable=False),
        sa.Column("api_key_id", sa.Text),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("task_type", sa.Text, nullable=False),
        sa.Column("complexity_score", sa.Float),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("provider", sa.Text, nullable=False),
        sa.Column("initial_model", sa.Text),
        sa.Column("initial_provider", sa.Text),
        sa.Column("input_tokens", sa.BigInteger, nullable=False),
        sa.Column("output_tokens", sa.BigInteger, nullable=False),
        sa.Column("cost_usd", MONEY, nullable=False),
        sa.Column("latency_ms", sa.Integer, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("failure_mode", sa.Text),
        sa.Column("failure_trigger", sa.Text),
        sa.Column("recovery", sa.Text),
        sa.Column("retry_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("fallback_used", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("quality_score", sa.Float),
        sa.Column("message_count", sa.Integer),
        sa.Column("max_cost_per_call", MONEY),
        sa.Column("cost_ceiling_hit", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("user_id", sa.Text),
        sa.Column("metadata", postgresql.JSONB),
        sa.Column("ingested_at", TS, nullable=False, server_default=sa.func.now()),
        # The idempotency key; account_id first so the table can be distributed by account.
        sa.PrimaryKeyConstraint("account_id", "call_id"),
        sa.CheckConstraint("environment IN ('live', 'test')", name="environment"),
        sa.CheckConstraint(
            "task_type IN ('extraction', 'classification', 'summarization', 'reasoning',"
            " 'code', 'writing')",
            name="task_type",
        ),
        sa.CheckConstraint("status IN ('success', 'error')", name="status"),
        sa.CheckConstraint(
            "failure_mode IS NULL OR failure_mode IN ('format_violation', 'refusal',"
            " 'hallucination', 'incomplete', 'reasoning_error', 'provider_error', 'timeout',"
            " 'rate_limited')",
            name="failure_mode",
        ),
        sa.CheckConstraint(
            "recovery IS NULL OR recovery IN ('retry', 'fallback')", name="recovery"
        ),
        sa.CheckConstraint(
            "input_tokens >= 0 AND output_tokens >= 0 AND cost_usd >= 0 AND latency_ms >= 0"
            " AND retry_count >= 0",
            name="non_negative",
        ),
    )
    # Per-account time-range reads (raw exports, the naive baseline, rebuilding rollups).
    op.create_index(
        "ix_calls_account_id_environment_created_at",
        "calls",
        ["account_id", "environment", "created_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_calls_account_id_environment_created_at", table_name="calls")
    op.drop_table("calls")
    op.drop_table("model_prices")
    op.drop_index("ix_api_keys_account_id", table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_table("accounts")
