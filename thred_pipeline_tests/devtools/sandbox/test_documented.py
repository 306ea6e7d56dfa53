"""Strict mode answers exactly the documented fields; extended mode keeps the inferred ones.

The expected key sets come from the contract text (``contract.QUOTES``, parsed by
``contract.fields_of``), never from the sandbox's own lists in ``documented.py``. One
scenario touches every response object (create, detail, list, update, lifecycle calls) with
nested lists filled, on the strict server and on the extended one.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import httpx
import pytest
from thred_devtools.sandbox import SandboxConfig, start_sandbox

from .conftest import PARTNER, Api, Biz
from .contract import QUOTES, contract_path, differences, expected, normalise

Seen = dict[str, list[dict[str, Any]]]

LIST_KEYS = {"count", "page_info", "results", "next", "previous"}  # decisions at the top


def _ok(r: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert r.status_code == status, (r.request.method, r.request.url, r.text)
    body: dict[str, Any] = r.json()
    return body


def _collect(seen: Seen, name: str, r: httpx.Response, status: int = 200) -> dict[str, Any]:
    body = _ok(r, status)
    seen[name].append(body)
    return body


def _collect_page(seen: Seen, name: str, r: httpx.Response) -> list[dict[str, Any]]:
    page = _ok(r)
    assert set(page) == LIST_KEYS, sorted(page)
    assert page["results"], f"empty {name} page: nothing to check"
    seen[name].extend(page["results"])
    return list(page["results"])


def exercise(api: Api) -> Seen:
    """Every response object, as the server answers it; name -> bodies."""
    http = api.http
    seen: Seen = defaultdict(list)
    token = http.post(
        "/v1/platform/oauth2/token/", auth=PARTNER, data={"grant_type": "client_credentials"}
    )
    _collect(seen, "partner_token", token)
    created = api.create_business()
    _collect(seen, "business_create", created, 201)
    again = api.create_business(external_id=created.json()["external_id"])
    _collect(seen, "business_create", again, 200)
    biz = Biz(http, api.partner, created.json())
    business_token = http.post(f"/v1/platform/{biz.id}/oauth2/token/", headers=api.partner_headers)
    _collect(seen, "business_token", business_token)
    _collect(seen, "business", http.get(biz.base, headers=api.partner_headers))
    _collect(seen, "business", biz.patch("", {"phone_number": "+441234567890"}))
    _collect_page(
        seen,
        "business",
        http.get(
            "/v1/platform/businesses/",
            params={"external_id": biz.data["external_id"]},
            headers=api.partner_headers,
        ),
    )
    _collect(seen, "tax_codes", biz.get("tax-codes/"))

    # customers and AR
    c = _collect(
        seen, "customer", biz.post("customers/", {"external_id": "c1", "company_name": "A"}), 201
    )
    _collect(seen, "customer", biz.post("customers/", {"external_id": "c1", "company_name": "A"}))
    _collect(seen, "customer", biz.get(f"customers/{c['id']}/"))
    _collect_page(seen, "customer", biz.get("customers/"))
    lines = [
        {"description": "Widget", "quantity": 2, "unit_price": 5000, "tax_code": "VAT_20"},
        {"description": "Service", "quantity": 1, "unit_price": 2500},
    ]
    body = {
        "external_id": "i1",
        "customer_id": c["id"],
        "invoice_number": "INV-1",
        "sent_at": "2025-01-15",
        "due_at": "2025-02-14",
        "line_items": lines,
    }
    inv = _collect(seen, "invoice", biz.post("invoices/", body), 201)
    _collect(seen, "invoice", biz.post("invoices/", body))
    _collect(seen, "invoice", biz.put(f"invoices/{inv['id']}/", {"memo": "updated"}))
    spare = {**body, "external_id": "i2", "invoice_number": "INV-2"}
    spare_inv = _collect(seen, "invoice", biz.post("invoices/", spare), 201)
    _collect(seen, "invoice", biz.post(f"invoices/{spare_inv['id']}/void/"))
    pay_body = {
        "external_id": "p1",
        "customer_id": c["id"],
        "total_amount_cents": 9000,
        "payment_date": "2025-01-20",
        "payment_method": "credit_card",
        "payment_processor": "stripe",
        "allocations": [{"invoice_id": inv["id"], "amount_cents": 9000}],
    }
    key = {"Idempotency-Key": "doc-pay-1"}
    pay = _collect(
        seen, "payment_create", biz.post("invoices/payments/", pay_body, headers=key), 201
    )
    _collect(seen, "payment_create", biz.post("invoices/payments/", pay_body, headers=key))
    _collect(seen, "payment_create", biz.post("invoices/payments/", pay_body))
    seed_body = {
        "external_id": "p2",
        "invoice_id": inv["id"],
        "amount_cents": 500,
        "payment_date": "2025-01-21",
        "payment_method": "bank_transfer",
    }
    seed = _collect(seen, "payment_create", biz.post("invoices/payments/", seed_body), 201)
    pay_id = pay["payment"]["id"]
    _collect(seen, "payment", biz.get(f"invoices/payments/{pay_id}/"))
    _collect_page(seen, "payment", biz.get("invoices/payments/"))
    # only pending/failed payments can be deleted ([doc]); make one pending to see the shape
    tamper = {
        "business_id": biz.id,
        "collection": "invoice_payments",
        "id": seed["payment"]["id"],
        "set": {"status": "pending"},
    }
    _ok(http.post("/_sandbox/tamper", json=tamper))
    _collect(seen, "payment_delete", biz.post(f"invoices/payments/{seed['payment']['id']}/delete/"))
    refund_body = {"invoice_id": inv["id"], "amount_cents": 2000, "external_id": "r1"}
    ref = _collect(seen, "refund", biz.post("invoices/refunds/", refund_body), 201)
    _collect(seen, "refund", biz.post("invoices/refunds/", refund_body))
    rp_url = f"invoices/refunds/{ref['id']}/payments/"
    rp_body = {"amount_cents": 1500, "external_id": "rp1", "processor": "STRIPE"}
    rp = _collect(seen, "refund_payment", biz.post(rp_url, rp_body), 201)
    _collect(seen, "refund_payment", biz.post(rp_url, rp_body))
    _collect_page(seen, "refund_payment", biz.get(rp_url))
    _collect(seen, "refund", biz.get(f"invoices/refunds/{ref['id']}/"))
    _collect_page(seen, "refund", biz.get("invoices/refunds/"))
    payout_body = {
        "external_id": "po1",
        "processor": "stripe",
        "paid_out_amount_cents": 7000,
        "fee_cents": 500,
        "status": "paid",
        "completed_at": "2025-02-03T00:00:00Z",
        "payment_ids": [pay_id],
        "refund_payment_ids": [rp["id"]],
    }
    po = _collect(seen, "payout", biz.post("payouts/", payout_body), 201)
    _collect(seen, "payout", biz.post("payouts/", {**payout_body, "memo": "upsert"}))
    _collect(seen, "payout", biz.get(f"payouts/{po['id']}/"))
    _collect_page(seen, "payout", biz.get("payouts/"))
    _collect_page(seen, "invoice", biz.get("invoices/"))
    _collect(seen, "invoice", biz.get(f"invoices/{inv['id']}/"))
    _collect(seen, "ar_aging", biz.get("insights/ar-aging/", params={"as_of_date": "2025-06-01"}))

    # vendors and AP
    v = _collect(
        seen, "vendor", biz.post("vendors/", {"external_id": "v1", "company_name": "V"}), 201
    )
    _collect(seen, "vendor", biz.post("vendors/", {"external_id": "v1", "company_name": "V"}))
    _collect(seen, "vendor", biz.get(f"vendors/{v['id']}/"))
    _collect(seen, "vendor", biz.post(f"vendors/{v['id']}/unarchive/"))
    _collect_page(seen, "vendor", biz.get("vendors/"))
    bill_body = {
        "external_id": "b1",
        "vendor_id": v["id"],
        "bill_number": "BILL-1",
        "bill_date": "2025-01-10",
        "due_at": "2025-02-09",
        "line_items": [
            {"description": "Paper", "quantity": 1, "unit_price": 5000, "tax_code": "VAT_20"}
        ],
    }
    bill = _collect(seen, "bill", biz.post("bills/", bill_body), 201)
    _collect(seen, "bill", biz.post("bills/", bill_body))
    _collect(seen, "bill", biz.put(f"bills/{bill['id']}/", {"memo": "checked"}))
    bp_body = {
        "external_id": "bp1",
        "vendor_id": v["id"],
        "amount_cents": 4000,
        "payment_method": "bank_transfer",
        "payment_date": "2025-02-01",
        "allocations": [{"bill_id": bill["id"], "amount_cents": 4000}],
    }
    bp = _collect(seen, "bill_payment", biz.post("bills/payments/", bp_body), 201)
    _collect(seen, "bill_payment", biz.post("bills/payments/", bp_body))
    _collect(seen, "bill_payment", biz.get(f"bills/payments/{bp['id']}/"))
    _collect_page(seen, "bill_payment", biz.get("bills/payments/"))
    vc_body = {
        "external_id": "vc1",
        "vendor_id": v["id"],
        "received_at": "2025-02-10",
        "line_items": [{"amount": 1000, "description": "Returned", "account_code": "6000"}],
        "allocations": [{"bill_id": bill["id"], "amount_cents": 1000}],
    }
    vc = _collect(seen, "vendor_credit", biz.post("vendor-credits/", vc_body), 201)
    _collect(seen, "vendor_credit", biz.post("vendor-credits/", vc_body))
    _collect(seen, "vendor_credit", biz.get(f"vendor-credits/{vc['id']}/"))
    _collect_page(seen, "vendor_credit", biz.get("vendor-credits/"))
    _collect(seen, "bill", biz.get(f"bills/{bill['id']}/"))
    _collect_page(seen, "bill", biz.get("bills/"))
    _collect(seen, "ap_aging", biz.get("insights/ap-aging/", params={"as_of_date": "2025-06-01"}))
    account = {"code": "4300", "name": "Consulting", "account_type": "revenue", "external_id": "a1"}
    _collect(seen, "account", biz.post("general-ledger/chart-of-accounts/", account), 201)
    _collect(seen, "account", biz.post("general-ledger/chart-of-accounts/", account))
    _collect_page(seen, "account", biz.get("general-ledger/chart-of-accounts/"))
    _collect(seen, "customer", biz.post(f"customers/{c['id']}/archive/"))
    return seen


@pytest.fixture(scope="module")
def strict_seen(strict_api: Api) -> Seen:
    return exercise(strict_api)


@pytest.fixture(scope="module")
def extended_seen(extended_api: Api) -> Seen:
    return exercise(extended_api)


def _expected_tree(name: str) -> dict[str, Any]:
    """The contract's tree for one response object, with the readings docs/thred-contract.md
    states for the parts the contract does not spell out."""
    customer = expected("customer")
    vendor = expected("vendor")
    refund_payment = expected("refund_payment")
    if name == "business_create":
        return {**expected("business"), "_meta": None}  # "(+ `_meta`)": inner keys not shown
    if name == "invoice":
        # customer{full customer object ...}; lines: only the 4.3 tax_code ("stores/returns
        # the code on the line"), the rest of the invoice response is truncated.
        return {**expected("invoice"), "customer": customer, "line_items": {"tax_code": None}}
    if name == "refund":
        return {**expected("refund"), "refund_payments": refund_payment}  # [...]: 2.8
    if name == "bill":
        # vendor{...} is the vendor of 2.4; external_id: the create page's idempotency key
        # (the response is marked truncated).
        return {**expected("bill"), **expected("bill_create_idempotency"), "vendor": vendor}
    if name in ("ar_aging", "ap_aging"):
        top = expected("ar_aging")
        buckets = top["total_aging_buckets"]
        ar_row = {**expected("ar_aging_row"), "aging_buckets": buckets}
        if name == "ar_aging":
            return {**top, "customers": ar_row}
        ap_row = {**expected("ap_aging_row")["vendors"], "aging_buckets": buckets}
        del top["customers"]
        return {**top, "vendors": ap_row}  # "→ same with vendors[...]"
    return expected(name)


OBJECTS = [
    "partner_token",
    "business_token",
    "business_create",
    "business",
    "tax_codes",
    "customer",
    "vendor",
    "invoice",
    "payment_create",
    "payment",
    "payment_delete",
    "refund",
    "refund_payment",
    "payout",
    "bill",
    "bill_payment",
    "vendor_credit",
    "ar_aging",
    "ap_aging",
    "account",
]


def test_every_quote_is_in_the_contract() -> None:
    path = contract_path()
    assert path is not None, "docs/thred-api.md is part of the repository"
    text = normalise(path.read_text(encoding="utf-8"))
    missing = [name for name, (_, quote) in QUOTES.items() if normalise(quote) not in text]
    assert missing == []


@pytest.mark.parametrize("name", OBJECTS)
def test_strict_mode_answers_exactly_the_documented_fields(strict_seen: Seen, name: str) -> None:
    tree = _expected_tree(name)
    bodies = strict_seen[name]
    assert bodies, f"the scenario produced no {name}"
    problems = [p for body in bodies for p in differences(body, tree)]
    assert problems == []


def _nested_paths(tree: dict[str, Any], prefix: str = "") -> set[str]:
    out = set()
    for key, inner in tree.items():
        if isinstance(inner, dict):
            out.add(prefix + key)
            out |= _nested_paths(inner, prefix + key + ".")
    return out


def _filled_paths(body: Any, prefix: str = "") -> set[str]:
    out: set[str] = set()
    items = body if isinstance(body, list) else [body]
    for item in items:
        if not isinstance(item, dict):
            continue
        for key, value in item.items():
            if isinstance(value, dict) or (isinstance(value, list) and value):
                out.add(prefix + key)
                out |= _filled_paths(value, prefix + key + ".")
    return out


# Nested lists the sandbox never fills (no refund allocations on payments, no documents).
NEVER_FILLED = {
    "payment": {"refund_allocations"},
    "customer": {"documents"},
    "invoice": {"customer.documents"},
}


@pytest.mark.parametrize("name", OBJECTS)
def test_the_scenario_fills_every_nested_part(strict_seen: Seen, name: str) -> None:
    """So the nested comparisons above are not vacuous."""
    wanted = _nested_paths(_expected_tree(name)) - NEVER_FILLED.get(name, set())
    filled: set[str] = set()
    for body in strict_seen[name]:
        filled |= _filled_paths(body)
    assert wanted - filled == set()


@pytest.mark.parametrize("name", OBJECTS)
def test_extended_mode_is_a_superset(strict_seen: Seen, extended_seen: Seen, name: str) -> None:
    for strict, extended in zip(strict_seen[name], extended_seen[name], strict=True):
        assert set(strict) <= set(extended)


def test_extended_mode_keeps_the_inferred_fields(extended_seen: Seen) -> None:
    invoice = extended_seen["invoice"][0]
    assert {"customer_id", "customer_external_id", "total_amount", "subtotal"} <= set(invoice)
    assert {"outstanding_balance", "amount_due", "amount_paid"} <= set(invoice)
    assert {"subtotal", "total_amount", "unit_price"} <= set(invoice["line_items"][0])
    assert "outstanding_balance" in extended_seen["vendor"][0]
    assert "customer_external_id" in extended_seen["ar_aging"][0]["customers"][0]
    assert "vendor_external_id" in extended_seen["ap_aging"][0]["vendors"][0]
    assert {"external_id", "payment_date", "status"} <= set(extended_seen["payment"][0])
    assert "unallocated_amount_cents" in extended_seen["payment_create"][0]["payment"]
    assert "outstanding_balance" in extended_seen["bill"][0]
    assert {"status", "external_id"} <= set(extended_seen["refund"][0])
    assert "scope" in extended_seen["partner_token"][0]


def test_strict_mode_leaves_out_what_the_issue_names(strict_seen: Seen) -> None:
    """The fields the pipeline used to read although Thred does not document them."""
    assert "outstanding_balance" not in strict_seen["vendor"][0]
    ar_row = strict_seen["ar_aging"][0]["customers"][0]
    ap_row = strict_seen["ap_aging"][0]["vendors"][0]
    assert "customer_external_id" not in ar_row and "vendor_external_id" not in ap_row
    invoice = strict_seen["invoice"][0]
    assert not {"total_amount", "outstanding_balance", "amount_due"} & set(invoice)
    assert "outstanding_balance" in invoice["customer"]  # documented on the customer


def test_strict_values_equal_the_extended_ones() -> None:
    """Strict mode only drops fields: a documented value is the same in both modes."""
    with start_sandbox(SandboxConfig()) as running, httpx.Client(base_url=running.url) as http:
        biz = Api(http).new_business()
        c = biz.customer()
        inv = biz.invoice(c["id"], [{"unit_price": 1000, "tax_code": "VAT_20"}])
        biz.pay(c["id"], [(inv["id"], 400)])
        strict_inv = _ok(biz.get(f"invoices/{inv['id']}/"))
        strict_aging = _ok(biz.get("insights/ar-aging/"))
        _ok(http.post("/_sandbox/faults", json={"extended_fields": True}))
        extended_inv = _ok(biz.get(f"invoices/{inv['id']}/"))
        extended_aging = _ok(biz.get("insights/ar-aging/"))
    for key in set(strict_inv) - {"customer", "line_items"}:
        assert strict_inv[key] == extended_inv[key], key
    for key, value in strict_inv["customer"].items():
        assert extended_inv["customer"][key] == value, key
    assert strict_inv["line_items"] == [{"tax_code": "VAT_20"}]
    assert strict_inv["customer"]["outstanding_balance"] == 800
    assert extended_inv["outstanding_balance"] == 800
    row = strict_aging["customers"][0]
    assert (
        row["total_outstanding_cents"] == extended_aging["customers"][0]["total_outstanding_cents"]
    )
    assert strict_aging["total_outstanding_cents"] == extended_aging["total_outstanding_cents"]


def test_vendor_archive_exists_only_with_extended_fields() -> None:
    with start_sandbox(SandboxConfig()) as running, httpx.Client(base_url=running.url) as http:
        biz = Api(http).new_business()
        v, c = biz.vendor(), biz.customer()
        unknown = biz.post("no-such-route/")
        archive = biz.post(f"vendors/{v['id']}/archive/")
        assert archive.status_code == 404 and unknown.status_code == 404
        assert archive.json() == unknown.json()
        assert biz.post(f"customers/{c['id']}/unarchive/").status_code == 404
        assert biz.post(f"vendors/{v['id']}/unarchive/").status_code == 200  # documented
        assert _ok(biz.get(f"vendors/{v['id']}/"))["status"] == "ACTIVE"  # nothing archived
        # a running sandbox can be switched
        modes = _ok(http.post("/_sandbox/faults", json={"extended_fields": True}))
        assert modes["contract"]["extended_fields"] is True
        archived = _ok(biz.post(f"vendors/{v['id']}/archive/"))
        assert archived["status"] == "ARCHIVED" and archived["is_archived"] is True
        reset = _ok(http.post("/_sandbox/faults", json={"reset": True}))
        assert reset["contract"] == {"extended_fields": False, "duplicate_external_id": "replay"}
        assert biz.post(f"vendors/{v['id']}/archive/").status_code == 404


def test_extended_fields_config_serves_the_archive_endpoint() -> None:
    config = SandboxConfig(extended_fields=True)
    with start_sandbox(config) as running, httpx.Client(base_url=running.url) as http:
        biz = Api(http).new_business()
        v = biz.vendor()
        assert _ok(biz.post(f"vendors/{v['id']}/archive/"))["status"] == "ARCHIVED"
        assert _ok(http.get("/_sandbox/faults"))["contract"]["extended_fields"] is True
