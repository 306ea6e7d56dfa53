"""Turning a call's arguments into what goes on the wire: query, JSON body, Idempotency-Key.

Everything here raises ``RequestNotSendable`` (or returns a safe value) *before* anything is
sent: a value HTTP or JSON cannot carry is one record's problem, never an httpx crash deep
inside a send.
"""

from __future__ import annotations

import enum
import hashlib
import json as jsonlib
import re
import uuid
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import quote

from thred_pipeline.thred.errors import RequestNotSendable

__all__ = ["body_external_id", "encode_json", "encode_query", "header_safe_idempotency_key"]

_IDEMPOTENCY_KEY_RE = re.compile(r"^[\x21-\x7e](?:[\x20-\x7e]{0,253}[\x21-\x7e])?$")
_MAX_IDEMPOTENCY_KEY = 255
# Printable ASCII except "%" (and space): what percent-encoding keeps as is.
_KEY_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%")


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        text = value.isoformat()
        return text[:-6] + "Z" if value.utcoffset() == timedelta(0) else text
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return str(value.value)
    return str(value)


def encode_query(params: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """Flatten params: None is dropped, sequences repeat the key, dates become ISO."""
    items: list[tuple[str, str]] = []
    for key, value in (params or {}).items():
        if value is None:
            continue
        if isinstance(value, list | tuple | set | frozenset):
            items.extend((key, _query_value(v)) for v in value if v is not None)
        else:
            items.append((key, _query_value(value)))
    return items


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return _query_value(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(f"{type(value).__name__} is not JSON serializable (send money as int cents)")


def encode_json(body: Any) -> bytes:
    """Compact JSON; NaN, infinities and unknown types raise ``RequestNotSendable``."""
    try:
        text = jsonlib.dumps(body, separators=(",", ":"), default=_json_default, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise RequestNotSendable(
            f"request body cannot be encoded as JSON: {exc}", details={"body": [str(exc)]}
        ) from None
    return text.encode()


def body_external_id(body: Any) -> str | None:
    """The ``external_id`` a write carries, kept for ``ThredDuplicateExternalId``."""
    value = body.get("external_id") if isinstance(body, dict) else None
    return value if isinstance(value, str) else None


def header_safe_idempotency_key(key: str) -> str:
    """The ``Idempotency-Key`` header value for ``key``: ASCII, deterministic, at most 255.

    A key of printable ASCII (no leading or trailing space, at most 255 characters) is sent
    unchanged. Any other key (typically an external_id built from a source id with a
    non-ASCII character, a control character or a trailing space) cannot travel in an HTTP
    header: httpx encodes header values as ASCII and would fail deep inside the send, and
    the record would never sync. Such a key is percent-encoded from its UTF-8 bytes instead
    (``"pay-café"`` -> ``"pay-caf%C3%A9"``), "%" included, so:

    - the same id always yields the same key, on every retry and every later run, which is
      what makes a replay safe;
    - two different ids never share a key (UTF-8 and percent-encoding are both one-to-one).
      The only overlap is with an ASCII key that is itself literally the percent-encoding of
      another id, which no source id is expected to be.

    If the encoded form is longer than 255 characters, the key becomes ``"sha256-"`` and the
    hex digest of the UTF-8 bytes (71 characters): still deterministic, and collisions are
    not a practical concern. An empty key cannot identify anything: ``RequestNotSendable``.
    """
    if _IDEMPOTENCY_KEY_RE.match(key):
        return key
    if not key:
        raise RequestNotSendable(
            "Idempotency-Key header is empty", details={"Idempotency-Key": ["empty"]}
        )
    encoded = quote(key.encode("utf-8", "surrogatepass"), safe=_KEY_SAFE)
    if len(encoded) <= _MAX_IDEMPOTENCY_KEY:
        return encoded
    return "sha256-" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
