"""`/docs` and `/redoc` work without internet: the assets come from this server, under a CSP
that allows this origin only, and a real browser renders every operation."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from tests.browser import browser_page, needs_browser
from tests.servers import live_server


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[str]:
    with live_server(database_url) as base:
        yield base


def _operations(base: str) -> dict[str, str]:
    """path -> summary of every documented operation."""
    schema = httpx.get(f"{base}/openapi.json").json()
    return {
        path: operation["summary"]
        for path, operations in schema["paths"].items()
        for operation in operations.values()
    }


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_pages_load_only_from_this_origin_under_a_strict_csp(server: str, path: str) -> None:
    page = httpx.get(server + path)
    assert page.status_code == 200
    policy = dict(
        [*directive.split(" ", 1), ""][:2]
        for directive in page.headers["content-security-policy"].split("; ")
    )
    assert policy["default-src"] == "'self'"
    assert policy["script-src"] == "'self'"  # no inline script, no eval, no other origin
    assert policy["connect-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["object-src"] == "'none'"
    for directive, sources in policy.items():  # nothing anywhere from another origin
        assert not re.search(r"https?:|\*", sources), directive
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "http://" not in page.text and "https://" not in page.text  # nothing from a CDN
    scripts = re.findall(r"<script\b[^>]*>", page.text)
    assert scripts and all(re.fullmatch(r'<script src="/docs/assets/[\w.-]+">', s) for s in scripts)
    assert "</script>" * len(scripts) == "".join(re.findall(r"</script>", page.text))
    assert not re.search(r"<script[^>]*>[^<]", page.text)  # no inline code


def test_assets_are_cacheable_and_revalidate(server: str) -> None:
    first = httpx.get(f"{server}/docs/assets/swagger-ui-bundle.js")
    assert first.status_code == 200
    assert first.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    assert first.headers["cache-control"] == "public, max-age=86400"
    again = httpx.get(
        f"{server}/docs/assets/swagger-ui-bundle.js",
        headers={"If-None-Match": first.headers["etag"]},
    )
    assert again.status_code == 304
    missing = httpx.get(f"{server}/docs/assets/nothing-here.js")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


@needs_browser
def test_swagger_ui_renders_every_operation_offline(server: str) -> None:
    operations = _operations(server)
    with browser_page() as (page, log):
        page.goto(f"{server}/docs")
        page.wait_for_selector(".opblock", timeout=30_000)
        shown = {
            element.get_attribute("data-path")
            for element in page.query_selector_all(".opblock-summary-path")
        }
        title = page.inner_text(".info .title")
    assert shown == set(operations)
    assert "Perf Metrics API" in title
    assert log.requests_leaving(server) == []
    assert log.errors == []


@needs_browser
def test_redoc_renders_every_operation_offline(server: str) -> None:
    operations = _operations(server)
    with browser_page() as (page, log):
        page.goto(f"{server}/redoc")
        page.wait_for_selector("h2", timeout=30_000)
        headings = set(page.locator("h2").all_inner_texts())
    assert set(operations.values()) <= headings
    assert log.requests_leaving(server) == []
    assert log.errors == []
