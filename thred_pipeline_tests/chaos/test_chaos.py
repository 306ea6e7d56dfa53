"""The chaos suite: the real Dagster job against the sandbox with every fault on, and SIGKILLs.

Both scenarios sync the same seeded two-business warehouse with five bad rows planted in it
(``scenario.py``), partition by partition as a backfill does, and then assert the promise of
issue 4: Thred holds exactly one object per external_id, every good record is there (ledger
``synced``), every bad row is quarantined with a reason, whatever depends on a bad row waits,
nothing is lost, and every reconciliation check passes.

Each test prints its figures (``CHAOS FIGURES``); docs/reliability.md quotes a run of them.
Run with ``pytest -m chaos -s thred_pipeline_tests/chaos`` to see them.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from pydantic import SecretStr

from thred_pipeline import entities
from thred_pipeline.sandbox import SandboxConfig, start_sandbox
from thred_pipeline.sync.ledger import SyncLedger
from thred_pipeline.sync.reconcile import Reconciler
from thred_pipeline.sync.records import Status, TimeWindow
from thred_pipeline.thred.settings import ThredSettings
from thred_pipeline.warehouse.db import create_warehouse_engine
from thred_pipeline.warehouse.extract import Warehouse
from thred_pipeline_tests.chaos.dagster_runs import (
    TunedThredResource,
    counting_client_logs,
    fast_retry_assets,
    resources,
    summarize,
)
from thred_pipeline_tests.chaos.scenario import (
    CHAOS_SEED,
    PARTITIONS,
    BadRow,
    build_warehouse,
    check_bad_rows,
)
from thred_pipeline_tests.chaos.world import (
    API_KEY,
    PARTNER_ID,
    Audit,
    Outages,
    TokenRevoker,
    audit,
    sandbox_faults,
    sandbox_stats,
)

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]

# All faults at once. 429s come from a per-business token bucket, so their share depends on
# the request rate; the other fractions are per request (drops: per write).
FAULTS: dict[str, Any] = {
    "seed": 2026,
    "latency_ms": 2,
    "jitter_ms": 10,
    "rate_limit_rps": 22,
    "rate_limit_burst": 8,
    "error_500_rate": 0.02,
    "error_502_rate": 0.015,
    "error_503_rate": 0.015,
    "hang_rate": 0.01,
    "hang_s": 2.0,
    "drop_after_commit_rate": 0.02,
}
# A client that gives up early: a 1 s timeout (hangs last 2 s), 4 attempts, a 2.5 s budget, so
# some writes end ``unknown`` and Dagster's step retry and the ledger have to resolve them.
CLIENT: dict[str, Any] = {
    "timeout_s": 1.0,
    "max_attempts": 4,
    "backoff_base_s": 0.05,
    "backoff_max_s": 1.0,
    "retry_budget_s": 2.5,
}
TOKEN_REVOCATION_EVERY_S = 5.0
OUTAGE_EVERY_S, OUTAGE_S = 20.0, 2.0  # a total outage (every request 503) now and then


def _thred(url: str) -> TunedThredResource:
    return TunedThredResource(base_url=url, partner_id=PARTNER_ID, api_key=API_KEY, **CLIENT)


def _reconcile_everything(warehouse_url: str, ledger: SyncLedger, url: str) -> list[str]:
    """Every check of every entity for the last partition, independently of Dagster."""
    engine = create_warehouse_engine(warehouse_url)
    settings = ThredSettings(base_url=url, partner_id=PARTNER_ID, api_key=SecretStr(API_KEY))
    window = TimeWindow(CHAOS_SEED.window_end - timedelta(days=1), CHAOS_SEED.window_end)
    failed: list[str] = []
    try:
        reconciler = Reconciler(Warehouse(engine), ledger, settings)
        for spec in entities.sync_order():
            for outcome in reconciler.check_all(spec, window):
                if not outcome.passed:
                    failed.append(f"{spec.name}.{outcome.measure}: {outcome.summary}")
    finally:
        engine.dispose()
    return failed


def _final_audit(warehouse_url: str, ledger: SyncLedger, url: str, bad: list[BadRow]) -> Audit:
    engine = create_warehouse_engine(warehouse_url)
    try:
        report = audit(engine, ledger, url, {b.key: b.status for b in bad})
    finally:
        engine.dispose()
    report.assert_ok()
    check_bad_rows(ledger, bad)
    assert report.duplicates == 0 and not report.lost
    return report


def _print_figures(capsys: pytest.CaptureFixture[str], title: str, figures: dict[str, Any]) -> None:
    with capsys.disabled():
        print(f"\n=== CHAOS FIGURES: {title} ===")
        for key, value in figures.items():
            print(f"{key:28s} {json.dumps(value, sort_keys=True)}")


def _replays(stats: dict[str, Any]) -> int:
    """Creates Thred answered 200 (it already held the external_id / Idempotency-Key)."""
    return sum(
        row["count"]
        for row in stats["requests"]
        if row["method"] == "POST"
        and row["status"] == 200
        and not any(part in row["route"] for part in ("oauth2", "/void/", "/archive/"))
    )


def _statuses(stats: dict[str, Any]) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for row in stats["requests"]:
        counts[str(row["status"])] += row["count"]
    return dict(sorted(counts.items()))


def test_every_fault_at_once_then_one_clean_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    warehouse_url, bad = build_warehouse(tmp_path / "warehouse.db")
    ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    push = fast_retry_assets()
    (tmp_path / "dagster").mkdir()
    started = time.monotonic()
    with (
        start_sandbox(SandboxConfig()) as sandbox,
        dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance,
        counting_client_logs() as client_logs,
    ):
        url = sandbox.url
        res = resources(warehouse_url, ledger_url, _thred(url), lookback_hours=2.0)
        quiet = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}

        def run(partition: str) -> Any:
            result = dg.materialize(
                push,
                partition_key=partition,
                resources=res,
                instance=instance,
                run_config=quiet,
                raise_on_error=False,
            )
            return summarize(partition, result)

        # Pass 1: every partition, in order, with every fault on.
        sandbox_faults(url, **FAULTS)
        with (
            TokenRevoker(url, every_s=TOKEN_REVOCATION_EVERY_S) as revoker,
            Outages(url, FAULTS, every_s=OUTAGE_EVERY_S, length_s=OUTAGE_S) as outages,
        ):
            faulty = [run(p) for p in PARTITIONS]
        chaos_stats = sandbox_stats(url)
        faulty_s = time.monotonic() - started

        # Pass 2: faults off; the partitions that failed (and the next nightly run) once more.
        sandbox_faults(url)
        again = [s.partition for s in faulty if not s.success or s.checks_failed]
        if PARTITIONS[-1] not in again:
            again.append(PARTITIONS[-1])
        clean = [run(p) for p in again]
        elapsed = time.monotonic() - started

        for summary in clean:
            assert summary.success, summary
            assert summary.checks_failed == [], summary.checks_failed
        ledger = SyncLedger.from_url(ledger_url)
        report = _final_audit(warehouse_url, ledger, url, bad)
        assert _reconcile_everything(warehouse_url, ledger, url) == []
        warned = {w.split(".", 1)[0] for s in clean for w in s.warnings_failed}
        assert {"customers", "invoices", "refunds", "bill_payments"} <= warned
        final_stats = sandbox_stats(url)

    faults = chaos_stats["faults"]
    injected = {k: v for k, v in sorted(faults.items()) if k != "latency"}
    assert injected.get("429", 0) and injected.get("drop_after_commit", 0), injected
    assert injected.get("hang", 0) and sum(injected.get(k, 0) for k in ("500", "502", "503"))
    assert client_logs.counts["retries"] > 0
    figures = {
        "warehouse records": report.records,
        "good records (synced)": report.ledger["synced"],
        "bad rows planted": len(bad),
        "waiting on a bad row": report.expected["deferred"] - 1,
        "ledger statuses": dict(report.ledger),
        "requests (faulty pass)": chaos_stats["requests_total"],
        "requests (total)": final_stats["requests_total"],
        "faults injected": injected,
        "responses by status": _statuses(chaos_stats),
        "replayed creates (200)": _replays(final_stats),
        "token revocations": revoker.revocations,
        "outages (all 503)": f"{outages.outages} x {OUTAGE_S:g} s",
        "client retries": client_logs.counts["retries"],
        "client gave up (unknown)": client_logs.counts["gave_up"],
        "token renewals after 401": client_logs.counts["token_renewals"],
        "dagster step retries": sum(s.retried_steps for s in faulty),
        "partitions failed (faulty)": [s.partition for s in faulty if not s.success],
        "partitions re-run (clean)": again,
        "duplicates": report.duplicates,
        "lost": len(report.lost),
        "faulty pass seconds": round(faulty_s, 1),
        "total seconds": round(elapsed, 1),
    }
    _print_figures(capsys, "all faults at once", figures)


# --- SIGKILL ---------------------------------------------------------------------------------

KILLS = 6
KILL_RNG_SEED = 4242


def _worker(env: dict[str, str], partitions: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "thred_pipeline_tests.chaos.run_worker", *partitions],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def _pending(ledger_db: Path) -> int:
    with sqlite3.connect(f"file:{ledger_db}?mode=ro", uri=True, timeout=5) as conn:
        row = conn.execute(
            "SELECT COUNT(*) FROM thred_sync_ledger WHERE status = 'pending'"
        ).fetchone()
    return int(row[0])


def _kill_mid_write(ledger_db: Path, patience_s: float) -> bool:
    """Wait until a write is in flight (its intent is committed, its outcome is not)."""
    deadline = time.monotonic() + patience_s
    while time.monotonic() < deadline:
        if _pending(ledger_db):
            return True
        time.sleep(0.002)
    return False


def _wait_ready(worker: subprocess.Popen[str]) -> None:
    assert worker.stdout is not None
    line = worker.stdout.readline()
    assert line.strip() == "ready", line


def test_sigkill_at_random_points_then_run_to_completion(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    warehouse_url, bad = build_warehouse(tmp_path / "warehouse.db")
    ledger_db = tmp_path / "ledger.db"
    ledger_url = f"sqlite:///{ledger_db}"
    SyncLedger.from_url(ledger_url).engine.dispose()  # schema first: a kill may come early
    rng = random.Random(KILL_RNG_SEED)
    started = time.monotonic()
    kills: list[dict[str, Any]] = []
    with start_sandbox(SandboxConfig()) as sandbox:
        url = sandbox.url
        # Latency keeps writes in flight, so a kill lands between a request and its outcome.
        sandbox_faults(url, seed=7, latency_ms=15, jitter_ms=20)
        env = {
            **os.environ,
            "THRED_WAREHOUSE_URL": warehouse_url,
            "THRED_LEDGER_URL": ledger_url,
            "THRED_BASE_URL": url,
            "THRED_PARTNER_ID": PARTNER_ID,
            "THRED_API_KEY": API_KEY,
            "PYTHONPATH": str(REPO),
            "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        }
        (tmp_path / "dagster_home").mkdir()
        (tmp_path / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        remaining = list(PARTITIONS)
        for _ in range(KILLS):
            worker = _worker(env, remaining)
            _wait_ready(worker)
            before = sandbox_stats(url)["requests_total"]
            time.sleep(rng.uniform(0.5, 8.0))
            aimed = len(kills) % 2 == 0 and _kill_mid_write(ledger_db, patience_s=5.0)
            worker.send_signal(signal.SIGKILL)
            worker.wait(30)
            assert worker.stdout is not None
            finished = [json.loads(line)["partition"] for line in worker.stdout if line.strip()]
            remaining = remaining[len(finished) :] or [PARTITIONS[-1]]
            ledger = SyncLedger.from_url(ledger_url)
            in_flight = ledger.status_counts()["pending"]
            ledger.engine.dispose()
            kills.append(
                {
                    "requests_before_kill": sandbox_stats(url)["requests_total"] - before,
                    "partitions_finished": len(finished),
                    "pending_left": in_flight,
                    "aimed_at_a_write": aimed,
                }
            )
        # Then the worker runs to completion, from the partition it was killed in.
        worker = _worker(env, remaining)
        _wait_ready(worker)
        out, _ = worker.communicate(timeout=600)
        lines = [json.loads(line) for line in out.splitlines() if line.strip()]
        assert worker.returncode == 0, lines
        assert [line["partition"] for line in lines] == remaining
        assert all(line["success"] and not line["checks_failed"] for line in lines), lines

        ledger = SyncLedger.from_url(ledger_url)
        assert ledger.status_counts()["pending"] == 0
        assert ledger.status_counts()["unknown"] == 0
        report = _final_audit(warehouse_url, ledger, url, bad)
        assert _reconcile_everything(warehouse_url, ledger, url) == []
        stats = sandbox_stats(url)
    elapsed = time.monotonic() - started

    assert sum(k["requests_before_kill"] > 0 for k in kills) >= KILLS // 2, kills
    # At least one kill cut a write between its request and its ledger outcome.
    assert any(k["pending_left"] for k in kills), kills
    figures = {
        "warehouse records": report.records,
        "good records (synced)": report.ledger["synced"],
        "bad rows planted": len(bad),
        "kills (SIGKILL)": len(kills),
        "kills with writes in flight": sum(k["pending_left"] > 0 for k in kills),
        "pending rows left by kills": sum(k["pending_left"] for k in kills),
        "kills": kills,
        "requests (total)": stats["requests_total"],
        "responses by status": _statuses(stats),
        "replayed creates (200)": _replays(stats),
        "duplicates": report.duplicates,
        "lost": len(report.lost),
        "total seconds": round(elapsed, 1),
    }
    _print_figures(capsys, "SIGKILL", figures)


def test_the_scenario_plants_what_it_says(tmp_path: Path) -> None:
    _, bad = build_warehouse(tmp_path / "warehouse.db")
    assert {b.status for b in bad} == {Status.REJECTED, Status.DEFERRED}
    assert len({b.entity for b in bad}) == len(bad)
