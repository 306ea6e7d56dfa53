"""A value changed inside Thred fails the check that compares it, naming the record, the field
and the money — for every money field the reconciliation reads (strict sandbox)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from thred_pipeline.reconcile import BooksReconciler, BooksReport
from thred_pipeline_tests.sync.conftest import BACKENDS, SyncEnv, module_backend


@dataclass(frozen=True)
class Tamper:
    collection: str  # sandbox collection (= entity name)
    source_id: str
    path: str  # in the stored object
    delta: int
    fails: tuple[tuple[str, str | None, str, int], ...]  # (check, record, field, thred - expected)


TAMPERS = {
    "invoice line price": Tamper(
        "invoices",
        "inv-01-00021",
        "line_items[0].unit_price",
        1000,  # quantity 4
        (
            ("ar_balances", "cus-01-0004", "aging", 4000),
            ("ar_balances", "cus-01-0004", "outstanding_balance", 4000),
            ("ar_balances", None, "aging total", 4000),
        ),
    ),
    "bill line price": Tamper(
        "bills",
        "bill-01-00007",
        "line_items[0].unit_price",
        1000,  # quantity 1
        (
            ("bills", "bill-01-00007", "total_cents", 1000),
            ("ap_balances", "ven-01-0004", "aging", 1000),
        ),
    ),
    "bill payment allocation": Tamper(
        "bill_payments",
        "bp-01-00004",
        "allocations[0].amount_cents",
        -100,
        (
            ("bill_payments", "bp-01-00004", "allocated_cents", -100),
            ("ap_balances", "ven-01-0002", "aging", 100),
        ),
    ),
    "payment total": Tamper(
        "invoice_payments",
        "pay-01-00001",
        "total_amount_cents",
        100,  # fully allocated: the extra 100 lands on its allocation to inv-01-00001
        (
            ("invoice_payments", "pay-01-00001", "total_cents", 100),
            ("payouts", "po-01-001", "gross_payments_amount_cents", 100),
            ("ar_balances", "cus-01-0004", "aging", -100),
        ),
    ),
    "refund amount": Tamper(
        "refunds",
        "ref-01-0003",
        "amount_cents",
        100,
        (("refunds", "ref-01-0003", "amount_cents", 100),),
    ),
    "refund payment amount": Tamper(
        "refund_payments",
        "rfp-01-0002",
        "amount_cents",
        70,
        (
            ("refund_payments", "rfp-01-0002", "amount_cents", 70),
            ("payouts", "po-01-002", "total_refunds_amount_cents", 70),
        ),
    ),
    "payout fee": Tamper(
        "payouts",
        "po-01-001",
        "fee_cents",
        10,
        (
            ("payouts", "po-01-001", "fee_cents", 10),
            ("payouts", "po-01-001", "expected_net_amount_cents", -10),
        ),
    ),
    "vendor credit applied": Tamper(
        "vendor_credits",
        "vc-01-0001",
        "allocations[0].amount_cents",
        -565,
        (
            ("vendor_credits", "vc-01-0001", "applied_cents", -565),
            ("ap_balances", "ven-01-0001", "aging", 565),
        ),
    ),
}

PREFIX = {
    "invoices": "invoice",
    "bills": "bill",
    "bill_payments": "bill-payment",
    "invoice_payments": "payment",
    "refunds": "refund",
    "refund_payments": "refund-payment",
    "payouts": "payout",
    "vendor_credits": "vendor-credit",
}


@pytest.fixture(scope="module", params=BACKENDS)
def synced_env(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    seed_data: dict[str, list[dict[str, Any]]],
) -> Iterator[SyncEnv]:
    with module_backend(request, tmp_path_factory) as backend:
        env = SyncEnv(backend, seed_data)
        try:
            env.sync_all()
            yield env
        finally:
            env.close()


def read_path(obj: Any, path: str) -> Any:
    for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", path):
        obj = obj[int(index)] if index else obj[name]
    return obj


def _view(tamper: Tamper) -> str:
    """Where the tampered input shows in the object the sandbox returns (extended fields)."""
    if tamper.collection == "invoice_payments" and tamper.path == "total_amount_cents":
        return "total_amount"
    return tamper.path


def books(env: SyncEnv) -> BooksReport:
    return BooksReconciler(env.warehouse, env.ledger, env.settings).run()


@pytest.mark.parametrize("case", list(TAMPERS))
def test_a_value_changed_in_thred_fails_naming_the_record(synced_env: SyncEnv, case: str) -> None:
    env, tamper = synced_env, TAMPERS[case]
    assert books(env).verdict == "PASS"
    original = read_path(env.thred_stored(tamper.collection, tamper.source_id), _view(tamper))
    external_id = f"{PREFIX[tamper.collection]}-{tamper.source_id}"
    env.tamper(tamper.collection, external_id, {tamper.path: original + tamper.delta})
    try:
        report = books(env)
        assert report.verdict == "FAIL"
        found = {
            (r["check"], r["source_id"], r["field"]): r
            for r in report.differences.to_dict("records")
        }
        for check, record, field, delta in tamper.fails:
            row = found.get((check, record, field))
            assert row is not None, (check, record, field, sorted(found))
            assert row["thred"] - row["expected"] == delta, row
            assert row["business_id"] == "biz-01"
            assert row["cause"] == "unexplained", row
        stake = report.money_at_stake()["biz-01"]
        assert stake >= max(abs(d) for *_, d in tamper.fails)
    finally:
        env.tamper(tamper.collection, external_id, {tamper.path: original})
    assert books(env).verdict == "PASS"
