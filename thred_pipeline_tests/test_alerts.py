"""Alerts reach a real HTTP receiver once per state change, with no secret in them.

The receiver is an ``http.server`` on 127.0.0.1; the runs and check evaluations are real (a real
Dagster instance, the sandbox, SQLite files); the sensors are evaluated as the daemon does, tick
after tick, each tick starting from the cursor the previous one left.
"""

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pytest
from thred_devtools.sandbox import RunningSandbox, SandboxConfig, start_sandbox
from thred_devtools.seed import SeedConfig, seed_warehouse

from thred_pipeline import alerts
from thred_pipeline.assets import BOOKS_ASSETS, BOOKS_KEY, PUSH_ASSETS
from thred_pipeline.config import DEMO_API_KEY, DEMO_PARTNER_ID
from thred_pipeline.definitions import defs
from thred_pipeline.jobs import NIGHTLY_JOB_NAME
from thred_pipeline.ledger import SyncLedger
from thred_pipeline.resources import (
    LedgerResource,
    ReconcileResource,
    SyncResource,
    ThredResource,
    WarehouseResource,
)
from thred_pipeline.sensors.check_alerts import check_alert
from thred_pipeline.sensors.run_alerts import run_failure_alert, run_recovered_alert

HOOK_SECRET = "hook-s3cret-0f9a8b7c6d5e"  # the credential part of a Slack-style webhook URL
API_KEY = "tk_live_not-a-real-key-8e7d6c5b4a"  # wrong for the sandbox: Thred refuses it
DB_PASSWORD = "pg-pa55word-1a2b3c4d"
BEARER = "eyJhbGciOiJIUzI1NiJ9.payload.sig-9z8y7x"
DAGSTER_UI = "http://dagster.example:3000"

SMALL = SeedConfig(
    businesses=2,
    days=7,
    customers=6,
    vendors=4,
    invoices=20,
    payments=14,
    refunds=2,
    refund_payments=2,
    payouts=1,
    bills=6,
    bill_payments=4,
    vendor_credits=2,
)
DAYS = [f"2026-09-0{d}" for d in range(1, 8)]


# --- a webhook receiver --------------------------------------------------------------------------


@dataclass
class Receiver:
    server: ThreadingHTTPServer
    posts: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    status: int = 200

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/services/T01/B02/{HOOK_SECRET}"

    def take(self) -> list[dict[str, Any]]:
        taken, self.posts[:] = list(self.posts), []
        return taken


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            box = state["receiver"]
            if box.status == 200:
                box.posts.append(json.loads(body))
                box.paths.append(self.path)
            self.send_response(box.status)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state["receiver"] = Receiver(server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state["receiver"]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def alert_env(monkeypatch: pytest.MonkeyPatch, receiver: Receiver) -> Receiver:
    monkeypatch.setenv(alerts.WEBHOOK_ENV, receiver.url)
    monkeypatch.setenv(alerts.BASE_URL_ENV, DAGSTER_UI + "/")
    monkeypatch.setenv("THRED_API_KEY", API_KEY)
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", DB_PASSWORD)
    return receiver


def _secrets_absent(payload: object) -> None:
    text = json.dumps(payload)
    for secret in (HOOK_SECRET, API_KEY, DB_PASSWORD, BEARER):
        assert secret not in text, secret


def _all_text(payload: dict[str, Any]) -> str:
    return json.dumps(payload, ensure_ascii=False)


class Ticker:
    """Evaluates one sensor tick after tick, carrying its cursor like the daemon."""

    def __init__(self, sensor: dg.SensorDefinition, instance: dg.DagsterInstance) -> None:
        self.sensor = sensor
        self.instance = instance
        self.cursor: str | None = None

    def tick(self) -> Any:
        context = dg.build_sensor_context(instance=self.instance, cursor=self.cursor)
        data = self.sensor.evaluate_tick(context)
        for reaction in data.dagster_run_reactions or []:
            assert reaction.error is None, reaction.error
        if data.cursor is not None:
            self.cursor = data.cursor
        return data


# --- messages and redaction (no Dagster run needed) ----------------------------------------------


def test_redaction_removes_every_kind_of_secret(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("THRED_API_KEY", API_KEY)
    monkeypatch.setenv("THRED_WAREHOUSE_URL", f"postgresql://reader:{DB_PASSWORD}@db:5432/wh")
    monkeypatch.setenv(alerts.WEBHOOK_ENV, f"https://hooks.slack.com/services/T/B/{HOOK_SECRET}")
    monkeypatch.setenv("SHORT_TOKEN", "true")  # too short to be a secret: "true" stays readable
    text = (
        f"key {API_KEY}; db postgresql://reader:{DB_PASSWORD}@db/wh; "
        f"mysql://u:other-pass-99@h/x; Authorization: Bearer {BEARER}; "
        f"https://hooks.slack.com/services/T/B/{HOOK_SECRET}; api_key=abc123def456; "
        '{"client_secret": "zz-secret-value"}; flag true'
    )
    redacted = alerts.redact(text)
    for secret in (API_KEY, DB_PASSWORD, "other-pass-99", BEARER, HOOK_SECRET, "abc123def456"):
        assert secret not in redacted
    assert "zz-secret-value" not in redacted
    assert "postgresql://reader:***@db/wh" in redacted
    assert "flag true" in redacted
    assert repr(alerts.AlertSettings.from_env()).count(HOOK_SECRET) == 0


def test_check_message_names_job_partition_checks_money_and_links_the_run():
    settings = alerts.AlertSettings(webhook_url="http://x", dagster_base_url=DAGSTER_UI)
    run = alerts.RunChecks(
        run_id="0123456789abcdef",
        job="nightly_thred_sync",
        partition="2026-09-03",
        changes=[
            alerts.CheckChange(
                "thred/customers",
                "window_matches",
                "2026-09-03",
                "ERROR",
                "PASSED",
                "1 missing in Thred; 1200 minor units at stake <b>",
                1200,
            ),
            alerts.CheckChange("thred/bills", "window_matches", "2026-09-03", "PASSED", "WARN"),
        ],
    )
    message = alerts.check_message([run], settings)
    text = _all_text(message)
    assert message["text"].startswith(":red_circle: Thred checks: 1 failing (1 ERROR, 0 WARN)")
    assert "1 recovered" in message["text"]
    assert f"<{DAGSTER_UI}/runs/0123456789abcdef|01234567>" in text
    assert "nightly_thred_sync" in text and "2026-09-03" in text
    assert "*ERROR* `thred/customers` · `window_matches`" in text
    assert "money at stake 1,200 minor units" in text
    assert "*RECOVERED* `thred/bills`" in text
    assert "&lt;b&gt;" in text  # mrkdwn control characters escaped
    assert all(b["type"] in {"header", "section", "context"} for b in message["blocks"])
    for block in message["blocks"]:
        if block["type"] == "section" and "text" in block:
            assert len(block["text"]["text"]) <= 3000


def test_delivery_failure_names_neither_the_url_nor_a_secret(
    alert_env: Receiver, monkeypatch: pytest.MonkeyPatch
):
    settings = alerts.AlertSettings.from_env()
    settings = alerts.AlertSettings(
        settings.webhook_url, settings.dagster_base_url, timeout_s=5, attempts=1
    )
    alert_env.status = 500
    with pytest.raises(alerts.AlertDeliveryError) as refused:
        alerts.post({"text": f"boom {API_KEY}"}, settings)
    assert "HTTP 500" in str(refused.value)
    assert HOOK_SECRET not in str(refused.value) and "127.0.0.1" not in str(refused.value)

    closed = alerts.AlertSettings(
        f"http://127.0.0.1:9/services/T/B/{HOOK_SECRET}", None, timeout_s=2, attempts=1
    )
    with pytest.raises(alerts.AlertDeliveryError) as unreachable:
        alerts.post({"text": "x"}, closed)
    assert HOOK_SECRET not in str(unreachable.value)
    assert unreachable.value.__cause__ is None and unreachable.value.__context__ is None

    alert_env.status = 200
    alerts.post({"text": f"boom {API_KEY} Bearer {BEARER}"}, settings)
    [posted] = alert_env.take()
    _secrets_absent(posted)


def test_without_a_webhook_every_alert_sensor_skips_saying_so(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(alerts.WEBHOOK_ENV, raising=False)

    @dg.op
    def explode() -> None:
        raise RuntimeError("boom")

    @dg.job
    def failing() -> None:
        explode()

    with dg.instance_for_test() as instance:
        checks = Ticker(check_alert, instance).tick()
        assert alerts.WEBHOOK_ENV in (checks.skip_message or "")
        runs = Ticker(run_failure_alert, instance)
        runs.tick()  # the first tick starts from the latest event
        assert not failing.execute_in_process(instance=instance, raise_on_error=False).success
        skipped = runs.tick()
        assert alerts.WEBHOOK_ENV in (skipped.skip_message or "")


# --- run failures: real runs ---------------------------------------------------------------------


def test_a_failed_run_is_posted_once_without_secrets(alert_env: Receiver):
    """A step error that quotes a database URL, a token and the API key: redacted."""

    @dg.op
    def connect() -> None:
        raise RuntimeError(
            f"cannot connect to postgresql://sync:{DB_PASSWORD}@db:5432/ledger with key "
            f"{API_KEY}; Authorization: Bearer {BEARER}; webhook {alert_env.url}"
        )

    @dg.job(partitions_def=dg.DailyPartitionsDefinition(start_date="2026-09-01"))
    def leaky_sync() -> None:
        connect()

    with dg.instance_for_test() as instance:
        sensor = Ticker(run_failure_alert, instance)
        sensor.tick()
        first = leaky_sync.execute_in_process(
            instance=instance, partition_key="2026-09-03", raise_on_error=False
        )
        assert not first.success
        sensor.tick()
        [posted] = alert_env.take()
        _secrets_absent(posted)
        text = _all_text(posted)
        assert "Thred run failed: leaky_sync" in text
        assert "2026-09-03" in text
        assert f"{DAGSTER_UI}/runs/{first.run_id}" in text
        assert "cannot connect to postgresql://sync:***@db:5432/ledger" in text
        assert "Bearer ***" in text

        # the same job and partition failing again (a retry, a catch-up): no second alert
        again = leaky_sync.execute_in_process(
            instance=instance, partition_key="2026-09-03", raise_on_error=False
        )
        assert not again.success
        sensor.tick()
        assert alert_env.take() == []
        # another night failing is another state change
        leaky_sync.execute_in_process(
            instance=instance, partition_key="2026-09-04", raise_on_error=False
        )
        sensor.tick()
        [other] = alert_env.take()
        assert "2026-09-04" in _all_text(other)


# --- with the sandbox: the nightly job and the checks ---------------------------------------------


@pytest.fixture
def sandbox() -> Iterator[RunningSandbox]:
    with start_sandbox(SandboxConfig()) as running:
        yield running


@pytest.fixture
def world(
    tmp_path: Path, sandbox: RunningSandbox, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    warehouse_url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    seed_warehouse(warehouse_url, SMALL)
    monkeypatch.setenv("THRED_WAREHOUSE_URL", warehouse_url)
    monkeypatch.setenv("THRED_LEDGER_URL", ledger_url)
    monkeypatch.setenv("THRED_BASE_URL", sandbox.url)
    monkeypatch.setenv("THRED_PARTNER_ID", DEMO_PARTNER_ID)
    return {
        "warehouse": WarehouseResource(url=warehouse_url),
        "ledger": LedgerResource(url=ledger_url),
        "thred": ThredResource(
            base_url=sandbox.url, partner_id=DEMO_PARTNER_ID, api_key=DEMO_API_KEY
        ),
        "sync": SyncResource(lookback_hours=0),
        "reconcile": ReconcileResource(),
    }


@pytest.mark.slow
def test_the_nightly_job_fails_then_recovers(
    alert_env: Receiver, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
):
    """Wrong partner key (from the environment, as in production): the run fails, one alert
    without the key; the right key: the same night succeeds, one "recovered"."""
    job = defs.resolve_job_def(NIGHTLY_JOB_NAME)
    day = DAYS[0]
    with dg.instance_for_test() as instance:
        failures, recoveries = (
            Ticker(run_failure_alert, instance),
            Ticker(run_recovered_alert, instance),
        )
        failures.tick()
        recoveries.tick()
        failed = job.execute_in_process(instance=instance, partition_key=day, raise_on_error=False)
        assert not failed.success
        failures.tick()
        recoveries.tick()
        [alert] = alert_env.take()
        _secrets_absent(alert)
        text = _all_text(alert)
        assert f"Thred run failed: {NIGHTLY_JOB_NAME}" in text
        assert day in text and f"{DAGSTER_UI}/runs/{failed.run_id}" in text

        monkeypatch.setenv("THRED_API_KEY", DEMO_API_KEY)
        fixed = job.execute_in_process(instance=instance, partition_key=day, raise_on_error=False)
        assert fixed.success
        failures.tick()
        recoveries.tick()
        [recovered] = alert_env.take()
        text = _all_text(recovered)
        assert f"Thred run recovered: {NIGHTLY_JOB_NAME}" in text
        assert failed.run_id in text and f"{DAGSTER_UI}/runs/{fixed.run_id}" in text
        # success after success: nothing to say
        job.execute_in_process(instance=instance, partition_key=day, raise_on_error=False)
        recoveries.tick()
        assert alert_env.take() == []


def _checks_in(message: dict[str, Any]) -> str:
    return _all_text(message)


@pytest.mark.slow
def test_check_alerts_once_per_state_change_with_money_at_stake(
    alert_env: Receiver, world: dict[str, Any], sandbox: RunningSandbox
):
    resources = {k: v for k, v in world.items() if k != "reconcile"}
    with dg.instance_for_test() as instance:
        sensor = Ticker(check_alert, instance)
        assert "started" in (sensor.tick().skip_message or "")

        # a backfill, day by day: whatever fails is posted once, in one message
        evaluations = []
        for day in DAYS:
            result = dg.materialize(
                PUSH_ASSETS, partition_key=day, resources=resources, instance=instance
            )
            assert result.success, day
            evaluations.extend(result.get_asset_check_evaluations())
        sensor.tick()
        failing = [e for e in evaluations if not e.passed]
        posted = alert_env.take()
        if failing:
            [message] = posted
            text = _all_text(message)
            for evaluation in failing:
                assert (
                    f"*{evaluation.severity.value}* `{evaluation.asset_key.to_user_string()}`"
                    in text
                )
        else:
            assert posted == []
        sensor.tick()
        assert alert_env.take() == []  # nothing new

        # a payment lost in Thred: the books fail (ERROR) with money at stake
        ledger = SyncLedger.from_url(world["ledger"].url)
        payment = next(r for r in ledger.iter_rows("invoice_payments") if r.thred_id)
        business = ledger.thred_ids("businesses", [payment.business_id])[payment.business_id]
        deleted = httpx.post(
            f"{sandbox.url}/_sandbox/delete-object",
            json={
                "business_id": business,
                "collection": "invoice_payments",
                "id": payment.thred_id,
            },
        )
        assert deleted.status_code == 200, deleted.text

        def books() -> dg.ExecuteInProcessResult:
            return dg.materialize(
                [*PUSH_ASSETS, *BOOKS_ASSETS],
                selection=[BOOKS_KEY],
                resources=world,
                instance=instance,
            )

        first = books()
        failed = {e.check_name: e for e in first.get_asset_check_evaluations() if not e.passed}
        assert {"invoice_payments", "ar_balances"} <= set(failed)
        sensor.tick()
        [message] = alert_env.take()
        text = _all_text(message)
        _secrets_absent(message)
        assert f"{DAGSTER_UI}/runs/{first.run_id}" in text
        for name, evaluation in failed.items():
            assert f"`thred/books` · `{name}`" in text
            stake = evaluation.metadata["money_at_stake_cents"].value
            assert f"money at stake {stake:,} minor units" in text
        assert "none (unpartitioned)" in text

        # failing again the next night: not posted again
        books()
        sensor.tick()
        assert alert_env.take() == []

        # the payment's night re-sent with a full refresh puts it back; the books recover
        day = payment.source_updated_at.date().isoformat()
        refreshed = dg.materialize(
            PUSH_ASSETS,
            partition_key=day,
            resources={**resources, "sync": SyncResource(lookback_hours=0, full_refresh=True)},
            instance=instance,
        )
        assert refreshed.success
        healed = books()
        assert all(e.passed for e in healed.get_asset_check_evaluations() if e.check_name in failed)
        sensor.tick()
        [recovered] = alert_env.take()
        text = _all_text(recovered)
        for name in failed:
            assert f"*RECOVERED* `thred/books` · `{name}`" in text
        assert f"{DAGSTER_UI}/runs/{healed.run_id}" in text


class ProbeConfig(dg.Config):
    state: str = "PASSED"  # "PASSED" | "WARN" | "ERROR"
    stake: int = 0


PROBE_DAYS = dg.DailyPartitionsDefinition(start_date="2026-09-01")


@dg.asset(
    key=["thred", "probe"],
    partitions_def=PROBE_DAYS,
    # partitioned like the window checks: one state per day
    check_specs=[
        dg.AssetCheckSpec(
            "probe_matches", asset=dg.AssetKey(["thred", "probe"]), partitions_def=PROBE_DAYS
        )
    ],
)
def probe(config: ProbeConfig) -> dg.MaterializeResult:  # type: ignore[type-arg]
    """A real asset whose check result each run chooses."""
    return dg.MaterializeResult(
        check_results=[
            dg.AssetCheckResult(
                passed=config.state == "PASSED",
                severity=dg.AssetCheckSeverity.WARN
                if config.state == "WARN"
                else dg.AssetCheckSeverity.ERROR,
                description=f"probe says {config.state}",
                metadata={"money_at_stake_cents": config.stake},
            )
        ]
    )


def _probe(instance: dg.DagsterInstance, day: str, state: str, stake: int = 0) -> str:
    result = dg.materialize(
        [probe],
        partition_key=day,
        instance=instance,
        run_config={"ops": {"thred__probe": {"config": {"state": state, "stake": stake}}}},
    )
    return result.run_id


def test_check_states_per_partition_alert_once_each(alert_env: Receiver):
    with dg.instance_for_test() as instance:
        sensor = Ticker(check_alert, instance)
        sensor.tick()
        _probe(instance, "2026-09-01", "PASSED")
        sensor.tick()
        assert alert_env.take() == []  # passing, and never failed: nothing to say

        failed_run = _probe(instance, "2026-09-01", "WARN", 250)
        sensor.tick()
        [warned] = alert_env.take()
        text = _all_text(warned)
        assert "*WARN* `thred/probe` · `probe_matches` (2026-09-01) — newly failing" in text
        assert "money at stake 250 minor units" in text
        assert f"{DAGSTER_UI}/runs/{failed_run}" in text

        _probe(instance, "2026-09-01", "WARN", 250)
        _probe(instance, "2026-09-01", "WARN", 300)
        sensor.tick()
        assert alert_env.take() == []  # still warning: once per state change

        _probe(instance, "2026-09-01", "ERROR", 900)  # escalation is a change
        _probe(instance, "2026-09-02", "ERROR", 10)  # another night is another state
        sensor.tick()
        [both] = alert_env.take()  # one message per tick, per run inside
        text = _all_text(both)
        assert "*ERROR* `thred/probe` · `probe_matches` (2026-09-01) — was WARN" in text
        assert "(2026-09-02) — newly failing" in text
        assert both["text"].startswith(":red_circle: Thred checks: 2 failing (2 ERROR, 0 WARN)")

        _probe(instance, "2026-09-01", "PASSED")
        sensor.tick()
        [recovered] = alert_env.take()
        text = _all_text(recovered)
        assert "*RECOVERED* `thred/probe` · `probe_matches` (2026-09-01)" in text
        assert "was ERROR" in text and "2026-09-02" not in text
        assert json.loads(sensor.cursor or "{}")["failing"] == {
            "thred/probe|probe_matches|2026-09-02": "ERROR"
        }


def test_a_webhook_that_refuses_loses_no_alert(alert_env: Receiver):
    with dg.instance_for_test() as instance:
        sensor = Ticker(check_alert, instance)
        sensor.tick()
        run_id = _probe(instance, "2026-09-03", "ERROR", 42)
        alert_env.status = 503
        before = sensor.cursor
        with pytest.raises(Exception) as refused:
            sensor.tick()
        chain, error = "", refused.value
        while error is not None:
            chain += str(error)
            error = error.__cause__ or error.__context__
        assert "HTTP 503" in chain
        assert HOOK_SECRET not in chain and "127.0.0.1" not in chain
        assert sensor.cursor == before  # nothing is lost: the next tick posts it
        alert_env.status = 200
        sensor.tick()
        [message] = alert_env.take()
        assert run_id in _all_text(message) and "money at stake 42 minor units" in _all_text(
            message
        )
        sensor.tick()
        assert alert_env.take() == []


@dg.asset(
    key=["thred", "probe_fresh"],
    partitions_def=PROBE_DAYS,
    # unpartitioned, like the freshness and books checks: one state whatever the run's day
    check_specs=[dg.AssetCheckSpec("fresh", asset=dg.AssetKey(["thred", "probe_fresh"]))],
)
def probe_fresh(config: ProbeConfig) -> dg.MaterializeResult:  # type: ignore[type-arg]
    return dg.MaterializeResult(
        check_results=[
            dg.AssetCheckResult(
                passed=config.state == "PASSED", severity=dg.AssetCheckSeverity.WARN
            )
        ]
    )


def test_an_unpartitioned_check_has_one_state_whatever_the_runs_day(alert_env: Receiver):
    def run(day: str, state: str) -> None:
        dg.materialize(
            [probe_fresh],
            partition_key=day,
            instance=instance,
            run_config={"ops": {"thred__probe_fresh": {"config": {"state": state}}}},
        )

    with dg.instance_for_test() as instance:
        sensor = Ticker(check_alert, instance)
        sensor.tick()
        run("2026-09-01", "WARN")
        run("2026-09-02", "WARN")  # a backfill of another day: the same check, still failing
        sensor.tick()
        [message] = alert_env.take()
        assert _all_text(message).count("`thred/probe_fresh` · `fresh`") == 1
        run("2026-09-03", "PASSED")
        sensor.tick()
        [recovered] = alert_env.take()
        assert "*RECOVERED* `thred/probe_fresh` · `fresh` — passes again" in _all_text(recovered)
