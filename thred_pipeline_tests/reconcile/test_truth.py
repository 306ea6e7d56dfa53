"""The truth test: a clean sync reconciles equal; each kind of loss fails the right check and
names the record, the business and the money. Runs against the strict sandbox (documented
fields only) on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert
from thred_devtools.sandbox import SandboxConfig

from thred_pipeline.reconcile import BooksReconciler, BooksReport, SeverityPolicy, WindowReconciler
from thred_pipeline.thred.client import ThredClient
from thred_pipeline.warehouse import schema as wh
from thred_pipeline_tests.sync.conftest import WINDOW, SyncEnv

LATER = WINDOW.end + timedelta(hours=3)  # inside the next day's window


def books(env: SyncEnv, policy: SeverityPolicy | None = None) -> BooksReport:
    return BooksReconciler(env.warehouse, env.ledger, env.settings, policy=policy).run()


def check(report: BooksReport, name: str) -> Any:
    return next(c for c in report.checks if c.name == name)


def rows(report: BooksReport, name: str) -> list[dict[str, Any]]:
    return list(check(report, name).differences.to_dict("records"))


def insert_rows(env: SyncEnv, table: str, *values: dict[str, Any]) -> None:
    t = wh.metadata.tables[table]
    if env.wh_engine.dialect.name == "sqlite":
        values = tuple(
            {
                k: v.astimezone(UTC).replace(tzinfo=None) if isinstance(v, datetime) else v
                for k, v in row.items()
            }
            for row in values
        )
    with env.wh_engine.begin() as conn:
        conn.execute(insert(t), list(values))


def new_invoice(env: SyncEnv, invoice_id: str, **changes: Any) -> int:
    """A copy of the first seeded invoice under a new id, updated at ``LATER``; its total."""
    first = env.data["invoices"][0]
    lines = [li for li in env.data["invoice_line_items"] if li["invoice_id"] == first["id"]]
    invoice = {**first, "id": invoice_id, "invoice_number": invoice_id, "updated_at": LATER}
    invoice.update(changes.pop("invoice", {}))
    copies = [
        {**li, "id": f"{invoice_id}-{n}", "invoice_id": invoice_id, "updated_at": LATER, **changes}
        for n, li in enumerate(lines)
    ]
    insert_rows(env, "invoices", invoice)
    insert_rows(env, "invoice_line_items", *copies)
    return sum(
        int(li["unit_price_cents"] * li["quantity"]) + li["tax_amount_cents"] for li in copies
    )


def sync_day(env: SyncEnv) -> None:
    env.sync_all(window=type(WINDOW)(WINDOW.end, WINDOW.end + timedelta(days=1)))


def thred_post(env: SyncEnv, path: str, body: dict[str, Any], business: str | None) -> Any:
    async def call() -> Any:
        async with ThredClient(env.settings) as client:
            return await client.request("POST", path, business_id=business, json=body)

    return asyncio.run(call())


@pytest.fixture
def synced_env(env: SyncEnv) -> SyncEnv:
    env.sync_all()
    return env


def test_the_test_sandbox_is_strict() -> None:
    assert SandboxConfig().extended_fields is False


def test_a_clean_sync_reconciles_equal(synced_env: SyncEnv) -> None:
    report = books(synced_env)
    assert report.verdict == "PASS", report.render_text()
    assert report.exit_code == 0
    assert all(c.passed for c in report.checks)
    assert report.differences.empty
    compared = {c.name: c.metrics for c in report.checks}
    assert compared["invoices"]["warehouse_records"] == len(synced_env.data["invoices"])
    assert compared["invoices"]["thred_records"] == len(synced_env.data["invoices"])


def test_nothing_synced_fails_every_check_with_the_money(env: SyncEnv) -> None:
    report = books(env)
    assert report.verdict == "FAIL" and report.exit_code == 1
    for each in report.checks:
        assert not each.passed, each.name
        assert (each.differences["cause"] == "unexplained").all(), each.name
    invoices = rows(report, "invoices")
    assert {r["source_id"] for r in invoices} == {i["id"] for i in env.data["invoices"]}
    assert all("never synced" in r["explanation"] for r in invoices)
    balances = check(report, "ar_balances").differences
    assert balances["money_cents"].sum() > 0  # Thred holds none of the open balances


def test_a_record_deleted_in_thred_fails_with_its_money(synced_env: SyncEnv) -> None:
    env = synced_env
    payment = env.data["payments"][0]
    env.admin(
        "delete-object",
        {
            "business_id": env.thred_business,
            "collection": "invoice_payments",
            "external_id": f"payment-{payment['id']}",
        },
    )
    report = books(env)
    assert report.verdict == "FAIL" and report.exit_code == 1
    [missing] = rows(report, "invoice_payments")
    assert missing["source_id"] == payment["id"]
    assert missing["business_id"] == payment["business_id"]
    assert missing["kind"] == "missing in Thred"
    assert missing["money_cents"] == payment["amount_cents"]
    assert missing["cause"] == "unexplained"
    assert check(report, "invoice_payments").severity == "ERROR"
    # the customer's open balance in Thred is now higher by what the payment settled
    balances = rows(report, "ar_balances")
    customer = [r for r in balances if r["source_id"] == payment["customer_id"]]
    assert customer and all(r["thred"] - r["expected"] == payment["amount_cents"] for r in customer)
    assert sum(r["money_cents"] for r in customer) == payment["amount_cents"]  # counted once
    # the payout that settles it now shows a gross short by the same amount, counted once
    payout_rows = rows(report, "payouts")
    assert sum(r["money_cents"] for r in payout_rows) in (0, payment["amount_cents"])
    stake = report.money_at_stake()[payment["business_id"]]
    assert stake == payment["amount_cents"] + sum(r["money_cents"] for r in payout_rows)
    assert all(r["cause"] == "unexplained" for r in customer)
    assert "money at stake" in report.render_text()


def test_an_amount_changed_in_thred_fails_with_the_difference(synced_env: SyncEnv) -> None:
    env = synced_env
    payment = env.data["payments"][1]
    env.tamper(
        "invoice_payments",
        f"payment-{payment['id']}",
        {"total_amount_cents": payment["amount_cents"] + 500},
    )
    report = books(env)
    assert report.verdict == "FAIL"
    found = [r for r in rows(report, "invoice_payments") if r["field"] == "total_cents"]
    assert found, report.render_text()
    assert found[0]["source_id"] == payment["id"]
    assert found[0]["money_cents"] == 500
    assert found[0]["expected"] == payment["amount_cents"]
    assert found[0]["thred"] == payment["amount_cents"] + 500


def test_a_record_rejected_for_bad_data_is_missing_explained(synced_env: SyncEnv) -> None:
    env = synced_env
    total = new_invoice(env, "inv-bad-tax", tax_code="NO_SUCH_CODE")
    sync_day(env)
    row = env.ledger.get("invoices", "inv-bad-tax")
    assert row is not None and row.status.value == "rejected"
    report = books(env)
    [missing] = rows(report, "invoices")
    assert missing["source_id"] == "inv-bad-tax" and missing["kind"] == "missing in Thred"
    assert missing["money_cents"] == total
    assert missing["cause"] == "quarantined" and "tax" in missing["explanation"].lower()
    balance = [r for r in rows(report, "ar_balances") if r["source_id"]]
    assert balance and balance[0]["money_cents"] == total
    assert balance[0]["cause"] == "quarantined" and "inv-bad-tax" in balance[0]["explanation"]
    # explained differences are a WARN (exit 3) by default, an ERROR above a money threshold
    assert report.verdict == "WARN" and report.exit_code == 3
    assert books(env, SeverityPolicy(error_above_cents=total - 1)).verdict == "FAIL"
    assert books(env, SeverityPolicy(error_above_cents=total)).verdict == "WARN"


def test_a_record_deferred_behind_a_missing_parent_is_missing_explained(
    synced_env: SyncEnv,
) -> None:
    env = synced_env
    total = new_invoice(env, "inv-orphan", invoice={"customer_id": "cus-not-in-warehouse"})
    sync_day(env)
    report = books(env)
    [missing] = rows(report, "invoices")
    assert missing["source_id"] == "inv-orphan"
    assert missing["cause"] == "waiting" and "cus-not-in-warehouse" in missing["explanation"]
    assert missing["money_cents"] == total
    aging = [r for r in rows(report, "ar_balances") if r["field"] == "aging total"]
    assert aging and aging[0]["money_cents"] == total
    assert report.verdict == "WARN"


def test_a_business_turned_inactive_is_reported(synced_env: SyncEnv) -> None:
    env = synced_env
    business = env.data["businesses"][0]["id"]
    env.edit("businesses", business, is_active=False, updated_at=LATER)
    report = books(env)
    [row] = rows(report, "businesses")
    assert row["source_id"] == business and row["cause"] == "business inactive"
    assert report.verdict == "WARN"


def test_an_inactive_business_in_thred_fails(synced_env: SyncEnv) -> None:
    env = synced_env
    source = {**env.data["businesses"][0], "id": "biz-dormant", "is_active": False}
    insert_rows(env, "businesses", source)
    thred_post(
        env,
        "businesses/",
        {
            "external_id": "business-biz-dormant",
            "legal_name": "Dormant Ltd",
            "entity_type": "limited",
            "email": "dormant@example.com",
            "country": "GB",
            "base_currency": "GBP",
        },
        None,
    )
    report = books(env)
    [row] = rows(report, "businesses")
    assert row["source_id"] == "biz-dormant" and row["cause"] == "unexplained"
    assert check(report, "businesses").severity == "ERROR"


def test_a_duplicate_payment_in_thred_fails_with_its_money(synced_env: SyncEnv) -> None:
    env = synced_env
    payment = env.data["payments"][2]
    customer = env.ledger.get("customers", payment["customer_id"])
    assert customer is not None
    thred_post(
        env,
        f"businesses/{env.thred_business}/invoices/payments/",
        {
            "customer_id": customer.thred_id,
            "total_amount_cents": payment["amount_cents"],
            "payment_date": "2026-09-03",
            "currency": "GBP",
            "payment_method": "bank_transfer",
            "allocations": [],
        },
        env.thred_business,
    )
    report = books(env)
    [extra] = rows(report, "invoice_payments")
    assert extra["kind"] == "extra in Thred" and extra["cause"] == "unexplained"
    assert extra["money_cents"] == payment["amount_cents"]
    assert extra["business_id"] == payment["business_id"] and extra["thred_id"]
    assert report.verdict == "FAIL"


def test_the_window_check_names_a_lost_record_of_its_window(synced_env: SyncEnv) -> None:
    env = synced_env
    window = WindowReconciler(env.warehouse, env.ledger, env.settings)
    assert window.check("refunds", WINDOW).passed
    refund = env.data["refunds"][0]
    env.admin(
        "delete-object",
        {
            "business_id": env.thred_business,
            "collection": "refunds",
            "external_id": f"refund-{refund['id']}",
        },
    )
    result = window.check("refunds", WINDOW)
    assert not result.passed and result.severity == "ERROR"
    [row] = result.differences.to_dict("records")
    assert (row["source_id"], row["money_cents"]) == (refund["id"], refund["amount_cents"])
    later = type(WINDOW)(WINDOW.end, WINDOW.end + timedelta(days=1))
    assert window.check("refunds", later).passed  # another window's records are not its concern
