"""`GET /dashboard` (SPEC §12): a page of the account's numbers, served from files inside the
package, nothing from elsewhere at run time.

The page is plain ES modules and CSS (`static/`), charts by uPlot (`vendor/`, from its npm
package: version, license and sha256 in `vendor/MANIFEST.json`, which a test checks). Assets
are served under content-hashed URLs (`/dashboard/assets/app.js?v=<sha256 prefix>`, written
into the page when it is served), so they may be cached for a year; the page itself is
revalidated (`no-cache` with an ETag). Every response carries a strict Content-Security-Policy:
this origin only, no inline script or style, no framing.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

from fastapi import APIRouter, Request
from fastapi.responses import Response

from perf_metrics.deps import if_none_match
from perf_metrics.errors import NotFound

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
}
ASSET_CACHE_CONTROL = "public, max-age=31536000, immutable"  # its URL changes with its bytes
PAGE_CACHE_CONTROL = "no-cache"
ASSET_FILES = {
    "app.js": "static/app.js",
    "style.css": "static/style.css",
    "uPlot.iife.min.js": "vendor/uPlot.iife.min.js",
    "uPlot.min.css": "vendor/uPlot.min.css",
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


def _read(path: str) -> bytes:
    return resources.files(__name__).joinpath(path).read_bytes()


def _asset(body: bytes, name: str) -> Asset:
    digest = hashlib.sha256(body).hexdigest()
    return Asset(body, MEDIA_TYPES[name[name.rindex(".") :]], f'"{digest[:32]}"')


ASSETS = {name: _asset(_read(path), name) for name, path in ASSET_FILES.items()}


def _page() -> Asset:
    html = _read("static/index.html").decode()

    def url(match: re.Match[str]) -> str:
        asset = ASSETS[match.group(1)]
        return f"/dashboard/assets/{match.group(1)}?v={asset.etag.strip(chr(34))[:12]}"

    return _asset(re.sub(r"\{\{([A-Za-z0-9_.]+)\}\}", url, html).encode(), "index.html")


PAGE = _page()

router = APIRouter(include_in_schema=False)


def _send(request: Request, asset: Asset, cache_control: str) -> Response:
    headers = {**SECURITY_HEADERS, "ETag": asset.etag, "Cache-Control": cache_control}
    tags = if_none_match(request)
    if asset.etag in tags or "*" in tags:  # RFC 9110 §13.1.2: * matches any
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


@router.get("/dashboard")
async def dashboard(request: Request) -> Response:
    return _send(request, PAGE, PAGE_CACHE_CONTROL)


@router.get("/dashboard/assets/{name}")
async def dashboard_asset(request: Request, name: str) -> Response:
    asset = ASSETS.get(name)
    if asset is None:
        raise NotFound(f"No dashboard asset {name!r}.")
    return _send(request, asset, ASSET_CACHE_CONTROL)
