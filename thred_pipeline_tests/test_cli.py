"""The real ``thred-pipeline`` console script, run as a user would, for each kind of mistake.

Every mistake must end with the documented exit code and one line on stderr that names the
setting to fix: no traceback, no key, no database password (docs/cli.md has the tables).
The Thred side is a real sandbox (in this process, reached over HTTP) or a real
``http.server`` that is not Thred; the databases are real SQLite files and PostgreSQL.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, inspect, select, text
from sqlalchemy.engine import make_url
from thred_devtools.sandbox import SandboxConfig, start_sandbox
from thred_devtools.seed import SeedConfig, seed_warehouse

from thred_pipeline.config import DEMO_API_KEY, DEMO_PARTNER_ID, PipelineSettings, SettingsError
from thred_pipeline.ledger import ledger_table

CLI = Path(sys.executable).with_name("thred-pipeline")
DEV_CLI = Path(sys.executable).with_name("thred-dev")  # devtools/: demo, seed, sandbox
WRONG_KEY = "wrong-partner-key-but-still-secret-77bd02"
DB_PASSWORD = "db-pass-w0rd-never-printed"
EVERYTHING = ("--start", "2000-01-01", "--end", "2100-01-01")
ENTITIES = ("--entity", "businesses", "--entity", "customers", "--entity", "invoices")
ENTITY_NAMES = [
    "businesses",
    "customers",
    "vendors",
    "invoices",
    "bills",
    "invoice_payments",
    "bill_payments",
    "vendor_credits",
    "refunds",
    "refund_payments",
    "payouts",
]


@dataclass
class Ran:
    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def sandbox_url() -> Iterator[str]:
    with start_sandbox(SandboxConfig()) as running:
        yield running.url


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("warehouse") / "warehouse.db"
    seed_warehouse(f"sqlite:///{path}", SeedConfig(businesses=1, days=7))
    return path


@pytest.fixture
def env(tmp_path: Path, seeded: Path, sandbox_url: str) -> dict[str, str]:
    """A working configuration: each test breaks one thing in it."""
    warehouse = tmp_path / "warehouse.db"
    shutil.copy(seeded, warehouse)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("THRED_", "DAGSTER_"))}
    return {
        **base,
        "THRED_HOME": str(tmp_path / "home"),
        "THRED_WAREHOUSE_URL": f"sqlite:///{warehouse}",
        "THRED_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
        "THRED_BASE_URL": sandbox_url,
        "THRED_PARTNER_ID": DEMO_PARTNER_ID,
        "THRED_API_KEY": DEMO_API_KEY,
    }


def run(env: dict[str, str], *args: str, **changes: str) -> Ran:
    """``thred-pipeline`` with ``args``; the development commands go to ``thred-dev``."""
    cli = DEV_CLI if args and args[0] in ("demo", "seed", "sandbox") else CLI
    done = subprocess.run(
        [str(cli), *args],
        env={**env, **changes},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return Ran(done.returncode, done.stdout, done.stderr)


def assert_one_line(ran: Ran, code: int, *names: str, secrets: tuple[str, ...] = ()) -> str:
    """Exit ``code``; the last stderr line is the message and names every ``names``."""
    assert ran.code == code, (ran.code, ran.err)
    assert ran.err_lines, "nothing on stderr"
    message = ran.err_lines[-1]
    for name in names:
        assert name in message, message
    assert "Traceback" not in ran.err + ran.out
    for secret in (WRONG_KEY, DB_PASSWORD, *secrets):
        assert secret not in ran.err + ran.out
    return message


def ledger_rows(env: dict[str, str]) -> int:
    """Rows in the ledger the command used (0 if it never created one)."""
    engine = create_engine(env["THRED_LEDGER_URL"])
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table(ledger_table.name):
                return 0
            return int(conn.execute(select(func.count()).select_from(ledger_table)).scalar_one())
    finally:
        engine.dispose()


# -- Thred settings ---------------------------------------------------------------------------


def test_wrong_api_key(env: dict[str, str]) -> None:
    ran = run(env, "sync", *EVERYTHING, THRED_API_KEY=WRONG_KEY)
    message = assert_one_line(ran, 2, "THRED_API_KEY", "THRED_PARTNER_ID")
    assert ran.err_lines == [message]  # nothing else: no log, no traceback
    assert message.startswith("thred-pipeline: configuration error: ")
    assert "HTTP 401" in message
    assert ran.out == ""  # no entity was started
    assert ledger_rows(env) == 0  # failed before any record work


def test_wrong_partner_id(env: dict[str, str]) -> None:
    ran = run(env, "sync", *EVERYTHING, THRED_PARTNER_ID="3f2b9c1e-not-a-partner")
    message = assert_one_line(ran, 2, "THRED_PARTNER_ID", "configuration error")
    assert ran.err_lines == [message]
    assert ledger_rows(env) == 0


def test_reconcile_with_a_wrong_key_never_passes(env: dict[str, str]) -> None:
    ran = run(env, "reconcile", *EVERYTHING, THRED_API_KEY=WRONG_KEY)
    assert_one_line(ran, 2, "THRED_API_KEY")
    assert "PASS" not in ran.out


class _Html(BaseHTTPRequestHandler):
    status = 200

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b"<!DOCTYPE html><html><body>It works!</body></html>"
        self.send_response(self.status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(params=[200, 404], ids=["html-200", "html-404"])
def other_server(request: pytest.FixtureRequest) -> Iterator[str]:
    handler = type("Handler", (_Html,), {"status": request.param})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def test_base_url_is_not_thred(env: dict[str, str], other_server: str) -> None:
    ran = run(env, "sync", *EVERYTHING, THRED_BASE_URL=other_server)
    message = assert_one_line(
        ran, 2, f"THRED_BASE_URL={other_server}", "does not answer like Thred"
    )
    assert ran.err_lines == [message]
    assert ledger_rows(env) == 0


def test_thred_unreachable(env: dict[str, str]) -> None:
    """Nothing listens: the bounded retries run (logged as warnings), then one line.
    THRED_MAX_ATTEMPTS=2 keeps the wait short (the default, 6, takes 8-10 s of backoff)."""
    url = f"http://127.0.0.1:{free_port()}"
    ran = run(env, "sync", *EVERYTHING, THRED_BASE_URL=url, THRED_MAX_ATTEMPTS="2")
    message = assert_one_line(ran, 2, f"THRED_BASE_URL={url}", "unreachable", "(2 attempts made)")
    assert [line for line in ran.err_lines if "configuration error" in line] == [message]
    assert all("WARNING thred_pipeline.thred: thred " in line for line in ran.err_lines[:-1])
    assert ledger_rows(env) == 0


def test_invalid_base_url(env: dict[str, str]) -> None:
    ran = run(env, "sync", *EVERYTHING, THRED_BASE_URL="sandbox.thredfi.com")
    assert ran.err_lines == [assert_one_line(ran, 2, "THRED_BASE_URL")]


# -- databases ------------------------------------------------------------------------------


def test_missing_sqlite_warehouse_is_not_created(env: dict[str, str], tmp_path: Path) -> None:
    missing = tmp_path / "typo" / "warehuose.db"
    ran = run(env, "sync", *EVERYTHING, THRED_WAREHOUSE_URL=f"sqlite:///{missing}")
    message = assert_one_line(ran, 2, "THRED_WAREHOUSE_URL", str(missing), "does not exist")
    assert ran.err_lines == [message]
    assert not missing.exists() and not missing.parent.exists()


def test_warehouse_that_is_not_a_warehouse(env: dict[str, str], tmp_path: Path) -> None:
    other = tmp_path / "something-else.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (id TEXT)")
    conn.close()
    ran = run(env, "sync", *EVERYTHING, THRED_WAREHOUSE_URL=f"sqlite:///{other}")
    message = assert_one_line(ran, 2, "THRED_WAREHOUSE_URL", "missing table(s) businesses")
    assert ran.err_lines == [message]


@pytest.mark.parametrize("setting", ["THRED_WAREHOUSE_URL", "THRED_LEDGER_URL"])
def test_database_unreachable_plain_postgresql_scheme(env: dict[str, str], setting: str) -> None:
    url = f"postgresql://pipeline:{DB_PASSWORD}@127.0.0.1:{free_port()}/books"
    ran = run(env, "sync", *EVERYTHING, **{setting: url})
    message = assert_one_line(ran, 2, setting, "cannot connect")
    assert ran.err_lines == [message]
    # The plain scheme was accepted (pinned to psycopg2), the password masked.
    assert "postgresql+psycopg2://pipeline:***@127.0.0.1" in message


@pytest.mark.parametrize(
    ("setting", "url", "words"),
    [
        ("THRED_LEDGER_URL", "not a url", "is not a database URL"),
        ("THRED_LEDGER_URL", f"mysql://u:{DB_PASSWORD}@127.0.0.1/x", "unsupported database URL"),
        ("THRED_WAREHOUSE_URL", f"oracle://u:{DB_PASSWORD}@127.0.0.1/x", "unsupported"),
    ],
)
def test_bad_database_url(env: dict[str, str], setting: str, url: str, words: str) -> None:
    ran = run(env, "sync", *EVERYTHING, **{setting: url})
    assert ran.err_lines == [assert_one_line(ran, 2, setting, words)]


def test_quarantine_with_unreachable_ledger(env: dict[str, str]) -> None:
    url = f"postgresql://pipeline:{DB_PASSWORD}@127.0.0.1:{free_port()}/books"
    ran = run(env, "quarantine", "list", THRED_LEDGER_URL=url)
    assert ran.err_lines == [assert_one_line(ran, 2, "THRED_LEDGER_URL", "cannot connect")]


def test_plain_postgresql_ledger_url_works(env: dict[str, str], postgres_url: str) -> None:
    plain = make_url(postgres_url).set(drivername="postgresql").render_as_string(False)
    assert plain.startswith("postgresql://")
    ran = run(env, "sync", *EVERYTHING, "--entity", "businesses", THRED_LEDGER_URL=plain)
    assert ran.code == 0, ran.err
    assert '"created": 1' in ran.out
    env = {**env, "THRED_LEDGER_URL": postgres_url}
    assert ledger_rows(env) == 1


def test_bad_number_setting(env: dict[str, str]) -> None:
    ran = run(env, "sync", *EVERYTHING, THRED_CONCURRENCY="lots")
    assert ran.err_lines == [assert_one_line(ran, 2, "THRED_CONCURRENCY", "'lots'")]


def test_max_attempts_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """THRED_MAX_ATTEMPTS reaches the client; below 1 it is refused naming the setting."""
    monkeypatch.delenv("THRED_MAX_ATTEMPTS", raising=False)
    assert PipelineSettings.from_env().thred_settings().max_attempts == 6
    monkeypatch.setenv("THRED_MAX_ATTEMPTS", "3")
    assert PipelineSettings.from_env().thred_settings().max_attempts == 3
    monkeypatch.setenv("THRED_MAX_ATTEMPTS", "0")
    with pytest.raises(SettingsError, match="THRED_MAX_ATTEMPTS must be >= 1, got '0'"):
        PipelineSettings.from_env()


# -- arguments --------------------------------------------------------------------------------


def test_unknown_entity_names_the_close_match_and_the_valid_names(env: dict[str, str]) -> None:
    for command in (
        ["sync", *EVERYTHING],
        ["reconcile", *EVERYTHING],
        ["status"],
        ["quarantine", "list"],
        ["quarantine", "retry"],
    ):
        ran = run(env, *command, "--entity", "invoice")
        message = assert_one_line(ran, 2, "--entity", "'invoice'", "did you mean 'invoices'?")
        assert ran.err_lines == [message]
        assert all(name in message for name in ENTITY_NAMES)
    ran = run(env, "status", "--entity", "widgets")  # nothing close: no guess
    assert "did you mean" not in assert_one_line(ran, 2, "'widgets'", "choose from")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("statsu",), ("invalid choice: 'statsu'; did you mean 'status'?",)),
        (("quarantine", "lst"), ("did you mean 'list'?",)),
        (("quarantine", "list", "--status", "rejectd"), ("did you mean 'rejected'?",)),
        (("quarantine", "list", "--format", "jsn"), ("did you mean 'json'?",)),
        (("seed", "--days", "3"), ("argument --days", "greater than or equal to 7")),
        (("demo", "--port", "70000"), ("argument --port", "not a TCP port")),
    ],
)
def test_usage_mistakes_are_one_line(
    env: dict[str, str], args: tuple[str, ...], words: tuple[str, ...]
) -> None:
    ran = run(env, *args)
    assert ran.err_lines == [assert_one_line(ran, 2, *words)]
    assert ran.out == ""


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                yield from _parsers(child)


def test_every_option_and_command_has_help() -> None:
    from thred_devtools.cli import build_parser as build_dev_parser

    from thred_pipeline.cli import build_parser

    missing = []
    parsers = [*_parsers(build_parser()), *_parsers(build_dev_parser())]
    assert {p.prog for p in parsers} >= {
        "thred-pipeline status",
        "thred-pipeline quarantine list",
        "thred-pipeline quarantine retry",
        "thred-dev sandbox",
    }
    for parser in parsers:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                helps = {a.dest: a.help for a in action._choices_actions}
                missing += [
                    f"{parser.prog} {name}" for name in action.choices if not helps.get(name)
                ]
            elif not action.help or action.help == argparse.SUPPRESS:
                missing.append(f"{parser.prog} {'/'.join(action.option_strings) or action.dest}")
    assert missing == []


def test_demo_port_taken(env: dict[str, str]) -> None:
    """A port given with --port must be free; the default one falls back to a free port."""
    import io

    from thred_devtools.demo import start_demo_sandbox

    from thred_pipeline.config import DEFAULT_SANDBOX_PORT

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ran = run(env, "demo", "--home", env["THRED_HOME"], "--port", str(port))
        message = assert_one_line(ran, 2, f"--port {port}", "in use")
        assert ran.err_lines == [message] and ran.out == ""
        assert not Path(env["THRED_HOME"], "demo.env").exists()  # stopped before any work

    with socket.socket() as default:
        try:
            default.bind(("127.0.0.1", DEFAULT_SANDBOX_PORT))
            default.listen()
        except OSError:
            pass  # already busy: the same case
        out = io.StringIO()
        sandbox = start_demo_sandbox(Path(env["THRED_HOME"]), None, out)
        try:
            assert sandbox.port != DEFAULT_SANDBOX_PORT
            assert out.getvalue() == (
                f"Port {DEFAULT_SANDBOX_PORT} is busy; the sandbox listens on port "
                f"{sandbox.port} instead\n"
            )
        finally:
            sandbox.stop()


@pytest.mark.parametrize(
    "dates",
    [
        ("--start", "2025-13-01"),
        ("--start", "yesterday"),
        ("--start", "2025-01-02", "--end", "2025-01-01"),
        ("--start", "9999-12-31"),
    ],
)
def test_bad_dates(env: dict[str, str], dates: tuple[str, ...]) -> None:
    ran = run(env, "sync", *dates)
    message = assert_one_line(ran, 2, "--")
    assert ran.err_lines == [message] and message.startswith("thred-pipeline sync: error:")


# -- outcomes ---------------------------------------------------------------------------------


def test_sync_exit_codes_clean_then_attention(env: dict[str, str]) -> None:
    clean = run(env, "sync", *EVERYTHING, *ENTITIES)
    assert clean.code == 0, clean.err
    assert "need attention" not in clean.err

    # One invoice now points at a customer the warehouse does not have: it waits (deferred).
    engine = create_engine(env["THRED_WAREHOUSE_URL"])
    with engine.begin() as conn:
        invoice = conn.execute(text("SELECT id FROM invoices ORDER BY id LIMIT 1")).scalar_one()
        conn.execute(
            text("UPDATE invoices SET customer_id = 'cus-nowhere', updated_at = :at WHERE id = :i"),
            {"at": datetime.now(UTC), "i": invoice},
        )
    engine.dispose()

    again = run(env, "sync", *EVERYTHING, *ENTITIES)
    message = assert_one_line(again, 3, "1 records need attention", "1 deferred")
    assert "thred-pipeline quarantine list" in message
    listed = run(env, "quarantine", "list")
    assert listed.code == 0 and invoice in listed.out and "deferred" in listed.out


def test_unexpected_failure_is_one_line_unless_debug(env: dict[str, str], tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where a directory is needed")
    target = f"sqlite:///{blocker / 'warehouse.db'}"
    ran = run(env, "seed", "--warehouse-url", target)
    message = assert_one_line(ran, 1, "unexpected failure", "rerun with --debug")
    assert ran.err_lines == [message]

    debug = run(env, "seed", "--warehouse-url", target, "--debug")
    assert debug.code == 1 and "Traceback" in debug.err


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_demo_takes_a_port() -> None:
    root = Path(__file__).resolve().parents[1]

    def demo_line(*args: str) -> str:
        done = subprocess.run(
            ["make", "--no-print-directory", "-n", "demo", *args],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            env={k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL")},
        )
        return done.stdout.strip().splitlines()[-1].strip()

    assert demo_line("PORT=9000") == ".venv/bin/thred-dev demo --port 9000"
    assert demo_line() == ".venv/bin/thred-dev demo"
