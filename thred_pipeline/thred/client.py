"""Async HTTP client for the Thred Platform API.

What it guarantees, and why:

- **Retries only what can be retried**: connection errors, timeouts, 429 and
  500/502/503/504, with full-jitter exponential backoff; ``Retry-After`` (seconds or
  HTTP-date) is honoured as a minimum wait, capped by ``backoff_max_s``; it stops at
  ``max_attempts`` or when the next wait would overrun ``retry_budget_s``. 4xx is final.
- **Writes are retried too.** That is only safe because every write the pipeline sends
  carries an ``external_id`` in the body or an ``Idempotency-Key`` header, which Thred
  answers on replay with the stored object (200) instead of a duplicate. Callers must keep
  that contract; a write without either must not go through this client.
- **Says whether a failed write may have happened** (``ThredTransientError
  .outcome_uncertain``), so the ledger can record "unknown" rather than "failed".
- **Two-tier tokens**: a partner token (Basic credentials) and one token per business,
  cached, renewed before expiry, fetched once per business even under concurrency; a 401
  renews once and retries once, then ``ThredAuthError`` pauses that business only.
- **No secret leaves the process**: logs carry method, path, status, attempt and delay;
  exceptions carry method and path; server-supplied messages are scrubbed of any known
  key or token, and no httpx exception (which carries the request) is chained.
- **Configuration errors stop the run, record errors do not.** The partner token request is
  the first request of every run; if it is refused, or ``THRED_BASE_URL`` does not answer like
  Thred, or nothing answers at all, it raises ``ThredConfigError`` (not a ``ThredError``), so
  no per-record handler can mistake it for one record's problem. ``check_connection`` makes
  that request up front. A request that cannot be put on the wire (a header, path or body
  HTTP/JSON cannot carry) raises ``RequestNotSendable``, a ``ThredError``: one record's
  problem, raised before anything is sent.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import functools
import hashlib
import json as jsonlib
import logging
import random
import re
import ssl
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote, urlencode, urlsplit

import certifi
import httpx

from thred_pipeline.thred.errors import (
    RequestNotSendable,
    ThredAuthError,
    ThredConfigError,
    ThredDuplicateExternalId,
    ThredError,
    ThredNotFoundError,
    ThredTransientError,
    ThredValidationError,
)
from thred_pipeline.thred.paths import (
    API_PREFIX,
    business_token_path,
    check_business_id,
    partner_token_path,
    platform_path,
)
from thred_pipeline.thred.retry import (
    RETRYABLE_STATUSES,
    Jitter,
    compute_delay,
    parse_retry_after,
)
from thred_pipeline.thred.settings import ThredSettings
from thred_pipeline.thred.stats import ThredClientStats
from thred_pipeline.thred.tokens import TokenCache

__all__ = ["MAX_PAGE_SIZE", "ThredClient", "ThredResponse", "header_safe_idempotency_key"]

logger = logging.getLogger("thred_pipeline.thred")

MAX_PAGE_SIZE = 100
"""Thred's documented maximum ``page_size``."""

DEFAULT_TOKEN_LIFETIME_S = 3600.0
"""Used when a token response omits ``expires_in`` (the documented lifetime)."""

_USER_AGENT = "thred-pipeline/0.1 (+httpx)"
_IDEMPOTENCY_KEY_RE = re.compile(r"^[\x21-\x7e](?:[\x20-\x7e]{0,253}[\x21-\x7e])?$")
_MAX_IDEMPOTENCY_KEY = 255
# Printable ASCII except "%" (and space): what percent-encoding keeps as is.
_KEY_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%")
_DUPLICATE_EXTERNAL_ID = "duplicate_external_id"
_REDACTED = "<redacted>"
_MAX_ERROR_TEXT = 300

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]


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
        return (self.status_code, self.created, self.body) == (
            other.status_code,
            other.created,
            other.body,
        )

    __hash__ = None  # type: ignore[assignment]  # mutable body: not hashable


@dataclass(frozen=True, slots=True)
class _TransportFailure:
    """A request that produced no HTTP response, stripped of the httpx exception."""

    description: str
    retryable: bool
    uncertain: bool


def _classify_transport_error(exc: httpx.RequestError) -> _TransportFailure:
    """Decide retryability and whether the request may have reached the server."""
    name = type(exc).__name__
    description = f"{name}: {exc}" if str(exc) else name
    # Nothing was sent: no connection, or no free connection in the pool.
    if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout | httpx.ConnectError):
        return _TransportFailure(description, retryable=True, uncertain=False)
    if isinstance(exc, httpx.ProxyError):
        return _TransportFailure(description, retryable=True, uncertain=False)
    # The request was (possibly partly) sent and no complete answer came back.
    if isinstance(
        exc,
        httpx.TimeoutException
        | httpx.RemoteProtocolError
        | httpx.NetworkError
        | httpx.DecodingError,
    ):
        return _TransportFailure(description, retryable=True, uncertain=True)
    # UnsupportedProtocol, LocalProtocolError, TooManyRedirects...: our bug, not the network.
    return _TransportFailure(description, retryable=False, uncertain=False)


def _api_host(base_url: str) -> str:
    """Accept ``https://host`` as well as ``https://host/v1/platform/`` as the base URL."""
    trimmed = base_url.rstrip("/")
    suffix = API_PREFIX.rstrip("/")
    return trimmed[: -len(suffix)] if trimmed.endswith(suffix) else trimmed


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


def _query(params: Mapping[str, Any] | None) -> list[tuple[str, str]]:
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


def _body_external_id(body: Any) -> str | None:
    value = body.get("external_id") if isinstance(body, dict) else None
    return value if isinstance(value, str) else None


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One verifying context per process: building one costs ~70 ms, and clients are per step."""
    return ssl.create_default_context(cafile=certifi.where())


class ThredClient:
    """Async client for ``/v1/platform/`` (see the module docstring for its guarantees).

    Use ``async with ThredClient(settings) as client:``. ``transport`` swaps the HTTP
    transport (tests); ``sleep``, ``rng`` and ``clock`` make retries and token expiry
    deterministic in tests. One client may be shared by many concurrent tasks.
    """

    def __init__(
        self,
        settings: ThredSettings,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        sleep: Sleep | None = None,
        rng: Jitter | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._settings = settings
        self._sleep: Sleep = sleep or asyncio.sleep
        self._rng: Jitter = rng or random.Random()  # noqa: S311 - jitter, not crypto
        self._clock: Clock = clock or time.monotonic
        self._tokens = TokenCache(clock=self._clock, margin_s=settings.token_refresh_margin_s)
        self.stats = ThredClientStats()

        key = settings.api_key.get_secret_value()
        pair = f"{settings.partner_id}:{key}"
        basic = base64.b64encode(pair.encode()).decode("ascii")
        # Everything that must never be echoed back in an error or log, longest first.
        self._secrets: set[str] = {key, pair, basic}

        self._http = httpx.AsyncClient(
            base_url=_api_host(settings.base_url),
            timeout=httpx.Timeout(
                settings.timeout_s,
                connect=settings.connect_timeout_s,
                pool=settings.timeout_s,
            ),
            limits=httpx.Limits(
                max_connections=settings.max_connections,
                max_keepalive_connections=settings.max_connections,
                # Below uvicorn's 5 s keep-alive, so we rarely reuse a socket the
                # server is closing (which would surface as an uncertain failure).
                keepalive_expiry=4.0,
            ),
            verify=_tls_context() if settings.verify_tls else False,
            transport=transport,
            follow_redirects=False,
            headers={"User-Agent": _USER_AGENT, "Accept": "application/json"},
        )

    def __repr__(self) -> str:
        return f"ThredClient(base_url={self._settings.base_url!r})"

    @property
    def settings(self) -> ThredSettings:
        return self._settings

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool. Cached tokens are dropped with the client."""
        self._tokens.clear()
        await self._http.aclose()

    # ------------------------------------------------------------------ public API

    async def request(
        self,
        method: str,
        path: str,
        *,
        business_id: str | None = None,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> ThredResponse:
        """Send one logical request and return the parsed 2xx response.

        ``path`` is relative to ``/v1/platform/`` (``"businesses/"``,
        ``f"businesses/{bid}/invoices/"``). ``business_id=None`` authenticates with the
        partner token; otherwise with a token scoped to that business.

        Writes (POST/PUT/PATCH/DELETE) are retried like reads. The caller guarantees that
        every write is idempotent: an ``external_id`` in the body or ``idempotency_key``
        (sent as the ``Idempotency-Key`` header, identical on every attempt).

        A key that is not printable ASCII is sent percent-encoded (see
        ``header_safe_idempotency_key``), so a record with a non-ASCII id still syncs.

        Raises ``ThredValidationError`` (4xx), ``ThredDuplicateExternalId`` (409
        ``duplicate_external_id``), ``ThredNotFoundError`` (404), ``ThredAuthError`` (401
        after one renewal, 403), ``ThredTransientError`` (retries or budget exhausted; see
        ``outcome_uncertain``), ``RequestNotSendable`` (nothing sent: the path, a header or
        the body cannot be encoded) or ``ThredError`` (anything else); ``ThredConfigError``
        when the partner token cannot be had (see the module docstring).
        """
        method = method.upper()
        try:
            url_path = platform_path(path)
            if business_id is not None:
                check_business_id(business_id)
        except ValueError as exc:
            raise RequestNotSendable(
                f"URL path cannot be built: {exc}",
                details={"path": [str(exc)]},
                method=method,
                business_id=business_id,
            ) from None
        headers: dict[str, str] = {}
        content: bytes | None = None
        if json is not None:
            try:
                text = jsonlib.dumps(
                    json, separators=(",", ":"), default=_json_default, allow_nan=False
                )
            except (TypeError, ValueError) as exc:
                raise RequestNotSendable(
                    f"request body cannot be encoded as JSON: {exc}",
                    details={"body": [str(exc)]},
                    method=method,
                    path=url_path,
                    business_id=business_id,
                ) from None
            content = text.encode()
            headers["Content-Type"] = "application/json"
        if idempotency_key is not None:
            try:
                headers["Idempotency-Key"] = header_safe_idempotency_key(idempotency_key)
            except RequestNotSendable as exc:
                exc.method, exc.path, exc.business_id = method, url_path, business_id
                raise

        self.stats.count_request(method)
        wall_start = time.perf_counter()
        try:
            return await self._authorized(
                method,
                url_path,
                business_id=business_id,
                headers=headers,
                content=content,
                params=_query(params),
                external_id=_body_external_id(json),
            )
        finally:
            self.stats.elapsed_s += time.perf_counter() - wall_start

    async def iter_pages(
        self,
        path: str,
        *,
        business_id: str | None = None,
        params: Mapping[str, Any] | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Yield every item of a paginated list, requesting ``page=1, 2, ...``.

        Stops when ``next`` is null, when ``page >= page_info.total_pages``, or on an empty
        page (and, if the server reports neither, on a short page). The ``next`` URL is
        never followed: it could point at another host, and our token would go with it.
        Lists are offset-paginated, so rows created while iterating may shift pages.
        """
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        base = dict(params or {})
        page = 1
        while True:
            query = {**base, "page": page, "page_size": page_size}
            response = await self.request("GET", path, business_id=business_id, params=query)
            body = response.body
            results = body.get("results") if isinstance(body, dict) else None
            if not isinstance(body, dict) or not isinstance(results, list):
                raise ThredError(
                    "list response has no 'results' array",
                    status=response.status_code,
                    error_code="invalid_response",
                    method="GET",
                    path=platform_path(path),
                    business_id=business_id,
                )
            for item in results:
                yield item
            if not results:
                return
            page_info = body.get("page_info")
            total_pages = page_info.get("total_pages") if isinstance(page_info, dict) else None
            if "next" in body and body["next"] is None:
                return
            if isinstance(total_pages, int) and page >= total_pages:
                return
            if "next" not in body and total_pages is None and len(results) < page_size:
                return
            page += 1

    async def get_count(
        self,
        path: str,
        *,
        business_id: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> int:
        """Number of items in a paginated list, read from ``count`` with ``page_size=1``."""
        query = {**(params or {}), "page": 1, "page_size": 1}
        response = await self.request("GET", path, business_id=business_id, params=query)
        body = response.body
        count: Any = None
        if isinstance(body, dict):
            count = body.get("count")
            page_info = body.get("page_info")
            if count is None and isinstance(page_info, dict):
                count = page_info.get("total_count")
        if isinstance(count, bool) or not isinstance(count, int):
            raise ThredError(
                "list response has no integer 'count'",
                status=response.status_code,
                error_code="invalid_response",
                method="GET",
                path=platform_path(path),
                business_id=business_id,
            )
        return count

    async def find_by_external_id(
        self,
        path: str,
        external_id: str,
        *,
        business_id: str | None,
        params: Mapping[str, Any] | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> dict[str, Any] | None:
        """The first item of the list at ``path`` whose ``external_id`` equals ``external_id``.

        Used after ``ThredDuplicateExternalId`` to adopt the object Thred already stores.
        Pages through the list (``page_size`` 100) and compares ``external_id`` exactly, so
        it is correct whether or not the server applies a filter: pass the documented
        ``external_id`` query filter in ``params`` where the list has one (customers,
        vendors, invoices; the payouts filter is a partial match, hence the exact check
        here) and the list's archived switch where archived objects are hidden by default.
        Returns None when no item matches.
        """
        pages = self.iter_pages(path, business_id=business_id, params=params, page_size=page_size)
        async with aclosing(pages) as items:
            async for item in items:
                if isinstance(item, dict) and item.get("external_id") == external_id:
                    return item
        return None

    async def check_connection(self) -> None:
        """Fetch the partner token now (or reuse the cached one); raise what it raises.

        The cheapest request that proves ``THRED_BASE_URL`` is Thred and the partner
        credentials are accepted. Call it before any record work so a configuration error
        (``ThredConfigError``) stops the run before anything is written anywhere. The token
        is cached, so the run's first real request does not fetch it again.
        """
        await self._token(None)

    # ------------------------------------------------------------------ auth

    async def _token(self, business_id: str | None, *, stale: str | None = None) -> str:
        if business_id is None:
            return await self._tokens.get(None, self._fetch_partner_token, stale=stale)

        async def fetch() -> tuple[str, float]:
            return await self._fetch_business_token(business_id)

        return await self._tokens.get(business_id, fetch, stale=stale)

    def _basic_authorization(self) -> str:
        pair = f"{self._settings.partner_id}:{self._settings.api_key.get_secret_value()}"
        return "Basic " + base64.b64encode(pair.encode()).decode("ascii")

    async def _fetch_partner_token(self) -> tuple[str, float]:
        """The partner token, or ``ThredConfigError`` when the settings cannot give one."""
        path = partner_token_path()
        self.stats.token_fetches += 1
        base = self._settings.base_url
        try:
            response = await self._send(
                "POST",
                path,
                headers={
                    "Authorization": self._basic_authorization(),
                    "Content-Type": "application/x-www-form-urlencoded",
                },
                content=urlencode(
                    {"grant_type": "client_credentials", "client_id": self._settings.partner_id}
                ).encode(),
                params=[],
                business_id=None,
                started=self._clock(),
            )
        except ThredTransientError as exc:
            if exc.status is not None:
                raise  # Thred answered 5xx/429 until the retries ran out: it is there
            raise ThredConfigError(
                f"Thred is unreachable at THRED_BASE_URL={base}: POST {path} got no answer: "
                f"{exc.message}",
                settings=("THRED_BASE_URL",),
                reason="unreachable",
            ) from None
        except ThredError as exc:  # could not be sent at all (unsupported scheme, ...)
            raise ThredConfigError(
                f"THRED_BASE_URL={base} cannot be used: POST {path}: {exc.message}",
                settings=("THRED_BASE_URL",),
                reason="not_thred",
            ) from None
        self._check_partner_token_response(response, path)
        token = self._read_token(response, path, business_id=None)
        logger.debug("thred partner token fetched (expires_in=%.0fs)", token[1])
        return token

    def _check_partner_token_response(self, response: httpx.Response, path: str) -> None:
        """Raise ``ThredConfigError`` unless this is Thred handing out a partner token."""
        base = self._settings.base_url
        status = response.status_code
        body = self._json_body(response)
        what = _describe_body(response, body)
        if 200 <= status < 300:
            if (
                isinstance(body, dict)
                and isinstance(body.get("access_token"), str)
                and body["access_token"]
                and isinstance(body.get("token_type"), str)
                and body["token_type"]
            ):
                return
            raise ThredConfigError(
                f"THRED_BASE_URL={base} does not answer like Thred: POST {path} returned "
                f"HTTP {status} with {what}, not a token (access_token, token_type)",
                settings=("THRED_BASE_URL",),
                reason="not_thred",
            )
        if status in (401, 403) or (400 <= status < 500 and status not in (404, 405)):
            message, code, _ = self._parse_error(response)
            detail = f"{code}: {message}" if code else message
            detail = " ".join(detail.split())[:160]
            names: tuple[str, ...] = ("THRED_PARTNER_ID", "THRED_API_KEY")
            hint = "check THRED_PARTNER_ID and THRED_API_KEY"
            if not isinstance(body, dict):
                names += ("THRED_BASE_URL",)
                hint += f", and that THRED_BASE_URL={base} is Thred (the answer is {what})"
            raise ThredConfigError(
                f"Thred refused the partner credentials: POST {path} at {base} returned "
                f"HTTP {status} ({detail}); {hint}",
                settings=names,
                reason="credentials_refused",
            )
        if 300 <= status < 400:
            location = urlsplit(response.headers.get("Location", ""))
            target = f"{location.scheme}://{location.netloc}" if location.netloc else "elsewhere"
            raise ThredConfigError(
                f"THRED_BASE_URL={base} redirects the token request (HTTP {status}) to "
                f"{target}; redirects are not followed (they would carry the credentials): "
                "set THRED_BASE_URL to the API host itself",
                settings=("THRED_BASE_URL",),
                reason="not_thred",
            )
        if status in (404, 405) or (status >= 500 and status not in RETRYABLE_STATUSES):
            raise ThredConfigError(
                f"THRED_BASE_URL={base} does not answer like Thred: POST {path} returned "
                f"HTTP {status} with {what} (no Thred token endpoint there)",
                settings=("THRED_BASE_URL",),
                reason="not_thred",
            )

    async def _fetch_business_token(self, business_id: str) -> tuple[str, float]:
        path = business_token_path(business_id)
        stale: str | None = None
        for round_ in (1, 2):
            partner = await self._token(None, stale=stale)
            self.stats.token_fetches += 1
            response = await self._send(
                "POST",
                path,
                headers={"Authorization": f"Bearer {partner}"},
                content=None,
                params=[],
                business_id=business_id,
                started=self._clock(),
            )
            if response.status_code == 401 and round_ == 1:
                # The partner token was revoked or expired early: renew it once.
                logger.warning("thred 401 on POST %s: renewing the partner token once", path)
                self.stats.token_renewals_after_401 += 1
                stale = partner
                continue
            token = self._read_token(response, path, business_id=business_id)
            logger.debug(
                "thred business token fetched for %s (expires_in=%.0fs)", business_id, token[1]
            )
            return token
        raise AssertionError("unreachable")  # pragma: no cover

    def _read_token(
        self, response: httpx.Response, path: str, *, business_id: str | None
    ) -> tuple[str, float]:
        status = response.status_code
        if not 200 <= status < 300:
            if status == 404:
                raise self._error_from_response(
                    ThredNotFoundError, response, "POST", path, business_id
                )
            if 400 <= status < 500:
                # Any refusal at the token endpoint means these credentials cannot be used.
                raise self._error_from_response(ThredAuthError, response, "POST", path, business_id)
            raise self._final_error(response, "POST", path, business_id)
        body = self._json_body(response)
        access_token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(access_token, str) or not access_token:
            raise ThredAuthError(
                "token response has no access_token",
                status=status,
                error_code="invalid_token_response",
                method="POST",
                path=path,
                business_id=business_id,
            )
        self._secrets.add(access_token)
        expires_in: Any = body.get("expires_in", DEFAULT_TOKEN_LIFETIME_S)
        if isinstance(expires_in, str):
            try:
                expires_in = float(expires_in)
            except ValueError:
                expires_in = DEFAULT_TOKEN_LIFETIME_S
        if isinstance(expires_in, bool) or not isinstance(expires_in, int | float):
            expires_in = DEFAULT_TOKEN_LIFETIME_S
        scoped_to = body.get("business_id")
        if business_id is not None and scoped_to is not None and str(scoped_to) != business_id:
            # Never let a token minted for one business serve another.
            raise ThredAuthError(
                "business token is scoped to a different business",
                status=status,
                error_code="token_scope_mismatch",
                method="POST",
                path=path,
                business_id=business_id,
            )
        return access_token, float(expires_in)

    async def _authorized(
        self,
        method: str,
        url_path: str,
        *,
        business_id: str | None,
        headers: dict[str, str],
        content: bytes | None,
        params: list[tuple[str, str]],
        external_id: str | None = None,
    ) -> ThredResponse:
        started = self._clock()
        stale: str | None = None
        renewed = False
        while True:
            token = await self._token(business_id, stale=stale)
            response = await self._send(
                method,
                url_path,
                headers={**headers, "Authorization": f"Bearer {token}"},
                content=content,
                params=params,
                business_id=business_id,
                started=started,
            )
            if response.status_code == 401 and not renewed:
                logger.warning(
                    "thred 401 on %s %s: renewing the %s token once",
                    method,
                    url_path,
                    "partner" if business_id is None else "business",
                )
                self.stats.token_renewals_after_401 += 1
                renewed = True
                stale = token
                continue
            if 200 <= response.status_code < 300:
                return ThredResponse(
                    response.status_code,
                    self._success_body(response, method, url_path, business_id),
                )
            raise self._final_error(response, method, url_path, business_id, external_id)

    # ------------------------------------------------------------------ transport + retries

    async def _send(
        self,
        method: str,
        url_path: str,
        *,
        headers: dict[str, str],
        content: bytes | None,
        params: list[tuple[str, str]],
        business_id: str | None,
        started: float,
    ) -> httpx.Response:
        """Send with retries; return the first non-retryable response.

        Raises ``ThredTransientError`` when attempts or the budget run out, ``ThredError``
        for a request that cannot be sent at all. httpx exceptions never escape (their
        ``request`` would carry our Authorization header).
        """
        settings = self._settings
        attempt = 0
        uncertain = False
        while True:
            attempt += 1
            self.stats.http_attempts += 1
            sent_at = time.perf_counter()
            response: httpx.Response | None = None
            failure: _TransportFailure | None = None
            try:
                response = await self._http.request(
                    method,
                    url_path,
                    headers=headers,
                    content=content,
                    params=tuple(params) if params else None,
                )
            except httpx.RequestError as exc:
                failure = _classify_transport_error(exc)
            took = time.perf_counter() - sent_at

            retry_after: float | None = None
            if response is not None:
                status: int | None = response.status_code
                self.stats.count_status(response.status_code)
                logger.debug(
                    "thred %s %s -> %s (attempt %d, %.3fs)",
                    method,
                    url_path,
                    status,
                    attempt,
                    took,
                )
                if response.status_code not in RETRYABLE_STATUSES:
                    return response
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                uncertain = uncertain or response.status_code != 429
                reason = f"HTTP {status}"
                if retry_after is not None:
                    reason += f", Retry-After={retry_after:g}s"
            else:
                assert failure is not None
                status = None
                self.stats.transport_errors += 1
                reason = self._redact(failure.description)
                logger.debug(
                    "thred %s %s -> %s (attempt %d, %.3fs)",
                    method,
                    url_path,
                    reason,
                    attempt,
                    took,
                )
                if not failure.retryable:
                    raise ThredError(
                        f"request could not be sent: {reason}",
                        method=method,
                        path=url_path,
                        business_id=business_id,
                    )
                uncertain = uncertain or failure.uncertain

            give_up = ""
            delay = 0.0
            if attempt >= settings.max_attempts:
                give_up = f"{attempt} attempts made"
            else:
                delay = compute_delay(
                    attempt - 1,
                    base_s=settings.backoff_base_s,
                    max_s=settings.backoff_max_s,
                    rng=self._rng,
                    retry_after_s=retry_after,
                )
                spent = self._clock() - started
                if spent + delay > settings.retry_budget_s:
                    give_up = (
                        f"retry budget {settings.retry_budget_s:g}s would be exceeded "
                        f"({spent:.2f}s spent, next wait {delay:.2f}s)"
                    )
            if give_up:
                logger.warning(
                    "thred giving up: %s %s status=%s attempts=%d reason=%s; %s "
                    "(outcome_uncertain=%s)",
                    method,
                    url_path,
                    status or "-",
                    attempt,
                    reason,
                    give_up,
                    uncertain,
                )
                raise self._transient_error(
                    response, failure, method, url_path, business_id, attempt, uncertain, give_up
                )
            logger.warning(
                "thred retry: %s %s status=%s attempt=%d/%d delay=%.2fs reason=%s",
                method,
                url_path,
                status or "-",
                attempt,
                settings.max_attempts,
                delay,
                reason,
            )
            self.stats.retries += 1
            await self._sleep(delay)

    # ------------------------------------------------------------------ response handling

    def _redact(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret and secret in text:
                text = text.replace(secret, _REDACTED)
        return text

    def _redact_any(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._redact(value)
        if isinstance(value, dict):
            return {self._redact(str(k)): self._redact_any(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._redact_any(v) for v in value]
        return value

    @staticmethod
    def _json_body(response: httpx.Response) -> Any:
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:  # JSONDecodeError and UnicodeDecodeError
            return _NOT_JSON

    def _success_body(
        self, response: httpx.Response, method: str, url_path: str, business_id: str | None
    ) -> Any:
        body = self._json_body(response)
        if body is _NOT_JSON:
            # Thred answered 2xx but we cannot read what it did: treat a write as "maybe".
            raise ThredTransientError(
                "2xx response body is not JSON",
                outcome_uncertain=True,
                status=response.status_code,
                error_code="invalid_response",
                method=method,
                path=url_path,
                business_id=business_id,
            )
        return body

    def _parse_error(self, response: httpx.Response) -> tuple[str, str | None, dict[str, Any]]:
        """(message, error_code, details) from ``{error, error_code, details}`` and variants."""
        body = self._json_body(response)
        message: str | None = None
        code: str | None = None
        details: dict[str, Any] = {}
        if isinstance(body, dict):
            raw_code = body.get("error_code", body.get("code"))
            code = raw_code if isinstance(raw_code, str) else None
            for key in ("error", "detail", "message"):
                if isinstance(body.get(key), str):
                    message = body[key]
                    break
            raw_details = body.get("details")
            if isinstance(raw_details, dict):
                details = raw_details
            elif raw_details is not None:
                details = {"details": raw_details}
            elif isinstance(body.get("detail"), dict | list):
                details = {"detail": body["detail"]}
            elif not ({"error", "error_code", "code", "detail", "message"} & body.keys()):
                details = body  # DRF-style {"field": ["msg"]}
        elif isinstance(body, list):
            details = {"errors": body}
        elif body is _NOT_JSON:
            message = " ".join(response.text.split())[:_MAX_ERROR_TEXT]
        if not message:
            message = response.reason_phrase or f"HTTP {response.status_code}"
        return (
            self._redact(message),
            self._redact(code) if code else None,
            self._redact_any(details),
        )

    def _error_from_response(
        self,
        cls: type[ThredError],
        response: httpx.Response,
        method: str,
        url_path: str,
        business_id: str | None,
    ) -> ThredError:
        message, code, details = self._parse_error(response)
        return cls(
            message,
            status=response.status_code,
            error_code=code,
            details=details,
            method=method,
            path=url_path,
            business_id=business_id,
        )

    def _final_error(
        self,
        response: httpx.Response,
        method: str,
        url_path: str,
        business_id: str | None,
        external_id: str | None = None,
    ) -> ThredError:
        """Map a non-2xx, non-retried status to the exception class the caller acts on."""
        status = response.status_code
        if status == 409:
            message, code, details = self._parse_error(response)
            if code == _DUPLICATE_EXTERNAL_ID:
                return ThredDuplicateExternalId(
                    message,
                    external_id=external_id,
                    status=status,
                    error_code=code,
                    details=details,
                    method=method,
                    path=url_path,
                    business_id=business_id,
                )
        if status in (401, 403):
            return self._error_from_response(
                ThredAuthError, response, method, url_path, business_id
            )
        if status == 404:
            return self._error_from_response(
                ThredNotFoundError, response, method, url_path, business_id
            )
        if 400 <= status < 500:
            return self._error_from_response(
                ThredValidationError, response, method, url_path, business_id
            )
        if status >= 500:
            # 501, 505, ...: not worth retrying, but the server did see the request.
            message, code, details = self._parse_error(response)
            return ThredTransientError(
                message,
                outcome_uncertain=True,
                status=status,
                error_code=code,
                details=details,
                method=method,
                path=url_path,
                business_id=business_id,
            )
        # 1xx/3xx: redirects are never followed (they would carry the token along).
        return self._error_from_response(ThredError, response, method, url_path, business_id)

    def _transient_error(
        self,
        response: httpx.Response | None,
        failure: _TransportFailure | None,
        method: str,
        url_path: str,
        business_id: str | None,
        attempts: int,
        uncertain: bool,
        why: str,
    ) -> ThredTransientError:
        if response is not None:
            message, code, details = self._parse_error(response)
            status: int | None = response.status_code
        else:
            message = self._redact(failure.description) if failure else "no response"
            code, details, status = None, {}, None
        return ThredTransientError(
            f"{message} ({why})",
            outcome_uncertain=uncertain,
            attempts=attempts,
            status=status,
            error_code=code,
            details=details,
            method=method,
            path=url_path,
            business_id=business_id,
        )


class _NotJson:
    def __repr__(self) -> str:
        return "<not JSON>"


_NOT_JSON: Any = _NotJson()


def _describe_body(response: httpx.Response, body: Any) -> str:
    """A few words on what came back, for configuration messages (never the body itself)."""
    kind = response.headers.get("Content-Type", "").split(";")[0].strip() or "no content type"
    if not response.content:
        return f"an empty body ({kind})"
    if body is _NOT_JSON:
        looks_html = response.content.lstrip()[:15].lower().startswith((b"<!doctype", b"<html"))
        return f"an HTML page ({kind})" if looks_html else f"a body that is not JSON ({kind})"
    if isinstance(body, dict):
        return "JSON without access_token/token_type"
    return f"JSON {type(body).__name__}"
