"""What settles a document, written once: invoice payments, bill payments, vendor credits.

Each allocates amounts to documents of its side; the allocation rules (same party, not
voided, within the outstanding amount, within the total) and the ledger lines that lower
the control account per allocation are the same on both sides.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from thred_devtools.sandbox import ledger, rules
from thred_devtools.sandbox.core import (
    Result,
    add_error,
    fail_if,
    idempotent_replay,
    remember_response,
    replay_existing,
)
from thred_devtools.sandbox.documents import doc_outstanding
from thred_devtools.sandbox.errors import Details, conflict
from thred_devtools.sandbox.ledger import EntryBuilder
from thred_devtools.sandbox.sides import Side
from thred_devtools.sandbox.state import Sandbox, now_iso
from thred_devtools.sandbox.store import Obj

__all__ = [
    "check_allocations",
    "delete_payment",
    "record_payment",
    "replay_settlement",
    "require_party",
    "settle_allocations",
]


def replay_settlement(
    sb: Sandbox,
    scope: str,
    collection: str,
    noun: str,
    keys: tuple[str | None, str | None],
    view: Callable[[Obj], dict[str, Any]],
) -> Result | None:
    """A repeated Idempotency-Key or external_id (``keys``), answered; None when new."""
    idem_key, external_id = keys
    cached = idempotent_replay(sb, scope, collection, idem_key)
    if cached is not None:
        return rules.REPLAY_STATUS, cached["body"]
    if external_id is not None:
        existing = sb.store.find(scope, collection, "external_id", external_id)
        if existing is not None:
            return replay_existing(sb, noun, existing, view)
    return None


def require_party(sb: Sandbox, side: Side, scope: str, party_id: str) -> None:
    """A payment's party must exist before its payments (400, not 404: it is a field)."""
    if sb.store.get_in(side.parties, scope, party_id) is None:
        message = f"{side.party_title} not found. Create the {side.party} before its payments."
        fail_if({side.party_id: [message]})


def record_payment(
    sb: Sandbox,
    collection: str,
    pay: Obj,
    post: Callable[[Sandbox, Obj], None],
    view: Callable[[Obj], dict[str, Any]],
    idem_key: str | None,
) -> Result:
    """Store a new payment, post it, and keep the answer for its Idempotency-Key."""
    sb.store.put(collection, pay)
    post(sb, pay)
    response = view(pay)
    remember_response(sb, pay["_scope"], collection, idem_key, pay["id"], response)
    return 201, response


def check_allocations(
    sb: Sandbox,
    side: Side,
    scope: str,
    allocations: list[tuple[str, int]],
    total: int,
    party_id: str,
    details: Details,
) -> None:
    """Each allocation names an open document of the party, within what it still owes."""
    running: dict[str, int] = {}
    for i, (doc_id, amount) in enumerate(allocations):
        doc = sb.store.get_in(side.docs, scope, doc_id)
        path = f"allocations[{i}]"
        if doc is None:
            add_error(details, f"{path}.{side.doc_id}", f"{side.doc.capitalize()} not found.")
            continue
        if doc.get(side.party_id) != party_id:
            add_error(
                details, f"{path}.{side.doc_id}", f"The {side.doc} belongs to another {side.party}."
            )
            continue
        if doc.get("voided_at"):
            add_error(details, f"{path}.{side.doc_id}", f"The {side.doc} is voided.")
            continue
        running[doc_id] = running.get(doc_id, 0) + amount
        open_amount = doc_outstanding(sb, side, doc)
        if running[doc_id] > open_amount:
            add_error(
                details,
                f"{path}.amount_cents",
                f"Allocation exceeds the {side.doc}'s outstanding balance of {open_amount}.",
            )
    allocated = sum(a for _, a in allocations)
    if allocated > total:
        add_error(
            details,
            "allocations",
            f"Allocations total {allocated} exceeds the payment total {total}.",
        )


def settle_allocations(
    sb: Sandbox,
    side: Side,
    entry: EntryBuilder,
    allocations: list[Obj],
    party_id: str,
    description: str,
) -> int:
    """Lower the control account per allocation (tagged with document and party)."""
    allocated = 0
    for alloc in allocations:
        doc = sb.store.get(side.docs, alloc[side.doc_id])
        tags = {
            side.doc_id: alloc[side.doc_id],
            side.party_id: doc[side.party_id] if doc else party_id,
        }
        entry.cr(side.control_account, side.sign * alloc["amount_cents"], description, **tags)
        allocated += alloc["amount_cents"]
    return allocated


def delete_payment(
    sb: Sandbox, collection: str, entry_prefix: str, payment: Obj
) -> tuple[int, dict[str, Any]]:
    """[doc] only pending/failed payments can be deleted; completed ones need a refund."""
    if payment["status"] not in rules.DELETABLE_PAYMENT_STATUSES:
        raise conflict(
            f"A {payment['status']} payment cannot be deleted; reverse it with a refund instead."
        )
    ledger.remove_entry(sb.store, payment["_scope"], f"{entry_prefix}:{payment['id']}")
    sb.store.delete(collection, payment["id"])
    return 200, {
        "message": "Payment deleted.",
        "payment_id": payment["id"],
        "status": "cancelled",
        "updated_at": now_iso(),
    }
