"""Payload mappers: exact request bodies, every validation rule, parent deferral, Unicode."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from thred_pipeline import entities
from thred_pipeline.core.records import (
    MapContext,
    Mapped,
    ParentNotSynced,
    RecordInvalid,
    SourceRecord,
    TaxCode,
)
from thred_pipeline.entities import mapping

Mapper = Callable[[SourceRecord, MapContext], Mapped]


def _through_registry(name: str) -> Mapper:
    """The entity's mapper as the engine calls it: parents only through its declared refs."""
    spec = entities.get(name)

    def mapper(record: SourceRecord, ctx: MapContext) -> Mapped:
        return spec.mapper(record, ctx)

    mapper.__name__ = spec.map_record.__name__
    return mapper


map_business = _through_registry("businesses")
map_customer = _through_registry("customers")
map_invoice = _through_registry("invoices")
map_invoice_payment = _through_registry("invoice_payments")
map_refund = _through_registry("refunds")
map_refund_payment = _through_registry("refund_payments")
map_payout = _through_registry("payouts")
map_vendor = _through_registry("vendors")
map_bill = _through_registry("bills")
map_bill_payment = _through_registry("bill_payments")
map_vendor_credit = _through_registry("vendor_credits")
Change = Callable[[SourceRecord], None]

UPDATED = datetime(2025, 3, 1, tzinfo=UTC)

CTX = MapContext(
    business_id="T-BIZ-1",
    base_currency="GBP",
    thred_ids={
        ("customers", "cus-1"): "T-CUS-1",
        ("customers", "cus-exempt"): "T-CUS-X",
        ("invoices", "inv-1"): "T-INV-1",
        ("invoices", "inv-2"): "T-INV-2",
        ("refunds", "ref-1"): "T-REF-1",
        ("invoice_payments", "pay-1"): "T-PAY-1",
        ("invoice_payments", "pay-2"): "T-PAY-2",
        ("refund_payments", "rp-1"): "T-RP-1",
        ("vendors", "ven-1"): "T-VEN-1",
        ("bills", "bill-1"): "T-BILL-1",
        ("bills", "bill-2"): "T-BILL-2",
    },
    tax_codes={
        "VAT_20": TaxCode("VAT_20", Decimal("0.20"), True),
        "ZERO_RATED": TaxCode("ZERO_RATED", Decimal("0"), True),
        "EXEMPT": TaxCode("EXEMPT", Decimal("0"), True),
        "VAT_17_5": TaxCode("VAT_17_5", Decimal("0.175"), False),
    },
    account_ids={"4000": "T-ACC-4000", "5000": "T-ACC-5000", "6100": "T-ACC-6100"},
    tax_exempt_customers=frozenset({"cus-exempt"}),
)


def account(thred_id: str) -> dict[str, str]:
    return {"type": "AccountId", "id": thred_id}


# --- record builders (fresh objects per call, so tests can mutate them) ----------------------


def record(entity: str, row: dict[str, Any], **children: list[dict[str, Any]]) -> SourceRecord:
    return SourceRecord(
        entity=entity,
        source_id=str(row["id"]),
        business_id="biz-src",
        updated_at=UPDATED,
        row=row,
        children=children,
    )


def business() -> SourceRecord:
    return record(
        "businesses",
        {
            "id": "biz-src",
            "legal_name": "Müller & Söhne Ltd",
            "entity_type": "Limited",
            "email": "accounts@mueller.example",
            "phone_number": "+44 20 7946 0000",
            "country": "gb",
            "base_currency": "gbp",
            "vat_number": "GB123456789",
            "company_number": "01234567",
            "accounting_method": "Accrual",
            "is_active": True,
        },
    )


def customer() -> SourceRecord:
    return record(
        "customers",
        {
            "id": "cus-1",
            "business_id": "biz-src",
            "individual_name": "Zoë Ångström",
            "company_name": None,
            "email": "zoe@example.com",
            "phone": "+447700900123",
            "address_line1": "1 Rue de l'Église",
            "city": "Paris",
            "postal_code": "75001",
            "country": "fr",
            "vat_number": "FR12345678901",
            "tax_exempt": False,
            "payment_terms_days": 30,
            "archived_at": None,
        },
    )


def vendor() -> SourceRecord:
    return record(
        "vendors",
        {
            "id": "ven-1",
            "business_id": "biz-src",
            "individual_name": None,
            "company_name": "Acme Supplies",
            "email": "ap@acme.example",
            "phone": "+441130000000",
            "address": "Unit 4\nIndustrial Estate\tLeeds",
            "country": "GB",
            "vat_number": "GB987654321",
            "archived_at": None,
        },
    )


def invoice() -> SourceRecord:
    return record(
        "invoices",
        {
            "id": "inv-1",
            "business_id": "biz-src",
            "customer_id": "cus-1",
            "invoice_number": "INV-0001",
            "currency": "GBP",
            "sent_at": datetime(2025, 1, 15, 10, 30, tzinfo=UTC),
            "due_at": datetime(2025, 2, 14),  # naive: SQLite hands these back
            "voided_at": None,
            "memo": "Thanks!\n\tPay within 30 days",
            "additional_discount_cents": 500,
        },
        line_items=[
            {
                "id": "li-1",
                "invoice_id": "inv-1",
                "position": 1,
                "description": "Consulting",
                "product": "consulting-hour",
                "quantity": Decimal("1.5000"),
                "unit_price_cents": 10000,
                "discount_cents": 1000,
                "tax_code": "VAT_20",
                "tax_amount_cents": 2800,
                "revenue_account_code": "4000",
            },
            {
                "id": "li-2",
                "invoice_id": "inv-1",
                "position": 2,
                "description": None,
                "product": None,
                "quantity": Decimal("3"),
                "unit_price_cents": 333,
                "discount_cents": 0,
                "tax_code": None,
                "tax_amount_cents": 0,
                "revenue_account_code": "4000",
            },
        ],
    )


def invoice_payment() -> SourceRecord:
    return record(
        "invoice_payments",
        {
            "id": "pay-1",
            "business_id": "biz-src",
            "customer_id": "cus-1",
            "amount_cents": 20000,
            "currency": "GBP",
            "payment_date": date(2025, 2, 1),
            "payment_method": "Bank Transfer",
            "reference": "RF18 5390 0754 7034",
            "processing_fee_cents": 150,
            "processor": "stripe",
        },
        allocations=[
            {"id": "al-1", "payment_id": "pay-1", "invoice_id": "inv-1", "amount_cents": 15000},
            {"id": "al-2", "payment_id": "pay-1", "invoice_id": "inv-2", "amount_cents": 5000},
        ],
    )


def refund() -> SourceRecord:
    return record(
        "refunds",
        {
            "id": "ref-1",
            "business_id": "biz-src",
            "invoice_id": "inv-1",
            "amount_cents": 2500,
            "method": "bank transfer",
            "completed_at": datetime(2025, 2, 3, 9, 0),
            "reason": "Damaged 📦\nreturned",
        },
    )


def refund_payment() -> SourceRecord:
    return record(
        "refund_payments",
        {
            "id": "rp-1",
            "business_id": "biz-src",
            "refund_id": "ref-1",
            "amount_cents": 2500,
            "method": "cash",
            "processor": "STRIPE",
            "completed_at": datetime(2025, 2, 4, 12, 0, 0, 250000, tzinfo=UTC),
        },
    )


def payout() -> SourceRecord:
    return record(
        "payouts",
        {
            "id": "po-1",
            "business_id": "biz-src",
            "processor": "stripe",
            "processor_payout_id": "po_1NxYz",
            "paid_out_amount_cents": 920000,
            "fee_cents": 30000,
            "currency": "gbp",
            "status": "PAID",
            "completed_at": datetime(2025, 2, 5, tzinfo=UTC),
        },
        items=[
            {"id": "pi-1", "payout_id": "po-1", "payment_id": "pay-1", "refund_payment_id": None},
            {"id": "pi-2", "payout_id": "po-1", "payment_id": None, "refund_payment_id": "rp-1"},
            {"id": "pi-3", "payout_id": "po-1", "payment_id": "pay-2", "refund_payment_id": ""},
        ],
    )


def bill() -> SourceRecord:
    return record(
        "bills",
        {
            "id": "bill-1",
            "business_id": "biz-src",
            "vendor_id": "ven-1",
            "bill_number": "B-100",
            "vendor_bill_number": "SUP-7781",
            "currency": "GBP",
            "bill_date": date(2025, 1, 10),
            "due_at": datetime(2025, 2, 9, tzinfo=UTC),
            "memo": "Chairs for the new office",
        },
        line_items=[
            {
                "id": "bl-1",
                "bill_id": "bill-1",
                "position": 1,
                "description": "Office chairs",
                "quantity": Decimal("4.0000"),
                "unit_price_cents": 12500,
                "tax_code": "VAT_20",
                "tax_amount_cents": 10000,
                "expense_account_code": "5000",
            },
            {
                "id": "bl-2",
                "bill_id": "bill-1",
                "position": 2,
                "description": "Delivery",
                "quantity": Decimal("1"),
                "unit_price_cents": 999,
                "tax_code": "ZERO_RATED",
                "tax_amount_cents": 0,
                "expense_account_code": "6100",
            },
        ],
    )


def bill_payment() -> SourceRecord:
    return record(
        "bill_payments",
        {
            "id": "bp-1",
            "business_id": "biz-src",
            "vendor_id": "ven-1",
            "amount_cents": 60999,
            "currency": "GBP",
            "payment_method": "check",
            "payment_date": date(2025, 2, 9),
            "check_number": "000123",
            "reference": "Jan chairs",
        },
        allocations=[
            {"id": "ba-1", "bill_payment_id": "bp-1", "bill_id": "bill-1", "amount_cents": 60999}
        ],
    )


def vendor_credit() -> SourceRecord:
    return record(
        "vendor_credits",
        {
            "id": "vc-1",
            "business_id": "biz-src",
            "vendor_id": "ven-1",
            "credit_number": "CN-55",
            "currency": "GBP",
            "received_at": datetime(2025, 2, 10, 8, 15, tzinfo=UTC),
            "memo": "Returned two chairs",
        },
        lines=[
            {
                "id": "vcl-1",
                "vendor_credit_id": "vc-1",
                "position": 1,
                "description": "Chair return",
                "amount_cents": 25000,
                "expense_account_code": "5000",
            },
            {
                "id": "vcl-2",
                "vendor_credit_id": "vc-1",
                "position": 2,
                "description": None,
                "amount_cents": 500,
                "expense_account_code": "6100",
            },
        ],
        allocations=[
            {"id": "vca-1", "vendor_credit_id": "vc-1", "bill_id": "bill-1", "amount_cents": 20000}
        ],
    )


# --- mutation helpers ------------------------------------------------------------------------


def row(**changes: Any) -> Change:
    def apply(rec: SourceRecord) -> None:
        rec.row.update(changes)

    return apply


def child(key: str, index: int, **changes: Any) -> Change:
    def apply(rec: SourceRecord) -> None:
        rec.children[key][index].update(changes)

    return apply


def no_children(key: str) -> Change:
    def apply(rec: SourceRecord) -> None:
        rec.children[key] = []

    return apply


def both(*changes: Change) -> Change:
    def apply(rec: SourceRecord) -> None:
        for change in changes:
            change(rec)

    return apply


def rejected(mapper: Mapper, rec: SourceRecord, change: Change) -> RecordInvalid:
    change(rec)
    with pytest.raises(RecordInvalid) as caught:
        mapper(rec, CTX)
    return caught.value


def deferred(mapper: Mapper, rec: SourceRecord, change: Change) -> ParentNotSynced:
    change(rec)
    with pytest.raises(ParentNotSynced) as caught:
        mapper(rec, CTX)
    return caught.value


def assert_rejected(
    mapper: Mapper, rec: SourceRecord, change: Change, path: str, fragment: str
) -> None:
    error = rejected(mapper, rec, change)
    assert error.field_path == path, error
    assert fragment in error.message, error.message
    assert str(error) == f"{path}: {error.message}"


LONG = "x" * 256

# =============================================================================================
# businesses
# =============================================================================================

BUSINESS_BODY: dict[str, Any] = {
    "legal_name": "Müller & Söhne Ltd",
    "entity_type": "limited",
    "email": "accounts@mueller.example",
    "phone_number": "+44 20 7946 0000",
    "country": "GB",
    "base_currency": "GBP",
    "vat_number": "GB123456789",
    "company_number": "01234567",
    "accounting_method": "accrual",
}


def test_business_maps_to_create_and_patch_bodies() -> None:
    mapped = map_business(business(), CTX)
    assert mapped.body == BUSINESS_BODY
    update = {k: v for k, v in BUSINESS_BODY.items() if k not in ("country", "base_currency")}
    assert mapped.update_body == update
    assert mapped.path_params == {}
    assert mapped.amount_cents == 0


def test_business_omits_missing_optionals() -> None:
    rec = business()
    rec.row.update(entity_type=None, phone_number=None, vat_number="", company_number=None)
    rec.row.pop("accounting_method")
    assert map_business(rec, CTX).body == {
        "legal_name": "Müller & Söhne Ltd",
        "email": "accounts@mueller.example",
        "country": "GB",
        "base_currency": "GBP",
    }


def test_business_entity_type_is_free_text_outside_restricted_countries() -> None:
    rec = business()
    rec.row.update(country="DE", entity_type="GmbH", base_currency="EUR")
    body = map_business(rec, CTX).body
    assert (body["entity_type"], body["country"], body["base_currency"]) == ("GmbH", "DE", "EUR")


@pytest.mark.parametrize(
    ("change", "path", "fragment"),
    [
        pytest.param(row(legal_name=None), "legal_name", "is required", id="name missing"),
        pytest.param(row(legal_name="  "), "legal_name", "is required", id="name blank"),
        pytest.param(row(legal_name=LONG), "legal_name", "at most 255", id="name too long"),
        pytest.param(row(legal_name=42), "legal_name", "must be text, got int", id="name int"),
        pytest.param(row(email=None), "email", "is required", id="email missing"),
        pytest.param(row(email="accounts"), "email", "not a valid email", id="email bad"),
        pytest.param(row(country=None), "country", "is required", id="country missing"),
        pytest.param(row(country="G1"), "country", "not an ISO-3166", id="country bad"),
        pytest.param(row(country="US"), "country", "does not support businesses in US", id="US"),
        pytest.param(
            row(entity_type="gmbh"), "entity_type", "'gmbh' is not one of: limited", id="GB type"
        ),
        pytest.param(
            row(base_currency="JPY"), "base_currency", "'JPY' is not one of: GBP", id="JPY"
        ),
        pytest.param(row(base_currency=None), "base_currency", "is required", id="no currency"),
        pytest.param(row(vat_number="G" * 21), "vat_number", "at most 20", id="vat too long"),
        pytest.param(row(company_number="1" * 21), "company_number", "at most 20", id="co no"),
        pytest.param(
            row(accounting_method="modified"),
            "accounting_method",
            "not one of: cash, accrual",
            id="method",
        ),
        pytest.param(
            row(phone_number="+44\r\n1"), "phone_number", "control character U+000D", id="CR"
        ),
    ],
)
def test_business_rejects(change: Change, path: str, fragment: str) -> None:
    assert_rejected(map_business, business(), change, path, fragment)


# =============================================================================================
# customers and vendors
# =============================================================================================


def test_customer_maps_to_body() -> None:
    mapped = map_customer(customer(), CTX)
    assert mapped == Mapped(
        body={
            "individual_name": "Zoë Ångström",
            "email": "zoe@example.com",
            "mobile_phone": "+447700900123",
            "address_line1": "1 Rue de l'Église",
            "city": "Paris",
            "postal_code": "75001",
            "country": "FR",
            "vat_number": "FR12345678901",
            "tax_exempt": False,
            "payment_terms_days": 30,
        }
    )


def test_customer_minimal_company_only() -> None:
    rec = record("customers", {"id": "cus-9", "company_name": "深圳贸易有限公司 🚀"})
    assert map_customer(rec, CTX).body == {"company_name": "深圳贸易有限公司 🚀"}


def test_customer_accepts_sqlite_boolean_and_whole_float_terms() -> None:
    rec = customer()
    rec.row.update(tax_exempt=1, payment_terms_days=14.0)
    body = map_customer(rec, CTX).body
    assert body["tax_exempt"] is True
    assert body["payment_terms_days"] == 14


@pytest.mark.parametrize(
    ("change", "path", "fragment"),
    [
        pytest.param(
            row(individual_name=None),
            "individual_name",
            "needs individual_name or company_name",
            id="no name",
        ),
        pytest.param(
            row(individual_name=" ", company_name=""),
            "individual_name",
            "needs individual_name",
            id="blank names",
        ),
        pytest.param(
            row(company_name="Acme\x00"), "company_name", "control character U+0000", id="NUL"
        ),
        pytest.param(row(email="zoe@"), "email", "'zoe@' is not a valid email address", id="email"),
        pytest.param(row(city="Pa\x1bris"), "city", "U+001B", id="ESC"),
        pytest.param(row(country="FRA"), "country", "'FRA' is not an ISO-3166", id="alpha-3"),
        pytest.param(
            row(tax_exempt="yes"), "tax_exempt", "must be true or false", id="tax_exempt text"
        ),
        pytest.param(
            row(payment_terms_days=True),
            "payment_terms_days",
            "whole number, got bool",
            id="terms bool",
        ),
        pytest.param(
            row(payment_terms_days="30"),
            "payment_terms_days",
            "whole number, got str",
            id="terms text",
        ),
        pytest.param(
            row(payment_terms_days=30.5),
            "payment_terms_days",
            "whole number, got 30.5",
            id="terms frac",
        ),
        pytest.param(
            row(payment_terms_days=float("nan")),
            "payment_terms_days",
            "whole number",
            id="terms nan",
        ),
        pytest.param(
            row(payment_terms_days=-1), "payment_terms_days", "must not be negative", id="terms neg"
        ),
    ],
)
def test_customer_rejects(change: Change, path: str, fragment: str) -> None:
    assert_rejected(map_customer, customer(), change, path, fragment)


def test_vendor_maps_to_body_keeping_address_line_breaks() -> None:
    assert map_vendor(vendor(), CTX) == Mapped(
        body={
            "company_name": "Acme Supplies",
            "email": "ap@acme.example",
            "mobile_phone": "+441130000000",
            "address_string": "Unit 4\nIndustrial Estate\tLeeds",
            "country": "GB",
            "vat_number": "GB987654321",
        }
    )


@pytest.mark.parametrize(
    ("change", "path", "fragment"),
    [
        pytest.param(
            row(company_name=None),
            "individual_name",
            "needs individual_name or company_name",
            id="no name",
        ),
        pytest.param(
            row(address="Unit 4\x0bLeeds"),
            "address_string",
            "U+000B at position 6 (only newlines and tabs",
            id="VT",
        ),
        pytest.param(row(phone="\x7f"), "mobile_phone", "U+007F", id="DEL"),
        pytest.param(row(email="ap@acme"), "email", "not a valid email", id="email"),
    ],
)
def test_vendor_rejects(change: Change, path: str, fragment: str) -> None:
    assert_rejected(map_vendor, vendor(), change, path, fragment)


# =============================================================================================
# invoices
# =============================================================================================

INVOICE_BODY: dict[str, Any] = {
    "customer_id": "T-CUS-1",
    "invoice_number": "INV-0001",
    "sent_at": "2025-01-15T10:30:00Z",
    "due_at": "2025-02-14T00:00:00Z",
    "memo": "Thanks!\n\tPay within 30 days",
    "additional_discount": 500,
    "line_items": [
        {
            "external_id": "line-li-1",
            "description": "Consulting",
            "product": "consulting-hour",
            "quantity": "1.5",
            "unit_price": 10000,
            "discount_amount": 1000,
            "account_identifier": account("T-ACC-4000"),
            "tax_code": "VAT_20",
            "sales_taxes": [{"code": "VAT_20", "amount": 2800}],
        },
        {
            "external_id": "line-li-2",
            "quantity": "3",
            "unit_price": 333,
            "discount_amount": 0,
            "account_identifier": account("T-ACC-4000"),
        },
    ],
}


def test_invoice_maps_to_body() -> None:
    mapped = map_invoice(invoice(), CTX)
    assert mapped.body == INVOICE_BODY
    # (15000 - 1000) + 2800 tax + 999 - 500 additional discount
    assert mapped.amount_cents == 17299
    assert mapped.update_body is None
    assert mapped.path_params == {}
    assert "external_id" not in mapped.body


def test_invoice_does_not_mutate_its_record_and_is_deterministic() -> None:
    rec = invoice()
    before = copy.deepcopy(rec)
    assert map_invoice(rec, CTX) == map_invoice(rec, CTX)
    assert rec == before


@pytest.mark.parametrize(
    ("sent_at", "expected"),
    [
        (
            datetime(2025, 1, 15, 11, 30, tzinfo=timezone(timedelta(hours=1))),
            "2025-01-15T10:30:00Z",
        ),
        (datetime(2025, 1, 15, 10, 30), "2025-01-15T10:30:00Z"),
        (datetime(2025, 1, 15, 10, 30, 0, 123000, tzinfo=UTC), "2025-01-15T10:30:00.123000Z"),
        (date(2025, 1, 15), "2025-01-15T00:00:00Z"),
        ("2025-01-15T10:30:00Z", "2025-01-15T10:30:00Z"),
        ("2025-01-15T12:30:00+02:00", "2025-01-15T10:30:00Z"),
        ("2025-01-15", "2025-01-15T00:00:00Z"),
        (datetime(1900, 1, 1, tzinfo=UTC), "1900-01-01T00:00:00Z"),
        (datetime(2100, 12, 31, 23, 59, 59, tzinfo=UTC), "2100-12-31T23:59:59Z"),
        ("2101-01-01T00:30:00+01:00", "2100-12-31T23:30:00Z"),  # the year is checked in UTC
    ],
)
def test_invoice_date_times_are_utc_with_z(sent_at: Any, expected: str) -> None:
    rec = invoice()
    rec.row["sent_at"] = sent_at
    assert map_invoice(rec, CTX).body["sent_at"] == expected


def test_invoice_optional_fields_are_omitted_and_defaults_applied() -> None:
    rec = invoice()
    rec.row.update(due_at=None, memo="", additional_discount_cents=None, currency="gbp")
    rec.children["line_items"][0].update(discount_cents=None, tax_amount_cents=None)
    body = map_invoice(rec, CTX).body
    assert "due_at" not in body and "memo" not in body
    assert body["additional_discount"] == 0
    line = body["line_items"][0]
    assert line["discount_amount"] == 0
    # No explicit amount: Thred's own computation (15000 x 0.20), sent so totals are known.
    assert line["sales_taxes"] == [{"code": "VAT_20", "amount": 3000}]


@pytest.mark.parametrize("tax_amount", [2799, 2800, 2801])
def test_invoice_tax_amount_within_one_cent_is_accepted(tax_amount: int) -> None:
    rec = invoice()
    rec.children["line_items"][0]["tax_amount_cents"] = tax_amount
    line = map_invoice(rec, CTX).body["line_items"][0]
    assert line["sales_taxes"] == [{"code": "VAT_20", "amount": tax_amount}]


def test_invoice_for_tax_exempt_customer_with_exempt_and_untaxed_lines() -> None:
    rec = invoice()
    rec.row["customer_id"] = "cus-exempt"
    rec.children["line_items"][0].update(tax_code="EXEMPT", tax_amount_cents=0)
    body = map_invoice(rec, CTX).body
    assert body["customer_id"] == "T-CUS-X"
    assert body["line_items"][0]["sales_taxes"] == [{"code": "EXEMPT", "amount": 0}]


def test_invoice_quantities_from_ints_and_floats() -> None:
    rec = invoice()
    rec.children["line_items"][0].update(quantity=2, tax_amount_cents=3800)
    rec.children["line_items"][1]["quantity"] = 0.25
    lines = map_invoice(rec, CTX).body["line_items"]
    assert [line["quantity"] for line in lines] == ["2", "0.25"]


def test_invoice_unicode_passes_through_unchanged() -> None:
    rec = invoice()
    rec.row.update(invoice_number="Rechnung-ü-中文-🧾", memo="Merci é 👍🏽\nFamily 👨‍👩‍👧")
    rec.children["line_items"][0].update(description="Café crème ☕", product="Überweisung")
    body = map_invoice(rec, CTX).body
    assert body["invoice_number"] == "Rechnung-ü-中文-🧾"
    assert body["memo"] == "Merci é 👍🏽\nFamily 👨‍👩‍👧"
    assert body["line_items"][0]["description"] == "Café crème ☕"
    assert body["line_items"][0]["product"] == "Überweisung"


L0 = "line_items[0]"
L1 = "line_items[1]"


@pytest.mark.parametrize(
    ("change", "path", "fragment"),
    [
        pytest.param(row(customer_id=None), "customer_id", "is required", id="customer missing"),
        pytest.param(row(customer_id=""), "customer_id", "is required", id="customer empty"),
        pytest.param(row(invoice_number=""), "invoice_number", "is required", id="number empty"),
        pytest.param(
            row(invoice_number="INV\x00"), "invoice_number", "U+0000 at position 3", id="NUL"
        ),
        pytest.param(row(memo="bell\x07"), "memo", "U+0007", id="memo BEL"),
        pytest.param(
            row(currency="EUR"),
            "currency",
            "is EUR but the business's base currency is GBP",
            id="EUR",
        ),
        pytest.param(row(currency="pounds"), "currency", "not an ISO-4217", id="currency text"),
        pytest.param(row(currency=None), "currency", "is required", id="currency missing"),
        pytest.param(row(sent_at=None), "sent_at", "is required", id="sent_at missing"),
        pytest.param(
            row(sent_at="yesterday"),
            "sent_at",
            "'yesterday' is not a valid date-time",
            id="sent_at text",
        ),
        pytest.param(row(sent_at="2025-02-30"), "sent_at", "not a valid date-time", id="Feb 30"),
        pytest.param(
            row(sent_at=20250115), "sent_at", "must be a date-time, got int", id="sent_at int"
        ),
        pytest.param(
            row(sent_at=datetime(1899, 12, 31, tzinfo=UTC)),
            "sent_at",
            "outside the accepted years 1900-2100",
            id="1899",
        ),
        pytest.param(
            row(sent_at=datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1)))),
            "sent_at",
            "0001-01-01T00:00:00+01:00 is outside",
            id="year 1 with offset",
        ),
        pytest.param(
            row(due_at=datetime(2101, 1, 1)), "due_at", "2101-01-01T00:00:00Z is outside", id="2101"
        ),
        pytest.param(
            row(additional_discount_cents=-1),
            "additional_discount",
            "must not be negative",
            id="disc neg",
        ),
        pytest.param(
            row(additional_discount_cents=12.5),
            "additional_discount",
            "whole cents",
            id="disc frac",
        ),
        pytest.param(
            row(additional_discount_cents=17800),
            "additional_discount",
            "17800 is more than the invoice's line total 17799",
            id="disc > total",
        ),
        pytest.param(
            no_children("line_items"), "line_items", "at least one line item", id="no lines"
        ),
        pytest.param(
            child("line_items", 0, id=None), f"{L0}.external_id", "is required", id="line id"
        ),
        pytest.param(
            child("line_items", 0, description="tab\tok but \x1b not"),
            f"{L0}.description",
            "U+001B",
            id="desc ESC",
        ),
        pytest.param(
            child("line_items", 0, quantity="two"),
            f"{L0}.quantity",
            "must be a number, not text ('two')",
            id="qty two",
        ),
        pytest.param(
            child("line_items", 0, quantity=None), f"{L0}.quantity", "is required", id="qty missing"
        ),
        pytest.param(
            child("line_items", 0, quantity=Decimal(0)),
            f"{L0}.quantity",
            "greater than 0",
            id="qty zero",
        ),
        pytest.param(
            child("line_items", 1, quantity=Decimal(-2)),
            f"{L1}.quantity",
            "greater than 0",
            id="qty neg",
        ),
        pytest.param(
            child("line_items", 0, quantity=Decimal("NaN")),
            f"{L0}.quantity",
            "finite",
            id="qty NaN",
        ),
        pytest.param(
            child("line_items", 0, quantity=float("inf")), f"{L0}.quantity", "finite", id="qty inf"
        ),
        pytest.param(
            child("line_items", 0, quantity=Decimal("1.23456")),
            f"{L0}.quantity",
            "more than 4 decimal",
            id="qty decimals",
        ),
        pytest.param(
            child("line_items", 1, unit_price_cents=True),
            f"{L1}.unit_price",
            "not a boolean",
            id="price bool",
        ),
        pytest.param(
            child("line_items", 1, unit_price_cents=3.33),
            f"{L1}.unit_price",
            "whole cents",
            id="price float",
        ),
        pytest.param(
            child("line_items", 1, unit_price_cents="333"),
            f"{L1}.unit_price",
            "not text",
            id="price text",
        ),
        pytest.param(
            child("line_items", 1, unit_price_cents=-333),
            f"{L1}.unit_price",
            "must not be negative",
            id="price neg",
        ),
        pytest.param(
            child("line_items", 1, unit_price_cents=None),
            f"{L1}.unit_price",
            "is required",
            id="price missing",
        ),
        pytest.param(
            child("line_items", 0, discount_cents=-5),
            f"{L0}.discount_amount",
            "must not be negative",
            id="line disc neg",
        ),
        pytest.param(
            child("line_items", 0, discount_cents=15001),
            f"{L0}.discount_amount",
            "discount 15001 is more than the line amount 15000",
            id="line disc > gross",
        ),
        pytest.param(
            child("line_items", 0, tax_code="VAT_99"),
            f"{L0}.tax_code",
            "unknown tax code 'VAT_99'",
            id="tax unknown",
        ),
        pytest.param(
            child("line_items", 0, tax_code="VAT_17_5"),
            f"{L0}.tax_code",
            "inactive",
            id="tax inactive",
        ),
        pytest.param(
            child("line_items", 0, tax_code=7), f"{L0}.tax_code", "must be text", id="tax code int"
        ),
        pytest.param(
            child("line_items", 0, tax_amount_cents=2802),
            f"{L0}.sales_taxes[0].amount",
            "disagrees with VAT_20",
            id="tax mismatch",
        ),
        pytest.param(
            child("line_items", 0, tax_amount_cents=-1),
            f"{L0}.sales_taxes[0].amount",
            "must not be negative",
            id="tax neg",
        ),
        pytest.param(
            child("line_items", 1, tax_amount_cents=150),
            f"{L1}.tax_code",
            "tax_amount_cents 150 but no tax_code",
            id="tax w/o code",
        ),
        pytest.param(
            row(customer_id="cus-exempt"),
            f"{L0}.tax_code",
            "customer 'cus-exempt' is tax-exempt but this line uses VAT_20 (20%)",
            id="exempt customer",
        ),
        pytest.param(
            child("line_items", 0, revenue_account_code="9999"),
            f"{L0}.account_identifier",
            "account code '9999' is not in Thred's chart",
            id="account unknown",
        ),
        pytest.param(
            child("line_items", 1, revenue_account_code=None),
            f"{L1}.account_identifier",
            "account code is required",
            id="account missing",
        ),
    ],
)
def test_invoice_rejects(change: Change, path: str, fragment: str) -> None:
    assert_rejected(map_invoice, invoice(), change, path, fragment)


def test_invoice_tax_mismatch_message_explains_the_expected_amount() -> None:
    error = rejected(map_invoice, invoice(), child("line_items", 0, tax_amount_cents=2500))
    assert error.message == (
        "tax_amount_cents 2500 disagrees with VAT_20 at rate 0.20 of net 14000: "
        "expected 2800 (±1 cent)"
    )


def test_invoice_waits_for_its_customer() -> None:
    error = deferred(map_invoice, invoice(), row(customer_id="cus-new"))
    assert (error.entity, error.source_id, error.field_path) == (
        "customers",
        "cus-new",
        "customer_id",
    )


def test_invalid_data_is_rejected_even_while_the_parent_is_missing() -> None:
    change = both(row(customer_id="cus-new"), child("line_items", 0, quantity="two"))
    assert rejected(map_invoice, invoice(), change).field_path == "line_items[0].quantity"


# =============================================================================================
# invoice payments
# =============================================================================================

PAYMENT_BODY: dict[str, Any] = {
    "customer_id": "T-CUS-1",
    "total_amount_cents": 20000,
    "payment_date": "2025-02-01",
    "currency": "GBP",
    "payment_method": "bank_transfer",
    "payment_reference": "RF18 5390 0754 7034",
    "processing_fee_cents": 150,
    "payment_processor": "stripe",
    "allocations": [
        {"invoice_id": "T-INV-1", "amount_cents": 15000},
        {"invoice_id": "T-INV-2", "amount_cents": 5000},
    ],
}


def test_invoice_payment_maps_to_body() -> None:
    assert map_invoice_payment(invoice_payment(), CTX) == Mapped(
        body=PAYMENT_BODY, amount_cents=20000
    )


def test_invoice_payment_without_allocations_or_optionals() -> None:
    rec = invoice_payment()
    rec.children.clear()  # children may be missing entirely
    rec.row.update(
        reference=None,
        processor=None,
        processing_fee_cents=None,
        payment_date="2025-02-01",
        payment_method="CASH",
    )
    assert map_invoice_payment(rec, CTX).body == {
        "customer_id": "T-CUS-1",
        "total_amount_cents": 20000,
        "payment_date": "2025-02-01",
        "currency": "GBP",
        "payment_method": "cash",
        "processing_fee_cents": 0,
        "allocations": [],
    }


def test_invoice_payment_date_from_a_timestamp_is_its_utc_day() -> None:
    rec = invoice_payment()
    rec.row["payment_date"] = datetime(2025, 2, 1, 23, 30, tzinfo=timezone(timedelta(hours=-5)))
    assert map_invoice_payment(rec, CTX).body["payment_date"] == "2025-02-02"


@pytest.mark.parametrize(
    ("change", "path", "fragment"),
    [
        pytest.param(
            row(amount_cents=0), "total_amount_cents", "must be at least 1 cent, got 0", id="zero"
        ),
        pytest.param(
            row(amount_cents=-100), "total_amount_cents", "at least 1 cent", id="negative"
        ),
        pytest.param(
            row(amount_cents="200.00"), "total_amount_cents", "not text ('200.00')", id="text"
        ),
        pytest.param(
            row(amount_cents=Decimal("200.5")), "total_amount_cents", "whole cents", id="fraction"
        ),
        pytest.param(
            row(payment_method="cheque"),
            "payment_method",
            "'cheque' is not one of: bank_transfer, credit_card",
            id="cheque",
        ),
        pytest.param(
            row(payment_method=None), "payment_method", "is required", id="method missing"
        ),
        pytest.param(
            row(payment_date="2025-13-01"),
            "payment_date",
            "'2025-13-01' is not a valid date (YYYY-MM-DD)",
            id="month 13",
        ),
        pytest.param(
            row(payment_date=date(1850, 1, 1)),
            "payment_date",
            "outside the accepted years",
            id="1850",
        ),
        pytest.param(row(payment_date=None), "payment_date", "is required", id="date missing"),
        pytest.param(row(currency="USD"), "currency", "is USD but", id="USD"),
        pytest.param(row(processor="P" * 101), "payment_processor", "at most 100", id="processor"),
        pytest.param(
            row(processing_fee_cents=-1), "processing_fee_cents", "must not be negative", id="fee"
        ),
        pytest.param(
            child("allocations", 1, amount_cents=0),
            "allocations[1].amount_cents",
            "at least 1 cent",
            id="alloc zero",
        ),
        pytest.param(
            child("allocations", 0, amount_cents=1.5),
            "allocations[0].amount_cents",
            "whole cents",
            id="alloc frac",
        ),
        pytest.param(
            child("allocations", 1, amount_cents=5001),
            "allocations",
            "allocations add up to 20001 cents, more than the payment total of 20000",
            id="over-allocated",
        ),
        pytest.param(
            child("allocations", 0, invoice_id=""),
            "allocations[0].invoice_id",
            "is required",
            id="alloc no invoice",
        ),
    ],
)
def test_invoice_payment_rejects(change: Change, path: str, fragment: str) -> None:
    assert_rejected(map_invoice_payment, invoice_payment(), change, path, fragment)


@pytest.mark.parametrize(
    ("change", "entity", "source", "path"),
    [
        (row(customer_id="cus-new"), "customers", "cus-new", "customer_id"),
        (
            child("allocations", 1, invoice_id="inv-new"),
            "invoices",
            "inv-new",
            "allocations[1].invoice_id",
        ),
    ],
)
def test_invoice_payment_waits_for_parents(
    change: Change, entity: str, source: str, path: str
) -> None:
    error = deferred(map_invoice_payment, invoice_payment(), change)
    assert (error.entity, error.source_id, error.field_path) == (entity, source, path)


# =============================================================================================
# refunds and refund payments
# =============================================================================================


def test_refund_maps_to_body() -> None:
    assert map_refund(refund(), CTX) == Mapped(
        body={
            "invoice_id": "T-INV-1",
            "amount_cents": 2500,
            "method": "BANK_TRANSFER",
            "completed_at": "2025-02-03T09:00:00Z",
            "memo": "Damaged 📦\nreturned",
        },
        amount_cents=2500,
    )


def test_refund_without_completion_or_reason() -> None:
    rec = refund()
    rec.row.update(completed_at=None, reason=None, method="Ach")
    assert map_refund(rec, CTX).body == {
        "invoice_id": "T-INV-1",
        "amount_cents": 2500,
        "method": "ACH",
    }


@pytest.mark.parametrize(
    ("change", "path", "fragment"),
    [
        pytest.param(row(invoice_id=None), "invoice_id", "is required", id="invoice missing"),
        pytest.param(row(amount_cents=0), "amount_cents", "at least 1 cent", id="zero"),
        pytest.param(row(amount_cents=float("nan")), "amount_cents", "finite", id="NaN"),
        pytest.param(
            row(method="voucher"),
            "method",
            "'voucher' is not one of: CASH, CARD, BANK_TRANSFER",
            id="method",
        ),
        pytest.param(
            row(completed_at="soon"), "completed_at", "not a valid date-time", id="completed text"
        ),
        pytest.param(row(reason="bad\x0cpage"), "memo", "U+000C", id="form feed"),
    ],
)
def test_refund_rejects(change: Change, path: str, fragment: str) -> None:
    assert_rejected(map_refund, refund(), change, path, fragment)


def test_refund_waits_for_its_invoice() -> None:
    error = deferred(map_refund, refund(), row(invoice_id="inv-new"))
    assert (error.entity, error.source_id, error.field_path) == (
        "invoices",
        "inv-new",
        "invoice_id",
    )


def test_refund_payment_maps_to_body_and_path() -> None:
    assert map_refund_payment(refund_payment(), CTX) == Mapped(
        body={
            "amount_cents": 2500,
            "method": "CASH",
            "completed_at": "2025-02-04T12:00:00.250000Z",
            "processor": "STRIPE",
        },
        path_params={"refund_id": "T-REF-1"},
        amount_cents=2500,
    )


@pytest.mark.parametrize(
    ("change", "path", "fragment"),
    [
        pytest.param(row(refund_id=None), "refund_id", "is required", id="refund missing"),
        pytest.param(row(amount_cents=-1), "amount_cents", "at least 1 cent", id="negative"),
        pytest.param(row(method="wire"), "method", "'wire' is not one of", id="method"),
        pytest.param(row(completed_at=None), "completed_at", "is required", id="completed missing"),
    ],
)
def test_refund_payment_rejects(change: Change, path: str, fragment: str) -> None:
    assert_rejected(map_refund_payment, refund_payment(), change, path, fragment)


def test_refund_payment_waits_for_its_refund() -> None:
    error = deferred(map_refund_payment, refund_payment(), row(refund_id="ref-new"))
    assert (error.entity, error.source_id, error.field_path) == ("refunds", "ref-new", "refund_id")


# =============================================================================================
# payouts
# =============================================================================================


def test_payout_maps_to_body() -> None:
    assert map_payout(payout(), CTX) == Mapped(
        body={
            "processor": "stripe",
            "processor_payout_id": "po_1NxYz",
            "paid_out_amount_cents": 920000,
            "fee_cents": 30000,
            "currency": "GBP",
            "status": "paid",
            "completed_at": "2025-02-05T00:00:00Z",
            "payment_ids": ["T-PAY-1", "T-PAY-2"],
            "refund_payment_ids": ["T-RP-1"],
        },
        amount_cents=920000,
    )


def test_pending_payout_without_items() -> None:
    rec = payout()
    rec.children.pop("items")
    rec.row.update(status="pending", completed_at=None, processor_payout_id=None, fee_cents=None)
    assert map_payout(rec, CTX).body == {
        "processor": "stripe",
        "paid_out_amount_cents": 920000,
        "fee_cents": 0,
        "currency": "GBP",
        "status": "pending",
        "payment_ids": [],
        "refund_payment_ids": [],
    }


@pytest.mark.parametrize(
    ("change", "path", "fragment"),
    [
        pytest.param(row(processor=None), "processor", "is required", id="processor missing"),
        pytest.param(
            row(paid_out_amount_cents=-1),
            "paid_out_amount_cents",
            "must not be negative",
            id="paid out neg",
        ),
        pytest.param(
            row(paid_out_amount_cents=None),
            "paid_out_amount_cents",
            "is required",
            id="paid out missing",
        ),
        pytest.param(row(fee_cents=-1), "fee_cents", "must not be negative", id="fee neg"),
        pytest.param(row(currency="EUR"), "currency", "base currency is GBP", id="EUR"),
        pytest.param(
            row(status="settled"), "status", "'settled' is not one of: pending, paid", id="status"
        ),
        pytest.param(
            row(completed_at="2025-02-05T25:00:00Z"),
            "completed_at",
            "not a valid date-time",
            id="hour 25",
        ),
        pytest.param(
            child("items", 0, refund_payment_id="rp-1"),
            "items[0]",
            "payout item 'pi-1' sets both payment_id and refund_payment_id",
            id="both",
        ),
        pytest.param(
            child("items", 1, refund_payment_id=None),
            "items[1]",
            "sets neither payment_id nor refund_payment_id; exactly one is required",
            id="neither",
        ),
        pytest.param(
            child("items", 2, payment_id="pay-1"),
            "items[2].payment_id",
            "'pay-1' is already in this payout at items[0]",
            id="duplicate",
        ),
        pytest.param(
            child("items", 1, refund_payment_id=7.5),
            "items[1].refund_payment_id",
            "must be an id, got float",
            id="id float",
        ),
    ],
)
def test_payout_rejects(change: Change, path: str, fragment: str) -> None:
    assert_rejected(map_payout, payout(), change, path, fragment)


@pytest.mark.parametrize(
    ("change", "entity", "source", "path"),
    [
        (child("items", 2, payment_id="pay-new"), "invoice_payments", "pay-new", "payment_ids[1]"),
        (
            child("items", 1, refund_payment_id="rp-new"),
            "refund_payments",
            "rp-new",
            "refund_payment_ids[0]",
        ),
    ],
)
def test_payout_waits_for_payments(change: Change, entity: str, source: str, path: str) -> None:
    error = deferred(map_payout, payout(), change)
    assert (error.entity, error.source_id, error.field_path) == (entity, source, path)


# =============================================================================================
# bills, bill payments, vendor credits
# =============================================================================================

BILL_BODY: dict[str, Any] = {
    "vendor_id": "T-VEN-1",
    "bill_number": "B-100",
    "vendor_bill_number": "SUP-7781",
    "bill_date": "2025-01-10",
    "due_at": "2025-02-09T00:00:00Z",
    "currency": "GBP",
    "memo": "Chairs for the new office",
    "line_items": [
        {
            "external_id": "line-bl-1",
            "description": "Office chairs",
            "quantity": "4",
            "unit_price": 12500,
            "account_identifier": account("T-ACC-5000"),
            "tax_code": "VAT_20",
            "sales_taxes": [{"code": "VAT_20", "amount": 10000}],
        },
        {
            "external_id": "line-bl-2",
            "description": "Delivery",
            "quantity": "1",
            "unit_price": 999,
            "account_identifier": account("T-ACC-6100"),
            "tax_code": "ZERO_RATED",
            "sales_taxes": [{"code": "ZERO_RATED", "amount": 0}],
        },
    ],
}


def test_bill_maps_to_body() -> None:
    # 4 x 12500 + 10000 VAT + 999
    assert map_bill(bill(), CTX) == Mapped(body=BILL_BODY, amount_cents=60999)


def test_bill_minimal() -> None:
    rec = bill()
    rec.row.update(vendor_bill_number=None, due_at=None, memo=None, bill_date="2025-01-10")
    rec.children["line_items"] = rec.children["line_items"][1:]
    rec.children["line_items"][0].update(description=None, tax_code=None, tax_amount_cents=0)
    assert map_bill(rec, CTX) == Mapped(
        body={
            "vendor_id": "T-VEN-1",
            "bill_number": "B-100",
            "bill_date": "2025-01-10",
            "currency": "GBP",
            "line_items": [
                {
                    "external_id": "line-bl-2",
                    "quantity": "1",
                    "unit_price": 999,
                    "account_identifier": account("T-ACC-6100"),
                }
            ],
        },
        amount_cents=999,
    )


@pytest.mark.parametrize(
    ("change", "path", "fragment"),
    [
        pytest.param(row(vendor_id=None), "vendor_id", "is required", id="vendor missing"),
        pytest.param(row(bill_number=None), "bill_number", "is required", id="number missing"),
        pytest.param(
            row(bill_date="10/01/2025"),
            "bill_date",
            "'10/01/2025' is not a valid date (YYYY-MM-DD)",
            id="bill_date format",
        ),
        pytest.param(
            row(bill_date=date(2200, 1, 1)), "bill_date", "outside the accepted years", id="2200"
        ),
        pytest.param(row(due_at="later"), "due_at", "not a valid date-time", id="due text"),
        pytest.param(row(currency="SEK"), "currency", "is SEK but", id="SEK"),
        pytest.param(row(memo="\x00"), "memo", "U+0000", id="memo NUL"),
        pytest.param(
            no_children("line_items"),
            "line_items",
            "a bill needs at least one line item",
            id="no lines",
        ),
        pytest.param(
            child("line_items", 0, quantity="four"),
            f"{L0}.quantity",
            "not text ('four')",
            id="qty text",
        ),
        pytest.param(
            child("line_items", 1, unit_price_cents=9.99),
            f"{L1}.unit_price",
            "whole cents",
            id="price frac",
        ),
        pytest.param(
            child("line_items", 0, expense_account_code=None),
            f"{L0}.account_identifier",
            "account code is required",
            id="account missing",
        ),
        pytest.param(
            child("line_items", 0, expense_account_code="4999"),
            f"{L0}.account_identifier",
            "'4999' is not in Thred's chart",
            id="account unknown",
        ),
        pytest.param(
            child("line_items", 0, tax_amount_cents=9000),
            f"{L0}.sales_taxes[0].amount",
            "expected 10000",
            id="tax mismatch",
        ),
        pytest.param(
            child("line_items", 1, tax_code="NOPE"),
            f"{L1}.tax_code",
            "unknown tax code 'NOPE'",
            id="tax unknown",
        ),
        pytest.param(
            child("line_items", 1, id=""), f"{L1}.external_id", "is required", id="line id"
        ),
    ],
)
def test_bill_rejects(change: Change, path: str, fragment: str) -> None:
    assert_rejected(map_bill, bill(), change, path, fragment)


def test_bill_waits_for_its_vendor() -> None:
    error = deferred(map_bill, bill(), row(vendor_id="ven-new"))
    assert (error.entity, error.source_id, error.field_path) == ("vendors", "ven-new", "vendor_id")


def test_bill_payment_maps_to_body() -> None:
    assert map_bill_payment(bill_payment(), CTX) == Mapped(
        body={
            "vendor_id": "T-VEN-1",
            "amount_cents": 60999,
            "currency": "GBP",
            "payment_method": "check",
            "payment_date": "2025-02-09",
            "check_number": "000123",
            "payment_reference": "Jan chairs",
            "allocations": [{"bill_id": "T-BILL-1", "amount_cents": 60999}],
        },
        amount_cents=60999,
    )


def test_bill_payment_by_wire_needs_no_check_number() -> None:
    rec = bill_payment()
    rec.row.update(payment_method="WIRE", check_number=None, reference=None)
    rec.children.pop("allocations")
    assert map_bill_payment(rec, CTX).body == {
        "vendor_id": "T-VEN-1",
        "amount_cents": 60999,
        "currency": "GBP",
        "payment_method": "wire",
        "payment_date": "2025-02-09",
        "allocations": [],
    }


@pytest.mark.parametrize(
    ("change", "path", "fragment"),
    [
        pytest.param(
            row(check_number=None),
            "check_number",
            "is required when payment_method is 'check'",
            id="check w/o number",
        ),
        pytest.param(
            row(check_number="  "),
            "check_number",
            "is required when payment_method is 'check'",
            id="blank number",
        ),
        pytest.param(row(check_number="1" * 51), "check_number", "at most 50", id="number long"),
        pytest.param(
            row(payment_method="paypal"),
            "payment_method",
            "'paypal' is not one of: bank_transfer, ach, wire",
            id="paypal",
        ),
        pytest.param(row(amount_cents=0), "amount_cents", "at least 1 cent", id="zero"),
        pytest.param(row(currency="EUR"), "currency", "is EUR but", id="EUR"),
        pytest.param(row(payment_date=None), "payment_date", "is required", id="date missing"),
        pytest.param(
            row(reference="R" * 101), "payment_reference", "at most 100", id="reference long"
        ),
        pytest.param(
            child("allocations", 0, amount_cents=61000),
            "allocations",
            "61000 cents, more than the payment amount of 60999",
            id="over-allocated",
        ),
        pytest.param(
            child("allocations", 0, amount_cents=-1),
            "allocations[0].amount_cents",
            "at least 1 cent",
            id="alloc neg",
        ),
        pytest.param(
            child("allocations", 0, bill_id=None),
            "allocations[0].bill_id",
            "is required",
            id="alloc no bill",
        ),
    ],
)
def test_bill_payment_rejects(change: Change, path: str, fragment: str) -> None:
    assert_rejected(map_bill_payment, bill_payment(), change, path, fragment)


@pytest.mark.parametrize(
    ("change", "entity", "source", "path"),
    [
        (row(vendor_id="ven-new"), "vendors", "ven-new", "vendor_id"),
        (
            child("allocations", 0, bill_id="bill-new"),
            "bills",
            "bill-new",
            "allocations[0].bill_id",
        ),
    ],
)
def test_bill_payment_waits_for_parents(
    change: Change, entity: str, source: str, path: str
) -> None:
    error = deferred(map_bill_payment, bill_payment(), change)
    assert (error.entity, error.source_id, error.field_path) == (entity, source, path)


def test_vendor_credit_maps_to_body() -> None:
    assert map_vendor_credit(vendor_credit(), CTX) == Mapped(
        body={
            "vendor_id": "T-VEN-1",
            "received_at": "2025-02-10T08:15:00Z",
            "currency": "GBP",
            "memo": "Returned two chairs",
            "metadata": {"credit_number": "CN-55"},
            "line_items": [
                {
                    "amount": 25000,
                    "description": "Chair return",
                    "expense_account_identifier": account("T-ACC-5000"),
                },
                {"amount": 500, "expense_account_identifier": account("T-ACC-6100")},
            ],
            "allocations": [{"bill_id": "T-BILL-1", "amount_cents": 20000}],
        },
        amount_cents=25500,
    )


@pytest.mark.parametrize(
    ("change", "path", "fragment"),
    [
        pytest.param(row(vendor_id=""), "vendor_id", "is required", id="vendor missing"),
        pytest.param(row(received_at=None), "received_at", "is required", id="received missing"),
        pytest.param(
            row(received_at=date(1800, 5, 1)),
            "received_at",
            "1800-05-01 is outside",
            id="1800",
        ),
        pytest.param(row(currency="USD"), "currency", "is USD but", id="USD"),
        pytest.param(
            row(credit_number=None), "metadata.credit_number", "is required", id="no credit number"
        ),
        pytest.param(no_children("lines"), "line_items", "at least one line", id="no lines"),
        pytest.param(
            child("lines", 0, amount_cents=0), f"{L0}.amount", "at least 1 cent", id="line zero"
        ),
        pytest.param(
            child("lines", 1, amount_cents="5"), f"{L1}.amount", "not text", id="line text"
        ),
        pytest.param(
            child("lines", 1, expense_account_code="0000"),
            f"{L1}.expense_account_identifier",
            "not in Thred's chart",
            id="account",
        ),
        pytest.param(
            child("lines", 0, description="\x85next line"), f"{L0}.description", "U+0085", id="NEL"
        ),
        pytest.param(
            child("allocations", 0, amount_cents=25501),
            "allocations",
            "25501 cents, more than the credit total of 25500",
            id="over-allocated",
        ),
    ],
)
def test_vendor_credit_rejects(change: Change, path: str, fragment: str) -> None:
    assert_rejected(map_vendor_credit, vendor_credit(), change, path, fragment)


def test_vendor_credit_waits_for_bill() -> None:
    error = deferred(map_vendor_credit, vendor_credit(), child("allocations", 0, bill_id="bill-x"))
    assert (error.entity, error.source_id, error.field_path) == (
        "bills",
        "bill-x",
        "allocations[0].bill_id",
    )


# =============================================================================================
# cross-cutting
# =============================================================================================

ALL: list[tuple[Mapper, Callable[[], SourceRecord]]] = [
    (map_business, business),
    (map_customer, customer),
    (map_vendor, vendor),
    (map_invoice, invoice),
    (map_invoice_payment, invoice_payment),
    (map_refund, refund),
    (map_refund_payment, refund_payment),
    (map_payout, payout),
    (map_bill, bill),
    (map_bill_payment, bill_payment),
    (map_vendor_credit, vendor_credit),
]


@pytest.mark.parametrize(("mapper", "make"), ALL, ids=[m.__name__ for m, _ in ALL])
def test_top_level_external_id_is_left_to_the_engine(
    mapper: Mapper, make: Callable[[], SourceRecord]
) -> None:
    rec = make()
    rec.row["external_id"] = "should-not-leak"
    before = copy.deepcopy(rec)
    mapped = mapper(rec, CTX)
    assert "external_id" not in mapped.body
    assert rec == before  # pure: the record is not modified


def test_public_names_match_the_registry_contract() -> None:
    assert {spec.map_record.__name__ for spec in entities.ENTITIES} == {m.__name__ for m, _ in ALL}


sendable_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=255
).filter(lambda text: text.strip() != "")


@given(sendable_text)
def test_any_printable_unicode_name_passes_through_unchanged(name: str) -> None:
    rec = record("customers", {"id": "cus-9", "company_name": name})
    assert map_customer(rec, CTX).body == {"company_name": name}


@given(
    st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("10000"), places=4),
    st.integers(min_value=0, max_value=10**7),
)
def test_invoice_total_is_net_plus_thred_computed_tax(quantity: Decimal, price: int) -> None:
    rec = invoice()
    rec.row["additional_discount_cents"] = 0
    rec.children["line_items"] = rec.children["line_items"][:1]
    rec.children["line_items"][0].update(
        quantity=quantity, unit_price_cents=price, discount_cents=0, tax_amount_cents=None
    )
    mapped = map_invoice(rec, CTX)
    gross = int((quantity * price).quantize(Decimal(1), rounding="ROUND_HALF_UP"))
    tax = int((Decimal(gross) * Decimal("0.20")).quantize(Decimal(1), rounding="ROUND_HALF_UP"))
    assert mapped.amount_cents == gross + tax
    assert mapped.body["line_items"][0]["sales_taxes"] == [{"code": "VAT_20", "amount": tax}]
    assert Decimal(mapped.body["line_items"][0]["quantity"]) == quantity


# =============================================================================================
# documented limits only; ids that can become external_ids
# =============================================================================================

MEMO_1000 = ("Lieferung laut Rahmenvertrag — 東京 ✓\n" * 40)[:1000]


def _body_value(body: dict[str, Any], path: str) -> Any:
    value: Any = body
    for part in path.replace("]", "").replace("[", ".").split("."):
        value = value[int(part)] if part.isdigit() else value[part]
    return value


@pytest.mark.parametrize(
    ("mapper", "make", "change", "path", "value"),
    [
        pytest.param(
            map_invoice, invoice, row(memo=MEMO_1000), "memo", MEMO_1000, id="invoice memo"
        ),
        pytest.param(map_bill, bill, row(memo=MEMO_1000), "memo", MEMO_1000, id="bill memo"),
        pytest.param(
            map_vendor_credit,
            vendor_credit,
            row(memo=MEMO_1000),
            "memo",
            MEMO_1000,
            id="credit memo",
        ),
        pytest.param(
            map_refund, refund, row(reason=MEMO_1000), "memo", MEMO_1000, id="refund reason"
        ),
        pytest.param(
            map_invoice,
            invoice,
            child("line_items", 0, description=MEMO_1000),
            "line_items[0].description",
            MEMO_1000,
            id="line description",
        ),
        pytest.param(
            map_invoice,
            invoice,
            child("line_items", 0, product="P" * 300),
            "line_items[0].product",
            "P" * 300,
            id="product",
        ),
        pytest.param(
            map_invoice,
            invoice,
            row(invoice_number="N" * 300),
            "invoice_number",
            "N" * 300,
            id="invoice number",
        ),
        pytest.param(
            map_customer,
            customer,
            row(individual_name="A" * 300),
            "individual_name",
            "A" * 300,
            id="customer name",
        ),
        pytest.param(
            map_customer,
            customer,
            row(vat_number="FR" + "1" * 28),
            "vat_number",
            "FR" + "1" * 28,
            id="customer vat (limit is on businesses only)",
        ),
        pytest.param(
            map_vendor,
            vendor,
            row(address="Unit 4\n" * 100),
            "address_string",
            "Unit 4\n" * 100,
            id="vendor address",
        ),
        pytest.param(
            map_invoice_payment,
            invoice_payment,
            row(reference="R" * 150),
            "payment_reference",
            "R" * 150,
            id="invoice payment reference (limit is on bill payments only)",
        ),
        pytest.param(
            map_refund_payment,
            refund_payment,
            row(processor="P" * 150),
            "processor",
            "P" * 150,
            id="refund payment processor",
        ),
        pytest.param(
            map_payout, payout, row(processor="P" * 150), "processor", "P" * 150, id="payout proc"
        ),
        pytest.param(
            map_payout,
            payout,
            row(processor_payout_id="po_" * 100),
            "processor_payout_id",
            "po_" * 100,
            id="payout id",
        ),
        pytest.param(
            map_bill,
            bill,
            row(vendor_bill_number="V" * 300),
            "vendor_bill_number",
            "V" * 300,
            id="vendor bill number",
        ),
        pytest.param(
            map_vendor_credit,
            vendor_credit,
            row(credit_number="C" * 300),
            "metadata.credit_number",
            "C" * 300,
            id="credit number",
        ),
    ],
)
def test_text_without_a_documented_limit_is_sent_as_it_is(
    mapper: Mapper, make: Callable[[], SourceRecord], change: Change, path: str, value: str
) -> None:
    rec = make()
    change(rec)
    assert _body_value(mapper(rec, CTX).body, path) == value


@pytest.mark.parametrize(
    ("mapper", "make", "column", "path", "limit"),
    [
        (map_business, business, "legal_name", "legal_name", 255),
        (map_business, business, "vat_number", "vat_number", 20),
        (map_business, business, "company_number", "company_number", 20),
        (map_invoice_payment, invoice_payment, "processor", "payment_processor", 100),
        (map_bill_payment, bill_payment, "reference", "payment_reference", 100),
        (map_bill_payment, bill_payment, "check_number", "check_number", 50),
    ],
)
def test_documented_limits_are_exact(
    mapper: Mapper, make: Callable[[], SourceRecord], column: str, path: str, limit: int
) -> None:
    at_limit = make()
    at_limit.row[column] = "9" * limit
    assert _body_value(mapper(at_limit, CTX).body, path) == "9" * limit
    assert_rejected(
        mapper,
        make(),
        row(**{column: "9" * (limit + 1)}),
        path,
        f"is {limit + 1} characters long; Thred accepts at most {limit}",
    )


def test_documented_limits_table_holds_the_contract_values() -> None:
    assert mapping.DOCUMENTED_LIMITS == {
        "external_id": 255,
        "businesses.legal_name": 255,
        "businesses.vat_number": 20,
        "businesses.company_number": 20,
        "businesses.province": 100,
        "businesses.eu_nace_industry_code": 10,
        "invoice_payments.payment_processor": 100,
        "bill_payments.payment_reference": 100,
        "bill_payments.check_number": 50,
        "email": 254,
    }


@pytest.mark.parametrize(
    ("mapper", "make", "change", "path"),
    [
        pytest.param(
            map_invoice, invoice, row(customer_id="cus-ü"), "customer_id", id="invoice customer"
        ),
        pytest.param(
            map_invoice_payment,
            invoice_payment,
            child("allocations", 1, invoice_id="inv-\u00a02"),
            "allocations[1].invoice_id",
            id="allocation",
        ),
        pytest.param(
            map_refund, refund, row(invoice_id="i" * 300), "invoice_id", id="300-char reference"
        ),
        pytest.param(
            map_invoice,
            invoice,
            child("line_items", 1, id="li-ß"),
            "line_items[1].external_id",
            id="line id",
        ),
        pytest.param(
            map_bill,
            bill,
            child("line_items", 0, id="l" * 260),
            "line_items[0].external_id",
            id="long line id",
        ),
    ],
)
def test_ids_that_cannot_be_keys_are_refused_naming_the_column(
    mapper: Mapper, make: Callable[[], SourceRecord], change: Change, path: str
) -> None:
    error = rejected(mapper, make(), change)
    assert error.field_path == path, error
    assert "ASCII" in error.message or "characters long" in error.message, error.message
