"""Vendors, bills, bill payments, vendor credits, AP aging."""

from __future__ import annotations

import httpx
import pytest

from .conftest import Biz, stats


def _account_balance(biz: Biz, code: str) -> int:
    results = biz.get("general-ledger/chart-of-accounts/", params={"search": code}).json()[
        "results"
    ]
    return int(next(a for a in results if a["code"] == code)["current_balance"])


@pytest.mark.extended_fields  # reads the sandbox's inferred fields
def test_vendor_lifecycle(biz: Biz):
    r = biz.post(
        "vendors/", {"external_id": "v-1", "company_name": "Paper Co", "email": "ap@paper.example"}
    )
    assert r.status_code == 201
    v = r.json()
    assert v["status"] == "ACTIVE" and v["type"] == "VendorData" and v["display_name"] == "Paper Co"
    assert biz.post("vendors/", {"external_id": "v-1", "company_name": "Other"}).status_code == 200
    assert biz.get(f"vendors/{v['id']}/").json()["id"] == v["id"]
    a = biz.post(f"vendors/{v['id']}/archive/")
    assert a.status_code == 200 and a.json()["status"] == "ARCHIVED"
    assert biz.get("vendors/").json()["count"] == 0
    assert biz.get("vendors/", params={"include_archived": "true"}).json()["count"] == 1
    u = biz.post(f"vendors/{v['id']}/unarchive/")
    assert u.status_code == 200 and u.json()["status"] == "ACTIVE"
    assert biz.get("vendors/", params={"name_contains": "paper"}).json()["count"] == 1
    assert biz.get("vendors/", params={"external_id_contains": "v-"}).json()["count"] == 1
    assert biz.post("vendors/", {"email": "x@y.zz"}).status_code == 400
    assert biz.get("vendors/nope/").json()["error_code"] == "vendor_not_found"


@pytest.mark.extended_fields  # reads the sandbox's inferred fields
def test_bill_amounts_update_and_ledger(biz: Biz):
    v = biz.vendor()
    bill = biz.bill(
        v["id"],
        [
            {"unit_price": 1000, "quantity": 2, "tax_code": "VAT_20"},
            {"unit_price_cents": 500, "account_code": "6200"},
        ],
    )
    assert (
        bill["subtotal"] == 2500
        and bill["sales_taxes_total"] == 400
        and bill["total_amount"] == 2900
    )
    assert bill["outstanding_balance"] == 2900 and bill["status"] == "RECEIVED"
    assert bill["vendor_id"] == v["id"] and bill["vendor_external_id"] == v["external_id"]
    assert bill["bill_date"] == "2025-01-10"
    assert _account_balance(biz, "2100") == 2900 and _account_balance(biz, "1300") == 400
    assert _account_balance(biz, "6200") == 500
    assert biz.get(f"vendors/{v['id']}/").json()["outstanding_balance"] == 2900
    r = biz.put(f"bills/{bill['id']}/", {"line_items": [{"unit_price": 700}], "memo": "fixed"})
    assert r.status_code == 200 and r.json()["total_amount"] == 700 and r.json()["memo"] == "fixed"
    assert len(r.json()["line_items"]) == 1
    assert _account_balance(biz, "2100") == 700 and _account_balance(biz, "6200") == 0
    assert (
        biz.post(
            "bills/",
            {
                **{"vendor_id": v["id"], "line_items": [{"unit_price": 1}]},
                "external_id": bill["external_id"],
            },
        ).status_code
        == 200
    )


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"vendor_id": "00000000-0000-0000-0000-000000000000"}, "vendor_id"),
        ({"vendor_external_id": "nobody"}, "vendor_external_id"),
        ({}, "vendor_id"),
        ({"currency": "EUR"}, "currency"),
        ({"line_items": []}, "line_items"),
        ({"line_items": [{"unit_price": 1, "account_code": "4000"}]}, "line_items[0].account_code"),
        ({"line_items": [{"unit_price": 1, "tax_code": "XX"}]}, "line_items[0].tax_code"),
        ({"bill_date": "2025-02-31"}, "bill_date"),
    ],
)
def test_bill_validation(biz: Biz, body, path):
    v = biz.vendor()
    full = {"vendor_id": v["id"], "line_items": [{"unit_price": 100}], **body}
    if path in ("vendor_id", "vendor_external_id") and "vendor_id" not in body:
        full.pop("vendor_id")
    r = biz.post("bills/", full)
    assert r.status_code == 400 and path in r.json()["details"], r.text


@pytest.mark.extended_fields  # reads the sandbox's inferred fields
def test_bill_payments(biz: Biz, http: httpx.Client):
    v, other = biz.vendor(), biz.vendor()
    b1 = biz.bill(v["id"], [{"unit_price": 3000}])
    b2 = biz.bill(v["id"], [{"unit_price": 2000}])
    foreign = biz.bill(other["id"], [{"unit_price": 100}])
    body = {
        "vendor_id": v["id"],
        "amount_cents": 4500,
        "payment_method": "bank_transfer",
        "payment_date": "2025-02-01",
        "allocations": [
            {"bill_id": b1["id"], "amount_cents": 3000},
            {"bill_id": b2["id"], "amount_cents": 1000},
        ],
    }
    r1 = biz.post("bills/payments/", body, headers={"Idempotency-Key": "bp-1"})
    assert r1.status_code == 201, r1.text
    p = r1.json()
    assert (p["allocated_amount_cents"], p["unallocated_amount_cents"]) == (4000, 500)
    assert p["status"] == "completed" and p["vendor_name"] == v["display_name"]
    r2 = biz.post("bills/payments/", body, headers={"Idempotency-Key": "bp-1"})
    assert r2.status_code == 200 and r2.json() == p
    assert biz.get("bills/payments/").json()["count"] == 1
    assert biz.get(f"bills/{b1['id']}/").json()["status"] == "PAID"
    got = biz.get(f"bills/{b2['id']}/").json()
    assert (got["status"], got["outstanding_balance"], got["amount_paid"]) == (
        "PARTIALLY_PAID",
        1000,
        1000,
    )
    assert biz.get(f"bills/payments/{p['id']}/").json()["allocations"][0]["bill_status"] == "PAID"
    assert biz.get("bills/payments/", params={"bill_id": b2["id"]}).json()["count"] == 1
    assert _account_balance(biz, "1400") == 500  # unallocated vendor payment
    cases = [
        ({"payment_method": "check"}, "check_number"),
        ({"payment_method": "bitcoin"}, "payment_method"),
        ({"amount_cents": 0}, "amount_cents"),
        ({"currency": "EUR"}, "currency"),
        ({"check_number": "1" * 51, "payment_method": "check"}, "check_number"),
        (
            {"allocations": [{"bill_id": foreign["id"], "amount_cents": 1}]},
            "allocations[0].bill_id",
        ),
        (
            {"allocations": [{"bill_id": b2["id"], "amount_cents": 1001}]},
            "allocations[0].amount_cents",
        ),
        (
            {"amount_cents": 10, "allocations": [{"bill_id": b2["id"], "amount_cents": 11}]},
            "allocations",
        ),
        ({"vendor_id": "00000000-0000-0000-0000-000000000000"}, "vendor_id"),
    ]
    for change, path in cases:
        r = biz.post("bills/payments/", {**body, **change})
        assert r.status_code == 400 and path in r.json()["details"], (change, r.text)
    ok = biz.post(
        "bills/payments/",
        {
            **body,
            "payment_method": "check",
            "check_number": "000123",
            "amount_cents": 100,
            "allocations": [],
            "external_id": "bp-ext",
        },
    )
    assert ok.status_code == 201
    assert biz.post("bills/payments/", {**body, "external_id": "bp-ext"}).status_code == 200
    r = biz.put(f"bills/{b1['id']}/", {"line_items": [{"unit_price": 2999}]})
    assert r.status_code == 400  # below what is already paid
    assert stats(http)["duplicate_external_ids"] == 0


@pytest.mark.extended_fields  # reads the sandbox's inferred fields
def test_vendor_credits(biz: Biz):
    v = biz.vendor()
    bill = biz.bill(v["id"], [{"unit_price": 5000}])
    r = biz.post(
        "vendor-credits/",
        {
            "external_id": "vc-1",
            "vendor_id": v["id"],
            "received_at": "2025-02-10",
            "line_items": [
                {"amount": 1500, "description": "Returned goods", "account_code": "6000"},
                {
                    "amount": 500,
                    "expense_account_identifier": {"type": "AccountId", "code": "6300"},
                },
            ],
            "allocations": [{"bill_id": bill["id"], "amount_cents": 1200}],
        },
    )
    assert r.status_code == 201, r.text
    vc = r.json()
    assert (vc["total_amount"], vc["applied_amount"], vc["unapplied_amount"]) == (2000, 1200, 800)
    assert vc["status"] == "partially_applied" and vc["vendor"]["external_id"] == v["external_id"]
    assert vc["allocations"][0]["bill_outstanding_balance_cents"] == 3800
    assert vc["line_items"][1]["expense_account_identifier"]["code"] == "6300"
    assert biz.get(f"bills/{bill['id']}/").json()["outstanding_balance"] == 3800
    assert (
        biz.post(
            "vendor-credits/",
            {"external_id": "vc-1", "vendor_id": v["id"], "line_items": [{"amount": 1}]},
        ).status_code
        == 200
    )
    assert _account_balance(biz, "1410") == 800
    assert _account_balance(biz, "6000") == 5000 - 1500  # the bill, less the credit
    # auto-create the vendor from vendor_external_id
    r = biz.post(
        "vendor-credits/",
        {
            "vendor_external_id": "new-vendor",
            "vendor_name": "Fresh Ltd",
            "line_items": [{"amount": 100}],
        },
    )
    assert r.status_code == 201 and r.json()["vendor"]["display_name"] == "Fresh Ltd"
    assert biz.get("vendors/", params={"external_id": "new-vendor"}).json()["count"] == 1
    for body, path in [
        ({"vendor_id": v["id"], "line_items": [{"amount": 0}]}, "line_items[0].amount"),
        ({"vendor_id": v["id"], "line_items": []}, "line_items"),
        ({"line_items": [{"amount": 1}]}, "vendor_id"),
        (
            {
                "vendor_id": v["id"],
                "line_items": [{"amount": 10}],
                "allocations": [{"bill_id": bill["id"], "amount_cents": 11}],
            },
            "allocations",
        ),
        (
            {
                "vendor_id": v["id"],
                "line_items": [{"amount": 9999}],
                "allocations": [{"bill_id": bill["id"], "amount_cents": 3801}],
            },
            "allocations[0].amount_cents",
        ),
    ]:
        r = biz.post("vendor-credits/", body)
        assert r.status_code == 400 and path in r.json()["details"], (body, r.text)
    assert biz.get("vendor-credits/", params={"vendor": v["id"]}).json()["count"] == 1
    assert biz.get(f"vendor-credits/{vc['id']}/").json()["id"] == vc["id"]


@pytest.mark.extended_fields  # reads the sandbox's inferred fields
def test_ap_aging(biz: Biz):
    v1, v2 = biz.vendor(), biz.vendor()
    biz.bill(v1["id"], [{"unit_price": 100}], due_at="2025-07-10")
    biz.bill(v1["id"], [{"unit_price": 200}], due_at="2025-06-01")
    paid = biz.bill(v2["id"], [{"unit_price": 400}], due_at="2025-01-01")
    biz.bill(v2["id"], [{"unit_price": 800}], due_at="2025-03-01")
    biz.ok(
        biz.post(
            "bills/payments/",
            {
                "vendor_id": v2["id"],
                "amount_cents": 400,
                "payment_method": "ach",
                "payment_date": "2025-02-01",
                "allocations": [{"bill_id": paid["id"], "amount_cents": 400}],
            },
        )
    )
    aging = biz.get("insights/ap-aging/", params={"as_of_date": "2025-06-30"}).json()
    assert aging["total_outstanding_cents"] == 1100
    assert aging["total_aging_buckets"] == {
        "current": 100,
        "days_1_30": 200,
        "days_31_60": 0,
        "days_61_90": 0,
        "over_90_days": 800,
    }
    per_vendor = {x["vendor_id"]: x for x in aging["vendors"]}
    assert per_vendor[v1["id"]]["total_outstanding_cents"] == 300
    assert per_vendor[v2["id"]]["vendor_external_id"] == v2["external_id"]
    for v in (v1, v2):
        assert (
            biz.get(f"vendors/{v['id']}/").json()["outstanding_balance"]
            == per_vendor[v["id"]]["total_outstanding_cents"]
        )
    assert _account_balance(biz, "2100") == 1100
    assert biz.get("bills/", params={"status": "paid"}).json()["count"] == 1
    assert biz.get("bills/", params={"vendor_id": v1["id"]}).json()["count"] == 2
