"""Floors point one way: a product module imports only its own floor or the floors below it.

0 ``core`` (plain types); 1 ``warehouse``, ``thred``, ``ledger`` (each on core alone); 2
``entities``; 3 ``sync`` and ``reconcile`` (never each other); 4 the top: configuration, the
CLI and the Dagster layer, the only floor that imports dagster. The dev tools sit above
everything and no product module imports them. Every import counts, inside functions too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "thred_pipeline"
DEV_TOOLS = ("thred_devtools", "fastapi", "uvicorn", "starlette")
TOP = 4
FLOORS = {
    "core": 0,
    "warehouse": 1,
    "thred": 1,
    "ledger": 1,
    "entities": 2,
    "sync": 3,
    "reconcile": 3,
}  # every other module or package of thred_pipeline is on the top floor
# Top-floor modules and packages that may import dagster (the CLI and config may not).
DAGSTER_LAYER = {
    "definitions",
    "assets",
    "checks",
    "resources",
    "partitions",
    "jobs",
    "schedules",
    "sensors",
    "status",  # the CLI's `status` reads the last runs from the Dagster instance
}


def _part(path: Path) -> str:
    """The floor's unit of a product file: its package under thred_pipeline, or its module."""
    first = path.relative_to(PACKAGE).parts[0]
    return first.removesuffix(".py")


def _imported(path: Path) -> Iterable[str]:
    """Every module name the file imports, anywhere in it (functions included)."""
    package = ".".join(("thred_pipeline", *path.relative_to(PACKAGE).parts[:-1]))
    return imported_names(path.read_text(), package)


def imported_names(source: str, package: str) -> Iterable[str]:
    """Module names imported by ``source``, a module of ``package`` (relative ones resolved)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if base == "thred_pipeline":  # `from thred_pipeline import entities`
                yield from (f"{base}.{alias.name}" for alias in node.names)
            else:
                yield base


def _imports(path: Path) -> set[str]:
    return {name.split(".")[0] for name in _imported(path)}


def _floor(part: str) -> int:
    return FLOORS.get(part, TOP)


def wrong_way(part: str, imported: Iterable[str]) -> list[str]:
    """The product imports of module unit ``part`` that point up or sideways."""
    found = []
    for name in imported:
        pieces = name.split(".")
        if pieces[0] != "thred_pipeline" or len(pieces) < 2:
            continue
        target = pieces[1]
        if target == part:
            continue
        here, there = _floor(part), _floor(target)
        if there > here or (there == here and here != TOP):
            found.append(name)
    return sorted(set(found))


def _product_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_floors_point_one_way():
    offenders = {
        str(path.relative_to(PACKAGE)): bad
        for path in _product_files()
        if (bad := wrong_way(_part(path), _imported(path)))
    }
    assert offenders == {}


@pytest.mark.parametrize(
    ("part", "imported", "expected"),
    [
        ("entities", ["thred_pipeline.sync.engine"], ["thred_pipeline.sync.engine"]),
        ("warehouse", ["thred_pipeline.entities"], ["thred_pipeline.entities"]),
        ("warehouse", ["thred_pipeline.thred.client"], ["thred_pipeline.thred.client"]),
        ("sync", ["thred_pipeline.reconcile.compare"], ["thred_pipeline.reconcile.compare"]),
        ("core", ["thred_pipeline.warehouse.schema"], ["thred_pipeline.warehouse.schema"]),
        ("sync", ["thred_pipeline.definitions"], ["thred_pipeline.definitions"]),
        ("sync", ["thred_pipeline.entities", "thred_pipeline.core.records"], []),
        ("reconcile", ["thred_pipeline.reconcile.findings", "pandas"], []),
        ("assets", ["thred_pipeline.config", "thred_pipeline.sync.engine"], []),
    ],
)
def test_the_floor_rule(part: str, imported: list[str], expected: list[str]):
    assert wrong_way(part, imported) == expected


def test_imports_inside_functions_and_relative_imports_count():
    lazy = "def later():\n    from thred_pipeline.sync import engine\n"
    assert wrong_way("core", imported_names(lazy, "thred_pipeline.core")) == ["thred_pipeline.sync"]
    relative = "from ..reconcile import compare\nfrom .. import entities\n"
    assert list(imported_names(relative, "thred_pipeline.sync")) == [
        "thred_pipeline.reconcile",
        "thred_pipeline.entities",
    ]


def test_the_floor_map_names_real_packages():
    for part in FLOORS:
        assert (PACKAGE / part / "__init__.py").exists(), part
    assert _floor("definitions") == TOP


def test_core_modules_do_not_import_dagster():
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in _product_files()
        if _part(path) not in DAGSTER_LAYER and "dagster" in _imports(path)
    ]
    assert offenders == []


def test_the_check_sees_real_files():
    assert (PACKAGE / "sync" / "engine.py").exists()
    assert "dagster" in _imports(PACKAGE / "assets.py")
    assert "thred_pipeline" in _imports(PACKAGE / "entities" / "spec.py")


def test_the_product_never_imports_the_dev_tools():
    """The sandbox, seed and demo live in devtools/; the product neither imports them nor
    depends on their web framework, so the user-code image carries none of it."""
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(_imports(path) & set(DEV_TOOLS))
        for path in _product_files()
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


def test_a_sync_loads_no_dataframe_library():
    """pandas serves reconciliation only; importing it cost a tiny sync half its CPU (issue 8),
    so what ``thred-pipeline sync`` imports must not pull it in."""
    probe = (
        "import sys, thred_pipeline.cli, thred_pipeline.entities, thred_pipeline.sync.engine\n"
        "thred_pipeline.cli.build_parser()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pandas', 'numpy')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.strip() == "[]"
