"""B6's subject: one nightly partition launched the way the schedule launches it.

The run is queued (``dagster job launch``, as a schedule tick's run request is), then
``dagster-daemon`` dequeues it and the instance's run launcher starts a run worker, whose
steps go through the job's own executor. The figure is the run's launch-to-end time from
the instance's run stats: the daemon's own start-up and queue wait are left out.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from dagster import DagsterInstance
from dagster._core.instance.ref import InstanceRef

from benchmarks.procs import BIN, REPO, run_measured

NIGHTLY_JOB = "nightly_thred_sync"
FAILURES = frozenset({"STEP_FAILURE", "RUN_FAILURE", "PIPELINE_FAILURE"})
CODE = ["-m", "thred_pipeline.definitions"]
INSTANCE_YAML = "telemetry:\n  enabled: false\n"  # the default: a queued run coordinator


@dataclass(frozen=True)
class LaunchedRun:
    status: str
    launch_to_end_s: float
    start_to_end_s: float
    failure: str = ""  # the first failure message of a run that did not succeed


def launch_partition(
    dagster_home: Path, env: dict[str, str], day: str, run_config: Path | None = None
) -> LaunchedRun:
    dagster_home.mkdir(exist_ok=True)
    (dagster_home / "dagster.yaml").write_text(INSTANCE_YAML)
    env = {**env, "DAGSTER_HOME": str(dagster_home)}
    argv = [str(BIN / "dagster"), "job", "launch", *CODE, "-j", NIGHTLY_JOB]
    argv += ["--tags", json.dumps({"dagster/partition": day})]
    if run_config is not None:
        argv += ["-c", str(run_config)]
    run_measured(argv, env, cwd=REPO).check()
    log = (dagster_home / "daemon.log").open("wb")
    daemon = subprocess.Popen(  # noqa: S603
        [str(BIN / "dagster-daemon"), "run", *CODE], env=env, cwd=REPO, stdout=log, stderr=log
    )
    try:
        return _wait(DagsterInstance.from_ref(InstanceRef.from_dir(str(dagster_home))))
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        log.close()


def _wait(instance: DagsterInstance, timeout_s: float = 1800) -> LaunchedRun:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        records = instance.get_run_records(limit=1)
        if records and records[0].dagster_run.is_finished:
            run = records[0].dagster_run
            stats = instance.get_run_stats(run.run_id)
            end = stats.end_time or 0.0
            return LaunchedRun(
                run.status.value,
                end - (stats.launch_time or stats.start_time or end),
                end - (stats.start_time or end),
                "" if run.status.value == "SUCCESS" else _failure(instance, run.run_id),
            )
        time.sleep(0.5)
    raise TimeoutError("the launched run did not finish")


def _failure(instance: DagsterInstance, run_id: str) -> str:
    """The first failure the run's event log records (step or run), on one line."""
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is not None and event.event_type_value in FAILURES:
            return " ".join(entry.message.split())[:300]
    return "no failure event recorded"
