"""``thred-dev demo``: the whole path on a laptop, through real Dagster runs.

Seeds the embedded SQLite warehouse, starts the Thred sandbox (state persisted under the demo
folder, as the real service's would be), then launches a Dagster backfill of the nightly job
over every daily partition the data spans, against a local DAGSTER_HOME, and prints what
happened and the reconciliation verdict.

The backfill is a real one: a job backfill is recorded in the instance (the job's backfill
history in the UI lists it, with its runs) and Dagster's own backfill logic — what the daemon
runs — creates and submits one run per partition. The demo has no daemon and no code server,
so the instance it opens runs each submitted run at once, in this process
(:class:`DemoRunLauncher`, in memory only: the ``dagster.yaml`` a later ``dagster dev`` reads
is not touched). Ctrl-C cancels the backfill and stops the sandbox.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import sys
import threading
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import dagster as dg
import yaml
from dagster._core.execution.api import execute_run
from dagster._core.launcher import LaunchRunContext
from dagster._core.launcher.sync_in_memory_run_launcher import SyncInMemoryRunLauncher
from dagster._core.storage.tags import PARTITION_NAME_TAG
from dagster._core.workspace.context import WorkspaceProcessContext, WorkspaceRequestContext
from dagster._utils.hosted_user_process import recon_job_from_origin
from sqlalchemy import func, select

from thred_devtools.demo_storage import demo_storage_overrides
from thred_devtools.sandbox.config import SandboxConfig
from thred_devtools.sandbox.server import RunningSandbox
from thred_devtools.seed import SeedConfig, seed_warehouse
from thred_pipeline import config
from thred_pipeline.entities import sync_order
from thred_pipeline.warehouse.db import create_warehouse_engine

if TYPE_CHECKING:
    from dagster import DagsterInstance
    from dagster._core.execution.backfill import PartitionBackfill

# Dagster's console logger stays quiet: a failed run is summed up in one line per partition
# (its full log is in the instance, shown by the UI), and an interrupted run prints no trace.
QUIET_RUN_CONFIG: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
LOCATION_NAME = "thred_pipeline"  # as in workspace.yaml: the UI finds the backfill under it
DEFINITIONS_MODULE = "thred_pipeline.definitions"
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
    port: int = 0
    backfill_id: str = ""
    backfill_status: str = ""

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


class PortInUse(config.SettingsError):
    """The port asked for with ``--port`` is taken (the default port falls back instead)."""


def start_demo_sandbox(home: Path, port: int | None, out: TextIO) -> RunningSandbox:
    """The sandbox on ``port``; with no port asked for, on the default one or, when that is
    busy, on a free one (said on ``out``)."""
    sandbox_config = SandboxConfig(data_dir=home / "sandbox")
    wanted = config.DEFAULT_SANDBOX_PORT if port is None else port
    try:
        sandbox = RunningSandbox(sandbox_config, port=wanted)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        if port is not None:
            raise PortInUse(
                "--port",
                f"--port {port}: the port is in use by another program; choose another port, "
                "or leave --port out to use a free one",
            ) from None
        sandbox = RunningSandbox(sandbox_config, port=0)
        print(
            f"Port {wanted} is busy; the sandbox listens on port {sandbox.port} instead",
            file=out,
        )
    return sandbox.start()


def run_demo(
    home: Path,
    *,
    port: int | None = None,
    reseed: bool = False,
    seed: SeedConfig | None = None,
    out: TextIO = sys.stdout,
) -> DemoReport:
    """Run the demo; ``port=None`` takes the default port, or a free one when it is busy.

    ``KeyboardInterrupt`` (Ctrl-C) propagates once the backfill is canceled and the sandbox
    stopped.
    """
    home = home.resolve()
    (home / "dagster_home").mkdir(parents=True, exist_ok=True)
    sandbox = start_demo_sandbox(home, port, out)
    try:
        env = demo_environment(home, sandbox.port)
        previous = {k: os.environ.get(k) for k in env}
        os.environ.update(env)  # Dagster resources resolve EnvVar from the process environment
        try:
            report = _run(home, env, reseed=reseed, seed=seed, out=out)
        finally:
            for key, value in previous.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    finally:
        sandbox.stop()
    report.port = sandbox.port
    _print_summary(report, home, out)
    return report


def _run(
    home: Path,
    env: dict[str, str],
    *,
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

    # Dagster's notes on its own beta/preview APIs are not the demo's output.
    for category in (dg.BetaWarning, dg.PreviewWarning):
        warnings.filterwarnings("ignore", category=category)
    # Imported late: the Dagster definitions read THRED_* at import time.
    from thred_pipeline.definitions import defs
    from thred_pipeline.jobs import BOOKS_JOB_NAME

    # One line per partition is printed below; per-asset engine lines would drown it.
    for noisy in ("thred_pipeline", "thred_devtools"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    report = DemoReport()
    started = time.monotonic()
    with demo_instance(home / "dagster_home") as instance, deferred_interrupts() as stop:

        def finished(day: str, result: Any) -> None:
            when = date.fromisoformat(day)
            _collect(when, result, report, last=when == days[-1])
            _print_run(when, result, out)

        backfill = run_backfill(instance, [d.isoformat() for d in days], finished, stop, out)
        report.partitions = len(days)
        report.backfill_id = backfill.backfill_id
        report.backfill_status = backfill.status.value
        books = defs.resolve_job_def(BOOKS_JOB_NAME).execute_in_process(
            instance=instance, run_config=QUIET_RUN_CONFIG, raise_on_error=False
        )
        if interrupted(books):
            stop.request()
        stop.check()
        _collect_books(books, report)
    report.seconds = time.monotonic() - started
    return report


# -- the backfill -------------------------------------------------------------------------------


class DemoRunLauncher(SyncInMemoryRunLauncher):
    """Executes each launched run at once, in this process, then calls
    ``on_finished(partition, result)``. For the demo's instance only: it has no daemon and no
    code server."""

    on_finished: Callable[[str, Any], None] | None = None
    stop: Stop | None = None

    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        recon_job = recon_job_from_origin(context.job_code_origin)  # type: ignore[arg-type]
        result = execute_run(recon_job, run, self._instance)
        if interrupted(result):  # Ctrl-C during the run: Dagster failed it as interrupted
            if self.stop is not None:
                self.stop.request()
            return
        partition = run.tags.get(PARTITION_NAME_TAG)
        if self.on_finished is not None and partition is not None:
            self.on_finished(partition, result)


class Stop:
    """A Ctrl-C (or SIGTERM) noted while Dagster code runs, acted on where it is safe.

    Raising ``KeyboardInterrupt`` inside Dagster's run submission would make it mark the run it
    just launched (perhaps a successful one) failed. So the signal is only noted: the partition
    in progress finishes (its run stays whole), and :meth:`check` raises between runs (before
    the next one is created) and after the backfill. A second Ctrl-C raises at once. A run
    that Dagster itself failed as interrupted also requests the stop.
    """

    def __init__(self) -> None:
        self.requested = False

    def request(self) -> None:
        self.requested = True

    def check(self) -> None:
        if self.requested:
            raise KeyboardInterrupt


@contextmanager
def deferred_interrupts() -> Iterator[Stop]:
    """SIGINT and SIGTERM only note a :class:`Stop` request while in this block (main thread;
    a SIGINT the demo was started to ignore stays ignored). Both handlers are restored after:
    Dagster points SIGTERM at whatever SIGINT handler it finds when a run ends."""
    stop = Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def note(_signo: int, _frame: Any) -> None:
        if stop.requested:  # pressed again: stop now, whatever is running
            raise KeyboardInterrupt
        stop.request()

    for sig, handler in previous.items():
        if handler is not signal.SIG_IGN:
            signal.signal(sig, note)
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class _StoppableWorkspace(WorkspaceProcessContext):
    """The backfill asks for a request context before creating each run: stop there."""

    stop: Stop | None = None

    def create_request_context(self, source: object | None = None) -> WorkspaceRequestContext:
        if self.stop is not None:
            self.stop.check()
        return super().create_request_context(source)


@contextmanager
def demo_instance(dagster_home: Path) -> Iterator[DagsterInstance]:
    """The demo's instance, whose runs are submitted straight to :class:`DemoRunLauncher`.

    The run coordinator and launcher are overridden in memory, and so is the storage (Dagster's
    SQLite storages with their engines kept, ``demo_storage``) unless ``dagster.yaml`` chooses
    one; ``dagster.yaml`` is not changed.
    """
    from dagster import DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    overrides: Mapping[str, Any] = {
        "run_coordinator": {
            "module": "dagster._core.run_coordinator",
            "class": "DefaultRunCoordinator",
        },
        "run_launcher": {"module": __name__, "class": "DemoRunLauncher"},
    }
    instance_yaml = dagster_home / "dagster.yaml"
    configured = yaml.safe_load(instance_yaml.read_text()) if instance_yaml.exists() else None
    overrides = {**overrides, **demo_storage_overrides(dagster_home, configured or {})}
    ref = InstanceRef.from_dir(str(dagster_home), overrides=overrides)  # type: ignore[arg-type]
    with DagsterInstance.from_ref(ref) as instance:
        yield instance


def run_backfill(
    instance: DagsterInstance,
    partitions: list[str],
    finished: Callable[[str, Any], None],
    stop: Stop,
    out: TextIO,
) -> PartitionBackfill:
    """Record a backfill of the nightly job over ``partitions`` and run it to the end.

    Returns the backfill as Dagster left it (``COMPLETED_SUCCESS`` or ``COMPLETED_FAILED``).
    When ``stop`` is requested, the backfill and its unfinished runs are marked canceled and
    ``KeyboardInterrupt`` is raised.
    """
    from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
    from dagster._core.execution.job_backfill import execute_job_backfill_iteration
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.remote_representation.external_data import (
        partition_set_snap_name_for_job_name,
    )
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._core.utils import make_new_backfill_id
    from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
    from dagster._time import get_current_timestamp

    from thred_pipeline.jobs import NIGHTLY_JOB_NAME

    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(
            executable_path=sys.executable,
            module_name=DEFINITIONS_MODULE,
            working_directory=os.getcwd(),
        ),
        location_name=LOCATION_NAME,
    )
    launcher = instance.run_launcher
    if not isinstance(launcher, DemoRunLauncher):
        raise TypeError(f"the demo instance runs with {type(launcher).__name__}")
    with _StoppableWorkspace(instance, InProcessWorkspaceLoadTarget(origin)) as workspace:
        location = workspace.create_request_context().get_code_location(LOCATION_NAME)
        (repository,) = location.get_repositories().values()
        partition_set = repository.get_partition_set(
            partition_set_snap_name_for_job_name(NIGHTLY_JOB_NAME)
        )
        backfill_id = make_new_backfill_id()
        backfill = PartitionBackfill(
            backfill_id=backfill_id,
            partition_set_origin=partition_set.get_remote_origin(),
            status=BulkActionStatus.REQUESTED,
            partition_names=partitions,
            from_failure=False,
            reexecution_steps=None,
            tags={"thred/backfill": backfill_id, "thred/launched_by": "thred-dev demo"},
            backfill_timestamp=get_current_timestamp(),
            title="thred-dev demo",
            description="Every day of the demo warehouse, launched by `thred-dev demo`.",
            run_config=QUIET_RUN_CONFIG,  # the jobs run in process (jobs.py)
        )
        instance.add_backfill(backfill)
        print(
            f"Syncing {len(partitions)} daily partitions ({partitions[0]} .. {partitions[-1]}) "
            f"through Dagster as backfill {backfill_id} of {NIGHTLY_JOB_NAME}",
            file=out,
        )
        launcher.on_finished, launcher.stop, workspace.stop = finished, stop, stop
        try:
            error = execute_job_backfill_iteration(
                backfill, logging.getLogger("thred_devtools.demo"), workspace, None, instance
            )
            stop.check()
        except BaseException:
            _cancel(instance, backfill_id)
            raise
        finally:
            launcher.on_finished, launcher.stop, workspace.stop = None, None, None
        if error is not None:
            raise RuntimeError(f"backfill {backfill_id} failed: {error.message.strip()}")
    done = instance.get_backfill(backfill_id)
    assert done is not None
    return done


def _cancel(instance: DagsterInstance, backfill_id: str) -> None:
    """Mark the backfill and its unfinished runs canceled (the run in progress was stopped)."""
    from dagster import DagsterRunStatus, RunsFilter
    from dagster._core.execution.backfill import BulkActionStatus
    from dagster._core.storage.dagster_run import NOT_FINISHED_STATUSES, DagsterRun
    from dagster._time import get_current_timestamp

    runs = instance.get_runs(
        RunsFilter(
            tags=DagsterRun.tags_for_backfill_id(backfill_id), statuses=NOT_FINISHED_STATUSES
        )
    )
    for run in runs:
        if run.status != DagsterRunStatus.CANCELED:
            instance.report_run_canceled(run, message="Canceled: thred-dev demo interrupted")
    backfill = instance.get_backfill(backfill_id)
    if backfill is not None and backfill.status == BulkActionStatus.REQUESTED:
        canceled: PartitionBackfill = backfill.with_status(  # type: ignore[no-untyped-call]
            BulkActionStatus.CANCELED
        )
        instance.update_backfill(canceled.with_end_timestamp(get_current_timestamp()))


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
    for evaluation in window_checks(result):
        name = f"{evaluation.asset_key.path[-1]}.{evaluation.check_name}"
        if evaluation.passed:
            report.checks_passed += 1
        elif evaluation.severity == dg.AssetCheckSeverity.WARN:
            report.checks_warned.append(f"{day}: {name} — {evaluation.description}")
        else:
            report.checks_failed.append(f"{day}: {name} — {evaluation.description}")
        if last:
            report.final_checks[name] = evaluation.passed


def _errors(result: Any) -> list[Any]:
    """The errors of the run's failed steps and of the run itself, in order."""
    found = []
    for event in result.all_events:
        if event.event_type in (dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE):
            error = getattr(event.event_specific_data, "error", None)
            if error is not None:
                found.append(error)
    return found


def interrupted(result: Any) -> bool:
    """The run failed because this process was interrupted (Ctrl-C, SIGTERM)."""
    return any(error.cls_name == "DagsterExecutionInterruptedError" for error in _errors(result))


def failure_reason(result: Any) -> str:
    """The first line of the run's first error, for a one-line report."""
    for error in _errors(result):
        lines = [line.strip() for line in error.message.splitlines() if line.strip()]
        if lines:
            return str(lines[0])[:300]
    return "no error recorded"


def window_checks(result: Any) -> list[Any]:
    """The run's per-partition check evaluations (one window's warehouse against Thred).

    Unpartitioned checks that ride along in the nightly run (freshness, which compares the
    newest partition with the wall clock and so always warns on the demo's past dates) are
    not window checks and are left out of the demo's counts.
    """
    return [e for e in result.get_asset_check_evaluations() if e.partition is not None]


def _collect_books(result: Any, report: DemoReport) -> None:
    if not result.success:
        report.books_verdict = "FAILED TO RUN"
        report.books_text = f"  {failure_reason(result)}"
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
    evaluations = window_checks(result)
    passed = sum(e.passed for e in evaluations)
    status = "ok " if result.success else "FAILED"
    print(
        f"  {day}  {status}  created {totals['created']:4d}  updated {totals['updated']:3d}  "
        f"deferred {totals['deferred']:3d}  rejected {totals['rejected']:3d}  "
        f"checks {passed}/{len(evaluations)}"
        + ("" if result.success else f"  ({failure_reason(result)}; run {result.run_id})"),
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
    if report.backfill_id:
        print(f"Backfill {report.backfill_id}: {report.backfill_status}", file=out)
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
        "(start `.venv/bin/thred-dev sandbox --data-dir "
        f"{home / 'sandbox'}` too if you launch new runs from the UI)",
        file=out,
    )
