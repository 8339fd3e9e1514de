"""API keys: format, generation and hashing (SPEC §3). No database, no web framework: the CLI's
key administration and the bearer dependencies (auth.py) share it.

A key is `<prefix><43 random base62 chars><6 checksum chars>`: 256 bits from `secrets`, and
a CRC-32 checksum so that a mistyped key is rejected without a database lookup. Only the
SHA-256 of the whole key is stored.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import zlib
from typing import Literal

KeyKind = Literal["customer", "secret", "ingest"]
Environment = Literal["live", "test"]

PREFIXES: dict[str, tuple[KeyKind, Environment | None]] = {
    "pk_live_": ("customer", "live"),
    "pk_test_": ("customer", "test"),
    # An account's secret keys (SPEC §11): all a customer key may do, and its alerts and
    # webhook endpoints besides. Never for a page or a dashboard.
    "sk_live_": ("secret", "live"),
    "sk_test_": ("secret", "test"),
    "sk_ingest_": ("ingest", None),
}
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SECRET_LEN = 43  # ceil(256 / log2(62))
_CHECK_LEN = 6  # 62**6 > 2**32
KEY_PATTERN = re.compile(r"^(pk_live_|pk_test_|sk_live_|sk_test_|sk_ingest_)([0-9A-Za-z]{49})$")


def _base62(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


def _checksum(prefix: str, secret: str) -> str:
    return _base62(zlib.crc32(f"{prefix}{secret}".encode()), _CHECK_LEN)


def generate_key(prefix: str) -> str:
    if prefix not in PREFIXES:
        raise ValueError(f"unknown key prefix {prefix!r}")
    secret = _base62(secrets.randbits(256), _SECRET_LEN)
    return f"{prefix}{secret}{_checksum(prefix, secret)}"


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def is_well_formed(key: str) -> bool:
    """Format and checksum only; no database involved."""
    match = KEY_PATTERN.match(key)
    if match is None:
        return False
    prefix, body = match.groups()
    return secrets.compare_digest(_checksum(prefix, body[:_SECRET_LEN]), body[_SECRET_LEN:])


def new_id(prefix: str) -> str:
    """An opaque identifier: `prefix` and 96 random bits in base62 (`key_...`, `we_...`)."""
    return prefix + _base62(secrets.randbits(96), 17)


def new_key_id() -> str:
    return new_id("key_")
