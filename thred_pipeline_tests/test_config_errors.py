"""A configuration error fails the Dagster run loudly, with one line naming the setting."""

from __future__ import annotations

import socket
from pathlib import Path

import dagster as dg
import pytest
from thred_devtools.sandbox import SandboxConfig, start_sandbox
from thred_devtools.seed import SeedConfig, seed_warehouse

from thred_pipeline.assets import BOOKS_ASSETS, BOOKS_KEY, PUSH_ASSETS, asset_key
from thred_pipeline.config import DEMO_PARTNER_ID
from thred_pipeline.entities import get
from thred_pipeline.resources import (
    LedgerResource,
    ReconcileResource,
    SyncResource,
    ThredResource,
    WarehouseResource,
)

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
