"""One ledger row as the rest of the pipeline reads it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from thred_pipeline.core.records import Status
from thred_pipeline.ledger.keys import aware, now

RETRY_FIRST = (Status.PENDING, Status.UNKNOWN)  # uncertain outcomes: resolve before new work
_STATUS = {s.value: s for s in Status}  # Status(text) without the enum's call machinery


@dataclass(frozen=True)
class LedgerRow:
    entity: str
    source_id: str
    business_id: str
    external_id: str
    thred_id: str | None
    status: Status
    intended_hash: str | None
    confirmed_hash: str | None
    terminal_done: bool
    source_updated_at: datetime | None
    confirmed_updated_at: datetime | None
    attempts: int
    error_code: str | None
    error_message: str | None
    error_details: dict[str, Any] | None
    first_seen_at: datetime
    status_since: datetime
    synced_at: datetime | None
    inputs_hash: str | None = None  # see ledger.schema: bound to confirmed_hash
    mapped_amount_cents: int | None = None

    @classmethod
    def from_mapping(cls, row: Mapping[Any, Any]) -> LedgerRow:
        details = row["error_details"]
        return cls(
            entity=row["entity"],
            source_id=row["source_id"],
            business_id=row["business_id"],
            external_id=row["external_id"],
            thred_id=row["thred_id"],
            status=_STATUS.get(row["status"]) or Status(row["status"]),
            intended_hash=row["intended_hash"],
            confirmed_hash=row["confirmed_hash"],
            terminal_done=bool(row["terminal_done"]),
            source_updated_at=aware(row["source_updated_at"]),
            confirmed_updated_at=aware(row["confirmed_updated_at"]),
            attempts=int(row["attempts"]),
            error_code=row["error_code"],
            error_message=row["error_message"],
            error_details=json.loads(details) if details else None,
            first_seen_at=aware(row["first_seen_at"]) or now(),
            status_since=aware(row["status_since"]) or now(),
            synced_at=aware(row["synced_at"]),
            inputs_hash=row.get("inputs_hash"),
            mapped_amount_cents=row.get("mapped_amount_cents"),
        )
