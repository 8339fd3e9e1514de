"""A real uvicorn process serving the app on a free loopback port, for tests that need real
HTTP (a browser, a generated client, the published snippets run as a user would)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_healthy(base: str, proc: subprocess.Popen[Any], seconds: float = 30) -> None:
    """Until `base` answers GET /healthz with 200; fails if `proc` exits first or time runs out."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"exited early with {proc.returncode}"
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{base} did not answer within {seconds} s")


@contextmanager
def live_server(database_url: str, **env: str) -> Iterator[str]:
    """`perf_metrics.main:app` under uvicorn; yields its base URL and stops it afterwards.
    `env` adds environment variables (RATE_LIMIT_ENABLED and RUN_WORKER default to false)."""
    port = free_port()
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "RATE_LIMIT_ENABLED": "false",
        "INGEST_WAITS_FOR_FOLD": "true",
        "RUN_WORKER": "false",
        **env,
    }
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "uvicorn", "perf_metrics.main:app"),
            *("--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"),
        ],
        env=environment,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base, proc)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
