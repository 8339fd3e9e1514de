"""Configuration, read from the environment once (pydantic-settings)."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Tier = Literal["free", "pro", "enterprise"]

# Requests per minute on /v1/metrics/*, per account (SPEC §6).
TIER_LIMITS: dict[str, int] = {"free": 10, "pro": 60, "enterprise": 300}

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/perf_metrics"


def normalize_database_url(url: str) -> str:
    """Accept the usual `postgresql://` / `postgres://` forms and use the asyncpg driver."""
    for prefix in (
        "postgresql+asyncpg://",
        "postgresql+psycopg2://",
        "postgresql://",
        "postgres://",
    ):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError("DATABASE_URL must be a postgresql:// URL")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore")

    database_url: str = Field(DEFAULT_DATABASE_URL, description="Postgres URL (postgresql://...).")
    db_pool_size: int = Field(10, ge=1, le=200)
    db_max_overflow: int = Field(5, ge=0, le=200)
    db_pool_timeout_s: float = Field(2.0, gt=0, description="Wait for a pooled connection.")
    db_connect_timeout_s: float = Field(3.0, gt=0)
    db_statement_timeout_ms: int = Field(5000, ge=100, description="Per-statement limit.")

    fold_interval_s: float = Field(
        0.5, gt=0, le=2, description="How often each process folds queued calls into rollups."
    )
    ingest_waits_for_fold: bool = Field(
        False,
        description="POST /v1/calls answers only once its batch is in the rollups (read-your-"
        "writes) instead of right after commit; folds are then smaller and cost more per call.",
    )

    redis_url: str | None = Field(None, description="Rate-limit storage shared by processes.")
    rate_limit_enabled: bool = True
    rate_limit_window_s: int = Field(60, ge=1, description="Rate-limit window; 60 in production.")
    rate_limit_key_prefix: str = Field("perf-metrics", description="Redis key prefix.")
    ingest_rate_limit_per_minute: int = Field(1200, ge=1)
    unauthenticated_rate_limit_per_minute: int = Field(30, ge=1)

    cors_allow_origins: str = Field(
        "*",
        description="Origins whose pages may call the metrics GETs and GET /v1/account from a "
        "browser (SPEC §12): * (any), a comma-separated list (https://dash.example.com), or "
        "empty (none). Ingest is never opened to browsers.",
    )
    response_cache_entries: int = Field(
        5000, ge=0, description="Metrics answers kept per process (0 turns the cache off)."
    )

    run_worker: bool = Field(
        True,
        description="serve runs the worker (alert evaluation, webhook delivery: SPEC §11) "
        "in-process; false when `perf-metrics worker` runs on its own.",
    )
    worker_interval_s: float = Field(
        0.25, gt=0, le=10, description="How often an idle worker looks for due work."
    )
    webhooks_allow_loopback: bool = Field(
        False,
        description="Development and tests only: webhook endpoints may be http(s) to "
        "127.0.0.1 or ::1. Never in production (it lets a customer's URL reach this host).",
    )

    max_ingest_records: int = 10_000
    max_ingest_bytes: int = 10 * 1024 * 1024

    log_level: str = "INFO"

    @field_validator("database_url")
    @classmethod
    def _asyncpg_url(cls, value: str) -> str:
        return normalize_database_url(value)


@lru_cache
def get_settings() -> Settings:
    return Settings()
