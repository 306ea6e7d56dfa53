"""Opaque, JWT-shaped access tokens (HS256 over a per-sandbox secret).

Tokens are stateless so they survive a restart when ``data_dir`` keeps the secret; the
admin "expire tokens" switch works through revocation timestamps (a token issued at or
before the timestamp is rejected) stored with the rest of the state.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Claims", "TokenError", "load_secret", "mint", "verify"]

SECRET_FILE = "token_secret"  # noqa: S105 - a file name


class TokenError(Exception):
    """Malformed, forged or expired token."""


@dataclass(frozen=True)
class Claims:
    partner_id: str
    kind: str  # "partner" | "business"
    business_id: str | None
    issued_at: float
    expires_at: float


def load_secret(data_dir: Path | None) -> bytes:
    """A random secret, kept in ``data_dir`` so tokens stay valid across restarts."""
    if data_dir is None:
        return secrets.token_bytes(32)
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / SECRET_FILE
    if path.exists():
        raw = path.read_bytes()
        if len(raw) >= 32:
            return raw
    raw = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(raw)
    return raw


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_HEADER = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())


def mint(secret: bytes, partner_id: str, ttl_s: int, business_id: str | None = None) -> str:
    now = time.time()
    payload: dict[str, Any] = {
        "iss": "thred-sandbox",
        "sub": partner_id,
        "typ": "business" if business_id else "partner",
        "iat": now,
        "exp": now + ttl_s,
        "jti": uuid.uuid4().hex,
    }
    if business_id:
        payload["business_id"] = business_id
    body = _b64(json.dumps(payload, separators=(",", ":")).encode())
    signing_input = f"{_HEADER}.{body}".encode("ascii")
    sig = _b64(hmac.new(secret, signing_input, hashlib.sha256).digest())
    return f"{_HEADER}.{body}.{sig}"


def verify(secret: bytes, token: str, now: float | None = None) -> Claims:
    parts = token.split(".")
    if len(parts) != 3 or len(token) > 4096:
        raise TokenError("malformed token")
    head, body, sig = parts
    try:
        signing_input = f"{head}.{body}".encode("ascii")
    except UnicodeEncodeError as exc:
        raise TokenError("malformed token") from exc
    expected = _b64(hmac.new(secret, signing_input, hashlib.sha256).digest())
    if not hmac.compare_digest(expected, sig):
        raise TokenError("bad signature")
    try:
        payload = json.loads(_unb64(body))
        claims = Claims(
            partner_id=str(payload["sub"]),
            kind=str(payload["typ"]),
            business_id=payload.get("business_id"),
            issued_at=float(payload["iat"]),
            expires_at=float(payload["exp"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise TokenError("malformed payload") from exc
    if (now if now is not None else time.time()) >= claims.expires_at:
        raise TokenError("token expired")
    return claims
