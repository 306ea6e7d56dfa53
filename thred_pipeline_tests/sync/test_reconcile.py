"""Reconciliation against a synced sandbox: every measure passes on the seeded data and fails,
naming the record, when one value is changed (or one object lost) inside Thred.

One synced environment per backend for the module; every test puts Thred back as it found it
(tamper the value back, re-create what was deleted, sync what was edited).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from thred_pipeline import entities
from thred_pipeline.sync.engine import SyncOptions
from thred_pipeline.sync.reconcile import SUPPORTED_MEASURES, CheckOutcome, Reconciler, supported
from thred_pipeline.thred.client import ThredClient, ThredResponse
from thred_pipeline.thred.errors import ThredAuthError
from thred_pipeline.thred.settings import ThredSettings
from thred_pipeline_tests.sync.conftest import (
    BACKENDS,
    ORDER,
    WINDOW,
    SyncEnv,
    all_measures,
    day_window,
    module_backend,
)


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


def assert_all_pass(env: SyncEnv, measures: list[tuple[str, str]]) -> None:
    for entity, measure in measures:
        outcome = env.check(entity, measure)
        assert outcome.passed, (entity, measure, outcome.mismatches)


def _matches(mismatch: dict[str, Any], expected: dict[str, Any]) -> bool:
    return all(mismatch.get(k) == v for k, v in expected.items())


# --- passes on seeded data ------------------------------------------------------------------------


def test_the_registry_declares_only_supported_measures() -> None:
    for spec in entities.ENTITIES:
        assert set(spec.measures) <= set(SUPPORTED_MEASURES), spec.name
        assert supported(spec) == spec.measures


@pytest.mark.parametrize(("entity", "measure"), all_measures())
def test_every_measure_passes_on_the_seeded_data(
    synced_env: SyncEnv, entity: str, measure: str
) -> None:
    outcome = synced_env.check(entity, measure)
    assert outcome.passed, outcome.mismatches
    assert outcome.mismatches == [] and outcome.details == {}
    assert outcome.summary
    if measure == "count":
        rows = synced_env.warehouse_count(entities.get(entity).table)
        assert outcome.metrics["expected_count"] == outcome.metrics["thred_count"] == rows
        assert outcome.metrics["never_synced"] == 0
    elif "parties_compared" in outcome.metrics:
        assert outcome.metrics["parties_compared"] > 0
        assert outcome.metrics["parties_not_comparable"] == 0
    else:
        rows = synced_env.warehouse_count(entities.get(entity).table)
        assert outcome.metrics["records_compared"] == rows
        assert outcome.metrics["records_not_comparable"] == 0
        assert outcome.metrics["diff_cents"] == 0


def test_new_measures_compute_from_the_warehouse(synced_env: SyncEnv) -> None:
    """Refund liability, payout totals, vendor credits: the numbers the seed implies."""
    liability = synced_env.check("refunds", "refund_liability")
    # ref-1 1500 fully paid back, ref-2 1500 with 630 paid, ref-3 2600 unpaid.
    assert liability.metrics["expected_cents"] == 0 + 870 + 2600 == liability.metrics["thred_cents"]
    payouts = synced_env.check("payouts", "payout_totals")
    assert payouts.metrics["records_compared"] == 2
    credits = synced_env.check("vendor_credits", "vendor_credit_applied")
    assert credits.metrics["expected_cents"] == 1836  # vc-2 unapplied; vc-1 fully applied


# --- fails, naming the record, when Thred differs ----------------------------------------------


@dataclass(frozen=True)
class Tamper:
    collection: str
    external_id: str
    path: str
    delta: int
    fails: tuple[tuple[str, str, dict[str, Any]], ...]  # (entity, measure, mismatch subset)


TAMPERS = {
    "invoice line price": Tamper(
        "invoices",
        "invoice-inv-01-00021",
        "line_items[0].unit_price",
        1000,  # quantity 4
        (
            (
                "customers",
                "customer_balance",
                {"customer": "customer-cus-01-0004", "diff_cents": 4000},
            ),
            (
                "invoices",
                "ar_outstanding",
                {"customer": "customer-cus-01-0004", "diff_cents": 4000},
            ),
            ("invoices", "ar_outstanding", {"measure": "aging total", "diff_cents": 4000}),
        ),
    ),
    "bill line price": Tamper(
        "bills",
        "bill-bill-01-00007",
        "line_items[0].unit_price",
        1000,  # quantity 1
        (
            ("vendors", "vendor_balance", {"vendor": "vendor-ven-01-0004", "diff_cents": 1000}),
            ("bills", "ap_outstanding", {"vendor": "vendor-ven-01-0004", "diff_cents": 1000}),
        ),
    ),
    "bill payment allocation": Tamper(
        "bill_payments",
        "bill-payment-bp-01-00004",
        "allocations[0].amount_cents",
        -100,
        (("vendors", "vendor_balance", {"vendor": "vendor-ven-01-0002", "diff_cents": 100}),),
    ),
    "payment total": Tamper(
        "invoice_payments",
        "payment-pay-01-00001",
        "total_amount_cents",
        100,  # fully allocated: the extra 100 lands on its allocation to inv-01-00001
        (
            (
                "invoice_payments",
                "payments_total",
                {"payment": "payment-pay-01-00001", "field": "total_amount_cents", "diff": 100},
            ),
            (
                "payouts",
                "payout_totals",
                {"payout": "payout-po-01-001", "field": "gross_payments_amount_cents", "diff": 100},
            ),
            (
                "customers",
                "customer_balance",
                {"customer": "customer-cus-01-0004", "diff_cents": -100},
            ),
        ),
    ),
    "refund amount": Tamper(
        "refunds",
        "refund-ref-01-0003",
        "amount_cents",
        100,
        (
            (
                "refunds",
                "refund_liability",
                {"refund": "refund-ref-01-0003", "field": "remaining_amount_cents", "diff": 100},
            ),
            (
                "refunds",
                "refund_liability",
                {"refund": "refund-ref-01-0003", "field": "refunded_amount", "diff": 100},
            ),
        ),
    ),
    "refund payment amount": Tamper(
        "refund_payments",
        "refund-payment-rfp-01-0002",
        "amount_cents",
        70,
        (
            (
                "refunds",
                "refund_liability",
                {"refund": "refund-ref-01-0002", "field": "remaining_amount_cents", "diff": -70},
            ),
            (
                "payouts",
                "payout_totals",
                {"payout": "payout-po-01-002", "field": "total_refunds_amount_cents", "diff": 70},
            ),
            (
                "payouts",
                "payout_totals",
                {"payout": "payout-po-01-002", "field": "amount_variance_cents", "diff": 70},
            ),
        ),
    ),
    "payout fee": Tamper(
        "payouts",
        "payout-po-01-001",
        "fee_cents",
        10,
        (
            (
                "payouts",
                "payout_totals",
                {"payout": "payout-po-01-001", "field": "fee_cents", "diff": 10},
            ),
            (
                "payouts",
                "payout_totals",
                {"payout": "payout-po-01-001", "field": "expected_net_amount_cents", "diff": -10},
            ),
        ),
    ),
    "vendor credit applied": Tamper(
        "vendor_credits",
        "vendor-credit-vc-01-0001",
        "allocations[0].amount_cents",
        -565,
        (
            (
                "vendor_credits",
                "vendor_credit_applied",
                {
                    "vendor credit": "vendor-credit-vc-01-0001",
                    "field": "applied_amount",
                    "diff": -565,
                },
            ),
            (
                "vendor_credits",
                "vendor_credit_applied",
                {
                    "vendor credit": "vendor-credit-vc-01-0001",
                    "field": "unapplied_amount",
                    "diff": 565,
                },
            ),
            ("bills", "ap_outstanding", {"vendor": "vendor-ven-01-0001", "diff_cents": 565}),
        ),
    ),
}

SOURCE = {  # sandbox collection -> entity
    "invoices": "invoices",
    "bills": "bills",
    "bill_payments": "bill_payments",
    "invoice_payments": "invoice_payments",
    "refunds": "refunds",
    "refund_payments": "refund_payments",
    "payouts": "payouts",
    "vendor_credits": "vendor_credits",
}


@pytest.mark.parametrize("case", list(TAMPERS))
def test_a_value_changed_in_thred_fails_naming_the_record(synced_env: SyncEnv, case: str) -> None:
    env, tamper = synced_env, TAMPERS[case]
    entity = SOURCE[tamper.collection]
    source_id = tamper.external_id.removeprefix(entities.get(entity).external_prefix + "-")
    original = read_path(env.thred_object(entity, source_id), _view_path(tamper))
    measures = sorted({(e, m) for e, m, _ in tamper.fails})
    assert_all_pass(env, measures)

    env.tamper(tamper.collection, tamper.external_id, {tamper.path: original + tamper.delta})
    try:
        outcomes: dict[tuple[str, str], CheckOutcome] = {
            (e, m): env.check(e, m) for e, m in measures
        }
        for e, m, expected in tamper.fails:
            outcome = outcomes[(e, m)]
            assert not outcome.passed, (e, m)
            assert any(_matches(x, expected) for x in outcome.mismatches), (
                e,
                m,
                expected,
                outcome.mismatches,
            )
            assert outcome.metrics["mismatches"] == len(outcome.mismatches)
    finally:
        env.tamper(tamper.collection, tamper.external_id, {tamper.path: original})
    assert_all_pass(env, measures)


def _view_path(tamper: Tamper) -> str:
    """Where the tampered input shows in the object Thred returns."""
    if tamper.collection == "invoice_payments" and tamper.path == "total_amount_cents":
        return "total_amount"
    return tamper.path


def test_a_payment_lost_by_thred_fails_the_count_naming_it(synced_env: SyncEnv) -> None:
    env = synced_env
    env.admin(
        "delete-object",
        {
            "business_id": env.thred_business,
            "collection": "invoice_payments",
            "external_id": "payment-pay-01-00016",
        },
    )
    try:
        count = env.check("invoice_payments", "count")
        assert not count.passed
        assert count.mismatches == [
            {
                "business": "biz-01",
                "external_id": "payment-pay-01-00016",
                "problem": "missing in Thred",
            }
        ]
        assert count.metrics["count_diff"] == -1
        totals = env.check("invoice_payments", "payments_total")
        assert {"payment": "payment-pay-01-00016", "problem": "missing in Thred"}.items() <= (
            totals.mismatches[0].items()
        )
        balance = env.check("customers", "customer_balance")
        assert any(m["customer"] == "customer-cus-01-0001" for m in balance.mismatches)
    finally:
        # A full refresh re-sends every create; Thred makes the lost one again (201).
        result = env.sync("invoice_payments", options=SyncOptions(full_refresh=True))
    assert result.counts["created"] == 1 and result.counts["drift"] == 0
    assert_all_pass(
        env,
        [
            ("invoice_payments", "count"),
            ("invoice_payments", "payments_total"),
            ("customers", "customer_balance"),
        ],
    )


def test_unconfirmed_records_are_not_compared_but_named(synced_env: SyncEnv) -> None:
    """An invoice re-saved in the warehouse, a bill line repriced without bumping its bill, a
    refund payment re-saved: until synced, what depends on them is "not comparable" (named),
    never a mismatch blamed on Thred."""
    env = synced_env
    at = day_window(20).start + timedelta(hours=1)
    env.edit("invoices", "inv-01-00013", updated_at=at)  # cus-01-0001
    # ven-01-0002: a line repriced (2 x 1912 -> 2 x 2012, VAT 765 -> 805), its bill not bumped.
    env.edit(
        "bill_line_items",
        "bli-01-00002-1",
        unit_price_cents=2012,
        tax_amount_cents=805,
        updated_at=at,
    )
    env.edit("refund_payments", "rfp-01-0001", updated_at=at)  # refund ref-01-0001

    ar = env.check("customers", "customer_balance")
    assert ar.passed and ar.metrics["parties_not_comparable"] == 1
    assert ar.details == {"cus-01-0001": ["invoices inv-01-00013"]}
    ap = env.check("bills", "ap_outstanding")
    assert ap.passed and ap.metrics["parties_not_comparable"] == 1
    assert ap.details == {"ven-01-0002": ["bills bill-01-00002"]}
    liability = env.check("refunds", "refund_liability")
    assert liability.passed and liability.metrics["records_not_comparable"] == 1
    assert liability.details == {"ref-01-0001": ["refund_payments rfp-01-0001"]}

    results = env.sync_all(day_window(20))
    assert dict(results["invoices"].counts) == {"unchanged": 1}  # same content: no call
    assert dict(results["bills"].counts) == {"updated": 1}  # found through its line
    assert dict(results["refund_payments"].counts) == {"unchanged": 1}
    assert sum(r.api_writes for r in results.values()) == 1
    for entity, measure in (
        ("customers", "customer_balance"),
        ("bills", "ap_outstanding"),
        ("refunds", "refund_liability"),
    ):
        outcome = env.check(entity, measure)
        assert outcome.passed and outcome.details == {}, (entity, measure)


def _refusing(business: str | None) -> Any:
    """A client whose credentials Thred refuses for ``business`` (None: the partner's own)."""

    def factory(settings: ThredSettings) -> ThredClient:
        class Refused(ThredClient):
            async def request(self, method: str, path: str, **kw: Any) -> ThredResponse:
                if kw.get("business_id") == business or (
                    business is None and "businesses/" in path
                ):
                    raise ThredAuthError(
                        "forbidden",
                        status=403,
                        error_code="permission_denied",
                        business_id=business,
                    )
                return await super().request(method, path, **kw)

        return Refused(settings)

    return factory


def test_a_business_thred_refuses_is_reported_not_raised(synced_env: SyncEnv) -> None:
    """Like the engine, which pauses only that business: its checks name it, others go on."""
    env = synced_env
    reconciler = Reconciler(
        env.warehouse, env.ledger, env.settings, client_factory=_refusing(env.thred_business)
    )
    for name in [n for n in ORDER if n != "businesses"]:
        outcomes = reconciler.check_all(entities.get(name), WINDOW)
        assert [o.measure for o in outcomes] == list(supported(entities.get(name)))
        for outcome in outcomes:
            assert outcome.metrics["businesses_not_readable"] == 1, (name, outcome.measure)
            refused = outcome.details["businesses_not_readable"]
            assert list(refused) == ["biz-01"] and "403" in refused["biz-01"]
            assert "not readable" in outcome.summary
            assert outcome.mismatches == []
    with pytest.raises(ThredAuthError):  # the partner's own credentials: nothing can be checked
        Reconciler(env.warehouse, env.ledger, env.settings, client_factory=_refusing(None)).check(
            entities.get("businesses"), "count", WINDOW
        )
