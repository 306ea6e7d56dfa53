"""The window check reads Thred by id or by list: the same differences either way, and by id
far fewer requests when the window is small against a long history. Real sandbox, SQLite.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from thred_devtools.seed import SeedConfig, generate

from thred_pipeline import entities
from thred_pipeline.core.records import TimeWindow
from thred_pipeline.reconcile import CheckReport, ReadMode, WindowReconciler
from thred_pipeline.reconcile.window_read import BusinessWindow
from thred_pipeline.thred.client import ThredClient
from thred_pipeline.thred.settings import ThredSettings
from thred_pipeline_tests.reconcile.test_truth import new_invoice
from thred_pipeline_tests.sync.conftest import ORDER, WINDOW, Backend, SyncEnv

BY_ID_OR_LIST = [ReadMode.DETAIL, ReadMode.LIST]


def window_check(env: SyncEnv, entity: str, mode: ReadMode, window: TimeWindow) -> CheckReport:
    return WindowReconciler(env.warehouse, env.ledger, env.settings, read=mode).check(
        entity, window
    )


@pytest.fixture
def synced_env(env: SyncEnv) -> SyncEnv:
    env.sync_all()
    return env


# --- the choice (pure) -----------------------------------------------------------------------


def test_few_records_of_a_long_history_are_read_by_id() -> None:
    invoices = entities.get("invoices")
    window = BusinessWindow("b1", "t1", ("i1", "i2"), history=2_000)
    assert window.list_requests == 20
    assert window.by_detail(invoices, ReadMode.AUTO)
    assert not window.by_detail(invoices, ReadMode.LIST)


def test_a_window_as_long_as_the_list_is_read_by_list() -> None:
    invoices = entities.get("invoices")
    window = BusinessWindow("b1", "t1", tuple(f"i{n}" for n in range(20)), history=2_000)
    assert not window.by_detail(invoices, ReadMode.AUTO)  # 20 by id is not fewer than 20 pages
    assert BusinessWindow("b1", "t1", (), history=0).list_requests == 1


def test_records_listed_only_under_a_parent_are_never_read_by_id() -> None:
    nested = entities.get("refund_payments")  # no documented detail page
    assert not BusinessWindow("b1", "t1", ("p1",), history=5_000).by_detail(nested, ReadMode.DETAIL)


# --- the same differences either way --------------------------------------------------------


@pytest.mark.parametrize("mode", BY_ID_OR_LIST)
def test_a_clean_window_passes_either_way(synced_env: SyncEnv, mode: ReadMode) -> None:
    for name in ORDER:
        check = window_check(synced_env, name, mode, WINDOW)
        assert check.passed, (name, check.summary())
        assert check.metrics["matched"] == check.metrics["window_records"] > 0, name
    invoices = window_check(synced_env, "invoices", mode, WINDOW)
    assert invoices.metrics["read"] == mode.value
    assert invoices.metrics["thred_reads"] > 0


@pytest.mark.parametrize("mode", BY_ID_OR_LIST)
def test_a_lost_and_a_changed_record_are_found_either_way(
    synced_env: SyncEnv, mode: ReadMode
) -> None:
    env = synced_env
    lost, changed = env.data["payments"][0], env.data["payments"][1]
    env.admin(
        "delete-object",
        {
            "business_id": env.thred_business,
            "collection": "invoice_payments",
            "external_id": f"payment-{lost['id']}",
        },
    )
    env.tamper(
        "invoice_payments",
        f"payment-{changed['id']}",
        {"total_amount_cents": changed["amount_cents"] + 500},
    )
    check = window_check(env, "invoice_payments", mode, WINDOW)
    assert not check.passed and check.severity == "ERROR"
    found = {(r["source_id"], r["kind"]) for r in check.differences.to_dict("records")}
    assert (lost["id"], "missing in Thred") in found
    assert (changed["id"], "different in Thred") in found
    [missing] = [r for r in check.differences.to_dict("records") if r["kind"] == "missing in Thred"]
    assert missing["money_cents"] == lost["amount_cents"] and missing["cause"] == "unexplained"
    # by id, the 404 sends the business back to the list, which reports the loss the same way
    assert check.metrics["detail_misses_listed"] == (1 if mode is ReadMode.DETAIL else 0)


@pytest.mark.parametrize("mode", [ReadMode.AUTO, *BY_ID_OR_LIST])
def test_a_record_without_a_thred_id_is_missing_without_a_request(
    synced_env: SyncEnv, mode: ReadMode
) -> None:
    env = synced_env
    total = new_invoice(env, "inv-bad-tax", tax_code="NO_SUCH_CODE")
    next_day = TimeWindow(WINDOW.end, WINDOW.end + timedelta(days=1))
    env.sync_all(window=next_day)
    check = window_check(env, "invoices", mode, next_day)
    [missing] = check.differences.to_dict("records")
    assert (missing["source_id"], missing["kind"]) == ("inv-bad-tax", "missing in Thred")
    assert missing["cause"] == "quarantined" and missing["money_cents"] == total
    assert check.severity == "WARN"
    expected_reads = 1 if mode is ReadMode.LIST else 0  # the list pass reads its one page
    assert check.metrics["thred_reads"] == expected_reads


# --- a long history, a small window ---------------------------------------------------------

LONG = SeedConfig(
    seed=5,
    businesses=1,
    days=60,
    customers=8,
    vendors=4,
    invoices=420,
    payments=0,
    refunds=0,
    refund_payments=0,
    payouts=0,
    bills=0,
    bill_payments=0,
    vendor_credits=0,
)


@pytest.fixture(scope="module")
def long_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SyncEnv]:
    folder: Path = tmp_path_factory.mktemp("long")
    backend = Backend("sqlite", f"sqlite:///{folder}/warehouse.db", f"sqlite:///{folder}/ledger.db")
    env = SyncEnv(backend, generate(LONG))
    window = TimeWindow(LONG.window_start, LONG.window_end)
    env.sync_all(window=window, order=["businesses", "customers", "invoices"])
    yield env
    env.close()


def test_a_small_window_of_a_long_history_is_read_by_id_with_far_fewer_requests(
    long_env: SyncEnv,
) -> None:
    env = long_env
    invoice = max(env.data["invoices"], key=lambda i: i["updated_at"])
    at = invoice["updated_at"]
    hour = TimeWindow(at - timedelta(minutes=30), at + timedelta(minutes=30))
    checks = {mode: window_check(env, "invoices", mode, hour) for mode in ReadMode}
    for mode, check in checks.items():
        assert check.passed, (mode, check.summary())
        assert check.metrics["matched"] == check.metrics["window_records"] >= 1
    by_list = int(checks[ReadMode.LIST].metrics["thred_reads"])
    by_id = int(checks[ReadMode.DETAIL].metrics["thred_reads"])
    assert by_list >= 5  # 420 invoices: five pages of 100
    assert by_id == checks[ReadMode.DETAIL].metrics["window_records"]
    assert by_id * 3 <= by_list
    assert checks[ReadMode.AUTO].metrics["read"] == "detail"
    assert checks[ReadMode.AUTO].metrics["thred_reads"] == by_id


@pytest.mark.parametrize("mode", BY_ID_OR_LIST)
def test_a_lost_refund_payment_is_found_under_its_own_refund(
    synced_env: SyncEnv, mode: ReadMode
) -> None:
    env = synced_env
    lost = env.data["refund_payments"][0]
    prefix = entities.get("refund_payments").external_prefix
    env.admin(
        "delete-object",
        {
            "business_id": env.thred_business,
            "collection": "refund_payments",
            "external_id": f"{prefix}-{lost['id']}",
        },
    )
    check = window_check(env, "refund_payments", mode, WINDOW)
    [missing] = check.differences.to_dict("records")
    assert (missing["source_id"], missing["kind"]) == (lost["id"], "missing in Thred")
    assert missing["money_cents"] == lost["amount_cents"] and missing["cause"] == "unexplained"
    refunds = {p["refund_id"] for p in env.data["refund_payments"]}
    if mode is ReadMode.LIST:  # the refunds' list, then every refund's payments
        assert check.metrics["read"] == "list"
        assert check.metrics["thred_reads"] == 1 + len(env.data["refunds"])
    else:  # only the lists of the window's refund payments' refunds
        assert check.metrics["read"] == "parents"
        assert check.metrics["thred_reads"] == len(refunds)


def test_a_window_where_nothing_changed_passes_reading_only_the_partner_token(
    synced_env: SyncEnv,
) -> None:
    """No warehouse record changed: nothing to compare, so nothing but the partner token (a
    wrong key must still fail) is read (most entity-days of a backfill; issue 8, B6)."""
    made: list[ThredClient] = []

    def counting(settings: ThredSettings) -> ThredClient:
        made.append(ThredClient(settings))
        return made[-1]

    quiet = TimeWindow(WINDOW.start - timedelta(days=400), WINDOW.start - timedelta(days=399))
    reconciler = WindowReconciler(
        synced_env.warehouse, synced_env.ledger, synced_env.settings, client_factory=counting
    )
    for entity in ORDER:
        report = reconciler.check(entity, quiet)
        assert report.passed, report.description
        assert report.metrics["window_records"] == 0
        assert report.metrics["thred_reads"] == 0
        assert report.differences.empty
    assert made and all(c.stats.requests == 0 and c.stats.token_fetches == 1 for c in made)
