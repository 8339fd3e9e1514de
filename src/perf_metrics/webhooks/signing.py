"""Standard Webhooks v1 signing (SPEC §11), with the spec's own Python library.

`webhook-signature` is `v1,` + base64 HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}`
under the endpoint's secret; during a rotation's overlap, one such signature per secret,
space-separated. A secret is `whsec_` + base64 of 32 random bytes, unique per endpoint.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"  # noqa: S105 (the format's prefix, not a secret)
SECRET_BYTES = 32


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def signature(secrets_: Iterable[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header: one `v1,...` per secret, in the order given."""
    moment = datetime.fromtimestamp(timestamp, UTC)  # the library reads it as UTC
    text = body.decode()
    return " ".join(Webhook(s).sign(msg_id, moment, text) for s in secrets_)


def headers(secrets_: Iterable[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers of one attempt."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secrets_, msg_id, timestamp, body),
    }
