"""How any value becomes storable: ids, error codes and messages never make a write fail.

- ids longer than ``LEDGER_ID_LENGTH`` (only ever records quarantined for it) are stored as
  :func:`ledger_key`: their start plus a SHA-256 digest, bounded, unique and stable;
- an ``error_code`` longer than its column is shortened with a digest (and quoted in full in
  the message);
- text PostgreSQL cannot store (NUL characters, lone surrogates) is escaped.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from thred_pipeline.ledger.schema import ERROR_CODE_LENGTH, ERROR_MESSAGE_LENGTH, LEDGER_ID_LENGTH

_DIGEST_MARK = "...sha256:"


def now() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive timestamps, PostgreSQL aware ones; both mean UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def storable(text: str) -> str:
    """``text`` with what PostgreSQL cannot store escaped: NUL characters, lone surrogates."""
    if text.isascii() and "\x00" not in text:
        return text
    clean = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return clean.replace("\x00", "\\x00")


def ledger_key(value: str) -> str:
    """How an id is stored: as it is when it fits ``LEDGER_ID_LENGTH`` and is storable, else
    its (escaped) start plus the SHA-256 of the full id — bounded, unique and stable."""
    clean = storable(value)
    if clean == value and len(value) <= LEDGER_ID_LENGTH:
        return value
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    keep = LEDGER_ID_LENGTH - len(_DIGEST_MARK) - len(digest) - 8
    return f"{clean[:keep]}{_DIGEST_MARK}{digest}"


def bounded_code(code: str | None) -> tuple[str | None, str | None]:
    """(error_code as stored, the full code when it had to be shortened)."""
    if code is None:
        return None, None
    clean = storable(code)
    if clean == code and len(code) <= ERROR_CODE_LENGTH:
        return code, None
    digest = hashlib.sha256(code.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{clean[: ERROR_CODE_LENGTH - 9]}~{digest}", code


def bounded_message(message: str, keep: str = "") -> str:
    """A storable message, cut to ``ERROR_MESSAGE_LENGTH`` unless that would cut ``keep``."""
    limit = max(ERROR_MESSAGE_LENGTH, len(keep) + 200)
    return storable(message[:limit])
