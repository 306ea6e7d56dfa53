"""The sync core stays orchestrator-agnostic: only the Dagster layer may import dagster."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "thred_pipeline"
DEV_TOOLS = ("thred_devtools", "fastapi", "uvicorn", "starlette")
DAGSTER_LAYER = {
    "definitions.py",
    "assets.py",
    "checks.py",
    "resources.py",
    "partitions.py",
    "jobs.py",
    "schedules.py",
    "sensors.py",
    "status.py",  # the CLI's `status` reads the last runs from the Dagster instance
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_core_modules_do_not_import_dagster():
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if str(path.relative_to(PACKAGE)) not in DAGSTER_LAYER and "dagster" in _imports(path)
    ]
    assert offenders == []


def test_the_check_sees_real_files():
    assert (PACKAGE / "sync" / "engine.py").exists()
    assert "dagster" in _imports(PACKAGE / "assets.py")


def test_the_product_never_imports_the_dev_tools():
    """The sandbox, seed and demo live in devtools/; the product neither imports them nor
    depends on their web framework, so the user-code image carries none of it."""
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(_imports(path) & set(DEV_TOOLS))
        for path in PACKAGE.rglob("*.py")
        if _imports(path) & set(DEV_TOOLS)
    }
    assert offenders == {}
    runtime = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert [d for d in runtime if d.split("[")[0].split(">")[0].split("=")[0] in DEV_TOOLS] == []


def test_loading_the_code_location_and_cli_loads_no_dev_tool():
    probe = (
        "import sys, thred_pipeline.definitions, thred_pipeline.cli\n"
        "thred_pipeline.cli.build_parser()\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {DEV_TOOLS!r}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.strip() == "[]"
