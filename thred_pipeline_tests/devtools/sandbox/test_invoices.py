"""Invoices: amounts, tax rules, ordering, update and void."""

from __future__ import annotations

import httpx
import pytest

from .conftest import Biz, stats


@pytest.mark.extended_fields  # reads the sandbox's inferred fields
def test_invoice_amounts(biz: Biz):
    c = biz.customer()
    lines = [
        {"description": "A", "quantity": "1.5", "unit_price": 333, "tax_code": "VAT_20"},
        {
            "description": "B",
            "quantity": 3,
            "unit_price_cents": 1999,
            "discount_amount": 97,
            "sales_taxes": [{"code": "VAT_5"}],
        },
        {"description": "C", "quantity": 1, "unit_price": 1000},  # no code: no tax
    ]
    inv = biz.invoice(c["id"], lines, additional_discount=100, tips=250)
    first, second, third = inv["line_items"]
    assert (first["subtotal"], first["sales_taxes_total"], first["total_amount"]) == (500, 100, 600)
    assert first["tax_code"] == "VAT_20"
    assert (second["subtotal"], second["sales_taxes_total"]) == (5900, 295)
    assert second["tax_code"] == "VAT_5" and second["unit_price"] == 1999
    assert (third["sales_taxes_total"], third["tax_code"]) == (0, None)
    assert inv["subtotal"] == 500 + 5900 + 1000
    assert inv["sales_taxes_total"] == 395
    assert inv["total_amount"] == 500 + 100 + 5900 + 295 + 1000 - 100 + 250
    assert inv["outstanding_balance"] == inv["total_amount"] == inv["amount_due"]
    assert inv["amount_paid"] == 0 and inv["status"] == "SENT"
    assert inv["currency"] == "GBP"
    assert inv["customer_id"] == c["id"] and inv["customer_external_id"] == c["external_id"]
    assert inv["customer"]["outstanding_balance"] == inv["total_amount"]
    assert inv["sent_at"] == "2025-01-15T00:00:00Z"
    got = biz.get(f"invoices/{inv['id']}/").json()
    assert got["total_amount"] == inv["total_amount"]
    assert biz.get(f"customers/{c['id']}/").json()["outstanding_balance"] == inv["total_amount"]


@pytest.mark.extended_fields  # reads the sandbox's inferred fields
def test_invoice_replay_on_external_id(biz: Biz, http: httpx.Client):
    c = biz.customer()
    body = {
        "external_id": "inv-replay",
        "customer_id": c["id"],
        "line_items": [{"unit_price": 500}],
    }
    r1 = biz.post("invoices/", body)
    r2 = biz.post("invoices/", {**body, "line_items": [{"unit_price": 999}]})
    assert (r1.status_code, r2.status_code) == (201, 200)
    assert r2.json()["id"] == r1.json()["id"] and r2.json()["total_amount"] == 500
    assert biz.get("invoices/", params={"external_id": "inv-replay"}).json()["count"] == 1
    assert stats(http)["objects"][biz.id]["invoices"] == 1


@pytest.mark.parametrize(
    ("line", "path"),
    [
        ({"unit_price": 1000, "tax_code": "NOPE"}, "line_items[0].tax_code"),
        ({"unit_price": 1000, "tax_code": "VAT_17_5"}, "line_items[0].tax_code"),  # inactive
        (
            {"unit_price": 1000, "tax_code": "VAT_20", "sales_taxes": [{"code": "VAT_5"}]},
            "line_items[0].tax_code",
        ),
        (
            {"unit_price": 1000, "sales_taxes": [{"name": "VAT"}]},
            "line_items[0].sales_taxes[0].code",
        ),
        (
            {"unit_price": 1000, "sales_taxes": [{"code": "VAT_20", "amount": 250}]},
            "line_items[0].sales_taxes[0].amount",
        ),
        ({"unit_price": -1}, "line_items[0].unit_price"),
        ({"unit_price": 10.5}, "line_items[0].unit_price"),
        ({"unit_price": "100"}, "line_items[0].unit_price"),
        ({}, "line_items[0].unit_price"),
        ({"unit_price": 100, "unit_price_cents": 200}, "line_items[0].unit_price_cents"),
        ({"unit_price": 100, "quantity": 0}, "line_items[0].quantity"),
        ({"unit_price": 100, "quantity": "abc"}, "line_items[0].quantity"),
        ({"unit_price": 100, "quantity": True}, "line_items[0].quantity"),
        ({"unit_price": 100, "quantity": "NaN"}, "line_items[0].quantity"),
        ({"unit_price": 100, "quantity": "0.0000001"}, "line_items[0].quantity"),
        ({"unit_price": 100, "discount_amount": 101}, "line_items[0].discount_amount"),
        ({"unit_price": 100, "account_code": "9999"}, "line_items[0].account_code"),
        ({"unit_price": 100, "account_code": "1200"}, "line_items[0].account_code"),  # not revenue
        (
            {"unit_price": 100, "account_identifier": {"type": "AccountId"}},
            "line_items[0].account_identifier",
        ),
        ({"unit_price": 100, "description": "x" * 5001}, "line_items[0].description"),
        ({"unit_price": 100, "external_id": "x" * 256}, "line_items[0].external_id"),
    ],
)
def test_invoice_line_validation(biz: Biz, line, path):
    c = biz.customer()
    r = biz.post("invoices/", {"customer_id": c["id"], "line_items": [line]})
    assert r.status_code == 400, r.text
    assert r.json()["error_code"] == "validation_error"
    assert path in r.json()["details"], r.json()


@pytest.mark.extended_fields  # reads the sandbox's inferred fields
def test_explicit_tax_amount_within_one_cent(biz: Biz):
    c = biz.customer()
    # 20% of 1003 = 200.6; 200 and 201 are both within a cent
    for amount in (200, 201):
        inv = biz.invoice(
            c["id"], [{"unit_price": 1003, "sales_taxes": [{"code": "VAT_20", "amount": amount}]}]
        )
        assert inv["line_items"][0]["sales_taxes_total"] == amount
    inv = biz.invoice(
        c["id"],
        [
            {
                "unit_price": 1003,
                "tax_code": "VAT_20",
                "sales_taxes": [{"code": "vat_20", "name": "VAT"}],
            }
        ],
    )
    assert inv["line_items"][0]["sales_taxes_total"] == 201  # same code twice is no conflict


@pytest.mark.extended_fields  # reads the sandbox's inferred fields
def test_tax_exempt_customer(biz: Biz):
    c = biz.customer(tax_exempt=True)
    r = biz.post(
        "invoices/",
        {"customer_id": c["id"], "line_items": [{"unit_price": 100, "tax_code": "VAT_20"}]},
    )
    assert r.status_code == 400
    assert {"line_items[0].tax_code", "customer_id"} <= set(r.json()["details"])
    for code in ("EXEMPT", "ZERO_RATED"):
        inv = biz.invoice(c["id"], [{"unit_price": 100, "tax_code": code}])
        assert inv["total_amount"] == 100
    assert biz.invoice(c["id"], [{"unit_price": 100}])["total_amount"] == 100


@pytest.mark.extended_fields  # reads the sandbox's inferred fields
def test_invoice_ordering_and_currency(biz: Biz):
    r = biz.post(
        "invoices/",
        {"customer_id": "00000000-0000-0000-0000-000000000000", "line_items": [{"unit_price": 1}]},
    )
    assert r.status_code == 400 and "customer_id" in r.json()["details"]
    r = biz.post(
        "invoices/", {"customer_external_id": "missing", "line_items": [{"unit_price": 1}]}
    )
    assert r.status_code == 400 and "customer_external_id" in r.json()["details"]
    r = biz.post("invoices/", {"line_items": [{"unit_price": 1}]})
    assert r.status_code == 400 and "customer_id" in r.json()["details"]
    c = biz.customer()
    r = biz.post(
        "invoices/", {"customer_id": c["id"], "currency": "EUR", "line_items": [{"unit_price": 1}]}
    )
    assert r.status_code == 400 and "currency" in r.json()["details"]
    inv = biz.invoice(c["id"], currency="GBP")
    assert inv["currency"] == "GBP"
    by_ext = biz.ok(
        biz.post(
            "invoices/",
            {"customer_external_id": c["external_id"], "line_items": [{"unit_price": 7}]},
        )
    )
    assert by_ext["customer_id"] == c["id"]
    r = biz.post("invoices/", {"customer_id": c["id"], "line_items": []})
    assert r.status_code == 400 and "line_items" in r.json()["details"]
    r = biz.post(
        "invoices/",
        {"customer_id": c["id"], "line_items": [{"unit_price": 1}], "due_at": "2025-13-01"},
    )
    assert r.status_code == 400 and "due_at" in r.json()["details"]
    r = biz.post(
        "invoices/",
        {"customer_id": c["id"], "line_items": [{"unit_price": 100}], "additional_discount": 101},
    )
    assert r.status_code == 400 and "additional_discount" in r.json()["details"]


@pytest.mark.extended_fields  # reads the sandbox's inferred fields
def test_account_aliases(biz: Biz):
    c = biz.customer()
    accounts = biz.get(
        "general-ledger/chart-of-accounts/", params={"account_type": "revenue"}
    ).json()["results"]
    service = next(a for a in accounts if a["code"] == "4200")
    inv = biz.invoice(
        c["id"],
        [
            {"unit_price": 100, "account_code": "4200"},
            {"unit_price": 200, "account_identifier": {"type": "AccountId", "id": service["id"]}},
            {"unit_price": 300, "account_identifier": "4000"},
        ],
    )
    assert [ln["account_code"] for ln in inv["line_items"]] == ["4200", "4200", "4000"]
    assert inv["line_items"][0]["account_identifier"]["id"] == service["id"]
    balance = biz.get("general-ledger/chart-of-accounts/", params={"search": "4200"}).json()[
        "results"
    ][0]
    assert balance["current_balance"] == 300


def test_date_and_datetime_forms(biz: Biz):
    c = biz.customer()
    inv = biz.invoice(c["id"], sent_at="2025-03-01T10:30:00+01:00", due_at="2025-03-31")
    assert inv["sent_at"] == "2025-03-01T09:30:00Z" and inv["due_at"] == "2025-03-31T00:00:00Z"


@pytest.mark.extended_fields  # reads the sandbox's inferred fields
def test_update_replaces_lines(biz: Biz):
    c = biz.customer()
    inv = biz.invoice(c["id"], [{"unit_price": 1000}, {"unit_price": 2000}])
    r = biz.put(
        f"invoices/{inv['id']}/",
        {"line_items": [{"unit_price": 500, "tax_code": "VAT_20"}], "memo": "v2"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["line_items"]) == 1 and body["total_amount"] == 600 and body["memo"] == "v2"
    assert body["outstanding_balance"] == 600
    assert biz.get(f"customers/{c['id']}/").json()["outstanding_balance"] == 600
    # other fields stay as they were
    assert body["invoice_number"] == inv["invoice_number"]


@pytest.mark.extended_fields  # reads the sandbox's inferred fields
def test_update_below_paid_is_refused(biz: Biz):
    c = biz.customer()
    inv = biz.invoice(c["id"], [{"unit_price": 1000}])
    biz.pay(c["id"], [(inv["id"], 800)])
    r = biz.put(f"invoices/{inv['id']}/", {"line_items": [{"unit_price": 700}]})
    assert r.status_code == 400 and "line_items" in r.json()["details"]
    r = biz.put(f"invoices/{inv['id']}/", {"line_items": [{"unit_price": 800}]})
    assert (
        r.status_code == 200
        and r.json()["status"] == "PAID"
        and r.json()["outstanding_balance"] == 0
    )
    other = biz.customer()
    r = biz.put(f"invoices/{inv['id']}/", {"customer_id": other["id"]})
    assert r.status_code == 409


def test_update_external_id_collision(biz: Biz):
    c = biz.customer()
    a = biz.invoice(c["id"])
    b = biz.invoice(c["id"])
    r = biz.put(f"invoices/{b['id']}/", {"external_id": a["external_id"]})
    assert r.status_code == 409 and r.json()["error_code"] == "duplicate_external_id"
    assert (
        biz.put("invoices/00000000-0000-0000-0000-000000000000/", {"memo": "x"}).status_code == 404
    )


@pytest.mark.extended_fields  # reads the sandbox's inferred fields
def test_void(biz: Biz):
    c = biz.customer()
    inv = biz.invoice(c["id"], [{"unit_price": 1000, "tax_code": "VAT_20"}])
    r = biz.post(f"invoices/{inv['id']}/void/", {"memo": "ignored"})
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "VOIDED" and body["voided_at"] and body["outstanding_balance"] == 0
    assert biz.get(f"customers/{c['id']}/").json()["outstanding_balance"] == 0
    assert biz.post(f"invoices/{inv['id']}/void/").status_code == 200  # retry-safe
    assert biz.put(f"invoices/{inv['id']}/", {"memo": "x"}).status_code == 409
    vat = biz.get("general-ledger/chart-of-accounts/", params={"search": "VAT Payable"}).json()[
        "results"
    ][0]
    assert vat["current_balance"] == 0
    # paying a voided invoice is refused
    r = biz.post(
        "invoices/payments/",
        {
            "customer_id": c["id"],
            "total_amount_cents": 100,
            "payment_date": "2025-01-01",
            "allocations": [{"invoice_id": inv["id"], "amount_cents": 100}],
        },
    )
    assert r.status_code == 400 and "allocations[0].invoice_id" in r.json()["details"]


def test_void_with_payments_is_conflict(biz: Biz):
    c = biz.customer()
    inv = biz.invoice(c["id"])
    biz.pay(c["id"], [(inv["id"], 100)])
    r = biz.post(f"invoices/{inv['id']}/void/")
    assert r.status_code == 409


def test_list_invoice_filters(biz: Biz):
    c1, c2 = biz.customer(), biz.customer()
    i1 = biz.invoice(c1["id"])
    biz.invoice(c2["id"])
    paid = biz.invoice(c2["id"], [{"unit_price": 50}])
    biz.pay(c2["id"], [(paid["id"], 50)])
    assert [
        i["id"] for i in biz.get("invoices/", params={"customer_id": c1["id"]}).json()["results"]
    ] == [i1["id"]]
    assert (
        biz.get("invoices/", params={"customer_id": f"{c1['id']},{c2['id']}"}).json()["count"] == 3
    )
    assert (
        biz.get("invoices/", params={"customer_external_id": c2["external_id"]}).json()["count"]
        == 2
    )
    assert biz.get("invoices/", params={"customer_external_id": "nobody"}).json()["count"] == 0
    assert [i["id"] for i in biz.get("invoices/", params={"status": "paid"}).json()["results"]] == [
        paid["id"]
    ]
    assert biz.get("invoices/", params={"status": "SENT"}).json()["count"] == 2
    assert (
        biz.get("invoices/", params={"external_id": i1["external_id"]}).json()["results"][0]["id"]
        == i1["id"]
    )
    assert biz.get("invoices/", params={"max_amount": 50}).json()["count"] == 1


def test_idempotency_key_on_creates(biz: Biz, http: httpx.Client):
    """Idempotency-Key is honoured on every create, not only on payments."""
    c = biz.customer()
    body = {"customer_id": c["id"], "line_items": [{"unit_price": 123}]}  # no external_id
    r1 = biz.post("invoices/", body, headers={"Idempotency-Key": "inv-key"})
    r2 = biz.post("invoices/", body, headers={"Idempotency-Key": "inv-key"})
    assert (r1.status_code, r2.status_code) == (201, 200)
    assert r2.json()["id"] == r1.json()["id"]
    assert biz.get("invoices/").json()["count"] == 1
    partner = {"Authorization": f"Bearer {biz.partner}"}
    b = {"legal_name": "No Ext Ltd", "email": "a@b.co", "country": "GB", "entity_type": "plc"}
    r1 = http.post(
        "/v1/platform/businesses/", json=b, headers={**partner, "Idempotency-Key": "biz-key"}
    )
    r2 = http.post(
        "/v1/platform/businesses/", json=b, headers={**partner, "Idempotency-Key": "biz-key"}
    )
    assert (r1.status_code, r2.status_code) == (201, 200)
    assert r2.json()["id"] == r1.json()["id"] and r2.json()["_meta"]["created"] is False
