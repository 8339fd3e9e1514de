"""Standard Webhooks signatures (SPEC §11), checked two ways: with the spec's own library's
verifier, and with a few lines of `hmac` here, so that a bug both share cannot hide."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from perf_metrics.webhooks import signing


def by_hand(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    """The spec's signature, from its text: base64 HMAC-SHA256 of id.timestamp.body."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def test_a_secret_is_32_random_bytes_in_base64() -> None:
    a, b = signing.new_secret(), signing.new_secret()
    assert a.startswith("whsec_") and a != b
    assert len(base64.b64decode(a.removeprefix("whsec_"))) == 32


def test_signatures_verify_by_the_library_and_by_hand() -> None:
    secret = signing.new_secret()
    body = b'{"type":"alert.firing","timestamp":"2026-12-03T10:00:00Z","data":{"v":1.5}}'
    now = int(time.time())
    headers = signing.headers([secret], "msg_abc", now, body)
    assert headers["webhook-id"] == "msg_abc"
    assert headers["webhook-timestamp"] == str(now)
    assert headers["webhook-signature"] == by_hand(secret, "msg_abc", str(now), body)
    Webhook(secret).verify(body, headers)


def test_tampered_stale_or_foreign_deliveries_fail() -> None:
    secret, other = signing.new_secret(), signing.new_secret()
    body = b'{"type":"alert.firing","data":{}}'
    now = int(time.time())
    headers = signing.headers([secret], "msg_1", now, body)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace(b"firing", b"resolved"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, {**headers, "webhook-id": "msg_2"})
    stale = signing.headers([secret], "msg_1", now - 600, body)  # 10 minutes old
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(secret).verify(body, stale)
    assert by_hand(other, "msg_1", str(now), body) != headers["webhook-signature"]


def test_during_a_rotation_both_secrets_sign() -> None:
    new, old = signing.new_secret(), signing.new_secret()
    body = b'{"type":"webhook.test","data":{}}'
    now = int(time.time())
    headers = signing.headers([new, old], "msg_r", now, body)
    first, second = headers["webhook-signature"].split(" ")
    assert first == by_hand(new, "msg_r", str(now), body)
    assert second == by_hand(old, "msg_r", str(now), body)
    Webhook(new).verify(body, headers)
    Webhook(old).verify(body, headers)
