"""The snippets of docs/client-notes.md, run as written against a real server: over an account
with calls and over one without, where the published versions crash on nulls."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import Admin, store_records
from tests.factories import iso, json_call
from tests.servers import live_server

NOTES = Path(__file__).resolve().parents[1] / "docs" / "client-notes.md"
NODE = shutil.which("node")
pytestmark = pytest.mark.slow


def _snippets() -> list[tuple[str, str]]:
    return re.findall(r"```(js|python)\n(.*?)```", NOTES.read_text(), flags=re.S)


def _run_js(code: str, base: str, key: str) -> list[list[str]]:
    prelude = (
        f"const BASE_URL = {json.dumps(base)}; const API_KEY = {json.dumps(key)};\n"
        "const shown = []; const displayKPI = (name, value) => shown.push([name, String(value)]);\n"
    )
    assert NODE is not None
    done = subprocess.run(
        [
            NODE,
            "--input-type=module",
            "-e",
            prelude + code + "\nconsole.log(JSON.stringify(shown));",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    shown: list[list[str]] = json.loads(done.stdout)
    return shown


def _run_python(code: str, base: str, key: str, **names: Any) -> subprocess.CompletedProcess[str]:
    prelude = "".join(f"{name} = {value!r}\n" for name, value in names.items())
    prelude += f"BASE_URL = {base!r}\nAPI_KEY = {key!r}\n"
    prelude += "alerts = []\nsend_alert = alerts.append\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + code + "\nprint('ALERTS', alerts)"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _call(account: str, n: int, model: str, cost: float, quality: float | None) -> dict[str, Any]:
    return json_call(
        f"{model}-{n}",
        account_id=account,
        created_at=iso(datetime.now(UTC) - timedelta(days=2)),
        task_type="extraction",
        model=model,
        output_tokens=10,
        cost_usd=cost,
        quality_score=quality,
    )


@pytest.fixture
async def accounts(engine: AsyncEngine, admin_ops: Admin) -> dict[str, str]:
    """A key of an account with calls, and one of an account without."""
    busy = await admin_ops.account()
    # extraction: model-a has most calls (30, unscored), model-b is the only one with 20
    # scored calls, so the optimal: a recommendation that costs more, with no quality delta.
    records = [_call(busy, i, "model-a", 0.001, None) for i in range(30)]
    records += [_call(busy, i, "model-b", 0.002, 0.9) for i in range(20)]
    async with engine.connect() as conn:
        await store_records(conn, records)
        await conn.commit()
    return {
        "busy": (await admin_ops.key(busy))["key"],
        "empty": (await admin_ops.key(await admin_ops.account()))["key"],
    }


@pytest.fixture
def server(database_url: str) -> Iterator[str]:
    with live_server(database_url) as base:
        yield base


def test_the_notes_hold_the_three_snippets() -> None:
    assert [language for language, _ in _snippets()] == ["js", "python", "python"]


@pytest.mark.skipif(NODE is None, reason="needs Node.js 18+ on PATH (apt-get install nodejs)")
def test_dashboard_snippet_shows_dashes_not_a_crash(server: str, accounts: dict[str, str]) -> None:
    code = _snippets()[0][1]
    # 50 calls; cost 30 x 0.001 + 20 x 0.002 = 0.07, so 0.0014 a call; all succeeded
    assert _run_js(code, server, accounts["busy"]) == [
        ["Total Calls", "50"],
        ["Avg Cost", "$0.00140"],
        ["Success Rate", "100.0%"],
    ]
    assert _run_js(code, server, accounts["empty"]) == [
        ["Total Calls", "0"],
        ["Avg Cost", "—"],
        ["Success Rate", "—"],
    ]
    published = "displayKPI('Avg Cost', `$${overview.summary.avg_cost_per_call.toFixed(5)}`);"
    with pytest.raises(AssertionError, match="TypeError"):
        _run_js(code.split("\n// Averages")[0] + "\n" + published, server, accounts["empty"])


def test_cost_monitoring_snippet_alerts_past_the_budget(
    server: str, accounts: dict[str, str]
) -> None:
    code = _snippets()[1][1]
    for key in accounts.values():
        done = _run_python(code, server, key, BUDGET_LIMIT=-1)  # any projection exceeds it
        assert done.returncode == 0, done.stderr
        assert "ALERTS ['Projected cost $" in done.stdout
        quiet = _run_python(code, server, key, BUDGET_LIMIT=10**9)
        assert quiet.returncode == 0 and "ALERTS []" in quiet.stdout
    refused = _run_python(code, server, "pk_live_" + "0" * 49, BUDGET_LIMIT=0)
    assert refused.returncode != 0 and "401" in refused.stderr


def test_optimisation_snippet_says_what_a_dearer_switch_costs(
    server: str, accounts: dict[str, str]
) -> None:
    code = _snippets()[2][1]
    done = _run_python(code, server, accounts["busy"])
    assert done.returncode == 0, done.stderr
    # (0.002 - 0.001) x 30 calls of the current model = +0.03; model-a has no scores
    assert done.stdout.splitlines()[:3] == [
        "Switch extraction to model-b",
        "  Cost: adds $0.03",
        "  Quality: not scored",
    ]
    empty = _run_python(code, server, accounts["empty"])
    assert empty.returncode == 0 and empty.stdout.startswith("ALERTS")  # nothing to switch
    published = code.split("for rec in")[0] + (
        "for rec in performance['recommendations']:\n"
        "    print(f\"  Quality: +{rec['quality_improvement']:.1%}\")\n"
    )
    crashed = _run_python(published, server, accounts["busy"])
    assert crashed.returncode != 0 and "TypeError" in crashed.stderr
