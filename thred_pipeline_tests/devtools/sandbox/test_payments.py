"""Invoice payments: shapes, allocation rules, idempotency."""

from __future__ import annotations

import httpx
import pytest

from .conftest import Biz, stats


def _body(customer_id: str, **kw):
    return {
        "customer_id": customer_id,
        "total_amount_cents": 1000,
        "payment_date": "2025-02-01",
        **kw,
    }


@pytest.mark.extended_fields  # reads the sandbox's inferred fields
def test_payment_create_shape_and_effects(biz: Biz):
    c = biz.customer()
    a = biz.invoice(c["id"], [{"unit_price": 3000}])
    b = biz.invoice(c["id"], [{"unit_price": 2000}])
    r = biz.post(
        "invoices/payments/",
        _body(
            c["id"],
            external_id="pay-1",
            total_amount_cents=4500,
            allocations=[
                {"invoice_id": a["id"], "amount_cents": 3000},
                {"invoice_id": b["id"], "amount_cents": 1000},
            ],
            payment_method="bank_transfer",
            currency="GBP",
        ),
    )
    assert r.status_code == 201, r.text
    p = r.json()["payment"]
    assert p["total_amount_cents"] == 4500
    assert p["allocated_amount_cents"] == p["applied_amount_cents"] == 4000
    assert p["unapplied_amount_cents"] == 500 and p["status"] == "completed"
    applied = {x["id"]: x for x in p["applied_invoices"]}
    assert (
        applied[a["id"]]["status"] == "paid" and applied[a["id"]]["outstanding_amount_cents"] == 0
    )
    assert (
        applied[b["id"]]["status"] == "partially_paid"
        and applied[b["id"]]["outstanding_amount_cents"] == 1000
    )
    assert biz.get(f"invoices/{a['id']}/").json()["status"] == "PAID"
    inv_b = biz.get(f"invoices/{b['id']}/").json()
    assert (inv_b["status"], inv_b["amount_paid"], inv_b["outstanding_balance"]) == (
        "PARTIALLY_PAID",
        1000,
        1000,
    )
    assert biz.get(f"customers/{c['id']}/").json()["outstanding_balance"] == 1000
    # list/detail: unwrapped, non-_cents names
    d = biz.get(f"invoices/payments/{p['id']}/").json()
    assert (d["total_amount"], d["allocated_amount"], d["unallocated_amount"]) == (4500, 4000, 500)
    assert d["external_id"] == "pay-1" and len(d["allocations"]) == 2
    assert d["allocations"][0]["amount"] == 3000 and d["is_fully_allocated"] is False
    assert d["customer"]["id"] == c["id"]


@pytest.mark.extended_fields  # reads the sandbox's inferred fields
def test_external_id_replay(biz: Biz, http: httpx.Client):
    c = biz.customer()
    inv = biz.invoice(c["id"])
    body = _body(
        c["id"], external_id="pay-x", allocations=[{"invoice_id": inv["id"], "amount_cents": 1000}]
    )
    r1 = biz.post("invoices/payments/", body)
    r2 = biz.post("invoices/payments/", body)
    assert (r1.status_code, r2.status_code) == (201, 200)
    assert r2.json()["payment"]["id"] == r1.json()["payment"]["id"]
    assert biz.get("invoices/payments/").json()["count"] == 1
    assert biz.get(f"invoices/{inv['id']}/").json()["amount_paid"] == 1000
    assert stats(http)["objects"][biz.id]["invoice_payments"] == 1


@pytest.mark.extended_fields  # reads the sandbox's inferred fields
def test_idempotency_key_replay_returns_original_response(biz: Biz):
    c = biz.customer()
    inv = biz.invoice(c["id"], [{"unit_price": 5000}])
    body = _body(c["id"], allocations=[{"invoice_id": inv["id"], "amount_cents": 1000}])
    headers = {"Idempotency-Key": "idem-123"}
    r1 = biz.post("invoices/payments/", body, headers=headers)
    assert r1.status_code == 201 and r1.json()["payment"]["idempotency_key"] == "idem-123"
    r2 = biz.post("invoices/payments/", body, headers=headers)
    assert r2.status_code == 200 and r2.json() == r1.json()
    assert biz.get("invoices/payments/").json()["count"] == 1
    # another key is another payment
    r3 = biz.post("invoices/payments/", body, headers={"Idempotency-Key": "idem-456"})
    assert r3.status_code == 201
    assert biz.get(f"invoices/{inv['id']}/").json()["outstanding_balance"] == 3000
    # a failed request is not cached under its key
    bad = biz.post(
        "invoices/payments/",
        {**body, "total_amount_cents": 0},
        headers={"Idempotency-Key": "k-fix"},
    )
    assert bad.status_code == 400
    assert (
        biz.post("invoices/payments/", body, headers={"Idempotency-Key": "k-fix"}).status_code
        == 201
    )
    assert (
        biz.post("invoices/payments/", body, headers={"Idempotency-Key": "x" * 300}).status_code
        == 400
    )


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"total_amount_cents": 0}, "total_amount_cents"),
        ({"total_amount_cents": -5}, "total_amount_cents"),
        ({"total_amount_cents": "10"}, "total_amount_cents"),
        ({"payment_date": "2025-02-30"}, "payment_date"),
        ({"payment_date": "01/02/2025"}, "payment_date"),
        ({"payment_date": "2025-02-01T00:00:00Z"}, "payment_date"),
        ({"payment_date": None}, "payment_date"),
        ({"currency": "EUR"}, "currency"),
        ({"currency": "GBPX"}, "currency"),
        ({"payment_method": "barter"}, "payment_method"),
        ({"processing_fee_cents": -1}, "processing_fee_cents"),
        ({"payment_processor": "p" * 101}, "payment_processor"),
        ({"external_id": "e" * 256}, "external_id"),
        ({"customer_id": "00000000-0000-0000-0000-000000000000"}, "customer_id"),
        (
            {
                "allocations": [
                    {"invoice_id": "00000000-0000-0000-0000-000000000000", "amount_cents": 1}
                ]
            },
            "allocations[0].invoice_id",
        ),
        ({"allocations": [{"invoice_id": "x", "amount_cents": 0}]}, "allocations[0].amount_cents"),
        ({"allocations": {"invoice_id": "x"}}, "allocations"),
    ],
)
def test_payment_validation(biz: Biz, change, path):
    c = biz.customer()
    r = biz.post("invoices/payments/", {**_body(c["id"]), **change})
    assert r.status_code == 400, r.text
    assert path in r.json()["details"], r.json()


def test_payment_missing_customer_id(biz: Biz):
    r = biz.post("invoices/payments/", {"total_amount_cents": 1, "payment_date": "2025-01-01"})
    assert r.status_code == 400 and r.json()["details"]["customer_id"] == [
        "This field is required."
    ]


@pytest.mark.extended_fields  # reads the sandbox's inferred fields
def test_allocation_rules(biz: Biz):
    c, other = biz.customer(), biz.customer()
    inv = biz.invoice(c["id"], [{"unit_price": 1000}])
    foreign = biz.invoice(other["id"], [{"unit_price": 1000}])
    cases = [
        ([{"invoice_id": foreign["id"], "amount_cents": 100}], 1000, "allocations[0].invoice_id"),
        ([{"invoice_id": inv["id"], "amount_cents": 1001}], 2000, "allocations[0].amount_cents"),
        (
            [
                {"invoice_id": inv["id"], "amount_cents": 600},
                {"invoice_id": inv["id"], "amount_cents": 600},
            ],
            2000,
            "allocations[1].amount_cents",
        ),
        ([{"invoice_id": inv["id"], "amount_cents": 800}], 500, "allocations"),
    ]
    for allocations, total, path in cases:
        r = biz.post(
            "invoices/payments/", _body(c["id"], total_amount_cents=total, allocations=allocations)
        )
        assert r.status_code == 400 and path in r.json()["details"], (allocations, r.text)
    assert biz.get(f"invoices/{inv['id']}/").json()["outstanding_balance"] == 1000
    # unallocated payments are fine (customer credit), and cannot be over-allocated later
    p = biz.pay(c["id"], [], total=700)
    assert p["unapplied_amount_cents"] == 700


def test_payment_list_filters(biz: Biz):
    c1, c2 = biz.customer(), biz.customer()
    i1 = biz.invoice(c1["id"])
    i2 = biz.invoice(c2["id"])
    p1 = biz.pay(c1["id"], [(i1["id"], 100)], payment_date="2025-01-05")
    p2 = biz.pay(
        c2["id"], [(i2["id"], 300)], payment_date="2025-01-07", payment_method="credit_card"
    )
    p3 = biz.pay(c2["id"], [], total=50, payment_date="2025-01-06")
    ids = lambda **q: [p["id"] for p in biz.get("invoices/payments/", params=q).json()["results"]]  # noqa: E731
    assert ids() == [p2["id"], p3["id"], p1["id"]]  # newest payment_date first
    assert ids(ordering="asc") == [p1["id"], p3["id"], p2["id"]]
    assert ids(customer_id=c2["id"], ordering="asc") == [p3["id"], p2["id"]]
    assert ids(invoice_id=i1["id"]) == [p1["id"]]
    assert ids(external_id=p1["external_id"]) == [p1["id"]]
    assert ids(payment_method="credit_card") == [p2["id"]]
    assert ids(is_fully_allocated="false") == [p3["id"]]
    assert ids(min_amount=100, max_amount=100) == [p1["id"]]
    assert biz.get("invoices/payments/", params={"sort_by": "weird"}).status_code == 400
    assert biz.get("invoices/payments/nope/").json()["error_code"] == "payment_not_found"


@pytest.mark.extended_fields  # reads the sandbox's inferred fields
def test_completed_payments_cannot_be_deleted(biz: Biz):
    c = biz.customer()
    inv = biz.invoice(c["id"])
    pay = biz.pay(c["id"], [(inv["id"], 100)])
    r = biz.post(f"invoices/payments/{pay['id']}/delete/")
    assert r.status_code == 409 and r.json()["error_code"] == "invalid_state"
    assert biz.get(f"invoices/{inv['id']}/").json()["amount_paid"] == 100
    assert biz.post("invoices/payments/nope/delete/").status_code == 404


# --- the AR-integration seed page's form: {external_id, invoice_id, amount_cents, ...} --------


def _seed_body(invoice_id: str, amount: int, **kw):
    return {
        "external_id": kw.pop("external_id", None),
        "invoice_id": invoice_id,
        "amount_cents": amount,
        "payment_date": "2025-02-01",
        "payment_method": "bank_transfer",
        **kw,
    }


def test_seed_page_payment_form_allocates_to_the_invoice(biz: Biz, http: httpx.Client):
    c = biz.customer()
    inv = biz.invoice(c["id"], [{"unit_price": 3000}])
    other = biz.invoice(c["id"], [{"unit_price": 1000}])
    seen_before = stats(http)["alias_usage"].get("payment.seed_form", 0)
    r = biz.post("invoices/payments/", _seed_body(inv["id"], 1200, external_id="seed-1"))
    assert r.status_code == 201, r.text
    pay = r.json()["payment"]
    assert pay["customer_id"] == c["id"]  # taken from the invoice
    assert pay["total_amount_cents"] == pay["allocated_amount_cents"] == 1200
    assert pay["unapplied_amount_cents"] == 0 and pay["payment_method"] == "bank_transfer"
    applied = pay["applied_invoices"]
    assert [(a["id"], a["applied_amount_cents"]) for a in applied] == [(inv["id"], 1200)]
    assert applied[0]["outstanding_amount_cents"] == 1800
    assert biz.get(f"customers/{c['id']}/").json()["outstanding_balance"] == 1800 + 1000
    listed = biz.get(f"invoices/payments/{pay['id']}/").json()
    assert [(a["invoice_id"], a["amount"]) for a in listed["allocations"]] == [(inv["id"], 1200)]
    assert listed["total_amount"] == 1200 and other["id"] != inv["id"]
    # the same external_id replays, as in the API-reference form
    again = biz.post("invoices/payments/", _seed_body(inv["id"], 1200, external_id="seed-1"))
    assert again.status_code == 200 and again.json() == r.json()
    assert stats(http)["alias_usage"]["payment.seed_form"] == seen_before + 1  # counted once


def test_seed_page_form_accepts_agreeing_api_fields(biz: Biz):
    c = biz.customer()
    inv = biz.invoice(c["id"], [{"unit_price": 3000}])
    body = _seed_body(inv["id"], 3000, customer_id=c["id"], total_amount_cents=3000)
    pay = biz.ok(biz.post("invoices/payments/", body))["payment"]
    assert pay["applied_invoices"][0]["status"] == "paid"


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"amount_cents": None}, "amount_cents"),
        ({"invoice_id": None}, "invoice_id"),
        ({"invoice_id": "00000000-0000-0000-0000-000000000000"}, "invoice_id"),
        ({"amount_cents": 0}, "amount_cents"),
        ({"amount_cents": 3001}, "allocations[0].amount_cents"),  # above what is open
        ({"total_amount_cents": 2999}, "total_amount_cents"),
        ({"allocations": [{"invoice_id": "x", "amount_cents": 1}]}, "allocations"),
        ({"payment_date": "01/02/2025"}, "payment_date"),
        ({"currency": "EUR"}, "currency"),
    ],
)
def test_seed_page_form_validation(biz: Biz, change, path):
    c = biz.customer()
    inv = biz.invoice(c["id"], [{"unit_price": 3000}])
    body = {k: v for k, v in {**_seed_body(inv["id"], 3000), **change}.items() if v is not None}
    r = biz.post("invoices/payments/", body)
    assert r.status_code == 400, r.text
    assert path in r.json()["details"], r.text
    assert biz.get("invoices/payments/").json()["count"] == 0


def test_seed_page_form_refuses_another_customers_invoice(biz: Biz):
    c, other = biz.customer(), biz.customer()
    inv = biz.invoice(c["id"], [{"unit_price": 3000}])
    r = biz.post("invoices/payments/", _seed_body(inv["id"], 100, customer_id=other["id"]))
    assert r.status_code == 400 and "customer_id" in r.json()["details"]


def test_api_form_still_requires_its_fields(biz: Biz):
    r = biz.post("invoices/payments/", {"payment_date": "2025-02-01"})
    assert r.status_code == 400
    assert {"customer_id", "total_amount_cents"} <= set(r.json()["details"])
