"""Customers and vendors: the parties of the two sides, written once.

A party's balance is the control account tagged with it (``Side.sign`` turns the AP credit
balance positive). Customers keep every request field; vendors keep the documented vendor
fields (a vendor credit can also create one from an external id alone).
"""

from __future__ import annotations

from typing import Any

from thred_devtools.sandbox import rules
from thred_devtools.sandbox.core import Result, fail_if, public, replay_existing
from thred_devtools.sandbox.models import CustomerCreate, VendorCreate
from thred_devtools.sandbox.sides import AP, AR, Side
from thred_devtools.sandbox.state import Sandbox, now_iso
from thred_devtools.sandbox.store import Obj

__all__ = [
    "create_customer",
    "create_vendor",
    "customer_view",
    "display_name",
    "new_vendor",
    "party_outstanding",
    "party_view",
    "set_archived",
    "vendor_view",
]

_ADDRESS_FIELDS = ("address_line1", "address_line2", "city", "state_county", "postal_code")


def display_name(party: Obj) -> str:
    return str(party.get("company_name") or party.get("individual_name") or "")


def party_outstanding(sb: Sandbox, side: Side, party: Obj) -> int:
    tag = (side.party_id, party["id"])
    return side.sign * sb.balances.net_debit(party["_scope"], side.control_account, tag)


def customer_view(sb: Sandbox, customer: Obj) -> dict[str, Any]:
    out = public(customer)
    parts = [customer.get(k) for k in (*_ADDRESS_FIELDS, "country")]
    address = ", ".join(p for p in parts if p)
    out.update(
        {
            "type": "Customer",
            "display_name": display_name(customer),
            "full_address": address,
            "address_string": address,
            "is_active": not customer["is_archived"],
            "credit_limit": customer.get("credit_limit_cents"),
            rules.F_OUTSTANDING: party_outstanding(sb, AR, customer),
            "documents": [],
        }
    )
    return out


def vendor_view(sb: Sandbox, vendor: Obj) -> dict[str, Any]:
    out = public(vendor)
    out.update(
        {
            "type": "VendorData",
            "display_name": display_name(vendor),
            rules.F_OUTSTANDING: party_outstanding(sb, AP, vendor),
            "documents": [],
        }
    )
    return out


def party_view(sb: Sandbox, side: Side, party: Obj) -> dict[str, Any]:
    return customer_view(sb, party) if side is AR else vendor_view(sb, party)


def _party_fields(sb: Sandbox, side: Side, body: CustomerCreate | VendorCreate) -> dict[str, Any]:
    """The request's fields with the guides' ``name`` alias resolved; a name is required."""
    data = body.model_dump()
    name_alias = data.pop("name")
    if name_alias and not data["individual_name"] and not data["company_name"]:
        data[rules.NAME_ALIAS_TARGET] = name_alias
        sb.note_alias(f"{side.party}.name")
    if not data["individual_name"] and not data["company_name"]:
        fail_if({side.name_required_path: ["Either individual_name or company_name is required."]})
    return data


def _existing(sb: Sandbox, side: Side, scope: str, external_id: str | None) -> Obj | None:
    if external_id is None:
        return None
    return sb.store.find(scope, side.parties, "external_id", external_id)


def create_customer(sb: Sandbox, business: Obj, body: CustomerCreate) -> Result:
    scope = business["id"]
    existing = _existing(sb, AR, scope, body.external_id)
    if existing is not None:
        return replay_existing(sb, AR.party, existing, lambda c: customer_view(sb, c))
    data = _party_fields(sb, AR, body)
    now = now_iso()
    customer: Obj = {
        "id": sb.store.new_id(),
        "_scope": scope,
        "business_id": scope,
        **data,
        "status": data["status"] or AR.party_active,
        "transaction_tags": data["transaction_tags"] or [],
        "metadata": data["metadata"] or {},
        "is_archived": False,
        "archived_at": None,
        "created_at": now,
        "updated_at": now,
    }
    sb.store.put(AR.parties, customer)
    return 201, customer_view(sb, customer)


def create_vendor(sb: Sandbox, business: Obj, body: VendorCreate) -> Result:
    scope = business["id"]
    existing = _existing(sb, AP, scope, body.external_id)
    if existing is not None:
        return replay_existing(sb, AP.party, existing, lambda v: vendor_view(sb, v))
    vendor = new_vendor(sb, scope, _party_fields(sb, AP, body))
    return 201, vendor_view(sb, vendor)


_VENDOR_FIELDS = (
    "external_id", "individual_name", "company_name", "email", "mobile_phone", "office_phone",
    "address_string", "memo",
)  # fmt: skip


def new_vendor(sb: Sandbox, scope: str, data: dict[str, Any]) -> Obj:
    now = now_iso()
    vendor: Obj = {
        "id": sb.store.new_id(),
        "_scope": scope,
        "business_id": scope,
        **{field: data.get(field) for field in _VENDOR_FIELDS},
        "transaction_tags": data.get("transaction_tags") or [],
        "country": data.get("country"),
        "vat_number": data.get("vat_number"),
        "metadata": data.get("metadata") or {},
        "status": AP.party_active,
        "is_archived": False,
        "archived_at": None,
        "created_at": now,
        "updated_at": now,
    }
    sb.store.put(AP.parties, vendor)
    return vendor


def set_archived(sb: Sandbox, side: Side, party: Obj, archived: bool) -> Result:
    """Archive or unarchive; asking for the state the party is in changes nothing (200)."""
    if party["is_archived"] != archived:
        updated = sb.store.editable(party)
        now = now_iso()
        updated.update(
            {
                "is_archived": archived,
                "archived_at": now if archived else None,
                "status": side.party_archived if archived else side.party_active,
                "updated_at": now,
            }
        )
        sb.store.put(side.parties, updated)
        party = updated
    return 200, party_view(sb, side, party)
