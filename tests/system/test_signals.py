"""Every way of stopping `serve` and `demo` ends what they started: a real process, a real
signal, and no child (uvicorn workers, the embedded Postgres) left behind."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.servers import free_port, wait_until_healthy

pytestmark = pytest.mark.slow
STOPS = [signal.SIGTERM, signal.SIGHUP, signal.SIGINT]


def _children(pid: int) -> set[int]:
    """Every descendant of `pid`, from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _processes_mentioning(text: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if text in cmdline and _alive(int(entry.name)):
                pids.append(int(entry.name))
    return pids


def _stop(proc: subprocess.Popen[bytes], sig: signal.Signals) -> int:
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=40)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"still running 40 s after {sig.name}") from None


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("sig", STOPS, ids=lambda s: s.name)
def test_serve_stops_with_its_workers(database_url: str, workers: int, sig: signal.Signals) -> None:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url}
    command = [sys.executable, "-m", "perf_metrics.cli", "serve", "--port", str(port)]
    proc = subprocess.Popen([*command, "--workers", str(workers)], env=env)
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}", proc, 30)
        children = _children(proc.pid)
        assert len(children) >= (2 if workers == 2 else 0)
        # A stop that was asked for is a success; killed by the signal's default action, the
        # status would be -signal.
        assert _stop(proc, sig) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    time.sleep(0.5)
    assert [pid for pid in children if _alive(pid)] == []
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)


@pytest.mark.skipif(
    importlib.util.find_spec("pgserver") is None,
    reason="needs the embedded Postgres: pip install -e '.[dev]' (or '.[demo]')",
)
def test_demo_stops_its_embedded_postgres_whatever_stops_it(tmp_path: Path) -> None:
    home = tmp_path / "demo-home"
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(PERF_METRICS_HOME=str(home), PERF_METRICS_DEMO_CALLS="3000")
    for sig in STOPS:  # the first run seeds; the others reuse the data
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "perf_metrics.cli", "demo", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_until_healthy(f"http://127.0.0.1:{port}", proc, 180)
            assert _processes_mentioning(str(home)), "the embedded Postgres should be running"
            assert _stop(proc, sig) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
        deadline = time.monotonic() + 10
        while _processes_mentioning(str(home)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _processes_mentioning(str(home)) == [], f"Postgres left running after {sig.name}"
