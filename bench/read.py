"""Read latency and throughput at 1M and 10M calls, against a naive baseline, in one run.

    python bench/datasets.py 1000000 10000000     # once: builds (or reuses) the call logs
    python bench/read.py [--sizes 1000000 10000000] [--requests 200]

For each size: p50/p95/p99 of every endpoint over HTTP through real uvicorn (started as the
README starts it), warm, for the largest and a median account (days=90, providers hours=168);
the same questions as plain SQL GROUP BY over the raw call log with a fair (account_id,
created_at) index and exact percentile_cont; the mixed-endpoint throughput at concurrency 32
next to the /healthz floor (wrk); the disk size of raw rows and rollups; and how close the
histogram p95/p99 are to percentile_cont. Writes bench/results/read.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, run_cli, served, write_results
from datasets import ensure

END_DATE = "2026-11-26"
END_TIME = "2026-11-27T00:00:00Z"
ENDPOINTS = {
    "overview": f"days=90&end_date={END_DATE}",
    "customer": f"days=90&end_date={END_DATE}",
    "performance": f"days=90&end_date={END_DATE}",
    "failures": f"days=90&end_date={END_DATE}",
    "providers": f"hours=168&end_time={END_TIME}",
    "daily": f"days=90&end_date={END_DATE}",
}
START = "2026-08-29"  # END_DATE - 89 days
# The naive way: the same questions over raw rows, per request.
NAIVE: dict[str, list[str]] = {
    "overview": [
        "SELECT count(*), sum(cost_usd), avg(latency_ms), avg((status = 'success')::int),"
        " avg((failure_mode IS NULL AND (quality_score IS NULL OR quality_score >= 0.7))::int),"
        " avg(fallback_used::int), avg((retry_count > 0)::int) FROM calls"
        " WHERE account_id = $1 AND environment = 'live' AND created_at >= $2 AND created_at < $3",
        "SELECT model, count(*), avg(cost_usd), avg(latency_ms) FROM calls WHERE account_id = $1"
        " AND environment = 'live' AND created_at >= $2 AND created_at < $3 GROUP BY model",
        "SELECT task_type, count(*) FROM calls WHERE account_id = $1 AND environment = 'live'"
        " AND created_at >= $2 AND created_at < $3 GROUP BY task_type",
    ],
    "customer": [
        "SELECT count(*), sum(input_tokens + output_tokens), sum(cost_usd), avg(complexity_score),"
        " avg(message_count), avg((retry_count > 0)::int), avg(cost_ceiling_hit::int),"
        " sum(input_tokens), sum(output_tokens) FROM calls WHERE account_id = $1"
        " AND environment = 'live' AND created_at >= $2 AND created_at < $3",
        "SELECT (created_at AT TIME ZONE 'UTC')::date, sum(cost_usd) FROM calls"
        " WHERE account_id = $1 AND environment = 'live'"
        " AND created_at >= $2::timestamptz - interval '31 days' AND created_at < $3 GROUP BY 1",
        "SELECT extract(hour FROM created_at AT TIME ZONE 'UTC'), count(*) FROM calls"
        " WHERE account_id = $1 AND environment = 'live' AND created_at >= $2 AND created_at < $3"
        " GROUP BY 1",
        "SELECT model, task_type, count(*) FROM calls WHERE account_id = $1"
        " AND environment = 'live' AND created_at >= $2 AND created_at < $3 GROUP BY 1, 2",
    ],
    "performance": [
        "SELECT task_type, model, count(*), avg((status = 'success')::int), avg(cost_usd),"
        " avg(latency_ms), avg(quality_score), count(quality_score) FROM calls"
        " WHERE account_id = $1 AND environment = 'live' AND created_at >= $2 AND created_at < $3"
        " GROUP BY 1, 2",
    ],
    "failures": [
        "SELECT task_type, coalesce(initial_model, model), failure_mode, count(*),"
        " count(*) FILTER (WHERE recovery = 'retry'),"
        " count(*) FILTER (WHERE recovery = 'fallback'),"
        " count(*) FILTER (WHERE status = 'error') FROM calls WHERE account_id = $1"
        " AND environment = 'live' AND created_at >= $2 AND created_at < $3 GROUP BY 1, 2, 3",
        "SELECT failure_mode, failure_trigger, count(*) FROM calls WHERE account_id = $1"
        " AND environment = 'live' AND created_at >= $2 AND created_at < $3"
        " AND failure_trigger IS NOT NULL GROUP BY 1, 2",
    ],
    "providers": [
        "SELECT provider, count(*), avg(latency_ms),"
        " percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms),"
        " percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms) FROM calls"
        " WHERE environment = 'live' AND created_at >= $1 AND created_at < $2 GROUP BY provider",
        "SELECT coalesce(initial_provider, provider), date_bin('5 minutes', created_at,"
        " TIMESTAMPTZ '2000-01-01 00:00Z'), count(*), count(*) FILTER (WHERE failure_mode IN"
        " ('provider_error', 'timeout', 'rate_limited')) FROM calls WHERE environment = 'live'"
        " AND created_at >= $1 AND created_at < $2 GROUP BY 1, 2",
    ],
    "daily": [
        "SELECT (created_at AT TIME ZONE 'UTC')::date, count(*), sum(cost_usd), avg(latency_ms),"
        " avg((status = 'success')::int), avg(quality_score) FROM calls WHERE account_id = $1"
        " AND environment = 'live' AND created_at >= $2 AND created_at < $3 GROUP BY 1",
        "SELECT (created_at AT TIME ZONE 'UTC')::date, model, task_type, count(*) FROM calls"
        " WHERE account_id = $1 AND environment = 'live' AND created_at >= $2 AND created_at < $3"
        " GROUP BY 1, 2, 3",
    ],
}


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


async def pick_accounts(url: str) -> dict[str, tuple[str, int]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT account_id, sum(calls)::bigint AS n FROM rollup_account_daily"
            " WHERE environment = 'live' GROUP BY 1 ORDER BY 2 DESC, 1"
        )
    finally:
        await conn.close()
    return {
        "largest": (rows[0]["account_id"], rows[0]["n"]),
        "median": (rows[len(rows) // 2]["account_id"], rows[len(rows) // 2]["n"]),
    }


def http_latencies(base: str, key: str, requests: int) -> dict[str, dict[str, float]]:
    out = {}
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}) as client:
        for name, query in ENDPOINTS.items():
            path = f"/v1/metrics/{name}?{query}"
            for _ in range(10):  # warm
                client.get(path).raise_for_status()
            times = []
            for _ in range(requests):
                started = time.perf_counter()
                client.get(path).raise_for_status()
                times.append((time.perf_counter() - started) * 1000)
            out[name] = {p: round(pct(times, float(p[1:])), 2) for p in ("p50", "p95", "p99")}
    return out


async def naive_latencies(url: str, account_id: str, runs: int) -> dict[str, dict[str, float]]:
    """Each endpoint's queries over raw rows: account questions take (account, start, end),
    the platform-wide providers questions take (start, end) of the 168-hour window."""
    from datetime import UTC, datetime, timedelta

    start = datetime.fromisoformat(START).replace(tzinfo=UTC)
    end = datetime.fromisoformat(END_DATE).replace(tzinfo=UTC) + timedelta(days=1)
    p_end = datetime.fromisoformat(END_TIME)
    args = {"account": (account_id, start, end), "platform": (p_end - timedelta(hours=168), p_end)}
    conn = await asyncpg.connect(url)
    out = {}
    try:
        for name, queries in NAIVE.items():
            kind = "platform" if name == "providers" else "account"
            times = []
            for run in range(runs + 1):
                started = time.perf_counter()
                for sql in queries:
                    await conn.fetch(sql, *args[kind])
                if run:  # the first run warms the cache
                    times.append((time.perf_counter() - started) * 1000)
            out[name] = {"p50": round(statistics.median(times), 1), "p95": round(max(times), 1)}
    finally:
        await conn.close()
    return out


def wrk(base: str, paths: list[str], key: str | None, seconds: int = 10) -> float:
    """Requests per second at 32 connections (2 wrk threads), rotating over `paths`."""
    header = f'wrk.headers["Authorization"] = "Bearer {key}"\n' if key else ""
    lua_paths = ", ".join(json.dumps(p) for p in paths)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            header
            + f"local paths = {{{lua_paths}}}\nlocal i = 0\n"
            + "request = function()\n  i = i % #paths + 1\n"
            + "  return wrk.format(nil, paths[i])\nend\n"
            + "done = function(summary, latency, requests)\n"
            + "  local e = summary.errors\n"
            + "  io.write(string.format('ERRORS %d\\n',"
            + " e.status + e.connect + e.read + e.write + e.timeout))\nend\n"
        )
    proc = subprocess.run(
        ["wrk", "-t2", "-c32", f"-d{seconds}s", "-s", script.name, base],
        capture_output=True,
        text=True,
        check=True,
    )
    rps = float(next(x for x in proc.stdout.splitlines() if "Requests/sec" in x).split()[1])
    errors = int(next(x for x in proc.stdout.splitlines() if x.startswith("ERRORS")).split()[1])
    if errors:
        raise RuntimeError(f"wrk saw {errors} errors:\n{proc.stdout}")
    return rps


async def sizes_and_accuracy(url: str) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    try:
        raw = await conn.fetchval("SELECT pg_total_relation_size('calls')")
        rollups = await conn.fetchval(
            "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c"
            " WHERE c.relkind = 'r' AND c.relname LIKE 'rollup_%'"
        )
        exact = await conn.fetch(
            "SELECT provider, percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) AS p95,"
            " percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms) AS p99 FROM calls"
            " WHERE environment = 'live' AND created_at >= $1::timestamptz - interval '168 hours'"
            " AND created_at < $1::timestamptz GROUP BY provider",
            datetime.fromisoformat(END_TIME),
        )
    finally:
        await conn.close()
    return {
        "raw_bytes": raw,
        "rollup_bytes": rollups,
        "exact": {r["provider"]: (r["p95"], r["p99"]) for r in exact},
    }


def measure(size: int, requests: int, workers: int) -> dict[str, Any]:
    """Each HTTP number twice: with the response cache (what a dashboard re-polling unchanged
    data gets) and without it (every answer computed from the rollups)."""
    url, build = ensure(size)
    accounts = asyncio.run(pick_accounts(url))
    result: dict[str, Any] = {"calls": size, "build": build, "accounts": {}}
    keys = {}
    for role, (account_id, n) in accounts.items():
        run_cli(url, "accounts", "update", account_id, "--tier", "enterprise")
        keys[role] = run_cli(url, "keys", "create", "--account", account_id)["key"]
        result["accounts"][role] = {"account_id": account_id, "live_calls": n}
    with served(
        url, workers=workers, RATE_LIMIT_ENABLED="false", RESPONSE_CACHE_ENTRIES="0"
    ) as base:
        for role, key in keys.items():
            result["accounts"][role]["http_ms"] = http_latencies(base, key, requests)
            print(size, role, result["accounts"][role]["http_ms"], file=sys.stderr, flush=True)
        paths = [f"/v1/metrics/{n}?{q}" for n, q in ENDPOINTS.items()]
        result["throughput_rps_uncached"] = wrk(base, paths, keys["median"])
        result["throughput_rps_uncached_largest"] = wrk(base, paths, keys["largest"])
    with served(url, workers=workers, RATE_LIMIT_ENABLED="false") as base:
        for role, key in keys.items():
            result["accounts"][role]["http_cached_ms"] = http_latencies(base, key, requests)
        providers = httpx.get(
            f"{base}/v1/metrics/providers?{ENDPOINTS['providers']}",
            headers={"Authorization": f"Bearer {keys['largest']}"},
        ).json()["providers"]
        paths = [f"/v1/metrics/{n}?{q}" for n, q in ENDPOINTS.items()]
        result["throughput_rps"] = {
            "mixed_six_endpoints": wrk(base, paths, keys["median"]),
            "mixed_six_endpoints_largest": wrk(base, paths, keys["largest"]),
            "healthz_floor": wrk(base, ["/healthz"], None),
        }
        print(size, result["throughput_rps"], file=sys.stderr, flush=True)
    for role, (account_id, _) in accounts.items():
        result["accounts"][role]["naive_ms"] = asyncio.run(naive_latencies(url, account_id, 3))
        print(
            size, role, "naive", result["accounts"][role]["naive_ms"], file=sys.stderr, flush=True
        )
    extra = asyncio.run(sizes_and_accuracy(url))
    result["disk"] = {"raw_bytes": extra["raw_bytes"], "rollup_bytes": extra["rollup_bytes"]}
    result["percentile_accuracy"] = {
        p: {
            "api_p95": providers[p]["p95_latency_ms"],
            "exact_p95": round(extra["exact"][p][0], 1),
            "api_p99": providers[p]["p99_latency_ms"],
            "exact_p99": round(extra["exact"][p][1], 1),
        }
        for p in providers
        if p in extra["exact"]
    }
    return result


def table(results: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = [
        (
            "calls", "account", "endpoint", "p50 ms", "p95 ms", "p99 ms", "cached p95 ms",
            "naive p50 ms", "speed-up (p50)",
        )
    ]  # fmt: skip
    for r in results:
        for role, acc in r["accounts"].items():
            for name in ENDPOINTS:
                h, n = acc["http_ms"][name], acc["naive_ms"][name]
                rows.append(
                    (
                        f"{r['calls']:,}",
                        f"{role} ({acc['live_calls']:,})",
                        name,
                        f"{h['p50']}",
                        f"{h['p95']}",
                        f"{h['p99']}",
                        f"{acc['http_cached_ms'][name]['p95']}",
                        f"{n['p50']}",
                        f"{n['p50'] / h['p50']:.0f}x",
                    )
                )
    for r in results:
        t = r["throughput_rps"]
        floor = t["healthz_floor"]
        for label, rps in (
            ("uncached, median account", r["throughput_rps_uncached"]),
            ("uncached, largest account", r["throughput_rps_uncached_largest"]),
            ("cached, median account", t["mixed_six_endpoints"]),
            ("cached, largest account", t["mixed_six_endpoints_largest"]),
        ):
            rows.append(
                (
                    f"{r['calls']:,}",
                    f"mixed c=32, {label}",
                    "all six",
                    f"{rps:.0f} req/s",
                    f"healthz {floor:.0f} req/s",
                    f"{rps / floor:.0%} of floor",
                    "",
                    "",
                    "",
                )
            )
        d = r["disk"]
        rows.append(
            (
                f"{r['calls']:,}",
                "disk",
                "raw / rollups",
                f"{float(d['raw_bytes']) / 2**20:.0f} MiB",
                f"{float(d['rollup_bytes']) / 2**20:.0f} MiB",
                "",
                "",
                "",
            )
        )
        for p, a in r["percentile_accuracy"].items():
            rows.append(
                (
                    f"{r['calls']:,}",
                    "p95/p99 vs percentile_cont",
                    p,
                    f"{a['api_p95']} / {a['exact_p95']}",
                    f"{a['api_p99']} / {a['exact_p99']}",
                    "",
                    "",
                    "",
                )
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--table-only", action="store_true", help="rewrite read.md from read.json, measure nothing"
    )
    args = parser.parse_args()
    if args.table_only:
        saved = json.loads((RESULTS / "read.json").read_text())
        runs = saved["runs"]
        print(write_results("read", {"runs": runs}, table(runs), saved["machine"]))
        return
    if not shutil.which("wrk"):
        sys.exit("wrk is needed for the throughput part: apt-get install wrk")
    results = [measure(size, args.requests, args.workers) for size in args.sizes]
    print(write_results("read", {"runs": results}, table(results)))


if __name__ == "__main__":
    main()
