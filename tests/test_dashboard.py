"""`GET /dashboard` (SPEC §12): served from the package under a strict CSP, its vendored
uPlot checked against its manifest, and the page itself in a real browser (Debian's Chromium
driven by Playwright) against a real server with seeded data."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import httpx

from tests.browser import browser_page, needs_browser
from tests.servers import live_server

VENDOR = resources.files("perf_metrics.dashboard").joinpath("vendor")
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", Path(__file__).parent / "artifacts"))
XSS = "<img src=x onerror=alert(1)>"


def cli(database_url: str, *args: str) -> Any:
    env = {**os.environ, "DATABASE_URL": database_url.replace("+asyncpg", "")}
    done = subprocess.run(
        [sys.executable, "-m", "perf_metrics.cli", *args],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_vendored_uplot_is_what_its_manifest_says() -> None:
    manifest = json.loads(VENDOR.joinpath("MANIFEST.json").read_text())["uplot"]
    assert manifest["license"] == "MIT" and re.fullmatch(r"\d+\.\d+\.\d+", manifest["version"])
    assert f"(v{manifest['version']})" in VENDOR.joinpath("uPlot.iife.min.js").read_text()[:200]
    for name, entry in manifest["files"].items():
        assert hashlib.sha256(VENDOR.joinpath(name).read_bytes()).hexdigest() == entry["sha256"]
    assert "MIT License" in VENDOR.joinpath("uPlot.LICENSE").read_text()


def test_page_and_assets_headers_caching_and_weight(database_url: str) -> None:
    with live_server(database_url) as base:
        page = httpx.get(f"{base}/dashboard")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        policy = page.headers["content-security-policy"]
        for directive in ("default-src 'self'", "script-src 'self'", "style-src 'self'",
                          "frame-ancestors 'none'"):  # fmt: skip
            assert directive in policy
        assert "unsafe" not in policy and "http" not in policy
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["referrer-policy"] == "no-referrer"
        assert page.headers["cache-control"] == "no-cache"
        assert "https://" not in page.text and "http://" not in page.text  # no CDN
        assert not re.search(r"<script[^>]*>[^<]", page.text)  # no inline script
        assert " style=" not in page.text and "<style" not in page.text  # no inline style
        again = httpx.get(f"{base}/dashboard", headers={"If-None-Match": page.headers["etag"]})
        assert again.status_code == 304
        assert httpx.get(f"{base}/dashboard", headers={"If-None-Match": "*"}).status_code == 304
        assert httpx.get(f"{base}/dashboard", headers={"If-None-Match": '"x"'}).status_code == 200
        assets = re.findall(r'(?:src|href)="(/dashboard/assets/[^"]+)"', page.text)
        assert len(assets) == 4
        weight = len(gzip.compress(page.content))
        for path in assets:
            assert re.search(r"\?v=[0-9a-f]{12}$", path)  # content-hashed URLs
            asset = httpx.get(base + path)
            assert asset.status_code == 200
            assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
            assert asset.headers["x-content-type-options"] == "nosniff"
            weight += len(gzip.compress(asset.content))
        assert weight < 60_000, weight  # HTML + JS + CSS gzipped, uPlot included
        missing = httpx.get(f"{base}/dashboard/assets/nope.js")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def _digits(text: str) -> int:
    return int(re.sub(r"[^0-9]", "", text) or 0)


def _table(page: Any, selector: str) -> list[list[str]]:
    rows: list[list[str]] = page.eval_on_selector_all(
        f"{selector} table.data tbody tr",
        "rows => rows.map(r => Array.from(r.cells, c => c.textContent))",
    )
    return rows


def _wait_loaded(page: Any) -> None:
    page.wait_for_function(
        "() => document.querySelectorAll('#tiles .tile').length === 6 && "
        "Array.from(document.querySelectorAll('.panel')).every("
        "s => s.getAttribute('aria-busy') === 'false')"
    )


@needs_browser
def test_the_page_in_a_browser(database_url: str) -> None:
    cli(database_url, "seed", "--accounts", "3", "--calls", "6000", "--days", "40")
    account = "acct_demo_000"  # the seed's largest account
    key = cli(database_url, "keys", "create", "--account", account)["key"]
    ingest = cli(database_url, "keys", "create", "--ingest")["key"]
    with live_server(database_url) as base:
        now = datetime.now(UTC) - timedelta(hours=1)
        sent = httpx.post(
            f"{base}/v1/calls",
            headers={"Authorization": f"Bearer {ingest}"},
            json={"calls": [{
                "call_id": "xss-1", "account_id": account, "created_at": now.isoformat(),
                "task_type": "code", "model": XSS, "provider": "openai", "input_tokens": 10,
                "output_tokens": 10, "cost_usd": 0.001, "latency_ms": 300, "status": "success",
            }]},
        )  # fmt: skip
        assert sent.status_code == 200, sent.text

        def api(path: str) -> Any:
            r = httpx.get(base + path, headers={"Authorization": f"Bearer {key}"}, timeout=30)
            assert r.status_code == 200, r.text
            return r.json()

        with browser_page() as (page, log):
            dialogs: list[str] = []

            def dialog(d: Any) -> None:  # an alert() would be the injected markup running
                dialogs.append(d.message)
                d.dismiss()

            page.on("dialog", dialog)
            page.goto(f"{base}/dashboard#days=30")
            page.fill("#key", key)
            page.click("#key-form button[type=submit]")
            _wait_loaded(page)
            zone = api("/v1/account")["timezone"]
            assert f"days in {zone}" in (page.text_content("#context") or "")
            assert page.eval_on_selector("#key", "e => e.value") == ""  # not kept in the field
            assert key not in page.url

            # Every data table is the API's answer for the same key and window.
            daily = api("/v1/metrics/daily?days=30")["daily_data"]
            calls = _table(page, "#p-calls")
            assert [r[0] for r in calls] == [d["date"] for d in daily]
            assert [_digits(r[1]) for r in calls] == [d["total_calls"] for d in daily]
            overview = api("/v1/metrics/overview?days=30")
            models = _table(page, "#p-models")
            assert [r[0] for r in models] == list(overview["models"])
            assert [_digits(r[1]) for r in models] == [
                m["calls"] for m in overview["models"].values()
            ]
            breakdown = api("/v1/metrics/breakdown?group_by=model&series=daily&limit=10&days=30")
            cost = _table(page, "#p-cost")
            expected = [(d["date"], g["value"]) for g in breakdown["groups"] for d in g["daily"]]
            assert [(r[0], r[1]) for r in cost] == expected
            providers = api("/v1/metrics/providers?hours=168")["providers"]
            shown = _table(page, "#p-providers")
            assert [r[0] for r in shown] == list(providers)
            assert [r[1].split(" ", 1)[1] for r in shown] == [
                p["status"] for p in providers.values()
            ]
            failures = api("/v1/metrics/failures?days=30")
            shown_modes = _table(page, "#p-failures")[: len(failures["by_failure_mode"])]
            assert [(r[0], _digits(r[1])) for r in shown_modes] == [
                (mode, f["count"]) for mode, f in failures["by_failure_mode"].items()
            ]
            tiles = page.text_content("#tiles") or ""
            assert f"{overview['summary']['total_calls']:,}" in tiles

            # A name from the data is text, never markup.
            assert XSS in (page.text_content("#p-models") or "")
            assert page.query_selector("img[src=x]") is None and dialogs == []

            # Another window updates every panel.
            page.click("nav button[data-days='7']")
            page.wait_for_function("() => location.hash.startsWith('#days=7')")
            _wait_loaded(page)
            page.wait_for_function(
                "() => document.querySelectorAll('#p-calls table.data tbody tr').length === 7"
            )
            week_calls = api("/v1/metrics/overview?days=7")["summary"]["total_calls"]
            assert f"{week_calls:,}" in (page.text_content("#tiles") or "")
            week = api("/v1/metrics/daily?days=7")["daily_data"]
            assert [_digits(r[1]) for r in _table(page, "#p-calls")] == [
                d["total_calls"] for d in week
            ]

            # The breakdown by another dimension.
            page.select_option("#dimension", "task_type")
            page.wait_for_function("() => location.hash.includes('by=task_type')")
            _wait_loaded(page)
            by_task = api("/v1/metrics/breakdown?group_by=task_type&limit=20&days=7")
            assert [r[0] for r in _table(page, "#p-breakdown")] == [
                g["value"] for g in by_task["groups"]
            ]

            # Accessibility: axe-core (shipped in axe-playwright-python), offline.
            import axe_playwright_python  # type: ignore[import-untyped]

            axe = Path(axe_playwright_python.__file__).with_name("axe.min.js").read_text()
            page.evaluate(axe)  # over CDP: the page's CSP (rightly) allows no injected script
            result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
            serious = [
                v["id"] for v in result["violations"] if v["impact"] in ("serious", "critical")
            ]
            assert serious == [], serious

            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

            assert log.errors == [], log.errors  # a CSP violation is a console error

            # A bad key says so plainly and is cleared.
            page.fill("#key", "pk_live_" + "A" * 49)
            page.click("#key-form button[type=submit]")
            page.wait_for_selector("#notice.error")
            assert "refused" in (page.text_content("#notice") or "")
            assert page.is_hidden("#panels")
            assert all("status of 401" in e for e in log.errors), log.errors  # that refusal
            assert log.requests_leaving(base) == []

        with browser_page(width=375, height=800) as (phone, log):
            phone.goto(f"{base}/dashboard#days=7")
            phone.fill("#key", key)
            phone.click("#key-form button[type=submit]")
            _wait_loaded(phone)
            assert phone.evaluate("document.documentElement.scrollWidth") <= 375
            assert log.errors == []


@needs_browser
def test_a_free_tier_key_sees_every_panel_and_a_429_keeps_the_numbers(database_url: str) -> None:
    """One load fits the free tier's 10 requests a minute; the next window's requests run out
    of it, and the page says when it retries while the last numbers stay on screen."""
    cli(database_url, "seed", "--accounts", "2", "--calls", "2000", "--days", "30")
    account = "acct_demo_000"
    cli(database_url, "accounts", "update", account, "--tier", "free")
    key = cli(database_url, "keys", "create", "--account", account)["key"]
    with (
        live_server(database_url, RATE_LIMIT_ENABLED="true") as base,
        browser_page() as (page, log),
    ):
        page.goto(f"{base}/dashboard#days=30")
        page.fill("#key", key)
        page.click("#key-form button[type=submit]")
        _wait_loaded(page)
        first_load = [u for u in log.requests if "/v1/" in u]
        assert len(first_load) <= 10, first_load  # every panel within the free tier
        assert page.is_visible("#p-providers table.data")
        tiles = page.text_content("#tiles")
        page.click("nav button[data-days='90']")
        page.wait_for_selector("#notice.error")
        notice = page.text_content("#notice") or ""
        assert "rate limit" in notice and re.search(r"retrying in \d+ s", notice), notice
        assert page.is_visible("#panels") and page.text_content("#tiles") == tiles


@needs_browser
def test_an_account_without_calls_says_so_in_every_panel(database_url: str) -> None:
    account = cli(database_url, "accounts", "create", "--name", "Empty", "--tier", "pro")
    key = cli(database_url, "keys", "create", "--account", account["account_id"])["key"]
    with live_server(database_url) as base, browser_page() as (page, log):
        page.goto(f"{base}/dashboard")
        page.fill("#key", key)
        page.click("#key-form button[type=submit]")
        _wait_loaded(page)
        for panel in ("p-cost", "p-calls", "p-models", "p-breakdown"):
            assert "No calls in this window." in (page.text_content(f"#{panel}") or ""), panel
        assert page.query_selector("#panels canvas") is None  # no empty charts
        assert log.errors == []
