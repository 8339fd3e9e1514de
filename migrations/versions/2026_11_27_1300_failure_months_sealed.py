"""rollup_watermarks: month rows of the failures rollup only for months that have ended

Revision ID: 0006_failure_months_sealed
Revises: 0005_calls_pending
Create Date: 2026-11-27 13:00:00

Live traffic lands in the current month, where rollup_failure_monthly has as many rows as
rollup_failure_daily, so every fold upserted both: about a fifth of a fold's time. The month
rows only serve windows that contain a whole month, which the current month never is until it
ends. Now `failure_monthly_before` (the 1st of a month) marks the months that have month rows:
folds upsert month rows only for calls before it, readers take the months from it on from the
daily rows, and the first fold of a new month builds the month that ended from the daily rows
and moves the mark (store.py). Here: the mark starts at the current month, whose month rows go.

The SQL is written out here, not imported: a migration must not change when the code does.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_failure_months_sealed"
down_revision: str | None = "0005_calls_pending"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FOLD_LOCK = "SELECT pg_advisory_xact_lock(7233510)"  # no fold runs meanwhile
THIS_MONTH = "date_trunc('month', now() AT TIME ZONE 'UTC')::date"


def upgrade() -> None:
    op.execute(FOLD_LOCK)
    op.create_table(
        "rollup_watermarks",
        sa.Column(
            "id",
            sa.Boolean,
            primary_key=True,
            server_default=sa.true(),
            comment="one row: always true",
        ),
        sa.Column(
            "failure_monthly_before",
            sa.Date,
            nullable=False,
            comment="rollup_failure_monthly holds the months before this 1st of a month, whole",
        ),
        sa.CheckConstraint("id", name="one_row"),
    )
    op.execute(f"INSERT INTO rollup_watermarks (failure_monthly_before) VALUES ({THIS_MONTH})")
    op.execute(f"DELETE FROM rollup_failure_monthly WHERE month >= {THIS_MONTH}")


def downgrade() -> None:
    op.execute(FOLD_LOCK)
    # Back to month rows for every month: build those the mark left to the daily rows.
    op.execute(
        """
        DELETE FROM rollup_failure_monthly
        WHERE month >= (SELECT failure_monthly_before FROM rollup_watermarks)
        """
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
        WHERE day >= (SELECT failure_monthly_before FROM rollup_watermarks)
        GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6
        """
    )
    op.drop_table("rollup_watermarks")
