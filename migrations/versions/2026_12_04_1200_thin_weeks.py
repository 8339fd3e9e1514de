"""rollup_group_weekly: no week rows for thin weeks, those of an account and environment with
fewer than `rollup_watermarks.group_weekly_least_calls` calls (1,000); they are read as their
days

Revision ID: 0013_thin_weeks
Revises: 0012_alerts_and_webhooks
Create Date: 2026-12-04 12:00:00

The week rows of the thin weeks go (they are never read again). The SQL is written out here,
not imported: a migration must not change when the code does.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_thin_weeks"
down_revision: str | None = "0012_alerts_and_webhooks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FOLD_LOCK = "SELECT pg_advisory_xact_lock(7233510)"
THIN_DELETED = """
DELETE FROM rollup_group_weekly r USING (
  SELECT account_id, environment, (day - extract(isodow FROM day)::int + 1) AS week
  FROM rollup_account_daily
  GROUP BY 1, 2, 3 HAVING sum(calls) < (SELECT group_weekly_least_calls FROM rollup_watermarks)
) thin
WHERE r.account_id = thin.account_id AND r.environment = thin.environment
  AND r.week = thin.week
"""


def upgrade() -> None:
    op.add_column(
        "rollup_watermarks",
        sa.Column(
            "group_weekly_least_calls",
            sa.Integer,
            nullable=False,
            server_default=sa.text("1000"),
            comment="rollup_group_weekly has rows only for the weeks of an account and"
            " environment with at least this many calls; raise it freely, lower it only with a"
            " rollups rebuild",
        ),
    )
    op.execute(FOLD_LOCK)  # no fold builds week rows meanwhile
    op.execute(THIN_DELETED)


def downgrade() -> None:
    # Thin weeks get their rows back as they were built before: from their days.
    op.execute(FOLD_LOCK)
    op.execute("""
INSERT INTO rollup_group_weekly (account_id, environment, dimension, value, week, calls,
  successes, failures, cost_usd, latency_sum, quality_sum, quality_n, input_tokens,
  output_tokens)
SELECT d.account_id, d.environment, d.dimension, d.value,
       (d.day - extract(isodow FROM d.day)::int + 1), sum(d.calls), sum(d.successes),
       sum(d.failures), sum(d.cost_usd), sum(d.latency_sum), sum(d.quality_sum),
       sum(d.quality_n), sum(d.input_tokens), sum(d.output_tokens)
FROM rollup_group_daily d
WHERE d.day < (SELECT group_weekly_before FROM rollup_watermarks)
GROUP BY 1, 2, 3, 4, 5
ON CONFLICT DO NOTHING
""")
    op.drop_column("rollup_watermarks", "group_weekly_least_calls")
