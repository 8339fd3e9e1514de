"""How `serve` and `demo` run uvicorn, and how they stop.

Every way of stopping them ends what they started (SIGINT, SIGTERM from a process manager or
`timeout`, SIGHUP from a closed terminal):

- SIGTERM and SIGINT: uvicorn drains in-flight requests, then re-raises the signal it caught;
  our SIGTERM handler turns that into `SystemExit(143)`, so every `finally` runs on the way out
  (the demo's embedded Postgres is stopped there). Python's default SIGTERM action would end
  the process on the spot and leave the embedded Postgres running in the background.
- SIGHUP stops them the same way. A single uvicorn server does not handle it at all (the
  default action kills the process mid-request), and uvicorn's multi-worker supervisor takes it
  as "restart the workers", which would keep a server running after its terminal closed.
  Rolling restarts belong to the process manager, which starts new processes.
"""

from __future__ import annotations

import contextlib
import logging
import signal
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess

log = logging.getLogger("perf_metrics.serving")
TERMINATED = 128 + signal.SIGTERM  # the exit status a shell reports for SIGTERM


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(TERMINATED)


def _hang_up(signum: int, frame: FrameType | None) -> None:
    signal.raise_signal(signal.SIGTERM)  # whoever handles SIGTERM now: uvicorn, or _terminate


def stop_cleanly_on_signals() -> None:
    """Install the handlers above (main thread only). uvicorn replaces them while it serves
    and puts them back afterwards."""
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _hang_up)


class _Workers(Multiprocess):
    """uvicorn's supervisor of several workers, with SIGHUP meaning stop, like SIGTERM."""

    def handle_hup(self) -> None:
        log.info("Received SIGHUP, exiting.")
        self.should_exit.set()


def run_server(app: Any, **options: Any) -> None:
    """`uvicorn.run(app, **options)`, stopping as described above. With `workers` > 1, `app`
    must be an import string (each worker imports it)."""
    stop_cleanly_on_signals()
    config = uvicorn.Config(app, **options)
    if config.workers > 1:
        _Workers(config, sockets=[config.bind_socket()]).run()
        return
    server = uvicorn.Server(config)
    with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C: uvicorn stopped draining
        server.run()
    if not server.started:
        raise SystemExit(3)  # uvicorn's own status when the server could not start
