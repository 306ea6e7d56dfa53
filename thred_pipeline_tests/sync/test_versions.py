"""The inputs digest: anything a mapper reads moves it, so a record is never kept unmapped
after a change its ``updated_at`` does not show (payload_hash has its own tests)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from thred_pipeline import entities
from thred_pipeline.core.records import MapContext, SourceRecord, TaxCode
from thred_pipeline.sync import versions
from thred_pipeline.sync.versions import bound_inputs, business_inputs, record_inputs

INVOICE_KEY = ("invoices", "inv-1")
AT = datetime(2026, 9, 3, 10, tzinfo=UTC)
PAYMENTS = entities.get("invoice_payments")
INVOICES = entities.get("invoices")


def payment(**changes: Any) -> SourceRecord:
    row = {"id": "pay-1", "business_id": "b-1", "customer_id": "cus-1", "amount_cents": 1000}
    allocation = {"id": "al-1", "invoice_id": "inv-1", "amount_cents": Decimal("1000")}
    children = {"allocations": [{**allocation, **changes.pop("allocation", {})}]}
    return SourceRecord(
        "invoice_payments", "pay-1", "b-1", AT, {**row, **changes}, children=children
    )


CTX = MapContext(
    business_id="b-1",
    base_currency="EUR",
    thred_ids={("customers", "cus-1"): "t-cus-1", ("invoices", "inv-1"): "t-inv-1"},
    tax_codes={"VAT_20": TaxCode("VAT_20", Decimal("0.20"), True)},
    account_ids={"4000": "acc-1"},
)


def digest(record: SourceRecord | None = None, ctx: MapContext = CTX, **kw: Any) -> str:
    business = business_inputs(ctx, kw.pop("business_thred_id", "t-b-1"))
    spec = kw.pop("spec", PAYMENTS)
    external_id = kw.pop("external_id", "invoice_payment-pay-1")
    return record_inputs(spec, record or payment(), external_id, business, ctx)


def test_the_same_inputs_give_the_same_digest() -> None:
    assert digest() == digest(payment())


@pytest.mark.parametrize(
    "changed",
    [
        pytest.param(lambda: digest(payment(amount_cents=1001)), id="a value of the row"),
        pytest.param(lambda: digest(payment(amount_cents=Decimal(1000))), id="a value's type"),
        pytest.param(lambda: digest(payment(allocation={"amount_cents": 999})), id="a child row"),
        pytest.param(lambda: digest(payment(allocation={"invoice_id": "inv-2"})), id="a child ref"),
        pytest.param(lambda: digest(external_id="invoice_payment-x-pay-1"), id="external_id"),
        pytest.param(lambda: digest(business_thred_id="t-b-2"), id="the business's Thred id"),
        pytest.param(
            lambda: digest(ctx=replace(CTX, thred_ids={**CTX.thred_ids, INVOICE_KEY: "t2"})),
            id="a parent's Thred id",
        ),
        pytest.param(lambda: digest(ctx=replace(CTX, base_currency="GBP")), id="currency"),
        pytest.param(
            lambda: digest(
                ctx=replace(CTX, tax_codes={"VAT_20": TaxCode("VAT_20", Decimal("0.19"), True)})
            ),
            id="a tax rate",
        ),
        pytest.param(
            lambda: digest(ctx=replace(CTX, account_ids={"4000": "acc-2"})), id="an account"
        ),
    ],
)
def test_whatever_the_mapper_reads_moves_the_digest(changed: Any) -> None:
    assert changed() != digest()


def test_a_parents_flag_moves_the_digest() -> None:
    invoice = SourceRecord(
        "invoices", "inv-1", "b-1", AT, {"id": "inv-1", "customer_id": "cus-1"}, {"line_items": []}
    )
    flagged = replace(CTX, tax_exempt_customers=frozenset({"cus-1"}))
    plain = digest(invoice, spec=INVOICES, external_id="invoice-inv-1")
    assert digest(invoice, flagged, spec=INVOICES, external_id="invoice-inv-1") != plain


def test_other_mapping_code_moves_every_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    before = digest()
    monkeypatch.setattr(versions, "mapping_code", lambda: "another release")
    assert digest() != before


def test_the_mapping_code_digest_reads_the_mappers_and_core() -> None:
    versions.mapping_code.cache_clear()
    first = versions.mapping_code()
    assert first == versions.mapping_code() and len(first) == 40


def test_a_bound_digest_names_its_payload() -> None:
    assert bound_inputs("in-1", "h1") != bound_inputs("in-1", "h2")
    assert bound_inputs("in-1", "h1") != bound_inputs("in-2", "h1")
