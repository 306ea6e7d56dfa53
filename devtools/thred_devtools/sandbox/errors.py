"""The sandbox's one error type and the documented error body.

Every failure leaves as ``{"error": str, "error_code": str, "details": {path: [msgs]}}``
([doc] error-handling guide); field paths are dotted/indexed (``line_items[0].tax_code``)
so a client can point at the offending input.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from thred_devtools.sandbox import rules

__all__ = [
    "ApiError",
    "Details",
    "conflict",
    "error_body",
    "format_loc",
    "not_found",
    "pydantic_details",
    "validation_error",
]

Details = dict[str, list[str]]


class ApiError(Exception):
    """An HTTP error answered with the standard body."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Mapping[str, Sequence[str]] | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details: Details = {k: list(v) for k, v in (details or {}).items()}
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def body(self) -> dict[str, Any]:
        out = error_body(self.message, self.code, self.details)
        out.update(self.extra)
        return out


def error_body(
    message: str, code: str, details: Mapping[str, Sequence[str]] | None = None
) -> dict[str, Any]:
    return {
        "error": message,
        "error_code": code,
        "details": {k: list(v) for k, v in (details or {}).items()},
    }


def validation_error(
    details: Mapping[str, Sequence[str]] | str,
    message: str = "Validation failed.",
    extra: Mapping[str, Any] | None = None,
) -> ApiError:
    """400 ``validation_error``; ``details`` may be a bare message (non_field_errors)."""
    if isinstance(details, str):
        message, details = details, {"non_field_errors": [details]}
    return ApiError(400, "validation_error", message, details, extra=extra)


def field_error(path: str, message: str) -> ApiError:
    return validation_error({path: [message]}, f"{path}: {message}")


def not_found(collection: str, what: str | None = None) -> ApiError:
    code = rules.NOT_FOUND_CODES.get(collection, rules.NOT_FOUND_CODE)
    noun = what or collection.rstrip("s").replace("_", " ")
    return ApiError(404, code, f"The {noun} does not exist or does not belong to you.")


def conflict(message: str, code: str = rules.INVALID_STATE_CODE) -> ApiError:
    return ApiError(409, code, message)


def format_loc(loc: Iterable[int | str]) -> str:
    """``("line_items", 0, "tax_code")`` -> ``"line_items[0].tax_code"``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif out:
            out += f".{part}"
        else:
            out = str(part)
    return out or "non_field_errors"


_MESSAGES = {
    "missing": rules.REQUIRED_MSG,
    "int_type": "A valid integer is required.",
    "int_parsing": "A valid integer is required.",
    "bool_type": "Must be a valid boolean.",
    "string_type": "Not a valid string.",
    "list_type": "Expected a list of items.",
    "dict_type": "Expected an object.",
    "model_type": "Expected an object.",
    "model_attributes_type": "Expected an object.",
}


def pydantic_details(exc: ValidationError) -> Details:
    """Turn pydantic errors into ``{path: [messages]}`` with documented-looking messages."""
    details: Details = {}
    for err in exc.errors(include_url=False):
        path = format_loc(err["loc"])
        kind = err["type"]
        ctx = err.get("ctx") or {}
        if kind in _MESSAGES:
            msg = _MESSAGES[kind]
        elif kind == "string_too_long":
            msg = f"Ensure this field has no more than {ctx.get('max_length')} characters."
        elif kind == "string_too_short":
            msg = "This field may not be blank."
        elif kind == "too_short":
            msg = f"Ensure this field has at least {ctx.get('min_length')} elements."
        elif kind == "too_long":
            msg = f"Ensure this field has no more than {ctx.get('max_length')} elements."
        elif kind == "greater_than_equal":
            msg = f"Ensure this value is greater than or equal to {ctx.get('ge')}."
        elif kind == "less_than_equal":
            msg = f"Ensure this value is less than or equal to {ctx.get('le')}."
        elif kind == "literal_error":
            msg = f'"{err.get("input")}" is not a valid choice. Expected {ctx.get("expected")}.'
        elif kind == "value_error":
            msg = str(err["msg"]).removeprefix("Value error, ")
        else:
            msg = str(err["msg"])
        details.setdefault(path, []).append(msg)
    return details
