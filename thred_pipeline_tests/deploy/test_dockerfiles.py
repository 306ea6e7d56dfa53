"""The Dockerfiles, checked statically (no Docker engine here): what they copy exists and is not
ignored, they run as a non-root user behind tini in exec form, and the Dagster pins agree with
pyproject.toml."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from thred_pipeline_tests.deploy import files

DOCKERFILES = sorted(p for p in files.DOCKER.glob("Dockerfile_*") if not p.suffix)


def test_both_images_exist() -> None:
    assert [p.name for p in DOCKERFILES] == ["Dockerfile_dagster", "Dockerfile_user_code"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_every_copied_path_exists_and_reaches_the_build(dockerfile: Path) -> None:
    ignore_file = dockerfile.with_name(dockerfile.name + ".dockerignore")
    patterns = ignore_file.read_text().splitlines()
    instructions = files.dockerfile_instructions(dockerfile)
    copies = [i for i in instructions if i.keyword in ("COPY", "ADD")]
    assert copies
    for instruction in copies:
        assert instruction.keyword == "COPY", f"{dockerfile.name}:{instruction.line}: use COPY"
        for source in files.copy_sources(instruction):
            path = files.ROOT / source  # the build context is the repository root
            assert path.exists(), f"{dockerfile.name}:{instruction.line}: {source} does not exist"
            assert not files.dockerignore_excludes(patterns, source), (
                f"{dockerfile.name}:{instruction.line}: {source} is excluded by {ignore_file.name}"
            )
            if path.is_dir():
                for inner in path.rglob("*.py"):
                    rel = inner.relative_to(files.ROOT).as_posix()
                    assert not files.dockerignore_excludes(patterns, rel), rel


def test_dockerignore_keeps_the_rest_of_the_repository_out() -> None:
    patterns = (files.DOCKER / "Dockerfile_user_code.dockerignore").read_text().splitlines()
    for path in (".venv/bin/python", ".git/HEAD", "docker/.env", "thred_pipeline_tests/x.py"):
        assert files.dockerignore_excludes(patterns, path), path
    assert not files.dockerignore_excludes(patterns, "thred_pipeline/sync/engine.py")
    assert files.dockerignore_excludes(patterns, "thred_pipeline/__pycache__/x.pyc")


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_runs_non_root_behind_tini_in_exec_form(dockerfile: Path) -> None:
    instructions = files.dockerfile_instructions(dockerfile)
    user = files.last(instructions, "USER")
    assert user is not None, f"{dockerfile.name}: no USER"
    uid = user.args.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"{dockerfile.name}: USER must be a numeric non-root id"
    assert user.line > max(i.line for i in instructions if i.keyword in ("RUN", "COPY"))

    entrypoint = files.last(instructions, "ENTRYPOINT")
    cmd = files.last(instructions, "CMD")
    assert entrypoint is not None and cmd is not None
    assert files.exec_form(entrypoint) == ["/usr/bin/tini", "--"], (
        f"{dockerfile.name}: tini must be PID 1 so SIGTERM reaches the process (exec form)"
    )
    assert files.exec_form(cmd), f"{dockerfile.name}: CMD must be exec form (a JSON array)"
    assert any("install" in i.args and "tini" in i.args for i in instructions if i.keyword == "RUN")


def test_user_code_cmd_serves_the_code_location() -> None:
    instructions = files.dockerfile_instructions(files.DOCKER / "Dockerfile_user_code")
    cmd = files.exec_form(files.last(instructions, "CMD"))  # type: ignore[arg-type]
    assert cmd is not None
    assert cmd[:3] == ["dagster", "code-server", "start"]
    assert cmd[cmd.index("-m") + 1] == "thred_pipeline.definitions"
    pyproject = tomllib.loads((files.ROOT / "pyproject.toml").read_text())
    assert cmd[cmd.index("-m") + 1] == pyproject["tool"]["dagster"]["module_name"]
    assert any('pip install ".[deploy]"' in i.args for i in instructions if i.keyword == "RUN")


def test_dagster_image_carries_the_production_instance_config() -> None:
    instructions = files.dockerfile_instructions(files.DOCKER / "Dockerfile_dagster")
    env = " ".join(i.args for i in instructions if i.keyword == "ENV")
    home = re.search(r"DAGSTER_HOME=(\S+)", env)
    assert home is not None
    copied = [i for i in instructions if i.keyword == "COPY" and "dagster.yaml" in i.args]
    (copy,) = copied
    assert files.copy_sources(copy) == ["docker/dagster.yaml", "docker/workspace.yaml"]
    assert copy.args.split()[-1].rstrip("/") == home.group(1).rstrip("/")
    cmd = files.exec_form(files.last(instructions, "CMD"))  # type: ignore[arg-type]
    assert cmd is not None and cmd[cmd.index("-w") + 1] == f"{home.group(1)}/workspace.yaml"


def _pins(lines: list[str]) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in lines:
        match = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)==([0-9.]+)\s*", line.split("#")[0])
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


def test_dagster_family_pins_agree_everywhere() -> None:
    pyproject = tomllib.loads((files.ROOT / "pyproject.toml").read_text())
    project = pyproject["project"]
    declared = [*project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        declared += extra
    in_pyproject = _pins(declared)
    image = _pins((files.DOCKER / "requirements-dagster.txt").read_text().splitlines())
    assert set(project["optional-dependencies"]["deploy"]) == {
        f"dagster-docker=={in_pyproject['dagster-docker']}",
        f"dagster-k8s=={in_pyproject['dagster-k8s']}",
    }
    for name, version in image.items():
        if name in in_pyproject:
            assert in_pyproject[name] == version, (
                f"{name}: image {version}, pyproject {in_pyproject[name]}"
            )
    # Dagster numbers its libraries 0.(minor+16).patch beside core 1.minor.patch (1.13.27 with
    # 0.29.27), and each library wheel pins core exactly.
    core = in_pyproject["dagster"]
    library = "0." + str(int(core.split(".")[1]) + 16) + "." + core.split(".")[2]
    for name, version in {**in_pyproject, **image}.items():
        if name.startswith("dagster"):
            expected = (
                library if name in ("dagster-postgres", "dagster-docker", "dagster-k8s") else core
            )
            assert version == expected, f"{name}=={version}: the family is {core} / {library}"
