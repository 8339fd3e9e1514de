"""How `serve` and `demo` run uvicorn, and how they stop.

Every way of stopping them ends what they started (SIGINT, SIGTERM from a process manager or
`timeout`, SIGHUP from a closed terminal):

- SIGTERM and SIGINT: uvicorn drains in-flight requests, then re-raises the signal it caught;
  our SIGTERM handler turns that into `SystemExit(0)` (a stop that was asked for is a success,
  as uvicorn's multi-worker supervisor also reports it), so every `finally` runs on the way out
  (the demo's embedded Postgres is stopped there). Python's default SIGTERM action would end
  the process on the spot and leave the embedded Postgres running in the background. Once
  stopping, further SIGINT/SIGTERM/SIGHUP are ignored, so a second signal cannot cut the
  clean-up short.
- SIGHUP stops them the same way. A single uvicorn server does not handle it at all (the
  default action kills the process mid-request), and uvicorn's multi-worker supervisor takes it
  as "restart the workers", which would keep a server running after its terminal closed.
  Rolling restarts belong to the process manager, which starts new processes. (A SIGHUP sent
  to the whole process group, as a closing terminal does, also reaches uvicorn's workers, which
  take the default action: their in-flight requests are cut. SIGTERM to the master drains.)
- `HeldSignals` defers SIGTERM/SIGHUP over a stretch that must not be interrupted halfway
  (starting the embedded Postgres): one that arrives meanwhile is acted on when it ends.
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
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _terminate(signum: int, frame: FrameType | None) -> None:
    for sig in STOP_SIGNALS:  # stopping now: nothing may interrupt the clean-up
        signal.signal(sig, signal.SIG_IGN)
    raise SystemExit(0)


def _hang_up(signum: int, frame: FrameType | None) -> None:
    signal.raise_signal(signal.SIGTERM)  # whoever handles SIGTERM now: uvicorn, or _terminate


def stop_cleanly_on_signals() -> None:
    """Install the handlers above (main thread only). uvicorn replaces them while it serves
    and puts them back afterwards."""
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _hang_up)


class HeldSignals:
    """SIGTERM and SIGHUP wait from here until `release()`, which then stops the process as
    above if one arrived: call it where the clean-up that must follow is already in force."""

    def __init__(self) -> None:
        self.arrived: list[int] = []
        self._previous = {
            sig: signal.signal(sig, lambda s, f: self.arrived.append(s)) for sig in STOP_SIGNALS[1:]
        }

    def release(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        if self.arrived:
            _terminate(self.arrived[0], None)


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
