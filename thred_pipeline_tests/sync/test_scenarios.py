"""Scenarios from real platforms, through the real engine against the real (strict) sandbox.

Each one ends with the verdict that matters — the books in Thred equal the warehouse's (the
project's nightly reconciliation, which compares the warehouse with Thred, never the ledger) —
or, where Thred itself cannot hold the warehouse's state, with the difference named. Outcomes
only: what Thred lists, what the ledger says, how many objects the sandbox holds; never how
many faults fired.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import text
from thred_devtools.sandbox import SandboxConfig
from thred_devtools.seed import SeedConfig, generate

from thred_pipeline import entities
from thred_pipeline.core.records import Status, TimeWindow
from thred_pipeline.ledger import LedgerCode
from thred_pipeline.sync.engine import SyncEngine, SyncOptions
from thred_pipeline.thred.client import ThredClient, ThredResponse
from thred_pipeline.thred.errors import ThredConfigError, ThredTransientError
from thred_pipeline.thred.settings import ThredSettings
from thred_pipeline.warehouse import schema as wh
from thred_pipeline_tests.sync.conftest import (
    COLLECTION,
    ORDER,
    SMALL,
    WINDOW,
    Backend,
    SyncEnv,
    day_window,
)

# Records of the SMALL seed (see conftest.SMALL).
LATE_PAYMENT = "pay-01-00001"  # pays inv-01-00001 (18000), settled in payout po-01-001
ITS_REFUNDS = ("ref-01-0001", "ref-01-0002")  # 1500 + 1500 of inv-01-00001
ITS_REFUND_PAYMENTS = ("rfp-01-0001", "rfp-01-0002")  # rfp-01-0002 is in payout po-01-002
PAID_CUSTOMER = "cus-01-0002"  # one invoice (inv-01-00012), fully paid by pay-01-00004
ITS_INVOICE, ITS_PAYMENT = "inv-01-00012", "pay-01-00004"

Factory = Callable[[ThredSettings], ThredClient]


def _env(tmp_path: Path, data: dict[str, list[dict[str, Any]]], **sandbox: Any) -> SyncEnv:
    backend = Backend(
        "sqlite", f"sqlite:///{tmp_path / 'warehouse.db'}", f"sqlite:///{tmp_path / 'ledger.db'}"
    )
    return SyncEnv(backend, data, SandboxConfig(**sandbox))


@pytest.fixture
def scenario(tmp_path: Path, seed_data: dict[str, list[dict[str, Any]]]) -> Iterator[SyncEnv]:
    env = _env(tmp_path, seed_data)
    try:
        yield env
    finally:
        env.close()


def sync_all(
    env: SyncEnv,
    window: TimeWindow = WINDOW,
    factory: Factory | None = None,
    options: SyncOptions | None = None,
) -> dict[str, Any]:
    engine = env.engine(options, factory)
    return {name: engine.sync_entity(entities.get(name), window) for name in ORDER}


def row(env: SyncEnv, entity: str, source_id: str) -> Any:
    found = env.ledger.get(entity, source_id)
    assert found is not None, f"{entity} {source_id} has no ledger row"
    return found


def assert_nothing_duplicated(env: SyncEnv) -> None:
    """One Thred object per warehouse row of every entity, no external_id twice."""
    assert env.stats()["duplicate_external_ids"] == 0
    objects = env.counts()
    for name, collection in COLLECTION.items():
        rows = env.warehouse_count(entities.get(name).table)
        assert objects.get(collection, 0) == rows, (name, objects.get(collection, 0), rows)


def failing_post(external_id: str, *, committed: bool) -> Factory:
    """The create of one record gets no answer: lost before Thred (a 503), or committed by
    Thred and the connection dropped before the response (``committed``). Both are what the
    client reports after its retries: an uncertain outcome."""

    def factory(settings: ThredSettings) -> ThredClient:
        class Faulty(ThredClient):
            async def request(self, method: str, path: str, **kw: Any) -> ThredResponse:  # type: ignore[override]
                body = kw.get("json") or {}
                if method == "POST" and body.get("external_id") == external_id:
                    if committed:
                        await super().request(method, path, **kw)
                    raise ThredTransientError(
                        "no response", outcome_uncertain=True, method=method, path=path
                    )
                return await super().request(method, path, **kw)

        return Faulty(settings)

    return factory


# --- a refund whose payment lands late ---------------------------------------------------------


@pytest.mark.parametrize("how", ["lost", "committed", "later_window"])
def test_refund_of_a_late_payment_lands_without_an_operator(scenario: SyncEnv, how: str) -> None:
    env = scenario
    payment_external = entities.get("invoice_payments").external_id(LATE_PAYMENT)
    factory: Factory | None = None
    if how == "later_window":  # the payment reaches the warehouse a day after its refunds
        late = day_window(1).start + timedelta(hours=2)
        env.edit("payments", LATE_PAYMENT, updated_at=late)
        env.edit("payment_allocations", "pal-01-00001-1", updated_at=late)
    else:
        factory = failing_post(payment_external, committed=how == "committed")

    sync_all(env, factory=factory)

    if how == "later_window":
        assert env.ledger.get("invoice_payments", LATE_PAYMENT) is None  # not extracted yet
    else:
        assert row(env, "invoice_payments", LATE_PAYMENT).status is Status.UNKNOWN
    if how != "committed":  # Thred does not hold the payment: the refunds were refused
        for refund in ITS_REFUNDS:
            refused = row(env, "refunds", refund)
            assert refused.status is Status.REJECTED
            assert "exceeds" in (refused.error_message or "")
        for refund_payment in ITS_REFUND_PAYMENTS:
            assert row(env, "refund_payments", refund_payment).status is Status.DEFERRED

    # The next night: nothing changed in the warehouse, nobody released anything.
    sync_all(env, day_window(1))

    assert env.all_synced() == {}
    assert_nothing_duplicated(env)
    env.assert_books_equal()
    # And the night after costs nothing.
    again = sync_all(env, day_window(2))
    assert sum(r.api_writes for r in again.values()) == 0


def test_a_refused_record_is_resent_once_per_upstream_change(scenario: SyncEnv) -> None:
    """The retry rule is bounded: no upstream change, no request; one change, one request."""
    env = scenario
    env.edit("refunds", "ref-01-0003", amount_cents=999_999)  # above anything ever paid
    sync_all(env)
    refused = row(env, "refunds", "ref-01-0003")
    assert refused.status is Status.REJECTED and refused.error_code == "validation_error"

    quiet = env.sync("refunds", day_window(1))
    assert quiet.api_calls == 0
    assert row(env, "refunds", "ref-01-0003").status_since == refused.status_since

    # An invoice of the same business is updated in Thred: one retry, refused again.
    at = day_window(2).start + timedelta(hours=1)
    env.edit("invoices", "inv-01-00024", memo="PO 77001 (revised)", updated_at=at)
    assert env.sync("invoices", day_window(2)).counts["updated"] == 1
    retried = env.sync("refunds", day_window(2))
    assert retried.api_writes == 1 and retried.counts["rejected"] == 1
    assert env.sync("refunds", day_window(2)).api_calls == 0


# --- a customer created, invoiced, paid and archived on one day --------------------------------


@pytest.mark.parametrize("nightly", [False, True], ids=["one-run", "day-by-day"])
def test_same_day_archive_waits_for_the_customers_documents(
    scenario: SyncEnv, nightly: bool
) -> None:
    env = scenario
    # Everything of the customer happens on one day, ending with the archive.
    day = day_window(1).start
    customer_at, invoice_at = day + timedelta(hours=1), day + timedelta(hours=2)
    paid_at, archived_at = day + timedelta(hours=3), day + timedelta(hours=4)
    env.edit("customers", PAID_CUSTOMER, created_at=customer_at)
    env.edit("customers", PAID_CUSTOMER, archived_at=archived_at, updated_at=archived_at)
    env.edit("invoices", ITS_INVOICE, updated_at=invoice_at)
    for line in [r for r in env.data["invoice_line_items"] if r["invoice_id"] == ITS_INVOICE]:
        env.edit("invoice_line_items", line["id"], updated_at=invoice_at)
    env.edit("payments", ITS_PAYMENT, updated_at=paid_at)
    for allocation in env.data["payment_allocations"]:
        if allocation["payment_id"] == ITS_PAYMENT:
            env.edit("payment_allocations", allocation["id"], updated_at=paid_at)

    if nightly:
        for offset in range(-SMALL.days, 2):
            sync_all(env, day_window(offset))
    else:
        results = sync_all(env, TimeWindow(WINDOW.start, day_window(1).end))
        assert results["customers"].counts["terminal_waiting"] == 1
        assert results["invoice_payments"].late["customers"]["terminal"] == 1

    customer = row(env, "customers", PAID_CUSTOMER)
    assert customer.status is Status.SYNCED and customer.terminal_done
    assert customer.error_code is None
    assert row(env, "invoices", ITS_INVOICE).status is Status.SYNCED
    assert row(env, "invoice_payments", ITS_PAYMENT).status is Status.SYNCED
    listed = env.get("customers/", include_archived="true")["results"]
    (archived,) = [c for c in listed if c["id"] == customer.thred_id]
    assert archived["is_archived"] is True
    assert env.all_synced() == {}
    assert_nothing_duplicated(env)
    env.assert_books_equal()


def test_a_waiting_archive_is_applied_when_its_last_document_lands_a_day_later(
    scenario: SyncEnv,
) -> None:
    env = scenario
    day = day_window(1).start
    env.edit("customers", PAID_CUSTOMER, archived_at=day, updated_at=day)
    late = day_window(2).start + timedelta(hours=1)  # the payment reaches the warehouse late
    env.edit("payments", ITS_PAYMENT, updated_at=late)
    for allocation in env.data["payment_allocations"]:
        if allocation["payment_id"] == ITS_PAYMENT:
            env.edit("payment_allocations", allocation["id"], updated_at=late)

    sync_all(env, TimeWindow(WINDOW.start, day_window(1).end))

    waiting = row(env, "customers", PAID_CUSTOMER)
    assert waiting.status is Status.SYNCED and not waiting.terminal_done
    assert waiting.error_code == LedgerCode.TERMINAL_WAITING
    assert f"invoice payment {ITS_PAYMENT}" in (waiting.error_message or "")
    assert env.ledger.get("invoice_payments", ITS_PAYMENT) is None  # not extracted yet

    sync_all(env, day_window(2))

    done = row(env, "customers", PAID_CUSTOMER)
    assert done.terminal_done and done.error_code is None
    assert env.all_synced() == {}
    assert_nothing_duplicated(env)
    env.assert_books_equal()


# --- an invoice paid, then voided on the same day ----------------------------------------------


def test_same_day_paid_then_voided_invoice_keeps_the_money_and_names_the_conflict(
    scenario: SyncEnv,
) -> None:
    env = scenario
    paid_at = env.row("payments", ITS_PAYMENT)["updated_at"]
    voided_at = paid_at + timedelta(hours=1)
    env.edit("invoices", ITS_INVOICE, voided_at=voided_at, updated_at=voided_at)

    results = sync_all(env, TimeWindow(WINDOW.start, day_window(1).end))

    # The payment went first (the void waited for it) and is in Thred, once.
    assert row(env, "invoice_payments", ITS_PAYMENT).status is Status.SYNCED
    assert results["invoices"].counts["terminal_waiting"] == 1
    # Thred refuses to void an invoice with a payment on it: quarantined with Thred's reason,
    # the invoice still held (its Thred id kept).
    invoice = row(env, "invoices", ITS_INVOICE)
    assert invoice.status is Status.REJECTED and invoice.thred_id and not invoice.terminal_done
    assert ITS_INVOICE in (invoice.error_message or "")
    assert "payment" in (invoice.error_message or "")
    assert_nothing_duplicated(env)
    unsynced = env.all_synced()
    assert unsynced == {"invoices": {"rejected": 1, "synced": 24}}
    # The books say so: the invoice is named, with its cause.
    report = env.books()
    assert report.verdict != "PASS"
    named = report.differences
    assert set(named["source_id"]) >= {ITS_INVOICE}
    assert set(named[named["source_id"] == ITS_INVOICE]["cause"]) == {"quarantined"}
    # Nothing changes, nothing is sent again.
    again = sync_all(env, day_window(2))
    assert sum(r.api_writes for r in again.values()) == 0
    # The business is updated in Thred (upstream of invoices): the void is tried once more,
    # refused again, and then left alone until the next change.
    at = day_window(3).start + timedelta(hours=1)
    env.edit("businesses", "biz-01", legal_name="Harbour & Finch Roasting Ltd", updated_at=at)
    changed = sync_all(env, day_window(3))
    assert changed["businesses"].counts["updated"] == 1
    assert changed["invoices"].api_writes == 1 and changed["invoices"].counts["rejected"] == 1
    assert row(env, "invoices", ITS_INVOICE).status is Status.REJECTED
    quiet = sync_all(env, day_window(4))
    assert sum(r.api_writes for r in quiet.values()) == 0


# --- full refresh --------------------------------------------------------------------------------


def test_full_refresh_invents_nothing(scenario: SyncEnv) -> None:
    """Voided invoices stay voided and synced, archived customers archived, payouts unchanged;
    a payout reconciled in Thred (which refuses any upsert) stays synced."""
    env = scenario
    sync_all(env)
    voided = "inv-01-00002"
    assert row(env, "invoices", voided).terminal_done
    assert row(env, "customers", "cus-01-0006").terminal_done
    env.admin(
        "reconcile-payout",
        {
            "business_id": env.thred_business,
            "external_id": entities.get("payouts").external_id("po-01-001"),
        },
    )
    before = env.counts()

    for _ in range(2):
        results = sync_all(env, options=SyncOptions(full_refresh=True))
        for name, result in results.items():
            counts = result.counts
            assert counts["unchanged"] == env.warehouse_count(entities.get(name).table), name
            assert not (counts["created"] or counts["drift"] or counts["rejected"]), name
            assert not (counts["deferred"] or counts["unknown"]), name

    assert env.all_synced() == {}
    assert row(env, "invoices", voided).terminal_done
    assert row(env, "customers", "cus-01-0006").terminal_done
    assert env.get(f"invoices/{row(env, 'invoices', voided).thred_id}/")["status"] == "VOIDED"
    assert env.counts() == before
    assert_nothing_duplicated(env)
    env.assert_books_equal()


def test_full_refresh_after_a_void(scenario: SyncEnv) -> None:
    env = scenario
    sync_all(env)
    at = day_window(1).start + timedelta(hours=1)
    env.edit("invoices", "inv-01-00022", voided_at=at, updated_at=at)
    assert env.sync("invoices", day_window(1)).counts["terminal"] == 1

    refreshed = sync_all(env, day_window(1), options=SyncOptions(full_refresh=True))

    assert dict(refreshed["invoices"].counts) == {"unchanged": 1}
    invoice = row(env, "invoices", "inv-01-00022")
    assert invoice.status is Status.SYNCED and invoice.terminal_done
    assert env.all_synced() == {}
    env.assert_books_equal()


# --- Thred answers a repeated external_id with 409 ---------------------------------------------


def test_409_duplicate_external_id_is_adopted_never_quarantined(tmp_path: Path) -> None:
    env = _env(tmp_path, generate(SMALL), duplicate_external_id="conflict")
    try:
        first = sync_all(env)
        assert all(not r.counts["rejected"] for r in first.values())
        objects = env.counts()

        # Every create again: each answered 409, each object looked up and adopted.
        refreshed = sync_all(env, options=SyncOptions(full_refresh=True))
        for name, result in refreshed.items():
            counts = result.counts
            assert counts["unchanged"] == env.warehouse_count(entities.get(name).table), name
            assert not (counts["rejected"] or counts["unknown"] or counts["drift"]), name

        # The ledger lost (restored from an old backup): every object adopted by external_id.
        # (Refunds, whose list has no external_id, are adopted by content: see the next test.)
        lost = [name for name in ORDER if name != "refunds"]
        before = {
            name: {r.source_id: r.thred_id for r in env.ledger.iter_rows(name)} for name in lost
        }
        for name in lost:
            env.wipe_ledger(name)
        replayed = sync_all(env)
        for name, result in replayed.items():
            assert not (result.counts["rejected"] or result.counts["unknown"]), name
        after = {
            name: {r.source_id: r.thred_id for r in env.ledger.iter_rows(name)} for name in lost
        }
        assert after == before

        assert env.counts() == objects
        assert env.all_synced() == {}
        assert_nothing_duplicated(env)
        env.assert_books_equal()
    finally:
        env.close()


def test_409_with_two_candidate_refunds_is_unknown_not_a_guess(scenario: SyncEnv) -> None:
    """Refunds ref-01-0001 and ref-01-0002 are alike (1500 each on inv-01-00001): after losing
    the ledger, a 409 cannot tell which listed refund is which — neither is adopted."""
    env = scenario
    sync_all(env)
    objects = env.counts()
    env.wipe_ledger("refunds")
    env.set_faults(duplicate_external_id="conflict")

    result = env.sync("refunds")

    for refund in ITS_REFUNDS:
        unresolved = row(env, "refunds", refund)
        assert unresolved.status is Status.UNKNOWN
        assert unresolved.error_code == "duplicate_external_id_unresolved"
        assert "2 listed refunds match" in (unresolved.error_message or "")
    assert row(env, "refunds", "ref-01-0003").status is Status.SYNCED
    assert result.counts["rejected"] == 0
    assert env.counts() == objects

    # Back to the documented 200 replay: the stored refund itself answers.
    env.set_faults(duplicate_external_id="replay")
    env.sync("refunds")
    assert env.statuses("refunds") == {"synced": 3}
    assert env.counts() == objects
    env.assert_books_equal()


# --- inactive businesses -------------------------------------------------------------------------

TWO = SeedConfig(
    seed=5,
    businesses=2,
    days=7,
    customers=4,
    vendors=4,
    invoices=10,
    payments=6,
    refunds=1,
    refund_payments=1,
    payouts=1,
    bills=4,
    bill_payments=2,
    vendor_credits=1,
)


def test_an_inactive_business_is_never_sent(tmp_path: Path) -> None:
    data = generate(TWO)
    inactive = data["businesses"][1]["id"]
    data["businesses"][1]["is_active"] = False
    env = _env(tmp_path, data)
    try:
        sync_all(env, TimeWindow(TWO.window_start, TWO.window_end))
        for name in ORDER:
            owned = [r for r in env.ledger.iter_rows(name) if r.business_id == inactive]
            assert owned == [], name
        scopes = env.stats()["objects"]
        assert len([s for s in scopes if not s.startswith("partner:")]) == 1
        assert env.all_synced() == {}
        env.assert_books_equal()

        # The active one turns inactive: its changes are no longer sent; Thred keeps what it has.
        active = data["businesses"][0]["id"]
        objects = env.counts()
        at = day_window(1).start + timedelta(hours=1)
        env.edit("businesses", active, is_active=False, updated_at=at)
        invoice = next(i["id"] for i in data["invoices"] if i["business_id"] == active)
        env.edit("invoices", invoice, memo="changed after the business left", updated_at=at)
        after = sync_all(env, day_window(1))
        assert sum(r.api_writes for r in after.values()) == 0
        assert env.counts() == objects
        assert row(env, "invoices", invoice).status is Status.SYNCED
    finally:
        env.close()


# --- one bad row costs one row --------------------------------------------------------------------


def exploding(external_id: str) -> Factory:
    """A bug in this process while sending one record (not Thred's answer)."""

    def factory(settings: ThredSettings) -> ThredClient:
        class Exploding(ThredClient):
            async def request(self, method: str, path: str, **kw: Any) -> ThredResponse:  # type: ignore[override]
                if (kw.get("json") or {}).get("external_id") == external_id:
                    raise RuntimeError("simulated bug while building the request")
                return await super().request(method, path, **kw)

        return Exploding(settings)

    return factory


def test_a_local_exception_quarantines_only_its_record(scenario: SyncEnv) -> None:
    env = scenario
    broken = entities.get("invoices").external_id("inv-01-00003")

    results = sync_all(env, factory=exploding(broken))

    invoice = row(env, "invoices", "inv-01-00003")
    assert invoice.status is Status.REJECTED and invoice.error_code == LedgerCode.INTERNAL_ERROR
    assert "inv-01-00003" in (invoice.error_message or "")
    assert "RuntimeError" in (invoice.error_message or "")
    assert results["invoices"].counts["created"] == env.warehouse_count(wh.invoices) - 1
    # Every later entity went on; only what needs that invoice waits for it.
    assert env.statuses("invoices") == {"rejected": 1, "synced": 24}
    for name in ("bills", "bill_payments", "vendor_credits", "refunds"):
        assert env.statuses(name) == {"synced": env.warehouse_count(entities.get(name).table)}
    # Quarantined, not pending: the next run does not send it while nothing changed.
    quiet = env.sync("invoices", day_window(1))
    assert quiet.api_calls == 0
    # Released (the bug fixed), it goes through and everything that waited follows.
    env.ledger.release_for_retry("invoices")
    sync_all(env, day_window(1))
    assert env.all_synced() == {}
    assert_nothing_duplicated(env)
    env.assert_books_equal()


def test_an_unreadable_row_is_quarantined_alone(scenario: SyncEnv) -> None:
    env = scenario
    with env.wh_engine.begin() as conn:  # SQLite stores any text: the platform's bug
        conn.execute(
            text("UPDATE payments SET updated_at = 'not a timestamp' WHERE id = :id"),
            {"id": "pay-01-00010"},
        )

    sync_all(env)

    bad = row(env, "invoice_payments", "pay-01-00010")
    assert bad.status is Status.REJECTED and bad.error_code == LedgerCode.UNREADABLE_SOURCE_ROW
    assert bad.error_message is not None and bad.error_message.startswith(
        "invoice payment pay-01-00010: updated_at: "
    )
    assert bad.error_details is not None and list(bad.error_details) == ["updated_at"]
    assert env.statuses("invoice_payments") == {"rejected": 1, "synced": 17}
    assert env.statuses("payouts") == {"synced": 2}


def test_a_configuration_error_stops_the_entity(scenario: SyncEnv) -> None:
    env = scenario
    secret = "k3y-that-must-not-leak"
    wrong = env.settings.model_copy(update={"api_key": SecretStr(secret)})
    engine = SyncEngine(env.warehouse, env.ledger, wrong)

    with pytest.raises(ThredConfigError) as raised:
        engine.sync_entity(entities.get("businesses"), WINDOW)

    assert "THRED_API_KEY" in str(raised.value) and secret not in str(raised.value)
    assert env.statuses("businesses") in ({}, {"pending": 1})
    assert "businesses" not in env.counts()


def test_a_configuration_error_is_not_a_record_failure(scenario: SyncEnv) -> None:
    """Raised while sending one record of a later entity: it propagates, nothing quarantined."""
    env = scenario
    sync_all(env, TimeWindow(WINDOW.start, WINDOW.start + timedelta(days=3)))

    def factory(settings: ThredSettings) -> ThredClient:
        class Unreachable(ThredClient):
            async def request(self, method: str, path: str, **kw: Any) -> ThredResponse:  # type: ignore[override]
                raise ThredConfigError(
                    "Thred cannot be reached at THRED_BASE_URL",
                    settings=("THRED_BASE_URL",),
                    reason="unreachable",
                )

        return Unreachable(settings)

    engine = env.engine(client_factory=factory)
    with pytest.raises(ThredConfigError):
        engine.sync_entity(entities.get("invoices"), WINDOW)
    assert "rejected" not in env.statuses("invoices")


def test_a_mapper_bug_quarantines_only_its_record(scenario: SyncEnv) -> None:
    env = scenario
    spec = entities.get("refunds")

    def buggy(record: Any, ctx: Any, parents: Any) -> Any:
        if record.source_id == "ref-01-0003":
            raise KeyError("amount")  # a bug, not bad data
        return spec.map_record(record, ctx, parents)

    sync_all(env)
    env.wipe_ledger("refunds")
    engine = env.engine()
    result = engine.sync_entity(dataclasses.replace(spec, map_record=buggy), WINDOW)

    bad = row(env, "refunds", "ref-01-0003")
    assert bad.status is Status.REJECTED and bad.error_code == LedgerCode.INTERNAL_ERROR
    assert bad.error_message == "refund ref-01-0003: KeyError: 'amount'"
    assert result.counts["rejected"] == 1 and result.counts["unchanged"] == 2
    assert env.statuses("refunds") == {"rejected": 1, "synced": 2}


# --- vendors: archived in the warehouse, documented calls only ---------------------------------


def test_an_archived_vendor_is_marked_in_the_ledger_not_archived_through_an_undocumented_call(
    scenario: SyncEnv,
) -> None:
    env = scenario
    archived = "ven-01-0003"  # archived in the seed
    sync_all(env)

    marked = row(env, "vendors", archived)
    assert marked.status is Status.SYNCED and marked.error_code == "archived_in_warehouse_only"
    assert archived in (marked.error_message or "") and "archived_at" in (
        marked.error_message or ""
    )
    assert not [
        r for r in env.stats()["requests"] if "archive" in r["route"] and "vendor" in r["route"]
    ]
    vendor = env.thred_object("vendors", archived)
    assert vendor["status"] == "ACTIVE"  # Thred still shows it active: the ledger says why
    others = [r for r in env.ledger.iter_rows("vendors") if r.source_id != archived]
    assert all(r.error_code is None for r in others)
    assert env.sync("vendors").api_calls == 0  # nothing to send, the mark stays
    assert row(env, "vendors", archived).error_code == "archived_in_warehouse_only"

    # Un-archived in the warehouse: the mark goes, still nothing sent.
    at = day_window(1).start + timedelta(hours=1)
    env.edit("vendors", archived, archived_at=None, updated_at=at)
    result = env.sync("vendors", day_window(1))
    assert dict(result.counts) == {"unchanged": 1} and result.api_writes == 0
    cleared = row(env, "vendors", archived)
    assert cleared.status is Status.SYNCED and cleared.error_code is None
