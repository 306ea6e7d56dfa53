"""Retry policy arithmetic: which failures to retry, how long to wait, when to stop.

Pure functions so the numbers can be tested without a network. The client owns the loop.

Choices worth knowing:

- Full jitter (``uniform(0, min(cap, base * 2**n))``, n = 0 for the first retry) spreads
  concurrent workers that failed together, instead of retrying in lock-step.
- ``Retry-After`` is a *lower bound*, not a replacement: the delay is
  ``max(retry_after, jittered backoff, MIN_DELAY_S)``, capped by ``backoff_max_s``. A server
  that keeps answering ``429`` with ``Retry-After: 0`` therefore still sees the back-off
  grow, and every such retry counts as an attempt (the dlt "Retry-After: 0 loop" bug).
- No retry is ever sooner than ``MIN_DELAY_S``.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Protocol

__all__ = [
    "MIN_DELAY_S",
    "RETRYABLE_STATUSES",
    "Jitter",
    "backoff_cap",
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
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if math.isnan(seconds) or math.isinf(seconds):
            return None
        return max(0.0, seconds)
    try:
        when = parsedate_to_datetime(text)
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
