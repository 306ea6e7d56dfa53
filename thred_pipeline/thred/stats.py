"""Plain counters kept by the client, shaped for Dagster materialization metadata.

Dagster only plots int/float metadata, so everything here is an int or a float and
``as_metrics`` flattens the per-method and per-status maps into stable keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ThredClientStats"]


@dataclass
class ThredClientStats:
    """Counters for one ``ThredClient``.

    ``requests`` counts logical calls to ``ThredClient.request`` (one per record write or
    page read); ``http_attempts`` counts every HTTP exchange, retries and token fetches
    included, and is the number to compare with a rate limit.
    """

    requests: int = 0
    requests_by_method: dict[str, int] = field(default_factory=dict)
    writes: int = 0
    http_attempts: int = 0
    retries: int = 0
    responses_by_status: dict[int, int] = field(default_factory=dict)
    transport_errors: int = 0
    token_fetches: int = 0
    token_renewals_after_401: int = 0
    elapsed_s: float = 0.0
    """Summed wall time of ``request`` calls (overlapping calls add up)."""
    rate_waits: int = 0
    """Attempts that waited for a slot of the rate governor (``rate_wait_s`` in all)."""
    rate_wait_s: float = 0.0

    def count_request(self, method: str) -> None:
        self.requests += 1
        self.requests_by_method[method] = self.requests_by_method.get(method, 0) + 1
        if method != "GET":
            self.writes += 1

    def count_status(self, status: int) -> None:
        self.responses_by_status[status] = self.responses_by_status.get(status, 0) + 1

    def as_metrics(self, prefix: str = "thred_") -> dict[str, int | float]:
        """Flat ``{name: number}`` view, e.g. ``thred_requests_get``, ``thred_status_429``."""
        out: dict[str, int | float] = {
            f"{prefix}requests": self.requests,
            f"{prefix}writes": self.writes,
            f"{prefix}http_attempts": self.http_attempts,
            f"{prefix}retries": self.retries,
            f"{prefix}transport_errors": self.transport_errors,
            f"{prefix}token_fetches": self.token_fetches,
            f"{prefix}token_renewals_after_401": self.token_renewals_after_401,
            f"{prefix}elapsed_s": round(self.elapsed_s, 6),
            f"{prefix}rate_waits": self.rate_waits,
            f"{prefix}rate_wait_s": round(self.rate_wait_s, 6),
        }
        for method, n in sorted(self.requests_by_method.items()):
            out[f"{prefix}requests_{method.lower()}"] = n
        for status, n in sorted(self.responses_by_status.items()):
            out[f"{prefix}status_{status}"] = n
        return out
