"""CORS for the read routes (SPEC §12): a dashboard on the customer's own origin may call the
metrics GETs (and `GET /v1/account`) with its key; nothing else is opened to browsers.

Only these paths get CORS headers; ingest (`POST /v1/calls`) and every other route answer a
browser's preflight as any unknown method (no `Access-Control-Allow-Origin`), so a page on
another origin cannot send them. No cookie is used anywhere, so no credentials mode: with the
default `CORS_ALLOW_ORIGINS=*` the answer allows any origin (`*`); with a list, only those,
echoed with `Vary: Origin`.

A preflight (`OPTIONS` with `Access-Control-Request-Method`) is answered here, before routing:
it needs no key and spends no rate limit. A refused origin's preflight is a 403 in the error
envelope, which says why to whoever reads it (a browser only sees the missing header).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from perf_metrics.errors import error_response

# The read routes a customer key answers: what a browser may call.
PREFIXES = ("/v1/metrics/",)
EXACT = ("/v1/account",)
ALLOWED_METHODS = "GET, HEAD"
# What a dashboard sends: its key, and the ETag of a copy it holds.
ALLOWED_HEADERS = "Authorization, If-None-Match"
# What it may read of an answer beyond the CORS-safelisted headers.
EXPOSED_HEADERS = (
    "ETag, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, Retry-After, "
    "X-Request-ID, Content-Disposition"
)
PREFLIGHT_MAX_AGE_S = 600


def parse_origins(setting: str) -> tuple[str, ...] | None:
    """`*` (any origin: None), or the comma-separated origins allowed (empty: none)."""
    if setting.strip() == "*":
        return None
    return tuple(o.strip().rstrip("/") for o in setting.split(",") if o.strip())


def _is_open(path: str) -> bool:
    return path in EXACT or path.startswith(PREFIXES)


class CorsMiddleware:
    def __init__(self, app: ASGIApp, allow_origins: str = "*") -> None:
        self.app = app
        self.origins = parse_origins(allow_origins)

    def _allowed(self, origin: str) -> bytes | None:
        """The Access-Control-Allow-Origin value for `origin`, or None if refused."""
        if self.origins is None:
            return b"*"
        return origin.encode("latin-1") if origin in self.origins else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_open(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        origin_header = headers.get(b"origin")
        if origin_header is None:  # not a cross-origin browser request
            await self.app(scope, receive, send)
            return
        origin = origin_header.decode("latin-1")
        allowed = self._allowed(origin)
        if scope["method"] == "OPTIONS" and b"access-control-request-method" in headers:
            await self._preflight(scope, receive, send, origin, allowed)
            return
        if allowed is None:
            await self.app(scope, receive, send)
            return
        extra = [
            (b"access-control-allow-origin", allowed),
            (b"access-control-expose-headers", EXPOSED_HEADERS.encode()),
        ]
        if self.origins is not None:
            extra.append((b"vary", b"Origin"))

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def _preflight(
        self, scope: Scope, receive: Receive, send: Send, origin: str, allowed: bytes | None
    ) -> None:
        if allowed is None:
            refusal = error_response(
                scope,
                403,
                "permission_error",
                "origin_not_allowed",
                f"Origin {origin} may not call this API from a browser (CORS_ALLOW_ORIGINS).",
                headers={"Vary": "Origin"},
            )
            await refusal(scope, receive, send)
            return
        headers = [
            (b"access-control-allow-origin", allowed),
            (b"access-control-allow-methods", ALLOWED_METHODS.encode()),
            (b"access-control-allow-headers", ALLOWED_HEADERS.encode()),
            (b"access-control-max-age", str(PREFLIGHT_MAX_AGE_S).encode()),
            (b"content-length", b"0"),
        ]
        if self.origins is not None:
            headers.append((b"vary", b"Origin"))
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
