"""``thred-pipeline demo``: the whole path on a laptop, through real Dagster runs.

Seeds the embedded SQLite warehouse, starts the Thred sandbox (state persisted under the demo
folder, as the real service's would be), then materializes every daily partition the data
spans with the nightly job — one run per partition, like a UI backfill with the default
policy — against a local DAGSTER_HOME, and prints what happened and the reconciliation verdict.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TextIO

import dagster as dg
from sqlalchemy import func, select

from thred_pipeline import config
from thred_pipeline.entities import sync_order
from thred_pipeline.sandbox.config import SandboxConfig
from thred_pipeline.sandbox.server import start_sandbox
from thred_pipeline.warehouse.db import create_warehouse_engine
from thred_pipeline.warehouse.seed import SeedConfig, seed_warehouse

QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
COUNTED = ("created", "updated", "terminal", "unchanged", "deferred", "rejected", "drift")


@dataclass
class DemoReport:
    partitions: int = 0
    failed_runs: list[str] = field(default_factory=list)
    outcomes: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    checks_passed: int = 0
    checks_warned: list[str] = field(default_factory=list)  # explained, e.g. a late parent
    checks_failed: list[str] = field(default_factory=list)  # ERROR: unexplained
    final_checks: dict[str, bool] = field(default_factory=dict)
    books_verdict: str = "not run"
    books_text: str = ""
    api_writes: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """No failed run, no unexplained window difference, and the books equal at the end."""
        return not self.failed_runs and not self.checks_failed and self.books_verdict == "PASS"


def demo_environment(home: Path, port: int) -> dict[str, str]:
    return {
        "THRED_HOME": str(home),
        "THRED_WAREHOUSE_URL": f"sqlite:///{home / 'warehouse.db'}",
        "THRED_LEDGER_URL": f"sqlite:///{home / 'ledger.db'}",
        "THRED_BASE_URL": f"http://127.0.0.1:{port}",
        "THRED_PARTNER_ID": config.DEMO_PARTNER_ID,
        "THRED_API_KEY": config.DEMO_API_KEY,
        "DAGSTER_HOME": str(home / "dagster_home"),
    }


def partition_days(warehouse_url: str) -> list[date]:
    """Every day from the oldest to the newest ``updated_at`` in the warehouse."""
    engine = create_warehouse_engine(warehouse_url)
    lows, highs = [], []
    with engine.connect() as conn:
        for spec in sync_order():
            t = spec.table
            low, high = conn.execute(
                select(func.min(t.c.updated_at), func.max(t.c.updated_at))
            ).one()
            if low is not None:
                lows.append(low)
                highs.append(high)
    engine.dispose()
    if not lows:
        return []
    first, last = min(lows).date(), max(highs).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def run_demo(
    home: Path,
    *,
    port: int = config.DEFAULT_SANDBOX_PORT,
    reseed: bool = False,
    seed: SeedConfig | None = None,
    out: TextIO = sys.stdout,
) -> DemoReport:
    home = home.resolve()
    (home / "dagster_home").mkdir(parents=True, exist_ok=True)
    env = demo_environment(home, port)
    previous = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # Dagster resources resolve EnvVar from the process environment
    try:
        return _run(home, env, port=port, reseed=reseed, seed=seed, out=out)
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _run(
    home: Path,
    env: dict[str, str],
    *,
    port: int,
    reseed: bool,
    seed: SeedConfig | None,
    out: TextIO,
) -> DemoReport:
    (home / "demo.env").write_text("".join(f"export {k}={v}\n" for k, v in env.items()))
    instance_yaml = home / "dagster_home" / "dagster.yaml"
    if not instance_yaml.exists():
        instance_yaml.write_text("telemetry:\n  enabled: false\n")

    if reseed or not (home / "warehouse.db").exists():
        counts = seed_warehouse(env["THRED_WAREHOUSE_URL"], seed or SeedConfig())
        print(f"Seeded the demo warehouse: {sum(counts.values())} rows", file=out)
    days = partition_days(env["THRED_WAREHOUSE_URL"])

    # Imported late: the Dagster definitions read THRED_* at import time.
    from dagster import DagsterInstance

    from thred_pipeline.definitions import defs
    from thred_pipeline.jobs import BOOKS_JOB_NAME, NIGHTLY_JOB_NAME

    # One line per partition is printed below; per-asset engine lines would drown it.
    logging.getLogger("thred_pipeline").setLevel(logging.WARNING)
    report = DemoReport()
    started = time.monotonic()
    sandbox = start_sandbox(SandboxConfig(data_dir=home / "sandbox"), port=port)
    try:
        instance = DagsterInstance.get()
        job = defs.resolve_job_def(NIGHTLY_JOB_NAME)
        backfill = f"demo-{uuid.uuid4().hex[:8]}"
        print(
            f"Syncing {len(days)} daily partitions ({days[0]} .. {days[-1]}) "
            f"through Dagster, backfill tag thred/backfill={backfill}",
            file=out,
        )
        for day in days:
            result = job.execute_in_process(
                partition_key=day.isoformat(),
                instance=instance,
                tags={"thred/backfill": backfill},
                run_config=QUIET_RUN_CONFIG,
                raise_on_error=False,
            )
            _collect(day, result, report, last=day == days[-1])
            _print_run(day, result, out)
        report.partitions = len(days)
        books = defs.resolve_job_def(BOOKS_JOB_NAME).execute_in_process(
            instance=instance, run_config=QUIET_RUN_CONFIG, raise_on_error=False
        )
        _collect_books(books, report)
    finally:
        sandbox.stop()
    report.seconds = time.monotonic() - started
    _print_summary(report, home, out)
    return report


def _collect(day: date, result: Any, report: DemoReport, *, last: bool) -> None:
    if not result.success:
        report.failed_runs.append(day.isoformat())
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        entity = mat.asset_key.path[-1]
        for key in COUNTED:
            value = mat.metadata.get(key)
            if value is not None:
                report.outcomes[entity][key] += int(value.value)
        writes = mat.metadata.get("api_writes")
        if writes is not None:
            report.api_writes += int(writes.value)
    for evaluation in result.get_asset_check_evaluations():
        name = f"{evaluation.asset_key.path[-1]}.{evaluation.check_name}"
        if evaluation.passed:
            report.checks_passed += 1
        elif evaluation.severity == dg.AssetCheckSeverity.WARN:
            report.checks_warned.append(f"{day}: {name} — {evaluation.description}")
        else:
            report.checks_failed.append(f"{day}: {name} — {evaluation.description}")
        if last:
            report.final_checks[name] = evaluation.passed


def _collect_books(result: Any, report: DemoReport) -> None:
    if not result.success:
        report.books_verdict = "FAILED TO RUN"
        return
    for event in result.get_asset_materialization_events():
        metadata = event.event_specific_data.materialization.metadata
        report.books_verdict = str(metadata["verdict"].value)
        if "report" in metadata:
            report.books_text = str(metadata["report"].value)
    for evaluation in result.get_asset_check_evaluations():
        report.final_checks[f"books.{evaluation.check_name}"] = evaluation.passed


def _print_run(day: date, result: Any, out: TextIO) -> None:
    totals: Counter[str] = Counter()
    for event in result.get_asset_materialization_events():
        md = event.event_specific_data.materialization.metadata
        for key in ("created", "updated", "deferred", "rejected"):
            if key in md:
                totals[key] += int(md[key].value)
    evaluations = result.get_asset_check_evaluations()
    passed = sum(e.passed for e in evaluations)
    status = "ok " if result.success else "FAILED"
    print(
        f"  {day}  {status}  created {totals['created']:4d}  updated {totals['updated']:3d}  "
        f"deferred {totals['deferred']:3d}  rejected {totals['rejected']:3d}  "
        f"checks {passed}/{len(evaluations)}",
        file=out,
    )


def _print_summary(report: DemoReport, home: Path, out: TextIO) -> None:
    print("\nPer entity (all partitions):", file=out)
    header = f"  {'entity':18s}" + "".join(f"{k:>10s}" for k in COUNTED)
    print(header, file=out)
    for spec in sync_order():
        counts = report.outcomes.get(f"{spec.name}", Counter())
        print(f"  {spec.name:18s}" + "".join(f"{counts[k]:10d}" for k in COUNTED), file=out)
    total_checks = report.checks_passed + len(report.checks_failed) + len(report.checks_warned)
    print(
        f"\nWindow checks: {report.checks_passed}/{total_checks} passed over "
        f"{report.partitions} partitions, {len(report.checks_warned)} WARN (explained, e.g. a "
        f"record waiting for a parent that arrives on a later day), "
        f"{len(report.checks_failed)} ERROR; API writes {report.api_writes}; "
        f"{report.seconds:.1f}s",
        file=out,
    )
    for failure in report.checks_failed[:20]:
        print(f"  FAILED {failure}", file=out)
    books_checks = {k: v for k, v in report.final_checks.items() if k.startswith("books.")}
    print(
        f"Books (every active business, once): {report.books_verdict}, "
        f"{sum(books_checks.values())}/{len(books_checks)} checks passed",
        file=out,
    )
    if report.books_text:
        print(report.books_text, file=out)
    for day in report.failed_runs[:20]:
        print(f"  run FAILED for partition {day}", file=out)
    verdict = "PASSED" if report.ok else "FAILED"
    print(f"Verdict: {verdict}", file=out)
    print(
        "\nOpen these runs in the Dagster UI:\n"
        f"  . {home / 'demo.env'} && .venv/bin/dagster dev -w workspace.yaml\n"
        "(start `.venv/bin/thred-pipeline sandbox --data-dir "
        f"{home / 'sandbox'}` too if you launch new runs from the UI)",
        file=out,
    )
