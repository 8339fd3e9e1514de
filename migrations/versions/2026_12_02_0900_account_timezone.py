"""accounts.timezone: days in the account's own zone (SPEC §9); account_rebuilds; call ids queued

Revision ID: 0007_account_timezone
Revises: 0006_failure_months_sealed
Create Date: 2026-12-02 09:00:00

- `accounts.timezone`: the IANA zone an account's days, months and hours of day are counted in,
  canonical spelling, default UTC. Every rollup already holds UTC days, so every account starts
  exact in UTC and nothing is rebuilt here.
- `account_rebuilds`: the accounts whose rollups a zone change is rebuilding right now. Folds
  leave their queued calls alone until `expires_at` (rollups/rezone.py); a change that died
  leaves a row that simply expires.
- `calls_pending.call_id`: a zone change rebuilds from the calls that are not queued, and the
  queue must say which those are. Rows queued before this migration have none; a zone change
  waits until they are folded.

The SQL is written out here, not imported: a migration must not change when the code does.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_account_timezone"
down_revision: str | None = "0006_failure_months_sealed"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("accounts", sa.Column("timezone", sa.Text, nullable=False, server_default="UTC"))
    op.add_column("calls_pending", sa.Column("call_id", sa.Text))
    op.create_table(
        "account_rebuilds",
        sa.Column("account_id", sa.Text, primary_key=True),
        sa.Column("timezone", sa.Text, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("account_rebuilds")
    op.drop_column("calls_pending", "call_id")
    op.drop_column("accounts", "timezone")
