"""Thred Platform API client: settings, errors, tokens, retries and paths.

Import from here: ``from thred_pipeline.thred import ThredClient, ThredSettings``.
"""

from thred_pipeline.thred.client import (
    MAX_PAGE_SIZE,
    ThredClient,
    ThredResponse,
    header_safe_idempotency_key,
)
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
    "RequestNotSendable",
    "ThredAuthError",
    "ThredClient",
    "ThredClientStats",
    "ThredConfigError",
    "ThredDuplicateExternalId",
    "ThredError",
    "ThredNotFoundError",
    "ThredResponse",
    "ThredSettings",
    "ThredTransientError",
    "ThredValidationError",
    "business_resource",
    "business_token_path",
    "header_safe_idempotency_key",
    "partner_token_path",
    "platform_path",
]
