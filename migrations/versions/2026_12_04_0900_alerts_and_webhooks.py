"""Alerts and signed webhooks (SPEC §11): secret keys, webhook endpoints, the outbox, alert
rules, and a per-account 5-minute rollup for the failure-rate rules

Revision ID: 0012_alerts_and_webhooks
Revises: 0011_more_answers
Create Date: 2026-12-04 09:00:00

- `api_keys.kind` may be `secret` (sk_live_, sk_test_): an account's key, like a customer key.
- `webhook_endpoints`, `webhook_events` (the events as sent), `webhook_deliveries` (one per
  event and endpoint: the outbox the worker delivers from), `webhook_attempts` (the log).
- `alerts`: each rule's params, state, last value and when it is next due.
- `rollup_account_5m`: calls and failures per account, environment and 5 minutes, for the last
  two days only; counted here from the call log (the calls still queued are left to the next
  fold), under the fold lock and with the log locked against writes. The SQL is written out
  here, not imported: a migration must not change when the code does.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012_alerts_and_webhooks"
down_revision: str | None = "0011_more_answers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FOLD_LOCK = "SELECT pg_advisory_xact_lock(7233510)"
BUCKET = "date_bin('5 minutes', k.created_at, TIMESTAMPTZ '2000-01-01 00:00Z')"
RECENT = f"""
INSERT INTO rollup_account_5m (account_id, environment, bucket, calls, failures)
SELECT k.account_id, k.environment, {BUCKET}, count(*),
       count(*) FILTER (WHERE k.failure_mode IS NOT NULL)
FROM calls k
WHERE k.created_at >= now() - interval '2 days 5 minutes'
  AND {BUCKET} >= now() - interval '2 days'
  AND NOT EXISTS (
    SELECT 1 FROM calls_pending p WHERE p.account_id = k.account_id AND p.call_id = k.call_id
  )
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3
"""
NOW = sa.DateTime(timezone=True)


def _text(name: str, **kw: bool | str) -> sa.Column[str]:
    return sa.Column(name, sa.Text, **kw)  # type: ignore[arg-type]


def upgrade() -> None:
    op.execute(FOLD_LOCK)  # no fold meanwhile
    op.execute("LOCK TABLE calls IN SHARE MODE")  # and no batch

    op.drop_constraint("ck_api_keys_kind_scope", "api_keys")
    op.create_check_constraint(
        "kind_scope",
        "api_keys",
        "(kind IN ('customer', 'secret') AND account_id IS NOT NULL"
        " AND environment IN ('live', 'test'))"
        " OR (kind = 'ingest' AND account_id IS NULL AND environment IS NULL)",
    )

    op.create_table(
        "webhook_endpoints",
        _text("account_id", primary_key=True),
        _text("id", primary_key=True),
        _text("environment", nullable=False),
        _text("url", nullable=False),
        _text("description", nullable=False, server_default=""),
        sa.Column("event_types", postgresql.ARRAY(sa.Text)),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.text("true")),
        _text("disabled_reason"),
        _text("secret", nullable=False),
        _text("previous_secret"),
        sa.Column("previous_secret_expires_at", NOW),
        sa.Column("failing_since", NOW),
        sa.Column("created_at", NOW, nullable=False),
        sa.Column("updated_at", NOW, nullable=False),
        sa.CheckConstraint("environment IN ('live', 'test')", name="environment"),
        sa.CheckConstraint(
            "disabled_reason IS NULL OR disabled_reason IN ('gone', 'failing')",
            name="disabled_reason",
        ),
    )
    op.create_index(
        "ix_webhook_endpoints_account_id_environment_id",
        "webhook_endpoints",
        ["account_id", "environment", "id"],
    )
    op.create_table(
        "webhook_events",
        _text("account_id", primary_key=True),
        _text("id", primary_key=True),
        _text("environment", nullable=False),
        _text("type", nullable=False),
        _text("alert_id"),
        _text("body", nullable=False),
        sa.Column("created_at", NOW, nullable=False),
    )
    op.create_index("ix_webhook_events_created_at", "webhook_events", ["created_at"])
    op.create_table(
        "webhook_deliveries",
        _text("account_id", primary_key=True),
        _text("id", primary_key=True),
        _text("event_id", nullable=False),
        _text("endpoint_id", nullable=False),
        _text("status", nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", NOW),
        sa.Column("created_at", NOW, nullable=False),
        sa.Column("updated_at", NOW, nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id", "event_id"],
            ["webhook_events.account_id", "webhook_events.id"],
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["account_id", "endpoint_id"],
            ["webhook_endpoints.account_id", "webhook_endpoints.id"],
            ondelete="CASCADE",
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'succeeded', 'failed', 'cancelled')", name="status"
        ),
        sa.CheckConstraint("(status = 'pending') = (next_attempt_at IS NOT NULL)", name="due"),
    )
    op.create_index(
        "ix_webhook_deliveries_due",
        "webhook_deliveries",
        ["next_attempt_at"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_webhook_deliveries_account_id_endpoint_id_created_at",
        "webhook_deliveries",
        ["account_id", "endpoint_id", "created_at"],
    )
    op.create_index(
        "ix_webhook_deliveries_account_id_event_id",
        "webhook_deliveries",
        ["account_id", "event_id"],
    )
    op.create_table(
        "webhook_attempts",
        _text("account_id", primary_key=True),
        _text("delivery_id", primary_key=True),
        sa.Column("attempt", sa.Integer, primary_key=True),
        sa.Column("started_at", NOW, nullable=False),
        sa.Column("status_code", sa.Integer),
        _text("error"),
        sa.Column("latency_ms", sa.BigInteger, nullable=False),
        _text("response_excerpt"),
        sa.ForeignKeyConstraint(
            ["account_id", "delivery_id"],
            ["webhook_deliveries.account_id", "webhook_deliveries.id"],
            ondelete="CASCADE",
        ),
    )

    op.create_table(
        "alerts",
        _text("account_id", primary_key=True),
        _text("id", primary_key=True),
        _text("environment", nullable=False),
        _text("name", nullable=False),
        _text("type", nullable=False),
        sa.Column("params", postgresql.JSONB, nullable=False),
        sa.Column("endpoint_ids", postgresql.ARRAY(sa.Text)),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.text("true")),
        _text("state", nullable=False, server_default="ok"),
        sa.Column("streak", sa.Integer, nullable=False, server_default="0"),
        sa.Column("value", postgresql.JSONB),
        sa.Column("evaluated_at", NOW),
        _text("last_error"),
        sa.Column("next_eval_at", NOW, nullable=False),
        sa.Column("sequence", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("created_at", NOW, nullable=False),
        sa.Column("updated_at", NOW, nullable=False),
        sa.CheckConstraint("environment IN ('live', 'test')", name="environment"),
        sa.CheckConstraint("state IN ('ok', 'firing')", name="state"),
        sa.CheckConstraint(
            "type IN ('projected_month_end', 'month_to_date_cost', 'failure_rate',"
            " 'provider_status')",
            name="type",
        ),
    )
    op.create_index(
        "ix_alerts_account_id_environment_id", "alerts", ["account_id", "environment", "id"]
    )
    op.create_index(
        "ix_alerts_due", "alerts", ["next_eval_at"], postgresql_where=sa.text("enabled")
    )

    op.create_table(
        "rollup_account_5m",
        _text("account_id", primary_key=True),
        _text("environment", primary_key=True),
        sa.Column("bucket", NOW, primary_key=True),
        sa.Column("calls", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("failures", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.execute(RECENT)


def downgrade() -> None:
    op.execute(FOLD_LOCK)
    op.drop_table("rollup_account_5m")
    op.drop_table("alerts")
    op.drop_table("webhook_attempts")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_events")
    op.drop_table("webhook_endpoints")
    op.execute("DELETE FROM api_keys WHERE kind = 'secret'")
    op.drop_constraint("ck_api_keys_kind_scope", "api_keys")
    op.create_check_constraint(
        "kind_scope",
        "api_keys",
        "(kind = 'customer' AND account_id IS NOT NULL AND environment IN ('live', 'test'))"
        " OR (kind = 'ingest' AND account_id IS NULL AND environment IS NULL)",
    )
