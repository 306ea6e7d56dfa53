"""`thred-pipeline demo` end to end: the books equal, and a second run writes nothing."""

from __future__ import annotations

import io
import socket
from pathlib import Path

import pytest

from thred_pipeline.demo import run_demo
from thred_pipeline.warehouse.seed import SeedConfig

pytestmark = pytest.mark.slow

SMALL = SeedConfig(
    businesses=2,
    days=7,
    customers=6,
    vendors=4,
    invoices=20,
    payments=14,
    refunds=3,
    refund_payments=2,
    payouts=1,
    bills=6,
    bill_payments=4,
    vendor_credits=2,
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_demo_passes_then_reruns_without_writes(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    home = tmp_path / "demo"
    out = io.StringIO()
    first = run_demo(home, port=_free_port(), seed=SMALL, out=out)
    text = out.getvalue()
    assert first.ok, text
    assert "Verdict: PASSED" in text
    created = sum(c["created"] for c in first.outcomes.values())
    assert created > 0 and first.api_writes >= created
    assert {"invoices", "invoice_payments", "bills", "payouts"} <= set(first.outcomes)
    assert first.checks_passed > 0 and not first.checks_failed
    assert first.books_verdict == "PASS"
    assert "Books (every active business, once): PASS" in text

    again = io.StringIO()
    second = run_demo(home, port=_free_port(), out=again)
    assert second.ok, again.getvalue()
    assert second.api_writes == 0
    assert sum(c["created"] + c["updated"] for c in second.outcomes.values()) == 0
    assert (home / "demo.env").read_text().count("THRED_BASE_URL") == 1
