"""The bad-input catalogue: bad warehouse rows through the real engine against the sandbox.

Each case starts from the same small seeded warehouse (one business with every kind of record),
breaks one record the way real warehouses do, and syncs every entity. Then it checks:

- the broken record is ``rejected`` (or ``deferred``, when what is missing is a parent) and the
  ledger row names the record and the field, with a reason a human can act on;
- the rest of the batch synced: every other record is ``synced``, except those that need the
  broken one in Thred first, which wait as ``deferred`` (computed from the warehouse's own
  references in ``chaos/world.py``, not from the engine);
- nothing is lost (every warehouse row has a ledger row) and nothing is duplicated (the
  sandbox holds one object per external_id, as many per entity as the ledger created).

Rejections come from local validation (no API call), from extraction (a row that cannot be read
or keyed reaches the engine as a ``SourceRecord`` with a ``problem``, quarantined as it is), or
from Thred (a 400 kept with Thred's error code and field details). Values only PostgreSQL can
hold (year 1 BC, 'infinity') have their own catalogue on a PostgreSQL warehouse. The records to
break are picked from the seed by what each case needs (``Targets``), so a change to the seed
generator does not silently weaken a case.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import text
from thred_devtools.sandbox import RunningSandbox, SandboxConfig, start_sandbox
from thred_devtools.seed import SeedConfig, generate, load

from thred_pipeline import entities
from thred_pipeline.checks import quarantine_result
from thred_pipeline.config import DEMO_API_KEY, DEMO_PARTNER_ID
from thred_pipeline.core.records import Status
from thred_pipeline.ledger import LedgerCode, SyncLedger, ledger_table
from thred_pipeline.reconcile.reconciler import BooksReconciler
from thred_pipeline.thred.client import ThredClient
from thred_pipeline.thred.settings import ThredSettings
from thred_pipeline.warehouse import schema as wh_schema
from thred_pipeline.warehouse.db import create_warehouse_engine
from thred_pipeline.warehouse.extract import Warehouse
from thred_pipeline_tests.chaos.world import Key, World, sandbox_faults, seed_file
from thred_pipeline_tests.pg import pg_database

SEED = SeedConfig(
    seed=13,
    businesses=1,
    days=7,
    customers=4,
    vendors=4,
    invoices=8,
    payments=6,
    refunds=2,
    refund_payments=1,
    payouts=1,
    bills=4,
    bill_payments=3,
    vendor_credits=1,
)
NEW_CUSTOMER, NEW_VENDOR = "cus-new-1", "ven-new-1"  # inserted by the cases that need them


@dataclass(frozen=True)
class Targets:
    """The seeded records the cases break, picked by what each case needs (not by id)."""

    business: str
    invoice: str  # unpaid, unrefunded, not voided, with a VAT_20 line
    vat_line: int  # index of that VAT_20 line (the order the engine sends lines in)
    customer: str  # has documents (its invoices and payments must wait when it is rejected)
    payment: str  # one allocation, to an invoice without refunds
    paid_invoice: str  # that invoice
    refund: str
    refund_payment: str
    payout: str
    payout_item: str  # an item that settles a payment
    payout_item_index: int
    bill: str
    bill_payment: str  # one allocation, to ``bill``

    @classmethod
    def pick(cls, data: dict[str, list[dict[str, Any]]]) -> Targets:
        def lines(invoice: str) -> list[dict[str, Any]]:
            rows = [r for r in data["invoice_line_items"] if r["invoice_id"] == invoice]
            return sorted(rows, key=lambda r: (r["position"], r["id"]))

        settled = {a["invoice_id"] for a in data["payment_allocations"]}
        refunded = {r["invoice_id"] for r in data["refunds"]}
        invoice = next(
            i["id"]
            for i in data["invoices"]
            if i["id"] not in settled | refunded
            and i["voided_at"] is None
            and any(r["tax_code"] == "VAT_20" for r in lines(i["id"]))
        )
        vat_line = next(n for n, r in enumerate(lines(invoice)) if r["tax_code"] == "VAT_20")
        by_payment: dict[str, list[str]] = {}
        for a in data["payment_allocations"]:
            by_payment.setdefault(a["payment_id"], []).append(a["invoice_id"])
        payment, (paid_invoice,) = next(
            (p, invs)
            for p, invs in sorted(by_payment.items())
            if len(invs) == 1 and invs[0] not in refunded
        )
        customer = next(p["customer_id"] for p in data["payments"] if p["id"] == payment)
        item = next(i for i in data["payout_items"] if i["payment_id"])
        siblings = sorted(
            i["id"] for i in data["payout_items"] if i["payout_id"] == item["payout_id"]
        )
        by_bill_payment: dict[str, list[str]] = {}
        for a in data["bill_payment_allocations"]:
            by_bill_payment.setdefault(a["bill_payment_id"], []).append(a["bill_id"])
        bill_payment, (bill,) = next(
            (p, bills) for p, bills in sorted(by_bill_payment.items()) if len(bills) == 1
        )
        return cls(
            business=data["businesses"][0]["id"],
            invoice=invoice,
            vat_line=vat_line,
            customer=customer,
            payment=payment,
            paid_invoice=paid_invoice,
            refund=data["refunds"][0]["id"],
            refund_payment=data["refund_payments"][0]["id"],
            payout=item["payout_id"],
            payout_item=item["id"],
            payout_item_index=siblings.index(item["id"]),
            bill=bill,
            bill_payment=bill_payment,
        )


T = Targets.pick(generate(SEED))


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return seed_file(tmp_path_factory.mktemp("bad_input") / "template.db", SEED)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    with start_sandbox(SandboxConfig()) as running:
        yield running


@pytest.fixture
def world(tmp_path: Path, template: Path, sandbox: RunningSandbox) -> Iterator[World]:
    w = World(tmp_path, template, sandbox.url, SEED)
    try:
        yield w
    finally:
        w.close()


@pytest.fixture
def readable_world(world: World) -> Iterator[World]:
    """The world, with the sandbox answering its extended fields too (line descriptions and
    external ids are not in Thred's documented responses), so a test can read back exactly
    what was sent. Put back to strict afterwards: the sandbox is shared by the module."""
    sandbox_faults(world.sandbox_url, extended_fields=True)
    try:
        yield world
    finally:
        sandbox_faults(world.sandbox_url)


# --- helpers ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    """What the ledger must say about the record a case broke."""

    entity: str
    source_id: str
    status: Status
    field: str  # Thred-style path; a key of error_details (rejected) or details.field (deferred)
    reason: str  # a phrase of the message, case-insensitive
    # expected error_code; None: whatever Thred answered
    code: str | None = LedgerCode.INVALID_SOURCE_DATA

    @property
    def key(self) -> Key:
        return (self.entity, self.source_id)


def rejected(entity: str, source_id: str, path: str, reason: str) -> Expect:
    """Refused by local validation, before any API call."""
    return Expect(entity, source_id, Status.REJECTED, path, reason)


def thred_rejected(entity: str, source_id: str, path: str, reason: str) -> Expect:
    """Sent, and refused by Thred with a 400 naming the field."""
    return Expect(entity, source_id, Status.REJECTED, path, reason, code=None)


def waiting(entity: str, source_id: str, path: str, reason: str) -> Expect:
    """A parent is missing: the record waits (deferred), it is not rejected."""
    return Expect(entity, source_id, Status.DEFERRED, path, reason, code="parent_not_synced")


def line_id(w: World, parent: str, index: int, table: str = "invoice_line_items") -> str:
    column = "invoice_id" if table == "invoice_line_items" else "bill_id"
    with w.wh.connect() as conn:
        ids = conn.execute(
            text(f"SELECT id FROM {table} WHERE {column} = :p ORDER BY position, id"), {"p": parent}
        ).scalars()
        return str(list(ids)[index])


def set_row(w: World, table: str, row_id: str, **values: Any) -> None:
    assignments = ", ".join(f"{column} = :{column}" for column in values)
    changed = w.sql(f"UPDATE {table} SET {assignments} WHERE id = :row_id", row_id=row_id, **values)
    assert changed == 1, (table, row_id)


def set_line(w: World, invoice: str, index: int, **values: Any) -> None:
    set_row(w, "invoice_line_items", line_id(w, invoice, index), **values)


def copy_row(w: World, table: str, where: str, params: dict[str, Any], **changes: Any) -> None:
    """Insert a copy of the first row matching ``where``, with ``changes`` applied."""
    with w.wh.begin() as conn:
        found = conn.execute(text(f"SELECT * FROM {table} WHERE {where}"), params).mappings()
        row = {**dict(found.first() or {}), **changes}
        assert row, (table, where)
        columns = ", ".join(row)
        values = ", ".join(f":{c}" for c in row)
        conn.execute(text(f"INSERT INTO {table} ({columns}) VALUES ({values})"), row)


def new_customer(w: World, **changes: Any) -> str:
    """A customer nothing refers to (so only it is affected by what the case does to it)."""
    copy_row(w, "customers", "archived_at IS NULL", {}, id=NEW_CUSTOMER, **changes)
    return NEW_CUSTOMER


def new_vendor(w: World, **changes: Any) -> str:
    copy_row(w, "vendors", "archived_at IS NULL", {}, id=NEW_VENDOR, **changes)
    return NEW_VENDOR


def new_business(w: World, business_id: str, **changes: Any) -> str:
    copy_row(
        w, "businesses", "1 = 1", {}, id=business_id, legal_name=f"Copy {business_id}", **changes
    )
    return business_id


# --- the catalogue ----------------------------------------------------------------------------

Breaker = Callable[[World], list[Expect]]
CASES: dict[str, Breaker] = {}


def case(name: str) -> Callable[[Breaker], Breaker]:
    def register(breaker: Breaker) -> Breaker:
        assert name not in CASES, name
        CASES[name] = breaker
        return breaker

    return register


# Nulls in required fields


@case("null in required names")
def _null_names(w: World) -> list[Expect]:
    set_row(w, "customers", T.customer, individual_name=None, company_name=None)
    return [rejected("customers", T.customer, "individual_name", "needs individual_name")]


@case("null in a NOT NULL column of a loose view")
def _null_sent_at(w: World) -> list[Expect]:
    w.loosen("invoices")
    set_row(w, "invoices", T.invoice, sent_at=None)
    return [rejected("invoices", T.invoice, "sent_at", "is required")]


@case("null amount in a loose view")
def _null_amount(w: World) -> list[Expect]:
    w.loosen("payments")
    set_row(w, "payments", T.payment, amount_cents=None)
    return [rejected("invoice_payments", T.payment, "total_amount_cents", "is required")]


# Amounts and numbers


@case("zero payment amount")
def _zero_amount(w: World) -> list[Expect]:
    set_row(w, "payments", T.payment, amount_cents=0)
    return [rejected("invoice_payments", T.payment, "total_amount_cents", "at least 1 cent")]


@case("negative unit price")
def _negative_price(w: World) -> list[Expect]:
    set_row(w, "bill_line_items", line_id(w, T.bill, 0, "bill_line_items"), unit_price_cents=-100)
    return [rejected("bills", T.bill, "line_items[0].unit_price", "must not be negative")]


@case("negative quantity")
def _negative_quantity(w: World) -> list[Expect]:
    set_line(w, T.invoice, 0, quantity=-2)
    return [rejected("invoices", T.invoice, "line_items[0].quantity", "greater than 0")]


@case("infinite quantity")
def _infinite_quantity(w: World) -> list[Expect]:
    set_line(w, T.invoice, 0, quantity=float("inf"))
    return [rejected("invoices", T.invoice, "line_items[0].quantity", "finite")]


@case("money as text")
def _amount_text(w: World) -> list[Expect]:
    set_row(w, "refunds", T.refund, amount_cents="ten pounds")
    return [rejected("refunds", T.refund, "amount_cents", "not text")]


@case("fraction of a cent")
def _fraction_cents(w: World) -> list[Expect]:
    set_row(w, "bill_payments", T.bill_payment, amount_cents=4300.5)
    return [rejected("bill_payments", T.bill_payment, "amount_cents", "whole cents")]


@case("whole number as text")
def _integer_text(w: World) -> list[Expect]:
    customer = new_customer(w, payment_terms_days="thirty")
    return [rejected("customers", customer, "payment_terms_days", "whole number")]


@case("discount larger than the line")
def _discount(w: World) -> list[Expect]:
    set_line(w, T.invoice, 0, discount_cents=99_999_999)
    return [rejected("invoices", T.invoice, "line_items[0].discount_amount", "more than")]


@case("allocations add up to more than the payment")
def _over_allocated(w: World) -> list[Expect]:
    assert w.sql(
        "UPDATE payment_allocations SET amount_cents = 99999999 WHERE payment_id = :p", p=T.payment
    )
    return [rejected("invoice_payments", T.payment, "allocations", "more than the payment")]


# Tax and accounts


@case("unknown tax code")
def _unknown_tax(w: World) -> list[Expect]:
    set_line(w, T.invoice, 0, tax_code="VAT_99")
    return [rejected("invoices", T.invoice, "line_items[0].tax_code", "unknown tax code 'VAT_99'")]


@case("inactive tax code")
def _inactive_tax(w: World) -> list[Expect]:
    set_line(w, T.invoice, 0, tax_code="VAT_17_5")
    return [rejected("invoices", T.invoice, "line_items[0].tax_code", "is inactive")]


@case("taxable line for a tax-exempt customer")
def _exempt(w: World) -> list[Expect]:
    customer = new_customer(w, tax_exempt=True)
    set_row(w, "invoices", T.invoice, customer_id=customer)
    path = f"line_items[{T.vat_line}].tax_code"
    return [rejected("invoices", T.invoice, path, "is tax-exempt")]


@case("tax amount disagrees with the code's rate")
def _tax_amount(w: World) -> list[Expect]:
    set_line(w, T.invoice, T.vat_line, tax_amount_cents=123_456)
    path = f"line_items[{T.vat_line}].sales_taxes[0].amount"
    return [rejected("invoices", T.invoice, path, "disagrees with VAT_20")]


@case("account code missing from Thred's chart")
def _account(w: World) -> list[Expect]:
    line = line_id(w, T.bill, 0, "bill_line_items")
    set_row(w, "bill_line_items", line, expense_account_code="9999")
    return [rejected("bills", T.bill, "line_items[0].account_identifier", "not in thred's chart")]


# Currency, enums, combinations, structure


@case("currency is not the base currency")
def _currency(w: World) -> list[Expect]:
    set_row(w, "invoices", T.invoice, currency="EUR")
    return [rejected("invoices", T.invoice, "currency", "base currency is GBP")]


@case("unknown payment method")
def _method(w: World) -> list[Expect]:
    set_row(w, "payments", T.payment, payment_method="bitcoin")
    return [rejected("invoice_payments", T.payment, "payment_method", "'bitcoin' is not one")]


@case("check bill payment without a check number")
def _check(w: World) -> list[Expect]:
    set_row(w, "bill_payments", T.bill_payment, payment_method="check", check_number=None)
    return [rejected("bill_payments", T.bill_payment, "check_number", "required when")]


@case("payout item with both a payment and a refund payment")
def _both(w: World) -> list[Expect]:
    set_row(w, "payout_items", T.payout_item, refund_payment_id=T.refund_payment)
    path = f"items[{T.payout_item_index}]"
    return [rejected("payouts", T.payout, path, "both payment_id and")]


@case("invoice without line items")
def _no_lines(w: World) -> list[Expect]:
    assert w.sql("DELETE FROM invoice_line_items WHERE invoice_id = :i", i=T.invoice)
    return [rejected("invoices", T.invoice, "line_items", "at least one line")]


@case("bad entity_type for a GB business")
def _entity_type(w: World) -> list[Expect]:
    business = new_business(w, "biz-02", entity_type="corporation")
    return [rejected("businesses", business, "entity_type", "'corporation' is not one")]


@case("business in an unsupported country")
def _country(w: World) -> list[Expect]:
    business = new_business(w, "biz-03", country="US", base_currency="USD")
    return [rejected("businesses", business, "country", "does not support businesses in US")]


@case("invalid email")
def _email(w: World) -> list[Expect]:
    customer = new_customer(w, email="accounts at example dot com")
    return [rejected("customers", customer, "email", "not a valid email")]


# Dates


@case("date before 1900")
def _old_date(w: World) -> list[Expect]:
    set_row(w, "invoices", T.invoice, sent_at="1850-01-01 00:00:00.000000")
    return [rejected("invoices", T.invoice, "sent_at", "outside the accepted years")]


@case("date after 2100")
def _future_date(w: World) -> list[Expect]:
    set_row(w, "bills", T.bill, bill_date="2150-01-01")
    return [rejected("bills", T.bill, "bill_date", "outside the accepted years")]


# Strings


@case("name longer than Thred allows")
def _long(w: World) -> list[Expect]:
    # No documented limit, so it is sent; Thred's own refusal quarantines this one record.
    vendor = new_vendor(w, company_name="Longwinded " * 30)
    return [thred_rejected("vendors", vendor, "company_name", "no more than 255 characters")]


@case("legal name longer than the documented 255")
def _long_legal_name(w: World) -> list[Expect]:
    business = new_business(w, "biz-04")
    set_row(w, "businesses", business, legal_name="Longwinded " * 30)
    return [rejected("businesses", business, "legal_name", "Thred accepts at most 255")]


@case("VAT number longer than the documented 20")
def _long_vat(w: World) -> list[Expect]:
    business = new_business(w, "biz-05", vat_number="GB" + "1" * 25)
    return [rejected("businesses", business, "vat_number", "at most 20")]


@case("NUL character in a name")
def _nul(w: World) -> list[Expect]:
    customer = new_customer(w, company_name="Acme\x00 Ltd")
    return [rejected("customers", customer, "company_name", "control character U+0000")]


@case("escape sequence in a memo")
def _escape(w: World) -> list[Expect]:
    set_row(w, "invoices", T.invoice, memo="PO 123\x1b[31m")
    return [rejected("invoices", T.invoice, "memo", "control character U+001B")]


# Rows that cannot be read or keyed: the extractor hands them over with a ``problem``


def new_row(
    w: World,
    table: str,
    row_id: str,
    where: str = "1 = 1",
    params: dict[str, Any] | None = None,
    **changes: Any,
) -> str:
    """A copy of a row of ``table`` under a new id (nothing refers to it)."""
    copy_row(w, table, where, params or {}, id=row_id, **changes)
    return row_id


UNREADABLE = "unreadable_source_row"  # the engine's error_code for a record with a problem


def unreadable(entity: str, source_id: str, path: str, reason: str) -> Expect:
    """Quarantined as extracted (``SourceRecord.problem``), before any mapping or API call."""
    return Expect(entity, source_id, Status.REJECTED, path, reason, code=UNREADABLE)


NON_ASCII_PAYMENT = "pay-ü-1"
LONG_VENDOR = "ven-" + "v" * 296  # 300 characters
NULL_STAMP_CUSTOMER = "cus-null-stamp"
GARBAGE_STAMP_CUSTOMER = "cus-bad-stamp"
MEMO_1000 = ("Lieferung laut Rahmenvertrag Nr. 4711 — 東京 ✓\n" * 30)[:1000]


@case("NULL updated_at")
def _null_updated_at(w: World) -> list[Expect]:
    w.loosen("customers")
    new_row(w, "customers", NULL_STAMP_CUSTOMER, "archived_at IS NULL", updated_at=None)
    reason = "NULL: cannot tell when it changed"
    return [unreadable("customers", NULL_STAMP_CUSTOMER, "updated_at", reason)]


@case("unreadable updated_at text")
def _garbage_updated_at(w: World) -> list[Expect]:
    new_row(w, "customers", GARBAGE_STAMP_CUSTOMER, "archived_at IS NULL", updated_at="yesterday")
    return [unreadable("customers", GARBAGE_STAMP_CUSTOMER, "updated_at", "'yesterday'")]


@case("NULL updated_at on a line item")
def _null_line_updated_at(w: World) -> list[Expect]:
    w.loosen("invoice_line_items")
    set_line(w, T.invoice, 0, updated_at=None)
    reason = "NULL: cannot tell when it changed"
    return [unreadable("invoices", T.invoice, "line_items[0].updated_at", reason)]


@case("non-ASCII payment id")
def _non_ascii_id(w: World) -> list[Expect]:
    new_row(w, "payments", NON_ASCII_PAYMENT, "id = :p", {"p": T.payment})
    return [unreadable("invoice_payments", NON_ASCII_PAYMENT, "id", "non-ASCII character 'ü'")]


@case("non-ASCII customer id referenced by an invoice")
def _non_ascii_reference(w: World) -> list[Expect]:
    customer = new_customer(w)
    assert w.sql("UPDATE customers SET id = 'cus-ñ-1' WHERE id = :c", c=customer)
    set_row(w, "invoices", T.invoice, customer_id="cus-ñ-1")
    return [
        unreadable("customers", "cus-ñ-1", "id", "non-ASCII character 'ñ'"),
        rejected("invoices", T.invoice, "customer_id", "references id 'cus-ñ-1'"),
    ]


@case("300-character id")
def _long_id(w: World) -> list[Expect]:
    new_row(w, "vendors", LONG_VENDOR, "archived_at IS NULL")
    return [unreadable("vendors", LONG_VENDOR, "id", "is 300 characters long")]


@case("number out of range")
def _huge_amount(w: World) -> list[Expect]:
    assert w.sql("UPDATE refunds SET amount_cents = 1e30 WHERE id = :r", r=T.refund)
    return [rejected("refunds", T.refund, "amount_cents", "too large")]


@case("text in a timestamp column")
def _text_timestamp(w: World) -> list[Expect]:
    set_row(w, "bills", T.bill, due_at="end of month")
    return [unreadable("bills", T.bill, "due_at", "'end of month'")]


# Thred-side refusals: a 400, kept with Thred's error code and field details


@case("payment over the invoice")
def _over_invoice(w: World) -> list[Expect]:
    set_row(w, "payments", T.payment, amount_cents=99_999_999)
    assert w.sql(
        "UPDATE payment_allocations SET amount_cents = 99999999 WHERE payment_id = :p", p=T.payment
    )
    return [
        thred_rejected(
            "invoice_payments",
            T.payment,
            "allocations[0].amount_cents",
            "exceeds the invoice's outstanding balance",
        )
    ]


@case("refund over the payment")
def _over_refund(w: World) -> list[Expect]:
    set_row(w, "refunds", T.refund, amount_cents=99_999_999)
    return [thred_rejected("refunds", T.refund, "amount_cents", "paid on the invoice")]


@case("refund payment over the refund")
def _over_refund_payment(w: World) -> list[Expect]:
    set_row(w, "refund_payments", T.refund_payment, amount_cents=99_999_999)
    return [thred_rejected("refund_payments", T.refund_payment, "amount_cents", "exceeds")]


@case("bill payment over the bill")
def _over_bill(w: World) -> list[Expect]:
    set_row(w, "bill_payments", T.bill_payment, amount_cents=99_999_999)
    assert w.sql(
        "UPDATE bill_payment_allocations SET amount_cents = 99999999 WHERE bill_payment_id = :p",
        p=T.bill_payment,
    )
    return [
        thred_rejected(
            "bill_payments", T.bill_payment, "allocations[0].amount_cents", "outstanding balance"
        )
    ]


# Missing parents: deferred, never rejected


@case("payout referencing an unknown payment")
def _unknown_payment(w: World) -> list[Expect]:
    set_row(w, "payout_items", T.payout_item, payment_id="pay-01-99999")
    path = f"payment_ids[{T.payout_item_index}]"
    return [waiting("payouts", T.payout, path, "'pay-01-99999' is not in Thred yet")]


def check_expectations(w: World, expects: list[Expect], results: dict[str, Any]) -> None:
    """The broken record's ledger row names it, the field and the reason; the run shows it."""
    for expect in expects:
        row = w.ledger.get(expect.entity, expect.source_id)
        assert row is not None, f"{expect.key} has no ledger row"
        where = f"{expect.key}: {row.status.value} {row.error_code} {row.error_message!r}"
        assert row.status is expect.status, where
        assert row.external_id == entities.get(expect.entity).external_id(expect.source_id)
        assert expect.reason.lower() in (row.error_message or "").lower(), where
        if expect.code is not None:
            assert row.error_code == expect.code, where
        details = row.error_details or {}
        if expect.status is Status.REJECTED:
            assert expect.source_id in (row.error_message or ""), where
            assert expect.field in details, (where, details)
        else:
            assert details.get("field") == expect.field, (where, details)
        if expect.entity in results:  # materialization metadata samples name it too
            outcome = "rejected" if expect.status is Status.REJECTED else "deferred"
            samples = results[expect.entity].samples.get(outcome, [])
            assert expect.source_id in {s["source_id"] for s in samples}, samples


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_row_is_quarantined_and_the_rest_syncs(world: World, name: str) -> None:
    expects = CASES[name](world)
    results = world.sync()  # one bad row never stops the batch: no exception, no lost chunk
    check_expectations(world, expects, results)
    world.audit({e.key: e.status for e in expects}).assert_ok()


def test_the_catalogue_has_at_least_twenty_kinds() -> None:
    assert len(CASES) >= 20


# --- cases that need more than the table ------------------------------------------------------


def test_allocation_to_a_missing_invoice_waits_and_is_warned_about_once_old(world: World) -> None:
    assert world.sql(
        "UPDATE payment_allocations SET invoice_id = 'inv-01-99999' WHERE payment_id = :p",
        p=T.payment,
    )
    results = world.sync()
    expect = waiting(
        "invoice_payments",
        T.payment,
        "allocations[0].invoice_id",
        "invoices 'inv-01-99999' is not in Thred yet",
    )
    check_expectations(world, [expect], results)
    world.audit({expect.key: Status.DEFERRED}).assert_ok()

    spec = entities.get("invoice_payments")
    fresh = quarantine_result(world.ledger)
    assert fresh.passed, "a record deferred for minutes is not a problem yet"
    assert metadata(fresh, "deferred") >= 1

    # Three days on, the parent never arrived: the WARN check lists it with its reason.
    with world.ledger.engine.begin() as conn:
        conn.execute(
            ledger_table.update()
            .where(ledger_table.c.entity == spec.name, ledger_table.c.source_id == T.payment)
            .values(status_since=datetime.now(UTC) - timedelta(days=3, hours=1))
        )
    world.sync()  # deferred again: status_since must not move
    old = quarantine_result(world.ledger)
    assert not old.passed
    assert metadata(old, "deferred_too_long") == 1
    listed = metadata(old, "records")
    assert [r["external_id"] for r in listed] == [f"payment-{T.payment}"]
    assert "allocations[0].invoice_id" in listed[0]["reason"]
    assert metadata(old, "by_reason") == {"invoice_payments:deferred:parent_not_synced": 1}


def metadata(check: Any, key: str) -> Any:
    """A check result's metadata value (Dagster types it as any packable value)."""
    return check.metadata[key].value


UNICODE_NAME = "Ærøskøbing Ölwerk — 東京支店 🚀 Ltd"
UNICODE_MEMO = "Zahlung bis 30.09. ✓\nDanke — 谢谢 😀\tEnde"
UNICODE_LINE = "Café crème brûlée \u00d7 12 (Ünïcödé)"


def _thred_get(world: World, path: str) -> dict[str, Any]:
    business = world.ledger.thred_ids("businesses", [T.business])[T.business]

    async def read() -> dict[str, Any]:
        async with ThredClient(world.settings) as client:
            response = await client.request(
                "GET", f"businesses/{business}/{path}", business_id=business
            )
            body: dict[str, Any] = response.body
            return body

    return asyncio.run(read())


def test_unicode_passes_unchanged(readable_world: World) -> None:
    world = readable_world
    set_row(world, "customers", T.customer, company_name=UNICODE_NAME)
    set_row(world, "invoices", T.invoice, memo=UNICODE_MEMO)
    set_line(world, T.invoice, 0, description=UNICODE_LINE)
    world.sync()
    world.audit({}).assert_ok()  # nothing rejected

    customer = world.ledger.get("customers", T.customer)
    invoice = world.ledger.get("invoices", T.invoice)
    assert customer is not None and invoice is not None
    assert _thred_get(world, f"customers/{customer.thred_id}/")["company_name"] == UNICODE_NAME
    thred_invoice = _thred_get(world, f"invoices/{invoice.thred_id}/")
    assert thred_invoice["memo"] == UNICODE_MEMO
    assert thred_invoice["line_items"][0]["description"] == UNICODE_LINE


def test_orphan_line_item_attaches_to_nothing(readable_world: World) -> None:
    world = readable_world
    """A line whose invoice is not in the warehouse (a replication gap): no crash, no attach."""
    copy_row(
        world,
        "invoice_line_items",
        "invoice_id = :i",
        {"i": T.invoice},
        id="ili-orphan-1",
        invoice_id="inv-01-99999",
    )
    results = world.sync()
    world.audit({}).assert_ok()
    assert results["invoices"].counts["created"] == SEED.invoices
    assert world.ledger.get("invoices", "inv-01-99999") is None

    sent: list[str] = []
    for row in world.ledger.iter_rows("invoices"):
        detail = _thred_get(world, f"invoices/{row.thred_id}/")
        sent += [str(line.get("external_id")) for line in detail["line_items"]]
    with world.wh.connect() as conn:
        attached = conn.execute(
            text("SELECT l.id FROM invoice_line_items l JOIN invoices i ON i.id = l.invoice_id")
        ).scalars()
        expected = sorted(f"line-{i}" for i in attached)
    assert sorted(sent) == expected
    assert "line-ili-orphan-1" not in sent


# --- text where SQLite holds numbers or dates: one record rejected, never the whole chunk ---


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("three", UNREADABLE),  # text: extraction cannot read it as a number
        # a number, but not a quantity: the mapper refuses it
        ("NaN", LedgerCode.INVALID_SOURCE_DATA),
    ],
)
def test_quantity_stored_as_text_is_rejected_not_fatal(world: World, value: str, code: str) -> None:
    set_line(world, T.invoice, 0, quantity=value)
    results = world.sync()
    expect = Expect("invoices", T.invoice, Status.REJECTED, "line_items[0].quantity", "", code)
    check_expectations(world, [expect], results)
    world.audit({expect.key: Status.REJECTED}).assert_ok()
    # Reconciliation reads the same raw rows: it must not crash on them, and it must report
    # the quarantined invoice as missing in Thred, with its reason (never a pass).
    report = BooksReconciler(Warehouse(world.wh), world.ledger, world.settings).run(
        as_of=world.window.end
    )
    invoices = next(c for c in report.checks if c.name == "invoices")
    assert not invoices.passed
    missing = invoices.differences.to_dict("records")
    assert [(d["source_id"], d["kind"], d["cause"]) for d in missing] == [
        (T.invoice, "missing in Thred", "quarantined")
    ], missing
    customers = next(c for c in report.checks if c.name == "customers")
    assert customers.passed, customers.differences.to_dict("records")


def test_unparseable_date_is_rejected_not_fatal(world: World) -> None:
    set_row(world, "payments", T.payment, payment_date="31/12/2026")
    results = world.sync()
    expect = unreadable("invoice_payments", T.payment, "payment_date", "'31/12/2026'")
    check_expectations(world, [expect], results)
    world.audit({expect.key: Status.REJECTED}).assert_ok()


def test_duplicate_source_ids_are_quarantined(world: World) -> None:
    """A view without a primary key returns one id twice: neither row is sent, both named."""
    customer = new_customer(world)
    world.loosen("customers")
    copy_row(world, "customers", "id = :c", {"c": customer}, company_name="Imposter Ltd")
    results = world.sync()
    expect = Expect(
        "customers", customer, Status.REJECTED, "id", "2 rows with id", code="duplicate_source_id"
    )
    check_expectations(world, [expect], results)
    world.audit({expect.key: Status.REJECTED}).assert_ok()


def test_targets_fit_what_the_cases_need() -> None:
    data = generate(SEED)
    refunded = {r["invoice_id"] for r in data["refunds"]}
    assert T.paid_invoice not in refunded
    assert T.invoice not in {a["invoice_id"] for a in data["payment_allocations"]} | refunded
    assert NEW_CUSTOMER not in {c["id"] for c in data["customers"]}
    assert NEW_VENDOR not in {v["id"] for v in data["vendors"]}


# --- kinds that need more than one row, and all of them at once ------------------------------


def test_a_1000_character_memo_is_accepted_as_it_is(readable_world: World) -> None:
    world = readable_world
    """The contract states no limit for memos, descriptions or refund reasons."""
    set_row(world, "invoices", T.invoice, memo=MEMO_1000)
    set_line(world, T.invoice, 0, description=MEMO_1000)
    set_row(world, "refunds", T.refund, reason=MEMO_1000)
    world.sync()
    world.audit({}).assert_ok()
    invoice = world.ledger.get("invoices", T.invoice)
    refund = world.ledger.get("refunds", T.refund)
    assert invoice is not None and refund is not None
    thred_invoice = _thred_get(world, f"invoices/{invoice.thred_id}/")
    assert thred_invoice["memo"] == MEMO_1000
    assert thred_invoice["line_items"][0]["description"] == MEMO_1000
    assert refund.status is Status.SYNCED


TOGETHER = [
    "NULL updated_at",
    "unreadable updated_at text",
    "non-ASCII payment id",
    "300-character id",
    "number out of range",
    "text in a timestamp column",
    "NULL updated_at on a line item",
    "zero payment amount",
    "check bill payment without a check number",
]


def test_every_poison_kind_at_once_costs_only_its_rows(world: World) -> None:
    """The new kinds together (and two classic ones): each bad row is quarantined alone and
    every other record, of every later entity too, is synced."""
    expects = [e for name in TOGETHER for e in CASES[name](world)]
    assert len({e.key for e in expects}) == len(expects), "the kinds break distinct records"
    results = world.sync()
    check_expectations(world, expects, results)
    world.audit({e.key: e.status for e in expects}).assert_ok()
    # Run again: the quarantine holds, nothing new is created, nothing is lost.
    before = world.ledger.status_counts()
    world.sync()
    assert world.ledger.status_counts() == before
    world.audit({e.key: e.status for e in expects}).assert_ok()


# --- values only PostgreSQL holds -------------------------------------------------------------


class PgWorld(World):
    """The same universe on a PostgreSQL warehouse of its own (ledger on SQLite, as in World)."""

    def __init__(self, folder: Path, url: str, sandbox_url: str, config: SeedConfig) -> None:
        self.folder = folder
        self.config = config
        self.sandbox_url = sandbox_url
        httpx.post(f"{sandbox_url}/_sandbox/reset", timeout=30).raise_for_status()
        self.warehouse_url = url
        self.wh = create_warehouse_engine(url)
        load(self.wh, generate(config))
        self.ledger_url = f"sqlite:///{folder / 'ledger.db'}"
        self.ledger = SyncLedger.from_url(self.ledger_url)
        self.settings = _settings(sandbox_url)

    def loosen(self, table: str) -> None:
        """What a view or a replica has: no NOT NULL, ids of any length."""
        with self.wh.begin() as conn:
            for column in wh_schema.metadata.tables[table].columns:
                if not column.primary_key and not column.nullable:
                    conn.exec_driver_sql(
                        f'ALTER TABLE "{table}" ALTER COLUMN "{column.name}" DROP NOT NULL'
                    )
            conn.exec_driver_sql(f'ALTER TABLE "{table}" ALTER COLUMN id TYPE text')


def _settings(sandbox_url: str) -> ThredSettings:
    return ThredSettings(
        base_url=sandbox_url,
        partner_id=DEMO_PARTNER_ID,
        api_key=SecretStr(DEMO_API_KEY),
        backoff_base_s=0.01,
        backoff_max_s=0.05,
        max_attempts=3,
    )


@pytest.fixture
def pg_world(tmp_path: Path, postgres_admin_url: str, sandbox: RunningSandbox) -> Iterator[PgWorld]:
    with pg_database(postgres_admin_url, "thred_bad_input") as url:
        w = PgWorld(tmp_path, url, sandbox.url, SEED)
        try:
            yield w
        finally:
            w.close()


PG_CASES: dict[str, Breaker] = {}


def pg_case(name: str) -> Callable[[Breaker], Breaker]:
    def register(breaker: Breaker) -> Breaker:
        assert name not in PG_CASES, name
        PG_CASES[name] = breaker
        return breaker

    return register


@pg_case("timestamp before year 1")
def _pg_bc_timestamp(w: World) -> list[Expect]:
    set_row(w, "invoices", T.invoice, sent_at="0001-01-01 00:00:00+00 BC")
    return [unreadable("invoices", T.invoice, "sent_at", "'0001-01-01 00:00:00+00 BC'")]


@pg_case("date before year 1")
def _pg_bc_date(w: World) -> list[Expect]:
    set_row(w, "payments", T.payment, payment_date="0001-01-01 BC")
    return [unreadable("invoice_payments", T.payment, "payment_date", "'0001-01-01 BC'")]


@pg_case("infinite timestamp")
def _pg_infinity(w: World) -> list[Expect]:
    set_row(w, "bills", T.bill, due_at="infinity")
    return [unreadable("bills", T.bill, "due_at", "'infinity'")]


@pg_case("year 10000")
def _pg_year_10000(w: World) -> list[Expect]:
    set_row(w, "refund_payments", T.refund_payment, completed_at="10000-01-01 00:00:00+00")
    path, reason = "completed_at", "'10000-01-01 00:00:00+00'"
    return [unreadable("refund_payments", T.refund_payment, path, reason)]


@pg_case("-infinity updated_at")
def _pg_minus_infinity_stamp(w: World) -> list[Expect]:
    customer = new_row(w, "customers", "cus-minus-inf", "archived_at IS NULL")
    set_row(w, "customers", customer, updated_at="-infinity")
    return [unreadable("customers", customer, "updated_at", "cannot tell when it changed")]


@pg_case("NULL updated_at")
def _pg_null_stamp(w: World) -> list[Expect]:
    w.loosen("vendors")
    vendor = new_row(w, "vendors", "ven-null-stamp", "archived_at IS NULL", updated_at=None)
    return [unreadable("vendors", vendor, "updated_at", "NULL: cannot tell when it changed")]


@pg_case("300-character id")
def _pg_long_id(w: World) -> list[Expect]:
    w.loosen("customers")
    customer = new_row(w, "customers", "cus-" + "c" * 296, "archived_at IS NULL")
    return [unreadable("customers", customer, "id", "is 300 characters long")]


@pg_case("non-ASCII id")
def _pg_non_ascii_id(w: World) -> list[Expect]:
    new_row(w, "payments", NON_ASCII_PAYMENT, "id = :p", {"p": T.payment})
    return [unreadable("invoice_payments", NON_ASCII_PAYMENT, "id", "non-ASCII character 'ü'")]


PG_COPIES = {"non-ASCII id", "300-character id", "NULL updated_at", "-infinity updated_at"}


@pytest.mark.postgres
@pytest.mark.parametrize("name", sorted(PG_CASES))
def test_bad_row_on_postgresql_is_quarantined_and_the_rest_syncs(
    pg_world: PgWorld, name: str
) -> None:
    expects = PG_CASES[name](pg_world)
    results = pg_world.sync()  # no value PostgreSQL holds can stop extraction
    check_expectations(pg_world, expects, results)
    pg_world.audit({e.key: e.status for e in expects}).assert_ok()


@pytest.mark.postgres
def test_every_postgresql_poison_kind_at_once(pg_world: PgWorld) -> None:
    # Rows are copied before others are corrupted (a copy reads the source row natively).
    order = sorted(PG_CASES, key=lambda name: name not in PG_COPIES)
    expects = [e for name in order for e in PG_CASES[name](pg_world)]
    assert len({e.key for e in expects}) == len(expects), "the kinds break distinct records"
    results = pg_world.sync()
    check_expectations(pg_world, expects, results)
    pg_world.audit({e.key: e.status for e in expects}).assert_ok()
