"""`thred-pipeline reconcile` as a user runs it: exit 0 when the books are equal, 3 when every
difference is explained, 1 when one is not — naming the record, the business and the money."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from thred_devtools.sandbox import SandboxConfig, start_sandbox

from thred_pipeline.ledger import SyncLedger
from thred_pipeline_tests.test_cli import EVERYTHING, run, seeded

__all__ = ["seeded"]


@pytest.fixture
def env(tmp_path: Path, seeded: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    from thred_pipeline_tests.test_cli import env as working_env

    with start_sandbox(SandboxConfig()) as sandbox:
        config = working_env.__wrapped__(tmp_path, seeded, sandbox.url)  # type: ignore[attr-defined]
        yield config


def test_reconcile_exit_codes_follow_the_books(env: dict[str, str]) -> None:
    synced = run(env, "sync", *EVERYTHING)
    assert synced.code == 0, synced.err

    equal = run(env, "reconcile")
    assert equal.code == 0, equal.out + equal.err
    assert "verdict: PASS" in equal.out

    # A record waiting for a customer the warehouse does not have: explained, exit 3.
    engine = create_engine(env["THRED_WAREHOUSE_URL"])
    with engine.begin() as conn:
        invoice = conn.execute(
            text("SELECT id FROM invoices WHERE voided_at IS NULL ORDER BY id LIMIT 1")
        ).scalar_one()
        payment = conn.execute(text("SELECT id, business_id FROM payments LIMIT 1")).one()
        conn.execute(
            text("UPDATE invoices SET customer_id = 'cus-nowhere', updated_at = :at WHERE id = :i"),
            {"at": datetime(2026, 11, 1, tzinfo=UTC), "i": invoice},
        )
    engine.dispose()
    assert run(env, "sync", *EVERYTHING).code == 3  # the invoice waits for its customer
    explained = run(env, "reconcile")
    assert explained.code == 3, explained.out + explained.err
    assert invoice in explained.out and "verdict: WARN" in explained.out

    # A payment Thred lost: unexplained, exit 1, named with its business and money.
    ledger = SyncLedger.from_url(env["THRED_LEDGER_URL"])
    thred_business = ledger.thred_ids("businesses", [payment.business_id])[payment.business_id]
    ledger.engine.dispose()
    deleted = httpx.post(
        f"{env['THRED_BASE_URL']}/_sandbox/delete-object",
        json={
            "business_id": thred_business,
            "collection": "invoice_payments",
            "external_id": f"payment-{payment.id}",
        },
    )
    assert deleted.status_code == 200, deleted.text
    lost = run(env, "reconcile", "--json")
    assert lost.code == 1, lost.out + lost.err
    report = json.loads(lost.out)
    assert report["verdict"] == "FAIL"
    rows = [
        d for c in report["checks"] for d in c["differences"] if c["name"] == "invoice_payments"
    ]
    assert [(r["source_id"], r["business_id"], r["kind"]) for r in rows] == [
        (payment.id, payment.business_id, "missing in Thred")
    ]
    assert rows[0]["money_cents"] > 0
    assert report["money_at_stake"][payment.business_id] > 0

    window = run(env, "reconcile", *EVERYTHING, "--entity", "invoice_payments")
    assert window.code == 1 and payment.id in window.out
