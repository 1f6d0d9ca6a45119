"""Webhook signatures: HMAC-SHA256 over "<timestamp>.<body>", sent as

    X-Aiport-Timestamp: 1767225600
    X-Aiport-Signature: v1=<hex digest>

Receivers recompute the digest with their secret, compare in constant time, and refuse
timestamps older than a few minutes (replays). `verify` is the documented verifier
(docs/jobs.md has the same code to copy, standard library only).
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Aiport-Signature"
TIMESTAMP_HEADER = "X-Aiport-Timestamp"
DEFAULT_TOLERANCE = 300


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The header value for `body` sent at `timestamp` (unix seconds, as a string)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify(
    secret: str,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> bool:
    """True when `signature` is ours for this body and the timestamp is recent."""
    if not timestamp or not signature or not timestamp.isdigit():
        return False
    if abs((now if now is not None else time.time()) - int(timestamp)) > tolerance:
        return False
    expected = sign(secret, timestamp, body)
    # several v1= values may be sent while a secret is rotated
    return any(hmac.compare_digest(expected, part.strip()) for part in signature.split(","))
