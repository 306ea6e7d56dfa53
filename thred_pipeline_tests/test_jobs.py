"""The quarantine retry job releases rejected records through a real ledger and instance."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from thred_pipeline.core.records import Status
from thred_pipeline.jobs import retry_quarantine
from thred_pipeline.ledger import SyncLedger
from thred_pipeline.resources import LedgerResource


def _reject(ledger: SyncLedger, entity: str, source_id: str) -> None:
    ledger.record_outcome(
        entity=entity,
        source_id=source_id,
        business_id="biz-1",
        external_id=f"x-{source_id}",
        status=Status.REJECTED,
        error_code="validation_error",
        error_message="bad",
        intended_hash="h1",
        source_updated_at=datetime(2026, 9, 1, tzinfo=UTC),
    )


def test_retry_quarantine_releases_only_the_selected_records(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = SyncLedger.from_url(url)
    _reject(ledger, "invoices", "inv-1")
    _reject(ledger, "invoices", "inv-2")
    _reject(ledger, "bills", "bill-1")
    with dg.instance_for_test() as instance:
        result = retry_quarantine.execute_in_process(
            instance=instance,
            resources={"ledger": LedgerResource(url=url)},
            run_config={
                "ops": {
                    "release_quarantined": {
                        "config": {"entity": "invoices", "source_ids": ["inv-2"]}
                    }
                }
            },
        )
    assert result.success
    assert result.output_for_node("release_quarantined") == 1
    rows = {r.source_id: r for r in ledger.iter_rows()}
    assert rows["inv-2"].intended_hash is None
    assert rows["inv-1"].intended_hash == "h1"
    assert rows["bill-1"].intended_hash == "h1"
