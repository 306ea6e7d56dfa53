"""The Dockerfiles, checked statically (no Docker engine here): what they copy exists and is not
ignored, they run as a non-root user behind tini in exec form, the Dagster pins agree with
pyproject.toml, and the user-code image carries the product only (no dev tools, no fastapi or
uvicorn) while the staging sandbox has an image of its own."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from thred_pipeline_tests.deploy import files

DOCKERFILES = sorted(p for p in files.DOCKER.glob("Dockerfile_*") if not p.suffix)
USER_CODE = files.DOCKER / "Dockerfile_user_code"
SANDBOX = files.DOCKER / "Dockerfile_sandbox"
# What the development tools bring and the product must not: the sandbox's web stack.
DEV_ONLY = {"fastapi", "uvicorn", "starlette", "thred-devtools"}


def test_the_three_images_exist() -> None:
    assert [p.name for p in DOCKERFILES] == [
        "Dockerfile_dagster",
        "Dockerfile_sandbox",
        "Dockerfile_user_code",
    ]


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


def _ignore_patterns(dockerfile: Path) -> list[str]:
    return dockerfile.with_name(dockerfile.name + ".dockerignore").read_text().splitlines()


def test_dockerignore_keeps_the_rest_of_the_repository_out() -> None:
    for dockerfile in (USER_CODE, SANDBOX):
        patterns = _ignore_patterns(dockerfile)
        for path in (".venv/bin/python", ".git/HEAD", "docker/.env", "thred_pipeline_tests/x.py"):
            assert files.dockerignore_excludes(patterns, path), (dockerfile.name, path)
        assert not files.dockerignore_excludes(patterns, "thred_pipeline/sync/engine.py")
        assert files.dockerignore_excludes(patterns, "thred_pipeline/__pycache__/x.pyc")
    # The dev tools reach the sandbox's build only.
    dev_file = "devtools/thred_devtools/sandbox/app.py"
    assert files.dockerignore_excludes(_ignore_patterns(USER_CODE), dev_file)
    assert not files.dockerignore_excludes(_ignore_patterns(SANDBOX), dev_file)


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
    instructions = files.dockerfile_instructions(USER_CODE)
    cmd = files.exec_form(files.last(instructions, "CMD"))  # type: ignore[arg-type]
    assert cmd is not None
    assert cmd[:3] == ["dagster", "code-server", "start"]
    assert cmd[cmd.index("-m") + 1] == "thred_pipeline.definitions"
    assert cmd[cmd.index("-m") + 1] == files.pyproject()["tool"]["dagster"]["module_name"]


def test_user_code_image_installs_the_product_and_its_deploy_extra_only() -> None:
    instructions = files.dockerfile_instructions(USER_CODE)
    assert files.pip_installs(instructions) == [[".[deploy]"]]
    copied = [s for i in instructions if i.keyword == "COPY" for s in files.copy_sources(i)]
    assert copied == ["pyproject.toml", "README.md", "thred_pipeline"]
    # No instruction (comments aside) prepares anything for the dev tools.
    for instruction in instructions:
        text = instruction.args.lower()
        assert "sandbox" not in text and "devtools" not in text, (
            f"{USER_CODE.name}:{instruction.line}: {instruction.keyword} {instruction.args}"
        )


def test_user_code_image_pulls_in_no_dev_tool() -> None:
    """The distributions `pip install ".[deploy]"` brings, followed through the installed
    metadata from pyproject.toml's own lists: the sandbox's web stack is not among them. The
    same walk over the dev tools' requirements finds it, so the check can fail."""
    deploy = files.dependency_closure(files.requirements_of(files.ROOT, ("deploy",)))
    assert {"dagster", "dagster-docker", "dagster-k8s", "httpx"} <= deploy
    assert not deploy & DEV_ONLY, f"the user-code image would install {sorted(deploy & DEV_ONLY)}"
    devtools = files.dependency_closure(files.requirements_of(files.ROOT / "devtools"))
    assert {"fastapi", "uvicorn"} <= devtools


def test_the_code_location_loads_no_dev_tool() -> None:
    """What the user-code server imports (definitions loaded in a fresh interpreter): none of the
    dev tools or their web stack, so the image can do without them."""
    loaded = {name.split(".")[0] for name in files.code_location_modules()}
    assert "thred_pipeline" in loaded
    assert not loaded & {"thred_devtools", "fastapi", "uvicorn", "starlette"}


@pytest.mark.slow
def test_user_code_image_install_resolves_without_the_dev_tools(tmp_path: Path) -> None:
    """The image's own `pip install`, resolved by pip against the package index (a dry run, no
    Docker) in a copy of exactly what the Dockerfile copies: what a build would install today,
    newest allowed versions included."""
    instructions = files.dockerfile_instructions(USER_CODE)
    for instruction in instructions:
        if instruction.keyword == "COPY":
            for source in files.copy_sources(instruction):
                origin = files.ROOT / source
                if origin.is_dir():
                    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
                    shutil.copytree(origin, tmp_path / source, ignore=ignore)
                else:
                    shutil.copy(origin, tmp_path / source)
    (arguments,) = files.pip_installs(instructions)
    report = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
         "--report", str(report), *arguments],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=540,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    installed = {
        canonicalize_name(item["metadata"]["name"]): item
        for item in json.loads(report.read_text())["install"]
    }
    assert not set(installed) & DEV_ONLY, sorted(set(installed) & DEV_ONLY)
    assert {"dagster-docker", "dagster-k8s"} <= set(installed)
    assert installed["thred-pipeline"]["download_info"]["url"] == tmp_path.as_uri()


def test_sandbox_image_runs_the_dev_tools_sandbox() -> None:
    instructions = files.dockerfile_instructions(SANDBOX)
    # thred-devtools requires `thred-pipeline`: in the same pip command as the checkout, pip
    # takes this checkout for it, not a package of that name from the index.
    assert files.pip_installs(instructions) == [[".", "./devtools"]]
    devtools = files.pyproject(files.ROOT / "devtools" / "pyproject.toml")["project"]
    assert "thred-pipeline" in devtools["dependencies"]
    copied = {s for i in instructions if i.keyword == "COPY" for s in files.copy_sources(i)}
    assert {"pyproject.toml", "thred_pipeline", "devtools/pyproject.toml"} <= copied
    assert "devtools/thred_devtools" in copied

    cmd = files.exec_form(files.last(instructions, "CMD"))  # type: ignore[arg-type]
    assert cmd is not None and cmd[:2] == ["thred-dev", "sandbox"]
    assert devtools["scripts"]["thred-dev"] == "thred_devtools.cli:main"
    # The data folder exists in the image and belongs to the USER (a new volume copies both).
    data_dir = cmd[cmd.index("--data-dir") + 1]
    user = files.last(instructions, "USER")
    assert user is not None
    uid = user.args.split(":")[0]
    prepared = [i.args for i in instructions if i.keyword == "RUN" and data_dir in i.args]
    assert any(f"mkdir -p {data_dir}" in a and f"chown {uid}:" in a for a in prepared), prepared


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
    project = files.pyproject()["project"]
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
