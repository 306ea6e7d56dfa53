"""docker/docker-compose.yml, checked statically (no Docker engine on these machines).

The file is parsed as YAML, its keys are checked against the Compose Specification's names (a
list kept here, not the specification's JSON schema), and its values are resolved with
docker/.env.example the way ``docker compose config`` interpolates them.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from thred_pipeline_tests.deploy import files

EXPECTED_SERVICES = {"postgresql", "user_code", "webserver", "daemon", "sandbox"}

# Compose Specification keys used or plausible here; anything else is a typo.
SERVICE_KEYS = {
    "build", "image", "command", "entrypoint", "environment", "env_file", "restart", "ports",
    "expose", "volumes", "networks", "depends_on", "healthcheck", "profiles", "group_add",
    "stop_grace_period", "stop_signal", "user", "working_dir", "labels", "logging", "init",
    "read_only", "security_opt", "cap_drop", "cap_add", "tmpfs", "secrets", "configs",
    "hostname", "pull_policy", "ulimits", "shm_size", "extra_hosts", "platform", "deploy",
}  # fmt: skip
TOP_KEYS = {"name", "services", "networks", "volumes", "secrets", "configs"}
HEALTHCHECK_KEYS = {"test", "interval", "timeout", "retries", "start_period", "disable"}
DURATION = re.compile(r"(\d+(us|ms|s|m|h))+")
RESTART = re.compile(r"no|always|unless-stopped|on-failure(:\d+)?")
DEPENDS_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
DAGSTER_PG = {"DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD",
              "DAGSTER_PG_DB"}  # fmt: skip


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return files.compose()


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    return files.env_example()


@pytest.fixture(scope="module")
def spec(raw: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """The compose file as `docker compose config` would see it with .env.example's values."""
    resolved = files.resolved(raw, env)
    assert isinstance(resolved, dict)
    return resolved


@pytest.fixture(scope="module")
def instance() -> dict[str, Any]:
    data = files.load_yaml(files.PROD_INSTANCE)
    assert isinstance(data, dict)
    return data


def test_top_level_and_service_keys_are_compose_keys(raw: dict[str, Any]) -> None:
    unknown_top = {k for k in raw if not k.startswith("x-")} - TOP_KEYS
    assert not unknown_top, f"not Compose keys: {sorted(unknown_top)}"
    assert set(raw["services"]) == EXPECTED_SERVICES
    for name, service in raw["services"].items():
        unknown = set(service) - SERVICE_KEYS
        assert not unknown, f"service {name}: not Compose service keys: {sorted(unknown)}"
        assert "image" in service or "build" in service, f"service {name}: no image or build"
        if "restart" in service:
            assert RESTART.fullmatch(service["restart"]), f"{name}: restart {service['restart']!r}"


def test_every_service_has_a_healthcheck_in_exec_or_shell_form(spec: dict[str, Any]) -> None:
    for name, service in spec["services"].items():
        check = service.get("healthcheck")
        assert check, f"service {name} has no healthcheck"
        assert set(check) <= HEALTHCHECK_KEYS, f"{name}: {sorted(set(check) - HEALTHCHECK_KEYS)}"
        assert not check.get("disable"), f"{name}: healthcheck disabled"
        test = check["test"]
        assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, (
            f"{name}: healthcheck test must be [CMD, ...] or [CMD-SHELL, ...], got {test!r}"
        )
        for key in ("interval", "timeout", "start_period"):
            assert DURATION.fullmatch(check[key]), f"{name}: healthcheck {key} {check[key]!r}"
        assert isinstance(check["retries"], int) and check["retries"] > 0


def test_depends_on_waits_for_health_only_where_a_healthcheck_exists(spec: dict[str, Any]) -> None:
    services = spec["services"]
    for name, service in services.items():
        for dependency, rule in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown service {dependency}"
            assert rule["condition"] in DEPENDS_CONDITIONS
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency]
            # A service outside the default profile cannot be a dependency of one inside it.
            if not service.get("profiles"):
                assert not services[dependency].get("profiles"), (
                    f"{name} (default profile) depends on {dependency}, which is in a profile"
                )
    assert services["webserver"]["depends_on"]["user_code"]["condition"] == "service_healthy"
    assert services["daemon"]["depends_on"]["user_code"]["condition"] == "service_healthy"


def test_staging_profile_adds_the_sandbox_only(spec: dict[str, Any]) -> None:
    profiled = {n: s["profiles"] for n, s in spec["services"].items() if s.get("profiles")}
    assert profiled == {"sandbox": ["staging"]}
    sandbox = spec["services"]["sandbox"]
    command = files.effective_command(sandbox)
    assert command[:2] == ["thred-dev", "sandbox"]
    port = command[command.index("--port") + 1]
    host = command[command.index("--host") + 1]
    assert host == "0.0.0.0"  # reachable from the other containers
    assert f"127.0.0.1:{port}/" in " ".join(sandbox["healthcheck"]["test"])
    # The sandbox's state survives a restart.
    data_dir = command[command.index("--data-dir") + 1]
    assert any(v.endswith(f":{data_dir}") for v in sandbox["volumes"])
    # The staging lines of .env.example point the pipeline at this service.
    staging_hint = files.ENV_EXAMPLE.read_text()
    assert f"THRED_BASE_URL=http://sandbox:{port}" in staging_hint


def test_the_sandbox_has_an_image_of_its_own(spec: dict[str, Any]) -> None:
    """The dev tools never ride in the user-code image, which every run container starts from."""
    services = spec["services"]
    sandbox, user_code = services["sandbox"], services["user_code"]
    assert sandbox["build"]["dockerfile"] == "docker/Dockerfile_sandbox"
    assert user_code["build"]["dockerfile"] == "docker/Dockerfile_user_code"
    assert sandbox["image"] != user_code["image"]
    assert files.service_environment(user_code)["DAGSTER_CURRENT_IMAGE"] != sandbox["image"]
    # Nothing of the production stack waits for it or talks to it by default.
    for name, service in services.items():
        assert "sandbox" not in (service.get("depends_on") or {}), f"{name} depends on sandbox"


def test_every_interpolated_variable_is_listed_in_env_example(
    raw: dict[str, Any], env: dict[str, str]
) -> None:
    used: set[str] = set()
    for text in files.strings(raw):
        used |= files.referenced_variables(text)
    missing = sorted(used - set(env))
    assert not missing, f"docker/.env.example lacks {missing}"
    stale = sorted(set(env) - used)
    assert not stale, f"docker/.env.example lists variables the compose file never uses: {stale}"


def test_env_example_holds_placeholders_not_secrets(env: dict[str, str]) -> None:
    for key in ("DAGSTER_PG_PASSWORD", "THRED_API_KEY", "THRED_PARTNER_ID"):
        assert env[key].startswith("change-me"), f"{key} in .env.example must be a placeholder"
    for key in ("THRED_LEDGER_URL", "THRED_WAREHOUSE_URL"):
        assert "change-me" in env[key], f"{key} in .env.example must carry a placeholder password"
    ignored = (files.DOCKER / ".gitignore").read_text().split()
    assert ".env" in ignored, "docker/.env (the real secrets) must be git-ignored"


def test_required_variables_fail_loudly_when_missing(raw: dict[str, Any]) -> None:
    """Secrets have no default: compose refuses to start without them (``${VAR:?message}``)."""
    with pytest.raises(KeyError, match="THRED_API_KEY"):
        files.resolved(raw, {k: v for k, v in files.env_example().items() if k != "THRED_API_KEY"})


def test_services_that_build_the_dagster_instance_get_the_postgres_settings(
    spec: dict[str, Any], instance: dict[str, Any]
) -> None:
    needed = {v for v in files.strings(instance["storage"]) if v.startswith("DAGSTER_PG_")}
    assert needed == DAGSTER_PG
    loaders = set()
    for name, service in spec["services"].items():
        command = files.effective_command(service)
        if command and command[0] in files.DAGSTER_COMMANDS:
            loaders.add(name)
            missing = needed - set(files.service_environment(service))
            assert not missing, f"service {name} runs {command[0]} but lacks {sorted(missing)}"
    assert loaders == {"user_code", "webserver", "daemon"}
    # Run containers get them from the daemon through the run launcher.
    forwarded = set(instance["run_launcher"]["config"]["env_vars"])
    assert needed <= forwarded


def test_run_containers_get_every_variable_the_code_location_reads(
    spec: dict[str, Any], instance: dict[str, Any]
) -> None:
    settings = files.dagster_layer_settings()
    assert "THRED_API_KEY" in settings and "THRED_PARTITION_START" in settings
    forwarded = set(instance["run_launcher"]["config"]["env_vars"])
    daemon_env = files.service_environment(spec["services"]["daemon"])
    code_env = files.service_environment(spec["services"]["user_code"])
    for name, source in settings.items():
        assert name in code_env, f"{name} (read in {source}) is not set for service user_code"
        assert name in forwarded, (
            f"{name} (read in {source}) is not in docker/dagster.yaml run_launcher env_vars"
        )
    # DockerRunLauncher reads each forwarded name from the daemon's environment.
    missing = sorted(forwarded - set(daemon_env))
    assert not missing, f"the daemon cannot forward {missing}: not in its environment"
    # The webserver never launches runs (QueuedRunCoordinator): it holds no Thred secret.
    webserver_env = files.service_environment(spec["services"]["webserver"])
    assert not {k for k in webserver_env if k.startswith("THRED_")}


def test_runs_use_the_user_code_image_network_and_compute_log_volume(
    spec: dict[str, Any], instance: dict[str, Any]
) -> None:
    services = spec["services"]
    user_code = services["user_code"]
    env = files.service_environment(user_code)
    assert env["DAGSTER_CURRENT_IMAGE"] == user_code["image"]

    launcher = instance["run_launcher"]
    assert (launcher["module"], launcher["class"]) == ("dagster_docker", "DockerRunLauncher")
    network_names = {n: (v or {}).get("name", n) for n, v in spec["networks"].items()}
    assert launcher["config"]["network"] in network_names.values()
    for name, service in services.items():
        assert service["networks"] == ["thred"], f"{name} is not on the shared network"

    base_dir = instance["compute_logs"]["config"]["base_dir"]
    (volume_spec,) = launcher["config"]["container_kwargs"]["volumes"]
    volume_name, mount = volume_spec.split(":")[:2]
    assert mount == base_dir
    named = {k: (v or {}).get("name") for k, v in spec["volumes"].items()}
    compose_key = next(k for k, n in named.items() if n == volume_name)
    assert any(
        v.split(":")[:2] == [compose_key, base_dir] for v in services["webserver"]["volumes"]
    ), "the webserver must mount the compute-log volume where the log manager reads"


def test_webserver_and_daemon_reach_docker_without_root(spec: dict[str, Any]) -> None:
    for name in ("webserver", "daemon"):
        service = spec["services"][name]
        assert "/var/run/docker.sock:/var/run/docker.sock" in service["volumes"]
        assert service["group_add"] == [files.env_example()["DOCKER_GID"]]
        assert "user" not in service  # the image's non-root USER applies
    # The UI has no login: published on loopback by default.
    (port,) = spec["services"]["webserver"]["ports"]
    assert port.startswith("127.0.0.1:")


def test_workspace_points_at_the_user_code_server(spec: dict[str, Any]) -> None:
    workspace = files.load_yaml(files.PROD_WORKSPACE)
    (entry,) = workspace["load_from"]
    server = entry["grpc_server"]
    assert server["host"] in spec["services"]
    command = files.effective_command(spec["services"][server["host"]])
    assert command[command.index("-p") + 1] == str(server["port"])
    assert command[command.index("-h") + 1] == "0.0.0.0"
    assert command[command.index("--location-name") + 1] == server["location_name"]
    healthcheck = spec["services"][server["host"]]["healthcheck"]["test"]
    assert healthcheck[1:] == ["dagster", "api", "grpc-health-check", "-p", str(server["port"])]


def test_build_contexts_and_dockerfiles_exist(raw: dict[str, Any]) -> None:
    for name, service in raw["services"].items():
        build = service.get("build")
        if not build:
            continue
        context = (files.COMPOSE_FILE.parent / build["context"]).resolve()
        assert context == files.ROOT, f"{name}: build context must be the repository root"
        assert (context / build["dockerfile"]).is_file(), f"{name}: {build['dockerfile']} missing"


def test_bind_mounted_paths_exist(raw: dict[str, Any]) -> None:
    for name, service in raw["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (files.COMPOSE_FILE.parent / source).exists(), f"{name}: {source} missing"


def test_exec_form_commands(raw: dict[str, Any]) -> None:
    for name, service in raw["services"].items():
        for key in ("command", "entrypoint"):
            if key in service:
                assert isinstance(service[key], list), f"{name}: {key} must be a list"
