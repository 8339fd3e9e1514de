"""More answers from the same data (SPEC §14): budgets, price history, attempts, per-model
latency histograms, the queue's instants

Revision ID: 0011_more_answers
Revises: 0010_stale_blocks
Create Date: 2026-12-03 12:00:00

- `accounts.monthly_budget_usd` (null: none), customer's `cost_analysis.budget`.
- `model_prices` keeps each model's prices with the date they take effect (key: model and
  `effective_from`); the rows so far take effect on 2000-01-01, before any call.
- `rollup_account_daily.attempts`: provider attempts (1 + retry_count + 1 if a fallback was
  used), overview's `total_attempts`.
- `rollup_model_daily.hist`: the latency histogram of each row (histogram.py's bins, an int[]
  whose subscripts are bins, from its lowest bin to its highest), performance's percentiles.
- `calls_pending.queued_at`, indexed per account and environment: the answers' `data_as_of`
  is the earliest queued call's (the calls queued now take their call's `ingested_at`).

The new measures are counted here from the call log, in each account's zone, under the fold
lock and with the log locked against writes; the calls still queued are left to the next fold,
which adds them. The SQL is written out here, not imported: a migration must not change when
the code does.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011_more_answers"
down_revision: str | None = "0010_stale_blocks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FOLD_LOCK = "SELECT pg_advisory_xact_lock(7233510)"
NOT_QUEUED = """NOT EXISTS (
  SELECT 1 FROM calls_pending p WHERE p.account_id = k.account_id AND p.call_id = k.call_id
)"""
LOCAL_DAY = "(k.created_at AT TIME ZONE a.timezone)::date"
ATTEMPTS = f"""
UPDATE rollup_account_daily r SET attempts = x.attempts
FROM (
  SELECT k.account_id, k.environment, {LOCAL_DAY} AS day,
         sum(1 + k.retry_count::bigint + k.fallback_used::int) AS attempts
  FROM calls k JOIN accounts a ON a.id = k.account_id
  WHERE {NOT_QUEUED}
  GROUP BY 1, 2, 3
) x
WHERE r.account_id = x.account_id AND r.environment = x.environment AND r.day = x.day
"""
HISTOGRAMS = f"""
UPDATE rollup_model_daily r SET hist = x.hist
FROM (
  SELECT account_id, environment, day, task_type, model, provider,
         hist_from_bins(array_agg(bin), array_agg(n)) AS hist
  FROM (
    SELECT k.account_id, k.environment, {LOCAL_DAY} AS day, k.task_type, k.model, k.provider,
           latency_bin(k.latency_ms) AS bin, count(*) AS n
    FROM calls k JOIN accounts a ON a.id = k.account_id
    WHERE {NOT_QUEUED}
    GROUP BY 1, 2, 3, 4, 5, 6, 7
  ) b
  GROUP BY 1, 2, 3, 4, 5, 6
) x
WHERE r.account_id = x.account_id AND r.environment = x.environment AND r.day = x.day
  AND r.task_type = x.task_type AND r.model = x.model AND r.provider = x.provider
"""
QUEUED_AT = """
UPDATE calls_pending p SET queued_at = k.ingested_at
FROM calls k WHERE k.account_id = p.account_id AND k.call_id = p.call_id
"""


def upgrade() -> None:
    op.execute(FOLD_LOCK)  # no fold meanwhile
    op.execute("LOCK TABLE calls IN SHARE MODE")  # and no batch
    op.add_column("accounts", sa.Column("monthly_budget_usd", sa.Numeric(14, 2)))
    op.create_check_constraint("monthly_budget_usd", "accounts", "monthly_budget_usd > 0")

    op.add_column(
        "model_prices",
        sa.Column(
            "effective_from", sa.Date, nullable=False, server_default=sa.text("'2000-01-01'")
        ),
    )
    op.alter_column("model_prices", "effective_from", server_default=None)
    op.drop_constraint("pk_model_prices", "model_prices")
    op.create_primary_key("pk_model_prices", "model_prices", ["model", "effective_from"])

    op.add_column(
        "rollup_account_daily",
        sa.Column("attempts", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.execute(ATTEMPTS)
    op.add_column(
        "rollup_model_daily",
        sa.Column(
            "hist",
            postgresql.ARRAY(sa.Integer),
            nullable=False,
            server_default=sa.text("'{}'::integer[]"),
        ),
    )
    op.execute(HISTOGRAMS)
    op.alter_column("rollup_model_daily", "hist", server_default=None)

    op.add_column("calls_pending", sa.Column("queued_at", sa.DateTime(timezone=True)))
    op.execute(QUEUED_AT)
    op.execute("UPDATE calls_pending SET queued_at = '-infinity' WHERE queued_at IS NULL")
    op.alter_column("calls_pending", "queued_at", nullable=False, server_default=sa.func.now())
    op.create_index(
        "ix_calls_pending_account_id_environment_queued_at",
        "calls_pending",
        ["account_id", "environment", "queued_at"],
    )


def downgrade() -> None:
    op.execute(FOLD_LOCK)
    op.drop_index("ix_calls_pending_account_id_environment_queued_at", "calls_pending")
    op.drop_column("calls_pending", "queued_at")
    op.drop_column("rollup_model_daily", "hist")
    op.drop_column("rollup_account_daily", "attempts")
    # The price in force now is kept for each model.
    op.execute(
        "DELETE FROM model_prices m WHERE effective_from < (SELECT max(effective_from)"
        " FROM model_prices l WHERE l.model = m.model AND l.effective_from <= current_date)"
        " OR effective_from > current_date AND EXISTS (SELECT 1 FROM model_prices l"
        " WHERE l.model = m.model AND l.effective_from <= current_date)"
    )
    op.execute(
        "DELETE FROM model_prices m WHERE effective_from > (SELECT min(effective_from)"
        " FROM model_prices l WHERE l.model = m.model)"
    )
    op.drop_constraint("pk_model_prices", "model_prices")
    op.drop_column("model_prices", "effective_from")
    op.create_primary_key("pk_model_prices", "model_prices", ["model"])
    op.drop_constraint("ck_accounts_monthly_budget_usd", "accounts")
    op.drop_column("accounts", "monthly_budget_usd")
