"""Where a webhook may go, and the one way it is sent (SPEC §11): the SSRF guard.

A customer's URL must never turn our servers against a network they can reach and the customer
cannot (the cloud's metadata service at 169.254.169.254, a database on 10.0.0.5, our own
loopback). So a URL is `https`, without userinfo, and its host must resolve only to public
addresses: every address it resolves to is checked (loopback, RFC 1918, link-local, CGNAT,
unique-local, multicast, reserved, documentation and other non-global ranges, and the
IPv4-mapped IPv6 forms of all of them). The check runs at creation and again at every send,
and the connection goes to the address that was checked: the request's URL holds the address,
and TLS checks the certificate against the host name (SNI), so a DNS answer that changes
between check and connect (rebinding) cannot redirect it. Redirects are never followed.

`WEBHOOKS_ALLOW_LOOPBACK=true` (development and tests only) also admits 127.0.0.0/8 and ::1,
over `http` too.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import overload
from urllib.parse import urlsplit, urlunsplit

import httpx

CONNECT_TIMEOUT_S = 5.0
TOTAL_TIMEOUT_S = 15.0
READ_CAP = 64 * 1024  # of a response's body, read at most
EXCERPT_BYTES = 2048  # of which the log keeps this much
MAX_URL_LENGTH = 2048

log = logging.getLogger("perf_metrics.webhooks")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

# Non-global ranges by the name a refusal gives them, checked in this order (the first that
# holds names the refusal). ipaddress's `is_global` is the final word for the rest.
_NAMED_RANGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("unspecified", ("0.0.0.0/8", "::/128")),
    ("loopback", ("127.0.0.0/8", "::1/128")),
    ("link-local (the cloud metadata address among them)", ("169.254.0.0/16", "fe80::/10")),
    ("private (RFC 1918)", ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")),
    ("shared address space (CGNAT, RFC 6598)", ("100.64.0.0/10",)),
    ("unique-local (fc00::/7)", ("fc00::/7",)),
    ("site-local (fec0::/10)", ("fec0::/10",)),
    ("multicast", ("224.0.0.0/4", "ff00::/8")),
    ("reserved", ("240.0.0.0/4", "255.255.255.255/32")),
    # IPv6 forms that carry an IPv4 address a gateway may forward to: NAT64 reaches any IPv4
    # address (an internal one too), IPv4-compatible and IPv4-translated are never public.
    ("NAT64 (RFC 6052, 8215)", ("64:ff9b::/96", "64:ff9b:1::/48")),
    ("IPv4-compatible or IPv4-translated IPv6", ("::/96", "::ffff:0:0:0/96")),
    (
        "special-purpose (protocol assignments, documentation, benchmarking)",
        (
            "192.0.0.0/24",
            "192.0.2.0/24",
            "198.18.0.0/15",
            "198.51.100.0/24",
            "203.0.113.0/24",
            "2001::/23",  # Teredo and the IETF's other special assignments
            "2001:db8::/32",
        ),
    ),
)
_RANGES = tuple(
    (name, tuple(ipaddress.ip_network(n) for n in nets)) for name, nets in _NAMED_RANGES
)
_LOOPBACK = _RANGES[1][1]
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")


def _ms_since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


class RefusedDestination(ValueError):
    """A URL we will not send to, and why (the message names the reason)."""


def refusal(address: IPAddress, *, allow_loopback: bool = False) -> str | None:
    """Why `address` may not be connected to, or None if it may."""
    if isinstance(address, ipaddress.IPv6Address):
        for form, embedded in (
            ("IPv4-mapped", address.ipv4_mapped),
            ("6to4", address.sixtofour if address in _SIX_TO_FOUR else None),
        ):
            if embedded is not None:
                reason = refusal(embedded, allow_loopback=allow_loopback)
                return None if reason is None else f"a {form} IPv6 address of a {reason} address"
    if allow_loopback and any(address in net for net in _LOOPBACK):
        return None
    for name, nets in _RANGES:
        if any(address.version == net.version and address in net for net in nets):
            return name
    if not address.is_global:
        return "not a public address (documentation, benchmarking or other special use)"
    return None


@dataclass(frozen=True, slots=True)
class Target:
    """A URL's parts, checked for form (not yet for where its host resolves)."""

    url: str
    scheme: str
    host: str  # as written (a name, or an address without brackets)
    port: int
    path: str  # with the query

    def address_url(self, address: str) -> str:
        """The same URL, with the checked address in place of the host name."""
        literal = f"[{address}]" if ":" in address else address
        return urlunsplit((self.scheme, f"{literal}:{self.port}", self.path, "", ""))

    @property
    def host_header(self) -> str:
        default = {"https": 443, "http": 80}[self.scheme]
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def parse_target(url: str, *, allow_loopback: bool = False) -> Target:
    """The URL's parts, or RefusedDestination saying what is wrong with its form."""
    if len(url) > MAX_URL_LENGTH:
        raise RefusedDestination(f"the URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise RefusedDestination(f"the URL is malformed ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise RefusedDestination("the URL must be https://")
    if scheme == "http" and not allow_loopback:
        raise RefusedDestination("the URL must be https:// (http is not allowed)")
    if parts.username is not None or parts.password is not None:
        raise RefusedDestination("the URL must not hold a user name or password")
    if not parts.hostname:
        raise RefusedDestination("the URL has no host")
    if parts.fragment:
        raise RefusedDestination("the URL must not have a #fragment")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise RefusedDestination("the URL must not hold spaces or control characters")
    try:  # as the request will be built: an IDN host in its ASCII (punycode) form
        host = httpx.URL(url).raw_host.decode("ascii")
    except (httpx.InvalidURL, UnicodeError) as exc:
        raise RefusedDestination(f"the URL is malformed ({exc})") from None
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(
        url=url,
        scheme=scheme,
        host=host.strip("[]"),
        port=port or (443 if scheme == "https" else 80),
        path=path,
    )


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives `host` (A and AAAA)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def checked_address(
    target: Target, *, allow_loopback: bool = False, resolver: Resolver = system_resolver
) -> str:
    """The address to connect to: the host's first, once every one it resolves to has passed.
    RefusedDestination names the first that fails, or says it does not resolve."""
    try:
        literal: IPAddress | None = ipaddress.ip_address(target.host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [str(literal)]
    else:
        try:
            addresses = await resolver(target.host, target.port)
        except (OSError, UnicodeError) as exc:
            raise RefusedDestination(f"the host {target.host} does not resolve ({exc})") from None
        if not addresses:
            raise RefusedDestination(f"the host {target.host} does not resolve")
    for raw in addresses:
        address = ipaddress.ip_address(raw.split("%", 1)[0])  # a scoped IPv6's zone dropped
        reason = refusal(address, allow_loopback=allow_loopback)
        if reason is not None:
            # Not which address: a refusal must not map the internal network for the caller.
            where = "is" if literal is not None else "resolves to an address that is"
            raise RefusedDestination(f"{target.host} {where} {reason}")
        if target.scheme == "http" and not any(address in net for net in _LOOPBACK):
            raise RefusedDestination("the URL must be https:// (http only to loopback)")
    return str(ipaddress.ip_address(addresses[0].split("%", 1)[0]))


async def check_url(
    url: str, *, allow_loopback: bool = False, resolver: Resolver = system_resolver
) -> Target:
    """`url` checked for form and for where it resolves now (an endpoint's creation)."""
    target = parse_target(url, allow_loopback=allow_loopback)
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            await checked_address(target, allow_loopback=allow_loopback, resolver=resolver)
    except TimeoutError:
        raise RefusedDestination(f"resolving {target.host} timed out") from None
    return target


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one send ended: the receiver's status (None if none came), or the error."""

    status_code: int | None
    error: str | None
    latency_ms: int
    excerpt: str | None = None
    retry_after_s: float | None = None  # the receiver's Retry-After, in seconds from now

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """Retry-After as seconds from `now`: delta-seconds or an HTTP date; None if absent or
    unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


class Sender:
    """Sends a webhook to a checked address: no redirects, the SPEC's timeouts, at most
    READ_CAP of the answer read. One httpx client per host name: connections are pooled by
    address, and one made with a host's name (SNI) must never carry another host's request."""

    MAX_CLIENTS = 256
    # Requests in flight to one host at once: a receiver is often a small service, and
    # httpcore's pool costs CPU per request in proportion to its connections (at 64 to one
    # host, 13 ms of CPU a send; bench/results/alerts.md).
    PER_HOST = 8

    def __init__(
        self,
        *,
        allow_loopback: bool = False,
        resolver: Resolver = system_resolver,
        verify: bool | str = True,
    ) -> None:
        self.allow_loopback = allow_loopback
        self.resolver = resolver
        self.verify = verify
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._gates: dict[str, asyncio.Semaphore] = {}

    def _client(self, host: str) -> httpx.AsyncClient:
        client = self._clients.pop(host, None)
        if client is None:
            client = httpx.AsyncClient(
                follow_redirects=False,
                timeout=httpx.Timeout(TOTAL_TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
                verify=self.verify,
                trust_env=False,  # no proxy from the environment: we connect where we checked
                limits=httpx.Limits(
                    max_connections=self.PER_HOST, max_keepalive_connections=self.PER_HOST
                ),
            )
            if len(self._clients) >= self.MAX_CLIENTS:  # the least recently used goes
                oldest = next(iter(self._clients))
                self._gates.pop(oldest, None)
                asyncio.get_running_loop().create_task(self._clients.pop(oldest).aclose())
        self._clients[host] = client  # most recently used last
        return client

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    @overload
    async def send(self, url: str, headers: dict[str, str], body: bytes) -> Outcome: ...

    @overload
    async def send(
        self, url: str, headers: dict[str, str], body: bytes, *, start_by: float
    ) -> Outcome | None: ...

    async def send(
        self,
        url: str,
        headers: dict[str, str],
        body: bytes,
        *,
        start_by: float | None = None,
    ) -> Outcome | None:
        """One POST of `body`, and how it ended; never raises. None when it could not start
        by `start_by` (time.monotonic(): a claim's lease would not last the attempt)."""
        try:
            target = parse_target(url, allow_loopback=self.allow_loopback)
        except RefusedDestination as exc:
            return Outcome(None, f"refused: {exc}", 0)
        async with self._gates.setdefault(target.host, asyncio.Semaphore(self.PER_HOST)):
            if start_by is not None and time.monotonic() > start_by:
                return None
            started = time.perf_counter()
            try:
                async with asyncio.timeout(TOTAL_TIMEOUT_S):  # resolving included
                    return await self._send(target, headers, body, started)
            except TimeoutError:
                return Outcome(
                    None, f"timeout: no answer within {TOTAL_TIMEOUT_S:g} s", _ms_since(started)
                )
            except Exception as exc:  # one odd send must never end the others' round
                log.exception("webhook send to %s failed", target.host)
                return Outcome(None, f"error: {type(exc).__name__}", _ms_since(started))

    async def _send(
        self, target: Target, headers: dict[str, str], body: bytes, started: float
    ) -> Outcome:
        try:
            address = await asyncio.wait_for(
                checked_address(target, allow_loopback=self.allow_loopback, resolver=self.resolver),
                CONNECT_TIMEOUT_S,
            )
        except RefusedDestination as exc:
            return Outcome(None, f"refused: {exc}", _ms_since(started))
        except TimeoutError:
            return Outcome(None, "refused: resolving the host timed out", _ms_since(started))
        client = self._client(target.host)
        request = client.build_request(
            "POST",
            target.address_url(address),
            headers={
                **headers,
                "host": target.host_header,
                "content-type": "application/json",
                "user-agent": "perf-metrics-webhooks/1",
            },
            content=body,
            # TLS to the address, with the host's name for SNI and the certificate check.
            extensions={"sni_hostname": target.host} if target.scheme == "https" else {},
        )
        try:
            response = await client.send(request, stream=True)
            try:
                read = bytearray()
                async for chunk in response.aiter_raw():
                    read += chunk
                    if len(read) >= READ_CAP:
                        break
            finally:
                await response.aclose()
        except httpx.TimeoutException as exc:
            return Outcome(None, f"timeout: {type(exc).__name__}", _ms_since(started))
        except httpx.HTTPError as exc:
            return Outcome(
                None, f"connection: {type(exc).__name__}: {exc}"[:500], _ms_since(started)
            )
        status = response.status_code
        # (text columns refuse NUL)
        excerpt = bytes(read[:EXCERPT_BYTES]).decode("utf-8", "replace").replace("\x00", "")
        error = None
        if not 200 <= status < 300:
            error = f"HTTP {status}"
            if 300 <= status < 400:
                error += " (redirects are not followed)"
        return Outcome(
            status,
            error,
            _ms_since(started),
            excerpt,
            retry_after_seconds(response.headers.get("retry-after"), datetime.now(UTC)),
        )
