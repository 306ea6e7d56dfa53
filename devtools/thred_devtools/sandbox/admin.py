"""Admin endpoints under ``/_sandbox/`` (only when ``SandboxConfig.admin_enabled``).

None of these exist in Thred; they let tests and the demo inspect and break the sandbox.
No auth (the sandbox listens on 127.0.0.1). Bodies are JSON:

- ``GET  /_sandbox/health`` -> ``{"ok": true}``.
- ``POST /_sandbox/reset`` (no body) -> forget every object (tokens stay valid) and zero the
  request/fault counters.
- ``GET  /_sandbox/stats`` -> ``{objects: {scope: {collection: n}}, businesses: {id:
  {external_id, legal_name, partner_id}}, requests: [{method, route, status, count}],
  requests_total, duplicate_external_ids (always 0 unless the store is broken),
  unbalanced_journal_entries, faults: {kind: n}, fault_config, alias_usage: {alias: n},
  journal_lines}``. A scope is a business id, or ``partner:<id>`` for businesses; status 0
  means no response was delivered (commit-then-drop).
- ``POST /_sandbox/tamper`` ``{"business_id", "collection", "id" | "external_id",
  "set": {"<path>": value, ...}}`` -> changes stored *inputs* of a document without
  validation, then recomputes it and re-posts its journal entry, so outstanding balances,
  customer/vendor balances, aging and reports all move consistently. Paths are dotted and
  indexed: ``line_items[0].unit_price``, ``total_amount_cents``,
  ``allocations[0].amount_cents``, ``tips``, ``paid_out_amount_cents``. Collections:
  invoices, invoice_payments, refunds, refund_payments, payouts, bills, bill_payments,
  vendor_credits, customers, vendors. Setting a fully allocated payment's total (without
  touching its allocations) moves the difference onto its last allocation, so the invoice's
  outstanding changes too. Answers ``{"collection", "id", "object": <stored object>}``.
- ``POST /_sandbox/delete-object`` ``{"business_id", "collection", "id" | "external_id"}``
  -> removes the object as if Thred had lost it, together with its journal entries and
  cached idempotent responses (so a re-sent create makes it again, with 201). Objects that
  refer to it are left as they are. For ``collection: "businesses"`` the business id is
  the object id.
- ``POST /_sandbox/expire-tokens`` ``{"partner_id"?: str, "business_id"?: str}`` -> every
  token issued so far (or only the partner's / the business's) answers 401 invalid_token.
- ``GET  /_sandbox/faults`` -> ``{faults, counts, contract}``: current fault settings, counts,
  and the contract readings in effect (``{"extended_fields", "duplicate_external_id"}``).
- ``POST /_sandbox/faults`` ``{<FaultConfig fields>..., "reset"?: bool}`` -> merge the
  fields into the current settings (``reset: true`` starts from the defaults); re-seeds the
  RNG. See ``faults.py`` for the switches. ``extended_fields`` (bool) and
  ``duplicate_external_id`` (``"replay"`` | ``"conflict"``) switch the contract readings of a
  running sandbox; ``null`` (or ``reset``) goes back to the values it was started with.
- ``POST /_sandbox/reconcile-payout`` ``{"business_id", "payout_id" | "external_id"}`` ->
  marks a payout reconciled to a bank transaction (later upserts answer 409).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from fastapi import APIRouter
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from thred_devtools.sandbox import (
    bill_payments,
    ledger,
    payments,
    payouts,
    refunds,
    rules,
    vendor_credits,
)
from thred_devtools.sandbox.auth import revoke
from thred_devtools.sandbox.core import public
from thred_devtools.sandbox.documents import repost_document
from thred_devtools.sandbox.errors import ApiError, pydantic_details, validation_error
from thred_devtools.sandbox.sides import AP, AR
from thred_devtools.sandbox.state import Sandbox, now_iso
from thred_devtools.sandbox.store import Obj
from thred_devtools.sandbox.web import parse_json, respond

router = APIRouter(prefix="/_sandbox")

TAMPERABLE = (
    "invoices",
    "invoice_payments",
    "refunds",
    "refund_payments",
    "payouts",
    "bills",
    "bill_payments",
    "vendor_credits",
    "customers",
    "vendors",
)
DELETABLE = (*TAMPERABLE, "businesses", "accounts", "journal_entries")
PROTECTED_KEYS = frozenset({"id", "_scope", "_seq", "_key", "business_id"})


def sandbox_of(request: Request) -> Sandbox:
    sb: Sandbox = request.app.state.sandbox
    return sb


async def _json(request: Request) -> dict[str, Any]:
    return parse_json(await request.body())


def _str_field(data: dict[str, Any], name: str, required: bool = True) -> str | None:
    value = data.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise validation_error(
            {name: [rules.REQUIRED_MSG if value is None else "Must be a string."]}
        )
    return value


def _locate(sb: Sandbox, data: dict[str, Any], allowed: tuple[str, ...]) -> tuple[str, Obj]:
    collection = _str_field(data, "collection")
    assert collection is not None
    if collection not in allowed:
        raise validation_error({"collection": [f"Must be one of: {', '.join(allowed)}."]})
    obj_id = _str_field(data, "id", required=False)
    external_id = _str_field(data, "external_id", required=False)
    business_id = _str_field(data, "business_id", required=collection != "businesses")
    obj: Obj | None = None
    if collection == "businesses":
        target = obj_id or business_id
        if target:
            obj = sb.store.get("businesses", target)
        elif external_id:
            obj = next(
                (
                    o
                    for c, o in sb.store.all_objects()
                    if c == "businesses" and o.get("external_id") == external_id
                ),
                None,
            )
    elif obj_id:
        obj = sb.store.get_in(collection, business_id or "", obj_id)
    elif external_id:
        obj = sb.store.find(business_id or "", collection, "external_id", external_id)
    else:
        raise validation_error({"id": ["Give id or external_id."]})
    if obj is None:
        raise ApiError(404, "not_found", f"No such object in {collection}.")
    return collection, obj


_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _path_parts(path: str) -> list[str | int]:
    parts: list[str | int] = []
    pos = 0
    for m in _TOKEN.finditer(path):
        between = path[pos : m.start()]
        if between not in ("", "."):
            raise validation_error({"set": [f"Bad path {path!r}."]})
        parts.append(m.group(1) if m.group(1) is not None else int(m.group(2)))
        pos = m.end()
    if not parts or path[pos:]:
        raise validation_error({"set": [f"Bad path {path!r}."]})
    return parts


def _set_path(obj: Obj, path: str, value: Any) -> None:
    parts = _path_parts(path)
    if parts[0] in PROTECTED_KEYS:
        raise validation_error({"set": [f"{parts[0]} cannot be tampered with."]})
    target: Any = obj
    for part in parts[:-1]:
        try:
            target = target[part]
        except (KeyError, IndexError, TypeError):
            raise validation_error({"set": [f"Path {path!r} does not exist."]}) from None
    last = parts[-1]
    try:
        if isinstance(last, int):
            target[last]
        elif last not in target:
            raise KeyError(last)
    except (KeyError, IndexError, TypeError):
        raise validation_error({"set": [f"Path {path!r} does not exist."]}) from None
    target[last] = value


def _repost(sb: Sandbox, collection: str, obj: Obj) -> None:
    store = sb.store
    side = next((s for s in (AR, AP) if s.docs == collection), None)
    if side is not None:
        repost_document(sb, side, obj)
    elif collection == "vendor_credits":
        vendor_credits.repost_vendor_credit(sb, obj)
    else:
        store.put(collection, obj)
        if collection == "invoice_payments":
            payments.post_payment(sb, obj)
        elif collection == "refunds":
            refunds.post_refund(sb, obj)
        elif collection == "refund_payments":
            refund = store.get("refunds", obj["refund_id"])
            if refund is not None:
                refunds.post_refund_payment(sb, obj, refund)
        elif collection == "payouts":
            payouts.post_payout(sb, obj)
        elif collection == "bill_payments":
            bill_payments.post_bill_payment(sb, obj)


@router.get("/health")
async def health() -> Response:
    return respond(200, {"ok": True})


@router.post("/reset")
async def reset(request: Request) -> Response:
    sb = sandbox_of(request)
    with sb.store.lock:
        sb.store.reset()
        sb.request_counts.clear()
        sb.alias_usage.clear()
        sb.faults.counts.clear()
    return respond(200, {"ok": True})


@router.get("/stats")
async def stats(request: Request) -> Response:
    sb = sandbox_of(request)
    with sb.store.lock:
        groups: Counter[tuple[str, str, str]] = Counter()
        unbalanced = 0
        businesses: dict[str, Any] = {}
        for coll, obj in sb.store.all_objects():
            ext = obj.get("external_id")
            if isinstance(ext, str):
                groups[(obj["_scope"], coll, ext)] += 1
            if coll == ledger.JE and sum(ln["debit"] - ln["credit"] for ln in obj["lines"]):
                unbalanced += 1
            if coll == "businesses":
                businesses[obj["id"]] = {
                    "external_id": obj.get("external_id"),
                    "legal_name": obj.get("legal_name"),
                    "partner_id": obj.get("partner_id"),
                }
        objects = {
            scope: counts
            for scope, counts in sb.store.scope_counts().items()
            if not scope.startswith("_")
        }
        requests = [
            {"method": m, "route": r, "status": s, "count": n}
            for (m, r, s), n in sorted(sb.request_counts.items())
        ]
        body = {
            "objects": objects,
            "businesses": businesses,
            "requests": requests,
            "requests_total": sum(sb.request_counts.values()),
            "duplicate_external_ids": sum(n - 1 for n in groups.values() if n > 1),
            "unbalanced_journal_entries": unbalanced,
            "faults": dict(sb.faults.counts),
            "fault_config": sb.faults.config.model_dump(),
            "alias_usage": dict(sb.alias_usage),
            "journal_lines": sb.store.journal_lines,
        }
    return respond(200, body)


@router.post("/tamper")
async def tamper(request: Request) -> Response:
    sb = sandbox_of(request)
    data = await _json(request)
    changes = data.get("set")
    if not isinstance(changes, dict) or not changes:
        raise validation_error({"set": ['Expected {"path": value, ...}.']})
    with sb.store.transaction():
        collection, obj = _locate(sb, data, TAMPERABLE)
        updated = sb.store.editable(obj)
        for path, value in changes.items():
            _set_path(updated, str(path), value)
        if (
            collection == "invoice_payments"
            and "total_amount_cents" in changes
            and not any(str(p).startswith("allocations") for p in changes)
            and updated["allocations"]
        ):
            old_total = int(obj["total_amount_cents"])
            allocated = sum(a["amount_cents"] for a in obj["allocations"])
            if allocated == old_total:
                last = updated["allocations"][-1]
                last["amount_cents"] = max(
                    0, last["amount_cents"] + int(updated["total_amount_cents"]) - old_total
                )
        updated["updated_at"] = now_iso()
        try:
            _repost(sb, collection, updated)
        except (TypeError, ValueError, KeyError, ArithmeticError) as exc:
            raise validation_error(
                {"set": [f"The new value breaks the document: {exc!r}"]}
            ) from None
        stored = sb.store.get(collection, updated["id"]) or updated
    return respond(200, {"collection": collection, "id": stored["id"], "object": public(stored)})


@router.post("/delete-object")
async def delete_object(request: Request) -> Response:
    sb = sandbox_of(request)
    data = await _json(request)
    with sb.store.transaction():
        collection, obj = _locate(sb, data, DELETABLE)
        removed = 0
        for entry in list(sb.store.lookup("je_by_source", obj["id"])):
            sb.store.delete(ledger.JE, entry["id"])
            removed += 1
        for record in list(sb.store.lookup("idempotency_by_object", obj["id"])):
            sb.store.delete("idempotency", record["id"])
        sb.store.delete(collection, obj["id"])
    return respond(
        200, {"deleted": obj["id"], "collection": collection, "journal_entries_removed": removed}
    )


@router.post("/expire-tokens")
async def expire_tokens(request: Request) -> Response:
    sb = sandbox_of(request)
    data = await _json(request)
    partner_id = _str_field(data, "partner_id", required=False)
    business_id = _str_field(data, "business_id", required=False)
    moment = revoke(sb, partner_id, business_id)
    return respond(200, {"ok": True, "revoked_before": moment})


def _faults_body(sb: Sandbox) -> dict[str, Any]:
    return {
        "faults": sb.faults.config.model_dump(),
        "counts": dict(sb.faults.counts),
        "contract": {
            "extended_fields": sb.extended_fields,
            "duplicate_external_id": sb.duplicate_external_id,
        },
    }


@router.get("/faults")
async def get_faults(request: Request) -> Response:
    return respond(200, _faults_body(sandbox_of(request)))


@router.post("/faults")
async def set_faults(request: Request) -> Response:
    sb = sandbox_of(request)
    data = await _json(request)
    replace = bool(data.pop("reset", False))
    try:
        sb.faults.configure(data, replace=replace)
    except ValidationError as exc:
        raise validation_error(pydantic_details(exc)) from None
    return respond(200, _faults_body(sb))


@router.post("/reconcile-payout")
async def reconcile_payout(request: Request) -> Response:
    sb = sandbox_of(request)
    data = await _json(request)
    if "payout_id" in data and "id" not in data:
        data["id"] = data["payout_id"]
    data["collection"] = "payouts"
    with sb.store.transaction():
        _, payout = _locate(sb, data, ("payouts",))
        updated = sb.store.editable(payout)
        updated["reconciliation_status"] = rules.PAYOUT_RECONCILED
        updated["updated_at"] = now_iso()
        sb.store.put("payouts", updated)
    return respond(200, payouts.payout_view(sb, updated))
