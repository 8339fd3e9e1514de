"""Per end user and per tracked metadata key: the group rollups (SPEC §10)

Revision ID: 0009_group_rollups
Revises: 0008_model_daily_by_provider
Create Date: 2026-12-02 11:00:00

`GET /v1/metrics/breakdown?group_by=user` and `group_by=metadata.<key>` read two new rollups,
keyed (account, environment, dimension) and then (day, value) or (value, week):
`rollup_group_daily`, written by every fold, and `rollup_group_weekly`, whose rows exist for
the weeks before `rollup_watermarks.group_weekly_before` (a Monday), built from the daily rows
when a week has ended in every zone. Each has an index by cost within a block (with the value,
so that a breakdown finds a block's top groups from the index alone). Accounts gain
`tracked_metadata_keys` (none yet: the `metadata.<key>` dimensions start empty), and the queue
gains `user_id` and `metadata` (what the new rollups read of a call), filled in here for the
calls already queued.

The users' rows are counted here from the call log, in each account's zone, under the fold
lock and with the log locked against writes; the calls still queued are left to the next fold.
The SQL is written out here, not imported: a migration must not change when the code does.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009_group_rollups"
down_revision: str | None = "0008_model_daily_by_provider"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FOLD_LOCK = "SELECT pg_advisory_xact_lock(7233510)"
THIS_WEEK = (
    "((now() AT TIME ZONE 'Etc/GMT+12')::date"
    " - extract(isodow FROM (now() AT TIME ZONE 'Etc/GMT+12')::date)::int + 1)"
)
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
QUEUED_USERS = """
UPDATE calls_pending p SET user_id = k.user_id, metadata = k.metadata
FROM calls k WHERE k.account_id = p.account_id AND k.call_id = p.call_id
"""
RECOUNT = f"""
INSERT INTO rollup_group_daily
  (account_id, environment, dimension, day, value, {", ".join(MEASURES)})
SELECT k.account_id, k.environment, 'user', (k.created_at AT TIME ZONE a.timezone)::date,
       coalesce(k.user_id, ''),
       count(*), count(*) FILTER (WHERE k.status = 'success'),
       count(*) FILTER (WHERE k.failure_mode IS NOT NULL), sum(k.cost_usd),
       sum(k.latency_ms), coalesce(sum(k.quality_score::text::numeric), 0),
       count(k.quality_score), sum(k.input_tokens), sum(k.output_tokens)
FROM calls k JOIN accounts a ON a.id = k.account_id
WHERE NOT EXISTS (
  SELECT 1 FROM calls_pending p WHERE p.account_id = k.account_id AND p.call_id = k.call_id
)
GROUP BY 1, 2, 3, 4, 5
ORDER BY 1, 2, 3, 4, 5
"""
WEEKS = f"""
INSERT INTO rollup_group_weekly
  (account_id, environment, dimension, value, week, {", ".join(MEASURES)})
SELECT account_id, environment, dimension, value, day - extract(isodow FROM day)::int + 1,
       {", ".join(f"sum({m})" for m in MEASURES)}
FROM rollup_group_daily WHERE day < (SELECT group_weekly_before FROM rollup_watermarks)
GROUP BY 1, 2, 3, 4, 5
ORDER BY 1, 2, 3, 4, 5
"""


def _group_table(name: str, *key: str) -> None:
    """A group rollup keyed (account, environment, dimension, `key`'s two in order)."""
    block = "day" if "day" in key else "week"
    op.create_table(
        name,
        sa.Column("account_id", sa.Text, primary_key=True),
        sa.Column("environment", sa.Text, primary_key=True),
        sa.Column("dimension", sa.Text, primary_key=True),
        *(sa.Column(k, sa.Date if k == block else sa.Text, primary_key=True) for k in key),
        *(
            sa.Column(
                m,
                sa.Numeric if m in ("cost_usd", "quality_sum") else sa.BigInteger,
                nullable=False,
                server_default="0",
            )
            for m in MEASURES
        ),
    )
    op.create_index(
        f"ix_{name}_ranked",
        name,
        ["account_id", "environment", "dimension", block, sa.text("cost_usd DESC")],
        postgresql_include=["value"],
    )


def upgrade() -> None:
    op.execute(FOLD_LOCK)  # no fold meanwhile
    op.execute("LOCK TABLE calls IN SHARE MODE")  # and no batch
    op.add_column(
        "accounts",
        sa.Column(
            "tracked_metadata_keys",
            postgresql.ARRAY(sa.Text),
            nullable=False,
            server_default=sa.text("'{}'::text[]"),
        ),
    )
    op.create_check_constraint(
        "tracked_metadata_keys",
        "accounts",
        "cardinality(tracked_metadata_keys) <= 5",
    )
    op.add_column("calls_pending", sa.Column("user_id", sa.Text))
    op.add_column("calls_pending", sa.Column("metadata", postgresql.JSONB))
    op.execute(QUEUED_USERS)
    op.add_column(
        "rollup_watermarks",
        sa.Column(
            "group_weekly_before",
            sa.Date,
            nullable=False,
            server_default=sa.text(THIS_WEEK),
            comment="rollup_group_weekly holds the weeks before this Monday, whole",
        ),
    )
    op.alter_column("rollup_watermarks", "group_weekly_before", server_default=None)
    _group_table("rollup_group_daily", "day", "value")
    _group_table("rollup_group_weekly", "value", "week")  # a group's weeks side by side
    op.execute(RECOUNT)
    op.execute(WEEKS)


def downgrade() -> None:
    op.execute(FOLD_LOCK)
    op.drop_table("rollup_group_weekly")
    op.drop_table("rollup_group_daily")
    op.drop_column("rollup_watermarks", "group_weekly_before")
    op.drop_column("calls_pending", "metadata")
    op.drop_column("calls_pending", "user_id")
    op.drop_constraint("ck_accounts_tracked_metadata_keys", "accounts")
    op.drop_column("accounts", "tracked_metadata_keys")
