"""`perf-metrics demo`: an embedded Postgres, 90 days of demo calls, a key, and the server.

The embedded Postgres (pgserver, from PyPI) keeps its data in `.perf-metrics/pgdata` under the
current directory (PERF_METRICS_HOME to move it), so the second run starts in seconds. With
DATABASE_URL set, that database is used instead. Ctrl-C, SIGTERM or SIGHUP stops the server
and the embedded Postgres (perf_metrics/serving.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from perf_metrics.settings import Settings

DEMO_ACCOUNTS = 5
DEMO_CALLS = int(os.environ.get("PERF_METRICS_DEMO_CALLS", "150000"))
DEMO_DAYS = 90
DEMO_SEED = 42
DEMO_ACCOUNT = "acct_demo_000"  # the largest planned account, the key's account
ENDPOINTS = (
    "overview?days=7",
    "customer?days=30",
    "performance?days=7",
    "failures?days=7",
    "providers?hours=24",
    "daily?days=30",
)


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


MISSING_PGSERVER = (
    "perf-metrics demo needs its embedded Postgres, which is an optional extra: "
    "pip install 'perf-metrics[demo]' (or set DATABASE_URL to a Postgres of your own)"
)


class DemoUnavailable(Exception):
    """The demo cannot start here; the message says what to install or set."""


@contextmanager
def embedded_postgres(home: Path) -> Iterator[str]:
    try:
        import pgserver
    except ImportError:
        # pgserver is an extra: the service never needs it, and it has no wheel for every
        # platform (none for arm64 Linux), so the base install and the image go without it.
        raise DemoUnavailable(MISSING_PGSERVER) from None

    from perf_metrics.serving import HeldSignals

    home.mkdir(parents=True, exist_ok=True)
    # A signal in the middle of initdb or `pg_ctl start` would leave a postmaster that nothing
    # stops: it is acted on once the server is up and the finally below is in force.
    held = HeldSignals()
    try:
        server = pgserver.get_server(home / "pgdata", cleanup_mode="stop")  # type: ignore[attr-defined]
    except BaseException:
        held.release()
        raise
    try:
        held.release()
        yield server.get_uri()
    finally:
        say("stopping the embedded Postgres ...")
        server.cleanup()


async def _prepare(settings: Settings, first_run: bool) -> dict[str, Any]:
    """Seed on the first run (an empty call log), then make a fresh demo key; returns the key
    (as `create_key` does) with the account's `timezone`. The demo account's days are local
    days in Europe/Berlin (SPEC §9), the zone the seed plans for it; its monthly budget, set
    once, is 1.05 times the cost of its last 30 days. Also a secret key (`secret_key`) for the
    alerts and webhooks (SPEC §11), and the budget (`monthly_budget_usd`)."""
    from decimal import Decimal

    from sqlalchemy import func, select, text

    from perf_metrics import accounts as admin
    from perf_metrics import synthetic
    from perf_metrics.calls.load import seed
    from perf_metrics.db import calls, create_engine

    engine = create_engine(settings, pool_size=3, max_overflow=0)  # as `seed`: cli/seed.py
    try:
        async with engine.connect() as conn:
            empty = not await conn.scalar(select(func.count()).select_from(calls))
        if first_run and empty:
            say(f"seeding {DEMO_CALLS:,} calls over {DEMO_DAYS} days, {DEMO_ACCOUNTS} accounts ...")
            started = time.monotonic()
            await seed(
                engine,
                accounts=DEMO_ACCOUNTS,
                days=DEMO_DAYS,
                calls=DEMO_CALLS,
                seed_value=DEMO_SEED,
                end=datetime.now(UTC),
            )
            say(f"seeded in {time.monotonic() - started:.1f} s")
        async with engine.begin() as conn:
            try:
                account = await admin.get_account(conn, DEMO_ACCOUNT)
            except admin.AdminError:
                account = await admin.create_account(
                    conn,
                    name="Demo",
                    tier="enterprise",
                    account_id=DEMO_ACCOUNT,
                    timezone=synthetic.account_zone(0),
                    tracked_metadata_keys=list(synthetic.TRACKED_KEYS),
                )
            if account.get("monthly_budget_usd") is None:
                # A budget near its last 30 days' cost: customer's budget has news at once.
                spent = await conn.scalar(text(DEMO_MONTH_COST), {"account_id": DEMO_ACCOUNT})
                budget = max(
                    Decimal(1), (Decimal(spent or 0) * Decimal("1.05")).quantize(Decimal(1))
                )
                await admin.update_account(conn, DEMO_ACCOUNT, monthly_budget_usd=budget)
            key = await admin.create_key(conn, account_id=DEMO_ACCOUNT, name="demo")
            secret = await admin.create_key(
                conn, account_id=DEMO_ACCOUNT, name="demo alerts", secret=True
            )
            budget = (await admin.get_account(conn, DEMO_ACCOUNT))["monthly_budget_usd"]
            return {
                **key,
                "timezone": account["timezone"],
                "secret_key": secret["key"],
                "monthly_budget_usd": budget,
            }
    finally:
        await engine.dispose()


DEMO_MONTH_COST = (
    "SELECT sum(cost_usd) FROM rollup_account_daily WHERE account_id = :account_id"
    " AND environment = 'live' AND day > (SELECT max(day) FROM rollup_account_daily"
    " WHERE account_id = :account_id) - 30"
)


def alerts_banner(base: str, secret_key: str, budget: Any) -> list[str]:
    """How to watch the demo's alerts arrive at a receiver of one's own on this machine (the
    demo admits http to loopback for webhooks: WEBHOOKS_ALLOW_LOOPBACK)."""
    auth = f'-H "Authorization: Bearer {secret_key}" -H "Content-Type: application/json"'
    alert = {
        "name": "Month-end forecast",
        "type": "projected_month_end",
        "params": {"budget_usd": float(budget or 100)},
    }
    return [
        f"alerts by signed webhook (a secret key, shown once: {secret_key}):",
        "  in another terminal, a receiver that prints each event and checks its signature:",
        "  perf-metrics listen --port 9000 --secret <the whsec_ the next command prints>",
        f"  curl -s -X POST {base}/v1/webhook-endpoints {auth} "
        """-d '{"url": "http://127.0.0.1:9000/hooks"}'""",
        f"  curl -s -X POST {base}/v1/webhook-endpoints/<its id>/test -H "
        f'"Authorization: Bearer {secret_key}"',
        f"  curl -s -X POST {base}/v1/alerts {auth} -d '{json.dumps(alert)}'",
        "  (the demo's worker evaluates it at once: the forecast is near the budget)",
    ]


def banner(
    key: str, host: str, port: int, zone: str, secret_key: str | None = None, budget: Any = None
) -> str:
    from perf_metrics import synthetic

    base = f"http://{host}:{port}"
    lines = [
        "",
        f"perf-metrics demo is serving on {base} (Ctrl-C to stop)",
        f"demo key (account {DEMO_ACCOUNT}, shown once): {key}",
        f"its timezone is {zone}: every day and month in the answers is a local one there",
        "",
        *(f'curl -s "{base}/v1/metrics/{e}" -H "Authorization: Bearer {key}"' for e in ENDPOINTS),
        "",
        "breakdowns by its end users and by a tracked metadata key "
        f"({', '.join(synthetic.TRACKED_KEYS)}), and a spreadsheet of the users:",
        *(
            f'curl -s "{base}/v1/metrics/breakdown?{q}" -H "Authorization: Bearer {key}"'
            for q in ("group_by=user", f"group_by=metadata.{synthetic.TRACKED_KEYS[0]}")
        ),
        f'curl -s "{base}/v1/metrics/breakdown?group_by=user&format=csv" '
        f'-H "Authorization: Bearer {key}" -o users.csv',
        "",
        "its monthly budget (cost_analysis.budget) and what the same calls would have cost on "
        "another model:",
        f'curl -s "{base}/v1/metrics/customer?baseline_model=claude-sonnet-4-5" '
        f'-H "Authorization: Bearer {key}"',
        "",
        *([] if secret_key is None else [*alerts_banner(base, secret_key, budget), ""]),
        f"dashboard (paste the key): {base}/dashboard",
        f"API docs (work offline): {base}/docs and {base}/redoc",
        "",
    ]
    return "\n".join(lines)


def run_demo(host: str, port: int) -> None:
    from perf_metrics.migrate import upgrade
    from perf_metrics.observability import configure_logging
    from perf_metrics.serving import run_server, stop_cleanly_on_signals

    # From here on a SIGTERM or SIGHUP (a process manager, `timeout`, a closed terminal) exits
    # through the `finally` that stops the embedded Postgres, whatever the demo is doing.
    stop_cleanly_on_signals()

    # pgserver asks platformdirs for a runtime dir; on servers without one it only warns.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
    home = Path(os.environ.get("PERF_METRICS_HOME", ".perf-metrics")).resolve()
    own_database = "DATABASE_URL" not in os.environ
    with embedded_postgres(home) if own_database else _nothing() as uri:
        url = uri or os.environ["DATABASE_URL"]
        # The demo's worker delivers webhooks to receivers on this machine (perf-metrics listen).
        settings = Settings(database_url=url, webhooks_allow_loopback=True)
        say("applying migrations ...")
        upgrade(settings.database_url)
        marker = home / "seeded"
        key = asyncio.run(_prepare(settings, first_run=not marker.exists()))
        marker.write_text(datetime.now(UTC).isoformat())
        print(
            banner(
                key["key"],
                host,
                port,
                key["timezone"],
                key["secret_key"],
                key["monthly_budget_usd"],
            ),
            flush=True,
        )
        from perf_metrics.app import create_app

        configure_logging(settings.log_level)
        run_server(
            create_app(settings),
            host=host,
            port=port,
            loop="uvloop",
            http="httptools",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=10,
        )


@contextmanager
def _nothing() -> Iterator[None]:
    yield None
