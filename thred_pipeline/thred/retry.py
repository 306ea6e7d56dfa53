"""Retry policy: which failures to retry, how long to wait, when to stop, what may have happened.

Pure code, so every number is tested without a network; ``thred.sending`` owns the loop.
The shape follows dlt's ``sources/helpers/requests/retry.py`` (retry on a status set and on
connection/timeout errors, exponential wait that honours ``Retry-After``, a stop rule), with
these choices:

- Full jitter (``uniform(0, min(cap, base * 2**n))``, n = 0 for the first retry) spreads
  concurrent workers that failed together, instead of retrying in lock-step.
- ``Retry-After`` (delta-seconds or HTTP-date) is a *lower bound*, not a replacement: the
  delay is ``max(retry_after, jittered backoff, MIN_DELAY_S)``, capped by ``backoff_max_s``.
  A server that keeps answering ``429`` with ``Retry-After: 0`` therefore still sees the
  back-off grow, and every such retry counts as an attempt (the dlt "Retry-After: 0 loop" bug).
- Two stop rules: ``max_attempts``, and a time budget per logical request (the next wait
  must not end past it).
- Writes are retried like reads: every write the pipeline sends is idempotent (an
  ``external_id`` or ``Idempotency-Key``). What the policy adds is the *uncertainty* of an
  outcome: a failure after which the server may have applied the request (a 5xx, a read
  timeout, a dropped connection) makes a failed write "maybe applied"; a refused connection
  or a 429 does not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Protocol

import httpx

__all__ = [
    "MIN_DELAY_S",
    "RETRYABLE_STATUSES",
    "Jitter",
    "RetryPolicy",
    "TransportFailure",
    "Verdict",
    "backoff_cap",
    "classify_transport_error",
    "compute_delay",
    "parse_retry_after",
]

MIN_DELAY_S = 0.05
"""Floor for every retry delay, so even ``Retry-After: 0`` never busy-loops."""

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
"""HTTP statuses that are retried. Everything else is final (4xx is never retried)."""


class Jitter(Protocol):
    """What the policy needs from an RNG (``random.Random`` satisfies it)."""

    def uniform(self, a: float, b: float) -> float: ...


def backoff_cap(retry_index: int, base_s: float, max_s: float) -> float:
    """Upper bound of the jitter window for the ``retry_index``-th retry (0-based)."""
    if retry_index < 0:
        raise ValueError("retry_index must be >= 0")
    # Avoid float overflow for absurd attempt counts: 2**64 * base is already > any cap.
    exponent = min(retry_index, 64)
    return min(max_s, base_s * math.pow(2, exponent))


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait according to a ``Retry-After`` header, or None if absent/unreadable.

    Accepts delta-seconds (``"0"``, ``"2"``, also a lenient ``"1.5"``) and HTTP-dates
    (``"Wed, 21 Oct 2015 07:28:00 GMT"``). Negative values and dates in the past give 0.
    """
    text = (value or "").strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        return _seconds_until(text, now)
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


def _seconds_until(http_date: str, now: datetime | None) -> float | None:
    try:
        when = parsedate_to_datetime(http_date)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 850/asctime forms: HTTP-dates are always GMT
        when = when.replace(tzinfo=UTC)
    current = now if now is not None else datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


def compute_delay(
    retry_index: int,
    *,
    base_s: float,
    max_s: float,
    rng: Jitter,
    retry_after_s: float | None = None,
) -> float:
    """Delay before the ``retry_index``-th retry (0-based), see the module docstring."""
    jittered = rng.uniform(0.0, backoff_cap(retry_index, base_s, max_s))
    wanted = max(jittered, retry_after_s or 0.0, MIN_DELAY_S)
    return max(MIN_DELAY_S, min(wanted, max_s))


@dataclass(frozen=True, slots=True)
class TransportFailure:
    """A request that produced no HTTP response, stripped of the httpx exception.

    The exception itself is never kept: its ``request`` carries the Authorization header.
    """

    description: str
    retryable: bool
    uncertain: bool


_NOT_SENT = (httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ConnectError, httpx.ProxyError)
_MAYBE_SENT = (
    httpx.TimeoutException,
    httpx.RemoteProtocolError,
    httpx.NetworkError,
    httpx.DecodingError,
)


def classify_transport_error(exc: httpx.RequestError) -> TransportFailure:
    """Decide retryability and whether the request may have reached the server."""
    name = type(exc).__name__
    description = f"{name}: {exc}" if str(exc) else name
    # Nothing was sent: no connection, or no free connection in the pool.
    if isinstance(exc, _NOT_SENT):
        return TransportFailure(description, retryable=True, uncertain=False)
    # The request was (possibly partly) sent and no complete answer came back.
    if isinstance(exc, _MAYBE_SENT):
        return TransportFailure(description, retryable=True, uncertain=True)
    # UnsupportedProtocol, LocalProtocolError, TooManyRedirects...: our bug, not the network.
    return TransportFailure(description, retryable=False, uncertain=False)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do after a failed attempt: wait ``delay_s`` and retry, or give up (``why``)."""

    delay_s: float
    give_up: str = ""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """The numbers of one retry series (see the module docstring for the rules)."""

    max_attempts: int = 6
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    budget_s: float = 300.0
    retryable_statuses: frozenset[int] = RETRYABLE_STATUSES

    def retries_status(self, status: int) -> bool:
        return status in self.retryable_statuses

    @staticmethod
    def status_is_uncertain(status: int) -> bool:
        """A 429 was refused before any processing; any other retried status may not be."""
        return status != 429

    def after_failure(
        self,
        attempts: int,
        *,
        spent_s: float,
        rng: Jitter,
        retry_after_s: float | None = None,
    ) -> Verdict:
        """The verdict after ``attempts`` failed attempts that took ``spent_s`` so far."""
        if attempts >= self.max_attempts:
            return Verdict(0.0, f"{attempts} attempts made")
        delay = compute_delay(
            attempts - 1,
            base_s=self.backoff_base_s,
            max_s=self.backoff_max_s,
            rng=rng,
            retry_after_s=retry_after_s,
        )
        if spent_s + delay > self.budget_s:
            return Verdict(
                delay,
                f"retry budget {self.budget_s:g}s would be exceeded "
                f"({spent_s:.2f}s spent, next wait {delay:.2f}s)",
            )
        return Verdict(delay)
