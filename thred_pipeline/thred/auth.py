"""Tokens as an ``httpx.Auth`` flow: a bearer token per scope, one renewal after a 401.

Thred has two token tiers: a partner token (Basic partner credentials) and a token per
business (minted with the partner token). ``ThredAuth`` is the one 401 path for both: it
adds the scope's cached token, and when the answer is 401 it renews that token once and
sends again. Minting a business token is itself a request authenticated by the partner
scope's ``ThredAuth``, so a revoked partner token met there is renewed by the same flow.

Why ``async_auth_flow`` and not the plain ``auth_flow`` generator: httpx asks a flow that
does I/O or takes locks to override the async (and sync) variants. Fetching a token must be
retried like any request and shared by concurrent tasks (``TokenCache``). A plain flow that
yields the token request itself cannot do either: httpx raises that request's transport
errors past the generator (it never sees them to retry), and nothing lets a second task wait
for the first one's fetch. The sync variant is refused: this client is async only.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any
from urllib.parse import urlencode

import httpx

from thred_pipeline.thred.diagnose import partner_token_problem, unanswered_partner_token
from thred_pipeline.thred.errors import ThredAuthError, ThredError, ThredNotFoundError
from thred_pipeline.thred.paths import business_token_path, partner_token_path
from thred_pipeline.thred.responses import (
    Redactor,
    error_for_response,
    json_body,
    request_context,
)
from thred_pipeline.thred.sending import Clock, Sender
from thred_pipeline.thred.settings import ThredSettings
from thred_pipeline.thred.stats import ThredClientStats
from thred_pipeline.thred.tokens import TokenCache, TokenKey

__all__ = ["DEFAULT_TOKEN_LIFETIME_S", "ThredAuth", "Tokens"]

logger = logging.getLogger("thred_pipeline.thred")

DEFAULT_TOKEN_LIFETIME_S = 3600.0
"""Used when a token response omits ``expires_in`` (the documented lifetime)."""


class ThredAuth(httpx.Auth):
    """Bearer auth for one token scope (``None``: the partner; else a business id)."""

    def __init__(
        self, tokens: TokenCache, scope: TokenKey, *, on_renewal: Callable[[], None] | None = None
    ) -> None:
        self._tokens = tokens
        self._scope = scope
        self._on_renewal = on_renewal

    def __repr__(self) -> str:
        return f"ThredAuth(scope={self._scope!r})"

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        raise TypeError("ThredAuth fetches tokens asynchronously: use httpx.AsyncClient")

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self._tokens.get(self._scope)
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code != 401:
            return
        await response.aread()  # give the connection back before fetching a token
        tier = "partner" if self._scope is None else "business"
        logger.warning(
            "thred 401 on %s %s: renewing the %s token once",
            request.method,
            request.url.path,
            tier,
        )
        if self._on_renewal is not None:
            self._on_renewal()
        token = await self._tokens.get(self._scope, stale=token)
        request.headers["Authorization"] = f"Bearer {token}"
        yield request


class Tokens:
    """Where partner and business tokens come from: fetched through ``Sender``, cached."""

    def __init__(
        self,
        settings: ThredSettings,
        sender: Sender,
        *,
        redactor: Redactor,
        stats: ThredClientStats,
        clock: Clock,
    ) -> None:
        self._settings = settings
        self._sender = sender
        self._redactor = redactor
        self._stats = stats
        self.cache = TokenCache(self._fetch, clock=clock, margin_s=settings.token_refresh_margin_s)
        self._auths: dict[TokenKey, ThredAuth] = {}
        self._partner = self.auth(None)
        self._basic = httpx.BasicAuth(settings.partner_id, settings.api_key.get_secret_value())

    def __repr__(self) -> str:
        return f"Tokens({self.cache!r})"

    def auth(self, scope: TokenKey) -> ThredAuth:
        """The flow for ``scope``; it keeps no state between requests, so one per scope."""
        auth = self._auths.get(scope)
        if auth is None:
            auth = self._auths[scope] = ThredAuth(self.cache, scope, on_renewal=self._count_renewal)
        return auth

    def _count_renewal(self) -> None:
        self._stats.token_renewals_after_401 += 1

    async def _fetch(self, scope: TokenKey) -> tuple[str, float]:
        if scope is None:
            return await self._fetch_partner_token()
        return await self._fetch_business_token(scope)

    async def _fetch_partner_token(self) -> tuple[str, float]:
        """The partner token, or ``ThredConfigError`` when the settings cannot give one."""
        self._stats.token_fetches += 1
        form = {"grant_type": "client_credentials", "client_id": self._settings.partner_id}
        request = self._sender.build(
            "POST",
            partner_token_path(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            content=urlencode(form).encode(),
        )
        base_url = self._settings.base_url
        try:
            response = await self._sender.send(request, auth=self._basic, business_id=None)
        except ThredError as exc:
            problem = unanswered_partner_token(exc, base_url)
            if problem is None:
                raise
            raise problem from None
        problem = partner_token_problem(response, base_url, self._redactor)
        if problem is not None:
            raise problem
        token = self._read_token(response, business_id=None)
        logger.debug("thred partner token fetched (expires_in=%.0fs)", token[1])
        return token

    async def _fetch_business_token(self, business_id: str) -> tuple[str, float]:
        # The partner token first: its refusal is the run's problem, not this business's.
        await self.cache.get(None)
        self._stats.token_fetches += 1
        request = self._sender.build("POST", business_token_path(business_id))
        response = await self._sender.send(request, auth=self._partner, business_id=business_id)
        token = self._read_token(response, business_id=business_id)
        logger.debug(
            "thred business token fetched for %s (expires_in=%.0fs)", business_id, token[1]
        )
        return token

    def _read_token(
        self, response: httpx.Response, *, business_id: str | None
    ) -> tuple[str, float]:
        if not 200 <= response.status_code < 300:
            raise self._refused(response, business_id)
        body = json_body(response)
        access_token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(access_token, str) or not access_token:
            raise _bad_token(
                response,
                business_id,
                "token response has no access_token",
                "invalid_token_response",
            )
        self._redactor.add(access_token)
        scoped_to = body.get("business_id")
        if business_id is not None and scoped_to is not None and str(scoped_to) != business_id:
            # Never let a token minted for one business serve another.
            raise _bad_token(
                response,
                business_id,
                "business token is scoped to a different business",
                "token_scope_mismatch",
            )
        return access_token, _lifetime(body.get("expires_in", DEFAULT_TOKEN_LIFETIME_S))

    def _refused(self, response: httpx.Response, business_id: str | None) -> ThredError:
        error = error_for_response(response, self._redactor, business_id=business_id)
        if 400 <= response.status_code < 500 and not isinstance(error, ThredNotFoundError):
            # Any other refusal at the token endpoint means these credentials cannot be used.
            return ThredAuthError(error.message, **error.context())
        return error


def _bad_token(
    response: httpx.Response, business_id: str | None, message: str, code: str
) -> ThredAuthError:
    return ThredAuthError(
        message,
        status=response.status_code,
        error_code=code,
        **request_context(response, business_id),
    )


def _lifetime(expires_in: Any) -> float:
    if isinstance(expires_in, str):
        try:
            return float(expires_in)
        except ValueError:
            return DEFAULT_TOKEN_LIFETIME_S
    if isinstance(expires_in, bool) or not isinstance(expires_in, int | float):
        return DEFAULT_TOKEN_LIFETIME_S
    return float(expires_in)
