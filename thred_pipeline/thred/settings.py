"""Connection settings for the Thred Platform API.

The API key is a ``SecretStr`` so that reprs, logs and Dagster config displays never show it.
Turning TLS verification off needs two explicit switches, because doing it by accident would
send the partner's Basic credentials to whoever answers.
"""

from __future__ import annotations

import logging
import threading
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

__all__ = ["ThredSettings"]

logger = logging.getLogger("thred_pipeline.thred")

_insecure_warned: set[str] = set()
_insecure_lock = threading.Lock()


class ThredSettings(BaseModel):
    """Everything the client needs to talk to one Thred environment as one partner."""

    # hide_input_in_errors: a ValidationError must not echo a key or a URL with credentials.
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    base_url: str = Field(description="Scheme and host, e.g. https://sandbox.thredfi.com")
    partner_id: str = Field(min_length=1, description="Partner UUID (OAuth2 client_id)")
    api_key: SecretStr = Field(description="Partner API key (client secret)")
    timeout_s: float = Field(30, gt=0, description="Read/write/pool timeout per attempt")
    connect_timeout_s: float = Field(5, gt=0)
    max_attempts: int = Field(6, ge=1, description="Attempts per request, first one included")
    backoff_base_s: float = Field(0.5, ge=0)
    backoff_max_s: float = Field(30, ge=0, description="Cap on any single retry delay")
    retry_budget_s: float = Field(
        300, ge=0, description="Total time one logical request may spend retrying"
    )
    token_refresh_margin_s: float = Field(300, ge=0)
    verify_tls: bool = True
    allow_insecure_tls: bool = False
    max_connections: int = Field(
        100, ge=1, description="HTTP connections open at once, across every business"
    )
    rate_per_business: float | None = Field(
        None,
        gt=0,
        description="Known request limit per business (and for the partner), requests/s; "
        "None: unknown, found from 429s by the rate governor",
    )
    rate_burst: int | None = Field(
        None,
        ge=1,
        description="Requests a business may send back to back; None: a tenth of a "
        "second's worth of its current rate",
    )

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("base_url must be an absolute http(s) URL")
        if parts.query or parts.fragment:
            raise ValueError("base_url must not carry a query string or fragment")
        if parts.username or parts.password:
            raise ValueError("base_url must not embed credentials")
        return value.strip()

    @field_validator("api_key")
    @classmethod
    def _check_api_key(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            raise ValueError("api_key must not be empty")
        return value

    @model_validator(mode="after")
    def _check_tls(self) -> ThredSettings:
        if not self.verify_tls:
            if not self.allow_insecure_tls:
                raise ValueError(
                    "verify_tls=False is refused unless allow_insecure_tls=True is also set"
                )
            with _insecure_lock:
                first = self.base_url not in _insecure_warned
                _insecure_warned.add(self.base_url)
            if first:
                logger.warning(
                    "TLS certificate verification is DISABLED for %s "
                    "(allow_insecure_tls=True); never use this in production",
                    self.base_url,
                )
        return self
