"""AR and AP are one machine seen from two sides: the same request posts mirrored books.

In process (a real ``Sandbox``: store, ledger hook, services), no HTTP: an invoice and a
bill with the same line must post the same amounts on opposite sides of their control
accounts, owe the same, and walk through the same statuses as allocations settle them.
The HTTP behaviour of both sides is covered by test_invoices.py, test_payments.py and
test_ap.py; this pins the one shared implementation (documents.py, settlements.py).
"""

from __future__ import annotations

from typing import Any

import pytest
from thred_devtools.sandbox import SandboxConfig, core, ledger, parties, rules
from thred_devtools.sandbox.bill_payments import create_bill_payment
from thred_devtools.sandbox.bills import create_bill
from thred_devtools.sandbox.documents import doc_outstanding, status_of
from thred_devtools.sandbox.errors import ApiError
from thred_devtools.sandbox.invoices import create_invoice
from thred_devtools.sandbox.models import (
    BillCreate,
    BillPaymentCreate,
    BusinessCreate,
    CustomerCreate,
    InvoiceCreate,
    PaymentCreate,
    VendorCreate,
)
from thred_devtools.sandbox.payments import create_payment
from thred_devtools.sandbox.sides import AP, AR, Side
from thred_devtools.sandbox.state import Sandbox
from thred_devtools.sandbox.store import Obj

LINE = {"description": "Widget", "quantity": "3", "unit_price": 1000, "tax_code": "VAT_20"}
TOTAL = 3600  # 3 x 1000 net + 20% VAT


class Books:
    """One business with a customer and a vendor, driven through the services."""

    def __init__(self) -> None:
        self.sb = Sandbox(SandboxConfig())
        body = BusinessCreate(legal_name="Sides", email="s@example.com", country="GB")
        _, created = self.run(lambda: core.create_business(self.sb, "demo-partner", body))
        business = self.sb.store.get("businesses", created["id"])
        assert business is not None
        self.business: Obj = business
        customer = CustomerCreate(external_id="c-1", company_name="Customer")
        vendor = VendorCreate(external_id="v-1", company_name="Vendor")
        self.customer = self.run(lambda: parties.create_customer(self.sb, business, customer))[1]
        self.vendor = self.run(lambda: parties.create_vendor(self.sb, business, vendor))[1]

    def run(self, service: Any) -> tuple[int, dict[str, Any]]:
        with self.sb.store.transaction():
            result: tuple[int, dict[str, Any]] = service()
            return result

    def document(self, side: Side, doc_id: str) -> Obj:
        found = self.sb.store.get(side.docs, doc_id)
        assert found is not None
        return found

    def invoice(self) -> Obj:
        body = InvoiceCreate.model_validate(
            {"customer_id": self.customer["id"], "line_items": [LINE], "sent_at": "2026-01-10"}
        )
        _, out = self.run(lambda: create_invoice(self.sb, self.business, body))
        return self.document(AR, out["id"])

    def bill(self) -> Obj:
        body = BillCreate.model_validate(
            {"vendor_id": self.vendor["id"], "line_items": [LINE], "bill_date": "2026-01-10"}
        )
        _, out = self.run(lambda: create_bill(self.sb, self.business, body))
        return self.document(AP, out["id"])

    def entry(self, side: Side, doc: Obj) -> list[dict[str, Any]]:
        found = self.sb.store.find(doc["_scope"], ledger.JE, "_key", f"{side.doc}:{doc['id']}")
        assert found is not None
        return list(found["lines"])

    def pay(self, side: Side, doc: Obj, amount: int) -> None:
        business = self.business
        if side is AR:
            body: Any = PaymentCreate.model_validate(
                {"invoice_id": doc["id"], "amount_cents": amount, "payment_date": "2026-01-20"}
            )
            self.run(lambda: create_payment(self.sb, business, body, None))
        else:
            body = BillPaymentCreate.model_validate(
                {
                    "vendor_id": doc["vendor_id"],
                    "amount_cents": amount,
                    "payment_method": "ach",
                    "payment_date": "2026-01-20",
                    "allocations": [{"bill_id": doc["id"], "amount_cents": amount}],
                }
            )
            self.run(lambda: create_bill_payment(self.sb, business, body, None))


@pytest.fixture
def books() -> Books:
    return Books()


def _by_account(lines: list[dict[str, Any]]) -> dict[str, int]:
    """Account -> net debit of one journal entry."""
    out: dict[str, int] = {}
    for ln in lines:
        out[ln["account"]] = out.get(ln["account"], 0) + ln["debit"] - ln["credit"]
    return out


def test_an_invoice_and_a_bill_post_mirrored_entries(books: Books) -> None:
    invoice, bill = books.invoice(), books.bill()
    sales, purchases = _by_account(books.entry(AR, invoice)), _by_account(books.entry(AP, bill))
    assert sales == {rules.ACC_AR: TOTAL, rules.ACC_REVENUE: -3000, rules.ACC_VAT_PAYABLE: -600}
    assert purchases == {
        rules.ACC_AP: -TOTAL,
        rules.ACC_GENERAL_EXPENSES: 3000,
        rules.ACC_VAT_RECOVERABLE: 600,
    }
    # AR opens with its control line, AP closes with it (the order the docs' examples show)
    assert books.entry(AR, invoice)[0]["account"] == rules.ACC_AR
    assert books.entry(AP, bill)[-1]["account"] == rules.ACC_AP


@pytest.mark.parametrize("side", [AR, AP], ids=["AR", "AP"])
def test_the_control_account_tags_document_and_party(books: Books, side: Side) -> None:
    doc = books.invoice() if side is AR else books.bill()
    control = [ln for ln in books.entry(side, doc) if ln["account"] == side.control_account]
    assert [ln["tags"] for ln in control] == [
        {side.doc_id: doc["id"], side.party_id: doc[side.party_id]}
    ]
    party = books.sb.store.get(side.parties, doc[side.party_id])
    assert party is not None
    assert doc_outstanding(books.sb, side, doc) == TOTAL
    assert parties.party_outstanding(books.sb, side, party) == TOTAL


@pytest.mark.parametrize("side", [AR, AP], ids=["AR", "AP"])
def test_settling_walks_the_same_statuses_on_both_sides(books: Books, side: Side) -> None:
    doc = books.invoice() if side is AR else books.bill()
    assert status_of(books.sb, side, doc) == side.status_open
    books.pay(side, doc, 1000)
    assert doc_outstanding(books.sb, side, doc) == TOTAL - 1000
    assert status_of(books.sb, side, doc) == side.status_partially_paid
    books.pay(side, doc, TOTAL - 1000)
    assert doc_outstanding(books.sb, side, doc) == 0
    assert status_of(books.sb, side, doc) == side.status_paid


@pytest.mark.parametrize("side", [AR, AP], ids=["AR", "AP"])
def test_an_allocation_beyond_what_is_owed_is_refused_alike(books: Books, side: Side) -> None:
    doc = books.invoice() if side is AR else books.bill()
    with pytest.raises(ApiError) as refused:
        books.pay(side, doc, TOTAL + 1)
    assert refused.value.status == 400
    messages = [m for msgs in refused.value.details.values() for m in msgs]
    assert f"Allocation exceeds the {side.doc}'s outstanding balance of {TOTAL}." in messages
    assert doc_outstanding(books.sb, side, doc) == TOTAL  # the transaction rolled back


def test_the_sides_name_what_the_store_indexes() -> None:
    sb = Sandbox(SandboxConfig())
    for side in (AR, AP):
        for index, collection in side.settlements:
            assert sb.store.lookup(index, "none") == []  # a registered index
            assert collection.endswith(("payments", "credits"))
        statuses = {side.status_open, side.status_partially_paid, side.status_paid}
        assert len(statuses | {side.status_voided}) == 4
    assert AR.sign == -AP.sign and AR.control_first != AP.control_first
