"""rollup_model_daily by served provider, with tokens and failures: the breakdowns (SPEC §10)

Revision ID: 0008_model_daily_by_provider
Revises: 0007_account_timezone
Create Date: 2026-12-02 10:00:00

`GET /v1/metrics/breakdown` groups by served model, served provider or task type, with tokens
and a failure rate per group. The per-day x task x model rollup becomes per day x task x model
x provider (a model is nearly always served by one provider, so the rows barely grow) and gains
`input_tokens`, `output_tokens` and `failures` (calls with a failure_mode). Its rows are
recounted here from the call log, in each account's zone, under the fold lock and with the log
locked against writes: the calls still queued are left to the next fold, which counts them
with the new columns.

The SQL is written out here, not imported: a migration must not change when the code does.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_model_daily_by_provider"
down_revision: str | None = "0007_account_timezone"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FOLD_LOCK = "SELECT pg_advisory_xact_lock(7233510)"
UNNAMED_QUEUED = """
DO $$ BEGIN
  IF EXISTS (SELECT 1 FROM calls_pending WHERE call_id IS NULL) THEN
    RAISE EXCEPTION 'calls queued before migration 0007 remain: start the service (it folds '
      'them within seconds), stop it, and migrate again';
  END IF;
END $$
"""
RECOUNT = """
INSERT INTO rollup_model_daily
  (account_id, environment, day, task_type, model, provider, calls, successes, cost_usd,
   latency_sum, quality_sum, quality_n, input_tokens, output_tokens, failures)
SELECT k.account_id, k.environment, (k.created_at AT TIME ZONE a.timezone)::date,
       k.task_type, k.model, k.provider,
       count(*), count(*) FILTER (WHERE k.status = 'success'), sum(k.cost_usd),
       sum(k.latency_ms), coalesce(sum(k.quality_score::text::numeric), 0),
       count(k.quality_score), sum(k.input_tokens), sum(k.output_tokens),
       count(*) FILTER (WHERE k.failure_mode IS NOT NULL)
FROM calls k JOIN accounts a ON a.id = k.account_id
WHERE NOT EXISTS (
  SELECT 1 FROM calls_pending p WHERE p.account_id = k.account_id AND p.call_id = k.call_id
)
GROUP BY 1, 2, 3, 4, 5, 6
ORDER BY 1, 2, 3, 4, 5, 6
"""
OLD_RECOUNT = """
INSERT INTO rollup_model_daily
  (account_id, environment, day, task_type, model, calls, successes, cost_usd, latency_sum,
   quality_sum, quality_n)
SELECT account_id, environment, day, task_type, model, sum(calls), sum(successes),
       sum(cost_usd), sum(latency_sum), sum(quality_sum), sum(quality_n)
FROM by_provider GROUP BY 1, 2, 3, 4, 5
"""


def upgrade() -> None:
    op.execute(FOLD_LOCK)  # no fold meanwhile
    op.execute("LOCK TABLE calls IN SHARE MODE")  # and no batch
    op.execute(UNNAMED_QUEUED)
    op.execute("DELETE FROM rollup_model_daily")
    op.add_column("rollup_model_daily", sa.Column("provider", sa.Text, nullable=False))
    for name in ("input_tokens", "output_tokens", "failures"):
        op.add_column(
            "rollup_model_daily",
            sa.Column(name, sa.BigInteger, nullable=False, server_default="0"),
        )
    op.drop_constraint("pk_rollup_model_daily", "rollup_model_daily")
    op.create_primary_key(
        "pk_rollup_model_daily",
        "rollup_model_daily",
        ["account_id", "environment", "day", "task_type", "model", "provider"],
    )
    op.execute(RECOUNT)


def downgrade() -> None:
    op.execute(FOLD_LOCK)
    op.execute("CREATE TEMP TABLE by_provider ON COMMIT DROP AS SELECT * FROM rollup_model_daily")
    op.execute("DELETE FROM rollup_model_daily")
    op.drop_constraint("pk_rollup_model_daily", "rollup_model_daily")
    for name in ("failures", "output_tokens", "input_tokens", "provider"):
        op.drop_column("rollup_model_daily", name)
    op.create_primary_key(
        "pk_rollup_model_daily",
        "rollup_model_daily",
        ["account_id", "environment", "day", "task_type", "model"],
    )
    op.execute(OLD_RECOUNT)
