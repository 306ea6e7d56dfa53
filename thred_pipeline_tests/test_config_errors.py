"""A configuration error fails the Dagster run loudly, with one line naming the setting."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from thred_devtools.sandbox import SandboxConfig, start_sandbox
from thred_devtools.seed import SeedConfig, seed_warehouse

from thred_pipeline.assets import BOOKS_ASSETS, BOOKS_KEY, PUSH_ASSETS, asset_key
from thred_pipeline.config import DEMO_API_KEY, DEMO_PARTNER_ID, PipelineSettings
from thred_pipeline.entities import get
from thred_pipeline.resources import (
    LedgerResource,
    ReconcileResource,
    SyncResource,
    ThredResource,
    WarehouseResource,
)
from thred_pipeline.thred.client import ThredClient

WRONG_KEY = "not-the-demo-key-0000"


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _resources(tmp_path: Path, base_url: str, api_key: str) -> dict[str, object]:
    warehouse_url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    seed_warehouse(warehouse_url, SeedConfig(businesses=1))
    return {
        "warehouse": WarehouseResource(url=warehouse_url),
        "ledger": LedgerResource(url=f"sqlite:///{tmp_path / 'ledger.db'}"),
        # Two attempts: an unreachable Thred fails after one retry instead of 8-10 s of backoff.
        "thred": ThredResource(
            base_url=base_url, partner_id=DEMO_PARTNER_ID, api_key=api_key, max_attempts=2
        ),
        "sync": SyncResource(),
        "reconcile": ReconcileResource(),
    }


def _failure(result: dg.ExecuteInProcessResult) -> str:
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failures, "the run did not fail"
    data = failures[0].step_failure_data
    assert data.user_failure_data is not None, data.error  # a Failure, not a crash
    return str(data.user_failure_data.description)


@pytest.mark.parametrize("where", ["wrong key", "unreachable"])
def test_a_configuration_error_fails_the_run_with_one_line(tmp_path: Path, where: str) -> None:
    with start_sandbox(SandboxConfig()) as sandbox:
        base_url = sandbox.url if where == "wrong key" else f"http://127.0.0.1:{_unused_port()}"
        resources = _resources(tmp_path, base_url, WRONG_KEY)
        with dg.instance_for_test() as instance:
            push = dg.materialize(
                PUSH_ASSETS,
                selection=[asset_key(get("businesses"))],
                partition_key="2026-01-01",
                resources=resources,
                instance=instance,
                raise_on_error=False,
            )
            books = dg.materialize(
                [*PUSH_ASSETS, *BOOKS_ASSETS],
                selection=[BOOKS_KEY],
                resources=resources,
                instance=instance,
                raise_on_error=False,
            )
    for result in (push, books):
        assert not result.success
        message = _failure(result)
        assert message.startswith("configuration error:"), message
        assert "THRED_" in message and WRONG_KEY not in message
        assert "\n" not in message.strip()
        assert not result.get_asset_check_evaluations()  # nothing was compared, nothing passed


# -- the rate governor's settings ---------------------------------------------------------------


@pytest.mark.anyio
async def test_rate_settings_reach_the_clients_governor(monkeypatch: pytest.MonkeyPatch) -> None:
    """THRED_RATE_PER_BUSINESS / THRED_RATE_BURST become the governor's known limit and burst;
    unset or empty, the governor finds the limit itself."""
    monkeypatch.setenv("THRED_RATE_PER_BUSINESS", "")
    monkeypatch.delenv("THRED_RATE_BURST", raising=False)
    unknown = PipelineSettings.from_env().thred_settings()
    assert (unknown.rate_per_business, unknown.rate_burst) == (None, None)
    monkeypatch.setenv("THRED_RATE_PER_BUSINESS", "7.5")
    monkeypatch.setenv("THRED_RATE_BURST", "3")
    async with ThredClient(PipelineSettings.from_env().thred_settings()) as client:
        assert (client.governor.limits.ceiling, client.governor.limits.burst) == (7.5, 3)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("THRED_RATE_PER_BUSINESS", "0", "THRED_RATE_PER_BUSINESS must be > 0, got '0'"),
        ("THRED_RATE_PER_BUSINESS", "fast", "THRED_RATE_PER_BUSINESS must be a number, got 'fast'"),
        ("THRED_RATE_BURST", "0", "THRED_RATE_BURST must be >= 1, got '0'"),
        ("THRED_RATE_BURST", "2.5", "THRED_RATE_BURST must be an integer, got '2.5'"),
    ],
)
def test_a_bad_rate_setting_is_one_line_exit_2(
    tmp_path: Path, name: str, value: str, expected: str
) -> None:
    env = {**os.environ, "THRED_HOME": str(tmp_path), name: value}
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("thred-pipeline")),
            "sync",
            "--start",
            "2000-01-01",
            "--end",
            "2100-01-01",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].endswith(expected), lines


def test_the_thred_resources_rate_fields_reach_the_settings() -> None:
    """Set as the Dagster resource's config, as a deployment would (and unset by default)."""
    fields = {"base_url": "http://127.0.0.1:1", "partner_id": DEMO_PARTNER_ID}
    default = ThredResource(**fields, api_key=DEMO_API_KEY).settings()
    assert (default.rate_per_business, default.rate_burst) == (None, None)

    @dg.op
    def settings_of(thred: ThredResource) -> tuple[float | None, int | None]:
        settings = thred.settings()
        return settings.rate_per_business, settings.rate_burst

    @dg.job
    def read_settings() -> None:
        settings_of()

    configured = ThredResource.configure_at_launch()
    run_config = {
        "resources": {
            "thred": {
                "config": {
                    **fields,
                    "api_key": DEMO_API_KEY,
                    "rate_per_business": 12.5,
                    "rate_burst": 4,
                }
            }
        }
    }
    result = read_settings.execute_in_process(
        run_config=run_config, resources={"thred": configured}
    )
    assert result.output_for_node("settings_of") == (12.5, 4)


def _cli(tmp_path: Path, env_value: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "THRED_HOME": str(tmp_path)}
    env["THRED_RECONCILE_ERROR_ABOVE_CENTS"] = env_value
    return subprocess.run(
        [str(Path(sys.executable).with_name("thred-pipeline")), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_bad_error_above_cents_fails_only_reconcile(tmp_path: Path) -> None:
    """The parser does not read the setting, so other commands (and --help) still work."""
    assert _cli(tmp_path, "lots", "warehouse-ddl").returncode == 0
    assert _cli(tmp_path, "lots", "--help").returncode == 0
    done = _cli(tmp_path, "lots", "reconcile")
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "THRED_RECONCILE_ERROR_ABOVE_CENTS='lots' is not a whole number" in lines[0]
