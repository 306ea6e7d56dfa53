"""Businesses, tax codes and the shared helpers of the services.

Services run under the store lock, validate everything before they write, and return
``(status, body)``. Stored objects keep the request's values plus bookkeeping fields that
start with ``_``; ``public`` strips those for responses.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from thred_devtools.sandbox import ledger, rules
from thred_devtools.sandbox.errors import (
    ApiError,
    Details,
    conflict,
    not_found,
    validation_error,
)
from thred_devtools.sandbox.models import BusinessCreate, BusinessPatch
from thred_devtools.sandbox.state import Sandbox, now_iso
from thred_devtools.sandbox.store import Obj
from thred_pipeline.core.money import round_half_up

__all__ = [
    "account_ref",
    "create_business",
    "fail_if",
    "public",
    "replay_existing",
    "resolve_account",
    "round_half_up",
    "tax_code_map",
]

Result = tuple[int, dict[str, Any]]


# ------------------------------------------------------------------ helpers
def public(obj: Obj) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if not k.startswith("_")}


def fail_if(details: Details) -> None:
    """Raise one 400 carrying every collected field error."""
    if details:
        first_path, msgs = next(iter(details.items()))
        raise validation_error(details, f"{first_path}: {msgs[0]}")


def add_error(details: Details, path: str, message: str) -> None:
    details.setdefault(path, []).append(message)


def date_of(value: str | None) -> dt.date | None:
    return None if not value else dt.date.fromisoformat(value[:10])


def get_owned(sb: Sandbox, collection: str, business: Obj, obj_id: str) -> Obj:
    obj = sb.store.get_in(collection, business["id"], obj_id)
    if obj is None:
        raise not_found(collection)
    return obj


def check_currency(
    details: Details, business: Obj, currency: str | None, path: str = "currency"
) -> None:
    if currency is not None and currency.upper() != business["base_currency"]:
        add_error(
            details,
            path,
            f"Currency must be the business base currency {business['base_currency']}.",
        )


def replay_existing(
    sb: Sandbox, noun: str, existing: Obj, view: Callable[[Obj], dict[str, Any]]
) -> Result:
    """A create repeating ``existing``'s external_id (contract 3.1 and 3.3, section 6 item 20).

    ``replay`` mode (the create pages): 200 with the stored object, unchanged. ``conflict``
    mode (the error guide): 409 ``duplicate_external_id``. Payouts upsert instead and never
    come here; an Idempotency-Key replay is answered before any create runs.
    """
    if sb.duplicate_external_id == "conflict":
        external_id = existing.get("external_id")
        raise ApiError(
            409,
            rules.DUPLICATE_EXTERNAL_ID_CODE,
            f"A {noun} with this external_id already exists.",
            {"external_id": [f"A {noun} with external_id {external_id!r} already exists."]},
        )
    return rules.REPLAY_STATUS, view(existing)


def external_id_free(
    sb: Sandbox, scope: str, collection: str, external_id: str | None, own_id: str
) -> None:
    """Refuse changing an object's external_id to one another object holds (409)."""
    if external_id is None:
        return
    holder = sb.store.find(scope, collection, "external_id", external_id)
    if holder is not None and holder["id"] != own_id:
        raise conflict(
            f"external_id {external_id!r} is already used by another object.",
            rules.DUPLICATE_EXTERNAL_ID_CODE,
        )


# ------------------------------------------------------------------ accounts
def account_ref(sb: Sandbox, scope: str, code: str) -> dict[str, Any]:
    acc = ledger.account_by_code(sb.store, scope, code)
    return {"id": acc["id"] if acc else None, "type": "AccountId", "code": code}


def _find_account(sb: Sandbox, scope: str, ref: Any) -> Obj | None:
    store = sb.store
    candidates: list[str] = []
    if isinstance(ref, str):
        candidates = [ref]
    elif isinstance(ref, dict):
        candidates = [
            v
            for k in ("id", "code", "account_code", "stable_name")
            if isinstance(v := ref.get(k), str)
        ]
    for cand in candidates:
        acc = store.get_in("accounts", scope, cand) or ledger.account_by_code(store, scope, cand)
        if acc is not None:
            return acc
    return None


def resolve_account(
    sb: Sandbox,
    scope: str,
    details: Details,
    candidates: list[tuple[str, Any]],
    allowed_types: tuple[str, ...],
    default: str,
) -> str:
    """The account code named by the first given alias (all given aliases must agree)."""
    found: str | None = None
    for path, ref in candidates:
        if ref is None:
            continue
        acc = _find_account(sb, scope, ref)
        if acc is None:
            add_error(details, path, "Account not found in this business's chart of accounts.")
            return default
        if acc["account_type"] not in allowed_types:
            add_error(
                details,
                path,
                f"Account {acc['code']} is a {acc['account_type']} account; expected "
                f"{' or '.join(allowed_types)}.",
            )
            return default
        if found is not None and found != acc["code"]:
            add_error(details, path, f"Conflicts with account {found} given in another field.")
            return default
        found = acc["code"]
    return found or default


# ------------------------------------------------------------------ tax codes
def tax_code_map(business: Obj) -> dict[str, rules.TaxCodeSpec]:
    specs = rules.TAX_CODES.get(business["country"], rules.DEFAULT_TAX_CODES)
    return {s.code: s for s in specs}


def format_rate(rate: Decimal) -> str:
    exponent = rate.normalize().as_tuple().exponent
    places = max(2, -exponent) if isinstance(exponent, int) else 2
    return f"{rate:.{places}f}"


def tax_codes_view(business: Obj) -> dict[str, Any]:
    codes = [
        {
            "code": s.code,
            "name": s.name,
            "rate": format_rate(s.rate),
            "purchase_account": rules.ACC_VAT_RECOVERABLE,
            "sales_account": rules.ACC_VAT_PAYABLE,
            "effective_from": s.effective_from,
            "is_active": s.is_active,
        }
        for s in tax_code_map(business).values()
    ]
    return {
        "business_id": business["id"],
        "country": business["country"],
        "count": len(codes),
        "tax_codes": codes,
    }


# ------------------------------------------------------------------ businesses
def business_view(business: Obj, created: bool | None = None) -> dict[str, Any]:
    out = public(business)
    out.pop("partner_id", None)
    out["name"] = business["legal_name"]
    if created is not None:
        out["_meta"] = {"created": created, "idempotent_replay": not created}
    return out


def _entity_type_error(details: Details, country: str, entity_type: str | None) -> str | None:
    if entity_type is None or entity_type == "":
        return entity_type
    allowed = rules.RESTRICTED_ENTITY_TYPES.get(country)
    if allowed is None:
        return entity_type
    normalised = entity_type.strip().lower()
    if normalised not in allowed:
        add_error(
            details,
            "entity_type",
            f"Invalid entity_type '{entity_type}' for country {country}. "
            f"Valid options: {', '.join(allowed)}",
        )
    return normalised


def _business_currency(sb: Sandbox, body: BusinessCreate, country: str, details: Details) -> str:
    """base_currency, or its older name currency (both given: they must agree), else the
    country's currency."""
    currency = body.base_currency or body.currency
    if body.currency is not None and body.base_currency is None:
        sb.note_alias("business.currency")
    if body.base_currency and body.currency and body.base_currency.upper() != body.currency.upper():
        add_error(details, "currency", "currency and base_currency disagree.")
    if currency is None:
        currency = rules.COUNTRY_CURRENCY.get(country, rules.EURO_DEFAULT)
    currency = currency.upper()
    if currency not in rules.BASE_CURRENCIES:
        field = "base_currency" if body.base_currency else "currency"
        add_error(
            details,
            field,
            f"Invalid currency code. Must be one of: {', '.join(rules.BASE_CURRENCIES)}",
        )
    return currency


def create_business(sb: Sandbox, partner_id: str, body: BusinessCreate) -> Result:
    scope = f"partner:{partner_id}"
    store = sb.store
    if body.external_id is not None:
        existing = store.find(scope, "businesses", "external_id", body.external_id)
        if existing is not None:
            return replay_existing(
                sb, "business", existing, lambda b: business_view(b, created=False)
            )
    details: Details = {}
    country = body.country or rules.DEFAULT_COUNTRY
    if country not in rules.SUPPORTED_COUNTRIES:
        add_error(
            details,
            "country",
            f"Unsupported country. Must be one of: {', '.join(rules.SUPPORTED_COUNTRIES)}",
        )
    currency = _business_currency(sb, body, country, details)
    entity_type = _entity_type_error(details, country, body.entity_type)
    if "entity_type" in details:
        msg = details["entity_type"][0]
        raise validation_error(details, msg, extra={"detail": msg})
    fail_if(details)
    now = now_iso()
    business: Obj = {
        "id": store.new_id(),
        "_scope": scope,
        "partner_id": partner_id,
        "external_id": body.external_id,
        "legal_name": body.legal_name,
        "entity_type": entity_type,
        "phone_number": body.phone_number,
        "tin": body.tin,
        "vat_number": body.vat_number,
        "company_number": body.company_number,
        "country": country,
        "province": body.province,
        "eu_nace_industry_code": body.eu_nace_industry_code,
        "email": body.email,
        "base_currency": currency,
        "accounting_method": body.accounting_method,
        "fiscal_year_end": body.fiscal_year_end,
        "coa_language": body.coa_language or "en",
        "metadata": body.metadata or {},
        "activation_at": now,
        "is_active": True,
        "is_archived": False,
        "created_at": now,
        "updated_at": now,
    }
    store.put("businesses", business)
    ledger.create_chart(store, business["id"], currency, now)
    return 201, business_view(business, created=True)


def patch_business(sb: Sandbox, business: Obj, body: BusinessPatch) -> Result:
    details: Details = {}
    sent = body.model_dump(exclude_unset=True)
    for field in ("country", "external_id"):
        if field in sent and sent[field] != business.get(field):
            add_error(details, field, "This field cannot be changed.")
    for field in ("base_currency", "currency"):
        if field in sent and str(sent[field]).upper() != business["base_currency"]:
            add_error(details, field, "The base currency cannot be changed.")
    if "entity_type" in sent:
        sent["entity_type"] = _entity_type_error(details, business["country"], sent["entity_type"])
        if "entity_type" in details:
            msg = details["entity_type"][0]
            raise validation_error(details, msg, extra={"detail": msg})
    if "legal_name" in sent and sent["legal_name"] is None:
        add_error(details, "legal_name", "This field may not be null.")
    if "email" in sent and sent["email"] is None:
        add_error(details, "email", "This field may not be null.")
    fail_if(details)
    updated = sb.store.editable(business)
    for field in rules.PATCHABLE_BUSINESS_FIELDS:
        if field in sent:
            updated[field] = sent[field] if field != "metadata" else (sent[field] or {})
    updated["updated_at"] = now_iso()
    sb.store.put("businesses", updated)
    return 200, business_view(updated)


# ------------------------------------------------------------------ idempotency
def idempotent_replay(sb: Sandbox, scope: str, endpoint: str, key: str | None) -> Obj | None:
    if key is None:
        return None
    return sb.store.find(scope, "idempotency", "_key", f"{endpoint}:{key}")


def remember_response(
    sb: Sandbox, scope: str, endpoint: str, key: str | None, obj_id: str, body: dict[str, Any]
) -> None:
    if key is None:
        return
    sb.store.put(
        "idempotency",
        {
            "id": sb.store.new_id(),
            "_scope": scope,
            "_key": f"{endpoint}:{key}",
            "object_id": obj_id,
            "body": body,
            "created_at": now_iso(),
        },
    )
