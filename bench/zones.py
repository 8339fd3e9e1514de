"""Account timezones (SPEC §9, issue #15): what local days cost, in one run.

    python bench/datasets.py 10000000          # once: builds (or reuses) the 10M call log
    python bench/zones.py [--size 10000000] [--requests 1000] [--rounds 5] [--ingest-rounds 2]
                          [--parts read,rezone,ingest,explain] [--before ab8457b]

Three measurements, each against its target in the issue:

- read: p50/p95/p99 of overview, customer, performance, failures and daily (days=90) for the
  largest account over HTTP (one uvicorn worker, response cache off, as bench/compare.py), with
  the account in UTC, in Asia/Kolkata (+05:30) and in America/New_York (DST), measured in the
  same run: its zone is changed (`change_zone`, the CLI's `accounts update --timezone`) between
  blocks, the zones visited in rounds (UTC, Kolkata, New York, then New York, Kolkata, UTC, ...)
  and the endpoints interleaved request by request, so the minute's noise falls on every zone
  alike. After each change the account rollups are vacuumed (autovacuum's work, done at once),
  so every zone is read in the same steady state. Target: non-UTC p95 within 10% of UTC's.
  The account ends in the zone it started in.
- rezone: the zone change of the largest account (`perf-metrics accounts update --timezone`,
  wall time; target < 15 s) while two clients POST 5,000-call batches of OTHER accounts to a
  real server (2 workers, as deployed), against the ingest rate just before the change (target:
  at least half); then `perf-metrics rollups verify --account` of the largest account.
- ingest: `perf-metrics ingest` of bench/ingest.py's 1M-line file (1,000 accounts, 90 days)
  into a fresh database, at commit --before (a temporary worktree, as bench/compare.py) and at
  this checkout, alternating, with the machine's CPU µs per call (bench/ingest.py's measure)
  and the part of it spent by the CLI and its Postgres backends. This checkout runs twice: with
  the accounts in the zones `seed` deals them, and with all of them in UTC.
- explain (only when asked for): EXPLAIN (ANALYZE, BUFFERS) of the largest step (a week of the
  log) of the recount (rezone.RECOUNT_STEP, one reader's statement) of the largest account, in
  a transaction rolled back; and of that week's scan alone.

A run of some parts keeps the other parts' last numbers in the results.

Writes bench/results/zones.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    ROOT,
    CpuMeter,
    _admin,
    _with_db,
    cli_path,
    machine,
    run_cli,
    served,
    server_url,
    write_results,
)
from compare import worktree
from datasets import ensure
from ingest import jsonl
from perf_metrics import synthetic
from read import ENDPOINTS, pct, pick_accounts

READ_ENDPOINTS = ("overview", "customer", "performance", "failures", "daily")
ZONES = ("UTC", "Asia/Kolkata", "America/New_York")
BEFORE = "ab8457b"  # the commit before per-account timezones (95db2c0)
ACCOUNTS = 1000
SEED = 7
INGEST_BATCH = 5000


def cli(url: str, *args: str, src: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`perf-metrics ARGS` on `url`, importing the package from `src` (default: this
    checkout); raises with its stderr when it fails."""
    env = {**os.environ, "DATABASE_URL": url}
    if src is not None:
        env["PYTHONPATH"] = str(src)
    proc = subprocess.run([cli_path(), *args], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"perf-metrics {' '.join(args)} failed:\n{proc.stderr}")
    return proc


async def _fetch(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


def fetch(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    return asyncio.run(_fetch(url, sql, *args))


def account_rollup_tables() -> list[str]:
    from perf_metrics.rollups.rezone import ACCOUNT_ROLLUPS

    return [r.name for r in ACCOUNT_ROLLUPS]


@contextmanager
def cloned(url: str) -> Iterator[str]:
    """A copy of the database at `url` (CREATE DATABASE ... TEMPLATE), dropped afterwards."""
    source = url.rsplit("/", 1)[1].split("?")[0]
    name = f"{source}_zones_copy"
    server = server_url()
    asyncio.run(_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    asyncio.run(_admin(server, f'CREATE DATABASE "{name}" TEMPLATE "{source}"'))
    try:
        yield _with_db(server, name)
    finally:
        asyncio.run(_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def change_zone(url: str, account_id: str, zone: str) -> dict[str, Any]:
    """`perf-metrics accounts update ID --timezone ZONE`: its report, the process's wall time,
    and the seconds between its progress lines (the recount's month steps)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [cli_path(), "accounts", "update", account_id, "--timezone", zone],
        env={**os.environ, "DATABASE_URL": url},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None and proc.stdout is not None
    stamps = [(time.perf_counter(), line.strip()) for line in proc.stderr]
    out = proc.stdout.read()
    if proc.wait() != 0:
        raise RuntimeError(f"accounts update --timezone {zone} failed:\n{stamps}")
    wall = time.perf_counter() - started
    change = json.loads(out)["zone_change"]
    steps = [
        (line.split(":")[0].strip(), round(t - stamps[i][0], 2))
        for i, (t, line) in enumerate(stamps[1:])
        if line.startswith(("live ", "test "))
    ]
    return {**change, "wall_s": round(wall, 2), "steps_s": steps}


def vacuum_rollups(url: str) -> float:
    started = time.perf_counter()
    asyncio.run(_admin(url, f"VACUUM ANALYZE {', '.join(account_rollup_tables())}"))
    return round(time.perf_counter() - started, 2)


# --- read ------------------------------------------------------------------------------


def read_block(
    client: httpx.Client, zone: str, requests: int, times: dict[str, list[float]]
) -> None:
    paths = {e: f"/v1/metrics/{e}?{ENDPOINTS[e]}" for e in READ_ENDPOINTS}
    for endpoint, path in paths.items():  # warm; and the answer must be in the zone
        for _ in range(10):
            response = client.get(path)
            response.raise_for_status()
        period = response.json().get("period", {})
        if period.get("timezone", zone) != zone:
            raise RuntimeError(f"{endpoint} answered in {period.get('timezone')}, not {zone}")
    for i in range(requests):
        order = list(paths) if i % 2 == 0 else list(paths)[::-1]
        for endpoint in order:
            started = time.perf_counter()
            client.get(paths[endpoint]).raise_for_status()
            times[endpoint].append((time.perf_counter() - started) * 1000)


def read_part(url: str, account_id: str, key: str, requests: int, rounds: int) -> dict[str, Any]:
    start_zone = fetch(url, "SELECT timezone FROM accounts WHERE id = $1", account_id)[0][0]
    times: dict[str, dict[str, list[float]]] = {z: {e: [] for e in READ_ENDPOINTS} for z in ZONES}
    changes: list[dict[str, Any]] = []
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
        for r in range(rounds):
            for zone in ZONES if r % 2 == 0 else ZONES[::-1]:
                change = change_zone(url, account_id, zone)
                if change["changed"]:
                    change["vacuum_s"] = vacuum_rollups(url)
                    changes.append(change)
                print(f"read: {zone}, round {r + 1} of {rounds}", file=sys.stderr)
                read_block(client, zone, per_block, times[zone])
    back = change_zone(url, account_id, start_zone)
    if back["changed"]:
        back["vacuum_s"] = vacuum_rollups(url)
        changes.append(back)
    endpoints: dict[str, Any] = {}
    for endpoint in READ_ENDPOINTS:
        row: dict[str, Any] = {}
        for zone in ZONES:
            t = times[zone][endpoint]
            row[zone] = {p: round(pct(t, float(p[1:])), 2) for p in ("p50", "p95", "p99")}
            row[zone]["requests"] = len(t)
        for zone in ZONES[1:]:
            for p in ("p50", "p95", "p99"):
                row[f"ratio_{p}_{zone}"] = round(row[zone][p] / row["UTC"][p], 3)
        endpoints[endpoint] = row
    return {
        "start_zone": start_zone,
        "requests_per_endpoint_and_zone": per_block * rounds,
        "rounds": rounds,
        "endpoints": endpoints,
        "zone_changes": changes,
    }


# --- where a recount's time goes -------------------------------------------------------------


def explain_part(url: str, account_id: str) -> dict[str, Any]:
    """EXPLAIN (ANALYZE, BUFFERS) of one step of the recount (rezone.RECOUNT_STEP, the largest
    week of the account), as a reader runs it, in a REPEATABLE READ transaction that is then
    rolled back (nothing changes). And the same week's calls only read (WEEK_OF_CALLS), to set
    the scan apart from the aggregates."""
    from perf_metrics.rollups import rezone

    async def go() -> dict[str, Any]:
        conn = await asyncpg.connect(url)
        try:
            months = await conn.fetch(rezone.WEEKS, account_id)
            m = max(months, key=lambda r: r["calls"])
            args = (account_id, m["environment"], m["week"])
            tr = conn.transaction(isolation="repeatable_read")
            await tr.start()
            try:
                await conn.execute("SET LOCAL statement_timeout = '600s'")
                started = time.perf_counter()
                for table in account_rollup_tables():
                    await conn.execute(f"DELETE FROM {table} WHERE account_id = $1", account_id)
                delete_s = time.perf_counter() - started
                scan = await conn.fetch(
                    f"EXPLAIN (ANALYZE, BUFFERS) SELECT count(*) FROM ({rezone.WEEK_OF_CALLS}) x",
                    *args,
                )
                plan = await conn.fetch(
                    f"EXPLAIN (ANALYZE, BUFFERS) {rezone.RECOUNT_STEP}", *args, "Asia/Kolkata"
                )
            finally:
                await tr.rollback()
        finally:
            await conn.close()
        return {
            "month": f"{m['environment']} week of {m['week']:%Y-%m-%d}",
            "month_calls": m["calls"],
            "steps": len(months),
            "delete_account_rows_s": round(delete_s, 2),
            "scan_plan": [r[0] for r in scan],
            "recount_plan": [r[0] for r in plan],
        }

    return asyncio.run(go())


# --- rezone under ingest ---------------------------------------------------------------


def ingest_bodies(largest: str, calls: int) -> list[bytes]:
    """5,000-call batches of recent calls (the last day) of every account but `largest`."""
    plan = synthetic.plan_accounts(ACCOUNTS, SEED)
    now = datetime.now(UTC).replace(microsecond=0)
    lines = [
        orjson.dumps(record)
        for chunk in synthetic.generate_calls(plan, days=1, calls=calls, seed=SEED + 11, end=now)
        for record in chunk
        if record["account_id"] != largest
    ]
    return [
        b'{"calls":[' + b",".join(lines[i : i + INGEST_BATCH]) + b"]}"
        for i in range(0, len(lines), INGEST_BATCH)
    ]


class Ingest:
    """Client threads posting batches round and round (a new call-id prefix each pass, so
    nothing is a duplicate), noting when each batch was acknowledged."""

    def __init__(self, base: str, key: str, bodies: list[bytes], clients: int) -> None:
        self.base, self.key, self.bodies, self.clients = base, key, bodies, clients
        self.done: list[tuple[float, int]] = []  # (monotonic time acknowledged, calls)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.next = 0
        self.errors: list[str] = []
        self.threads = [threading.Thread(target=self._run) for _ in range(clients)]

    def _body(self) -> bytes:
        with self.lock:
            n = self.next
            self.next += 1
        body = self.bodies[n % len(self.bodies)]
        return body.replace(b'"call_id":"', b'"call_id":"z%d-' % (n // len(self.bodies)))

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}
        with httpx.Client(base_url=self.base, timeout=120, headers=headers) as client:
            while not self.stop.is_set():
                response = client.post("/v1/calls", content=self._body())
                if response.status_code != 200:
                    self.errors.append(f"{response.status_code} {response.text[:200]}")
                    continue
                with self.lock:
                    self.done.append((time.monotonic(), response.json()["received"]))

    def __enter__(self) -> Ingest:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()

    def rate(self, start: float, end: float) -> float:
        with self.lock:
            calls = sum(n for t, n in self.done if start <= t < end)
        return calls / (end - start)


def queued(url: str) -> int:
    return int(fetch(url, "SELECT count(*) FROM calls_pending")[0][0])


def wait_for_empty_queue(url: str, timeout: float = 300) -> float:
    started = time.monotonic()
    while queued(url) and time.monotonic() - started < timeout:
        time.sleep(0.2)
    return round(time.monotonic() - started, 1)


def rezone_under(
    url: str,
    account_id: str,
    zones: tuple[str, ...],
    before_s: float,
    ingest: Ingest,
) -> list[dict[str, Any]]:
    """Each zone change with `ingest` running, against its rate in the `before_s` before."""
    changes = []
    time.sleep(5)  # the servers and Postgres in their stride
    for zone in zones:
        started = time.monotonic()
        time.sleep(before_s)
        queued_before = queued(url)
        change_started = time.monotonic()
        with CpuMeter() as cpu:
            change = change_zone(url, account_id, zone)
        change_ended = time.monotonic()
        queued_after = queued(url)
        time.sleep(5)
        after_ended = time.monotonic()
        before_rate = ingest.rate(started, change_started)
        during_rate = ingest.rate(change_started, change_ended)
        changes.append(
            {
                **change,
                "ingest_calls_per_s_before": round(before_rate),
                "ingest_calls_per_s_during": round(during_rate),
                "ingest_calls_per_s_after": round(ingest.rate(change_ended, after_ended)),
                "ingest_during_vs_before": round(during_rate / before_rate, 3),
                "queued_before_change": queued_before,
                "queued_after_change": queued_after,
                "machine_cpu_busy_during_s": None if cpu.busy_s is None else round(cpu.busy_s, 1),
            }
        )
        print(
            f"rezone to {zone}: {change['wall_s']} s; ingest {before_rate:,.0f} -> "
            f"{during_rate:,.0f} calls/s",
            file=sys.stderr,
        )
    return changes


def rezone_part(
    url: str, account_id: str, account_calls: int, zones: tuple[str, ...], before_s: float
) -> dict[str, Any]:
    key = run_cli(url, "keys", "create", "--ingest")["key"]
    bodies = ingest_bodies(account_id, 300_000)
    env = {"RATE_LIMIT_ENABLED": "false", "LOG_LEVEL": "WARNING"}
    with served(url, workers=2, **env) as base:
        with Ingest(base, key, bodies, clients=2) as ingest:
            changes = rezone_under(url, account_id, zones, before_s, ingest)
        ingest_errors = list(ingest.errors)
        # The servers' folder takes what is still queued (the calls after the last change).
        drained_s = wait_for_empty_queue(url)
    started = time.perf_counter()
    verify = subprocess.run(
        [cli_path(), "rollups", "verify", "--account", account_id],
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
    )
    verify_s = time.perf_counter() - started
    report = json.loads(verify.stdout) if verify.stdout.strip() else {}
    return {
        "account_calls": account_calls,
        "ingest_clients": 2,
        "ingest_batch": INGEST_BATCH,
        "ingest_errors": ingest_errors[:5],
        "changes": changes,
        "queue_drained_after_s": drained_s,
        "verify": {
            "exit_code": verify.returncode,
            "ok": verify.returncode == 0,
            "seconds": round(verify_s, 1),
            "report": report,
        },
    }


# --- ingest CPU, before and after ----------------------------------------------------------


@contextmanager
def fresh_database(name: str, src: Path | None) -> Iterator[str]:
    server = server_url()
    asyncio.run(_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    asyncio.run(_admin(server, f'CREATE DATABASE "{name}"'))
    url = _with_db(server, name)
    try:
        cli(url, "migrate", src=src)
        yield url
    finally:
        asyncio.run(_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


class BackendCpu:
    """CPU seconds of the Postgres backends serving database `name` (from /proc: the last
    reading of each, taken every 0.1 s; a backend's last tenth of a second may be missed)."""

    def __init__(self, name: str) -> None:
        self.name = name.encode()
        self.seen: dict[int, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run)
        self.tick = os.sysconf("SC_CLK_TCK")

    def _sample(self) -> None:
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmdline = f.read()
                if not cmdline.startswith(b"postgres: ") or self.name not in cmdline:
                    continue
                with open(f"/proc/{pid}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            # utime and stime: fields 14 and 15 of stat, 12 and 13 after the command
            self.seen[int(pid)] = (int(fields[11]) + int(fields[12])) / self.tick

    def _run(self) -> None:
        while not self.stop.wait(0.1):
            self._sample()

    def __enter__(self) -> BackendCpu:
        self._sample()
        self.start = dict(self.seen)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()

    @property
    def seconds(self) -> float:
        return sum(v - self.start.get(pid, 0.0) for pid, v in self.seen.items())


HAS_TRACKED_KEYS = (
    "SELECT EXISTS (SELECT 1 FROM information_schema.columns"
    " WHERE table_name = 'accounts' AND column_name = 'tracked_metadata_keys')"
)
TRACKED_KEYS = "SELECT DISTINCT tracked_metadata_keys FROM accounts"


def ingest_once(
    variant: str, src: Path | None, path: Path, run: int, prepare: str | None = None
) -> dict[str, Any]:
    """`perf-metrics ingest` of `path` into a fresh database of seeded accounts (`prepare`: SQL
    run on them first), with its CPU."""
    name = f"perf_metrics_bench_zones_{run}"
    with fresh_database(name, src) as url:
        cli(url, "seed", "--accounts", str(ACCOUNTS), "--calls", "0", "--seed", str(SEED), src=src)
        if variant == "head_utc":
            asyncio.run(_admin(url, "UPDATE accounts SET timezone = 'UTC'"))
        if prepare is not None:
            asyncio.run(_admin(url, prepare))
        zones = (
            len(fetch(url, "SELECT DISTINCT timezone FROM accounts")) if variant != "before" else 1
        )
        # The metadata keys the accounts track (None before migration 0009 added them).
        tracked = (
            [list(r[0]) for r in fetch(url, TRACKED_KEYS)]
            if fetch(url, HAS_TRACKED_KEYS)[0][0]
            else None
        )
        asyncio.run(_admin(url, "CHECKPOINT"))
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        with CpuMeter() as cpu, BackendCpu(name) as backends:
            started = time.perf_counter()
            out = json.loads(cli(url, "ingest", str(path), src=src).stdout)
            seconds = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        client_s = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
        calls = out["inserted"]
        machine_us = cpu.per_call_us(calls)
        return {
            "variant": variant,
            "zones": zones,
            "calls": calls,
            "calls_per_s": round(calls / seconds),
            "cpu_us_per_call": None if machine_us is None else round(machine_us, 1),
            "cli_and_backends_cpu_us_per_call": round(
                (client_s + backends.seconds) / calls * 1e6, 1
            ),
            "cli_cpu_us_per_call": round(client_s / calls * 1e6, 1),
            "tracked_metadata_keys": tracked,
        }


def ingest_part(before: str, rounds: int, calls: int) -> dict[str, Any]:
    path = jsonl(calls, SEED)  # bench/ingest.py's file: 1,000 accounts, 90 days
    runs: list[dict[str, Any]] = []
    with worktree(before) as old:
        variants: list[tuple[str, Path | None]] = [
            ("before", old / "src"),
            ("head", None),
            ("head_utc", None),
        ]
        for r in range(rounds):
            for variant, src in variants if r % 2 == 0 else variants[::-1]:
                result = ingest_once(variant, src, path, len(runs))
                print(f"ingest {variant}: {result}", file=sys.stderr)
                runs.append(result)
    summary: dict[str, Any] = {}
    for variant in ("before", "head", "head_utc"):
        mine = [r for r in runs if r["variant"] == variant]
        for field in ("cpu_us_per_call", "cli_and_backends_cpu_us_per_call", "calls_per_s"):
            values = [r[field] for r in mine if r[field] is not None]
            summary.setdefault(variant, {})[field] = (
                round(sum(values) / len(values), 1) if values else None
            )
    for variant in ("head", "head_utc"):
        for field in ("cpu_us_per_call", "cli_and_backends_cpu_us_per_call"):
            old, new = summary["before"][field], summary[variant][field]
            if old and new:
                summary[variant][f"{field}_vs_before"] = round(new / old, 3)
    return {"before_commit": before, "file_calls": calls, "rounds": rounds, "runs": runs, **summary}


# --- results ---------------------------------------------------------------------------


def table(result: dict[str, Any]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = [("measure", "value", "target", "met")]
    read = result.get("read")
    if read:
        for endpoint, r in read["endpoints"].items():
            utc = r["UTC"]
            for zone in ZONES[1:]:
                z = r[zone]
                ratio = r[f"ratio_p95_{zone}"]
                rows.append(
                    (
                        f"{endpoint} p50/p95/p99 ms, {zone} vs UTC",
                        f"{z['p50']}/{z['p95']}/{z['p99']} vs {utc['p50']}/{utc['p95']}/"
                        f"{utc['p99']} (p95 x{ratio})",
                        "p95 within 10%",
                        "yes" if ratio <= 1.10 else "NO",
                    )
                )
        for c in read["zone_changes"]:
            rows.append(
                (
                    f"zone change {c['previous_timezone']} -> {c['timezone']}, no ingest",
                    f"{c['wall_s']} s ({c['calls']:,} calls; vacuum after {c['vacuum_s']} s)",
                    "< 15 s",
                    "yes" if c["wall_s"] < 15 else "NO",
                )
            )
    rezone = result.get("rezone")
    if rezone:
        for c in rezone["changes"]:
            rows.append(
                (
                    f"zone change {c['previous_timezone']} -> {c['timezone']}, during ingest",
                    f"{c['wall_s']} s ({c['calls']:,} calls, {c['queued_meanwhile']:,} "
                    "queued meanwhile)",
                    "< 15 s",
                    "yes" if c["wall_s"] < 15 else "NO",
                )
            )
            rows.append(
                (
                    "ingest of other accounts during it vs before (calls/s)",
                    f"{c['ingest_calls_per_s_during']:,} vs {c['ingest_calls_per_s_before']:,} "
                    f"(x{c['ingest_during_vs_before']})",
                    "at least x0.5",
                    "yes" if c["ingest_during_vs_before"] >= 0.5 else "NO",
                )
            )
        v = rezone["verify"]
        rows.append(
            (
                "rollups verify --account (after the queue drained)",
                f"exit {v['exit_code']} in {v['seconds']} s",
                "ok",
                "yes" if v["ok"] else "NO",
            )
        )
    explain = result.get("explain")
    if explain:

        def execution(plan: list[str]) -> str:
            return next((x.split(":")[1].strip() for x in plan if "Execution Time" in x), "?")

        rows.append(
            (
                f"one recount step, {explain['month']} ({explain['month_calls']:,} calls of "
                f"{explain['steps']} steps): EXPLAIN ANALYZE of RECOUNT_STEP; its scan alone",
                f"{execution(explain['recount_plan'])}; {execution(explain['scan_plan'])}",
                "",
                "",
            )
        )
    ingest = result.get("ingest")
    if ingest:
        before = ingest["before_commit"]
        for variant, label in (("head", "seeded zones"), ("head_utc", "all UTC")):
            s, b = ingest[variant], ingest["before"]
            rows.append(
                (
                    f"perf-metrics ingest CPU µs/call, this commit ({label}) vs {before}",
                    f"{s['cpu_us_per_call']} vs {b['cpu_us_per_call']} "
                    f"(x{s.get('cpu_us_per_call_vs_before')}); CLI + its backends "
                    f"{s['cli_and_backends_cpu_us_per_call']} vs "
                    f"{b['cli_and_backends_cpu_us_per_call']}",
                    "within 10%",
                    "yes" if (s.get("cpu_us_per_call_vs_before") or 9) <= 1.10 else "NO",
                )
            )
            rows.append(
                (
                    f"perf-metrics ingest calls/s, this commit ({label}) vs {before}",
                    f"{s['calls_per_s']:,.0f} vs {b['calls_per_s']:,.0f}",
                    "",
                    "",
                )
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=10_000_000)
    parser.add_argument("--requests", type=int, default=1000, help="per endpoint and zone")
    parser.add_argument("--rounds", type=int, default=5, help="visits of each zone (read)")
    parser.add_argument("--parts", default="read,rezone,ingest")
    parser.add_argument("--before", default=BEFORE, help="the commit ingest is compared with")
    parser.add_argument("--ingest-rounds", type=int, default=2)
    parser.add_argument("--ingest-calls", type=int, default=1_000_000)
    parser.add_argument(
        "--rezone-zones",
        default="",
        help="the changes made during ingest (default: to America/New_York, then back)",
    )
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    info = machine()
    previous = Path(ROOT / "bench" / "results" / "zones.json")
    result: dict[str, Any] = {}
    if previous.exists() and not parts >= {"read", "rezone", "ingest"}:
        # A partial run keeps the other parts' last numbers.
        old = json.loads(previous.read_text())
        result = {k: v for k, v in old.items() if k in ("read", "rezone", "ingest", "explain")}
    if parts & {"read", "rezone", "explain"}:
        url, _ = ensure(args.size)
        run_cli(url, "migrate")  # a call log built before migration 0007
        account_id, account_calls = asyncio.run(pick_accounts(url))["largest"]
        run_cli(url, "accounts", "update", account_id, "--tier", "enterprise")
        result["calls"] = args.size
        result["account_id"] = account_id
        result["account_calls_live"] = account_calls
        result["account_calls"] = int(
            fetch(url, "SELECT count(*) FROM calls WHERE account_id = $1", account_id)[0][0]
        )
        if "read" in parts:
            key = run_cli(url, "keys", "create", "--account", account_id)["key"]
            result["read"] = read_part(url, account_id, key, args.requests, args.rounds)
        if "rezone" in parts:
            # Its ingest adds calls: on a copy, so that the shared call log keeps its count
            # (datasets.ensure rebuilds a log whose count is off).
            with cloned(url) as copy:
                start_zone = fetch(copy, "SELECT timezone FROM accounts WHERE id = $1", account_id)
                away = (
                    "Asia/Kolkata" if start_zone[0][0] == "America/New_York" else "America/New_York"
                )
                zones = (
                    args.rezone_zones.split(",") if args.rezone_zones else [away, start_zone[0][0]]
                )
                result["rezone"] = rezone_part(
                    copy, account_id, result["account_calls"], tuple(zones), before_s=15
                )
        if "explain" in parts:
            result["explain"] = explain_part(url, account_id)
    if "ingest" in parts:
        result["ingest"] = ingest_part(args.before, args.ingest_rounds, args.ingest_calls)
    result["commands"] = " ".join(["python", "bench/zones.py", *sys.argv[1:]])
    print(write_results("zones", result, table(result), info))


if __name__ == "__main__":
    main()
