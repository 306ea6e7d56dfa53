"""Why the partner token could not be had, told as a ``ThredConfigError``.

The partner token request is the first request of every run, so its failure says something
about the settings rather than about a record: refused credentials, a ``THRED_BASE_URL``
that is not Thred, or nothing answering at all. Each message names the setting to fix and
never carries a key, a token or a Basic credential.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx

from thred_pipeline.thred.errors import ThredConfigError, ThredError, ThredTransientError
from thred_pipeline.thred.responses import NOT_JSON, Redactor, json_body, parse_error
from thred_pipeline.thred.retry import RETRYABLE_STATUSES

__all__ = ["partner_token_problem", "unanswered_partner_token"]

_BASE_URL = ("THRED_BASE_URL",)
_CREDENTIALS = ("THRED_PARTNER_ID", "THRED_API_KEY")


def unanswered_partner_token(exc: ThredError, base_url: str) -> ThredConfigError | None:
    """The config error for a token request that got no usable answer, None for an outage.

    Thred answering 5xx/429 until the retries ran out is an outage (it is there): the
    caller re-raises the ``ThredTransientError``.
    """
    if isinstance(exc, ThredTransientError):
        if exc.status is not None:
            return None
        return ThredConfigError(
            f"Thred is unreachable at THRED_BASE_URL={base_url}: {exc.method} {exc.path} got "
            f"no answer: {exc.message}",
            settings=_BASE_URL,
            reason="unreachable",
        )
    return ThredConfigError(  # could not be sent at all (unsupported scheme, ...)
        f"THRED_BASE_URL={base_url} cannot be used: {exc.method} {exc.path}: {exc.message}",
        settings=_BASE_URL,
        reason="not_thred",
    )


def partner_token_problem(
    response: httpx.Response, base_url: str, redactor: Redactor
) -> ThredConfigError | None:
    """None if this is Thred handing out a partner token (or a Thred outage), else why not."""
    status = response.status_code
    if 200 <= status < 300:
        return _not_a_token(response, base_url)
    if status in (401, 403) or (400 <= status < 500 and status not in (404, 405)):
        return _credentials_refused(response, base_url, redactor)
    if 300 <= status < 400:
        return _redirected(response, base_url)
    if status in (404, 405) or (status >= 500 and status not in RETRYABLE_STATUSES):
        return _not_thred(
            response, base_url, f"with {_describe_body(response)} (no Thred token endpoint there)"
        )
    return None


def _not_thred(response: httpx.Response, base_url: str, what: str) -> ThredConfigError:
    request = response.request
    return ThredConfigError(
        f"THRED_BASE_URL={base_url} does not answer like Thred: {request.method} "
        f"{request.url.path} returned HTTP {response.status_code} {what}",
        settings=_BASE_URL,
        reason="not_thred",
    )


def _not_a_token(response: httpx.Response, base_url: str) -> ThredConfigError | None:
    body = json_body(response)
    if isinstance(body, dict) and all(
        isinstance(body.get(k), str) and body[k] for k in ("access_token", "token_type")
    ):
        return None
    what = f"with {_describe_body(response)}, not a token (access_token, token_type)"
    return _not_thred(response, base_url, what)


def _credentials_refused(
    response: httpx.Response, base_url: str, redactor: Redactor
) -> ThredConfigError:
    message, said = parse_error(response, redactor)
    code = said.get("error_code")
    detail = " ".join((f"{code}: {message}" if code else message).split())[:160]
    names: tuple[str, ...] = _CREDENTIALS
    hint = "check THRED_PARTNER_ID and THRED_API_KEY"
    if not isinstance(json_body(response), dict):
        names += _BASE_URL
        hint += (
            f", and that THRED_BASE_URL={base_url} is Thred "
            f"(the answer is {_describe_body(response)})"
        )
    request = response.request
    return ThredConfigError(
        f"Thred refused the partner credentials: {request.method} {request.url.path} at "
        f"{base_url} returned HTTP {response.status_code} ({detail}); {hint}",
        settings=names,
        reason="credentials_refused",
    )


def _redirected(response: httpx.Response, base_url: str) -> ThredConfigError:
    location = urlsplit(response.headers.get("Location", ""))
    target = f"{location.scheme}://{location.netloc}" if location.netloc else "elsewhere"
    return ThredConfigError(
        f"THRED_BASE_URL={base_url} redirects the token request (HTTP {response.status_code}) "
        f"to {target}; redirects are not followed (they would carry the credentials): "
        "set THRED_BASE_URL to the API host itself",
        settings=_BASE_URL,
        reason="not_thred",
    )


def _describe_body(response: httpx.Response) -> str:
    """A few words on what came back, for configuration messages (never the body itself)."""
    kind = response.headers.get("Content-Type", "").split(";")[0].strip() or "no content type"
    body: Any = json_body(response)
    if not response.content:
        return f"an empty body ({kind})"
    if body is NOT_JSON:
        looks_html = response.content.lstrip()[:15].lower().startswith((b"<!doctype", b"<html"))
        return f"an HTML page ({kind})" if looks_html else f"a body that is not JSON ({kind})"
    if isinstance(body, dict):
        return "JSON without access_token/token_type"
    return f"JSON {type(body).__name__}"
