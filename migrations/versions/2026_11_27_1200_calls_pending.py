"""calls_pending: new calls queued for the rollups, folded in one place; counts_add inlined

Revision ID: 0005_calls_pending
Revises: 0004_calls_without_fk
Create Date: 2026-11-27 12:00:00

Each ingest batch used to upsert every rollup row it touched inside its own transaction. Two
batches from the same minutes touch the same rows, so concurrent batches queued on each other's
row locks, and each batch paid for its own upserts of the same account-day rows. Now a batch
inserts its new calls into `calls` and, in the same statement and transaction, the columns the
rollups need into this queue; a fold (one at a time, under an advisory lock) deletes what is
queued and upserts the rollups from it in one transaction, so every call is folded exactly once
and a fold of several batches upserts each rollup row once. The queue has no index: it is read
whole and emptied by every fold.

counts_add (element-wise sum of the 24 hour-of-day counts) becomes one array expression that
Postgres inlines; the unnest/array_agg version cost ~13 µs per updated rollup row.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005_calls_pending"
down_revision: str | None = "0004_calls_without_fk"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTS_ADD = """
CREATE OR REPLACE FUNCTION counts_add(a bigint[], b bigint[]) RETURNS bigint[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT ARRAY[{}]
$$
""".format(", ".join(f"a[{i}] + b[{i}]" for i in range(1, 25)))

COUNTS_ADD_BEFORE = """
CREATE OR REPLACE FUNCTION counts_add(a bigint[], b bigint[]) RETURNS bigint[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT array_agg(x + y ORDER BY i) FROM unnest(a, b) WITH ORDINALITY AS t(x, y, i)
$$
"""


def upgrade() -> None:
    op.create_table(
        "calls_pending",
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("environment", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("task_type", sa.Text, nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("provider", sa.Text, nullable=False),
        sa.Column("initial_model", sa.Text),
        sa.Column("initial_provider", sa.Text),
        sa.Column("input_tokens", sa.BigInteger, nullable=False),
        sa.Column("output_tokens", sa.BigInteger, nullable=False),
        sa.Column("cost_usd", sa.Numeric(20, 12), nullable=False),
        sa.Column("latency_ms", sa.Integer, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("failure_mode", sa.Text),
        sa.Column("failure_trigger", sa.Text),
        sa.Column("recovery", sa.Text),
        sa.Column("retry_count", sa.Integer, nullable=False),
        sa.Column("fallback_used", sa.Boolean, nullable=False),
        sa.Column("quality_score", postgresql.DOUBLE_PRECISION),
        sa.Column("complexity_score", postgresql.DOUBLE_PRECISION),
        sa.Column("message_count", sa.Integer),
        sa.Column("cost_ceiling_hit", sa.Boolean, nullable=False),
    )
    # A queue emptied by every fold: vacuum it by dead rows, not by a share of its size.
    op.execute(
        "ALTER TABLE calls_pending SET (autovacuum_vacuum_scale_factor = 0, "
        "autovacuum_vacuum_threshold = 10000, autovacuum_vacuum_insert_scale_factor = 0, "
        "autovacuum_vacuum_insert_threshold = 10000)"
    )
    op.execute(COUNTS_ADD)


def downgrade() -> None:
    # Queued calls are in `calls` but not yet in the rollups: refuse to drop them.
    op.execute(
        "DO $$ BEGIN IF EXISTS (SELECT 1 FROM calls_pending) THEN RAISE EXCEPTION "
        "'calls_pending is not empty: let the service fold it first'; END IF; END $$"
    )
    op.execute(COUNTS_ADD_BEFORE)
    op.drop_table("calls_pending")
