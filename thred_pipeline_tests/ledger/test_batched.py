"""Batched writes: a chunk's intents in one statement, outcomes held back and written in
batches, and a held outcome never lost to a read, a second write of its row, or an error."""

from __future__ import annotations

import pytest

from thred_pipeline.core.records import Status
from thred_pipeline.ledger import Intent, SyncLedger
from thred_pipeline.ledger import store as ledger_store
from thred_pipeline_tests.ledger.test_ledger import VERSION, intent, ledger, synced

__all__ = ["ledger"]  # the fixture, shared with test_ledger.py


def _intents(n: int) -> list[tuple[Intent, object]]:
    return [
        (Intent("invoices", f"inv-{i}", "biz-1", f"invoice-inv-{i}", f"h{i}"), VERSION)
        for i in range(n)
    ]


def test_a_chunks_intents_are_pending_at_once_and_count_attempts(ledger: SyncLedger) -> None:
    ledger.record_intents(_intents(3))  # type: ignore[arg-type]
    ledger.record_intents(_intents(2))  # type: ignore[arg-type]
    rows = {r.source_id: r for r in ledger.iter_rows("invoices")}
    assert {i: r.status for i, r in rows.items()} == {f"inv-{i}": Status.PENDING for i in range(3)}
    assert [rows[f"inv-{i}"].attempts for i in range(3)] == [2, 2, 1]
    assert rows["inv-2"].intended_hash == "h2" and rows["inv-2"].source_updated_at == VERSION


def test_held_outcomes_are_read_back_and_written_when_the_block_ends(ledger: SyncLedger) -> None:
    for i in range(3):
        intent(ledger, f"inv-{i}")
    other = SyncLedger(ledger.engine)  # another reader: sees only what was committed
    with ledger.batched():
        synced(ledger, "inv-0")
        assert other.status_counts("invoices")[Status.SYNCED.value] == 0  # held back
        row = ledger.get("invoices", "inv-0")  # a read writes what is held first
        assert row is not None and row.status is Status.SYNCED
        synced(ledger, "inv-1")
        synced(ledger, "inv-1", digest="h9")  # its row again: the first write goes first
        held = other.get("invoices", "inv-1")
        assert held is not None and held.confirmed_hash == "h1"
    assert other.status_counts("invoices")[Status.SYNCED.value] == 2
    row = other.get("invoices", "inv-1")
    assert row is not None and row.confirmed_hash == "h9"


def test_an_error_in_the_block_still_writes_what_was_held(ledger: SyncLedger) -> None:
    intent(ledger, "inv-1")
    with pytest.raises(RuntimeError), ledger.batched():
        synced(ledger, "inv-1")
        raise RuntimeError("the run failed after Thred answered")
    row = SyncLedger(ledger.engine).get("invoices", "inv-1")
    assert row is not None and row.status is Status.SYNCED


def test_held_outcomes_are_written_every_flush_every(
    ledger: SyncLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ledger_store, "FLUSH_EVERY", 2)
    ledger.record_intents(_intents(3))  # type: ignore[arg-type]
    other = SyncLedger(ledger.engine)
    with ledger.batched():
        for i in range(3):
            synced(ledger, f"inv-{i}")
        assert other.status_counts("invoices")[Status.SYNCED.value] == 2
    assert other.status_counts("invoices")[Status.SYNCED.value] == 3


def test_a_held_update_of_a_missing_row_fails_the_block(ledger: SyncLedger) -> None:
    with pytest.raises(KeyError, match="missing"), ledger.batched():
        synced(ledger, "missing")


def test_a_void_is_written_at_once(ledger: SyncLedger) -> None:
    """A confirmed void/archive is not re-sent safely, so it is never held back."""
    intent(ledger, "inv-1")
    with ledger.batched():
        synced(ledger, "inv-1", terminal=True)
        row = SyncLedger(ledger.engine).get("invoices", "inv-1")
        assert row is not None and row.terminal_done


def test_outcome_rows_met_first_in_a_batch_are_inserted(ledger: SyncLedger) -> None:
    with ledger.batched():
        for i in range(2):
            ledger.record_outcome(
                entity="invoices",
                source_id=f"inv-{i}",
                business_id="biz-1",
                external_id=f"invoice-inv-{i}",
                status=Status.DEFERRED,
                error_code="parent_not_synced",
                error_message="waits for its customer",
            )
    counts = SyncLedger(ledger.engine).status_counts("invoices")
    assert counts[Status.DEFERRED.value] == 2
