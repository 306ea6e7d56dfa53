"""Businesses: Thred's tenants, created under the partner; every other record belongs to one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from thred_pipeline.core.records import MapContext, Mapped, RecordInvalid, SourceRecord
from thred_pipeline.entities.mapping import (
    COMPANY_NUMBER_MAX_LENGTH,
    LEGAL_NAME_MAX_LENGTH,
    VAT_NUMBER_MAX_LENGTH,
    blank,
    country_code,
    email_field,
    enum_value,
    put,
    required_text,
    text_field,
)
from thred_pipeline.entities.spec import (
    BUSINESSES,
    ChangePolicy,
    EntitySpec,
    Measure,
    Parents,
    Reconciliation,
    flag,
)
from thred_pipeline.warehouse import schema as wh
from thred_pipeline.warehouse.text_reads import TextReads, is_true

if TYPE_CHECKING:
    import pandas as pd

BUSINESS_COUNTRIES: Final = frozenset(
    {"GB", "DE", "FR", "NL", "ES", "IT", "IE", "BE", "AT", "PT", "SE", "NO", "DK", "FI", "IS"}
    | {"MY", "SG"}
)  # 2.1 "supported countries"
BASE_CURRENCIES: Final = ("GBP", "EUR", "USD", "SEK", "NOK", "DKK", "ISK", "MYR", "SGD")  # 2.1
ACCOUNTING_METHODS: Final = ("cash", "accrual")  # 2.1
# 4.4: countries whose entity_type must be a listed code; only GB's list is documented.
ENTITY_TYPES_BY_COUNTRY: Final[Mapping[str, tuple[str, ...]]] = {
    "GB": ("limited", "sole_trader", "llp", "partnership", "plc"),
}


def map_business(record: SourceRecord, ctx: MapContext, parents: Parents) -> Mapped:
    """POST businesses/ (partner-scoped); PATCH cannot change country or base_currency."""
    row = record.row
    country = country_code(row.get("country"), "country", required=True)
    assert country is not None
    if country not in BUSINESS_COUNTRIES:
        raise RecordInvalid(
            "country",
            f"Thred does not support businesses in {country}; "
            f"supported: {', '.join(sorted(BUSINESS_COUNTRIES))}",
        )
    entity_type = text_field(row.get("entity_type"), "entity_type")
    if entity_type is not None and country in ENTITY_TYPES_BY_COUNTRY:
        entity_type = enum_value(entity_type, "entity_type", ENTITY_TYPES_BY_COUNTRY[country])
    base_currency = enum_value(
        row.get("base_currency"), "base_currency", BASE_CURRENCIES, upper=True
    )
    body: dict[str, Any] = {
        "legal_name": required_text(
            row.get("legal_name"), "legal_name", max_length=LEGAL_NAME_MAX_LENGTH
        )
    }
    put(body, "entity_type", entity_type)
    put(body, "email", email_field(row.get("email"), "email", required=True))
    put(body, "phone_number", text_field(row.get("phone_number"), "phone_number"))
    body["country"] = country
    body["base_currency"] = base_currency
    put(
        body,
        "vat_number",
        text_field(row.get("vat_number"), "vat_number", max_length=VAT_NUMBER_MAX_LENGTH),
    )
    put(
        body,
        "company_number",
        text_field(
            row.get("company_number"), "company_number", max_length=COMPANY_NUMBER_MAX_LENGTH
        ),
    )
    if not blank(row.get("accounting_method")):
        body["accounting_method"] = enum_value(
            row.get("accounting_method"), "accounting_method", ACCOUNTING_METHODS
        )
    update = {k: v for k, v in body.items() if k not in ("country", "base_currency")}
    return Mapped(body=body, update_body=update)


def expected_businesses(reads: TextReads) -> pd.DataFrame:
    """Every business row (the reconciliation keeps the active ones): active, base_currency."""
    import pandas as pd  # here, not at import: `sync` never needs it

    raw = reads.read(wh.businesses, ("id", "is_active", "base_currency", "updated_at"))
    return pd.DataFrame(
        {
            "business_id": raw["id"].astype(str),
            "source_id": raw["id"].astype(str),
            "active": raw["is_active"].map(is_true).astype(bool),
            "base_currency": raw["base_currency"],
            "updated_at": raw["updated_at"],
        }
    )


BUSINESS = EntitySpec(
    name=BUSINESSES,
    label="business",
    external_prefix="business",
    table=wh.businesses,
    map_record=map_business,
    create_path="businesses/",
    update_path="businesses/{thred_id}/",
    partner_scoped=True,
    is_business_root=True,
    group="thred_core",
    change_policy=ChangePolicy.PATCH,
    blocking=True,
    reconcile=Reconciliation(
        (flag(Measure.ACTIVE), flag(Measure.BASE_CURRENCY)),
        {
            Measure.ACTIVE: lambda i, r: bool(i.get("is_active")),
            Measure.BASE_CURRENCY: lambda i, r: i.get("base_currency"),
        },
        warehouse=expected_businesses,
    ),
)

# This module's objects, in Thred's order (the registry concatenates the areas).
DECLARED = (BUSINESS,)
