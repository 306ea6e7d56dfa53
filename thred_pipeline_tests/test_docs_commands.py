"""Every command README.md and docs/ show is run by a test.

`thred-pipeline …` lines are run here, as written, against a seeded warehouse, a synced ledger
and a sandbox; anything else must be listed in ``ELSEWHERE`` with the test that runs it, so a
new command in the docs without a test fails this file.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from thred_devtools.sandbox import SandboxConfig, start_sandbox
from thred_devtools.seed import SeedConfig, seed_warehouse

from thred_pipeline.config import DEMO_API_KEY, DEMO_PARTNER_ID

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
NOT_COMMANDS = {"thred-api.md"}  # the API contract quotes curl examples of Thred's own docs
CLIS = ("thred-pipeline", ".venv/bin/thred-pipeline", "thred-dev", ".venv/bin/thred-dev")
STARTS = (
    "thred-pipeline",
    "thred-dev",
    ".venv/bin/",
    "make ",
    "dagster",
    "docker",
    "helm",
    "kubectl",
    "pytest",
    ". ",
    "pip ",
    "cp ",
    "kubectl",
    "export ",
)

# Commands a doc shows that this file does not run, and the test (or CI step) that does.
ELSEWHERE = {
    "make demo": "thred_pipeline_tests/devtools/test_demo.py (run_demo, what the target runs)",
    "make test": ".ci/run (the README's test command)",
    "make bench": "thred_pipeline_tests/benchmarks/test_harness.py (a BENCH_QUICK run, "
    "the module the target runs)",
    "pytest": ".ci/run runs the whole suite, these files included",
    ". .thred/demo/demo.env && .venv/bin/dagster dev": "thred_pipeline_tests/test_definitions.py",
    "thred-dev demo": "thred_pipeline_tests/devtools/test_demo.py",
}


def _code_lines(path: Path) -> Iterator[tuple[int, str, str]]:
    """(line number, fence language, text) of every line inside a fenced block."""
    language: str | None = None
    for number, line in enumerate(path.read_text().splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("```"):
            language = None if language is not None else stripped[3:].strip()
            continue
        if language is not None:
            yield number, language, stripped


def documented_commands() -> list[tuple[str, str]]:
    found = []
    for path in DOCS:
        if path.name in NOT_COMMANDS:
            continue
        for number, language, text in _code_lines(path):
            if not text or text.startswith("#"):
                continue
            if text.startswith("$ "):
                command = text[2:]
            elif language in ("bash", "sh", "shell") or text.startswith(STARTS):
                command = text
            else:
                continue
            command = re.sub(r"\s+#.*$", "", command).strip()
            found.append((f"{path.relative_to(REPO)}:{number}", command))
    return found


COMMANDS = documented_commands()


# Whole pages whose commands need a Docker engine, a Kubernetes cluster or helm, none of which
# these machines have: what they deploy is validated statically by the tests named here.
STATIC_ONLY = {
    "docs/deploy.md": "thred_pipeline_tests/deploy",
}


def _elsewhere(command: str) -> str | None:
    return next((why for prefix, why in ELSEWHERE.items() if command.startswith(prefix)), None)


def test_every_documented_command_is_run_by_a_test() -> None:
    unaccounted = [
        (where, command)
        for where, command in COMMANDS
        if not command.startswith(CLIS)
        and _elsewhere(command) is None
        and where.split(":")[0] not in STATIC_ONLY
    ]
    for tests in STATIC_ONLY.values():
        assert list((REPO / tests).glob("test_*.py")), tests
    assert unaccounted == [], "add a test for these commands, or list them in ELSEWHERE"
    assert any(c.startswith("thred-pipeline") for _, c in COMMANDS)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A synced embedded deployment, as the docs' commands expect to find it."""
    home = tmp_path_factory.mktemp("docs")
    warehouse = f"sqlite:///{home / 'warehouse.db'}"
    seed_warehouse(warehouse, SeedConfig(businesses=1, days=7))
    with start_sandbox(SandboxConfig()) as sandbox:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("THRED_", "DAGSTER_"))}
        environment = {
            **base,
            "PATH": f"{BIN}{os.pathsep}{base.get('PATH', '')}",
            "THRED_HOME": str(home),
            "THRED_WAREHOUSE_URL": warehouse,
            "THRED_LEDGER_URL": f"sqlite:///{home / 'ledger.db'}",
            "THRED_BASE_URL": sandbox.url,
            "THRED_PARTNER_ID": DEMO_PARTNER_ID,
            "THRED_API_KEY": DEMO_API_KEY,
        }
        synced = _run(environment, "thred-pipeline sync --start 2000-01-01 --end 2100-01-01", home)
        assert synced.returncode in (0, 3), synced.stderr
        yield environment


def _run(env: dict[str, str], command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        shell=True,
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _sandbox_runs(env: dict[str, str], command: str) -> None:
    """A long-running server: start it on a free port, see it answer, stop it."""
    port = _free_port()
    args = [*shlex.split(command.replace(".venv/bin/", "")), "--port", str(port)]
    args = [a for a in args if a]
    process = subprocess.Popen(
        [str(BIN / args[0]), *args[1:]],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/_sandbox/health", timeout=2).is_success:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
        raise AssertionError(f"{command!r} did not answer within 60 s")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


@pytest.mark.parametrize(
    ("where", "command"),
    [c for c in COMMANDS if c[1].startswith(CLIS)],
)
def test_documented_thred_pipeline_command_runs(
    env: dict[str, str], tmp_path: Path, where: str, command: str
) -> None:
    command = command.removeprefix(".venv/bin/")
    prog = command.split()[0]
    if _elsewhere(command) is not None:
        return  # run by the test ELSEWHERE names
    if " | " in command:  # the synopsis line: every command it names has help
        names = [part.split()[0] for part in command.removeprefix(f"{prog} ").split(" | ")]
        for name in names:
            shown = _run(env, f"{prog} {name} --help", tmp_path)
            assert shown.returncode == 0, (name, shown.stderr)
        return
    if command.split()[1] == "sandbox":
        _sandbox_runs(env, command)
        return
    done = _run(env, command, tmp_path)
    assert done.returncode in (0, 3), (where, command, done.returncode, done.stderr)
    assert "Traceback" not in done.stderr, (where, done.stderr)
