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

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def live_server(database_url: str, **env: str) -> Iterator[str]:
    """`perf_metrics.main:app` under uvicorn; yields its base URL and stops it afterwards.
    `env` adds environment variables (RATE_LIMIT_ENABLED defaults to false)."""
    port = free_port()
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "RATE_LIMIT_ENABLED": "false",
        "INGEST_WAITS_FOR_FOLD": "true",
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
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start (exit status {proc.poll()})")
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
