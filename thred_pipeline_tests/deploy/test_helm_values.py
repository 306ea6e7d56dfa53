"""deploy/helm/values.yaml for Dagster's official Helm chart, validated without helm.

No helm binary can be installed from the package registries this project uses (Debian has no
`helm` package), so `helm template` does not run here. Instead:

1. the values are validated against deploy/helm/dagster-values.subset.schema.json, a subset of
   the chart's own values.schema.json (provenance in the file's $comment);
2. the parts of dagster.yaml the chart renders from these values are rebuilt here, following the
   chart's templates (helm/dagster/templates/configmap-instance.yaml and
   helpers/instance/_postgresql.tpl, _run-launcher.tpl in dagster-io/dagster) for the keys we set,
   and validated with Dagster's own instance and K8sRunLauncher config schemas;
3. the queue, pool, retry and monitoring policy is compared with docker/dagster.yaml.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config
from dagster_k8s import K8sRunLauncher

from thred_pipeline_tests.deploy import files

RELEASE, NAMESPACE = "thred", "thred"
FULLNAME = f"{RELEASE}-dagster"  # dagster.fullname for a release whose name lacks "dagster"
SECRETS_EXAMPLE = files.HELM_DIR / "secrets.example.yaml"


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    data = files.load_yaml(files.HELM_VALUES)
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    schema = json.loads(files.HELM_SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def errors(validator: jsonschema.Draft7Validator, document: dict[str, Any]) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(document)
    ]


def test_values_validate_against_the_charts_schema(
    values: dict[str, Any], validator: jsonschema.Draft7Validator
) -> None:
    assert errors(validator, values) == []


def _set(document: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    node: Any = changed
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    node[keys[-1]] = value
    return changed


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("runLauncher.config.k8sRunLauncher.envSecret", [{"name": "x"}]),  # misspelt key
        ("runLauncher.type", "K8sRunLaucher"),
        ("postgresql.enabled", "false"),  # a string, not a boolean
        ("dagster-user-deployments.deployments.0.name", "thred_pipeline"),  # not a k8s name
        ("dagster-user-deployments.deployments.0.envSecrets", ["thred-pipeline-env"]),
        # both dagsterApiGrpcArgs and codeServerArgs:
        ("dagster-user-deployments.deployments.0.dagsterApiGrpcArgs", ["-m", "x"]),
        ("dagsterDaemon.runCoordinator.config", {"queuedRunCoordinator": {"maxConcurentRuns": 1}}),
        ("dagsterDeamon", {}),  # misspelt section
        ("retention.sensor.purgeAfterDays", {"skipped": 7}),
        ("telemetry.enable", False),
    ],
)
def test_the_schema_catches_mistakes(
    values: dict[str, Any], validator: jsonschema.Draft7Validator, path: str, value: Any
) -> None:
    assert errors(validator, _set(values, path, value)), f"{path}={value!r} was accepted"


def test_external_postgres_and_per_run_pods(values: dict[str, Any]) -> None:
    postgresql = values["postgresql"]
    assert postgresql["enabled"] is False
    assert postgresql["postgresqlHost"] and postgresql["postgresqlScheme"] == "postgresql+psycopg2"
    assert "postgresqlPassword" not in postgresql  # it comes from the Secret
    assert values["generatePostgresqlPasswordSecret"] is False
    assert values["global"]["postgresqlSecretName"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"

    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert values["dagster-user-deployments"]["enabled"] is True
    pyproject_module = "thred_pipeline.definitions"
    assert deployment["codeServerArgs"] == ["-m", pyproject_module]
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": True}
    assert deployment["image"]["tag"] not in ("latest", "")
    assert deployment["podSecurityContext"]["runAsNonRoot"] is True
    assert deployment["podSecurityContext"]["runAsUser"] == 10001  # the images' USER
    assert "resources" not in deployment, "with includeConfigInLaunchedRuns they override runs'"


def test_kubernetes_runs_the_user_code_image_and_no_dev_tool(values: dict[str, Any]) -> None:
    """Production on Kubernetes has no staging sandbox: the one code location is the user-code
    image (built from docker/Dockerfile_user_code, the product only), and nothing in the values
    names the dev tools or their web stack."""
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert deployment["image"]["repository"].endswith("/thred-pipeline-user-code")
    for text in files.strings(values):
        lowered = text.lower()
        for word in ("sandbox", "thred-dev", "devtools", "fastapi", "uvicorn"):
            assert word not in lowered, f"deploy/helm/values.yaml names {word}: {text!r}"


def test_required_settings_reach_the_code_server_and_runs(
    values: dict[str, Any],
) -> None:
    secrets = {d["metadata"]["name"]: d for d in yaml.safe_load_all(SECRETS_EXAMPLE.read_text())}
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    provided = set(deployment["env"])
    for ref in deployment["envSecrets"]:
        provided |= set(secrets[ref["name"]]["stringData"])
    required = files.required_settings()
    missing = {k: v for k, v in required.items() if k not in provided}
    assert not missing, f"required but not in the deployment's env or Secret (example): {missing}"
    unknown = provided - set(files.dagster_layer_settings())
    assert not unknown, f"the code location reads no such setting: {sorted(unknown)}"
    for ref in values["runLauncher"]["config"]["k8sRunLauncher"]["envSecrets"]:
        assert ref["name"] in secrets
    pg_secret = secrets[values["global"]["postgresqlSecretName"]]
    assert set(pg_secret["stringData"]) == {"postgresql-password"}
    for secret in secrets.values():
        for key, value in secret["stringData"].items():
            if key == "THRED_BASE_URL":
                continue
            assert "change-me" in value, f"{key} in secrets.example.yaml must be a placeholder"


def chart_instance_config(values: dict[str, Any]) -> list[tuple[str, Any]]:
    """The top-level blocks of the chart's dagster.yaml for these values, in rendering order.

    A transcription of configmap-instance.yaml for the keys set here, not `helm template`:
    defaults we do not set (scheduler, the queued run coordinator's empty config, python logs)
    are taken as the chart's defaults (DagsterDaemonScheduler, no coordinator config, none).
    """
    pg = values["postgresql"]
    postgres_db: dict[str, Any] = {
        "username": pg["postgresqlUsername"],
        "password": {"env": "DAGSTER_PG_PASSWORD"},
        "hostname": pg["postgresqlHost"],
        "db_name": pg["postgresqlDatabase"],
        "port": pg["service"]["port"],
        "params": pg.get("postgresqlParams", {}),
    }
    if pg.get("postgresqlScheme"):
        postgres_db["scheme"] = pg["postgresqlScheme"]
    storage = {"config": {"postgres_db": postgres_db}}

    k8s = values["runLauncher"]["config"]["k8sRunLauncher"]
    launcher: dict[str, Any] = {
        "load_incluster_config": k8s["loadInclusterConfig"],
        "job_namespace": k8s.get("jobNamespace") or NAMESPACE,
        "image_pull_policy": k8s["imagePullPolicy"],
        "service_account_name": FULLNAME,
        "dagster_home": "/opt/dagster/dagster_home",
        "instance_config_map": f"{FULLNAME}-instance",
        "postgres_password_secret": values["global"]["postgresqlSecretName"],
    }
    if k8s.get("envSecrets"):
        launcher["env_secrets"] = [s["name"] for s in k8s["envSecrets"]]
    for key, target in (
        ("envVars", "env_vars"),
        ("resources", "resources"),
        ("securityContext", "security_context"),
    ):
        if k8s.get(key):
            launcher[target] = k8s[key]
    if k8s.get("runK8sConfig"):
        names = {"jobSpecConfig": "job_spec_config", "podSpecConfig": "pod_spec_config",
                 "containerConfig": "container_config", "jobMetadata": "job_metadata",
                 "podTemplateSpecMetadata": "pod_template_spec_metadata"}  # fmt: skip
        launcher["run_k8s_config"] = {names[k]: v for k, v in k8s["runK8sConfig"].items()}

    daemon = values["dagsterDaemon"]
    blocks: list[tuple[str, Any]] = [
        ("scheduler", {"module": "dagster.core.scheduler", "class": "DagsterDaemonScheduler"}),
        ("schedule_storage", {"module": "dagster_postgres.schedule_storage",
                              "class": "PostgresScheduleStorage", **storage}),
        ("run_launcher", {"module": "dagster_k8s", "class": "K8sRunLauncher", "config": launcher}),
        ("run_storage", {"module": "dagster_postgres.run_storage", "class": "PostgresRunStorage",
                         **storage}),
        ("event_log_storage", {"module": "dagster_postgres.event_log",
                               "class": "PostgresEventLogStorage", **storage}),
    ]  # fmt: skip
    coordinator = daemon["runCoordinator"]
    if coordinator["enabled"]:
        assert coordinator["type"] == "QueuedRunCoordinator"
        assert not coordinator.get("config"), "queue limits live in additionalInstanceConfig"
        blocks.append(
            ("run_coordinator",
             {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator"})
        )  # fmt: skip
    assert values["computeLogManager"]["type"] == "NoOpComputeLogManager"
    blocks.append(
        ("compute_logs", {"module": "dagster._core.storage.noop_compute_log_manager",
                          "class": "NoOpComputeLogManager"})
    )  # fmt: skip
    if daemon["runMonitoring"]["enabled"]:
        blocks.append(("run_monitoring", {"enabled": True}))
    if daemon["runRetries"]["enabled"]:
        blocks.append(("run_retries", {"enabled": True}))
    blocks.append(("telemetry", {"enabled": values["telemetry"]["enabled"]}))
    retention = values["retention"]
    if retention["enabled"]:
        blocks.append(
            ("retention", {kind: {"purge_after_days": retention[kind]["purgeAfterDays"]}
                           for kind in ("sensor", "schedule") if kind in retention})
        )  # fmt: skip
    blocks.extend(values.get("additionalInstanceConfig", {}).items())
    return blocks


def test_rendered_instance_config_passes_dagsters_schemas(
    values: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = chart_instance_config(values)
    keys = [key for key, _ in blocks]
    duplicated = sorted({k for k in keys if keys.count(k) > 1})
    assert not duplicated, f"dagster.yaml would hold these blocks twice: {duplicated}"

    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(dict(blocks), sort_keys=False))
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "dummy")
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["concurrency"]["pools"]["default_limit"] >= 1

    launcher = dict(blocks)["run_launcher"]["config"]
    result = process_config(K8sRunLauncher.config_type(), launcher)  # type: ignore[no-untyped-call]
    assert result.success, [e.message for e in result.errors or []]


def test_kubernetes_and_compose_share_one_policy(values: dict[str, Any]) -> None:
    compose_instance = files.load_yaml(files.PROD_INSTANCE)
    extra = values["additionalInstanceConfig"]
    for key in ("concurrency", "run_retries", "run_monitoring"):
        assert extra[key] == compose_instance[key], f"{key} differs from docker/dagster.yaml"
    rendered = dict(chart_instance_config(values))
    assert rendered["retention"] == compose_instance["retention"]
    assert rendered["telemetry"] == compose_instance["telemetry"] == {"enabled": False}


def test_thred_api_is_the_only_pool_so_the_default_limit_is_its_limit() -> None:
    from thred_pipeline.definitions import defs

    pools = {op.pool for job in defs.resolve_all_job_defs() for op in job.graph.iterate_op_defs()}
    assert pools - {None} == {"thred_api"}
