"""Admin endpoints: stats, tamper, delete-object, reconcile-payout."""

from __future__ import annotations

import httpx
import pytest

from .conftest import Biz, stats


def _aging_total(biz: Biz) -> int:
    return int(
        biz.get("insights/ar-aging/", params={"as_of_date": "2025-06-30"}).json()[
            "total_outstanding_cents"
        ]
    )


def test_stats_counts(biz: Biz, http: httpx.Client):
    c = biz.customer()
    biz.invoice(c["id"])
    biz.post("invoices/", {"customer_id": "nope", "line_items": [{"unit_price": 1}]})
    s = stats(http)
    assert s["objects"][biz.id]["customers"] == 1 and s["objects"][biz.id]["invoices"] == 1
    assert s["businesses"][biz.id]["external_id"] == biz.data["external_id"]
    assert s["duplicate_external_ids"] == 0 and s["unbalanced_journal_entries"] == 0
    route = "/v1/platform/businesses/{business_id}/invoices/"
    counts = {(r["method"], r["route"], r["status"]): r["count"] for r in s["requests"]}
    assert counts[("POST", route, 201)] >= 1 and counts[("POST", route, 400)] >= 1
    assert not any("/_sandbox" in r["route"] and r["status"] >= 500 for r in s["requests"])


@pytest.mark.extended_fields  # reads the sandbox's inferred fields
def test_tamper_invoice_line_moves_every_balance(biz: Biz, http: httpx.Client):
    c = biz.customer()
    inv = biz.invoice(c["id"], [{"unit_price": 1000, "tax_code": "VAT_20"}, {"unit_price": 500}])
    assert inv["total_amount"] == 1700
    r = http.post(
        "/_sandbox/tamper",
        json={
            "business_id": biz.id,
            "collection": "invoices",
            "external_id": inv["external_id"],
            "set": {"line_items[0].unit_price": 2000},
        },
    )
    assert r.status_code == 200, r.text
    got = biz.get(f"invoices/{inv['id']}/").json()
    assert got["total_amount"] == 2900 and got["outstanding_balance"] == 2900
    assert got["line_items"][0]["sales_taxes_total"] == 400
    assert biz.get(f"customers/{c['id']}/").json()["outstanding_balance"] == 2900
    assert _aging_total(biz) == 2900
    bs = biz.get("reports/balance-sheet/").json()["summary"]
    assert bs["is_balanced"] and bs["total_assets_cents"] == 2900


@pytest.mark.extended_fields  # reads the sandbox's inferred fields
def test_tamper_payment_total(biz: Biz, http: httpx.Client):
    c = biz.customer()
    inv = biz.invoice(c["id"], [{"unit_price": 1000}])
    pay = biz.pay(c["id"], [(inv["id"], 1000)])
    assert biz.get(f"invoices/{inv['id']}/").json()["outstanding_balance"] == 0
    r = http.post(
        "/_sandbox/tamper",
        json={
            "business_id": biz.id,
            "collection": "invoice_payments",
            "id": pay["id"],
            "set": {"total_amount_cents": 600},
        },
    )
    assert r.status_code == 200
    got = biz.get(f"invoices/{inv['id']}/").json()
    assert got["outstanding_balance"] == 400 and got["status"] == "PARTIALLY_PAID"
    assert biz.get(f"invoices/payments/{pay['id']}/").json()["total_amount"] == 600
    assert biz.get(f"customers/{c['id']}/").json()["outstanding_balance"] == 400
    assert _aging_total(biz) == 400


@pytest.mark.extended_fields  # reads the sandbox's inferred fields
def test_tamper_errors(biz: Biz, http: httpx.Client):
    c = biz.customer()
    inv = biz.invoice(c["id"])
    base = {"business_id": biz.id, "collection": "invoices", "id": inv["id"]}
    assert http.post("/_sandbox/tamper", json={**base, "set": {"nope[3].x": 1}}).status_code == 400
    assert http.post("/_sandbox/tamper", json={**base, "set": {"id": "x"}}).status_code == 400
    assert http.post("/_sandbox/tamper", json={**base, "set": {}}).status_code == 400
    assert (
        http.post(
            "/_sandbox/tamper", json={**base, "collection": "spaceships", "set": {"a": 1}}
        ).status_code
        == 400
    )
    assert (
        http.post(
            "/_sandbox/tamper", json={**base, "id": "missing", "set": {"tips": 1}}
        ).status_code
        == 404
    )
    assert http.post("/_sandbox/tamper", content=b"{").status_code == 400
    bad = {**base, "set": {"line_items[0].unit_price": "abc"}}
    assert http.post("/_sandbox/tamper", json=bad).status_code == 400
    assert biz.get(f"invoices/{inv['id']}/").json()["total_amount"] == inv["total_amount"]


def test_delete_object_then_recreate(biz: Biz, http: httpx.Client):
    c = biz.customer()
    body = {"external_id": "lost-inv", "customer_id": c["id"], "line_items": [{"unit_price": 800}]}
    inv = biz.ok(biz.post("invoices/", body))
    r = http.post(
        "/_sandbox/delete-object",
        json={"business_id": biz.id, "collection": "invoices", "external_id": "lost-inv"},
    )
    assert r.status_code == 200 and r.json()["journal_entries_removed"] == 1
    assert biz.get(f"invoices/{inv['id']}/").status_code == 404
    assert biz.get(f"customers/{c['id']}/").json()["outstanding_balance"] == 0
    again = biz.post("invoices/", body)
    assert again.status_code == 201 and again.json()["id"] != inv["id"]
    # a lost idempotent payment can be re-sent with the same key
    p_body = {"customer_id": c["id"], "total_amount_cents": 100, "payment_date": "2025-01-01"}
    first = biz.post("invoices/payments/", p_body, headers={"Idempotency-Key": "lost-key"})
    pid = first.json()["payment"]["id"]
    http.post(
        "/_sandbox/delete-object",
        json={"business_id": biz.id, "collection": "invoice_payments", "id": pid},
    )
    second = biz.post("invoices/payments/", p_body, headers={"Idempotency-Key": "lost-key"})
    assert second.status_code == 201 and second.json()["payment"]["id"] != pid


def test_faults_endpoint_validation(http: httpx.Client):
    r = http.post("/_sandbox/faults", json={"error_500_rate": 2})
    assert r.status_code == 400 and "error_500_rate" in r.json()["details"]
    r = http.post("/_sandbox/faults", json={"no_such_switch": 1})
    assert r.status_code == 400
    assert http.get("/_sandbox/faults").json()["faults"]["error_500_rate"] == 0
