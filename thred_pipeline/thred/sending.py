"""One request on the wire, paced and retried: the only place that calls httpx.

``Sender.send`` runs the retry loop around ``httpx.AsyncClient.send`` (whose ``auth`` flow
adds the token and renews it after a 401), so every exchange -- a record write, a page read,
a token request -- gets the same retries, logs and counters, and takes a slot from its
scope's bucket in the rate governor (``governor``) before every attempt; each answer tells
the governor how the server took it (a 429 slows the whole business). httpx exceptions
never escape: their ``request`` would carry the Authorization header.
"""

from __future__ import annotations

import functools
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import certifi
import httpx

from thred_pipeline.thred.errors import ErrorContext, ThredError, ThredTransientError
from thred_pipeline.thred.governor import RateGovernor, RateLimits, Ticket
from thred_pipeline.thred.paths import API_PREFIX
from thred_pipeline.thred.pool import LeanTransport
from thred_pipeline.thred.responses import Redactor, parse_error
from thred_pipeline.thred.retry import (
    Jitter,
    RetryPolicy,
    TransportFailure,
    classify_transport_error,
    parse_retry_after,
)
from thred_pipeline.thred.settings import ThredSettings
from thred_pipeline.thred.stats import ThredClientStats

__all__ = ["Clock", "Sender", "Sleep", "http_client", "rate_limits", "retry_policy"]

logger = logging.getLogger("thred_pipeline.thred")

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]

_USER_AGENT = "thred-pipeline/0.1 (+httpx)"
# Below uvicorn's 5 s keep-alive, so we rarely reuse a socket the server is closing (which
# would surface as an uncertain failure).
_KEEPALIVE_S = 4.0
_URLS_KEPT = 4096  # parsed URLs kept per client: every create path, few update paths


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One verifying context per process: building one costs ~70 ms, and clients are per step."""
    return ssl.create_default_context(cafile=certifi.where())


def _api_host(base_url: str) -> str:
    """Accept ``https://host`` as well as ``https://host/v1/platform/`` as the base URL."""
    trimmed = base_url.rstrip("/")
    suffix = API_PREFIX.rstrip("/")
    return trimmed[: -len(suffix)] if trimmed.endswith(suffix) else trimmed


class _NoCookies(httpx.Cookies):
    """A cookie jar that keeps nothing: Thred's API authenticates by token and documents no
    cookie. httpx rebuilds every response as a ``urllib`` request to look for ``Set-Cookie``,
    7.5% of the sync's CPU in issue 8's profile."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None

    def set_cookie_header(self, request: httpx.Request) -> None:
        return None


class _CookielessClient(httpx.AsyncClient):
    """``httpx.AsyncClient`` whose cookie jar keeps nothing (see ``_NoCookies``)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._no_cookies = _NoCookies()

    @property
    def cookies(self) -> httpx.Cookies:
        return self._no_cookies

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        raise TypeError("the Thred client keeps no cookies")


def http_client(
    settings: ThredSettings, transport: httpx.AsyncBaseTransport | None, stats: ThredClientStats
) -> httpx.AsyncClient:
    """The connection pool (``pool.LeanTransport`` unless a test supplies a transport); its
    event hooks count every exchange, 401s and tokens included."""

    async def count_request(request: httpx.Request) -> None:
        stats.http_attempts += 1

    async def count_response(response: httpx.Response) -> None:
        stats.count_status(response.status_code)

    tls = _tls_context() if settings.verify_tls else httpx.create_ssl_context(verify=False)
    return _CookielessClient(
        base_url=_api_host(settings.base_url),
        timeout=httpx.Timeout(
            settings.timeout_s, connect=settings.connect_timeout_s, pool=settings.timeout_s
        ),
        verify=tls,
        transport=transport
        or LeanTransport(
            ssl_context=tls,
            max_connections=settings.max_connections,
            keepalive_expiry=_KEEPALIVE_S,
        ),
        follow_redirects=False,
        headers={"User-Agent": _USER_AGENT, "Accept": "application/json"},
        event_hooks={"request": [count_request], "response": [count_response]},
    )


def retry_policy(settings: ThredSettings) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=settings.max_attempts,
        backoff_base_s=settings.backoff_base_s,
        backoff_max_s=settings.backoff_max_s,
        budget_s=settings.retry_budget_s,
    )


def rate_limits(settings: ThredSettings) -> RateLimits:
    return RateLimits(ceiling=settings.rate_per_business, burst=settings.rate_burst)


@dataclass
class _Series:
    """One logical request's attempts so far."""

    request: httpx.Request
    business_id: str | None
    started: float
    attempts: int = 0
    uncertain: bool = False

    def context(self) -> ErrorContext:
        method, path = self.request.method, self.request.url.path
        return {"method": method, "path": path, "business_id": self.business_id}


Outcome = httpx.Response | TransportFailure

_CONTENT_LENGTH, _TRANSFER_ENCODING, _HOST = b"content-length", b"transfer-encoding", b"host"
_EMPTY_BODY_LENGTH = (b"Content-Length", b"0")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


@dataclass(frozen=True)
class _Defaults:
    """What ``httpx.AsyncClient.build_request`` merges into every request, taken from the
    client once: its headers (raw, in order) and its timeout. ``build_request`` re-merges
    and re-encodes them, a tenth of the sync's CPU in issue 8's profile."""

    headers: tuple[tuple[bytes, bytes, bytes], ...]  # name, lowercased name, value
    timeout: dict[str, float | None]

    @classmethod
    def of(cls, http: httpx.AsyncClient) -> _Defaults | None:
        """None for a client whose params or cookies a request must carry."""
        if http.params or http.cookies:
            return None
        raw = tuple((name, name.lower(), value) for name, value in http.headers.raw)
        return cls(raw, http.timeout.as_dict())

    def request(
        self,
        method: str,
        url: httpx.URL,
        host: bytes,
        headers: dict[str, str] | None,
        body: bytes,
        params: list[tuple[str, str]] | None,
    ) -> httpx.Request:
        """``build_request``'s merge, done with the defaults already encoded: the request's
        own headers replace same-named defaults and follow them; then Content-Length (of a
        body), and in front Host and, for a body method without a body, Content-Length 0."""
        method = method.upper()
        merged: list[tuple[bytes, bytes]]
        names: set[bytes] | frozenset[bytes]
        if headers:
            own = [(k.encode("ascii"), v.encode("ascii")) for k, v in headers.items()]
            names = {k.lower() for k, _ in own}
            merged = [(k, v) for k, lower, v in self.headers if lower not in names]
            merged += own
        else:
            merged, names = [(k, v) for k, _, v in self.headers], frozenset()
        if body and _CONTENT_LENGTH not in names:
            merged.append((b"Content-Length", str(len(body)).encode()))
            names = names | {_CONTENT_LENGTH}
        front: list[tuple[bytes, bytes]] = []
        if _HOST not in names and host:
            front.append((b"Host", host))
        sized = _CONTENT_LENGTH in names or _TRANSFER_ENCODING in names
        if not sized and method in _BODY_METHODS:
            front.append(_EMPTY_BODY_LENGTH)
        if params:
            url = httpx.URL(url, params=tuple(params))
        request = httpx.Request(
            method,
            url,
            headers=front + merged,
            stream=httpx.ByteStream(body),
            extensions={"timeout": dict(self.timeout)},
        )
        request.read()
        return request


@dataclass(frozen=True, kw_only=True, repr=False)
class Sender:
    """Sends requests with retries (see the module docstring); one per ``ThredClient``."""

    http: httpx.AsyncClient
    policy: RetryPolicy
    governor: RateGovernor
    stats: ThredClientStats
    redactor: Redactor
    sleep: Sleep
    clock: Clock
    rng: Jitter

    urls: dict[str, tuple[httpx.URL, bytes]] = field(default_factory=dict)
    defaults: _Defaults | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "defaults", _Defaults.of(self.http))

    def __repr__(self) -> str:
        return f"Sender({self.policy!r})"

    def _url(self, url_path: str) -> tuple[httpx.URL, bytes]:
        """``url_path`` on the base URL, as httpx's ``build_request`` joins them, and its Host
        header, parsed once per path: httpx parses and checks a URL character by character,
        twice per request, which was a tenth of the sync's CPU (a business's writes share
        one path)."""
        known = self.urls.get(url_path)
        if known is None:
            relative, base = httpx.URL(url_path), self.http.base_url
            url = relative
            if relative.is_relative_url:
                url = base.copy_with(raw_path=base.raw_path + relative.raw_path.lstrip(b"/"))
            known = (url, url.netloc)
            if len(self.urls) < _URLS_KEPT:
                self.urls[url_path] = known
        return known

    def build(
        self,
        method: str,
        url_path: str,
        *,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
        params: list[tuple[str, str]] | None = None,
    ) -> httpx.Request:
        """A request on this client's base URL, sent as is on every attempt: the request
        ``httpx.AsyncClient.build_request`` builds (same headers in the same order, URL,
        body and timeout; ``test_sending`` compares them), from the client's defaults
        merged once (``_Defaults``) instead of on every request."""
        defaults = self.defaults
        if defaults is None:  # a client with default params or cookies: httpx merges them
            return self.http.build_request(
                method,
                self._url(url_path)[0],
                headers=headers,
                content=content,
                params=tuple(params) if params else None,
            )
        return defaults.request(method, *self._url(url_path), headers, content or b"", params)

    async def send(
        self, request: httpx.Request, *, auth: httpx.Auth, business_id: str | None
    ) -> httpx.Response:
        """Send with retries; return the first response the policy does not retry.

        Raises ``ThredTransientError`` when attempts or the budget run out, ``ThredError``
        for a request that cannot be sent at all.
        """
        series = _Series(request, business_id, started=self.clock())
        while True:
            series.attempts += 1
            ticket = await self._slot(business_id)
            outcome = await self._attempt(series, auth)
            if isinstance(outcome, httpx.Response):
                status = outcome.status_code
                retried = self.policy.retries_status(status)
                # Read only where it counts: a 429 (the governor) or an answer retried.
                retry_after = None
                if retried or status == 429:
                    retry_after = parse_retry_after(outcome.headers.get("Retry-After"))
                self._tell_governor(ticket, status, retry_after)
                if not retried:
                    return outcome
                series.uncertain |= self.policy.status_is_uncertain(status)
            elif outcome.retryable:
                series.uncertain |= outcome.uncertain
                retry_after = None
            else:
                raise ThredError(
                    f"request could not be sent: {outcome.description}", **series.context()
                )
            await self._wait_or_give_up(series, outcome, retry_after)

    async def _slot(self, scope: str | None) -> Ticket:
        """Wait for a send slot of ``scope``'s bucket (again if a 429 voided it meanwhile)."""
        while True:
            ticket = self.governor.reserve(scope)
            if ticket.wait_s <= 0:
                return ticket  # nothing could void it in between
            self.stats.rate_waits += 1
            self.stats.rate_wait_s += ticket.wait_s
            await self.sleep(ticket.wait_s)
            if self.governor.valid(ticket):
                return ticket

    def _tell_governor(self, ticket: Ticket, status: int, retry_after: float | None) -> None:
        if status == 429:
            # Capped like the retry's own wait: no answer parks a business for longer.
            pause = None if retry_after is None else min(retry_after, self.policy.backoff_max_s)
            self.governor.on_throttled(ticket, pause)
        else:
            self.governor.on_success(ticket)

    async def _attempt(self, series: _Series, auth: httpx.Auth) -> Outcome:
        request = series.request
        sent_at = time.perf_counter()
        outcome: Outcome
        try:
            outcome = await self.http.send(request, auth=auth)
        except httpx.RequestError as exc:
            failure = classify_transport_error(exc)
            outcome = TransportFailure(
                self.redactor.text(failure.description), failure.retryable, failure.uncertain
            )
            self.stats.transport_errors += 1
        if logger.isEnabledFor(logging.DEBUG):  # its arguments cost a URL decode each
            logger.debug(
                "thred %s %s -> %s (attempt %d, %.3fs)",
                request.method,
                request.url.path,
                _status(outcome) or _reason(outcome),
                series.attempts,
                time.perf_counter() - sent_at,
            )
        return outcome

    async def _wait_or_give_up(
        self, series: _Series, outcome: Outcome, retry_after: float | None
    ) -> None:
        verdict = self.policy.after_failure(
            series.attempts,
            spent_s=self.clock() - series.started,
            rng=self.rng,
            retry_after_s=retry_after,
        )
        request, status = series.request, _status(outcome) or "-"
        reason = _reason(outcome, retry_after)
        if verdict.give_up:
            logger.warning(
                "thred giving up: %s %s status=%s attempts=%d reason=%s; %s (outcome_uncertain=%s)",
                request.method,
                request.url.path,
                status,
                series.attempts,
                reason,
                verdict.give_up,
                series.uncertain,
            )
            raise self._gave_up(series, outcome, verdict.give_up)
        logger.warning(
            "thred retry: %s %s status=%s attempt=%d/%d delay=%.2fs reason=%s",
            request.method,
            request.url.path,
            status,
            series.attempts,
            self.policy.max_attempts,
            verdict.delay_s,
            reason,
        )
        self.stats.retries += 1
        await self.sleep(verdict.delay_s)

    def _gave_up(self, series: _Series, outcome: Outcome, why: str) -> ThredTransientError:
        context = series.context()
        if isinstance(outcome, httpx.Response):
            message, said = parse_error(outcome, self.redactor)
            context.update(said)
        else:
            message = outcome.description
        return ThredTransientError(
            f"{message} ({why})",
            outcome_uncertain=series.uncertain,
            attempts=series.attempts,
            **context,
        )


def _status(outcome: Outcome) -> int | None:
    return outcome.status_code if isinstance(outcome, httpx.Response) else None


def _reason(outcome: Outcome, retry_after: float | None = None) -> str:
    if isinstance(outcome, TransportFailure):
        return outcome.description
    if retry_after is None:
        return f"HTTP {outcome.status_code}"
    return f"HTTP {outcome.status_code}, Retry-After={retry_after:g}s"
