"""The instance configurations: the production one (docker/dagster.yaml) against Dagster's own
config schemas and a real PostgreSQL, and the repository-root one, which must work with no
variable set."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster import DagsterInstance
from dagster._config import process_config
from dagster._core.errors import DagsterInvalidConfigError
from dagster._core.instance.config import dagster_instance_config
from dagster._core.instance.ref import InstanceRef
from dagster._core.workspace.config_schema import process_workspace_config
from sqlalchemy.engine import make_url

from thred_pipeline_tests.deploy import files
from thred_pipeline_tests.pg import pg_database

BIN = Path(sys.executable).parent
PG_VARS = ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD",
           "DAGSTER_PG_DB")  # fmt: skip


def clean_environment() -> dict[str, str]:
    """This process's environment without any Dagster or Thred setting."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "THRED_"))}


def instance_dir(tmp_path: Path, source: Path, **changes: Any) -> Path:
    """A folder holding ``source`` as dagster.yaml, with top-level blocks replaced."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    config = files.load_yaml(source)
    config.update(changes)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return home


# -- production ------------------------------------------------------------------------------


def test_production_instance_config_passes_dagsters_schema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in PG_VARS:
        monkeypatch.setenv(name, "5432" if name.endswith("PORT") else f"dummy-{name.lower()}")
    config, _ = dagster_instance_config(str(files.DOCKER))
    assert config["storage"]["postgres"]["postgres_db"]["scheme"] == "postgresql+psycopg2"
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["concurrency"]["pools"]["default_limit"] >= 1
    assert (
        config["run_retries"]["enabled"]
        and not config["run_retries"]["retry_on_asset_or_op_failure"]
    )
    assert config["run_monitoring"]["enabled"]
    assert config["telemetry"] == {"enabled": False}

    raw = files.load_yaml(files.PROD_INSTANCE)
    for key in ("run_launcher", "run_coordinator", "scheduler", "compute_logs"):
        block = raw[key]
        cls = getattr(importlib.import_module(block["module"]), block["class"])
        result = process_config(cls.config_type(), block.get("config") or {})
        assert result.success, f"{key}: {[e.message for e in result.errors or []]}"


def test_production_instance_config_refuses_a_misspelt_launcher_key() -> None:
    """The class-schema check above can fail: DockerRunLauncher rejects unknown keys."""
    block = files.load_yaml(files.PROD_INSTANCE)["run_launcher"]
    cls = getattr(importlib.import_module(block["module"]), block["class"])
    config = {**block["config"], "netwrok": "thred_dagster"}
    assert not process_config(cls.config_type(), config).success


def test_production_instance_needs_the_postgres_variables() -> None:
    """Without DAGSTER_PG_* the production instance cannot be built (the root one can)."""
    with pytest.MonkeyPatch.context() as mp:
        for name in PG_VARS:
            mp.delenv(name, raising=False)
        with pytest.raises(DagsterInvalidConfigError, match="DAGSTER_PG_"):
            DagsterInstance.from_config(str(files.DOCKER))


def test_production_workspace_passes_dagsters_schema() -> None:
    result = process_workspace_config(files.load_yaml(files.PROD_WORKSPACE))
    assert result.success, result.errors


@pytest.mark.postgres
def test_production_instance_runs_on_postgresql_and_its_cli_commands_work(
    postgres_admin_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docker/dagster.yaml against a real PostgreSQL: the instance creates its tables, and the
    commands docs/deploy.md gives (migrate, the thred_api pool limit) work. Only the compute-log
    folder is moved to a temporary one."""
    logs = tmp_path / "compute_logs"
    compute_logs = files.load_yaml(files.PROD_INSTANCE)["compute_logs"]
    compute_logs["config"]["base_dir"] = str(logs)
    home = instance_dir(tmp_path, files.PROD_INSTANCE, compute_logs=compute_logs)
    with pg_database(postgres_admin_url, prefix="thred_deploy") as url, monkeypatch.context() as mp:
        parsed = make_url(url)
        settings = {
            "DAGSTER_HOME": str(home),
            "DAGSTER_PG_HOST": parsed.host or "127.0.0.1",
            "DAGSTER_PG_PORT": str(parsed.port or 5432),
            "DAGSTER_PG_USER": parsed.username or "postgres",
            # Trust authentication ignores it; the config still requires the variable.
            "DAGSTER_PG_PASSWORD": parsed.password or "unused-with-trust-auth",
            "DAGSTER_PG_DB": parsed.database or "",
        }
        for name, value in settings.items():
            mp.setenv(name, value)
        with DagsterInstance.get() as instance:
            assert instance.get_runs() == []  # the tables exist
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            assert type(instance.run_launcher).__name__ == "DockerRunLauncher"
            assert instance.get_concurrency_config().pool_config.default_pool_limit == 2

        env = {**clean_environment(), **settings}
        for command in (
            ["dagster", "instance", "migrate"],
            ["dagster", "instance", "concurrency", "set", "thred_api", "3"],
        ):
            done = subprocess.run(
                [str(BIN / command[0]), *command[1:]],
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert done.returncode == 0, f"{' '.join(command)}: {done.stderr[-3000:]}"

        with DagsterInstance.get() as instance:
            assert instance.event_log_storage.get_concurrency_info("thred_api").slot_count == 3


# -- repository root -------------------------------------------------------------------------


def test_root_instance_config_has_no_variables_and_passes_the_schema() -> None:
    raw = files.load_yaml(files.ROOT_INSTANCE)
    referenced = [
        s for s in files.strings(raw) if s == "env" or s.startswith(("DAGSTER_PG", "THRED_"))
    ]
    assert not referenced, f"the root dagster.yaml must need no variable: {referenced}"
    assert "storage" not in raw and "run_launcher" not in raw
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith(("DAGSTER_", "THRED_")):
                mp.delenv(name)
        config, _ = dagster_instance_config(str(files.ROOT))
    assert config["telemetry"] == {"enabled": False}


def test_root_and_production_share_the_pool_and_tag_policy() -> None:
    root = files.load_yaml(files.ROOT_INSTANCE)
    prod = files.load_yaml(files.PROD_INSTANCE)
    assert root["concurrency"]["pools"] == prod["concurrency"]["pools"]
    assert (
        root["concurrency"]["runs"]["tag_concurrency_limits"]
        == prod["concurrency"]["runs"]["tag_concurrency_limits"]
    )
    assert root["telemetry"] == prod["telemetry"] == {"enabled": False}


@pytest.mark.slow
def test_definitions_validate_in_the_repository_root_with_no_variable_set() -> None:
    """What a newcomer runs first. Dagster copies the root dagster.yaml into a temporary
    .tmp_dagster_home_* folder here (removed on exit) and loads workspace.yaml."""
    done = subprocess.run(
        [str(BIN / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=files.ROOT,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "All code locations passed validation" in done.stderr + done.stdout


def test_root_instance_stores_in_sqlite_with_no_variable_set(tmp_path: Path) -> None:
    """A local instance built from the root config stores in SQLite under its own folder."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(files.ROOT_INSTANCE, home / "dagster.yaml")

    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith(("DAGSTER_", "THRED_")):
                mp.delenv(name)
        with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
            assert instance.get_runs() == []
            assert type(instance.run_storage).__name__ == "SqliteRunStorage"
            assert instance.get_concurrency_config().pool_config.default_pool_limit == 2
    assert (home / "history").is_dir()
