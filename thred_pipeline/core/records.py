"""The values that flow through the sync engine, independent of warehouse and orchestrator."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any


@dataclass(frozen=True)
class TimeWindow:
    """Half-open UTC interval [start, end) of warehouse ``updated_at`` values to sync."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("TimeWindow needs timezone-aware datetimes")
        if self.end <= self.start:
            raise ValueError(f"TimeWindow end {self.end} is not after start {self.start}")


# ``SourceRecord.updated_at`` of a row whose own updated_at is NULL or cannot be read (such a
# record always carries a ``problem``). The Unix epoch: every database and driver stores and
# returns it unchanged, unlike year 1, which a non-UTC session shifts out of Python's range.
UNKNOWN_UPDATED_AT = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class SourceRecord:
    """One warehouse row of an entity with its child rows (line items, allocations, …).

    ``problem`` is set when the row (or one of its child rows) cannot be read or keyed: a date
    or timestamp out of Python's range ('infinity', '0001-01-01 BC'), text where a number or a
    date belongs, a NULL ``updated_at``, an id that cannot become an external_id. Such a record
    must be quarantined as it is, never mapped or sent; it keeps the identity that could be read
    (``source_id``, ``business_id``) so that the quarantine names it, and its ``updated_at`` is
    ``UNKNOWN_UPDATED_AT`` when its own updated_at is the unreadable value.
    """

    entity: str
    source_id: str
    business_id: str
    updated_at: datetime
    row: dict[str, Any]
    children: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    problem: RecordInvalid | None = None


@dataclass(frozen=True)
class Mapped:
    """A record translated into Thred's API-reference request form."""

    body: dict[str, Any]
    path_params: dict[str, str] = field(default_factory=dict)
    amount_cents: int = 0  # the record's money, for materialization metadata
    update_body: dict[str, Any] | None = None  # PATCH/PUT body when it differs from the create body


class Status(StrEnum):
    """Ledger status of one record; see docs/architecture.md for the state machine."""

    PENDING = "pending"  # intent written, request in flight (or the process died)
    SYNCED = "synced"  # Thred confirmed the payload whose hash is confirmed_hash
    UNKNOWN = "unknown"  # timeout / 5xx / dropped connection: outcome uncertain, re-send first
    DEFERRED = "deferred"  # a parent is not in Thred yet; retried every run
    REJECTED = "rejected"  # Thred (or local validation) refused it: quarantine
    DRIFT = "drift"  # changed in the warehouse after creation, and Thred cannot apply it


class RecordInvalid(Exception):
    """Bad warehouse data found before any API call; names the field so a human can fix it."""

    def __init__(self, field_path: str, message: str) -> None:
        super().__init__(f"{field_path}: {message}")
        self.field_path = field_path
        self.message = message


class ParentNotSynced(Exception):
    """A referenced parent has no Thred id yet: the record waits (deferred), it is not failed."""

    def __init__(self, entity: str, source_id: str, field_path: str) -> None:
        super().__init__(f"{field_path}: {entity} {source_id!r} is not in Thred yet")
        self.entity = entity
        self.source_id = source_id
        self.field_path = field_path


@dataclass(frozen=True)
class TaxCode:
    code: str
    rate: Decimal
    is_active: bool


@dataclass
class MapContext:
    """What a mapper may look up: parents' Thred ids and the business's Thred reference data.

    Mappers stay pure functions of (record, context); the engine fills the context per chunk.
    """

    business_id: str
    base_currency: str
    thred_ids: Mapping[tuple[str, str], str] = field(default_factory=dict)
    tax_codes: Mapping[str, TaxCode] = field(default_factory=dict)
    account_ids: Mapping[str, str] = field(default_factory=dict)
    tax_exempt_customers: frozenset[str] = frozenset()

    def parent_id(self, entity: str, source_id: Any, field_path: str) -> str:
        if source_id is None or source_id == "":
            raise RecordInvalid(field_path, "is required")
        thred_id = self.thred_ids.get((entity, str(source_id)))
        if thred_id is None:
            raise ParentNotSynced(entity, str(source_id), field_path)
        return thred_id

    def tax_code(self, code: Any, field_path: str) -> TaxCode:
        if not isinstance(code, str) or not code:
            raise RecordInvalid(field_path, "tax code is required")
        found = self.tax_codes.get(code)
        if found is None:
            known = ", ".join(sorted(self.tax_codes)) or "none"
            raise RecordInvalid(field_path, f"unknown tax code {code!r} (Thred knows: {known})")
        if not found.is_active:
            raise RecordInvalid(field_path, f"tax code {code!r} is inactive in Thred")
        return found

    def account_id(self, code: Any, field_path: str) -> str:
        found = self.account_ids.get(str(code)) if code is not None else None
        if found is None:
            raise RecordInvalid(field_path, f"account code {code!r} is not in Thred's chart")
        return found


def utc(value: datetime) -> datetime:
    """Warehouses hand back naive (SQLite) or aware (PostgreSQL) timestamps; both mean UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
