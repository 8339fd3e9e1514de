"""A real HTTP receiver on 127.0.0.1 for the webhook tests (and bench/alerts.py): it records
every request it gets and answers from a script (status, headers, body, delay), then 200."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    at: float  # time.monotonic() when its headers arrived


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    delay_s: float = 0.0


class Receiver:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.script: list[Answer] = []
        self.default = Answer()
        self._lock = threading.Lock()
        self.arrived = threading.Condition(self._lock)
        self.url = ""

    def answer(self, *answers: Answer) -> None:
        """Answer the next requests with these, in order (then `default`)."""
        with self._lock:
            self.script.extend(answers)

    def _next(self, request: Received) -> Answer:
        with self._lock:
            self.received.append(request)
            self.arrived.notify_all()
            return self.script.pop(0) if self.script else self.default

    def wait_for(self, n: int, timeout: float = 10.0) -> list[Received]:
        """Until at least `n` requests have arrived; all of them."""
        with self._lock:
            self.arrived.wait_for(lambda: len(self.received) >= n, timeout)
            return list(self.received)


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Its headers and body go out as two writes: with Nagle's algorithm on, the body waits
        # for the sender's delayed ACK of the headers (40 ms a request on Linux).
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            at = time.monotonic()
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            answer = receiver._next(Received(self.path, headers, body, at))
            if answer.delay_s:
                time.sleep(answer.delay_s)
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        do_GET = do_POST

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@contextmanager
def running_receiver() -> Iterator[Receiver]:
    """A receiver serving on a free port of 127.0.0.1 until the block ends."""
    receiver = Receiver()

    class Server(ThreadingHTTPServer):
        request_queue_size = 512  # the listen backlog: many senders connect at once

    server = Server(("127.0.0.1", 0), _handler(receiver))
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
