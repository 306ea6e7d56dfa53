"""Reading Thred's answers: the 2xx body, the error body, and which exception a status means.

Whatever Thred sends back may echo a credential (an error message quoting the
Authorization header, say), so every text taken from a response goes through ``Redactor``
before it reaches an exception or a log line.
"""

from __future__ import annotations

from typing import Any, Final

import httpx

from thred_pipeline.thred.errors import (
    ErrorContext,
    ThredAuthError,
    ThredDuplicateExternalId,
    ThredError,
    ThredNotFoundError,
    ThredTransientError,
    ThredValidationError,
    Where,
)

__all__ = [
    "NOT_JSON",
    "Redactor",
    "ThredResponse",
    "error_for_response",
    "json_body",
    "parse_error",
    "request_context",
    "success_body",
]

_REDACTED = "<redacted>"
_MAX_ERROR_TEXT = 300
_DUPLICATE_EXTERNAL_ID = "duplicate_external_id"
_MESSAGE_KEYS = ("error", "detail", "message")
_ENVELOPE_KEYS = frozenset({"error", "error_code", "code", "detail", "message"})
_BY_STATUS: Final[dict[int, type[ThredError]]] = {
    401: ThredAuthError,
    403: ThredAuthError,
    404: ThredNotFoundError,
}


class ThredResponse:
    """A successful (2xx) Thred response: status, parsed JSON body, and whether it created.

    ``created`` is True for 201 (a new object); an idempotent replay of the same
    ``external_id`` / ``Idempotency-Key`` answers 200 and has ``created`` False.
    """

    __slots__ = ("body", "created", "status_code")

    def __init__(self, status_code: int, body: Any, created: bool | None = None) -> None:
        self.status_code = status_code
        self.body = body
        self.created = status_code == 201 if created is None else created

    def __repr__(self) -> str:
        kind = type(self.body).__name__
        return f"ThredResponse(status_code={self.status_code}, created={self.created}, body={kind})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ThredResponse):
            return NotImplemented
        mine = (self.status_code, self.created, self.body)
        return mine == (other.status_code, other.created, other.body)

    __hash__ = None  # type: ignore[assignment]  # mutable body: not hashable


class Redactor:
    """Every secret the client knows (key, Basic pair, tokens), replaced wherever it shows."""

    def __init__(self, *secrets: str) -> None:
        self._secrets: set[str] = {s for s in secrets if s}

    def __repr__(self) -> str:
        return f"Redactor(secrets={len(self._secrets)})"

    def add(self, secret: str) -> None:
        if secret:
            self._secrets.add(secret)

    def text(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):  # longest first
            if secret in text:
                text = text.replace(secret, _REDACTED)
        return text

    def value(self, value: Any) -> Any:
        """``text`` applied to every string inside a JSON-like value, keys included."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value


class _NotJson:
    def __repr__(self) -> str:
        return "<not JSON>"


NOT_JSON: Any = _NotJson()
"""What ``json_body`` returns for a body that is there but is not JSON."""


def json_body(response: httpx.Response) -> Any:
    """The parsed body, None for an empty one, ``NOT_JSON`` when it cannot be parsed."""
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        return NOT_JSON


def request_context(response: httpx.Response, business_id: str | None) -> Where:
    """Method and path of the request that got ``response`` (never headers or query)."""
    request = response.request
    return {"method": request.method, "path": request.url.path, "business_id": business_id}


def success_body(response: httpx.Response, business_id: str | None) -> Any:
    """The 2xx body; an unreadable one means a write may or may not have happened."""
    body = json_body(response)
    if body is NOT_JSON:
        raise ThredTransientError(
            "2xx response body is not JSON",
            outcome_uncertain=True,
            status=response.status_code,
            error_code="invalid_response",
            **request_context(response, business_id),
        )
    return body


def _envelope(body: dict[str, Any]) -> tuple[str | None, str | None, dict[str, Any]]:
    raw_code = body.get("error_code", body.get("code"))
    code = raw_code if isinstance(raw_code, str) else None
    message = next((body[k] for k in _MESSAGE_KEYS if isinstance(body.get(k), str)), None)
    raw_details = body.get("details")
    details: dict[str, Any] = {}
    if isinstance(raw_details, dict):
        details = raw_details
    elif raw_details is not None:
        details = {"details": raw_details}
    elif isinstance(body.get("detail"), dict | list):
        details = {"detail": body["detail"]}
    elif not (_ENVELOPE_KEYS & body.keys()):
        details = body  # DRF-style {"field": ["msg"]}
    return message, code, details


def parse_error(response: httpx.Response, redactor: Redactor) -> tuple[str, ErrorContext]:
    """(message, {status, error_code, details}) from ``{error, error_code, details}`` & co."""
    body = json_body(response)
    message: str | None = None
    code: str | None = None
    details: dict[str, Any] = {}
    if isinstance(body, dict):
        message, code, details = _envelope(body)
    elif isinstance(body, list):
        details = {"errors": body}
    elif body is NOT_JSON:
        message = " ".join(response.text.split())[:_MAX_ERROR_TEXT]
    if not message:
        message = response.reason_phrase or f"HTTP {response.status_code}"
    said: ErrorContext = {
        "status": response.status_code,
        "error_code": redactor.text(code) if code else None,
        "details": redactor.value(details),
    }
    return redactor.text(message), said


def error_for_response(
    response: httpx.Response,
    redactor: Redactor,
    *,
    business_id: str | None,
    external_id: str | None = None,
) -> ThredError:
    """Map a non-2xx, non-retried status to the exception class the caller acts on."""
    message, said = parse_error(response, redactor)
    context: ErrorContext = {**said, **request_context(response, business_id)}
    status = response.status_code
    if status == 409 and said.get("error_code") == _DUPLICATE_EXTERNAL_ID:
        return ThredDuplicateExternalId(message, external_id=external_id, **context)
    if status >= 500:
        # 501, 505, ...: not worth retrying, but the server did see the request.
        return ThredTransientError(message, outcome_uncertain=True, **context)
    # 1xx/3xx stay plain ThredError: redirects are never followed (the token would go along).
    cls = _BY_STATUS.get(status, ThredValidationError if 400 <= status < 500 else ThredError)
    return cls(message, **context)
