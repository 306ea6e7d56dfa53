"""Exceptions raised by the Thred client.

The class tells the caller what to do with the record, so the sync engine never has to look
at status codes:

- ``ThredValidationError``: Thred rejected the payload (4xx). Permanent; quarantine the row.
- ``ThredNotFoundError``: 404. The referenced object does not exist (or is not the partner's).
- ``ThredAuthError``: credentials are refused. With ``business_id`` set, pause that
  business only; with ``business_id=None`` the partner credentials themselves failed.
- ``ThredTransientError``: retries were exhausted. ``outcome_uncertain`` says whether a
  write may have been applied; if so, re-send later with the same external_id /
  Idempotency-Key instead of assuming it failed.
- ``ThredDuplicateExternalId``: 409 ``duplicate_external_id`` (Thred's error guide). The object
  already exists: look it up (``ThredClient.find_by_external_id``) and adopt it.
- ``RequestNotSendable``: the request could not be put on the wire (a header value, path
  segment or body that HTTP or JSON cannot carry). Nothing was sent; quarantine the row.
- ``ThredConfigError``: not about any record. The partner credentials are refused,
  ``THRED_BASE_URL`` is not Thred, or Thred cannot be reached: stop the run. It is
  deliberately *not* a ``ThredError``, so per-record handlers never swallow it.

Only the request method and URL path are kept: never headers, tokens, keys or query strings.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypedDict, Unpack

__all__ = [
    "ErrorContext",
    "RequestNotSendable",
    "ThredAuthError",
    "ThredConfigError",
    "ThredDuplicateExternalId",
    "ThredError",
    "ThredNotFoundError",
    "ThredTransientError",
    "ThredValidationError",
    "Where",
]

_MAX_MESSAGE_CHARS = 500


class Where(TypedDict, total=False):
    """Which request an error concerns: method and URL path only, never headers or query."""

    method: str
    path: str
    business_id: str | None


class ErrorContext(Where, total=False):
    """Where an error happened and what Thred said; every ``ThredError`` takes these."""

    status: int | None
    error_code: str | None
    details: dict[str, Any] | None


def _one_line(message: str) -> str:
    return message[:_MAX_MESSAGE_CHARS] + "…" if len(message) > _MAX_MESSAGE_CHARS else message


class ThredError(Exception):
    """Base class: a Thred request did not produce a usable 2xx response.

    Subclasses name their own attributes in ``_extra`` (set before ``super().__init__``), so
    repr and pickling carry them without a hand-written copy per class.
    """

    _defaults: ClassVar[ErrorContext] = {}
    _extra: ClassVar[tuple[str, ...]] = ()

    def __init__(self, message: str, **context: Unpack[ErrorContext]) -> None:
        message = _one_line(message)
        super().__init__(message)
        given: ErrorContext = {**self._defaults, **context}
        self.message = message
        self.status = given.get("status")
        self.error_code = given.get("error_code")
        self.details: dict[str, Any] = dict(given.get("details") or {})
        self.method = given.get("method", "")
        self.path = given.get("path", "")
        self.business_id = given.get("business_id")

    def context(self) -> ErrorContext:
        """The keyword arguments that rebuild this error's context in another class."""
        return {
            "status": self.status,
            "error_code": self.error_code,
            "details": self.details,
            "method": self.method,
            "path": self.path,
            "business_id": self.business_id,
        }

    def _fields(self) -> dict[str, Any]:
        return {**self.context(), **{name: getattr(self, name) for name in self._extra}}

    def __str__(self) -> str:
        where = f"{self.method} {self.path}".strip()
        status = "no response" if self.status is None else f"HTTP {self.status}"
        code = f" [{self.error_code}]" if self.error_code else ""
        return f"{where}: {status}{code}: {self.message}"

    def __repr__(self) -> str:
        names = ("message", "status", "error_code", "method", "path", *self._extra)
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"{type(self).__name__}({shown})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only constructors do not survive the default Exception pickling, and
        # process-based executors pickle exceptions.
        return (_rebuild, (type(self), self.message, self._fields()))


def _rebuild(cls: type[ThredError], message: str, fields: dict[str, Any]) -> ThredError:
    return cls(message, **fields)


class ThredValidationError(ThredError):
    """4xx other than 401/403/404/429: the request itself is wrong. Never retried."""


class ThredNotFoundError(ThredError):
    """404: the object (or business) does not exist or does not belong to this partner."""


class ThredAuthError(ThredError):
    """401 that survived one token renewal, or 403: stop calling for this business."""


class ThredTransientError(ThredError):
    """Retries exhausted (or the retry budget spent) on 5xx / 429 / timeouts / network errors.

    ``outcome_uncertain`` is True when any attempt may have reached Thred (read timeout,
    connection dropped after sending, 5xx, unreadable 2xx): a write may have been applied.
    It is False when nothing can have been processed (connect errors, 429 only).
    """

    _extra = ("outcome_uncertain", "attempts")

    def __init__(
        self,
        message: str,
        *,
        outcome_uncertain: bool,
        attempts: int = 1,
        **context: Unpack[ErrorContext],
    ) -> None:
        self.outcome_uncertain = outcome_uncertain
        self.attempts = attempts
        super().__init__(message, **context)


class ThredDuplicateExternalId(ThredError):
    """409 ``duplicate_external_id``: Thred already stores an object with this external_id.

    Thred's error guide documents this answer for a repeated external_id (the create pages
    document 200 with the stored object instead). Either way the object exists: the caller
    looks it up by ``external_id`` and adopts it; it is never a rejection of the record.
    """

    _defaults: ClassVar[ErrorContext] = {"status": 409, "error_code": "duplicate_external_id"}
    _extra = ("external_id",)

    def __init__(
        self, message: str, *, external_id: str | None = None, **context: Unpack[ErrorContext]
    ) -> None:
        self.external_id = external_id
        super().__init__(message, **context)


class RequestNotSendable(ThredError):
    """The request cannot be sent as built; nothing reached Thred (``status`` is None).

    For example a header value that HTTP cannot carry, a path segment that is not a plain
    id, or a body JSON cannot represent (NaN, an unknown type). It concerns one record, so
    it is a ``ThredError``: the engine quarantines that record and goes on.
    """

    _defaults: ClassVar[ErrorContext] = {"error_code": "unsendable_request"}


class ThredConfigError(Exception):
    """The run cannot talk to Thred at all: fix a setting, retrying will not help.

    Raised by the client on the partner token request, the first request of every run:

    - ``reason="credentials_refused"``: 401/403 on ``POST oauth2/token/`` (wrong
      ``THRED_PARTNER_ID`` or ``THRED_API_KEY``; Thred does not say which);
    - ``reason="not_thred"``: ``THRED_BASE_URL`` answers, but not like Thred (no token
      endpoint, HTML, JSON without ``access_token`` / ``token_type``, another server);
    - ``reason="unreachable"``: no answer at all after the normal bounded retries
      (connection refused, DNS, TLS).

    Not a ``ThredError``: the engine's per-record handlers catch ``ThredError`` and must let
    this one stop the run. ``str()`` is one line that names the setting(s) in ``settings``
    and never contains a key, a token or a Basic credential.
    """

    def __init__(self, message: str, *, settings: tuple[str, ...], reason: str) -> None:
        line = _one_line(" ".join(message.split()))
        super().__init__(line)
        self.message = line
        self.settings = tuple(settings)
        self.reason = reason

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return (
            f"ThredConfigError(message={self.message!r}, settings={self.settings!r}, "
            f"reason={self.reason!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_config, (self.message, self.settings, self.reason))


def _rebuild_config(message: str, settings: tuple[str, ...], reason: str) -> ThredConfigError:
    return ThredConfigError(message, settings=settings, reason=reason)
