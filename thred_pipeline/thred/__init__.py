"""Thred Platform API client, split by concern.

``client`` (``ThredClient``: the calls), ``auth`` (tokens as an ``httpx.Auth`` flow),
``sending`` + ``retry`` (the retry loop and its policy), ``governor`` (a token bucket per
business that every attempt draws from; it slows a business on 429), ``pagination``, ``encoding``
(query, JSON, Idempotency-Key), ``responses`` (bodies and status -> exception),
``diagnose`` (why the partner token failed: ``ThredConfigError``), ``errors``, ``paths``,
``settings``, ``stats``, ``tokens`` (the single-flight cache).

Import from here: ``from thred_pipeline.thred import ThredClient, ThredSettings``.
"""

from thred_pipeline.thred import errors, paths
from thred_pipeline.thred.client import ThredClient
from thred_pipeline.thred.encoding import header_safe_idempotency_key
from thred_pipeline.thred.errors import *  # noqa: F403 - the exceptions are the package's API
from thred_pipeline.thred.pagination import MAX_PAGE_SIZE
from thred_pipeline.thred.paths import *  # noqa: F403 - so are the path helpers
from thred_pipeline.thred.responses import ThredResponse
from thred_pipeline.thred.settings import ThredSettings
from thred_pipeline.thred.stats import ThredClientStats

__all__ = [
    "MAX_PAGE_SIZE",
    "ThredClient",
    "ThredClientStats",
    "ThredResponse",
    "ThredSettings",
    "header_safe_idempotency_key",
    *errors.__all__,
    *paths.__all__,
]
