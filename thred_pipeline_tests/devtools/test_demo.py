"""`thred-dev demo` end to end: the books equal, and a second run writes nothing.

The partitions run as a real Dagster backfill: the job's backfill history (the GraphQL field
the UI's job page reads) lists it with its runs. Ctrl-C stops the demo cleanly.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from thred_devtools.demo import DEFINITIONS_MODULE, LOCATION_NAME, run_demo
from thred_devtools.seed import SeedConfig

from thred_pipeline_tests.test_cli import CLI, DEV_CLI

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

    assert first.backfill_status == "COMPLETED_SUCCESS"
    assert f"through Dagster as backfill {first.backfill_id} of nightly_thred_sync" in text

    again = io.StringIO()
    second = run_demo(home, port=_free_port(), out=again)
    assert second.ok, again.getvalue()
    assert second.api_writes == 0
    assert sum(c["created"] + c["updated"] for c in second.outcomes.values()) == 0
    assert (home / "demo.env").read_text().count("THRED_BASE_URL") == 1

    history = job_backfill_history(home, monkeypatch)
    assert [b["id"] for b in history] == [second.backfill_id, first.backfill_id]
    for backfill in history:
        assert backfill["status"] == "COMPLETED_SUCCESS"
        assert backfill["numPartitions"] == first.partitions
        runs = backfill["runs"]
        assert len(runs) == first.partitions and {r["status"] for r in runs} == {"SUCCESS"}
        tags = {t["key"]: t["value"] for t in runs[0]["tags"]}
        assert tags["dagster/backfill"] == backfill["id"]

    # What `status` says about the demo's instance: the last night's partition and the books.
    env = demo_env(home)
    ran = subprocess.run(
        [str(CLI), "status", "--json"], env=env, capture_output=True, text=True, check=False
    )
    assert ran.returncode == 0, ran.stderr
    report = json.loads(ran.stdout)
    assert report["books"]["verdict"] == "PASS"
    assert report["last_run"]["status"] == "SUCCESS"
    assert report["last_run"]["partition"] in {d for d in text.split() if d.startswith("20")}
    assert report["totals"]["synced"] > 0


def demo_env(home: Path) -> dict[str, str]:
    """The environment `demo.env` describes (what a user sources to inspect the demo)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("THRED_", "DAGSTER_"))}
    for line in (home / "demo.env").read_text().splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value
    return env


HISTORY = """
query JobBackfills($repositorySelector: RepositorySelector!, $partitionSetName: String!) {
  partitionSetOrError(
    repositorySelector: $repositorySelector, partitionSetName: $partitionSetName
  ) {
    __typename
    ... on PartitionSet {
      backfills { id status numPartitions runs { status tags { key value } } }
    }
  }
}
"""


def job_backfill_history(home: Path, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The nightly job's backfills, as the Dagster UI's job page asks GraphQL for them."""
    from dagster import DagsterInstance
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
    from dagster_graphql.test.utils import execute_dagster_graphql

    for key, value in demo_env(home).items():
        monkeypatch.setenv(key, value)
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(executable_path=sys.executable, module_name=DEFINITIONS_MODULE),
        location_name=LOCATION_NAME,
    )
    with (
        DagsterInstance.get() as instance,
        WorkspaceProcessContext(instance, InProcessWorkspaceLoadTarget(origin)) as workspace,
    ):
        result = execute_dagster_graphql(
            workspace.create_request_context(),
            HISTORY,
            {
                "repositorySelector": {
                    "repositoryLocationName": LOCATION_NAME,
                    "repositoryName": "__repository__",
                },
                "partitionSetName": "nightly_thred_sync_partition_set",
            },
        )
    assert not result.errors, result.errors
    found = result.data["partitionSetOrError"]
    assert found["__typename"] == "PartitionSet", found
    backfills: list[dict[str, Any]] = found["backfills"]
    return backfills


def test_ctrl_c_stops_the_demo_cleanly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGINT while partitions run: exit 130, one line, the sandbox stopped, the backfill
    canceled and no run left unfinished."""
    from dagster import DagsterInstance, RunsFilter
    from dagster._core.storage.dagster_run import NOT_FINISHED_STATUSES

    home = tmp_path / "demo"
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("THRED_", "DAGSTER_"))}
    process = subprocess.Popen(
        [str(DEV_CLI), "demo", "--home", str(home), "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    seen = []
    for line in process.stdout:  # the first partition is done: the backfill is under way
        seen.append(line)
        if line.startswith("  20") and " ok " in line:
            break
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 130, "".join(seen) + out + err
    assert err.strip().splitlines() == [
        "thred-dev: interrupted: the demo stopped (sandbox stopped, backfill canceled)"
    ]
    assert "Verdict" not in out
    with socket.socket() as probe:  # the sandbox no longer listens
        assert probe.connect_ex(("127.0.0.1", port)) != 0

    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster_home"))
    with DagsterInstance.get() as instance:
        (backfill,) = instance.get_backfills()
        assert backfill.status.value == "CANCELED"
        runs = instance.get_runs(RunsFilter(tags={"dagster/backfill": backfill.backfill_id}))
        assert runs and not [r for r in runs if r.status in NOT_FINISHED_STATUSES]
        assert len(runs) < len(backfill.partition_names)


def _events_job() -> Any:
    import dagster as dg

    @dg.op
    def one(context) -> int:  # type: ignore[no-untyped-def]  # (the annotation is a string)
        context.log.info("an event the run's own database must hold")
        return 1

    @dg.job
    def tiny() -> None:
        one()

    return tiny


def test_demo_instance_writes_what_plain_dagster_reads(tmp_path: Path) -> None:
    """The demo's storages keep their engines, but write Dagster's own files: an instance
    opened as `dagster dev` opens it (plain SQLite storages) sees the demo's runs and events."""
    from dagster import DagsterInstance, DagsterRunStatus
    from dagster._core.instance.ref import InstanceRef
    from dagster._core.storage.event_log import SqliteEventLogStorage
    from thred_devtools.demo import demo_instance
    from thred_devtools.demo_storage import (
        KEPT_RUN_SHARDS,
        KeptEngineEventLogStorage,
        KeptEngineRunStorage,
    )

    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    job = _events_job()
    with demo_instance(home) as instance:
        assert isinstance(instance.event_log_storage, KeptEngineEventLogStorage)
        assert isinstance(instance.run_storage, KeptEngineRunStorage)
        results = [job.execute_in_process(instance=instance) for _ in range(KEPT_RUN_SHARDS + 2)]
        kept = instance.event_log_storage._engines
        assert len(kept) <= KEPT_RUN_SHARDS + 1  # the newest runs' shards and the index
        counts = {r.run_id: len(instance.all_logs(r.run_id)) for r in results}
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as plain:
        assert type(plain.event_log_storage) is SqliteEventLogStorage
        for result in results:
            run = plain.get_run_by_id(result.run_id)
            assert run is not None and run.status == DagsterRunStatus.SUCCESS
            logs = plain.all_logs(result.run_id)
            assert len(logs) == counts[result.run_id] > 0
            assert any("an event the run's own" in log.user_message for log in logs)


def test_a_storage_chosen_in_dagster_yaml_is_left_alone(tmp_path: Path) -> None:
    from thred_devtools.demo_storage import demo_storage_overrides

    chosen = {"storage": {"postgres": {"postgres_url": "postgresql://db/dagster"}}}
    assert demo_storage_overrides(tmp_path, chosen) == {}
    assert set(demo_storage_overrides(tmp_path, {"telemetry": {"enabled": False}})) == {
        "run_storage",
        "event_log_storage",
        "schedule_storage",
    }
