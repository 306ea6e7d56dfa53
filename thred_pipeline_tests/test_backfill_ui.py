"""Backfills as users launch them: the real ``dagster-webserver`` and ``dagster-daemon`` against a
local instance (SQLite storage in a temporary DAGSTER_HOME), the sandbox and a seeded SQLite
warehouse; a backfill over a date range launched through the GraphQL mutation the UI sends;
the UI itself loaded in headless Chromium (Debian's ``chromium`` package).

Also, in process: a run over a range of days (what a multi-day backfill policy would launch)
syncs every day, and what it costs: the window checks evaluate once for the whole range.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg
import httpx
import pytest
from thred_devtools.sandbox import RunningSandbox, SandboxConfig, start_sandbox
from thred_devtools.seed import SeedConfig, seed_warehouse

from thred_pipeline import entities
from thred_pipeline.assets import PUSH_ASSETS, asset_key
from thred_pipeline.config import DEMO_API_KEY, DEMO_PARTNER_ID
from thred_pipeline.definitions import defs
from thred_pipeline.jobs import NIGHTLY_JOB_NAME

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parent.parent
DAYS = ["2026-09-01", "2026-09-02", "2026-09-03"]
SEED = SeedConfig(
    businesses=2,
    days=7,
    customers=6,
    vendors=4,
    invoices=12,
    payments=8,
    refunds=1,
    refund_payments=1,
    payouts=1,
    bills=4,
    bill_payments=2,
    vendor_credits=1,
)
PUSH_KEYS = [asset_key(spec) for spec in entities.sync_order()]
# Generous bounds: a loaded 2-core machine starts a run process per step; nothing is timed.
START_BUDGET_S = 420
BACKFILL_BUDGET_S = 1800
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# Children start with default SIGINT/SIGTERM (a test runner may have been started with them
# ignored, which exec'd children inherit). Reset, then exec: no preexec_fn, which is unsafe while
# other threads run (the sandbox serves from a thread here).
DEFAULT_SIGNALS_THEN_EXEC = (
    "import os, signal, sys; "
    "signal.signal(signal.SIGTERM, signal.SIG_DFL); signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execvp(sys.argv[1], sys.argv[1:])"
)


@contextmanager
def started(
    command: list[str], env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """A server in its own process group: SIGTERM on the way out, SIGKILL if it lingers."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", DEFAULT_SIGNALS_THEN_EXEC, *command],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped and killed as a whole
        )
        try:
            yield process
        finally:
            _stop_group(process)


def _stop_group(process: subprocess.Popen[bytes]) -> signal.Signals | None:
    """Stop the process group; the signal that ended it (None: it was already gone)."""
    for sig, grace in ((signal.SIGTERM, 90), (signal.SIGKILL, 30)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            process.poll()
            return None if sig == signal.SIGTERM else signal.SIGTERM
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                process.poll()
                return sig
            process.poll()
            time.sleep(0.5)
    return signal.SIGKILL


def wait_for(
    what: str, probe: Callable[[], T | None], budget_s: float, logs: list[Path], every: float = 2
) -> T:
    deadline = time.monotonic() + budget_s
    last_error = ""
    while time.monotonic() < deadline:
        try:
            value = probe()
        except (httpx.HTTPError, KeyError, TypeError) as exc:
            value, last_error = None, f"{type(exc).__name__}: {exc}"
        if value:
            return value
        time.sleep(every)
    tails = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in logs)
    raise AssertionError(f"{what}: not within {budget_s}s ({last_error})\n{tails}")


@dataclass
class Stack:
    url: str
    home: Path
    logs: list[Path]

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = httpx.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=120
        )
        response.raise_for_status()
        body = response.json()
        assert "errors" not in body, body["errors"]
        data: dict[str, Any] = body["data"]
        return data


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("dagster_stack")
    home = root / "dagster_home"
    home.mkdir()
    # SQLite storage (the default) in DAGSTER_HOME; one run at a time keeps SQLite unlocked.
    (home / "dagster.yaml").write_text(
        "telemetry:\n  enabled: false\n"
        "run_coordinator:\n  module: dagster._core.run_coordinator\n"
        "  class: QueuedRunCoordinator\n  config:\n    max_concurrent_runs: 1\n"
    )
    workspace = root / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_module:\n      module_name: thred_pipeline.definitions\n"
        f"      location_name: thred_pipeline\n      working_directory: {REPO}\n"
    )
    warehouse_url = f"sqlite:///{root / 'warehouse.db'}"
    seed_warehouse(warehouse_url, SEED)
    with start_sandbox(SandboxConfig(data_dir=root / "sandbox")) as sandbox:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "THRED_"))}
        env.update(
            DAGSTER_HOME=str(home),
            THRED_WAREHOUSE_URL=warehouse_url,
            THRED_LEDGER_URL=f"sqlite:///{root / 'ledger.db'}",
            THRED_BASE_URL=sandbox.url,
            THRED_PARTNER_ID=DEMO_PARTNER_ID,
            THRED_API_KEY=DEMO_API_KEY,
            PYTHONUNBUFFERED="1",
        )
        port = free_port()
        logs = [root / "webserver.log", root / "daemon.log"]
        webserver = [
            str(BIN / "dagster-webserver"),
            *("-h", "127.0.0.1", "-p", str(port), "-w", str(workspace)),
        ]
        daemon = [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)]
        # Create the SQLite storage once, before two processes race to create it.
        with dg.DagsterInstance.from_config(str(home)):
            pass
        running = Stack(url=f"http://127.0.0.1:{port}", home=home, logs=logs)
        with started(webserver, env, logs[0]) as web:
            wait_for(
                "the code location loads", lambda: _location_loaded(running), START_BUDGET_S, logs
            )
            with started(daemon, env, logs[1]) as dmn:
                wait_for(
                    "the daemon is healthy",
                    lambda: _daemons_healthy(running),
                    START_BUDGET_S,
                    logs,
                )
                yield running
                # Both stop on SIGTERM, with their code servers and run workers (their group).
                assert _stop_group(dmn) == signal.SIGTERM, logs[1].read_text()[-2000:]
            assert _stop_group(web) == signal.SIGTERM, logs[0].read_text()[-2000:]


def _location_loaded(stack: Stack) -> bool:
    data = stack.graphql(
        "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
        "locationOrLoadError { __typename ... on PythonError { message } } } } } }"
    )
    entries = data["workspaceOrError"]["locationEntries"]
    for entry in entries:
        error = entry["locationOrLoadError"] or {}
        assert error.get("__typename") != "PythonError", error.get("message")
    return any(
        e["loadStatus"] == "LOADED"
        and (e["locationOrLoadError"] or {}).get("__typename") == "RepositoryLocation"
        for e in entries
    )


def _daemons_healthy(stack: Stack) -> bool:
    data = stack.graphql(
        "{ instance { daemonHealth { allDaemonStatuses { daemonType healthy required } } } }"
    )
    statuses = data["instance"]["daemonHealth"]["allDaemonStatuses"]
    wanted = {"BACKFILL", "QUEUED_RUN_COORDINATOR", "SENSOR"}
    return wanted <= {s["daemonType"] for s in statuses if s["healthy"]}


LAUNCH = """
mutation LaunchPartitionBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PartitionKeysNotFoundError { message }
    ... on UnauthorizedError { message }
    ... on PythonError { message stack }
  }
}
"""

BACKFILL = """
query Backfill($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { id status partitionNames }
  }
  runsOrError(filter: {tags: [{key: "dagster/backfill", value: $id}]}) {
    ... on Runs { results { runId status tags { key value } } }
  }
}
"""

ASSET = """
query Asset($key: AssetKeyInput!, $partitions: [String!]) {
  assetOrError(assetKey: $key) {
    ... on Asset { assetMaterializations(partitions: $partitions) { partition runId } }
  }
  assetCheckExecutions(assetKey: $key, checkName: "window_matches", limit: 50) {
    partition status runId evaluation { severity }
  }
  assetNodeOrError(assetKey: $key) {
    ... on AssetNode { freshnessStatusInfo { freshnessStatus } }
  }
}
"""

FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}


def _run_partition(tags: list[dict[str, str]]) -> str:
    """A backfill run's day (a range tag here would mean no check result per day)."""
    found = {t["key"]: t["value"] for t in tags}
    assert "dagster/asset_partition_range_start" not in found, found
    return found["dagster/partition"]


def test_a_backfill_launched_like_the_ui_runs_each_day_with_its_checks(stack: Stack):
    # What the UI sends from the asset graph ("Materialize" a date range of selected assets).
    params = {
        "assetSelection": [{"path": k.path} for k in PUSH_KEYS],
        "partitionNames": DAYS,
        "fromFailure": False,
        "tags": [],
        "title": "ops test backfill",
    }
    launched = stack.graphql(LAUNCH, {"backfillParams": params})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill_id = launched["backfillId"]

    def done() -> dict[str, Any] | None:
        data = stack.graphql(BACKFILL, {"id": backfill_id})
        backfill = data["partitionBackfillOrError"]
        runs = data["runsOrError"]["results"]
        if backfill["status"] in {"REQUESTED", "CANCELING", "FAILING"}:
            return None
        if not runs or any(r["status"] not in FINISHED for r in runs):
            return None
        return data

    data = wait_for("the backfill finishes", done, BACKFILL_BUDGET_S, stack.logs, every=5)
    backfill, runs = data["partitionBackfillOrError"], data["runsOrError"]["results"]
    assert backfill["status"] == "COMPLETED_SUCCESS", backfill
    assert sorted(backfill["partitionNames"]) == DAYS
    # One day per run (no backfill policy): each run tagged with its day, all green.
    run_of = {_run_partition(r["tags"]): r["runId"] for r in runs}
    assert sorted(run_of) == DAYS
    assert len(runs) == len(DAYS) and {r["status"] for r in runs} == {"SUCCESS"}

    for key in PUSH_KEYS:
        asset = stack.graphql(ASSET, {"key": {"path": key.path}, "partitions": DAYS})
        materialized = asset["assetOrError"]["assetMaterializations"]
        assert sorted(m["partition"] for m in materialized) == DAYS, key
        assert all(m["runId"] == run_of[m["partition"]] for m in materialized), key
        executions = [e for e in asset["assetCheckExecutions"] if e["runId"] in run_of.values()]
        assert sorted(e["partition"] for e in executions) == DAYS, (key, executions)
        for execution in executions:
            # passed, or a WARN the ledger explains (a record waiting for a later day's parent)
            assert execution["status"] in {"SUCCEEDED", "FAILED"}, execution
            if execution["status"] == "FAILED":
                assert execution["evaluation"]["severity"] == "WARN", (key, execution)
            assert execution["runId"] == run_of[execution["partition"]]

    # Dagster's freshness daemon now sees the push assets as fresh (FreshnessPolicy).
    def fresh() -> bool:
        node = stack.graphql(ASSET, {"key": {"path": PUSH_KEYS[1].path}, "partitions": DAYS})
        info = node["assetNodeOrError"]["freshnessStatusInfo"]
        return bool(info and info["freshnessStatus"] == "HEALTHY")

    wait_for("the freshness daemon evaluates the policy", fresh, 300, stack.logs, every=5)


# --- the UI in headless Chromium -----------------------------------------------------------------


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        message = "Debian's chromium package is needed: apt-get install -y chromium"
        if os.environ.get("CI") or os.environ.get("THRED_REQUIRE_CHROMIUM") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return found


class Browser:
    """Chromium driven over the DevTools protocol (the websocket it serves on 127.0.0.1)."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.next_id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=120))
            if message.get("id") == self.next_id:
                assert "error" not in message, message["error"]
                result: dict[str, Any] = message["result"]
                return result

    def text(self) -> str:
        result = self.call(
            "Runtime.evaluate", expression="document.body ? document.body.innerText : ''"
        )
        return str(result["result"].get("value") or "")

    def click(self, label: str) -> bool:
        """Click the button whose text is ``label``, if there is one."""
        script = (
            "(() => { const b = [...document.querySelectorAll('button')]"
            f".find(b => b.innerText.trim() === {json.dumps(label)});"
            " if (b) { b.click(); return true; } return false; })()"
        )
        return bool(self.call("Runtime.evaluate", expression=script)["result"].get("value"))


@contextmanager
def chromium(tmp: Path) -> Iterator[Browser]:
    port = free_port()
    command = [
        _chromium(),
        "--headless=new",
        "--no-sandbox",  # tests run as root in CI containers
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        f"--user-data-dir={tmp / 'profile'}",
        f"--remote-debugging-port={port}",
        "--remote-allow-origins=*",
        "--window-size=1600,1000",
        "about:blank",
    ]
    log = tmp / "chromium.log"
    with started(command, dict(os.environ), log) as process:

        def page_endpoint() -> str | None:
            assert process.poll() is None, log.read_text(errors="replace")[-2000:]
            targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
            pages = [t for t in targets if t.get("type") == "page"]
            return str(pages[0]["webSocketDebuggerUrl"]) if pages else None

        endpoint = wait_for("chromium starts", page_endpoint, 180, [log])
        from websockets.sync.client import connect

        with connect(endpoint, max_size=64 * 1024 * 1024, open_timeout=60) as ws:
            browser = Browser(ws)
            browser.call("Page.enable")
            browser.call("Runtime.enable")
            yield browser


def test_the_ui_shows_the_syncs_assets_and_checks(stack: Stack, tmp_path: Path):
    with chromium(tmp_path) as browser:
        # The asset catalog: every push asset of the sync.
        browser.call("Page.navigate", url=f"{stack.url}/assets/thred")
        wanted = [spec.name for spec in entities.sync_order()]

        def catalog() -> str | None:
            text = browser.text()
            return text if all(name in text for name in wanted) else None

        wait_for("the asset catalog lists the push assets", catalog, 300, stack.logs)

        # An asset's checks tab: the window check and the freshness check.
        browser.call("Page.navigate", url=f"{stack.url}/assets/thred/customers?view=checks")

        def checks() -> str | None:
            text = browser.text()
            return text if "window_matches" in text and "freshness_check" in text else None

        text = wait_for("the checks tab lists the checks", checks, 300, stack.logs)
        assert "customers" in text
        browser.click("Skip")  # the first visit's "Join the Dagster community" dialog
        wait_for(
            "the dialog closes", lambda: "Join the Dagster community" not in browser.text(), 60, []
        )
        shot = browser.call("Page.captureScreenshot", format="png")
        png = base64.b64decode(shot["data"])
        (tmp_path / "checks.png").write_bytes(png)
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 20_000


# --- a multi-day run, in process -----------------------------------------------------------------


@pytest.fixture
def sandbox() -> Iterator[RunningSandbox]:
    with start_sandbox(SandboxConfig()) as running:
        yield running


def test_a_run_over_several_days_syncs_each_day_but_checks_the_range_once(
    tmp_path: Path, sandbox: RunningSandbox, monkeypatch: pytest.MonkeyPatch
):
    """What a backfill policy launches (``THRED_BACKFILL_DAYS_PER_RUN`` > 1): it works end to
    end, and shows why there is no policy by default (Dagster 1.13.27 then records no per-day
    check result)."""
    warehouse_url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    seed_warehouse(warehouse_url, SEED)
    monkeypatch.setenv("THRED_WAREHOUSE_URL", warehouse_url)
    monkeypatch.setenv("THRED_LEDGER_URL", f"sqlite:///{tmp_path / 'ledger.db'}")
    monkeypatch.setenv("THRED_BASE_URL", sandbox.url)
    monkeypatch.setenv("THRED_PARTNER_ID", DEMO_PARTNER_ID)
    monkeypatch.setenv("THRED_API_KEY", DEMO_API_KEY)
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def(NIGHTLY_JOB_NAME).execute_in_process(
            instance=instance,
            tags={
                "dagster/asset_partition_range_start": DAYS[0],
                "dagster/asset_partition_range_end": DAYS[-1],
            },
        )
        assert result.success
        materialized = {
            (e.asset_key, e.partition) for e in result.get_asset_materialization_events()
        }
        assert materialized == {(a.key, d) for a in PUSH_ASSETS for d in DAYS}
        evaluations = result.get_asset_check_evaluations()
        assert len(evaluations) == len(PUSH_ASSETS)
        assert {e.partition for e in evaluations} == {None}
        customers = next(e for e in evaluations if e.asset_key.path[-1] == "customers")
        assert "2026-09-01 00:00..2026-09-04 00:00" in (customers.description or "")
        check = dg.AssetCheckKey(asset_key(entities.get("customers")), "window_matches")
        infos = instance.event_log_storage.get_asset_check_partition_info([check])
        per_day = {i.partition_key: i.latest_execution_status.value for i in infos}
        assert {per_day[d] for d in DAYS} == {"PLANNED"}  # no day gets its own result
