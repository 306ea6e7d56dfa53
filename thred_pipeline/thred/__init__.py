"""Thred Platform API client: settings, errors, tokens, retries and paths.

Import from here: ``from thred_pipeline.thred import ThredClient, ThredSettings``.
"""

from thred_pipeline.thred.client import MAX_PAGE_SIZE, ThredClient, ThredResponse
from thred_pipeline.thred.errors import (
    ThredAuthError,
    ThredError,
    ThredNotFoundError,
    ThredTransientError,
    ThredValidationError,
)
from thred_pipeline.thred.paths import (
    API_PREFIX,
    business_resource,
    business_token_path,
    partner_token_path,
    platform_path,
)
from thred_pipeline.thred.settings import ThredSettings
from thred_pipeline.thred.stats import ThredClientStats

__all__ = [
    "API_PREFIX",
    "MAX_PAGE_SIZE",
    "ThredAuthError",
    "ThredClient",
    "ThredClientStats",
    "ThredError",
    "ThredNotFoundError",
    "ThredResponse",
    "ThredSettings",
    "ThredTransientError",
    "ThredValidationError",
    "business_resource",
    "business_token_path",
    "partner_token_path",
    "platform_path",
]
