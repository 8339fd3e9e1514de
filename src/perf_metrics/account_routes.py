"""GET /v1/account: check a key and see what it may do."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from perf_metrics.auth import CustomerKeyDep
from perf_metrics.errors import documented_error

router = APIRouter(tags=["account"])


class AccountResponse(BaseModel):
    account_id: str = Field(description="The account the key belongs to.")
    name: str = Field(description="The account's display name.")
    tier: str = Field(description="Billing tier: free, pro or enterprise.")
    environment: str = Field(description="The key's environment: live or test.")
    key_id: str = Field(description="Id of the key that made this request.")
    rate_limit_per_minute: int = Field(
        description="Requests a minute allowed on /v1/metrics/* for this account (by tier)."
    )
    timezone: str = Field(
        description="The IANA zone the account's days, months and hours of day are counted "
        "in (default UTC); set by the operator with `perf-metrics accounts update ID "
        "--timezone ZONE`.",
        examples=["Europe/Berlin"],
    )
    tracked_metadata_keys: list[str] = Field(
        description="The metadata keys `GET /v1/metrics/breakdown` can group by "
        "(`group_by=metadata.<key>`), at most 5; set by the operator with `perf-metrics "
        "accounts update ID --track-metadata feature,team`. Adding a key covers the account's "
        "whole history.",
        examples=[["feature", "team"]],
    )
    monthly_budget_usd: float | None = Field(
        description="The monthly budget customer's `cost_analysis.budget` measures this local "
        "month's spending against; null when none is set. Set by the operator with "
        "`perf-metrics accounts update ID --monthly-budget USD` (`none` clears it).",
        examples=[5000.0],
    )


@router.get(
    "/v1/account",
    response_model=AccountResponse,
    summary="The calling key's account",
    responses={
        401: documented_error(
            "Missing, malformed, unknown or revoked key", WWW_Authenticate="Bearer"
        ),
        403: documented_error("Not a customer key (an ingest key)"),
        429: documented_error(
            "Too many requests with a bad key from one address; see Retry-After",
            Retry_After="Seconds to wait before retrying.",
        ),
        503: documented_error(
            "Database unavailable or too slow; see Retry-After",
            Retry_After="Seconds to wait before retrying.",
        ),
        "default": documented_error("Any other error (500 internal_error), in the same envelope"),
    },
)
async def get_account(key: CustomerKeyDep) -> AccountResponse:
    """Which account and environment a customer key reads, and its rate limit."""
    assert key.account_id and key.account_name and key.tier and key.environment
    return AccountResponse(
        account_id=key.account_id,
        name=key.account_name,
        tier=key.tier,
        environment=key.environment,
        key_id=key.key_id,
        rate_limit_per_minute=key.rate_limit_per_minute or 0,
        timezone=key.timezone,
        tracked_metadata_keys=list(key.tracked_metadata_keys),
        monthly_budget_usd=(
            None if key.monthly_budget_usd is None else float(key.monthly_budget_usd)
        ),
    )
