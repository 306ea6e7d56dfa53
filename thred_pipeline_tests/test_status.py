"""`thred-pipeline status` and `quarantine list/retry` as an operator runs them.

One real sync (sandbox over HTTP, SQLite warehouse and ledger) leaves a ledger with synced,
quarantined and deferred records in two businesses; every test reads a copy of it. The counts
the commands print are compared with the ledger read directly with SQL; the Dagster side is a
real local instance.
"""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import select
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from thred_devtools.sandbox import SandboxConfig, start_sandbox
from thred_devtools.seed import SeedConfig, seed_warehouse

from thred_pipeline.config import DEMO_API_KEY, DEMO_PARTNER_ID
from thred_pipeline_tests.test_cli import CLI, EVERYTHING, assert_one_line, run

SHAPE = SeedConfig(
    businesses=2,
    days=7,
    customers=6,
    vendors=4,
    invoices=20,
    payments=14,
    refunds=3,
    refund_payments=2,
    payouts=1,
    bills=6,
    bill_payments=4,
    vendor_credits=2,
)
REJECTED = ("biz-01", "customers", "cus-01-0001")  # both names NULL: refused locally
DEFERRED = ("biz-02", "invoices", "inv-02-00001")  # its customer is not in the warehouse
COLUMN_OF = {
    "synced": "synced",
    "pending": "pending",
    "unknown": "pending",
    "deferred": "deferred",
    "rejected": "quarantined",
    "drift": "drifted",
}


@pytest.fixture(scope="module")
def sandbox_url() -> Iterator[str]:
    with start_sandbox(SandboxConfig()) as running:
        yield running.url


def _base_env(folder: Path, sandbox_url: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("THRED_", "DAGSTER_"))}
    return {
        **base,
        "THRED_HOME": str(folder / "home"),
        "THRED_WAREHOUSE_URL": f"sqlite:///{folder / 'warehouse.db'}",
        "THRED_LEDGER_URL": f"sqlite:///{folder / 'ledger.db'}",
        "THRED_BASE_URL": sandbox_url,
        "THRED_PARTNER_ID": DEMO_PARTNER_ID,
        "THRED_API_KEY": DEMO_API_KEY,
    }


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory, sandbox_url: str) -> Path:
    """A warehouse and the ledger of one sync of it: 1 quarantined and 1 deferred record."""
    folder = tmp_path_factory.mktemp("synced")
    env = _base_env(folder, sandbox_url)
    seed_warehouse(env["THRED_WAREHOUSE_URL"], SHAPE)
    engine = create_engine(env["THRED_WAREHOUSE_URL"])
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE customers SET individual_name = NULL, company_name = NULL, "
                "updated_at = :at WHERE id = :id"
            ),
            {"at": now, "id": REJECTED[2]},
        )
        conn.execute(
            text(
                "UPDATE invoices SET customer_id = 'cus-nowhere', updated_at = :at WHERE id = :id"
            ),
            {"at": now, "id": DEFERRED[2]},
        )
    engine.dispose()
    ran = run(env, "sync", *EVERYTHING)
    assert ran.code == 3, ran.err  # the two records need attention
    return folder


@pytest.fixture
def env(synced: Path, tmp_path: Path, sandbox_url: str) -> dict[str, str]:
    """A copy of the synced world for one test."""
    for name in ("warehouse.db", "ledger.db"):
        shutil.copy(synced / name, tmp_path / name)
    return _base_env(tmp_path, sandbox_url)


def _ledger_path(env: dict[str, str]) -> str:
    return env["THRED_LEDGER_URL"].removeprefix("sqlite:///")


def ledger_counts(env: dict[str, str]) -> dict[tuple[str, str], dict[str, int]]:
    """Per (business, entity), the status columns counted straight from the ledger file."""
    found: dict[tuple[str, str], dict[str, int]] = {}
    with sqlite3.connect(_ledger_path(env)) as conn:
        rows = conn.execute(
            "SELECT business_id, entity, status, error_code FROM thred_sync_ledger"
        ).fetchall()
    for business, entity, status, code in rows:
        cell = found.setdefault(
            (business, entity), dict.fromkeys([*set(COLUMN_OF.values()), "waiting_terminals"], 0)
        )
        cell[COLUMN_OF[status]] += 1
        cell["waiting_terminals"] += code == "terminal_waiting"
    return found


def status_json(env: dict[str, str], *args: str) -> dict:
    ran = run(env, "status", "--json", *args)
    assert ran.code == 0, ran.err
    return json.loads(ran.out)


# -- status ------------------------------------------------------------------------------------


def test_status_counts_are_the_ledger_s(env: dict[str, str]) -> None:
    report = status_json(env)
    expected = ledger_counts(env)
    got = {
        (row["business_id"], row["entity"]): {
            k: v for k, v in row.items() if k not in ("business_id", "entity", "total")
        }
        for row in report["ledger"]
    }
    assert got == expected
    assert {b for b, _ in got} == {"biz-01", "biz-02"}
    assert got[REJECTED[:2]]["quarantined"] == 1
    assert got[DEFERRED[:2]]["deferred"] == 1
    columns = set(COLUMN_OF.values())
    assert report["totals"]["total"] == sum(cell[c] for cell in expected.values() for c in columns)
    assert report["last_run"] is None and report["books"] is None


def test_waiting_terminals_are_counted(env: dict[str, str]) -> None:
    """A synced record whose void waits for dependants (error_code terminal_waiting)."""
    with sqlite3.connect(_ledger_path(env)) as conn:
        conn.execute(
            "UPDATE thred_sync_ledger SET error_code = 'terminal_waiting' "
            "WHERE entity = 'invoices' AND source_id = 'inv-01-00002' AND status = 'synced'"
        )
    report = status_json(env, "--business", "biz-01", "--entity", "invoices")
    (row,) = report["ledger"]
    assert row["waiting_terminals"] == 1
    assert row["synced"] == ledger_counts(env)[("biz-01", "invoices")]["synced"]


def test_status_table_and_filters(env: dict[str, str]) -> None:
    ran = run(env, "status", "--business", "biz-02", "--entity", "invoices", "--entity", "bills")
    assert ran.code == 0, ran.err
    for word in ("synced", "pending", "deferred", "quarantined", "drifted", "waiting terminals"):
        assert word in ran.out
    rows = [line for line in ran.out.splitlines() if "biz-" in line]
    assert len(rows) == 2 and all("biz-02" in line for line in rows)
    invoices = next(line for line in rows if " invoices " in line)
    counts = ledger_counts(env)[("biz-02", "invoices")]
    numbers = [int(cell) for cell in invoices.replace("│", " ").split() if cell.isdigit()]
    assert numbers[:3] == [counts["synced"], counts["pending"], counts["deferred"]]
    assert "Books: no books reconciliation recorded" in ran.out
    assert "Last nightly run: none recorded" in ran.out

    documented = run(env, "status", "--entity", "customers", "--entity", "invoices")  # docs/cli.md
    assert documented.code == 0, documented.err
    shown = {
        tuple(line.replace("│", " ").split()[:2])
        for line in documented.out.splitlines()
        if "biz-" in line
    }
    assert shown == {(b, e) for b in ("biz-01", "biz-02") for e in ("customers", "invoices")}


def test_status_stops_quietly_when_its_reader_leaves(env: dict[str, str]) -> None:
    """`thred-pipeline status | head`: the reader closed the pipe: exit 141, no traceback."""
    process = subprocess.Popen(
        [str(CLI), "status"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # before the command writes anything
    err = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141, err
    assert err == ""


def test_status_reads_the_books_verdict_from_dagster(env: dict[str, str], tmp_path: Path) -> None:
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef

    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(["thred", "books"], metadata={"verdict": "WARN"})
        )
    env = {**env, "DAGSTER_HOME": str(home)}
    assert "Books: verdict WARN" in run(env, "status").out
    report = status_json(env)
    assert report["books"]["verdict"] == "WARN"
    assert report["dagster_home"] == str(home)


def test_status_names_match_the_dagster_definitions() -> None:
    from thred_pipeline import status
    from thred_pipeline.assets import BOOKS_KEY
    from thred_pipeline.jobs import NIGHTLY_JOB_NAME

    assert status.NIGHTLY_JOB_NAME == NIGHTLY_JOB_NAME
    assert list(status.BOOKS_ASSET_PATH) == BOOKS_KEY.path


def test_dagster_home_mistakes(env: dict[str, str], tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dagster-home"
    ran = run(env, "status", DAGSTER_HOME=str(missing))
    assert ran.err_lines == [assert_one_line(ran, 2, f"DAGSTER_HOME={missing}", "not a directory")]
    assert not missing.exists()

    empty = tmp_path / "empty-dagster-home"
    empty.mkdir()
    ran = run(env, "status", DAGSTER_HOME=str(empty))
    assert ran.code == 0, ran.err
    assert "no books reconciliation recorded" in ran.out and "holds no Dagster instance" in ran.out
    assert list(empty.iterdir()) == []  # nothing was created in it


# -- quarantine list / retry -------------------------------------------------------------------


def listed(env: dict[str, str], *args: str) -> list[dict]:
    ran = run(env, "quarantine", "list", "--format", "json", *args)
    assert ran.code == 0, ran.err
    rows: list[dict] = json.loads(ran.out)
    return rows


def test_quarantine_list_filters(env: dict[str, str]) -> None:
    everything = listed(env)
    keys = {(r["business_id"], r["entity"], r["source_id"]) for r in everything}
    assert {REJECTED, DEFERRED} <= keys
    assert {r["status"] for r in everything} <= {"rejected", "deferred", "drift", "unknown"}

    rejected = listed(env, "--status", "rejected")
    assert [(r["business_id"], r["entity"], r["source_id"]) for r in rejected] == [REJECTED]
    assert "individual_name" in rejected[0]["error_message"]

    assert {r["business_id"] for r in listed(env, "--business", "biz-02")} == {"biz-02"}
    both = listed(env, "--entity", "invoices", "--entity", "customers")
    assert {(r["entity"], r["source_id"]) for r in both} >= {REJECTED[1:], DEFERRED[1:]}
    assert {r["entity"] for r in both} <= {"invoices", "customers"}
    assert listed(env, "--entity", "payouts") == []
    assert listed(env, "--status", "pending") == []


def test_quarantine_list_documented_csv(env: dict[str, str]) -> None:
    args = ("--business", "biz-01", "--status", "rejected", "--format", "csv")
    ran = run(env, "quarantine", "list", *args)  # as in docs/cli.md
    assert ran.code == 0, ran.err
    header, *rows = ran.out.splitlines()
    assert header == (
        "entity,business_id,source_id,status,error_code,error_message,attempts,"
        "status_since,external_id,thred_id"
    )
    assert len(rows) == 1
    assert rows[0].startswith("customers,biz-01,cus-01-0001,rejected,invalid_source_data,")
    assert "--format" in run(env, "quarantine", "list", "--help").out


def test_quarantine_list_formats_agree(env: dict[str, str]) -> None:
    as_json = listed(env)
    ran = run(env, "quarantine", "list", "--format", "csv")
    assert ran.code == 0, ran.err
    as_csv = list(csv.DictReader(io.StringIO(ran.out)))
    assert [r["source_id"] for r in as_csv] == [r["source_id"] for r in as_json]
    assert [r["status"] for r in as_csv] == [r["status"] for r in as_json]
    table = run(env, "quarantine", "list")
    assert table.code == 0, table.err
    assert f"{len(as_json)} records need attention" in table.out
    for row in as_json:
        assert row["source_id"] in table.out


def test_quarantine_retry_releases_the_rejected(env: dict[str, str]) -> None:
    ran = run(env, "quarantine", "retry", "--entity", "customers")
    assert ran.code == 0, ran.err
    assert "1 rejected records will be re-sent" in ran.out
    assert listed(env, "--status", "rejected") == []
    (released,) = listed(env, "--status", "unknown")
    assert (released["entity"], released["source_id"]) == REJECTED[1:]


@pytest.mark.parametrize("command", [("status",), ("quarantine", "list"), ("quarantine", "retry")])
def test_missing_sqlite_ledger_is_an_error_not_a_new_file(
    env: dict[str, str], tmp_path: Path, command: tuple[str, ...]
) -> None:
    missing = tmp_path / "typo" / "ledgr.db"
    ran = run(env, *command, THRED_LEDGER_URL=f"sqlite:///{missing}")
    message = assert_one_line(ran, 2, "THRED_LEDGER_URL", str(missing), "does not exist")
    assert ran.err_lines == [message]
    assert not missing.exists() and not missing.parent.exists()


def test_a_database_without_a_ledger_is_not_given_one(env: dict[str, str]) -> None:
    """The warehouse's URL given as the ledger's by mistake: refused, left as it was."""
    warehouse = env["THRED_WAREHOUSE_URL"]
    ran = run(env, "status", THRED_LEDGER_URL=warehouse)
    message = assert_one_line(ran, 2, "THRED_LEDGER_URL", "no sync ledger there")
    assert ran.err_lines == [message]
    with sqlite3.connect(warehouse.removeprefix("sqlite:///")) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert "thred_sync_ledger" not in tables


def test_missing_postgres_database(env: dict[str, str], postgres_admin_url: str) -> None:
    from sqlalchemy.engine import make_url

    url = make_url(postgres_admin_url).set(database="thred_no_such_db_4711")
    plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
    for command in (("status",), ("quarantine", "list")):
        ran = run(env, *command, THRED_LEDGER_URL=plain)
        message = assert_one_line(ran, 2, "THRED_LEDGER_URL", "thred_no_such_db_4711")
        assert "does not exist" in message and ran.err_lines == [message]
    ran = run(env, "sync", *EVERYTHING, THRED_WAREHOUSE_URL=plain)
    assert ran.err_lines == [assert_one_line(ran, 2, "THRED_WAREHOUSE_URL", "does not exist")]


# -- sync's progress bar -----------------------------------------------------------------------


def _run_on_a_terminal(env: dict[str, str], *args: str) -> tuple[int, str]:
    """The CLI with stdout and stderr on a pseudo-terminal; returns (exit code, all output)."""
    main, child = pty.openpty()
    process = subprocess.Popen(
        [str(CLI), *args], env=env, stdin=subprocess.DEVNULL, stdout=child, stderr=child
    )
    os.close(child)
    chunks: list[bytes] = []
    while True:
        ready, _, _ = select.select([main], [], [], 300)
        if not ready:
            process.kill()
            raise AssertionError("no output for 300 s")
        try:
            data = os.read(main, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(main)
    return process.wait(timeout=60), b"".join(chunks).decode(errors="replace")


def test_sync_shows_a_progress_bar_on_a_terminal_only(env: dict[str, str]) -> None:
    entities = ("--entity", "businesses", "--entity", "customers", "--entity", "invoices")
    code, output = _run_on_a_terminal(env, "sync", *EVERYTHING, "--full-refresh", *entities)
    assert code in (0, 3), output
    assert "━" in output  # rich's bar
    assert "records" in output and "entities" in output
    assert '"created"' in output  # the per-entity result lines are still there

    piped = run(env, "sync", *EVERYTHING, "--full-refresh", *entities)
    assert piped.code in (0, 3), piped.err
    assert "━" not in piped.err + piped.out
