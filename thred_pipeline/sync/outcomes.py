"""What a sync did to each record, as types: the outcome kinds, their counters, and setbacks.

Every outcome of a record is one :class:`Outcome`; the counters of a run
(:class:`EntityRunResult`) are keyed by it (``Outcome`` is a ``StrEnum``, so
``result.counts["created"]`` reads the same counter as ``result.counts[Outcome.CREATED]``).
A :class:`Setback` is an outcome that leaves the record short of "Thred holds the warehouse's
version" — deferred, rejected, unknown, drift, or a void/archive that waits — with the ledger
status, error code and reason it is recorded with.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from thred_pipeline.core.records import Status, TimeWindow

SAMPLE_LIMIT = 20


class Outcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    TERMINAL = "terminal"  # void/archive made (a mark on a record already counted)
    TERMINAL_WAITING = "terminal_waiting"  # void/archive waits for dependants (a mark)
    RELEASED = "released"  # was deferred, now in Thred (a mark)
    DEFERRED = "deferred"
    REJECTED = "rejected"
    DRIFT = "drift"
    UNKNOWN = "unknown"

    @property
    def is_mark(self) -> bool:
        """An extra mark on a record already counted once, not a record of its own."""
        return self in _MARKS

    @property
    def ledger_status(self) -> Status:
        """The ledger status a setback of this kind is recorded with."""
        return _SETBACK_STATUS[self]


_MARKS = frozenset({Outcome.RELEASED, Outcome.TERMINAL, Outcome.TERMINAL_WAITING})
_SETBACK_STATUS = {
    Outcome.DEFERRED: Status.DEFERRED,
    Outcome.REJECTED: Status.REJECTED,
    Outcome.UNKNOWN: Status.UNKNOWN,
    Outcome.DRIFT: Status.DRIFT,
    Outcome.TERMINAL_WAITING: Status.SYNCED,
}


@dataclass(frozen=True)
class Setback:
    """A record's outcome short of "in Thred at the warehouse's version", and why.

    ``sample`` holds what the run's sample of this outcome shows beyond the record's ids.
    ``forget_intended``: the payload never reached Thred, so it must not look like one Thred
    refused. ``keeps_versions``: the row keeps the intended hash and warehouse version it holds
    (a mark on a synced row rather than an attempt).
    """

    outcome: Outcome
    code: str
    message: str
    details: Mapping[str, Any] | None = None
    sample: Mapping[str, Any] = field(default_factory=dict)
    thred_id: str | None = None
    forget_intended: bool = False
    keeps_versions: bool = False

    def __post_init__(self) -> None:
        if self.outcome not in _SETBACK_STATUS:
            raise ValueError(f"{self.outcome} is not a setback")


@dataclass(frozen=True)
class Confirmation:
    """What Thred holds of a record, as the ledger records it: the object, the payload's
    digest, the warehouse version of that payload, whether it is voided/archived, and the
    payload itself (``None``: keep the one stored)."""

    thred_id: str
    digest: str
    version: datetime
    terminal_done: bool
    body: Mapping[str, Any] | None


@dataclass
class EntityRunResult:
    """What one entity's sync did; every count is also kept per business.

    ``late`` counts, per other entity, what happened to that entity's waiting terminal actions
    during this sync (a customer archived at the end of the payments step).
    """

    entity: str
    window: TimeWindow
    counts: Counter[str] = field(default_factory=Counter)
    per_business: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    amount_cents: int = 0
    api_calls: int = 0
    api_writes: int = 0
    duration_s: float = 0.0
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    paused_businesses: dict[str, str] = field(default_factory=dict)
    late: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))

    OUTCOMES = tuple(o.value for o in Outcome)
    MARKS = tuple(o.value for o in Outcome if o.is_mark)

    def add(self, business_id: str, outcome: Outcome, sample: dict[str, Any] | None = None) -> None:
        self.counts[outcome.value] += 1
        self.per_business[business_id][outcome.value] += 1
        if sample is not None and len(self.samples[outcome.value]) < SAMPLE_LIMIT:
            self.samples[outcome.value].append(sample)

    def metrics(self) -> dict[str, int | float]:
        """Stable numeric keys, so Dagster can plot every materialization the same way."""
        out: dict[str, int | float] = {o.value: int(self.counts[o.value]) for o in Outcome}
        out.update(
            records=int(sum(self.counts[o.value] for o in Outcome if not o.is_mark)),
            api_calls=self.api_calls,
            api_writes=self.api_writes,
            duration_s=round(self.duration_s, 3),
            amount_cents=self.amount_cents,
            businesses=len(self.per_business),
            paused_businesses=len(self.paused_businesses),
            late_terminals=int(sum(c[Outcome.TERMINAL.value] for c in self.late.values())),
        )
        return out
