"""`/docs` (Swagger UI) and `/redoc` (ReDoc), served with no request leaving this origin.

FastAPI's own pages load Swagger UI, ReDoc and fonts from a CDN, so without internet they are
blank, and they start with an inline script, which a strict Content-Security-Policy forbids.
Here the JS and CSS come from the `fastapi-offline` package (it ships the release bundles of
both, so upgrading them is a version bump, not files copied by hand); the two pages and their
start-up scripts (`apidocs/*.js`) are ours, and both run under a CSP that allows this origin
only. Inline *styles* stay allowed: Swagger UI and ReDoc set style attributes and ReDoc
injects its styles at run time, neither of which can load anything from elsewhere.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from html import escape

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

ASSETS_PATH = "/docs/assets"
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "worker-src 'self' blob:",  # ReDoc's search index runs in a worker made from a blob
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
}
# Bundles change only with a package upgrade; a day keeps a reload cheap and an upgrade visible.
ASSET_CACHE_CONTROL = "public, max-age=86400"

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" type="image/png" href="{assets}/favicon.png">
{head}
</head>
<body>
<div id="{element}" data-openapi-url="{openapi}"></div>
{scripts}
</body>
</html>
"""


class _Assets(StaticFiles):
    """The bundles and our start-up scripts, with a cache lifetime (StaticFiles already answers
    ETag and If-None-Match)."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code in (200, 304):
            response.headers["Cache-Control"] = ASSET_CACHE_CONTROL
            response.headers["X-Content-Type-Options"] = "nosniff"
        return response


@dataclass(frozen=True)
class Page:
    title: str  # after the API's title
    element: str  # id of the element the UI renders into (its init script finds it)
    css: tuple[str, ...]
    js: tuple[str, ...]

    def html(self, request: Request) -> str:
        root = request.scope.get("root_path", "").rstrip("/")
        assets = escape(root + ASSETS_PATH)
        return _PAGE.format(
            title=escape(f"{request.app.title} - {self.title}"),
            assets=assets,
            head="\n".join(f'<link rel="stylesheet" href="{assets}/{name}">' for name in self.css),
            element=self.element,
            openapi=escape(root + "/openapi.json"),
            scripts="\n".join(f'<script src="{assets}/{name}"></script>' for name in self.js),
        )


PAGES = {
    "/docs": Page(
        "Swagger UI", "swagger-ui", ("swagger-ui.css",), ("swagger-ui-bundle.js", "swagger-init.js")
    ),
    "/redoc": Page("ReDoc", "redoc", (), ("redoc.standalone.js", "redoc-init.js")),
}


def _serve(page: Page) -> Callable[[Request], Awaitable[HTMLResponse]]:
    async def endpoint(request: Request) -> HTMLResponse:
        return HTMLResponse(page.html(request), headers=SECURITY_HEADERS)

    return endpoint


def install(app: FastAPI) -> None:
    """Serve both pages and their assets (call with FastAPI's own docs_url/redoc_url off)."""
    for path, page in PAGES.items():
        app.add_api_route(path, _serve(page), methods=["GET"], include_in_schema=False)
    app.mount(
        ASSETS_PATH,
        _Assets(packages=[("perf_metrics", "apidocs"), ("fastapi_offline", "static")]),
        name="apidocs-assets",
    )
