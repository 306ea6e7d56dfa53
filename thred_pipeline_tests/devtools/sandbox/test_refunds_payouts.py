"""Refunds, refund payments and payouts."""

from __future__ import annotations

import httpx
import pytest

from .conftest import Biz


def _account_balance(biz: Biz, code: str) -> int:
    results = biz.get("general-ledger/chart-of-accounts/", params={"search": code}).json()[
        "results"
    ]
    return int(next(a for a in results if a["code"] == code)["current_balance"])


def _paid_invoice(
    biz: Biz, amount: int = 10000, paid: int | None = None, **pay_kw
) -> tuple[dict, dict, dict]:
    c = biz.customer()
    inv = biz.invoice(c["id"], [{"unit_price": amount}])
    pay = biz.pay(c["id"], [(inv["id"], paid if paid is not None else amount)], **pay_kw)
    return c, inv, pay


@pytest.mark.extended_fields  # reads the sandbox's inferred fields
def test_refund_lifecycle(biz: Biz):
    c, inv, _ = _paid_invoice(biz)
    r = biz.post(
        "invoices/refunds/",
        {
            "invoice_id": inv["id"],
            "amount_cents": 3000,
            "method": "cash",
            "external_id": "ref-1",
            "completed_at": "2025-02-01",
        },
    )
    assert r.status_code == 201, r.text
    ref = r.json()
    assert ref["refunded_amount"] == 3000 and ref["remaining_amount_cents"] == 3000
    assert ref["status"] == "pending" and ref["method"] == "CASH" and ref["customer_id"] == c["id"]
    alloc = ref["allocations"][0]
    assert (
        alloc["allocation_type"] == "invoice"
        and alloc["invoice_id"] == inv["id"]
        and alloc["amount"] == 3000
    )
    assert alloc["invoice_outstanding_balance_cents"] == 0
    assert (
        biz.post(
            "invoices/refunds/",
            {"invoice_id": inv["id"], "amount_cents": 1, "external_id": "ref-1"},
        ).status_code
        == 200
    )
    assert _account_balance(biz, "2400") == 3000  # refund liability
    assert _account_balance(biz, "4010") == -3000  # revenue reversed (contra revenue)

    url = f"invoices/refunds/{ref['id']}/payments/"
    p1 = biz.post(url, {"amount_cents": 1000, "method": "ACH", "external_id": "rp-1"})
    assert p1.status_code == 201 and p1.json()["refunded_amount"] == 1000
    assert biz.get(f"invoices/refunds/{ref['id']}/").json()["status"] == "processing"
    assert biz.post(url, {"amount_cents": 1000, "external_id": "rp-1"}).status_code == 200  # replay
    r = biz.post(url, {"amount_cents": 2001})
    assert r.status_code == 400 and "amount_cents" in r.json()["details"]
    assert biz.post(url, {"amount_cents": 2000, "method": "bank_transfer"}).status_code == 201
    done = biz.get(f"invoices/refunds/{ref['id']}/").json()
    assert (
        done["status"] == "paid"
        and done["remaining_amount_cents"] == 0
        and len(done["refund_payments"]) == 2
    )
    assert _account_balance(biz, "2400") == 0
    assert _account_balance(biz, "1000") == 10000 - 3000
    assert biz.get(url).json()["count"] == 2
    assert biz.get("invoices/refunds/", params={"external_id": "ref-1"}).json()["count"] == 1
    assert biz.get("invoices/refunds/", params={"status": "paid"}).json()["count"] == 1
    assert biz.get(f"invoices/{inv['id']}/").json()["refunded_amount"] == 3000


def test_refund_limits(biz: Biz):
    c, inv, _ = _paid_invoice(biz, amount=5000, paid=2000)
    r = biz.post("invoices/refunds/", {"invoice_id": inv["id"], "amount_cents": 2001})
    assert r.status_code == 400 and "amount_cents" in r.json()["details"]
    r = biz.post(
        "invoices/refunds/", {"invoice_id": inv["id"], "partial_amount": 1500}
    )  # guide alias
    assert r.status_code == 201 and r.json()["refunded_amount"] == 1500
    r = biz.post("invoices/refunds/", {"invoice_id": inv["id"], "partial_amount": 501})
    assert r.status_code == 400 and "partial_amount" in r.json()["details"]
    r = biz.post("invoices/refunds/", {"invoice_id": inv["id"]})  # no amount: the rest
    assert r.status_code == 201 and r.json()["refunded_amount"] == 500
    r = biz.post("invoices/refunds/", {"invoice_id": inv["id"]})
    assert r.status_code == 400
    unpaid = biz.invoice(c["id"])
    assert (
        biz.post("invoices/refunds/", {"invoice_id": unpaid["id"], "amount_cents": 1}).status_code
        == 400
    )
    r = biz.post(
        "invoices/refunds/",
        {"invoice_id": "00000000-0000-0000-0000-000000000000", "amount_cents": 1},
    )
    assert r.status_code == 400 and "invoice_id" in r.json()["details"]
    r = biz.post("invoices/refunds/", {"invoice_id": inv["id"], "amount_cents": 0})
    assert r.status_code == 400
    r = biz.post(
        "invoices/refunds/", {"invoice_id": inv["id"], "amount_cents": 1, "method": "GOLD"}
    )
    assert r.status_code == 400 and "method" in r.json()["details"]
    assert biz.post("invoices/refunds/nope/payments/", {"amount_cents": 1}).status_code == 404


@pytest.mark.extended_fields  # reads the sandbox's inferred fields
def test_payout_upsert(biz: Biz):
    c = biz.customer()
    inv = biz.invoice(c["id"], [{"unit_price": 1_000_000}])
    pay = biz.pay(
        c["id"], [(inv["id"], 1_000_000)], payment_method="credit_card", payment_processor="stripe"
    )
    ref = biz.ok(biz.post("invoices/refunds/", {"invoice_id": inv["id"], "amount_cents": 50_000}))
    rp = biz.ok(
        biz.post(
            f"invoices/refunds/{ref['id']}/payments/",
            {"amount_cents": 50_000, "processor": "STRIPE"},
        )
    )
    body = {
        "external_id": "po-1",
        "processor": "stripe",
        "paid_out_amount_cents": 920_000,
        "fee_cents": 30_000,
        "currency": "GBP",
        "status": "paid",
        "completed_at": "2025-02-03T00:00:00Z",
        "payment_ids": [pay["id"]],
        "refund_payment_ids": [rp["id"]],
    }
    r = biz.post("payouts/", body)
    assert r.status_code == 201, r.text
    po = r.json()
    assert (po["gross_payments_amount_cents"], po["total_refunds_amount_cents"]) == (
        1_000_000,
        50_000,
    )
    assert po["expected_net_amount_cents"] == 920_000 and po["amount_variance_cents"] == 0
    assert (
        po["net_amount_cents"] == 890_000
        and po["payment_count"] == 1
        and po["refund_payment_count"] == 1
    )
    assert po["reconciliation_status"] == "unreconciled"
    assert _account_balance(biz, "1150") == 0  # clearing emptied by the payout
    assert _account_balance(biz, "1000") == 920_000
    # same external_id updates (upsert): 200
    r = biz.post("payouts/", {**body, "paid_out_amount_cents": 910_000})
    assert (
        r.status_code == 200
        and r.json()["id"] == po["id"]
        and r.json()["amount_variance_cents"] == -10_000
    )
    assert biz.get("payouts/").json()["count"] == 1
    assert _account_balance(biz, "1150") == 10_000  # the variance stays in clearing
    assert biz.get(f"payouts/{po['id']}/").json()["paid_out_amount_cents"] == 910_000
    assert biz.get(f"invoices/payments/{pay['id']}/").json()["payout_id"] == po["id"]
    # unknown ids and double membership
    r = biz.post(
        "payouts/",
        {
            **body,
            "external_id": "po-2",
            "payment_ids": ["00000000-0000-0000-0000-000000000000"],
            "refund_payment_ids": [],
        },
    )
    assert r.status_code == 400 and "payment_ids[0]" in r.json()["details"]
    r = biz.post("payouts/", {**body, "external_id": "po-3"})
    assert r.status_code == 400 and "payment_ids[0]" in r.json()["details"]
    assert biz.post("payouts/", {**body, "currency": "USD"}).status_code == 400
    assert biz.get("payouts/", params={"external_id": "po"}).json()["count"] == 1  # partial match


def test_payout_reconciled_is_locked(biz: Biz, http: httpx.Client):
    body = {"external_id": "po-lock", "paid_out_amount_cents": 100, "status": "pending"}
    po = biz.ok(biz.post("payouts/", body))
    assert _account_balance(biz, "1000") == 0  # pending payouts do not post
    r = http.post("/_sandbox/reconcile-payout", json={"business_id": biz.id, "payout_id": po["id"]})
    assert r.status_code == 200 and r.json()["reconciliation_status"] == "reconciled"
    r = biz.post("payouts/", {**body, "paid_out_amount_cents": 200})
    assert r.status_code == 409 and r.json()["error_code"] == "payout_reconciled"
