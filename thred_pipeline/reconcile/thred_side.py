"""The actual side of reconciliation: Thred's records, read through documented fields only.

Every value comes from a field ``../shared/thred-api.md`` marks [doc] or [example]. Thred ids
are mapped back to warehouse records through the ledger's ``thred_id`` (list shapes of
payments and refunds carry no ``external_id``; aging rows carry only ``customer_id`` /
``vendor_id``). Money in an unsuffixed field whose unit the docs do not state is accepted
only as an integer; anything else is "cannot compare" — a failing difference, never a skip.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from thred_pipeline.thred.client import ThredClient
from thred_pipeline.thred.errors import ThredNotFoundError

Item = Mapping[str, Any]
RefMap = Mapping[str, Mapping[str, str]]  # entity -> Thred id -> warehouse source id

LIST_PATHS: dict[str, str] = {
    "customers": "customers/",
    "vendors": "vendors/",
    "invoices": "invoices/",
    "invoice_payments": "invoices/payments/",
    "refunds": "invoices/refunds/",
    "refund_payments": "invoices/refunds/{refund_id}/payments/",
    "payouts": "payouts/",
    "bills": "bills/",
    "bill_payments": "bills/payments/",
    "vendor_credits": "vendor-credits/",
}
LIST_PARAMS: dict[str, dict[str, str]] = {"vendors": {"include_archived": "true"}}  # [doc]


class Unreadable:
    """A value Thred returned in a shape we cannot compare (e.g. ``"45.00"`` for cents)."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    def __repr__(self) -> str:
        return f"unreadable {self.raw!r}"

    def __eq__(self, other: object) -> bool:
        return False

    __hash__ = None  # type: ignore[assignment]


def money(item: Item, *keys: str) -> int | Unreadable | None:
    """The first present key as integer minor units; ``None`` when no key is present."""
    for key in keys:
        if key in item and item[key] is not None:
            value = item[key]
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            return Unreadable(value)
    return None


def _nested_id(item: Item, key: str) -> str | None:
    """``customer{id}`` or ``customer_id``: both documented shapes of a party reference."""
    nested = item.get(key)
    if isinstance(nested, Mapping) and nested.get("id"):
        return str(nested["id"])
    flat = item.get(f"{key}_id")
    return str(flat) if flat else None


def ref(refs: RefMap, entity: str, thred_id: str | None) -> str | None:
    """The warehouse id of a Thred id, or a marker naming the unknown Thred id."""
    if thred_id is None:
        return None
    return refs.get(entity, {}).get(thred_id, f"thred:{thred_id}")


def _sum(rows: Any, *keys: str) -> int | Unreadable | None:
    if not isinstance(rows, list):
        return None
    total = 0
    for row in rows:
        value = money(row, *keys) if isinstance(row, Mapping) else Unreadable(row)
        if not isinstance(value, int):
            return value if value is not None else Unreadable(row)
        total += value
    return total


def _status_is(item: Item, *values: str) -> bool:
    return str(item.get("status") or "").upper() in values


Shape = Callable[[Item, RefMap], dict[str, Any]]

# entity -> the compared columns of one Thred item (same names as the warehouse side)
SHAPES: dict[str, Shape] = {
    "businesses": lambda i, r: {
        "active": bool(i.get("is_active")),
        "base_currency": i.get("base_currency"),
    },
    "customers": lambda i, r: {
        "archived": bool(i.get("is_archived")),
        "outstanding_balance": money(i, "outstanding_balance"),
    },
    "vendors": lambda i, r: {"archived": _status_is(i, "ARCHIVED")},
    "invoices": lambda i, r: {
        "customer_id": ref(r, "customers", _nested_id(i, "customer")),
        "voided": i.get("voided_at") is not None or _status_is(i, "VOIDED", "VOID"),
    },
    "invoice_payments": lambda i, r: {
        "customer_id": ref(r, "customers", _nested_id(i, "customer")),
        "total_cents": money(i, "total_amount_cents", "total_amount"),
        "allocated_cents": money(i, "allocated_amount_cents", "allocated_amount"),
        "unallocated_cents": money(i, "unallocated_amount_cents", "unallocated_amount"),
        "fee_cents": money(i, "processing_fee_cents"),
    },
    "refunds": lambda i, r: {
        "invoice_id": ref(r, "invoices", _first_allocation(i, "invoice_id")),
        "amount_cents": money(i, "refunded_amount"),
    },
    "refund_payments": lambda i, r: {
        "refund_id": ref(r, "refunds", str(i["refund_id"]) if i.get("refund_id") else None),
        "amount_cents": money(i, "refunded_amount"),
    },
    "payouts": lambda i, r: {
        key: money(i, key)
        for key in (
            "paid_out_amount_cents",
            "fee_cents",
            "gross_payments_amount_cents",
            "total_refunds_amount_cents",
            "expected_net_amount_cents",
            "amount_variance_cents",
            "payment_count",
            "refund_payment_count",
        )
    },
    "bills": lambda i, r: {
        "vendor_id": ref(r, "vendors", _nested_id(i, "vendor")),
        "total_cents": _sum(i.get("line_items"), "total_amount"),
    },
    "bill_payments": lambda i, r: {
        "vendor_id": ref(r, "vendors", _nested_id(i, "vendor")),
        "amount_cents": money(i, "amount_cents"),
        "allocated_cents": money(i, "allocated_amount_cents"),
        "unallocated_cents": money(i, "unallocated_amount_cents"),
    },
    "vendor_credits": lambda i, r: {
        "vendor_id": ref(r, "vendors", _nested_id(i, "vendor")),
        "total_cents": money(i, "total_amount"),
        "applied_cents": money(i, "applied_amount"),
    },
}


def _first_allocation(item: Item, key: str) -> str | None:
    allocations = item.get("allocations")
    if isinstance(allocations, list) and allocations and isinstance(allocations[0], Mapping):
        value = allocations[0].get(key)
        return str(value) if value else None
    return None


@dataclass
class ThredBusiness:
    """What Thred holds for one business: items per entity, and the two aging reports."""

    thred_id: str
    items: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    aging: dict[str, dict[str, Any]] = field(default_factory=dict)  # "ar" / "ap" -> body


async def list_items(
    client: ThredClient, thred_business: str, entity: str, *, refund_ids: Iterable[str] = ()
) -> list[dict[str, Any]]:
    """Every item of one entity's list for a business (refund payments: under each refund)."""
    template = LIST_PATHS[entity]
    prefix = f"businesses/{thred_business}/"
    paths = (
        [prefix + template.format(refund_id=r) for r in refund_ids]
        if "{refund_id}" in template
        else [prefix + template]
    )
    items: list[dict[str, Any]] = []
    for path in paths:
        async for item in client.iter_pages(
            path, business_id=thred_business, params=LIST_PARAMS.get(entity)
        ):
            if entity == "refund_payments" and not item.get("refund_id"):
                item = {**item, "refund_id": path.rstrip("/").split("/")[-2]}
            items.append(item)
    return items


async def get_detail(
    client: ThredClient, thred_business: str, entity: str, thred_id: str
) -> dict[str, Any] | None:
    """A record by Thred id (documented detail pages); ``None`` when Thred says not found."""
    path = f"businesses/{thred_business}/{LIST_PATHS[entity]}{thred_id}/"
    try:
        response = await client.request("GET", path, business_id=thred_business)
    except ThredNotFoundError:
        return None
    return response.body if isinstance(response.body, dict) else None


async def read_aging(client: ThredClient, thred_business: str, side: str) -> dict[str, Any]:
    """AR (``side="ar"``) or AP aging grouped by party; [doc] path, [inferred] row keys."""
    party = "customer" if side == "ar" else "vendor"
    response = await client.request(
        "GET",
        f"businesses/{thred_business}/insights/{side}-aging/",
        business_id=thred_business,
        params={"group_by": party},
    )
    return response.body if isinstance(response.body, dict) else {}


def aging_per_party(body: Mapping[str, Any], side: str) -> dict[str, int | Unreadable]:
    """Thred party id -> total outstanding cents, from the aging rows."""
    party = "customer" if side == "ar" else "vendor"
    rows = body.get(f"{party}s")
    out: dict[str, int | Unreadable] = {}
    if not isinstance(rows, list):
        return out
    for row in rows:
        if not isinstance(row, Mapping) or not row.get(f"{party}_id"):
            continue
        value = money(row, "total_outstanding_cents")
        out[str(row[f"{party}_id"])] = value if value is not None else Unreadable(None)
    return out
