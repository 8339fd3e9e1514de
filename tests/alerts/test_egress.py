"""The SSRF guard (SPEC §11): which addresses a webhook may go to, and that the connection goes
to the address that was checked."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from perf_metrics.webhooks.egress import (
    RefusedDestination,
    Sender,
    check_url,
    parse_target,
    refusal,
    retry_after_seconds,
)
from tests.receiver import Answer, running_receiver


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("100.64.0.1", "CGNAT"),
        ("100.127.255.254", "CGNAT"),
        ("fc00::1", "unique-local"),
        ("fd12:3456::1", "unique-local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 (an address refused, not bound)
        ("::", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("192.0.2.10", "special-purpose"),  # TEST-NET-1
        ("198.18.0.1", "special-purpose"),  # benchmarking
        ("192.0.0.100", "special-purpose"),  # IETF protocol assignments
        ("2001:db8::1", "special-purpose"),  # documentation
        ("2001:0:4136:e378::1", "special-purpose"),  # Teredo
        ("fec0::1", "site-local"),
        ("::ffff:127.0.0.1", "IPv4-mapped IPv6 address of a loopback"),
        ("::ffff:10.0.0.1", "IPv4-mapped IPv6 address of a private"),
        ("::ffff:169.254.169.254", "IPv4-mapped IPv6 address of a link-local"),
        # IPv6 forms that reach an IPv4 address through a gateway, or embed one
        ("64:ff9b::a9fe:a9fe", "NAT64"),  # 169.254.169.254 through NAT64
        ("64:ff9b:1::a00:1", "NAT64"),
        ("2002:a9fe:a9fe::1", "6to4 IPv6 address of a link-local"),
        ("2002:0a00:0001::1", "6to4 IPv6 address of a private"),
        ("::7f00:1", "IPv4-compatible"),
        ("::ffff:0:7f00:1", "IPv4-translated"),
    ],
)
def test_every_non_public_address_class_is_refused_by_name(address: str, reason: str) -> None:
    found = refusal(ipaddress.ip_address(address))
    assert found is not None and reason in found


@pytest.mark.parametrize(
    "address",
    ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8", "2002:0808:0808::1"],
)
def test_public_addresses_pass(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None


def test_loopback_only_with_the_development_switch() -> None:
    assert refusal(ipaddress.ip_address("127.0.0.1"), allow_loopback=True) is None
    assert refusal(ipaddress.ip_address("::1"), allow_loopback=True) is None
    # the switch opens loopback, nothing else
    assert refusal(ipaddress.ip_address("10.0.0.1"), allow_loopback=True) is not None
    assert refusal(ipaddress.ip_address("169.254.169.254"), allow_loopback=True) is not None


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://example.com/hook", "https"),
        ("ftp://example.com/hook", "https"),
        ("https://user:pw@example.com/hook", "user name or password"),
        ("https:///nohost", "no host"),
        ("https://example.com/hook#frag", "fragment"),
        ("https://example.com:99999/", "malformed"),
        ("https://example.com/" + "a" * 3000, "longer than"),
        ("https://example.com/a\x01b", "control characters"),
        ("https://example.com/a b", "spaces"),
        ("https://exa\x7fmple.com/", "control characters"),
    ],
)
def test_url_forms_refused(url: str, says: str) -> None:
    with pytest.raises(RefusedDestination, match=says):
        parse_target(url)


def resolving(table: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    async def resolver(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError("Name or service not known")
        return table[host]

    return resolver


async def test_a_host_resolving_to_a_private_address_is_refused_naming_it() -> None:
    resolver = resolving(
        {
            "internal.example": ["10.20.30.40"],
            "mixed.example": ["93.184.216.34", "192.168.0.7"],  # one bad address is enough
            "metadata.example": ["169.254.169.254"],
            "public.example": ["93.184.216.34", "2606:4700::6810:84e5"],
        }
    )
    # The reason, never the address: a refusal must not map the internal network.
    with pytest.raises(RefusedDestination, match="resolves to an address that is private") as e:
        await check_url("https://internal.example/h", resolver=resolver)
    assert "10.20.30.40" not in str(e.value)
    with pytest.raises(RefusedDestination, match="private") as e:
        await check_url("https://mixed.example/h", resolver=resolver)
    assert "192.168" not in str(e.value)
    with pytest.raises(RefusedDestination, match="link-local"):
        await check_url("https://metadata.example/h", resolver=resolver)
    with pytest.raises(RefusedDestination, match="does not resolve"):
        await check_url("https://nowhere.example/h", resolver=resolver)
    target = await check_url("https://public.example:8443/h?x=1", resolver=resolver)
    assert (target.host, target.port, target.path) == ("public.example", 8443, "/h?x=1")


async def test_literal_addresses_and_the_real_resolver() -> None:
    with pytest.raises(RefusedDestination, match=r"169\.254\.169\.254 is link-local"):
        await check_url("https://169.254.169.254/latest/meta-data")
    with pytest.raises(RefusedDestination, match="IPv4-mapped"):
        await check_url("https://[::ffff:7f00:1]/")
    # localhost resolves (system resolver) to loopback only
    with pytest.raises(RefusedDestination, match="loopback"):
        await check_url("https://localhost/")
    await check_url("http://localhost/", allow_loopback=True)
    with pytest.raises(RefusedDestination, match="http only to loopback"):
        await check_url("http://8.8.8.8/", allow_loopback=True)


async def test_the_connection_goes_to_the_checked_address_not_a_second_lookup() -> None:
    """A resolver that answers a loopback address the first time and a private one after (a
    rebinding attack) gets asked once per send: the request goes where the check said."""
    with running_receiver() as receiver:
        port = int(receiver.url.rsplit(":", 1)[1])
        answers = iter([["127.0.0.1"], ["10.9.9.9"], ["10.9.9.9"]])
        asked: list[str] = []

        async def rebinding(host: str, port_: int) -> list[str]:
            asked.append(host)
            return next(answers)

        sender = Sender(allow_loopback=True, resolver=rebinding)
        try:
            outcome = await sender.send(f"http://hooks.test:{port}/in", {"x-a": "1"}, b"{}")
            assert outcome.succeeded, outcome
            assert asked == ["hooks.test"]  # one lookup, and the request used its answer
            (got,) = receiver.received
            assert got.headers["host"] == f"hooks.test:{port}"  # the name, not the address
            assert got.path == "/in" and got.body == b"{}"
            # The next send resolves afresh, and is refused before connecting.
            refused = await sender.send(f"http://hooks.test:{port}/in", {}, b"{}")
            assert refused.status_code is None and "private" in (refused.error or "")
            assert len(receiver.received) == 1
        finally:
            await sender.close()


async def test_redirects_are_never_followed_to_an_internal_address() -> None:
    with running_receiver() as inside, running_receiver() as outside:
        outside.answer(Answer(302, {"location": f"{inside.url}/steal"}, b""))
        sender = Sender(allow_loopback=True)
        try:
            outcome = await sender.send(f"{outside.url}/hook", {}, b"{}")
        finally:
            await sender.close()
        assert outcome.status_code == 302 and not outcome.succeeded
        assert "redirects are not followed" in (outcome.error or "")
        assert inside.received == []


async def test_the_answer_is_read_at_most_64_kib_and_kept_at_2_kib() -> None:
    with running_receiver() as receiver:
        receiver.answer(Answer(500, {}, b"x" * (1 << 20)))
        sender = Sender(allow_loopback=True)
        try:
            outcome = await sender.send(receiver.url, {}, b"{}")
        finally:
            await sender.close()
        assert outcome.status_code == 500 and outcome.error == "HTTP 500"
        assert outcome.excerpt == "x" * 2048


def test_retry_after_forms() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    assert retry_after_seconds("120", now) == 120
    assert retry_after_seconds("Thu, 03 Dec 2026 12:10:00 GMT", now) == 600
    assert retry_after_seconds("soon", now) is None
    assert retry_after_seconds(None, now) is None


def test_an_idn_host_is_sent_in_its_ascii_form() -> None:
    target = parse_target("https://bücher.example/hook")
    assert target.host == "xn--bcher-kva.example"
    assert target.host_header == "xn--bcher-kva.example"


async def test_a_slow_resolver_is_refused_within_the_connect_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import perf_metrics.webhooks.egress as egress

    monkeypatch.setattr(egress, "CONNECT_TIMEOUT_S", 0.2)

    async def hanging(host: str, port: int) -> list[str]:
        await asyncio.sleep(30)
        return ["93.184.216.34"]

    with pytest.raises(RefusedDestination, match="timed out"):
        await check_url("https://slow.example/", resolver=hanging)


async def test_a_receiver_answering_nul_bytes_is_recorded_without_them() -> None:
    with running_receiver() as receiver:
        receiver.answer(Answer(200, {}, b"ok\x00\x00done"))
        sender = Sender(allow_loopback=True)
        try:
            outcome = await sender.send(receiver.url, {}, b"{}")
        finally:
            await sender.close()
    assert outcome.succeeded and outcome.excerpt == "okdone"


async def test_a_send_that_cannot_start_in_time_is_not_sent() -> None:
    import time

    with running_receiver() as receiver:
        sender = Sender(allow_loopback=True)
        try:
            assert await sender.send(receiver.url, {}, b"{}", start_by=time.monotonic() - 1) is None
        finally:
            await sender.close()
        assert receiver.received == []
