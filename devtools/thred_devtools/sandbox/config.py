"""Configuration of the Thred sandbox.

One pydantic model so the CLI, tests and the demo build the server the same way. Fault
settings are nested (``SandboxConfig.faults``) because they can also be changed at runtime
through ``POST /_sandbox/faults`` and are applied as one unit. ``add_fault_arguments`` and
``fault_config_from_args`` give a command line the same switches.

Two settings choose how the sandbox reads the contract where Thred's docs leave a choice
(docs/thred-contract.md):

- ``extended_fields`` (default False = strict): strict responses carry exactly the fields
  thred-api.md documents (``documented.py``) and the undocumented vendor archive endpoint
  does not exist; extended responses add the sandbox's inferred fields (totals, outstanding
  balances, external ids of related objects) and the archive endpoint.
- ``duplicate_external_id`` (default ``"replay"``): a create repeating an external_id
  answers 200 with the stored object (``"replay"``, the create pages) or 409
  ``duplicate_external_id`` (``"conflict"``, the error guide). Payouts always upsert, and a
  repeated ``Idempotency-Key`` always replays.

Both are set at start (``SandboxConfig``) and can be overridden at runtime through the fault
settings (``FaultConfig``: None = as started; ``POST /_sandbox/faults``), so a running
sandbox can be switched by a test; ``reset: true`` goes back to the start values.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "DEFAULT_PARTNERS",
    "DUPLICATE_EXTERNAL_ID_MODES",
    "DuplicateExternalId",
    "FaultConfig",
    "SandboxConfig",
    "add_fault_arguments",
    "fault_config_from_args",
]

DEFAULT_PARTNERS: dict[str, str] = {"demo-partner": "sandbox-demo-key"}
DuplicateExternalId = Literal["replay", "conflict"]
DUPLICATE_EXTERNAL_ID_MODES: tuple[DuplicateExternalId, ...] = ("replay", "conflict")


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
    # Contract readings (see the module docstring); None keeps the SandboxConfig value.
    extended_fields: bool | None = None
    duplicate_external_id: DuplicateExternalId | None = None

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
    # False = strict: responses carry exactly the documented fields (see the module docstring).
    extended_fields: bool = False
    # "replay": a repeated external_id answers 200 with the stored object; "conflict": 409.
    duplicate_external_id: DuplicateExternalId = "replay"
    faults: FaultConfig = Field(default_factory=FaultConfig)


# --- command-line switches ----------------------------------------------------------------------


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a fraction between 0 and 1")
    return value


def _number(text: str, kind: type[float]) -> float:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a valid {kind.__name__}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} must not be negative")
    return value


def _non_negative_int(text: str) -> int:
    return int(_number(text, int))


def _non_negative_float(text: str) -> float:
    return _number(text, float)


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def _positive_float(text: str) -> float:
    value = _non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def add_fault_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the fault switches (all off by default) and the contract readings to a parser.

    Build the config with :func:`fault_config_from_args`; every switch can also be changed
    at runtime with ``POST /_sandbox/faults``. The contract readings land in the
    ``FaultConfig`` as overrides, so ``SandboxConfig(faults=...)`` alone carries them.
    """
    group = parser.add_argument_group(
        "fault injection", "for /v1/ routes only; every draw comes from one seeded RNG"
    )
    group.add_argument(
        "--latency-ms", type=_non_negative_int, default=0, help="added to every request"
    )
    group.add_argument(
        "--jitter-ms",
        type=_non_negative_int,
        default=0,
        help="uniform random extra latency, 0..N ms",
    )
    group.add_argument(
        "--rate-limit",
        type=_positive_float,
        default=None,
        metavar="RPS",
        help="per-business token bucket; excess requests get 429 with Retry-After",
    )
    group.add_argument(
        "--rate-limit-burst",
        type=_positive_int,
        default=None,
        metavar="N",
        help="bucket size (default: the rate, rounded up)",
    )
    group.add_argument(
        "--error-rate",
        type=_fraction,
        default=0.0,
        metavar="FRACTION",
        help="requests answered 500/502/503 (one third each) before anything is committed",
    )
    group.add_argument(
        "--hang-rate",
        type=_fraction,
        default=0.0,
        metavar="FRACTION",
        help="requests that sleep --hang-s first, then are processed normally",
    )
    group.add_argument(
        "--hang-s", type=_non_negative_float, default=30.0, help="how long a hang lasts"
    )
    group.add_argument(
        "--drop-rate",
        type=_fraction,
        default=0.0,
        metavar="FRACTION",
        help="writes committed, then the connection is cut before the response",
    )
    group.add_argument(
        "--fault-seed", type=int, default=0, help="seed of the fault RNG (reproducible runs)"
    )
    contract = parser.add_argument_group(
        "contract readings", "where Thred's docs leave a choice (docs/thred-contract.md)"
    )
    contract.add_argument(
        "--extended-fields",
        action="store_true",
        default=None,
        help="answer with the sandbox's inferred fields too, and serve the undocumented "
        "vendor archive endpoint (default: strict, exactly the documented fields)",
    )
    contract.add_argument(
        "--duplicate-external-id",
        choices=DUPLICATE_EXTERNAL_ID_MODES,
        default=None,
        help="a create repeating an external_id answers 200 with the stored object "
        "(replay, the default) or 409 duplicate_external_id (conflict)",
    )


def fault_config_from_args(args: argparse.Namespace) -> FaultConfig:
    """The ``FaultConfig`` the switches of :func:`add_fault_arguments` describe.

    Raises ``ValueError`` when the fractions add up to more than 1 (each request gets one
    draw); a command can turn that into ``parser.error(str(exc))``.
    """
    total = args.error_rate + args.hang_rate + args.drop_rate
    if total > 1.0:
        raise ValueError(
            f"--error-rate + --hang-rate + --drop-rate is {total:g}; it must not exceed 1"
        )
    third = args.error_rate / 3
    return FaultConfig(
        seed=args.fault_seed,
        latency_ms=args.latency_ms,
        jitter_ms=args.jitter_ms,
        rate_limit_rps=args.rate_limit,
        rate_limit_burst=args.rate_limit_burst,
        error_500_rate=third,
        error_502_rate=third,
        error_503_rate=max(0.0, args.error_rate - 2 * third),
        hang_rate=args.hang_rate,
        hang_s=args.hang_s,
        drop_after_commit_rate=args.drop_rate,
        extended_fields=getattr(args, "extended_fields", None),
        duplicate_external_id=getattr(args, "duplicate_external_id", None),
    )
