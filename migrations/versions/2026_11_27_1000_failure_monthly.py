"""failure_monthly: the failure rollup at month grain, for the full months of long windows

Revision ID: 0003_failure_monthly
Revises: 0002_rollups
Create Date: 2026-11-27 10:00:00

A 90-day failures question for a large account read ~17k day rows (task x first-choice model x
mode per day); full calendar months inside the window now come from one row per combination
and month. Backfilled from the daily rollup, so it holds exactly the same counts.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_failure_monthly"
down_revision: str | None = "0002_rollups"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTS = ("calls", "retry_recovered", "fallback_recovered", "unrecoverable")


def upgrade() -> None:
    op.create_table(
        "rollup_failure_monthly",
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("environment", sa.Text, nullable=False),
        sa.Column("month", sa.Date, nullable=False),  # the 1st of the UTC month
        sa.Column("task_type", sa.Text, nullable=False),
        sa.Column("first_model", sa.Text, nullable=False),
        sa.Column("failure_mode", sa.Text, nullable=False),
        *(sa.Column(n, sa.BigInteger, nullable=False, server_default="0") for n in COUNTS),
        sa.PrimaryKeyConstraint(
            "account_id", "environment", "month", "task_type", "first_model", "failure_mode"
        ),
    )
    op.execute(
        """
        INSERT INTO rollup_failure_monthly
          (account_id, environment, month, task_type, first_model, failure_mode, calls,
           retry_recovered, fallback_recovered, unrecoverable)
        SELECT account_id, environment, date_trunc('month', day)::date, task_type, first_model,
               failure_mode, sum(calls), sum(retry_recovered), sum(fallback_recovered),
               sum(unrecoverable)
        FROM rollup_failure_daily
        GROUP BY 1, 2, 3, 4, 5, 6
        """
    )


def downgrade() -> None:
    op.drop_table("rollup_failure_monthly")
