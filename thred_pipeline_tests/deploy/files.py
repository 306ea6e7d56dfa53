"""Readers for the deployment files, shared by the deploy tests.

There is no Docker engine and no helm binary on these machines: the compose file, the
Dockerfiles and the Helm values are read and checked statically. The compose interpolation
below implements the forms the Compose Specification defines (``$$``, ``${VAR}``,
``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?error}``, ``${VAR?error}``) so that values can
be resolved with the variables of ``docker/.env.example``, as ``docker compose config`` would.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.metadata
import json
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE_FILE = DOCKER / "docker-compose.yml"
ENV_EXAMPLE = DOCKER / ".env.example"
PROD_INSTANCE = DOCKER / "dagster.yaml"
PROD_WORKSPACE = DOCKER / "workspace.yaml"
ROOT_INSTANCE = ROOT / "dagster.yaml"
HELM_DIR = ROOT / "deploy" / "helm"
HELM_VALUES = HELM_DIR / "values.yaml"
HELM_SCHEMA = HELM_DIR / "dagster-values.subset.schema.json"

DAGSTER_COMMANDS = ("dagster", "dagster-webserver", "dagster-daemon")

_TOKEN = re.compile(
    r"\$\$"  # escaped dollar
    r"|\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?])?(?P<arg>[^}]*)\}"
    r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def compose() -> dict[str, Any]:
    data = load_yaml(COMPOSE_FILE)
    assert isinstance(data, dict)
    return data


def env_example() -> dict[str, str]:
    """``KEY=VALUE`` lines of docker/.env.example (comments and blank lines skipped)."""
    values: dict[str, str] = {}
    for number, raw in enumerate(ENV_EXAMPLE.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Z_][A-Z0-9_]*", key), f".env.example:{number}: {raw!r}"
        assert key not in values, f".env.example:{number}: {key} is listed twice"
        values[key] = value
    return values


def strings(node: Any) -> Iterator[str]:
    """Every string (keys and values) in a parsed YAML document."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, Mapping):
        for key, value in node.items():
            yield from strings(key)
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


def referenced_variables(text: str) -> set[str]:
    names: set[str] = set()
    for match in _TOKEN.finditer(text):
        name = match.group("braced") or match.group("bare")
        if name:
            names.add(name)
    return names


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose-style interpolation of one string; a missing required variable raises."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("braced") or match.group("bare")
        op, arg = match.group("op"), match.group("arg") or ""
        value = env.get(name)
        unset_or_empty = value is None or value == ""
        if op == ":-":
            return arg if unset_or_empty else str(value)
        if op == "-":
            return arg if value is None else value
        if (op == ":?" and unset_or_empty) or (op == "?" and value is None):
            raise KeyError(f"{name}: {arg}")
        return "" if value is None else value

    return _TOKEN.sub(replace, text)


def resolved(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, Mapping):
        return {resolved(k, env): resolved(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [resolved(item, env) for item in node]
    return node


def effective_command(service: Mapping[str, Any]) -> list[str]:
    """The service's command, or the CMD of the Dockerfile it is built from ([] for a stock
    image such as postgres, whose command is its own)."""
    if "command" in service:
        command = service["command"]
        assert isinstance(command, list), f"command must be exec form (a list): {command!r}"
        return command
    build = service.get("build")
    if not build:
        return []
    context = (COMPOSE_FILE.parent / build["context"]).resolve()
    cmd = last(dockerfile_instructions(context / build["dockerfile"]), "CMD")
    assert cmd is not None
    form = exec_form(cmd)
    assert form is not None
    return form


def service_environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's ``environment`` as a mapping (compose accepts a mapping or KEY=VALUE list)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


# -- Dockerfiles -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    line: int


def dockerfile_instructions(path: Path) -> list[Instruction]:
    """Instructions with continuation lines joined; comments dropped."""
    out: list[Instruction] = []
    buffer, start = "", 0
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        stripped = raw.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if buffer and stripped.startswith("#"):
            continue
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        buffer += stripped
        keyword, _, args = buffer.partition(" ")
        out.append(Instruction(keyword.upper(), args.strip(), start))
        buffer = ""
    assert not buffer, f"{path.name}: unterminated continuation"
    return out


def exec_form(instruction: Instruction) -> list[str] | None:
    """The JSON array of a CMD/ENTRYPOINT in exec form, or None for shell form."""
    try:
        value = json.loads(instruction.args)
    except json.JSONDecodeError:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def last(instructions: list[Instruction], keyword: str) -> Instruction | None:
    found = [i for i in instructions if i.keyword == keyword]
    return found[-1] if found else None


def copy_sources(instruction: Instruction) -> list[str]:
    """Source paths of a COPY/ADD (flags such as --chown dropped; the last word is the dest)."""
    words = [w for w in instruction.args.split() if not w.startswith("--")]
    if instruction.args.startswith("["):
        words = json.loads(instruction.args)
    return words[:-1]


def pip_installs(instructions: list[Instruction]) -> list[list[str]]:
    """The arguments of every ``pip install`` in the RUN instructions, as the shell splits them
    (one list per command; ``&&`` chains split)."""
    found: list[list[str]] = []
    for instruction in instructions:
        if instruction.keyword != "RUN":
            continue
        for command in re.split(r"&&|;", instruction.args):
            words = shlex.split(command)
            if words[:2] == ["pip", "install"]:
                found.append(words[2:])
    return found


def dockerignore_excludes(patterns: list[str], path: str) -> bool:
    """Whether a .dockerignore excludes ``path`` (last matching rule wins; ``!`` re-includes).

    Enough of the syntax for the files here: ``*`` matches within one path segment, ``**`` any
    number of segments, and a rule matching a parent directory covers what is inside it.
    """
    excluded = False
    parts = path.strip("/").split("/")
    for raw in patterns:
        rule = raw.strip()
        if not rule or rule.startswith("#"):
            continue
        negate = rule.startswith("!")
        rule = rule[1:] if negate else rule
        regex = _glob_regex(rule.strip("/"))
        if any(regex.fullmatch("/".join(parts[:n])) for n in range(1, len(parts) + 1)):
            excluded = not negate
    return excluded


def _glob_regex(rule: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(rule):
        if rule.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif rule.startswith("**", i):
            out += ".*"
            i += 2
        elif rule[i] == "*":
            out += "[^/]*"
            i += 1
        elif rule[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(rule[i])
            i += 1
    return re.compile(out)


# -- the code location's settings ---------------------------------------------------------------


# Modules of the code location whose THRED_* names are not the code location's settings: the
# engine's shared settings reader (its other knobs are the CLI's) and the engine packages, which
# get everything they need from the resources.
NOT_DAGSTER_LAYER = {"thred_pipeline.config"}
ENGINE_PACKAGES = ("thred_pipeline.sync", "thred_pipeline.thred", "thred_pipeline.warehouse",
                   "thred_pipeline.reconcile")  # fmt: skip
SETTING = re.compile(r"THRED_[A-Z0-9_]+")


def _in_package(module: str) -> bool:
    return module == "thred_pipeline" or module.startswith("thred_pipeline.")


@functools.cache
def code_location_modules() -> tuple[str, ...]:
    """The modules loading ``thred_pipeline.definitions`` imports, found in a fresh interpreter
    (this process may have imported others — the demo, the CLI — that the code location never
    loads); the package's ones are imported here so ``sys.modules`` has their files."""
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, thred_pipeline.definitions; print('\\n'.join(sorted(sys.modules)))",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout.split()
    for name in loaded:
        if _in_package(name):
            importlib.import_module(name)
    return tuple(loaded)


def dagster_layer_settings() -> dict[str, str]:
    """THRED_* settings the code location reads, mapped to the first file naming them.

    The Dagster layer is every top-level ``thred_pipeline`` module that loading
    ``thred_pipeline.definitions`` imports (definitions, assets, schedules, sensors, resources,
    alerts, ...), without the engine packages and the CLI's settings reader. Any string constant
    that is exactly a ``THRED_*`` name there counts: ``EnvVar("X")``, ``os.environ.get("X")``,
    ``WEBHOOK_ENV = "X"`` and ``_env_int("X", ...)`` alike. Their values are read by the user-code
    server (definitions at import, schedules and sensors at each tick) and by the run workers
    (the same definitions, and the resources), so every one must reach both.
    """
    loaded = code_location_modules()
    found: dict[str, str] = {}
    for name in loaded:
        if not _in_package(name) or name in NOT_DAGSTER_LAYER or name.startswith(ENGINE_PACKAGES):
            continue
        path = Path(getattr(sys.modules[name], "__file__", "") or "")
        if path.suffix != ".py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and SETTING.fullmatch(node.value)
            ):
                found.setdefault(node.value, str(path.relative_to(ROOT)))
    return found


def required_settings() -> dict[str, str]:
    """The settings read through ``EnvVar``: the run fails without them (the others have a
    default when unset or empty)."""
    loaded = code_location_modules()
    found: dict[str, str] = {}
    for name in loaded:
        if not _in_package(name) or name.startswith(ENGINE_PACKAGES):
            continue
        path = Path(getattr(sys.modules[name], "__file__", "") or "")
        if path.suffix != ".py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if (
                isinstance(node, ast.Call)
                and ast.unparse(node.func) in ("dg.EnvVar", "EnvVar", "dagster.EnvVar")
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                found.setdefault(node.args[0].value, str(path.relative_to(ROOT)))
    return found


# -- what an image installs -----------------------------------------------------------------------


def pyproject(path: Path = ROOT / "pyproject.toml") -> dict[str, Any]:
    return tomllib.loads(path.read_text())


def requirements_of(project_dir: Path, extras: tuple[str, ...] = ()) -> list[str]:
    """What ``pip install <project_dir>[extras]`` asks for, read from its pyproject.toml (the
    source, not the metadata of an editable install made before the last edit)."""
    project = pyproject(project_dir / "pyproject.toml")["project"]
    out = list(project.get("dependencies", []))
    for extra in extras:
        out += project["optional-dependencies"][extra]
    return out


def dependency_closure(requirements: list[str]) -> set[str]:
    """Canonical names of the distributions ``requirements`` pull in, following the metadata of
    the distributions installed in this environment (markers evaluated for this interpreter and
    the extras asked for). A distribution that is not installed fails the walk: it cannot be
    checked."""
    found: set[str] = set()
    pending = [Requirement(r) for r in requirements]
    asked: dict[str, set[str]] = {}
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        extras = asked.setdefault(name, set())
        new_extras = set(requirement.extras) - extras
        if name in found and not new_extras:
            continue
        found.add(name)
        extras |= new_extras
        try:
            requires = importlib.metadata.requires(requirement.name) or []
        except importlib.metadata.PackageNotFoundError as missing:
            raise AssertionError(
                f"{requirement.name} is not installed here: cannot follow it"
            ) from missing
        for raw in requires:
            inner = Requirement(raw)
            if inner.marker is None or any(
                inner.marker.evaluate({**default_environment(), "extra": extra})
                for extra in {"", *extras}
            ):
                pending.append(inner)
    return found
