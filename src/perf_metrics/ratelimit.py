"""Per-tier rate limits (SPEC §6) on the `limits` library's asyncio API.

Why not slowapi's decorators, which wrap the same library: slowapi calls its storage
synchronously (a blocking Redis round trip inside the event loop on every request), injects
headers only into endpoints that take a `response` argument, and keys buckets by the endpoint
function's name unless told otherwise. We need one budget per account across the six metrics
endpoints, a limit chosen by the caller's tier after authentication, headers on every answer
(errors and 304s included), and a Redis outage that never blocks or fails a request. So the
buckets live here, on `limits.aio` with redis-py's asyncio client:

- `/v1/metrics/*`: one fixed window per account (both environments, every key of the account),
  sized by the account's tier, read on each request, so a tier change applies at once.
  A 304 leaves the tier's budget untouched (SPEC §12, GitHub's convention: polling unchanged
  data costs nothing). Every conditional request (`If-None-Match`) spends one of a budget of
  its own, 10x the tier's, as it arrives, and one of the tier's too unless it is answered 304
  for a copy the client holds (`If-None-Match: *` holds none, so it pays). One whose answer is
  not cached is refused before any work when the tier's budget is spent: past its tier, an
  account gets 304s for what it holds, and nothing computed.
- `POST /v1/calls`: one window per ingest key (INGEST_RATE_LIMIT_PER_MINUTE).
- A missing or bad key: one window per client address (UNAUTHENTICATED_RATE_LIMIT_PER_MINUTE),
  checked before the 401, so keys cannot be guessed at speed; no account budget is touched.
- Health, readiness, `/metrics` and the OpenAPI routes are never limited.

Storage: in memory (one process) unless REDIS_URL is set, then Redis, so N processes enforce one
limit. If Redis does not answer within 250 ms the request is let through (fail-open) and a
warning is logged at most every 30 s: a metrics API should not go dark because its limiter did.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import FixedWindowRateLimiter
from starlette.requests import Request

from perf_metrics.errors import RateLimited
from perf_metrics.settings import Settings

log = logging.getLogger("perf_metrics.ratelimit")
_WARN_EVERY_S = 30.0
NOT_MODIFIED_LIMIT_FACTOR = 10


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_at: float  # Unix seconds
    window_s: int

    def headers(self) -> dict[str, str]:
        reset_in = max(0, math.ceil(self.reset_at - time.time()))
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(math.ceil(self.reset_at)),
            # draft-ietf-httpapi-ratelimit-headers
            "RateLimit-Policy": f'"default";q={self.limit};w={self.window_s}',
            "RateLimit": f'"default";r={self.remaining};t={reset_in}',
        }


def tier_bucket(account_id: str) -> str:
    """The account's per-tier budget of metrics requests, shared by all its keys."""
    return f"acct:{account_id}"


class Limiter:
    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.rate_limit_enabled
        self.window_s = settings.rate_limit_window_s
        self.prefix = settings.rate_limit_key_prefix
        if settings.redis_url:
            self.storage: Any = RedisStorage(
                "async+" + settings.redis_url,
                implementation="redispy",
                key_prefix=self.prefix,
                socket_timeout=0.25,
                socket_connect_timeout=0.25,
            )
        else:
            self.storage = MemoryStorage()
        self.strategy = FixedWindowRateLimiter(self.storage)
        self._last_warning = 0.0
        self.rejections = 0

    async def hit(self, bucket: str, limit: int) -> Decision | None:
        """Count one request against `bucket`; None when limiting is off or storage is down."""
        if not self.enabled:
            return None
        item = RateLimitItemPerSecond(limit, self.window_s)
        try:
            allowed = await self.strategy.hit(item, bucket)
            reset_at, remaining = await self.strategy.get_window_stats(item, bucket)
        except Exception as exc:  # storage down or slow: fail open, loudly but not too often
            now = time.monotonic()
            if now - self._last_warning > _WARN_EVERY_S:
                self._last_warning = now
                log.warning("rate-limit storage unavailable, not limiting: %s", exc)
            return None
        if not allowed:
            self.rejections += 1
        return Decision(allowed, limit, max(0, remaining), reset_at, self.window_s)

    async def peek(self, bucket: str, limit: int) -> Decision | None:
        """The bucket's state without counting a request; None when off or storage is down."""
        if not self.enabled:
            return None
        item = RateLimitItemPerSecond(limit, self.window_s)
        try:
            reset_at, remaining = await self.strategy.get_window_stats(item, bucket)
        except Exception:  # as in hit(): fail open; hit() does the warning
            return None
        return Decision(True, limit, max(0, remaining), reset_at, self.window_s)

    async def enforce_metrics(self, request: Request, account_id: str, limit: int) -> None:
        """Charge one metrics request to the account's tier budget."""
        await self.enforce(request, tier_bucket(account_id), limit)

    async def enforce_conditional(self, request: Request, account_id: str, limit: int) -> None:
        """Charge a conditional request to the budget of conditional requests (10x the tier),
        before its answer is known: whatever it turns out to be, the rate is bounded."""
        await self.enforce(request, f"cond:{account_id}", limit * NOT_MODIFIED_LIMIT_FACTOR)

    async def show_tier_budget(self, request: Request, account_id: str, limit: int) -> None:
        """A 304's rate-limit headers: the tier's budget, untouched."""
        tier = await self.peek(tier_bucket(account_id), limit)
        if tier is not None:
            request.state.response_headers = tier.headers()

    async def enforce(self, request: Request, bucket: str, limit: int) -> None:
        decision = await self.hit(bucket, limit)
        if decision is None:
            return
        request.state.response_headers = decision.headers()
        request.state.rate_limit_bucket = bucket.split(":", 1)[0]
        if not decision.allowed:
            raise self._refusal(decision)

    async def refuse_if_spent(self, request: Request, account_id: str, limit: int) -> None:
        """429 now if the account's tier budget is spent, counting nothing: for a conditional
        request about to compute an answer, work its tier would not allow."""
        tier = await self.peek(tier_bucket(account_id), limit)
        if tier is not None and tier.remaining <= 0 and tier.reset_at > time.time():
            request.state.response_headers = tier.headers()
            raise self._refusal(tier)

    def _refusal(self, decision: Decision) -> RateLimited:
        retry_after = max(1, math.ceil(decision.reset_at - time.time()))
        return RateLimited(
            f"Rate limit of {decision.limit} requests per {self.window_s} s exceeded. "
            f"Retry in {retry_after} s.",
            headers={"Retry-After": str(retry_after)},
        )

    async def close(self) -> None:
        bridge = getattr(self.storage, "bridge", None)
        client = getattr(bridge, "storage", None)
        if client is not None and hasattr(client, "aclose"):
            await client.aclose()


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"
