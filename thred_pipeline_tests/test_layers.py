"""The sync core stays orchestrator-agnostic: only the Dagster layer may import dagster."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "thred_pipeline"
DAGSTER_LAYER = {
    "definitions.py",
    "assets.py",
    "checks.py",
    "resources.py",
    "partitions.py",
    "jobs.py",
    "schedules.py",
    "sensors.py",
    "demo.py",
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
