"""Configuration of the Thred sandbox.

One pydantic model so the CLI, tests and the demo build the server the same way. Fault
settings are nested (``SandboxConfig.faults``) because they can also be changed at runtime
through ``POST /_sandbox/faults`` and are applied as one unit.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DEFAULT_PARTNERS", "FaultConfig", "SandboxConfig"]

DEFAULT_PARTNERS: dict[str, str] = {"demo-partner": "sandbox-demo-key"}


class FaultConfig(BaseModel):
    """Fault injection for ``/v1/`` routes only (never ``/_sandbox/``).

    All rates are fractions in [0, 1] of the requests they can apply to; the draws come from
    one RNG seeded with ``seed`` so a sequential run is reproducible.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    seed: int = 0
    latency_ms: int = Field(default=0, ge=0, le=600_000)
    jitter_ms: int = Field(default=0, ge=0, le=600_000)
    # Token bucket per business (partner-level routes share one bucket per partner).
    rate_limit_rps: float | None = Field(default=None, gt=0)
    rate_limit_burst: int | None = Field(default=None, ge=1)
    error_500_rate: float = Field(default=0.0, ge=0, le=1)
    error_502_rate: float = Field(default=0.0, ge=0, le=1)
    error_503_rate: float = Field(default=0.0, ge=0, le=1)
    # The request sleeps ``hang_s`` before it is processed (and is then processed normally).
    hang_rate: float = Field(default=0.0, ge=0, le=1)
    hang_s: float = Field(default=30.0, ge=0, le=3600)
    # Writes (POST/PUT/PATCH/DELETE) are committed, then the response is never delivered.
    drop_after_commit_rate: float = Field(default=0.0, ge=0, le=1)
    # Fallback when the connection cannot be cut: stall this long before answering.
    drop_stall_s: float = Field(default=120.0, ge=0, le=3600)

    def any_active(self) -> bool:
        return bool(
            self.latency_ms
            or self.jitter_ms
            or self.rate_limit_rps
            or self.error_500_rate
            or self.error_502_rate
            or self.error_503_rate
            or self.hang_rate
            or self.drop_after_commit_rate
        )


class SandboxConfig(BaseModel):
    """How to build one sandbox server."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    # None keeps everything in memory; a directory persists state (append-only journal).
    data_dir: Path | None = None
    # partner_id -> api_key. Kept out of repr so keys never land in logs.
    partners: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_PARTNERS), repr=False)
    token_ttl_s: int = Field(default=3600, ge=1)
    admin_enabled: bool = True
    max_body_bytes: int = Field(default=1_000_000, ge=1024)
    faults: FaultConfig = Field(default_factory=FaultConfig)
