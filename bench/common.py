"""Shared benchmark plumbing: a scratch database, a served app, and result files."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "data"
RESULTS = ROOT / "bench" / "results"
DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def server_url() -> str:
    return (
        os.environ.get("BENCH_DATABASE_URL")
        or os.environ.get("TEST_DATABASE_URL")
        or DEFAULT_SERVER
    )


def _with_db(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    query = ""
    if "?" in url:
        query = "?" + url.split("?", 1)[1]
    return f"{base}/{name}{query}"


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextmanager
def scratch_database(keep: bool = False, name: str | None = None) -> Iterator[str]:
    """A new database on the benchmark server, migrated; dropped afterwards unless `keep`."""
    server = server_url()
    name = name or f"perf_metrics_bench_{secrets.token_hex(3)}"
    asyncio.run(_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    asyncio.run(_admin(server, f'CREATE DATABASE "{name}"'))
    url = _with_db(server, name)
    try:
        run_cli(url, "migrate")
        yield url
    finally:
        if not keep:
            asyncio.run(_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def cli_path() -> str:
    return str(Path(sys.executable).with_name("perf-metrics"))


def run_cli(database_url: str, *args: str) -> Any:
    proc = subprocess.run(
        [cli_path(), *args],
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout) if proc.stdout.strip() else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def served(database_url: str, workers: int = 1, **env: str) -> Iterator[str]:
    """`perf-metrics serve`, as the README starts it, on a free loopback port."""
    port = free_port()
    proc = subprocess.Popen(
        [cli_path(), "serve", "--port", str(port), "--workers", str(workers)],
        env={**os.environ, "DATABASE_URL": database_url, **env},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError("server did not start")
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def cpu_busy_seconds() -> float | None:
    """CPU time the whole machine has spent busy (all cores, every process), from
    /proc/stat; None where there is no /proc."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    ticks = [int(f) for f in fields]
    # user, nice, system, irq, softirq: not idle or iowait, nor steal (another VM's time) or
    # guest (already inside user)
    busy = ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6]
    return busy / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """Machine-wide busy CPU seconds over a `with` block: what a run costs in CPU, whoever
    spent it (client, server workers, Postgres backends, WAL writer)."""

    busy_s: float | None = None

    def __enter__(self) -> CpuMeter:
        self._start = cpu_busy_seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        end = cpu_busy_seconds()
        if self._start is not None and end is not None:
            self.busy_s = end - self._start

    def per_call_us(self, calls: int) -> float | None:
        return None if self.busy_s is None or not calls else self.busy_s / calls * 1e6


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()

    async def pg_version() -> str:
        conn = await asyncpg.connect(server_url())
        try:
            return str(await conn.fetchval("SHOW server_version"))
        finally:
            await conn.close()

    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit,
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "postgres": asyncio.run(pg_version()),
        "platform": platform.platform(),
    }


def write_results(
    name: str,
    results: dict[str, Any],
    table: list[tuple[str, ...]],
    machine_info: dict[str, Any] | None = None,
) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"machine": machine_info or machine(), **results}
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    m = payload["machine"]
    lines = [
        f"# {name} benchmark",
        "",
        f"{m['when']}, commit {m['commit']}, {m['cpus']} CPUs ({m['cpu']}), "
        f"Python {m['python']}, Postgres {m['postgres']}",
        "",
        "| " + " | ".join(table[0]) + " |",
        "|" + "---|" * len(table[0]),
        *("| " + " | ".join(row) + " |" for row in table[1:]),
        "",
    ]
    path = RESULTS / f"{name}.md"
    path.write_text("\n".join(lines))
    return path
