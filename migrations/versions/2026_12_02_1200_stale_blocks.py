"""Late calls mark their week stale instead of upserting its week rows

Revision ID: 0010_stale_blocks
Revises: 0009_group_rollups
Create Date: 2026-12-02 12:00:00

A call of a week that has week rows already (`rollup_group_weekly`, the weeks before
`rollup_watermarks.group_weekly_before`) used to be upserted into them by the fold. Now the
fold marks the week stale here instead: breakdowns read a stale week from its daily rows, and
the fold's seal builds its week rows afresh from them once late calls have stopped coming
(docs/rollups.md). Keyed by account first, like every per-account table.

Deploying: processes on older code read a stale week's incomplete week rows; run this code
everywhere before late calls arrive (a backfill), or rebuild the rollups after.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_stale_blocks"
down_revision: str | None = "0009_group_rollups"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MEASURES = (
    "calls",
    "successes",
    "failures",
    "cost_usd",
    "latency_sum",
    "quality_sum",
    "quality_n",
    "input_tokens",
    "output_tokens",
)


def upgrade() -> None:
    op.create_table(
        "rollup_stale_blocks",
        sa.Column("account_id", sa.Text, primary_key=True),
        sa.Column("environment", sa.Text, primary_key=True),
        sa.Column("rollup", sa.Text, primary_key=True, comment="the rollup of longer blocks"),
        sa.Column("block", sa.Date, primary_key=True, comment="the first day of the stale block"),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    # The week rows of stale weeks are incomplete: built afresh from the days first.
    op.execute("SELECT pg_advisory_xact_lock(7233510)")
    op.execute(
        "DELETE FROM rollup_group_weekly w USING rollup_stale_blocks s"
        " WHERE s.rollup = 'rollup_group_weekly' AND w.account_id = s.account_id"
        " AND w.environment = s.environment AND w.week = s.block"
    )
    op.execute(
        f"""INSERT INTO rollup_group_weekly
  (account_id, environment, dimension, value, week, {", ".join(MEASURES)})
  SELECT d.account_id, d.environment, d.dimension, d.value, s.block,
         {", ".join(f"sum({m})" for m in MEASURES)}
  FROM rollup_stale_blocks s JOIN rollup_group_daily d
    ON d.account_id = s.account_id AND d.environment = s.environment
   AND d.day >= s.block AND d.day < s.block + 7
  WHERE s.rollup = 'rollup_group_weekly'
  GROUP BY 1, 2, 3, 4, 5"""
    )
    op.drop_table("rollup_stale_blocks")
