"""The deployment's commands, run for real outside containers (there is no Docker engine here):
the user-code image's CMD answers the compose health check and stops on SIGTERM, the staging
sandbox image's CMD answers its health check and stops on SIGTERM, and the Postgres init script
creates the ledger's database. Hosts are rewritten to 127.0.0.1 and ports to free ones; nothing
else changes."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from thred_pipeline_tests.deploy import files

BIN = Path(sys.executable).parent
# A container's process starts with default signal dispositions, but a test runner may have been
# started with SIGTERM or SIGINT ignored, which exec'd children inherit: reset them, then exec.
DEFAULT_SIGNALS_THEN_EXEC = (
    "import os, signal, sys; "
    "signal.signal(signal.SIGTERM, signal.SIG_DFL); signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execvp(sys.argv[1], sys.argv[1:])"
)
INIT_SCRIPT = files.DOCKER / "postgres" / "initdb" / "10-thred-ledger.sh"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def local(command: list[str], port: int) -> list[str]:
    """The command with its listening host set to 127.0.0.1 and its port to ``port``."""
    out = list(command)
    for flag in ("-h", "--host"):
        if flag in out:
            out[out.index(flag) + 1] = "127.0.0.1"
    for flag in ("-p", "--port"):
        if flag in out:
            out[out.index(flag) + 1] = str(port)
    return out


def resolve(command: list[str]) -> list[str]:
    """Run console scripts from this virtualenv (the image has them on PATH)."""
    head = BIN / command[0]
    return [str(head) if head.exists() else command[0], *command[1:]]


def healthcheck(service: str, port: int, container_port: int) -> list[str]:
    test = files.compose()["services"][service]["healthcheck"]["test"]
    assert test[0] == "CMD"
    return resolve([part.replace(str(container_port), str(port)) for part in test[1:]])


def wait_healthy(check: list[str], process: subprocess.Popen[bytes], budget_s: float) -> None:
    deadline = time.monotonic() + budget_s
    while True:
        assert process.poll() is None, f"the server exited early with {process.returncode}"
        done = subprocess.run(check, capture_output=True, timeout=120)
        if done.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"health check never passed: {done.stdout!r} {done.stderr!r}")
        time.sleep(1)


@contextmanager
def started(
    command: list[str], env: dict[str, str], cwd: Path
) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [sys.executable, "-c", DEFAULT_SIGNALS_THEN_EXEC, *command],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group, so leftovers can be found and killed
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_user_code_server_answers_its_health_check_and_stops_on_sigterm(tmp_path: Path) -> None:
    cmd = files.last(files.dockerfile_instructions(files.DOCKER / "Dockerfile_user_code"), "CMD")
    assert cmd is not None
    image_cmd = files.exec_form(cmd)
    assert image_cmd is not None
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "THRED_"))}
    env["DAGSTER_HOME"] = str(tmp_path)
    with started(resolve(local(image_cmd, port)), env, tmp_path) as server:
        wait_healthy(healthcheck("user_code", port, 4000), server, budget_s=240)
        server.send_signal(signal.SIGTERM)
        # Compose waits stop_grace_period (30s) before SIGKILL; stopping is the outcome checked.
        server.wait(timeout=120)
        assert server.returncode in (0, -signal.SIGTERM), server.returncode
        deadline = time.monotonic() + 60
        while group_alive(server.pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not group_alive(server.pid), "a child of the code server outlived SIGTERM"


def test_staging_sandbox_command_answers_its_health_check(tmp_path: Path) -> None:
    """The sandbox service's command (the CMD of Dockerfile_sandbox: `thred-dev sandbox`, from
    the dev tools installed beside the product here as in that image)."""
    command = local(files.effective_command(files.compose()["services"]["sandbox"]), free_port())
    assert command[0] == "thred-dev"
    data_dir = command.index("--data-dir") + 1
    command[data_dir] = str(tmp_path / "sandbox")
    port = int(command[command.index("--port") + 1])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "THRED_"))}
    with started(resolve(command), env, tmp_path) as server:
        wait_healthy(healthcheck("sandbox", port, 8765), server, budget_s=120)
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
        assert server.returncode in (0, -signal.SIGTERM), server.returncode
    assert (tmp_path / "sandbox").is_dir()


@pytest.mark.postgres
def test_init_script_creates_the_ledger_database_once(postgres_admin_url: str) -> None:
    """docker/postgres/initdb/10-thred-ledger.sh, as the postgres image runs it (its environment
    plus the server), against the local server; run twice, as a re-initialisation would."""
    if shutil.which("psql") is None:
        pytest.fail("psql (PostgreSQL client) is needed to run the init script")
    admin = make_url(postgres_admin_url)
    name = f"thred_ledger_test_{uuid.uuid4().hex[:10]}"
    env = {
        **os.environ,
        "POSTGRES_USER": admin.username or "postgres",
        "POSTGRES_DB": admin.database or "postgres",
        "THRED_LEDGER_DB": name,
        "PGHOST": admin.host or "127.0.0.1",
        "PGPORT": str(admin.port or 5432),
    }
    if admin.password:
        env["PGPASSWORD"] = admin.password
    engine = create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    try:
        for _ in range(2):
            done = subprocess.run(
                ["sh", str(INIT_SCRIPT)], env=env, capture_output=True, text=True, timeout=60
            )
            assert done.returncode == 0, done.stderr
        with engine.connect() as conn:
            found = conn.execute(
                text("SELECT count(*) FROM pg_database WHERE datname = :n"), {"n": name}
            ).scalar_one()
        assert found == 1
        missing = {k: v for k, v in env.items() if k != "THRED_LEDGER_DB"}
        refused = subprocess.run(
            ["sh", str(INIT_SCRIPT)], env=missing, capture_output=True, text=True, timeout=60
        )
        assert refused.returncode != 0 and "THRED_LEDGER_DB" in refused.stderr
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()
    assert os.access(INIT_SCRIPT, os.X_OK), "the postgres image runs executable *.sh scripts"
