"""What one ``sync_entity`` call and each of its records carry through plan and act."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypedDict

from thred_pipeline.core.records import Mapped, SourceRecord, TaxCode
from thred_pipeline.entities import EntitySpec
from thred_pipeline.sync.gate import Gate
from thred_pipeline.sync.outcomes import EntityRunResult, Outcome
from thred_pipeline.sync.planner import Rule
from thred_pipeline.thred.client import ThredClient


def rule_of(spec: EntitySpec) -> Rule:
    return Rule(
        label=spec.label,
        change_policy=spec.change_policy,
        terminal=spec.terminal.name if spec.terminal else None,
    )


class Identity(TypedDict):
    """A record's ids, as every ledger write names them."""

    entity: str
    source_id: str
    business_id: str
    external_id: str


class BusinessState:
    """Per-business facts looked up once per run: Thred id, currency, tax codes, accounts."""

    def __init__(self, business_id: str) -> None:
        self.business_id = business_id
        self.thred_id: str | None = None
        self.base_currency = ""
        self.tax_codes: dict[str, TaxCode] | None = None
        self.account_ids: dict[str, str] | None = None
        self.paused: str | None = None
        self.semaphore: Gate | None = None  # its records' requests in flight

    def has_reference_data(self) -> bool:
        return self.tax_codes is not None and self.account_ids is not None


@dataclass
class Listing:
    """One list of Thred objects, read once per run to adopt objects after 409s."""

    items: list[dict[str, Any]]
    by_external_id: dict[str, dict[str, Any]]
    built_at: float  # time.monotonic()

    @property
    def carries_external_ids(self) -> bool:
        return any("external_id" in item for item in self.items)


@dataclass
class Run:
    """One ``sync_entity`` call: what its records share."""

    spec: EntitySpec
    client: ThredClient
    result: EntityRunResult
    full_refresh: bool = False
    businesses: dict[str, BusinessState] = field(default_factory=dict)
    resend: frozenset[str] = frozenset()  # refused records re-sent: upstream changed since
    listings: dict[str, Listing] = field(default_factory=dict)
    listing_locks: dict[str, asyncio.Lock] = field(default_factory=dict)


@dataclass
class Job:
    """One record on its way through plan and act, with everything its steps share."""

    run: Run
    spec: EntitySpec
    record: SourceRecord
    state: BusinessState
    result: EntityRunResult
    version: datetime
    mapped: Mapped | None = None
    body: dict[str, Any] = field(default_factory=dict)
    digest: str = ""
    inputs: str = ""  # digest of what its mapper reads (sync.versions)
    wants_terminal: bool = False
    resend: bool = False  # refused earlier; re-sent because an upstream record changed
    blockers: tuple[str, ...] = ()  # dependants a terminal action waits for
    planned_paused: bool = False  # the business was paused when the record was planned
    written_ahead: bool = False  # its chunk's intents hold this record's first intent
    why_duplicate: str = ""  # the warehouse returned its id twice: not sent, quarantined

    @property
    def client(self) -> ThredClient:
        return self.run.client

    @property
    def source_id(self) -> str:
        return self.record.source_id

    @property
    def business_id(self) -> str:
        return self.record.business_id

    @property
    def external_id(self) -> str:
        return self.spec.external_id(self.record.source_id)

    @property
    def name(self) -> str:
        """How messages name the record: "invoice inv-1"."""
        return f"{self.spec.label} {self.record.source_id}"

    def identity(self) -> Identity:
        """The record's ids as the ledger's writes take them."""
        return {
            "entity": self.spec.name,
            "source_id": self.source_id,
            "business_id": self.business_id,
            "external_id": self.external_id,
        }

    def sample(self, **extra: Any) -> dict[str, Any]:
        return {"source_id": self.source_id, "external_id": self.external_id, **extra}

    def count(self, outcome: Outcome, sample: dict[str, Any] | None = None) -> None:
        self.result.add(self.business_id, outcome, sample)
