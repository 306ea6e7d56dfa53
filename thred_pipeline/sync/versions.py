"""A record's warehouse version, its payload's digest, and the digest of what its mapper
read: what the ledger compares.

The inputs digest lets a no-change run skip the mapper. The ledger keeps it *bound* to the
confirmed payload's hash (:func:`bound_inputs`): mapping is a pure function of its inputs, so
while a record's inputs digest, bound to the hash Thred confirmed, equals the stored one, the
record maps to exactly what Thred holds. Anything the mapper reads is in it: the row and its
child rows as read (``repr``: types and values), the record's external_id, its parents' Thred
ids and flags, the business's currency, Thred id and reference data, and the mapping code
itself. A value without a stable ``repr`` only costs the skip, never a wrong one.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from thred_pipeline import core, entities
from thred_pipeline.core.records import MapContext, Mapped, SourceRecord
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


@cache
def mapping_code() -> str:
    """Digest of the code a payload depends on (entities, core and this module), so a
    release that maps differently never trusts inputs recorded by an older one."""
    digest = hashlib.blake2b(digest_size=20)
    folders = (Path(core.__file__).parent, Path(entities.__file__).parent)
    for path in [*sorted(p for folder in folders for p in folder.glob("*.py")), Path(__file__)]:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def business_inputs(ctx: MapContext, business_thred_id: str | None) -> str:
    """The business's part of every record's inputs, made once per business and chunk."""
    text = repr(
        (
            mapping_code(),
            ctx.business_id,
            business_thred_id,
            ctx.base_currency,
            sorted(ctx.tax_codes.items()),
            sorted(ctx.account_ids.items()),
        )
    )
    return hashlib.blake2b(text.encode(), digest_size=20).hexdigest()


def record_inputs(
    spec: EntitySpec, record: SourceRecord, external_id: str, business: str, ctx: MapContext
) -> str:
    """Digest of what the record's mapper reads (``business``: :func:`business_inputs`)."""
    parents: list[str | None] = []
    for ref in spec.refs:
        for row in record.children.get(ref.child, []) if ref.child else [record.row]:
            value = row.get(ref.column)
            key = None if value in (None, "") else (ref.entity, str(value))
            parents.append(ctx.thred_ids.get(key) if key else None)
    flag = spec.flagged_parents
    flagged = flag is not None and str(record.row.get(flag.column)) in ctx.tax_exempt_customers
    text = repr((business, external_id, record.row, record.children, parents, flagged))
    return hashlib.blake2b(text.encode(), digest_size=20).hexdigest()


def bound_inputs(inputs: str, payload_digest: str) -> str:
    """The inputs digest as the ledger stores it: valid only beside this payload's hash."""
    return hashlib.blake2b(f"{inputs}:{payload_digest}".encode(), digest_size=20).hexdigest()
