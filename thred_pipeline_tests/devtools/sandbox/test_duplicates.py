"""The two documented readings of a repeated external_id (thred-api.md 3.1 vs 3.3).

``replay`` (default): 200 with the stored object. ``conflict``: 409 ``duplicate_external_id``
for every create except payouts (a documented upsert). In both, a repeated Idempotency-Key
replays the stored response with 200, and it is checked first.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from thred_devtools.sandbox import FaultConfig, SandboxConfig, start_sandbox
from thred_devtools.sandbox.config import add_fault_arguments, fault_config_from_args

from .conftest import Api, Biz, stats

ERROR_KEYS = {"error", "error_code", "details"}


@pytest.fixture(scope="module")
def conflict_api() -> Iterator[Api]:
    config = SandboxConfig(duplicate_external_id="conflict")
    with start_sandbox(config) as running, httpx.Client(base_url=running.url, timeout=10) as http:
        yield Api(http)


def _assert_duplicate(r: httpx.Response, external_id: str) -> None:
    assert r.status_code == 409, r.text
    body = r.json()
    assert set(body) == ERROR_KEYS
    assert body["error_code"] == "duplicate_external_id"
    assert list(body["details"]) == ["external_id"]
    assert external_id in body["details"]["external_id"][0]


def _creates(biz: Biz) -> list[tuple[str, str, dict[str, Any]]]:
    """(collection, path, body) of one create per object type, each with an external_id."""
    c = biz.customer()
    v = biz.vendor()
    inv = biz.invoice(c["id"], [{"unit_price": 10000}])
    paid = biz.invoice(c["id"], [{"unit_price": 5000}])
    biz.pay(c["id"], [(paid["id"], 5000)])
    refund = biz.ok(biz.post("invoices/refunds/", {"invoice_id": paid["id"], "amount_cents": 100}))
    bill = biz.bill(v["id"], [{"unit_price": 3000}])
    return [
        ("customers", "customers/", {"external_id": "d-c", "company_name": "Dup"}),
        ("vendors", "vendors/", {"external_id": "d-v", "company_name": "Dup"}),
        (
            "invoices",
            "invoices/",
            {
                "external_id": "d-i",
                "customer_id": c["id"],
                "sent_at": "2025-01-15",
                "line_items": [{"unit_price": 100}],
            },
        ),
        (
            "invoice_payments",
            "invoices/payments/",
            {
                "external_id": "d-p",
                "customer_id": c["id"],
                "total_amount_cents": 100,
                "payment_date": "2025-01-20",
                "allocations": [{"invoice_id": inv["id"], "amount_cents": 100}],
            },
        ),
        (
            "invoice_payments",
            "invoices/payments/",  # the seed-page form
            {
                "external_id": "d-p2",
                "invoice_id": inv["id"],
                "amount_cents": 100,
                "payment_date": "2025-01-20",
                "payment_method": "cash",
            },
        ),
        (
            "refunds",
            "invoices/refunds/",
            {"external_id": "d-r", "invoice_id": paid["id"], "amount_cents": 100},
        ),
        (
            "refund_payments",
            f"invoices/refunds/{refund['id']}/payments/",
            {"external_id": "d-rp", "amount_cents": 10},
        ),
        (
            "bills",
            "bills/",
            {"external_id": "d-b", "vendor_id": v["id"], "line_items": [{"unit_price": 100}]},
        ),
        (
            "bill_payments",
            "bills/payments/",
            {
                "external_id": "d-bp",
                "vendor_id": v["id"],
                "amount_cents": 100,
                "payment_method": "bank_transfer",
                "payment_date": "2025-02-01",
                "allocations": [{"bill_id": bill["id"], "amount_cents": 100}],
            },
        ),
        (
            "vendor_credits",
            "vendor-credits/",
            {"external_id": "d-vc", "vendor_id": v["id"], "line_items": [{"amount": 100}]},
        ),
        (
            "accounts",
            "general-ledger/chart-of-accounts/",
            {"external_id": "d-a", "code": "4400", "name": "Dup", "account_type": "revenue"},
        ),
    ]


def test_conflict_mode_answers_409_for_every_create(conflict_api: Api) -> None:
    biz = conflict_api.new_business()
    creates = _creates(biz)
    before = stats(conflict_api.http)["objects"][biz.id]
    for _, path, body in creates:
        first = biz.post(path, body)
        assert first.status_code == 201, (path, first.text)
        again = biz.post(path, {**body, "memo": "a different body"})
        _assert_duplicate(again, body["external_id"])
    after = stats(conflict_api.http)
    assert after["duplicate_external_ids"] == 0
    # the refused repeats wrote nothing: each collection grew by its creates only
    grown = {c: n - before.get(c, 0) for c, n in after["objects"][biz.id].items()}
    expected = {"customers": 1, "vendors": 1, "invoices": 1, "invoice_payments": 2}
    expected |= {"refunds": 1, "refund_payments": 1, "bills": 1, "bill_payments": 1}
    expected |= {"vendor_credits": 1, "accounts": 1}
    assert {c: grown.get(c, 0) for c in expected} == expected


def test_conflict_mode_covers_businesses(conflict_api: Api) -> None:
    first = conflict_api.create_business(external_id="dup-biz-409")
    assert first.status_code == 201
    _assert_duplicate(conflict_api.create_business(external_id="dup-biz-409"), "dup-biz-409")


def test_replay_mode_answers_200_with_the_stored_object(api: Api) -> None:
    biz = api.new_business()
    for _, path, body in _creates(biz):
        first = biz.post(path, body)
        assert first.status_code == 201, (path, first.text)
        again = biz.post(path, body)
        assert again.status_code == 200, (path, again.text)
        assert again.json() == first.json(), path
    assert stats(api.http)["duplicate_external_ids"] == 0


def test_payouts_upsert_in_both_modes(conflict_api: Api) -> None:
    biz = conflict_api.new_business()
    c = biz.customer()
    inv = biz.invoice(c["id"], [{"unit_price": 10000}])
    pay = biz.pay(c["id"], [(inv["id"], 10000)], payment_method="credit_card")
    body = {
        "external_id": "po-409",
        "processor": "stripe",
        "paid_out_amount_cents": 9700,
        "fee_cents": 300,
        "payment_ids": [pay["id"]],
    }
    first = biz.post("payouts/", body)
    assert first.status_code == 201, first.text
    updated = biz.post("payouts/", {**body, "paid_out_amount_cents": 9600})
    assert updated.status_code == 200, updated.text
    assert updated.json()["id"] == first.json()["id"]
    assert updated.json()["paid_out_amount_cents"] == 9600
    assert biz.get("payouts/").json()["count"] == 1


def test_idempotency_key_replays_first_in_conflict_mode(conflict_api: Api) -> None:
    biz = conflict_api.new_business()
    c = biz.customer()
    inv = biz.invoice(c["id"], [{"unit_price": 10000}])
    body = {
        "external_id": "idem-409",
        "customer_id": c["id"],
        "total_amount_cents": 2500,
        "payment_date": "2025-01-20",
        "allocations": [{"invoice_id": inv["id"], "amount_cents": 2500}],
    }
    key = {"Idempotency-Key": "k-409"}
    first = biz.post("invoices/payments/", body, headers=key)
    assert first.status_code == 201
    replay = biz.post("invoices/payments/", body, headers=key)
    assert replay.status_code == 200 and replay.json() == first.json()
    _assert_duplicate(biz.post("invoices/payments/", body), "idem-409")
    _assert_duplicate(
        biz.post("invoices/payments/", body, headers={"Idempotency-Key": "k-other"}), "idem-409"
    )
    # the same for a create that goes through the generic write path
    cust = {"external_id": "idem-cust", "company_name": "Idem"}
    first = biz.post("customers/", cust, headers={"Idempotency-Key": "k-cust"})
    assert first.status_code == 201
    replay = biz.post("customers/", cust, headers={"Idempotency-Key": "k-cust"})
    assert replay.status_code == 200 and replay.json() == first.json()
    _assert_duplicate(biz.post("customers/", cust), "idem-cust")
    # and nothing was paid twice
    customer = biz.get(f"customers/{c['id']}/").json()
    assert customer["outstanding_balance"] == 10000 - 2500


def test_a_running_sandbox_can_be_switched(http: httpx.Client, biz: Biz) -> None:
    """Through the admin faults endpoint (the shared strict server, switched back after)."""
    body = {"external_id": "switch-1", "company_name": "Switch"}
    assert biz.post("customers/", body).status_code == 201
    try:
        r = http.post("/_sandbox/faults", json={"duplicate_external_id": "conflict"})
        assert r.status_code == 200
        assert r.json()["contract"]["duplicate_external_id"] == "conflict"
        _assert_duplicate(biz.post("customers/", body), "switch-1")
    finally:
        r = http.post("/_sandbox/faults", json={"duplicate_external_id": None})
        assert r.json()["contract"]["duplicate_external_id"] == "replay"
    assert biz.post("customers/", body).status_code == 200


def test_the_admin_endpoint_refuses_an_unknown_mode(http: httpx.Client) -> None:
    r = http.post("/_sandbox/faults", json={"duplicate_external_id": "maybe"})
    assert r.status_code == 400 and "duplicate_external_id" in r.json()["details"]
    assert http.get("/_sandbox/faults").json()["contract"]["duplicate_external_id"] == "replay"


def _parse(*argv: str) -> FaultConfig:
    parser = argparse.ArgumentParser(prog="thred-dev sandbox")
    add_fault_arguments(parser)
    return fault_config_from_args(parser.parse_args(list(argv)))


def test_command_line_switches() -> None:
    default = _parse()
    assert default.extended_fields is None and default.duplicate_external_id is None
    assert SandboxConfig(faults=default).extended_fields is False  # strict by default
    config = _parse("--extended-fields", "--duplicate-external-id", "conflict")
    assert config.extended_fields is True and config.duplicate_external_id == "conflict"
    assert not config.any_active()  # contract readings are not faults
    with pytest.raises(SystemExit):
        _parse("--duplicate-external-id", "sometimes")


def test_command_line_switches_reach_a_server() -> None:
    faults = _parse("--duplicate-external-id", "conflict", "--extended-fields")
    with (
        start_sandbox(SandboxConfig(faults=faults)) as running,
        httpx.Client(base_url=running.url, timeout=10) as http,
    ):
        contract = http.get("/_sandbox/faults").json()["contract"]
        assert contract == {"extended_fields": True, "duplicate_external_id": "conflict"}
        biz = Api(http).new_business()
        body = {"external_id": "cli-1", "company_name": "Cli"}
        assert "outstanding_balance" in biz.ok(biz.post("customers/", body))
        _assert_duplicate(biz.post("customers/", body), "cli-1")
