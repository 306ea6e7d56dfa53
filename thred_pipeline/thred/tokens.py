"""Token cache: one partner token plus one token per business, each renewed before expiry.

Why it is shaped like this:

- One ``asyncio.Lock`` per key (partner or business id): a burst of concurrent requests for
  one business waits on a single in-flight fetch instead of minting N tokens.
- If that fetch fails, the callers that were waiting for it get the same error instead of
  each starting its own retry series against a failing token endpoint.
- After a 401 the caller passes the rejected token as ``stale``: if another task already
  replaced it, the new one is used and no second fetch happens.
- Tokens are renewed ``margin_s`` before expiry, but never more than half their lifetime
  early, so a short-lived token is not refetched on every call.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

__all__ = ["AccessToken", "FetchToken", "TokenCache", "TokenKey"]

TokenKey = str | None
"""``None`` is the partner token; a string is the business id the token is scoped to."""

FetchToken = Callable[[TokenKey], Awaitable[tuple[str, float]]]
"""Fetches a new token for a key: ``(access_token, expires_in_seconds)``."""


@dataclass(frozen=True, slots=True)
class AccessToken:
    """A bearer token and the monotonic time after which it is renewed."""

    value: str = field(repr=False)
    refresh_at: float

    def __repr__(self) -> str:
        return f"AccessToken(value='<redacted>', refresh_at={self.refresh_at:.3f})"


class TokenCache:
    """Per-key token storage with single-flight refresh (see the module docstring)."""

    def __init__(self, fetch: FetchToken, *, clock: Callable[[], float], margin_s: float) -> None:
        self._fetch = fetch
        self._clock = clock
        self._margin_s = margin_s
        self._tokens: dict[TokenKey, AccessToken] = {}
        self._locks: dict[TokenKey, asyncio.Lock] = {}
        self._completed: dict[TokenKey, int] = {}  # fetches finished (ok or not) per key
        self._failure: dict[TokenKey, tuple[int, BaseException]] = {}

    def __repr__(self) -> str:
        return f"TokenCache(keys={len(self._tokens)})"

    def _usable(self, key: TokenKey, stale: str | None) -> AccessToken | None:
        token = self._tokens.get(key)
        if token is None or token.value == stale or self._clock() >= token.refresh_at:
            return None
        return token

    def peek(self, key: TokenKey) -> AccessToken | None:
        """The cached token if it is still usable, without fetching."""
        return self._usable(key, None)

    def invalidate(self, key: TokenKey, stale: str | None = None) -> None:
        """Forget the token for ``key`` (only if it is still ``stale``, when given)."""
        token = self._tokens.get(key)
        if token is not None and (stale is None or token.value == stale):
            del self._tokens[key]

    def clear(self) -> None:
        self._tokens.clear()

    async def get(self, key: TokenKey, *, stale: str | None = None) -> str:
        """Return a usable token for ``key``, fetching at most once per renewal."""
        token = self._usable(key, stale)
        if token is not None:
            return token.value
        # Count of fetches finished before we queued: any failure after that is one we
        # were waiting on (possibly already in flight when we arrived).
        seen = self._completed.get(key, 0)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            token = self._usable(key, stale)
            if token is not None:
                return token.value
            failure = self._failure.get(key)
            if failure is not None and failure[0] > seen:
                # The fetch we queued behind failed: share its outcome, do not hammer.
                raise copy.copy(failure[1]) from None
            started = self._clock()
            try:
                value, expires_in = await self._fetch(key)
            except Exception as exc:
                done = self._completed[key] = self._completed.get(key, 0) + 1
                self._failure[key] = (done, exc)
                raise
            self._completed[key] = self._completed.get(key, 0) + 1
            self._failure.pop(key, None)
            lifetime = max(0.0, expires_in)
            margin = min(self._margin_s, lifetime / 2)
            self._tokens[key] = AccessToken(value=value, refresh_at=started + lifetime - margin)
            return value
