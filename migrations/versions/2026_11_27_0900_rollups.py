"""rollups: pre-aggregated tables maintained by the ingest write path (docs/rollups.md)

Revision ID: 0002_rollups
Revises: 0001_foundation
Create Date: 2026-11-27 09:00:00
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002_rollups"
down_revision: str | None = "0001_foundation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG = sa.BigInteger


def _counts(*names: str) -> list[sa.Column[Any]]:
    return [sa.Column(n, BIG, nullable=False, server_default="0") for n in names]


def _account_day_keys() -> list[sa.Column[Any]]:
    return [
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("environment", sa.Text, nullable=False),
        sa.Column("day", sa.Date, nullable=False),
    ]


FUNCTIONS = [
    # Latency histogram bins: exact below 100 ms, then log buckets 2% wide (gamma = 1.0202..),
    # so a bucket's representative value is within 1% of any latency in it.
    """
    CREATE FUNCTION latency_bin(ms integer) RETURNS integer
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
      SELECT CASE WHEN ms < 100 THEN ms
                  ELSE 100 + floor(ln(ms::float8 / 100) / ln(1.01::float8 / 0.99))::integer END
    $$
    """,
    # A histogram is an int[] whose subscripts are bin numbers (lower bound = first bin).
    """
    CREATE FUNCTION hist_from_bins(bins integer[], counts bigint[]) RETURNS integer[]
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
    DECLARE
      lo integer := (SELECT min(b) FROM unnest(bins) b);
      hi integer := (SELECT max(b) FROM unnest(bins) b);
      h integer[] := array_fill(0, ARRAY[hi - lo + 1], ARRAY[lo]);
      i integer;
    BEGIN
      FOR i IN 1..cardinality(bins) LOOP
        h[bins[i]] := h[bins[i]] + counts[i];
      END LOOP;
      RETURN h;
    END $$
    """,
    """
    CREATE FUNCTION hist_add(a integer[], b integer[]) RETURNS integer[]
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
    DECLARE
      lo integer;
      hi integer;
      h integer[];
      i integer;
    BEGIN
      IF a IS NULL OR cardinality(a) = 0 THEN RETURN b; END IF;
      IF b IS NULL OR cardinality(b) = 0 THEN RETURN a; END IF;
      lo := least(array_lower(a, 1), array_lower(b, 1));
      hi := greatest(array_upper(a, 1), array_upper(b, 1));
      h := array_fill(0, ARRAY[hi - lo + 1], ARRAY[lo]);
      FOR i IN array_lower(a, 1)..array_upper(a, 1) LOOP h[i] := h[i] + a[i]; END LOOP;
      FOR i IN array_lower(b, 1)..array_upper(b, 1) LOOP h[i] := h[i] + b[i]; END LOOP;
      RETURN h;
    END $$
    """,
    "CREATE AGGREGATE hist_sum(integer[]) (SFUNC = hist_add, STYPE = integer[])",
    # Element-wise sum of two equally long count arrays (hour-of-day counts).
    """
    CREATE FUNCTION counts_add(a bigint[], b bigint[]) RETURNS bigint[]
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
      SELECT array_agg(x + y ORDER BY i) FROM unnest(a, b) WITH ORDINALITY AS t(x, y, i)
    $$
    """,
]


def upgrade() -> None:
    for ddl in FUNCTIONS:
        op.execute(ddl)

    # Per account, environment and UTC day: the totals every `days` endpoint starts from.
    op.create_table(
        "rollup_account_daily",
        *_account_day_keys(),
        *_counts("calls", "successes", "routed_right", "fallbacks", "retried", "ceiling_hits"),
        sa.Column("cost_usd", sa.Numeric, nullable=False, server_default="0"),
        *_counts("latency_sum", "input_tokens", "output_tokens"),
        sa.Column("quality_sum", sa.Numeric, nullable=False, server_default="0"),
        *_counts("quality_n"),
        sa.Column("complexity_sum", sa.Numeric, nullable=False, server_default="0"),
        *_counts("complexity_n", "message_sum", "message_n"),
        sa.Column("hour_calls", postgresql.ARRAY(BIG), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "environment", "day"),
    )
    # Per day x task x served model: overview models, performance, daily distributions.
    op.create_table(
        "rollup_model_daily",
        *_account_day_keys(),
        sa.Column("task_type", sa.Text, nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        *_counts("calls", "successes"),
        sa.Column("cost_usd", sa.Numeric, nullable=False, server_default="0"),
        *_counts("latency_sum"),
        sa.Column("quality_sum", sa.Numeric, nullable=False, server_default="0"),
        *_counts("quality_n"),
        sa.PrimaryKeyConstraint("account_id", "environment", "day", "task_type", "model"),
    )
    # Per day x task x first-choice model x failure mode ('' = no failure): failures endpoint.
    op.create_table(
        "rollup_failure_daily",
        *_account_day_keys(),
        sa.Column("task_type", sa.Text, nullable=False),
        sa.Column("first_model", sa.Text, nullable=False),
        sa.Column("failure_mode", sa.Text, nullable=False),
        *_counts("calls", "retry_recovered", "fallback_recovered", "unrecoverable"),
        sa.PrimaryKeyConstraint(
            "account_id", "environment", "day", "task_type", "first_model", "failure_mode"
        ),
    )
    op.create_table(
        "rollup_trigger_daily",
        *_account_day_keys(),
        sa.Column("failure_mode", sa.Text, nullable=False),
        sa.Column("failure_trigger", sa.Text, nullable=False),
        *_counts("calls"),
        sa.PrimaryKeyConstraint(
            "account_id", "environment", "day", "failure_mode", "failure_trigger"
        ),
    )
    # Platform-wide provider health (no account dimension), at 5-minute and hour grain.
    for name in ("rollup_provider_5m", "rollup_provider_hourly"):
        op.create_table(
            name,
            sa.Column("environment", sa.Text, nullable=False),
            sa.Column("bucket", sa.DateTime(timezone=True), nullable=False),
            sa.Column("provider", sa.Text, nullable=False),
            *_counts("fc_calls", "fc_provider_failures", "fc_rate_limited"),
            *_counts("served_calls", "latency_sum"),
            sa.Column("hist", postgresql.ARRAY(sa.Integer), nullable=False),
            sa.PrimaryKeyConstraint("environment", "bucket", "provider"),
        )
    # A change counter per account and environment: ETags key on it.
    op.create_table(
        "account_data_versions",
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("environment", sa.Text, nullable=False),
        sa.Column("version", BIG, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "environment"),
    )


def downgrade() -> None:
    for name in (
        "account_data_versions",
        "rollup_provider_hourly",
        "rollup_provider_5m",
        "rollup_trigger_daily",
        "rollup_failure_daily",
        "rollup_model_daily",
        "rollup_account_daily",
    ):
        op.drop_table(name)
    op.execute("DROP FUNCTION counts_add(bigint[], bigint[])")
    op.execute("DROP AGGREGATE hist_sum(integer[])")
    op.execute("DROP FUNCTION hist_add(integer[], integer[])")
    op.execute("DROP FUNCTION hist_from_bins(integer[], bigint[])")
    op.execute("DROP FUNCTION latency_bin(integer)")
