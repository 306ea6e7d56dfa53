"""The sync ledger's state machine, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from thred_pipeline.sync.ledger import RETRY_FIRST, RETRY_REQUESTED, SyncLedger
from thred_pipeline.sync.records import Status
from thred_pipeline_tests.sync.conftest import Backend

VERSION = datetime(2026, 9, 3, 10, 15, 30, 123456, tzinfo=UTC)
LATER = VERSION + timedelta(hours=5, microseconds=7)


@pytest.fixture
def ledger(backend: Backend) -> Iterator[SyncLedger]:
    led = SyncLedger.from_url(backend.ledger_url)
    led.create_schema()  # idempotent
    yield led
    led.engine.dispose()


def intent(ledger: SyncLedger, source_id: str = "inv-1", digest: str = "h1", **kw: object) -> None:
    ledger.record_intent(
        entity=str(kw.get("entity", "invoices")),
        source_id=source_id,
        business_id="biz-1",
        external_id=f"invoice-{source_id}",
        intended_hash=digest,
        source_updated_at=kw.get("at", VERSION),  # type: ignore[arg-type]
    )


def synced(ledger: SyncLedger, source_id: str = "inv-1", digest: str = "h1", **kw: object) -> None:
    ledger.record_synced(
        entity=str(kw.get("entity", "invoices")),
        source_id=source_id,
        thred_id=f"t-{source_id}",
        confirmed_hash=digest,
        confirmed_updated_at=kw.get("at", VERSION),  # type: ignore[arg-type]
        terminal_done=bool(kw.get("terminal", False)),
        confirmed_body=kw.get("body", {"invoice_number": "HF-1", "total": 100}),  # type: ignore[arg-type]
    )


def outcome(ledger: SyncLedger, status: Status, source_id: str = "inv-1", **kw: object) -> None:
    ledger.record_outcome(
        entity="invoices",
        source_id=source_id,
        business_id="biz-1",
        external_id=f"invoice-{source_id}",
        status=status,
        error_code=str(kw.get("code", status.value)),
        error_message=str(kw.get("message", f"{status.value} because")),
        error_details=kw.get("details"),  # type: ignore[arg-type]
        intended_hash=kw.get("digest"),  # type: ignore[arg-type]
        source_updated_at=kw.get("at"),  # type: ignore[arg-type]
        thred_id=kw.get("thred_id"),  # type: ignore[arg-type]
    )


def test_intent_then_synced(ledger: SyncLedger) -> None:
    intent(ledger)
    pending = ledger.get("invoices", "inv-1")
    assert pending is not None
    assert pending.status is Status.PENDING
    assert pending.intended_hash == "h1" and pending.confirmed_hash is None
    assert pending.thred_id is None and pending.attempts == 1
    assert pending.source_updated_at == VERSION  # microseconds and UTC survive both backends
    assert pending.external_id == "invoice-inv-1" and pending.business_id == "biz-1"
    assert ledger.source_ids_with_status("invoices", RETRY_FIRST) == ["inv-1"]

    time.sleep(0.002)
    synced(ledger)
    row = ledger.get("invoices", "inv-1")
    assert row is not None
    assert row.status is Status.SYNCED
    assert row.thred_id == "t-inv-1" and row.confirmed_hash == "h1"
    assert row.confirmed_updated_at == VERSION
    assert row.attempts == 0 and row.error_code is None and row.error_details is None
    assert row.synced_at is not None and row.synced_at.tzinfo is not None
    assert row.status_since > pending.status_since
    assert row.first_seen_at == pending.first_seen_at
    assert ledger.confirmed_body("invoices", "inv-1") == {"invoice_number": "HF-1", "total": 100}
    assert ledger.source_ids_with_status("invoices", RETRY_FIRST) == []
    assert ledger.thred_ids("invoices", ["inv-1", "inv-2", ""]) == {"inv-1": "t-inv-1"}


def test_a_new_intent_keeps_what_thred_confirmed(ledger: SyncLedger) -> None:
    intent(ledger)
    synced(ledger, terminal=True)
    intent(ledger, digest="h2", at=LATER)
    intent(ledger, digest="h2", at=LATER)
    row = ledger.get("invoices", "inv-1")
    assert row is not None
    assert row.status is Status.PENDING and row.attempts == 2
    assert row.intended_hash == "h2" and row.source_updated_at == LATER
    assert row.thred_id == "t-inv-1" and row.confirmed_hash == "h1" and row.terminal_done
    assert row.confirmed_updated_at == VERSION


def test_status_since_is_kept_while_the_status_repeats(ledger: SyncLedger) -> None:
    outcome(ledger, Status.DEFERRED, message="customer_id: customers 'c1' is not in Thred yet")
    first = ledger.get("invoices", "inv-1")
    assert first is not None and first.status is Status.DEFERRED
    time.sleep(0.002)
    outcome(ledger, Status.DEFERRED, message="customer_id: customers 'c2' is not in Thred yet")
    again = ledger.get("invoices", "inv-1")
    assert again is not None
    assert again.status_since == first.status_since
    assert again.error_message == "customer_id: customers 'c2' is not in Thred yet"
    time.sleep(0.002)
    outcome(ledger, Status.REJECTED, details={"line_items[0].tax_code": ["unknown"]})
    rejected = ledger.get("invoices", "inv-1")
    assert rejected is not None and rejected.status is Status.REJECTED
    assert rejected.status_since > first.status_since
    assert rejected.error_details == {"line_items[0].tax_code": ["unknown"]}
    assert rejected.first_seen_at == first.first_seen_at

    # The same holds for updates of existing rows (record_synced, touch_confirmed).
    intent(ledger)
    synced(ledger)
    since = ledger.get("invoices", "inv-1")
    assert since is not None
    time.sleep(0.002)
    synced(ledger, digest="h2")
    ledger.touch_confirmed("invoices", "inv-1", LATER)
    after = ledger.get("invoices", "inv-1")
    assert after is not None and after.status_since == since.status_since


def test_outcomes_keep_the_thred_id_and_the_hash_unless_given(ledger: SyncLedger) -> None:
    intent(ledger)
    synced(ledger)
    outcome(ledger, Status.UNKNOWN, code="uncertain")
    row = ledger.get("invoices", "inv-1")
    assert row is not None and row.status is Status.UNKNOWN
    assert row.thred_id == "t-inv-1" and row.intended_hash == "h1" and row.confirmed_hash == "h1"
    outcome(ledger, Status.DRIFT, digest="h3", at=LATER, thred_id="t-inv-1")
    row = ledger.get("invoices", "inv-1")
    assert row is not None and row.intended_hash == "h3" and row.source_updated_at == LATER
    outcome(ledger, Status.REJECTED, source_id="inv-2", digest=None)
    fresh = ledger.get("invoices", "inv-2")
    assert fresh is not None and fresh.thred_id is None and fresh.intended_hash is None
    # A payload that never reached Thred (invalid locally) must not look like one it refused.
    ledger.record_outcome(
        entity="invoices",
        source_id="inv-1",
        business_id="biz-1",
        external_id="invoice-inv-1",
        status=Status.REJECTED,
        error_code="invalid_source_data",
        error_message="invoice inv-1: line_items[0].tax_code: unknown tax code 'VAT_99'",
        forget_intended=True,
    )
    row = ledger.get("invoices", "inv-1")
    assert row is not None and row.intended_hash is None and row.confirmed_hash == "h1"


def test_record_synced_without_a_body_keeps_the_stored_one(ledger: SyncLedger) -> None:
    intent(ledger)
    synced(ledger, body={"memo": "first"})
    synced(ledger, digest="h2", body=None)
    assert ledger.confirmed_body("invoices", "inv-1") == {"memo": "first"}
    synced(ledger, digest="h3", body={})
    assert ledger.confirmed_body("invoices", "inv-1") == {}  # nothing kept to compare
    assert ledger.confirmed_body("invoices", "missing") is None


def test_release_for_retry(ledger: SyncLedger) -> None:
    for source_id in ("inv-1", "inv-2", "inv-3"):
        outcome(ledger, Status.REJECTED, source_id=source_id, digest=f"h-{source_id}")
    outcome(ledger, Status.DRIFT, source_id="inv-4", digest="h4")
    outcome(ledger, Status.DEFERRED, source_id="inv-5")
    ledger.record_outcome(
        entity="bills",
        source_id="bill-1",
        business_id="biz-1",
        external_id="bill-bill-1",
        status=Status.REJECTED,
        error_code="validation_error",
        error_message="bill bill-1: line_items[0].quantity: must be positive",
        intended_hash="hb",
    )
    before = ledger.get("invoices", "inv-1")
    assert before is not None

    assert ledger.release_for_retry("invoices", ["inv-1", "inv-9"]) == 1
    released = ledger.get("invoices", "inv-1")
    assert released is not None
    assert released.status is Status.UNKNOWN and released.error_code == RETRY_REQUESTED
    assert released.intended_hash is None
    assert released.error_message == before.error_message  # the reason stays readable
    assert ledger.source_ids_with_status("invoices", RETRY_FIRST) == ["inv-1"]

    assert ledger.release_for_retry("invoices") == 2
    assert ledger.status_counts("invoices")["unknown"] == 3
    assert ledger.status_counts("invoices")["drift"] == 1  # drift is not retried
    assert ledger.status_counts("invoices")["deferred"] == 1
    assert ledger.status_counts("bills")["rejected"] == 1
    assert ledger.release_for_retry() == 1
    assert ledger.release_for_retry() == 0


def test_touch_confirmed(ledger: SyncLedger) -> None:
    intent(ledger)
    synced(ledger)
    outcome(ledger, Status.DRIFT, digest="h2", at=LATER, message="customer changed after sync")
    ledger.touch_confirmed("invoices", "inv-1", LATER)
    row = ledger.get("invoices", "inv-1")
    assert row is not None
    assert row.status is Status.SYNCED
    assert row.confirmed_updated_at == LATER and row.source_updated_at == LATER
    assert row.error_code is None and row.error_message is None
    assert row.confirmed_hash == "h1"
    with pytest.raises(KeyError, match="missing"):
        ledger.touch_confirmed("invoices", "missing", LATER)
    with pytest.raises(KeyError):
        synced(ledger, source_id="missing")


def test_reads(ledger: SyncLedger) -> None:
    ids = [f"pay-{i:04d}" for i in range(503)]  # more than one IN batch
    for i, source_id in enumerate(ids):
        intent(ledger, source_id=source_id, entity="invoice_payments")
        if i % 50 == 0:
            synced(ledger, source_id=source_id, entity="invoice_payments")
    found = ledger.get_many("invoice_payments", [*ids, *ids[:5]])
    assert set(found) == set(ids)
    assert len(ledger.thred_ids("invoice_payments", ids)) == 11
    assert ledger.created_counts("invoice_payments") == {"biz-1": 11}
    counts = ledger.status_counts("invoice_payments")
    assert counts["synced"] == 11 and counts["pending"] == 492 and counts["drift"] == 0
    assert ledger.status_counts("invoice_payments", business_id="other")["synced"] == 0
    pending = ledger.source_ids_with_status("invoice_payments", [Status.PENDING])
    assert pending == sorted(pending) and len(pending) == 492
    rows = list(ledger.iter_rows("invoice_payments", statuses=[Status.SYNCED]))
    assert len(rows) == 11 and all(r.status is Status.SYNCED for r in rows)
    assert list(ledger.iter_rows("invoices")) == []
    assert ledger.get("invoices", "pay-0000") is None
