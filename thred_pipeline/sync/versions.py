"""A record's warehouse version and its payload's digest: what the ledger compares."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from thred_pipeline.core.records import Mapped, SourceRecord
from thred_pipeline.entities import EntitySpec


def record_version(record: SourceRecord) -> datetime:
    """The record's warehouse version: its own updated_at or a child row's, if later.

    Platforms do not always bump the parent when a line or an allocation changes; the ledger
    confirms this version so reconciliation can tell "Thred holds the latest" from "pending".
    """
    version = record.updated_at
    for rows in record.children.values():
        for row in rows:
            child = row.get("updated_at")
            if isinstance(child, datetime) and child > version:
                version = child
    return version


# What ``json.dumps(..., sort_keys=True, separators=(",", ":"), default=str)`` builds on every
# call, built once: the same canonical text, without a new encoder per record.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)


def payload_hash(mapped: Mapped, body: dict[str, Any]) -> str:
    canonical = _CANONICAL.encode({"body": body, "path": mapped.path_params})
    return hashlib.sha256(canonical.encode()).hexdigest()


def wants_terminal(spec: EntitySpec, record: SourceRecord) -> bool:
    """The warehouse says the record is voided/archived (its terminal column is set)."""
    return bool(spec.terminal and record.row.get(spec.terminal.column) is not None)
