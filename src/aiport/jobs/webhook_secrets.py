"""Webhook signing secrets, derived rather than stored.

A secret must be usable to sign, so it cannot be kept only as a hash. Instead of storing
it (even encrypted), each subscription stores a random salt, and the secret is
HMAC-SHA256(master key, subscription id + salt). The master key is
AIPORT_WEBHOOK_MASTER_KEY, or a random key created once in the data directory. A database
dump alone reveals no secret; rotating a secret is a new salt. The secret is shown once
(at creation or rotation), never logged and never returned again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from aiport.config import Settings

_KEY_FILE = "webhook-master.key"


def master_key(settings: Settings) -> bytes:
    """The configured key, else the data directory's key file (created atomically once)."""
    if settings.webhook_master_key:
        return settings.webhook_master_key.encode()
    path = Path(settings.data_dir) / _KEY_FILE
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(secrets.token_hex(32).encode())
    try:
        os.link(tmp, path)  # atomic: the first process wins, everyone reads its key
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_bytes().strip()


def new_salt() -> str:
    return secrets.token_hex(16)


def derive_secret(master: bytes, subscription_id: str, salt: str) -> str:
    digest = hmac.new(master, f"aiport-webhook:{subscription_id}:{salt}".encode(), hashlib.sha256).digest()
    return "whsec_" + base64.urlsafe_b64encode(digest).decode().rstrip("=")
