"""The alert rules (SPEC §11, migration 0012): each one's params, state and schedule."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    Integer,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from perf_metrics.db import metadata

ALERT_TYPES = ("projected_month_end", "month_to_date_cost", "failure_rate", "provider_status")

alerts = Table(
    "alerts",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("id", Text, primary_key=True),  # al_...
    Column("environment", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("type", Text, nullable=False),
    Column("params", JSONB, nullable=False),
    # The endpoints its events go to; null: every endpoint of its account and environment.
    Column("endpoint_ids", ARRAY(Text)),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("state", Text, nullable=False, server_default="ok"),
    # Evaluations in a row whose condition disagreed with `state` (two flip a rate or status
    # rule; one a budget rule).
    Column("streak", Integer, nullable=False, server_default="0"),
    Column("value", JSONB),  # the last evaluation's value (a number, or a provider's status)
    Column("evaluated_at", DateTime(timezone=True)),
    Column("last_error", Text),  # the last evaluation's error, if it failed (state kept)
    Column("next_eval_at", DateTime(timezone=True), nullable=False),
    Column("sequence", BigInteger, nullable=False, server_default="0"),  # its last event's
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("environment IN ('live', 'test')", name="environment"),
    CheckConstraint("state IN ('ok', 'firing')", name="state"),
    CheckConstraint("type IN (" + ", ".join(f"'{t}'" for t in ALERT_TYPES) + ")", name="type"),
)
Index(None, alerts.c.account_id, alerts.c.environment, alerts.c.id)
# The worker's queue: enabled rules, by when each is due.
Index("ix_alerts_due", alerts.c.next_eval_at, postgresql_where=alerts.c.enabled)
