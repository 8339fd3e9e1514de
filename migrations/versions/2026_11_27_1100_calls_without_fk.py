"""calls without a foreign key; latency_bin inlinable

Revision ID: 0004_calls_without_fk
Revises: 0003_failure_monthly
Create Date: 2026-11-27 11:00:00

The foreign key from calls to accounts fired a trigger per inserted row (a key-share lock on the
account, ~7 µs a row, a third of the cost of storing a call). The write path now takes the same
lock once per account and batch (`SELECT ... FOR KEY SHARE`) before inserting, and rejects a
batch naming unknown accounts, so the guarantee holds at a fraction of the cost.

latency_bin loses STRICT: a STRICT SQL function whose body is not strict is never inlined, so
it ran as a function call per ingested row (~2 µs). Its value is unchanged, NULL included.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004_calls_without_fk"
down_revision: str | None = "0003_failure_monthly"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LATENCY_BIN = """
CREATE OR REPLACE FUNCTION latency_bin(ms integer) RETURNS integer
LANGUAGE sql IMMUTABLE {strict} PARALLEL SAFE AS $$
  SELECT CASE WHEN ms < 100 THEN ms
              ELSE 100 + floor(ln(ms::float8 / 100) / ln(1.01::float8 / 0.99))::integer END
$$
"""


def upgrade() -> None:
    op.drop_constraint("fk_calls_account_id_accounts", "calls", type_="foreignkey")
    op.execute(LATENCY_BIN.format(strict=""))


def downgrade() -> None:
    op.execute(LATENCY_BIN.format(strict="STRICT"))
    op.create_foreign_key(
        "fk_calls_account_id_accounts", "calls", "accounts", ["account_id"], ["id"]
    )
