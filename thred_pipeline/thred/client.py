"""Async HTTP client for the Thred Platform API.

What it guarantees, and where each guarantee lives:

- **Retries only what can be retried** (``retry.RetryPolicy``, run by ``sending.Sender``):
  connection errors, timeouts, 429 and 500/502/503/504, with full-jitter exponential backoff;
  ``Retry-After`` (seconds or HTTP-date) is honoured as a minimum wait, capped by
  ``backoff_max_s``; it stops at ``max_attempts`` or when the next wait would overrun
  ``retry_budget_s``. 4xx is final.
- **Writes are retried too.** That is only safe because every write the pipeline sends
  carries an ``external_id`` in the body or an ``Idempotency-Key`` header, which Thred
  answers on replay with the stored object (200) instead of a duplicate. Callers must keep
  that contract; a write without either must not go through this client.
- **Says whether a failed write may have happened** (``ThredTransientError
  .outcome_uncertain``), so the ledger can record "unknown" rather than "failed".
- **Two-tier tokens** (``auth.ThredAuth``, an ``httpx.Auth`` flow): a partner token (Basic
  credentials) and one token per business, cached, renewed before expiry, fetched once per
  business even under concurrency; a 401 renews once and retries once, then
  ``ThredAuthError`` pauses that business only.
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
- **Lists are read by one helper** (``pagination``), which never follows a ``next`` URL.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import random
import time
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from types import TracebackType
from typing import Any, Self

import httpx

from thred_pipeline.thred import pagination
from thred_pipeline.thred.auth import Tokens
from thred_pipeline.thred.encoding import (
    body_external_id,
    encode_json,
    encode_query,
    header_safe_idempotency_key,
)
from thred_pipeline.thred.errors import RequestNotSendable
from thred_pipeline.thred.governor import RateGovernor, RateLimits, shared_governor
from thred_pipeline.thred.pagination import MAX_PAGE_SIZE
from thred_pipeline.thred.paths import check_business_id, platform_path
from thred_pipeline.thred.responses import (
    Redactor,
    ThredResponse,
    error_for_response,
    success_body,
)
from thred_pipeline.thred.retry import Jitter
from thred_pipeline.thred.sending import (
    Clock,
    Sender,
    Sleep,
    http_client,
    rate_limits,
    retry_policy,
)
from thred_pipeline.thred.settings import ThredSettings
from thred_pipeline.thred.stats import ThredClientStats

__all__ = ["MAX_PAGE_SIZE", "ThredClient", "ThredResponse", "header_safe_idempotency_key"]


def _redactor(settings: ThredSettings) -> Redactor:
    """Everything that must never be echoed back in an error or log."""
    key = settings.api_key.get_secret_value()
    pair = f"{settings.partner_id}:{key}"
    return Redactor(key, pair, base64.b64encode(pair.encode()).decode("ascii"))


def _governor(settings: ThredSettings, clock: Clock | None) -> RateGovernor:
    limits: RateLimits = rate_limits(settings)
    if clock is not None:
        return RateGovernor(limits, clock)
    return shared_governor((settings.base_url, settings.partner_id), limits)


class ThredClient:
    """Async client for ``/v1/platform/`` (see the module docstring for its guarantees).

    Use ``async with ThredClient(settings) as client:``. ``transport`` swaps the HTTP
    transport (tests); ``sleep``, ``rng`` and ``clock`` make retries, token expiry and
    pacing deterministic in tests. One client may be shared by many concurrent tasks.

    Requests are paced by ``governor`` (see ``governor``): by default the process's one
    for this Thred environment and partner, so every client of the process shares each
    business's bucket; a client given its own ``clock`` gets a governor of its own.
    """

    def __init__(
        self,
        settings: ThredSettings,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        sleep: Sleep | None = None,
        rng: Jitter | None = None,
        clock: Clock | None = None,
        governor: RateGovernor | None = None,
    ) -> None:
        self._settings = settings
        self.stats = ThredClientStats()
        self._redactor = _redactor(settings)
        self._http = http_client(settings, transport, self.stats)
        self.governor = governor or _governor(settings, clock)
        clock = clock or time.monotonic
        self._sender = Sender(
            http=self._http,
            policy=retry_policy(settings),
            governor=self.governor,
            stats=self.stats,
            redactor=self._redactor,
            sleep=sleep or asyncio.sleep,
            clock=clock,
            rng=rng or random.Random(),  # noqa: S311 - jitter, not crypto
        )
        self._tokens = Tokens(
            settings, self._sender, redactor=self._redactor, stats=self.stats, clock=clock
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
        self._tokens.cache.clear()
        await self._http.aclose()

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
        (sent as the ``Idempotency-Key`` header, identical on every attempt; a key that is
        not printable ASCII is sent percent-encoded, see ``header_safe_idempotency_key``).

        Raises ``ThredValidationError`` (4xx), ``ThredDuplicateExternalId`` (409
        ``duplicate_external_id``), ``ThredNotFoundError`` (404), ``ThredAuthError`` (401
        after one renewal, 403), ``ThredTransientError`` (retries or budget exhausted; see
        ``outcome_uncertain``), ``RequestNotSendable`` (nothing sent: the path, a header or
        the body cannot be encoded) or ``ThredError`` (anything else); ``ThredConfigError``
        when the partner token cannot be had (see the module docstring).
        """
        method = method.upper()
        request = self._build(method, path, business_id, json, params, idempotency_key)
        self.stats.count_request(method)
        wall_start = time.perf_counter()
        try:
            auth = self._tokens.auth(business_id)
            response = await self._sender.send(request, auth=auth, business_id=business_id)
        finally:
            self.stats.elapsed_s += time.perf_counter() - wall_start
        if 200 <= response.status_code < 300:
            return ThredResponse(response.status_code, success_body(response, business_id))
        raise error_for_response(
            response, self._redactor, business_id=business_id, external_id=body_external_id(json)
        )

    def _build(
        self,
        method: str,
        path: str,
        business_id: str | None,
        json: Any,
        params: Mapping[str, Any] | None,
        idempotency_key: str | None,
    ) -> httpx.Request:
        """The request as it goes on the wire, or ``RequestNotSendable`` before anything is."""
        url_path = ""
        try:
            url_path = platform_path(path)
            if business_id is not None:
                check_business_id(business_id)
            headers: dict[str, str] = {}
            content = None if json is None else encode_json(json)
            if content is not None:
                headers["Content-Type"] = "application/json"
            if idempotency_key is not None:
                headers["Idempotency-Key"] = header_safe_idempotency_key(idempotency_key)
        except ValueError as exc:
            raise RequestNotSendable(
                f"URL path cannot be built: {exc}",
                details={"path": [str(exc)]},
                method=method,
                business_id=business_id,
            ) from None
        except RequestNotSendable as exc:
            exc.method, exc.path, exc.business_id = method, url_path, business_id
            raise
        return self._sender.build(
            method, url_path, headers=headers, content=content, params=encode_query(params)
        )

    def iter_pages(
        self,
        path: str,
        *,
        business_id: str | None = None,
        params: Mapping[str, Any] | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Yield every item of a paginated list, requesting ``page=1, 2, ...``.

        Stops when ``next`` is null, when ``page >= page_info.total_pages``, or on an empty
        page (and, if the server reports neither, on a short page); see ``pagination``.
        """
        get_page = functools.partial(self._get, path, business_id)
        return pagination.pages(
            get_page, params, page_size=page_size, path=path, business_id=business_id
        )

    async def get_count(
        self,
        path: str,
        *,
        business_id: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> int:
        """Number of items in a paginated list, read from ``count`` with ``page_size=1``."""
        get_page = functools.partial(self._get, path, business_id)
        return await pagination.count(get_page, params, path=path, business_id=business_id)

    async def _get(
        self, path: str, business_id: str | None, params: Mapping[str, Any]
    ) -> ThredResponse:
        return await self.request("GET", path, business_id=business_id, params=params)

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
        await self._tokens.cache.get(None)
