"""Breakdowns (SPEC §10, issue #16): GET /v1/metrics/breakdown at 10M calls, in one run.

    python bench/datasets.py 10000000          # once: builds (or reuses) the 10M call log
    python bench/breakdown.py [--size 10000000] [--requests 1000] [--rounds 5] [--naive-runs 2]
                              [--csv-requests 20] [--csv-memory-rounds 3] [--ingest-rounds 2]
                              [--parts read,csv,explain,ingest] [--before 6629ac2]

Each measurement against its target in the issue's "Speed" section:

- read: p50/p95/p99 of breakdown (days=90, end_date 2026-11-26, limit=20, first page) for the
  largest account (most live calls) over HTTP, one uvicorn worker, response cache off, a
  customer key made with the CLI (as bench/zones.py), for every group_by: model, provider,
  task_type, user, metadata.feature, metadata.team; and two more user questions: the 6th page
  (next_page followed 5 times, the token then reused) and series=daily. The endpoints are
  interleaved request by request (order reversed every other request), in rounds. Target:
  p95 < 30 ms for every group_by.
- naive: the same answer (the first page and the window's totals) as one plain GROUP BY over
  `calls` (the dataset's (account_id, created_at) index), timed with asyncpg, a block of it after
  each round of the read part, so both see the same minutes. Target: naive p95 / API p95 >= 50.
  The window is the API's own (`period`: local days of the account's zone, as instants).
  Cross-check: every group_by's API first page against the naive answer (value, calls, cost,
  tokens, and has_more; totals too), reported as mismatches.
- csv: `format=csv`, group_by=user, days=7, 14 and 90: wall time over HTTP (p50/p95,
  interleaved; target < 1 s for 20,000 groups, on the shortest window with at least that
  many; the 90 days' ~38,000 are shown too) and the server's memory while it answers: a fresh
  server per download (one warm JSON and one small CSV request first), its peak RSS reset
  (/proc/PID/clear_refs) before the download and VmHWM - VmRSS read after it; RSS also sampled
  every 5 ms. Target: flat: the growth well under the CSV's size (an answer built whole
  before it is sent holds at least its body, and its rows as Python objects several times
  that), however many groups.
- explain: where the time goes. A user (and a metadata.feature) first page, breakdown.answer
  run 10 times on one connection of the service's engine (prepared statements reused, as in
  the server): each statement's ms per run, and EXPLAIN (ANALYZE, BUFFERS) of its group-rollup
  reads as planned for their values and as the generic plan Postgres may switch a prepared
  statement to after five runs. The user CSV (days=90) consumed in-process against its
  cursor's statement alone. One fold of 50,000 queued calls (the log's latest, queued again),
  EXPLAIN (ANALYZE, BUFFERS) in a transaction rolled back: its time per rollup.
- ingest: `perf-metrics ingest` CPU µs per call of bench/ingest.py's 1M-line file (user ids,
  feature/team/workflow tags) into a fresh database (bench/zones.py's measure: the machine's
  CPU over the run, and the CLI's and its backends'), at commit --before (before the group
  rollups: no user or tag rollups), at this checkout (every account tracking feature and
  team, as `seed` creates them; checked in each fresh database; the CLI's run includes
  building the weeks its late calls made stale, at the load's end), and at this checkout in
  today's configuration (`plain`: the accounts track no key, the same calls without user ids),
  alternating, all with a 60 s statement timeout (INGEST_STATEMENT_TIMEOUT_MS: at the default
  5 s a fold can time out here). Target: at most 1.30 times today's configuration, the same
  code (the issue's "measured in the same run as today's configuration"); the ratio to
  --before is shown too, and holds what has landed since (per-model histograms, the
  alerts' 5-minute rollup) besides the breakdowns.

A run of some parts keeps the other parts' last numbers in the results.

Writes bench/results/breakdown.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import threading
import time
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, cast

import asyncpg
import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, machine, run_cli, served, write_results
from compare import worktree
from datasets import ensure
from ingest import jsonl
from read import END_DATE, pct, pick_accounts
from zones import SEED, fetch, ingest_once

BEFORE = "6629ac2"  # main before the group rollups (3e65d98, eaef8bd)
DAYS = 90
GROUP_BYS = ("model", "provider", "task_type", "user", "metadata.feature", "metadata.team")
TRACKED = ["feature", "team"]
DEEP_PAGE = 6  # the page measured after following next_page DEEP_PAGE - 1 times
P95_TARGET_MS = 30.0
RATIO_TARGET = 50.0
CSV_TARGET_S = 1.0
CSV_TARGET_GROUPS = 20_000  # "CSV of 20,000 user groups: under 1 s"
CSV_DAYS = (7, 14, DAYS)  # the user CSV's windows
INGEST_TARGET = 1.30
PERCENTILES = ("p50", "p95", "p99")
PARTS = ("read", "csv", "explain", "ingest")


def breakdown_path(group_by: str, days: int = DAYS, **extra: str) -> str:
    query = f"group_by={group_by}&days={days}&end_date={END_DATE}"
    return "/v1/metrics/breakdown?" + "&".join([query, *(f"{k}={v}" for k, v in extra.items())])


def endpoints(client: httpx.Client) -> dict[str, str]:
    """Every path the read part times: each group_by's first page, the user page DEEP_PAGE
    (its token found by following next_page) and user with series=daily."""
    paths = {g: breakdown_path(g, limit="20") for g in GROUP_BYS}
    path = paths["user"]
    for _ in range(DEEP_PAGE - 1):
        response = client.get(path)
        response.raise_for_status()
        token = response.json()["next_page"]
        if token is None:
            raise RuntimeError(f"user has fewer than {DEEP_PAGE} pages")
        path = paths["user"] + f"&page={token}"
    paths[f"user page {DEEP_PAGE}"] = path
    paths["user series=daily"] = breakdown_path("user", limit="20", series="daily")
    return paths


# --- the naive way ------------------------------------------------------------------------------

# What each group_by groups the raw rows by (SPEC §10: null user_id, or the key absent, is the
# null group).
NAIVE_VALUE = {
    "model": "model",
    "provider": "provider",
    "task_type": "task_type",
    "user": "user_id",
    "metadata.feature": "metadata ->> 'feature'",
    "metadata.team": "metadata ->> 'team'",
}


def naive_sql(group_by: str) -> str:
    """The first page and has_more (LIMIT 21) with every measure a group shows, and the
    window's totals (window aggregates over all the groups, before the LIMIT): one statement."""
    v = NAIVE_VALUE[group_by]
    return (
        f"SELECT {v} AS value, count(*) AS calls, sum(cost_usd) AS cost_usd,"
        " sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,"
        " sum(latency_ms) AS latency_sum, count(*) FILTER (WHERE status = 'success') AS successes,"
        " count(*) FILTER (WHERE failure_mode IS NOT NULL) AS failures,"
        " sum(quality_score) AS quality_sum, count(quality_score) AS quality_n,"
        " sum(count(*)) OVER () AS total_calls, sum(sum(cost_usd)) OVER () AS total_cost,"
        " sum(sum(input_tokens)) OVER () AS total_input, sum(sum(output_tokens)) OVER ()"
        " AS total_output"
        " FROM calls WHERE account_id = $1 AND environment = 'live'"
        " AND created_at >= $2 AND created_at < $3"
        f" GROUP BY {v} ORDER BY sum(cost_usd) DESC, count(*) DESC, ({v}) IS NULL,"
        f' ({v}) COLLATE "C" LIMIT 21'
    )


def window_instants(period: dict[str, str]) -> tuple[datetime, datetime]:
    """[start, end) of an answer's period (its end is the last second of the window)."""
    start = datetime.fromisoformat(period["start_date"])
    end = datetime.fromisoformat(period["end_date"]) + timedelta(seconds=1)
    return start, end


async def naive_runs(
    url: str, account_id: str, window: tuple[datetime, datetime], order: list[str], runs: int
) -> dict[str, tuple[list[float], list[asyncpg.Record]]]:
    """Each group_by's naive statement `runs` times (group_bys interleaved): ms, last rows."""
    out: dict[str, tuple[list[float], list[asyncpg.Record]]] = {g: ([], []) for g in order}
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SET statement_timeout = 0")
        for run in range(runs):
            for group_by in order if run % 2 == 0 else order[::-1]:
                started = time.perf_counter()
                rows = await conn.fetch(naive_sql(group_by), account_id, *window)
                out[group_by][0].append((time.perf_counter() - started) * 1000)
                out[group_by] = (out[group_by][0], list(rows))
    finally:
        await conn.close()
    return out


def money(value: Decimal) -> float:
    """SPEC §4: 2 decimals, half up, once, on the exact sum."""
    return float(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def cross_check(answer: dict[str, Any], rows: list[asyncpg.Record]) -> list[str]:
    """Where the API's first page differs from the naive answer (empty: none)."""
    problems: list[str] = []
    page = answer["groups"]
    naive = rows[: len(page)]
    if (len(rows) > len(page)) != answer["has_more"]:
        problems.append(f"has_more {answer['has_more']} but the naive answer has {len(rows)} rows")
    if len(naive) != len(page):
        problems.append(f"{len(page)} groups, the naive answer {len(naive)}")
    for i, (api, raw) in enumerate(zip(page, naive, strict=False)):
        want = {
            "value": raw["value"],
            "calls": raw["calls"],
            "total_cost_usd": money(raw["cost_usd"]),
            "input_tokens": raw["input_tokens"],
            "output_tokens": raw["output_tokens"],
        }
        got = {k: api[k] for k in want}
        if got != want:
            problems.append(f"group {i + 1}: API {got}, naive {want}")
    if rows:
        totals = answer["totals"]
        want_totals = {
            "calls": rows[0]["total_calls"],
            "total_cost_usd": money(rows[0]["total_cost"]),
            "input_tokens": rows[0]["total_input"],
            "output_tokens": rows[0]["total_output"],
        }
        if totals != want_totals:
            problems.append(f"totals: API {totals}, naive {want_totals}")
    return problems


# --- read ---------------------------------------------------------------------------------------


def read_part(
    url: str, account_id: str, key: str, requests: int, rounds: int, runs_per_round: int
) -> dict[str, Any]:
    per_block = max(1, requests // rounds)
    with (
        served(
            url,
            workers=1,
            RATE_LIMIT_ENABLED="false",
            RESPONSE_CACHE_ENTRIES="0",
            LOG_LEVEL="WARNING",
        ) as base,
        httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60
        ) as client,
    ):
        paths = endpoints(client)
        shown = {name: path.split("&page=")[0] for name, path in paths.items()}
        shown[f"user page {DEEP_PAGE}"] += "&page=..."
        answers: dict[str, dict[str, Any]] = {}
        failed: dict[str, str] = {}
        for name, path in paths.items():  # warm; and the first pages, for the cross-check
            for _ in range(10):
                response = client.get(path)
                if response.status_code != 200:
                    failed[name] = f"{response.status_code} {response.text[:300]}"
                    print(f"FAILED {name}: {failed[name]}", file=sys.stderr)
                    break
            else:
                answers[name] = response.json()
        for name in failed:  # reported, not timed
            del paths[name]
        window = window_instants(answers["user"]["period"])
        # The naive statements warmed once (not timed), their answers kept.
        warm = asyncio.run(naive_runs(url, account_id, window, list(GROUP_BYS), 1))
        times: dict[str, list[float]] = {name: [] for name in paths}
        naive_ms: dict[str, list[float]] = {g: [] for g in GROUP_BYS}
        order = list(paths)
        for r in range(rounds):
            print(f"read: round {r + 1} of {rounds}", file=sys.stderr)
            for i in range(per_block):
                for name in order if i % 2 == 0 else order[::-1]:
                    started = time.perf_counter()
                    client.get(paths[name]).raise_for_status()
                    times[name].append((time.perf_counter() - started) * 1000)
            groups = list(GROUP_BYS) if r % 2 == 0 else list(GROUP_BYS)[::-1]
            block = asyncio.run(naive_runs(url, account_id, window, groups, runs_per_round))
            for group_by, (ms, _) in block.items():
                naive_ms[group_by].extend(ms)
    api: dict[str, dict[str, Any]] = {
        name: {
            **{p: round(pct(t, float(p[1:])), 2) for p in PERCENTILES},
            "requests": len(t),
            "path": shown[name],
        }
        for name, t in times.items()
    }
    naive = {
        g: {
            "p50": round(pct(ms, 50), 1),
            "p95": round(pct(ms, 95), 1),
            "runs": len(ms),
            "ratio_p95": round(pct(ms, 95) / api[g]["p95"], 1) if g in api else None,
            "ratio_p50": round(pct(ms, 50) / api[g]["p50"], 1) if g in api else None,
        }
        for g, ms in naive_ms.items()
    }
    checks = {
        g: cross_check(answers[g], warm[g][1]) if g in answers else [f"API failed: {failed[g]}"]
        for g in GROUP_BYS
    }
    for g, problems in checks.items():
        for problem in problems:
            print(f"MISMATCH {g}: {problem}", file=sys.stderr)
    return {
        "window": {"start": window[0].isoformat(), "end_before": window[1].isoformat()},
        "period": answers["user"]["period"],
        "totals": answers["user"]["totals"],
        "requests_per_endpoint": per_block * rounds,
        "failed": {name: {"path": shown[name], "error": e} for name, e in failed.items()},
        "rounds": rounds,
        "api": api,
        "naive": naive,
        "naive_sql": {g: naive_sql(g) for g in GROUP_BYS},
        "cross_check": {g: {"match": not p, "mismatches": p[:10]} for g, p in checks.items()},
        "first_groups": {g: answers[g]["groups"][:3] for g in GROUP_BYS},
    }


# --- CSV: time and the server's memory ----------------------------------------------------------


def server_pid(base: str) -> int:
    """The process of `perf-metrics serve --port PORT` (one worker: uvicorn runs in it)."""
    port = base.rsplit(":", 1)[1]
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"serve" in args and port.encode() in args and any(b"perf-metrics" in a for a in args):
            return int(pid)
    raise RuntimeError(f"no perf-metrics serve process on port {port}")


def memory_kib(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(rest.split()[0])
    return fields


class RssSampler:
    """The largest VmRSS of `pid` seen every `interval` seconds over a `with` block."""

    def __init__(self, pid: int, interval: float = 0.005) -> None:
        self.pid, self.interval = pid, interval
        self.peak = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, memory_kib(self.pid)["VmRSS"])
            time.sleep(self.interval)

    def __enter__(self) -> RssSampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def download(client: httpx.Client, path: str) -> dict[str, Any]:
    """One CSV over HTTP: wall time, time to the first byte, size and data rows."""
    started = time.perf_counter()
    first: float | None = None
    size = lines = 0
    with client.stream("GET", path) as response:
        response.raise_for_status()
        for chunk in response.iter_bytes():
            if first is None:
                first = time.perf_counter()
            size += len(chunk)
            lines += chunk.count(b"\n")
    ended = time.perf_counter()
    return {
        "s": ended - started,
        "first_byte_s": (first or ended) - started,
        "bytes": size,
        "groups": lines - 1,  # the header row (no field of these CSVs holds a line break)
    }


def csv_memory(url: str, key: str, days: int) -> dict[str, Any]:
    """A fresh server; after a warm JSON and a 1-day CSV request, the RSS growth of
    downloading the `days` CSV: peak (VmHWM after a reset) and sampled, over VmRSS before."""
    headers = {"Authorization": f"Bearer {key}"}
    env = {"RATE_LIMIT_ENABLED": "false", "RESPONSE_CACHE_ENTRIES": "0", "LOG_LEVEL": "WARNING"}
    with (
        served(url, workers=1, **env) as base,
        httpx.Client(base_url=base, headers=headers, timeout=120) as client,
    ):
        pid = server_pid(base)
        client.get(breakdown_path("user", days, limit="20")).raise_for_status()
        download(client, breakdown_path("user", 1, format="csv"))
        time.sleep(0.2)
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
        before = memory_kib(pid)
        with RssSampler(pid) as sampler:
            got = download(client, breakdown_path("user", days, format="csv"))
        after = memory_kib(pid)
    return {
        "days": days,
        "groups": got["groups"],
        "bytes": got["bytes"],
        "s": round(got["s"], 3),
        "rss_before_kib": before["VmRSS"],
        "peak_growth_kib": after["VmHWM"] - before["VmRSS"],
        "sampled_growth_kib": sampler.peak - before["VmRSS"],
        "rss_after_kib": after["VmRSS"],
    }


def csv_part(url: str, key: str, requests: int, memory_rounds: int) -> dict[str, Any]:
    sizes = CSV_DAYS
    memory: list[dict[str, Any]] = []
    for r in range(memory_rounds):
        for days in sizes if r % 2 == 0 else sizes[::-1]:
            m = csv_memory(url, key, days)
            print(f"csv memory: {m}", file=sys.stderr)
            memory.append(m)
    env = {"RATE_LIMIT_ENABLED": "false", "RESPONSE_CACHE_ENTRIES": "0", "LOG_LEVEL": "WARNING"}
    runs: dict[int, list[dict[str, Any]]] = {d: [] for d in sizes}
    with (
        served(url, workers=1, **env) as base,
        httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=120
        ) as client,
    ):
        for days in sizes:  # warm
            download(client, breakdown_path("user", days, format="csv"))
        for i in range(requests):
            for days in sizes if i % 2 == 0 else sizes[::-1]:
                runs[days].append(download(client, breakdown_path("user", days, format="csv")))
    out: dict[str, Any] = {"requests": requests, "memory_rounds": memory_rounds}
    for days in sizes:
        wall = [x["s"] for x in runs[days]]
        first = [x["first_byte_s"] for x in runs[days]]
        mine = [m for m in memory if m["days"] == days]
        out[f"days_{days}"] = {
            "groups": runs[days][0]["groups"],
            "bytes": runs[days][0]["bytes"],
            "wall_p50_s": round(pct(wall, 50), 3),
            "wall_p95_s": round(pct(wall, 95), 3),
            "first_byte_p50_s": round(pct(first, 50), 3),
            "peak_growth_kib": [m["peak_growth_kib"] for m in mine],
            "sampled_growth_kib": [m["sampled_growth_kib"] for m in mine],
            "max_peak_growth_kib": max(m["peak_growth_kib"] for m in mine),
        }
    small, large = out["days_7"], out[f"days_{DAYS}"]
    out["groups_ratio"] = round(large["groups"] / max(1, small["groups"]), 2)
    out["peak_growth_ratio"] = round(
        large["max_peak_growth_kib"] / max(1, small["max_peak_growth_kib"]), 2
    )
    # An answer built whole before it is sent holds at least its body (and its rows as Python
    # objects, several times that): flat means well under the body.
    out["peak_growth_vs_body"] = round(large["max_peak_growth_kib"] * 1024 / large["bytes"], 3)
    # The target's window: the shortest with at least CSV_TARGET_GROUPS groups.
    out["target_days"] = next(
        (d for d in sizes if out[f"days_{d}"]["groups"] >= CSV_TARGET_GROUPS), DAYS
    )
    out["memory_runs"] = memory
    return out


# --- where a page's time goes -------------------------------------------------------------------


class Recording:
    """An AsyncConnection stand-in that runs and times every statement given to `execute`,
    keeping each with its binds."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.statements: list[tuple[Any, dict[str, Any] | None, float]] = []

    async def execute(self, statement: Any, params: dict[str, Any] | None = None) -> Any:
        started = time.perf_counter()
        result = await self.conn.execute(statement, params)
        self.statements.append((statement, params, (time.perf_counter() - started) * 1000))
        return result

    async def stream(self, statement: Any, params: dict[str, Any] | None = None) -> Any:
        """A server-side cursor (the CSV export's); timed to its opening."""
        started = time.perf_counter()
        result = await self.conn.stream(statement, params)
        self.statements.append((statement, params, (time.perf_counter() - started) * 1000))
        return result


# A bind of the answer's raw SQL (`:name`, not a `::type` cast).
BIND = re.compile(r"(?<!:):([A-Za-z_][A-Za-z0-9_]*)")


def sql_literal(value: Any) -> str:
    """`value` as an SQL literal of unknown type (EXECUTE gives it its parameter's type)."""
    if isinstance(value, list):
        inner = ",".join(
            '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"' for v in value
        )
        value = "{" + inner + "}"
    return "'" + str(value).replace("'", "''") + "'"


async def generic_plan(url: str, sql: str, params: dict[str, Any], setup: list[str]) -> list[str]:
    """EXPLAIN (ANALYZE, BUFFERS) of `sql` as a prepared statement runs once Postgres has
    chosen its generic plan (after five executions, when that plan's estimate is no worse):
    PREPARE, then EXECUTE under plan_cache_mode = force_generic_plan, in a transaction that
    first runs `setup` (the answer's SET LOCALs)."""
    names: list[str] = []

    def number(m: re.Match[str]) -> str:
        if m.group(1) not in names:
            names.append(m.group(1))
        return f"${names.index(m.group(1)) + 1}"

    prepared = BIND.sub(number, sql)
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            for statement in setup:
                await conn.execute(statement)
            await conn.execute(f"PREPARE bench_generic AS {prepared}")
            await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            args = ", ".join(sql_literal(params[n]) for n in names)
            rows = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_generic({args})")
    finally:
        await conn.close()
    return [r[0][:400] for r in rows]


def sets(statement: Any) -> bool:
    """A statement of the answer that sets how its transaction plans (SET LOCAL, set_config)."""
    sql = getattr(statement, "text", None)
    return isinstance(sql, str) and (sql.lstrip().startswith("SET") or "set_config(" in sql)


async def csv_time(conn: Any, account_id: str, window: Any) -> dict[str, Any]:
    """Where the user CSV's time goes (days=DAYS): breakdown.export and csv_export.breakdown
    consumed in-process, against EXPLAIN (ANALYZE) of the cursor's statement alone."""
    from sqlalchemy import text

    from perf_metrics.metrics import breakdown, csv_export
    from perf_metrics.metrics.query import Grouping, MetricsQuery, Scope

    query = MetricsQuery(
        Scope(account_id, "live"), window, format="csv", grouping=Grouping("user", limit=20)
    )
    runs = []
    for _ in range(3):
        recording = Recording(conn)
        started = time.perf_counter()
        _, groups = await breakdown.export(cast(Any, recording), query)
        size = 0
        first: float | None = None
        async for chunk in csv_export.breakdown(groups):
            first = first or time.perf_counter()
            size += len(chunk)
        ended = time.perf_counter()
        await conn.rollback()
        runs.append(((ended - started) * 1000, ((first or ended) - started) * 1000, size))
    statement, params, _ = recording.statements[-1]
    for st, _, _ in recording.statements:
        if sets(st):
            await conn.execute(text(st.text))
    plan = [
        r[0][:400] for r in await conn.execute(text("EXPLAIN ANALYZE " + statement.text), params)
    ]
    await conn.rollback()
    return {
        "in_process_ms": [round(r[0], 1) for r in runs],
        "first_chunk_ms": [round(r[1], 1) for r in runs],
        "bytes": runs[-1][2],
        "cursor_statement": " ".join(statement.text.split())[:160],
        "cursor_plan": plan,
    }


FOLD_CALLS = 50_000  # rollups/fold.py's FOLD_LIMIT: one fold's worth
INSERT_NODE = re.compile(r"Insert on (\w+).*actual time=[0-9.]+\.\.([0-9.]+) rows=([0-9]+)")


def fold_plan(url: str) -> dict[str, Any]:
    """Where a fold's time goes: EXPLAIN (ANALYZE, BUFFERS) of the fold statement over the
    log's FOLD_CALLS latest calls queued again, in a transaction rolled back (the rollups end
    as they were). Per rollup, its INSERT ... ON CONFLICT node's time (inclusive of the
    stages it alone reads; the shared ones count once, where first read)."""
    from perf_metrics.calls.store import PENDING_LIST
    from perf_metrics.rollups.fold import FOLD

    async def go() -> dict[str, Any]:
        conn = await asyncpg.connect(url)
        plan: list[str] = []
        try:
            async with conn.transaction():
                await conn.execute("SET LOCAL statement_timeout = 0")
                await conn.execute(
                    f"INSERT INTO calls_pending ({PENDING_LIST}) SELECT {PENDING_LIST} FROM calls"
                    f" ORDER BY created_at DESC LIMIT {FOLD_CALLS}"
                )
                explain = "EXPLAIN (ANALYZE, BUFFERS) " + FOLD
                plan = [r[0] for r in await conn.fetch(explain, FOLD_CALLS)]
                raise _RolledBack
        except _RolledBack:
            pass
        finally:
            await conn.close()
        inserts = {
            m[1]: {"ms": float(m[2]), "rows": int(m[3])}
            for m in (INSERT_NODE.search(line) for line in plan)
            if m
        }
        total = next(x.split(":")[1].strip() for x in plan if "Execution Time" in x)
        return {"calls": FOLD_CALLS, "execution": total, "inserts": inserts, "plan": plan}

    return asyncio.run(go())


class _RolledBack(Exception):
    """Leaves a transaction of fold_plan, undone."""


EXPLAIN_RUNS = 10  # of the answer on one connection: its statements prepared, then reused


def explain_part(url: str, account_id: str, timezone: str) -> dict[str, Any]:
    """The statements of a user and a metadata.feature first page: breakdown.answer run
    EXPLAIN_RUNS times on one connection of the service's engine (so prepared statements are
    reused, as in the server) through a recording stand-in, each statement's ms per run; and
    for its raw-SQL reads (the group rollups'), EXPLAIN (ANALYZE, BUFFERS) with the binds of
    the last run, as planned for those values and as the generic plan of a prepared
    statement."""
    from sqlalchemy import TextClause, text

    from perf_metrics.db import create_engine
    from perf_metrics.metrics import breakdown
    from perf_metrics.metrics.query import Grouping, MetricsQuery, Scope
    from perf_metrics.metrics.windows import DayWindow
    from perf_metrics.settings import Settings
    from perf_metrics.zones import Zone

    end = date.fromisoformat(END_DATE)
    window = DayWindow(end - timedelta(days=DAYS - 1), end, Zone.named(timezone))

    async def go() -> dict[str, Any]:
        engine = create_engine(Settings(database_url=url))
        out: dict[str, Any] = {}
        try:
            async with engine.connect() as conn:
                for group_by in ("user", "metadata.feature"):
                    query = MetricsQuery(
                        Scope(account_id, "live"), window, grouping=Grouping(group_by, limit=20)
                    )
                    runs: list[list[float]] = []
                    answer_ms: list[float] = []
                    for _ in range(EXPLAIN_RUNS):
                        recording = Recording(conn)
                        started = time.perf_counter()
                        await breakdown.answer(cast(Any, recording), query)
                        answer_ms.append(round((time.perf_counter() - started) * 1000, 2))
                        await conn.rollback()
                        runs.append([round(ms, 2) for _, _, ms in recording.statements])
                    # What the answer sets for its transaction, run before each EXPLAIN.
                    setup = [st.text for st, _, _ in recording.statements if sets(st)]
                    statements = []
                    for i, (statement, params, _) in enumerate(recording.statements):
                        entry: dict[str, Any] = {"ms_per_run": [r[i] for r in runs if i < len(r)]}
                        sql = getattr(statement, "text", "")
                        reads = (
                            isinstance(statement, TextClause)
                            and sql.lstrip().startswith(("SELECT", "WITH"))
                            and not sets(statement)
                        )
                        if not isinstance(statement, TextClause):
                            entry["sql"] = type(statement).__name__ + " (SQLAlchemy Core)"
                        else:
                            entry["sql"] = " ".join(sql.split())[:160]
                        if reads:
                            binds = params or {}
                            entry["binds"] = {
                                k: (f"{len(v)} values" if isinstance(v, list) else str(v))
                                for k, v in binds.items()
                                if k != "account_id"
                            }
                            for st in setup:
                                await conn.execute(text(st))
                            plan = await conn.execute(
                                text("EXPLAIN (ANALYZE, BUFFERS) " + sql), binds
                            )
                            entry["custom_plan"] = [r[0][:400] for r in plan]
                            await conn.rollback()
                            entry["generic_plan"] = await generic_plan(url, sql, binds, setup)
                        statements.append(entry)
                    out[group_by] = {"answer_ms_per_run": answer_ms, "statements": statements}
                out["csv"] = await csv_time(conn, account_id, window)
        finally:
            await engine.dispose()
        return out

    out = asyncio.run(go())
    out["fold"] = fold_plan(url)
    return out


# --- ingest CPU, before and after ---------------------------------------------------------------


# A fold of 50,000 calls (FOLD_LIMIT) takes 4-5 s here with the group rollups (the explain
# part), against the service's 5 s statement timeout: on a busy machine a fold of the 1M-line
# file times out and `perf-metrics ingest` exits 2, with no CPU figure. Both variants run with
# this limit instead (a limit changes nothing of the CPU a run spends; its default is reported).
INGEST_STATEMENT_TIMEOUT_MS = 60_000


def without_users(path: Path) -> Path:
    """The same calls without their user ids (beside `path`, made once)."""
    plain = path.with_suffix(".no_users.jsonl")
    if not plain.exists():
        with open(path, "rb") as src, open(plain, "wb") as out:
            for line in src:
                call = orjson.loads(line)
                call.pop("user_id", None)
                out.write(orjson.dumps(call) + b"\n")
    return plain


# Today's configuration, on this checkout: the accounts track no metadata key, and the calls
# carry no user id (every call is in the null user group: one row per account and day).
NO_GROUPS = "UPDATE accounts SET tracked_metadata_keys = '{}'"


def ingest_part(before: str, rounds: int, calls: int, timeout_ms: int) -> dict[str, Any]:
    """bench/zones.py's `ingest_once` at --before, here, and here in today's configuration
    (`plain`), alternating rounds; here, every account must track feature and team (checked in
    each fresh database)."""
    path = jsonl(calls, SEED)
    plain = without_users(path)
    runs: list[dict[str, Any]] = []
    if timeout_ms:
        os.environ["DB_STATEMENT_TIMEOUT_MS"] = str(timeout_ms)  # the CLI runs inherit it
    with worktree(before) as old:
        variants: list[tuple[str, Path | None, Path, str | None]] = [
            ("before", old / "src", path, None),
            ("head", None, path, None),
            ("plain", None, plain, NO_GROUPS),
        ]
        for r in range(rounds):
            for variant, src, file, prepare in variants if r % 2 == 0 else variants[::-1]:
                result = ingest_once(variant, src, file, len(runs), prepare)
                print(f"ingest {variant}: {result}", file=sys.stderr)
                keys = result.get("tracked_metadata_keys")
                if variant == "head" and keys != [TRACKED]:
                    raise RuntimeError(f"the accounts track {keys}, not {TRACKED}")
                if variant == "plain" and keys != [[]]:
                    raise RuntimeError(f"the accounts track {keys}, not nothing")
                runs.append(result)
    summary: dict[str, Any] = {}
    for variant in ("before", "head", "plain"):
        mine = [r for r in runs if r["variant"] == variant]
        for field in ("cpu_us_per_call", "cli_and_backends_cpu_us_per_call", "calls_per_s"):
            values = [r[field] for r in mine if r[field] is not None]
            summary.setdefault(variant, {})[field] = (
                round(sum(values) / len(values), 1) if values else None
            )
    for field in ("cpu_us_per_call", "cli_and_backends_cpu_us_per_call"):
        for base in ("before", "plain"):
            old, new = summary[base][field], summary["head"][field]
            if old and new:
                summary["head"][f"{field}_vs_{base}"] = round(new / old, 3)
    return {
        "before_commit": before,
        "file_calls": calls,
        "rounds": rounds,
        "statement_timeout_ms": timeout_ms or "default",
        "runs": runs,
        **summary,
    }


# --- results ------------------------------------------------------------------------------------


def _met(ok: bool) -> str:
    return "yes" if ok else "NO"


def table(result: dict[str, Any]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = [("measure", "value", "target", "met")]
    read = result.get("read")
    if read:
        n = read["requests_per_endpoint"]
        for name, a in read["api"].items():
            naive = read["naive"].get(name)
            rows.append(
                (
                    f"breakdown {name}, p50/p95/p99 ms ({n} requests)",
                    f"{a['p50']}/{a['p95']}/{a['p99']}",
                    f"p95 < {P95_TARGET_MS:g} ms" if name in GROUP_BYS else "",
                    _met(a["p95"] < P95_TARGET_MS) if name in GROUP_BYS else "",
                )
            )
            if naive and naive["ratio_p95"] is not None:
                rows.append(
                    (
                        f"naive GROUP BY {name}, p50/p95 ms ({naive['runs']} runs); p95 ratio",
                        f"{naive['p50']}/{naive['p95']}; x{naive['ratio_p95']}",
                        f"x{RATIO_TARGET:g}",
                        _met(naive["ratio_p95"] >= RATIO_TARGET),
                    )
                )
        for name, f in read.get("failed", {}).items():
            rows.append((f"breakdown {name}", f"FAILED: {f['error'][:120]}", "200", "NO"))
        for g, c in read["cross_check"].items():
            rows.append(
                (
                    f"first page {g} = naive answer (value, calls, cost, tokens; totals)",
                    "same" if c["match"] else "; ".join(c["mismatches"][:2]),
                    "same",
                    _met(c["match"]),
                )
            )
    csv = result.get("csv")
    if csv:
        target = csv.get("target_days", DAYS)
        for days in (d for d in CSV_DAYS if f"days_{d}" in csv):
            c = csv[f"days_{days}"]
            rows.append(
                (
                    f"CSV group_by=user days={days} ({c['groups']:,} groups, {c['bytes']:,} "
                    f"bytes), wall p50/p95 s ({csv['requests']} requests)",
                    f"{c['wall_p50_s']}/{c['wall_p95_s']} (first byte p50 {c['first_byte_p50_s']})",
                    f"< {CSV_TARGET_S:g} s for {CSV_TARGET_GROUPS:,} groups"
                    if days == target
                    else "",
                    _met(c["wall_p95_s"] < CSV_TARGET_S) if days == target else "",
                )
            )
            rows.append(
                (
                    f"server peak RSS growth during it, KiB (fresh server each, "
                    f"{csv['memory_rounds']} runs); sampled",
                    f"{c['peak_growth_kib']}; {c['sampled_growth_kib']}",
                    "",
                    "",
                )
            )
        rows.append(
            (
                f"days={DAYS} vs days=7: groups; max peak RSS growth; days={DAYS}'s max peak "
                "growth / its CSV's size",
                f"x{csv['groups_ratio']}; x{csv['peak_growth_ratio']}; "
                f"{csv['peak_growth_vs_body']}",
                "flat: growth well under the body (< 0.5 of it)",
                _met(csv["peak_growth_vs_body"] < 0.5),
            )
        )
    explain = result.get("explain")
    if explain:

        def execution(plan: list[str]) -> str:
            return next((x.split(":")[1].strip() for x in plan if "Execution Time" in x), "?")

        for g, e in explain.items():
            if g == "fold":
                rows.append(
                    (
                        f"one fold of {e['calls']:,} queued calls (EXPLAIN ANALYZE, rolled back): "
                        "total; per rollup INSERT node ms",
                        f"{e['execution']}; "
                        + ", ".join(
                            f"{t.removeprefix('rollup_')} {i['ms']:.0f}"
                            for t, i in e["inserts"].items()
                        ),
                        "",
                        "",
                    )
                )
                continue
            if g == "csv":
                rows.append(
                    (
                        f"CSV user days={DAYS} in-process (export + csv_export, 3 runs): ms; "
                        "first chunk ms; its cursor's statement alone (EXPLAIN ANALYZE)",
                        f"{e['in_process_ms']}; {e['first_chunk_ms']}; "
                        f"{execution(e['cursor_plan'])}",
                        "",
                        "",
                    )
                )
                continue
            ms = e["answer_ms_per_run"]
            rows.append(
                (
                    f"{g} first page in-process, one connection: answer ms, runs 1..{len(ms)}",
                    ", ".join(map(str, ms)),
                    "",
                    "",
                )
            )
            for st in e["statements"]:
                if "custom_plan" not in st:
                    continue
                rows.append(
                    (
                        f"{g}: {st['sql'][:60]}... ms per run; EXPLAIN ANALYZE custom plan, "
                        "forced generic plan",
                        ", ".join(map(str, st["ms_per_run"]))
                        + f"; {execution(st['custom_plan'])}, {execution(st['generic_plan'])}",
                        "",
                        "",
                    )
                )
    ingest = result.get("ingest")
    if ingest:
        s = ingest["head"]
        today = "here in today's configuration (no tracked key, no user ids)"
        bases = [("plain", today)] if "plain" in ingest else []  # (not in older runs)
        bases.append(("before", ingest["before_commit"]))
        for base, name in bases:
            b = ingest[base]
            rows.append(
                (
                    f"perf-metrics ingest CPU µs/call, here (tracking {', '.join(TRACKED)}, "
                    f"user ids) vs {name} ({ingest['rounds']} alternating rounds each; "
                    f"statement timeout {ingest.get('statement_timeout_ms', 'default')} ms)",
                    f"{s['cpu_us_per_call']} vs {b['cpu_us_per_call']} "
                    f"(x{s.get(f'cpu_us_per_call_vs_{base}')}); CLI + its backends "
                    f"{s['cli_and_backends_cpu_us_per_call']} vs "
                    f"{b['cli_and_backends_cpu_us_per_call']} "
                    f"(x{s.get(f'cli_and_backends_cpu_us_per_call_vs_{base}')})",
                    f"at most x{INGEST_TARGET:g}",
                    _met((s.get(f"cpu_us_per_call_vs_{base}") or 9) <= INGEST_TARGET),
                )
            )
        b = ingest["before"]
        rows.append(
            (
                f"perf-metrics ingest calls/s, here vs {ingest['before_commit']}",
                f"{s['calls_per_s']:,.0f} vs {b['calls_per_s']:,.0f}",
                "",
                "",
            )
        )
    return rows


def largest_account(size: int) -> dict[str, Any]:
    """The call log of `size`, its largest account (enterprise, tracking feature and team: a
    log seeded before accounts tracked them gets them now, a recount) and a customer key."""
    url, build = ensure(size)
    run_cli(url, "migrate")
    account_id, live_calls = asyncio.run(pick_accounts(url))["largest"]
    run_cli(url, "accounts", "update", account_id, "--tier", "enterprise")
    row = fetch(
        url, "SELECT timezone, tracked_metadata_keys FROM accounts WHERE id = $1", account_id
    )
    timezone, keys = row[0][0], list(row[0][1])
    added = False
    if keys[: len(TRACKED)] != TRACKED:
        run_cli(url, "accounts", "update", account_id, "--track-metadata", ",".join(TRACKED))
        added = True
    key = run_cli(url, "keys", "create", "--account", account_id)["key"]
    return {
        "url": url,
        "build": build,
        "account_id": account_id,
        "account_calls_live": live_calls,
        "timezone": timezone,
        "tracked_metadata_keys": TRACKED if added else keys,
        "tracked_keys_added_by_bench": added,
        "key": key,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=10_000_000)
    parser.add_argument("--requests", type=int, default=1000, help="per endpoint (read)")
    parser.add_argument("--rounds", type=int, default=5, help="read rounds, naive after each")
    parser.add_argument("--naive-runs", type=int, default=2, help="per group_by and round")
    parser.add_argument("--csv-requests", type=int, default=20)
    parser.add_argument("--csv-memory-rounds", type=int, default=3)
    parser.add_argument("--parts", default=",".join(PARTS))
    parser.add_argument("--before", default=BEFORE, help="the commit ingest is compared with")
    parser.add_argument("--ingest-rounds", type=int, default=2)
    parser.add_argument("--ingest-calls", type=int, default=1_000_000)
    parser.add_argument(
        "--ingest-statement-timeout-ms",
        type=int,
        default=INGEST_STATEMENT_TIMEOUT_MS,
        help="DB_STATEMENT_TIMEOUT_MS of both ingest variants (0: the service's default)",
    )
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    info = machine()
    previous = ROOT / "bench" / "results" / "breakdown.json"
    result: dict[str, Any] = {"commands": " ".join(["python", "bench/breakdown.py", *sys.argv[1:]])}
    if previous.exists() and not parts >= set(PARTS):
        old = json.loads(previous.read_text())  # a partial run keeps the other parts' numbers
        result.update({k: v for k, v in old.items() if k in ("calls", "dataset", *PARTS)})
    if parts & {"read", "csv", "explain"}:
        a = largest_account(args.size)
        result["calls"] = args.size
        result["dataset"] = {k: a[k] for k in ("account_id", "account_calls_live", "timezone")}
        result["dataset"]["tracked_metadata_keys"] = a["tracked_metadata_keys"]
        result["dataset"]["tracked_keys_added_by_bench"] = a["tracked_keys_added_by_bench"]
        if a["build"]:
            result["dataset"]["build"] = a["build"]
        if "read" in parts:
            result["read"] = read_part(
                a["url"], a["account_id"], a["key"], args.requests, args.rounds, args.naive_runs
            )
            write_results("breakdown", result, table(result), info)  # kept if a later part fails
        if "csv" in parts:
            result["csv"] = csv_part(a["url"], a["key"], args.csv_requests, args.csv_memory_rounds)
            write_results("breakdown", result, table(result), info)
        if "explain" in parts:
            result["explain"] = explain_part(a["url"], a["account_id"], a["timezone"])
            write_results("breakdown", result, table(result), info)
    if "ingest" in parts:
        result["ingest"] = ingest_part(
            args.before, args.ingest_rounds, args.ingest_calls, args.ingest_statement_timeout_ms
        )
    print(write_results("breakdown", result, table(result), info))


if __name__ == "__main__":
    main()
