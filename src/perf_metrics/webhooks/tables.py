"""The webhook tables (SPEC §11, migration 0012): endpoints, events, deliveries, attempts.

Every table is per account and keyed by `account_id` first, as the call log and the rollups
are (a distributed Postgres can shard them all by account). The outbox is `webhook_events`
plus `webhook_deliveries`: an event and one delivery per endpoint are written in the
transaction that causes them (an alert's change of state), and the worker delivers from there.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY

from perf_metrics.db import metadata

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("id", Text, primary_key=True),  # we_...
    Column("environment", Text, nullable=False),
    Column("url", Text, nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    # The event types sent to it; null: every type.
    Column("event_types", ARRAY(Text)),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    # Why the service disabled it (`gone`: a 410; `failing`: 5 days of failures); null when
    # enabled, or disabled by its owner.
    Column("disabled_reason", Text),
    # The signing secret (whsec_ + base64 of 32 random bytes), and the one it replaced, which
    # keeps signing beside it until `previous_secret_expires_at` (a rotation's overlap).
    Column("secret", Text, nullable=False),
    Column("previous_secret", Text),
    Column("previous_secret_expires_at", DateTime(timezone=True)),
    # Since when every attempt has failed (null: the last one succeeded, or none yet).
    Column("failing_since", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("environment IN ('live', 'test')", name="environment"),
    CheckConstraint(
        "disabled_reason IS NULL OR disabled_reason IN ('gone', 'failing')",
        name="disabled_reason",
    ),
)
Index(None, webhook_endpoints.c.account_id, webhook_endpoints.c.environment, webhook_endpoints.c.id)

# An event as it is sent: its body is signed and sent as these exact bytes on every attempt.
webhook_events = Table(
    "webhook_events",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("id", Text, primary_key=True),  # msg_...: the webhook-id header
    Column("environment", Text, nullable=False),
    Column("type", Text, nullable=False),  # alert.firing, alert.resolved, webhook.test
    Column("alert_id", Text),
    Column("body", Text, nullable=False),  # {"type", "timestamp", "data"}, as sent
    Column("created_at", DateTime(timezone=True), nullable=False),
)
Index(None, webhook_events.c.created_at)  # the 30-day log's pruning

# One per event and endpoint: what the worker delivers, retrying on the SPEC's schedule.
# `pending` until a 2xx (`succeeded`), the last retry (`failed`) or the endpoint's end
# (`cancelled`: disabled or deleted). `next_attempt_at` is also the lease of an attempt in
# flight (a worker claims a delivery by moving it LEASE ahead: one that dies mid-send leaves
# it to be retried when the lease runs out).
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("id", Text, primary_key=True),  # whd_...
    Column("event_id", Text, nullable=False),
    Column("endpoint_id", Text, nullable=False),
    Column("status", Text, nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    ForeignKeyConstraint(
        ["account_id", "event_id"],
        ["webhook_events.account_id", "webhook_events.id"],
        ondelete="CASCADE",
    ),
    ForeignKeyConstraint(
        ["account_id", "endpoint_id"],
        ["webhook_endpoints.account_id", "webhook_endpoints.id"],
        ondelete="CASCADE",
    ),
    CheckConstraint("status IN ('pending', 'succeeded', 'failed', 'cancelled')", name="status"),
    CheckConstraint("(status = 'pending') = (next_attempt_at IS NOT NULL)", name="due"),
)
# The worker's queue: due deliveries, oldest first.
Index(
    "ix_webhook_deliveries_due",
    webhook_deliveries.c.next_attempt_at,
    postgresql_where=webhook_deliveries.c.status == "pending",
)
Index(
    None,
    webhook_deliveries.c.account_id,
    webhook_deliveries.c.endpoint_id,
    webhook_deliveries.c.created_at,
)
Index(None, webhook_deliveries.c.account_id, webhook_deliveries.c.event_id)

# Each try of a delivery: when, how it ended, how long it took, what the receiver said.
webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("delivery_id", Text, primary_key=True),
    Column("attempt", Integer, primary_key=True),  # 1, 2, ...
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("status_code", Integer),  # null: no HTTP answer (refused, timeout, ...)
    Column("error", Text),  # null for a 2xx
    Column("latency_ms", BigInteger, nullable=False),
    Column("response_excerpt", Text),  # the receiver's first 2 KiB
    ForeignKeyConstraint(
        ["account_id", "delivery_id"],
        ["webhook_deliveries.account_id", "webhook_deliveries.id"],
        ondelete="CASCADE",
    ),
)
