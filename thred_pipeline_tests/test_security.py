"""Security: no secret in any output, tokens scoped to their business, bound SQL, verified TLS.

The leak test runs the real Dagster assets against the sandbox with every kind of trouble a
production run can meet — 5xx, 429, commit-then-drop, tokens revoked mid-run, a record Thred
refuses (its 400 echoed back), a record refused locally, a business whose token is refused
(403), wrong partner credentials, a step that fails with an exception — and then searches
everything the runs produced for the API key, the Basic credential and every token the
sandbox issued: stdout/stderr at the file-descriptor level, every log record at DEBUG, every
Dagster event (messages, metadata, check results, error chains), every file of the Dagster
instance, the ledger database and the reprs of the objects involved.
"""

from __future__ import annotations

import ast
import asyncio
import base64
import logging
import re
import shutil
import ssl
import subprocess
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pytest
import uvicorn
from pydantic import SecretStr, ValidationError
from sqlalchemy import event, text
from thred_devtools.sandbox import RunningSandbox, SandboxConfig, create_app, start_sandbox
from thred_devtools.sandbox import auth as sandbox_auth
from thred_devtools.sandbox import routes as sandbox_routes
from thred_devtools.sandbox.errors import ApiError
from thred_devtools.seed import SeedConfig

from thred_pipeline import entities
from thred_pipeline.config import PipelineSettings
from thred_pipeline.core.records import Status, TimeWindow
from thred_pipeline.ledger import SyncLedger
from thred_pipeline.reconcile import BooksReconciler
from thred_pipeline.resources import LedgerResource, ThredResource, WarehouseResource
from thred_pipeline.sync.engine import SyncEngine, SyncOptions
from thred_pipeline.thred.client import ThredClient
from thred_pipeline.thred.errors import ThredConfigError
from thred_pipeline.thred.settings import ThredSettings
from thred_pipeline.warehouse.db import create_warehouse_engine
from thred_pipeline.warehouse.extract import Warehouse
from thred_pipeline_tests.chaos.dagster_runs import (
    TunedThredResource,
    fast_retry_assets,
    resources,
)
from thred_pipeline_tests.chaos.world import (
    TokenRevoker,
    World,
    ledger_rows,
    sandbox_faults,
    seed_file,
    sql,
)

PACKAGE = Path(__file__).resolve().parents[1] / "thred_pipeline"

PARTNER = "sec-partner-4d1f"
API_KEY = "sk_test_SECURITY_only_9c4e1b7a2f60"
WRONG_KEY = "wrong-partner-key-but-still-secret-55aa01"
SEED = SeedConfig(
    seed=5,
    businesses=2,
    days=7,
    customers=4,
    vendors=4,
    invoices=6,
    payments=4,
    refunds=1,
    refund_payments=1,
    payouts=1,
    bills=3,
    bill_payments=2,
    vendor_credits=1,
)
LAST_DAY = (SEED.start + timedelta(days=SEED.days - 1)).isoformat()
WHOLE_SEED = 24.0 * (SEED.days + 1)  # lookback hours: one partition run covers all the data


def basic(partner: str, key: str) -> str:
    return base64.b64encode(f"{partner}:{key}".encode()).decode()


# --- a sandbox that remembers every token it issued and who used which ---------------------------


@dataclass
class Spy:
    """Tokens minted and business-route accesses, seen from inside the sandbox."""

    sandbox: RunningSandbox
    tokens: list[str] = field(default_factory=list)
    accesses: list[tuple[str | None, str, str]] = field(
        default_factory=list
    )  # (token biz, path biz, method)
    misdirect: dict[str, str] = field(default_factory=dict)  # business external id -> other one
    lock: threading.Lock = field(default_factory=threading.Lock)

    def thred_id(self, external_id: str) -> str | None:
        store = self.sandbox.app.state.sandbox.store
        with store.lock:
            for collection, obj in store.all_objects():
                if collection == "businesses" and obj.get("external_id") == external_id:
                    return str(obj["id"])
        return None

    def external_id(self, thred_id: str) -> str | None:
        store = self.sandbox.app.state.sandbox.store
        with store.lock:
            found = store.get("businesses", thred_id)
            return None if found is None else found.get("external_id")


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Iterator[Spy]:
    config = SandboxConfig(partners={PARTNER: API_KEY})
    with start_sandbox(config) as running:
        found = Spy(running)
        real_mint = vars(sandbox_routes)["mint"]
        real_access = vars(sandbox_routes)["business_access"]

        def mint(secret: bytes, partner_id: str, ttl: int, business_id: str | None = None) -> str:
            if business_id is not None:
                other = found.misdirect.get(found.external_id(business_id) or "")
                if other:  # a token for another business, handed out as this one's
                    business_id = found.thred_id(other) or business_id
            token = str(real_mint(secret, partner_id, ttl, business_id))
            with found.lock:
                found.tokens.append(token)
            return token

        def access(sb: Any, request: Any, business_id: str) -> Any:
            try:
                who = sandbox_auth.principal(sb, request)
            except ApiError:
                pass
            else:
                with found.lock:
                    found.accesses.append((who.business_id, business_id, request.method))
            return real_access(sb, request, business_id)

        monkeypatch.setattr(sandbox_routes, "mint", mint)
        monkeypatch.setattr(sandbox_routes, "business_access", access)
        yield found


def copy_row(engine: Any, table: str, where: str, **changes: Any) -> None:
    with engine.begin() as conn:
        row = dict(conn.execute(text(f"SELECT * FROM {table} WHERE {where}")).mappings().first())
        row.update(changes)
        names = ", ".join(row)
        conn.execute(
            text(f"INSERT INTO {table} ({names}) VALUES ({', '.join(':' + c for c in row)})"), row
        )


def new_customer(engine: Any, business: str, customer_id: str, **changes: Any) -> None:
    stamp = (SEED.window_end - timedelta(hours=1)).replace(tzinfo=None)
    copy_row(
        engine,
        "customers",
        f"business_id = '{business}' AND archived_at IS NULL",
        id=customer_id,
        updated_at=stamp,
        **changes,
    )


def status_counts(base_url: str) -> dict[int, int]:
    counts: dict[int, int] = {}
    for row in httpx.get(f"{base_url}/_sandbox/stats", timeout=30).json()["requests"]:
        counts[row["status"]] = counts.get(row["status"], 0) + row["count"]
    return counts


def run_texts(instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult) -> list[str]:
    """Everything Dagster recorded about a run: messages, metadata, checks, error chains."""
    texts: list[str] = []
    for entry in instance.all_logs(result.run_id):
        texts += [repr(entry), entry.user_message or ""]
        data = entry.dagster_event.event_specific_data if entry.dagster_event else None
        error = getattr(data, "error", None)
        if error is not None:
            texts.append(error.to_string())
    for dagster_event in result.all_events:
        texts += [repr(dagster_event), dagster_event.message or ""]
    return texts


def folder_texts(folder: Path) -> list[str]:
    return [p.read_bytes().decode("latin-1") for p in folder.rglob("*") if p.is_file()]


@pytest.mark.slow
@pytest.mark.chaos
def test_a_faulty_run_leaks_no_secret_and_tokens_stay_in_their_business(
    tmp_path: Path,
    spy: Spy,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    url = spy.sandbox.url
    warehouse_db = seed_file(tmp_path / "warehouse.db", SEED)
    warehouse_url = f"sqlite:///{warehouse_db}"
    ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    wh = create_warehouse_engine(warehouse_url)
    # A record refused locally, and one Thred refuses (its 400 comes back with details).
    new_customer(wh, "biz-01", "cus-bad-1", company_name="Bell\x07 & Co")
    assert sql(wh, "UPDATE refunds SET amount_cents = 99999999")

    monkeypatch.setenv("THRED_SECURITY_API_KEY", API_KEY)
    thred = TunedThredResource(
        base_url=url,
        partner_id=PARTNER,
        api_key=dg.EnvVar("THRED_SECURITY_API_KEY"),
        timeout_s=5,
        backoff_base_s=0.05,
        backoff_max_s=0.5,
    )
    push = fast_retry_assets()
    res = resources(warehouse_url, ledger_url, thred, WHOLE_SEED)
    runs: list[dg.ExecuteInProcessResult] = []
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        # Run A: 5xx, 429, commit-then-drop, and every token revoked every 3 seconds.
        sandbox_faults(
            url,
            seed=11,
            error_500_rate=0.03,
            error_503_rate=0.03,
            drop_after_commit_rate=0.04,
            rate_limit_rps=20,
            rate_limit_burst=5,
            jitter_ms=3,
        )
        with TokenRevoker(url, every_s=3.0):
            runs.append(
                dg.materialize(
                    push,
                    partition_key=LAST_DAY,
                    resources=res,
                    instance=instance,
                    raise_on_error=False,
                )
            )
        accesses_a = list(spy.accesses)
        statuses = status_counts(url)

        # Run B: biz-02's token is refused (a token of biz-01 handed out as biz-02's): 403.
        sandbox_faults(url)
        spy.misdirect["business-biz-02"] = "business-biz-01"
        new_customer(wh, "biz-01", "cus-new-1")
        new_customer(wh, "biz-02", "cus-new-2")
        seen = len(spy.accesses)
        runs.append(
            dg.materialize(
                push,
                partition_key=LAST_DAY,
                resources=res,
                instance=instance,
                raise_on_error=False,
            )
        )
        accesses_b = spy.accesses[seen:]

        # Run C: wrong partner credentials; the businesses step fails with an exception.
        monkeypatch.setenv("THRED_SECURITY_API_KEY", WRONG_KEY)
        assert sql(wh, "UPDATE businesses SET legal_name = legal_name || ' (renamed)'")
        runs.append(
            dg.materialize(
                [a for a in push if dg.AssetKey(["thred", "businesses"]) in a.keys],
                partition_key=LAST_DAY,
                resources=res,
                instance=instance,
                raise_on_error=False,
            )
        )
        dagster_texts = [t for r in runs for t in run_texts(instance, r)]
    wh.dispose()

    # --- what happened is what we meant to happen ---------------------------------------------
    ledger = SyncLedger.from_url(ledger_url)
    rows = ledger_rows(ledger)
    # The seeded 5xx and commit-then-drop draws are certain to fire over this many requests;
    # whether a 429 or a revocation lands inside the run depends on timing, so those are not
    # asserted — the secret checks below cover whatever did happen.
    assert statuses.get(0, 0) > 0, statuses  # drops
    assert sum(n for s, n in statuses.items() if s >= 500) > 0, statuses
    assert rows[("customers", "cus-bad-1")].status is Status.REJECTED
    refunds = [r for k, r in rows.items() if k[0] == "refunds"]
    assert [r.error_code for r in refunds] == ["validation_error"], refunds

    biz = {b: spy.thred_id(f"business-{b}") for b in ("biz-01", "biz-02")}
    assert all(biz.values())
    # Every business route was called with that business's own token: never the partner's,
    # never another business's.
    assert {path for _, path, _ in accesses_a} == set(biz.values())
    crossed = [(tok, path) for tok, path, _ in accesses_a if tok != path]
    assert crossed == []
    # Run B: biz-02's requests carried biz-01's token (sabotaged): refused, business paused,
    # biz-01 carried on.
    assert {tok for tok, path, _ in accesses_b if path == biz["biz-02"]} == {biz["biz-01"]}
    assert all(tok == path for tok, path, _ in accesses_b if path == biz["biz-01"])
    paused = ledger.get("customers", "cus-new-2")
    assert paused is not None and paused.status is Status.DEFERRED
    assert paused.error_code == "business_paused" and "403" in (paused.error_message or "")
    assert ledger.get("customers", "cus-new-1").status is Status.SYNCED  # type: ignore[union-attr]
    assert runs[1].success  # the refused business did not stop the run for the other one
    assert not runs[2].success  # wrong credentials

    # --- and no secret anywhere ----------------------------------------------------------------
    captured = capfd.readouterr()
    haystacks: list[str] = [captured.out, captured.err, caplog.text, *dagster_texts]
    for record in caplog.records:
        haystacks.append(record.getMessage())
        if record.exc_info:
            haystacks.append("".join(traceback.format_exception(*record.exc_info)))
    haystacks += folder_texts(tmp_path / "dagster")
    haystacks += folder_texts(tmp_path)  # the ledger (and its WAL) included
    haystacks += [repr(r) for r in rows.values()]
    plain = TunedThredResource(base_url=url, partner_id=PARTNER, api_key=API_KEY)
    client = ThredClient(plain.settings())
    haystacks += [repr(thred), repr(plain), repr(plain.settings()), repr(client), str(client.stats)]
    asyncio.run(client.aclose())
    assert any("thred retry" in r.getMessage() for r in caplog.records)  # logging did happen
    assert any("STEP_FAILURE" in t for t in dagster_texts)  # an error chain was recorded
    assert len(spy.tokens) >= 20, len(spy.tokens)

    secrets = {
        API_KEY,
        f"{PARTNER}:{API_KEY}",
        basic(PARTNER, API_KEY),
        WRONG_KEY,
        f"{PARTNER}:{WRONG_KEY}",
        basic(PARTNER, WRONG_KEY),
    }
    for token in spy.tokens:
        secrets |= {token, token.rsplit(".", 1)[1]}  # the signature alone is secret too
    leaks = {
        secret[:12] + "…": text[max(0, text.find(secret) - 80) : text.find(secret) + 80]
        for secret in secrets
        for text in haystacks
        if secret in text
    }
    assert leaks == {}


# --- a refused business pauses only itself --------------------------------------------------


def test_a_refused_business_does_not_stop_the_checks_of_the_others(
    tmp_path: Path, spy: Spy
) -> None:
    warehouse_db = seed_file(tmp_path / "warehouse.db", SEED)
    settings = ThredSettings(
        base_url=spy.sandbox.url, partner_id=PARTNER, api_key=SecretStr(API_KEY)
    )
    wh = create_warehouse_engine(f"sqlite:///{warehouse_db}")
    ledger = SyncLedger.from_url(f"sqlite:///{tmp_path / 'ledger.db'}")
    engine = SyncEngine(Warehouse(wh), ledger, settings, SyncOptions(lookback=timedelta(0)))
    window = TimeWindow(SEED.window_start, SEED.window_end)
    for spec in entities.sync_order()[:2]:  # businesses, customers
        engine.sync_entity(spec, window)
    spy.misdirect["business-biz-02"] = "business-biz-01"
    report = BooksReconciler(Warehouse(wh), ledger, settings).run(as_of=SEED.window_end)
    # biz-02 is reported as not read (the check cannot pass), not raised; biz-01 is compared.
    customers = next(c for c in report.checks if c.name == "customers")
    assert set(customers.not_read) == {"biz-02"}
    assert "403" in customers.not_read["biz-02"]
    assert not customers.passed and customers.severity == "ERROR"
    assert customers.differences.empty, customers.differences  # biz-01: equal
    assert customers.metrics["thred_records"] == SEED.customers  # biz-01's, all read
    businesses = next(c for c in report.checks if c.name == "businesses")
    assert businesses.passed, businesses.differences.to_dict("records")  # the list was read
    assert report.verdict == "FAIL"


def test_a_refused_business_keeps_the_statuses_of_records_it_did_not_need(
    tmp_path: Path, spy: Spy
) -> None:
    warehouse_db = seed_file(tmp_path / "warehouse.db", SEED)
    settings = ThredSettings(
        base_url=spy.sandbox.url, partner_id=PARTNER, api_key=SecretStr(API_KEY)
    )
    wh = create_warehouse_engine(f"sqlite:///{warehouse_db}")
    ledger = SyncLedger.from_url(f"sqlite:///{tmp_path / 'ledger.db'}")
    engine = SyncEngine(Warehouse(wh), ledger, settings, SyncOptions(lookback=timedelta(0)))
    window = TimeWindow(SEED.window_start, SEED.window_end)
    names = ("businesses", "customers", "invoices")
    for name in names:
        engine.sync_entity(entities.get(name), window)
    before = {k: r.status for k, r in ledger_rows(ledger).items() if r.business_id == "biz-02"}
    assert set(before.values()) == {Status.SYNCED}

    spy.misdirect["business-biz-02"] = "business-biz-01"  # biz-02 is refused from now on
    changed = "inv-02-00002"
    # The contract: any change bumps updated_at (here to the window's last minute).
    bumped = (SEED.window_end - timedelta(minutes=1)).replace(tzinfo=None)
    assert sql(
        wh,
        "UPDATE invoices SET memo = 'changed', updated_at = :t WHERE id = :i",
        i=changed,
        t=bumped,
    )
    for name in names[1:]:
        engine.sync_entity(entities.get(name), window)
    after = {k: r.status for k, r in ledger_rows(ledger).items() if r.business_id == "biz-02"}
    assert after[("invoices", changed)] is Status.DEFERRED  # it needed Thred: it waits
    untouched = {k: s for k, s in after.items() if k != ("invoices", changed)}
    assert set(untouched.values()) == {Status.SYNCED}, untouched


# --- SQL is only ever built with bound parameters ---------------------------------------------

SQL_SHAPE = re.compile(
    r"\b(SELECT|INSERT|UPDATE|DELETE|DROP|CREATE|ALTER|PRAGMA)\b.*\b(FROM|INTO|SET|WHERE|TABLE|=)",
    re.IGNORECASE | re.DOTALL,
)
EXECUTORS = {"text", "literal_column", "exec_driver_sql", "execute", "executemany", "executescript"}


def _constant_only(node: ast.expr) -> bool:
    """A literal, or an f-string that only interpolates UPPER_CASE module constants."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.JoinedStr):
        return all(
            isinstance(part, ast.Constant)
            or (
                isinstance(part, ast.FormattedValue)
                and isinstance(part.value, ast.Name)
                and part.value.id.isupper()
            )
            for part in node.values
        )
    return False


def _string_built(node: ast.expr) -> bool:
    """A str made from runtime values: f-string, concatenation, % or .format()."""
    if isinstance(node, ast.JoinedStr):
        return not _constant_only(node)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Mod):
        return any(
            isinstance(side, ast.Constant | ast.JoinedStr) for side in (node.left, node.right)
        )
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
        and isinstance(node.func.value, ast.Constant)
    )


def sql_offences(source: str, name: str) -> list[str]:
    tree = ast.parse(source)
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in EXECUTORS and node.args and _string_built(node.args[0]):
                found.append(f"{name}:{node.lineno}: {called}() of a string built at run time")
        if isinstance(node, ast.JoinedStr) and not _constant_only(node):
            literal = "".join(str(p.value) for p in node.values if isinstance(p, ast.Constant))
            if SQL_SHAPE.search(str(literal)):
                found.append(f"{name}:{node.lineno}: SQL text built with an f-string")
    return found


def test_the_sql_checker_catches_what_it_should() -> None:
    bad = (
        "conn.execute(text(f'SELECT * FROM t WHERE id = {source_id}'))\n"
        "conn.exec_driver_sql('DELETE FROM t WHERE id = ' + source_id)\n"
        "cursor.execute('UPDATE t SET x = %s' % value)\n"
        "query = f\"UPDATE t SET name = '{name}' WHERE id = {row_id}\"\n"
        "conn.execute('SELECT {} FROM t'.format(col))\n"
    )
    assert {o.split(":")[1] for o in sql_offences(bad, "bad.py")} == {"1", "2", "3", "4", "5"}
    good = (
        "conn.execute(select(t).where(t.c.id == source_id))\n"
        "cursor.execute('PRAGMA journal_mode=WAL')\n"
        "cursor.execute(f'PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS:d}')\n"
        "message = f'{spec.label} {record.source_id}: {exc}'\n"
    )
    assert sql_offences(good, "good.py") == []


def test_no_sql_is_built_from_values() -> None:
    """Everything under thred_pipeline/ talks SQL through SQLAlchemy expressions only."""
    offences: list[str] = []
    checked = 0
    for path in sorted(PACKAGE.rglob("*.py")):
        offences += sql_offences(path.read_text(), str(path.relative_to(PACKAGE)))
        checked += 1
    assert checked > 40 and (PACKAGE / "warehouse" / "extract.py").exists()
    assert offences == []


EVIL = "cus-o'brien\"); DROP TABLE customers; --"


def test_hostile_ids_travel_as_bound_parameters(tmp_path: Path) -> None:
    """An id full of SQL goes through extraction, the ledger, deferral and retry as data."""
    config = SeedConfig(
        seed=13,
        businesses=1,
        days=7,
        customers=4,
        vendors=4,
        invoices=8,
        payments=6,
        refunds=2,
        refund_payments=1,
        payouts=1,
        bills=4,
        bill_payments=3,
        vendor_credits=1,
    )
    template = seed_file(tmp_path / "template.db", config)
    folder = tmp_path / "world"
    folder.mkdir()
    with start_sandbox(SandboxConfig()) as sandbox:
        world = World(folder, template, sandbox.url, config)
        try:
            statements: list[str] = []

            def spy_sql(_c: Any, _cur: Any, statement: str, *_rest: Any) -> None:
                statements.append(statement)

            for engine in (world.wh, world.ledger.engine):
                event.listen(engine, "before_cursor_execute", spy_sql)
            # The customer arrives after its invoice (deferred, then fetched back by id).
            with world.wh.connect() as conn:
                invoice = str(conn.execute(text("SELECT MIN(id) FROM invoices")).scalar_one())
            world.sql("UPDATE invoices SET customer_id = :c WHERE id = :i", c=EVIL, i=invoice)
            world.sync(["businesses", "customers", "invoices"])
            assert world.ledger.get("invoices", invoice).status is Status.DEFERRED  # type: ignore[union-attr]
            copy_row(
                world.wh,
                "customers",
                "archived_at IS NULL",
                id=EVIL,
                company_name='O\'Brien "Quotes"; DROP TABLE x; --',
            )
            world.sync(["businesses", "customers", "invoices"])
            assert world.ledger.get("customers", EVIL).status is Status.SYNCED  # type: ignore[union-attr]
            assert world.ledger.get("invoices", invoice).status is Status.SYNCED  # type: ignore[union-attr]
            assert world.ledger.release_for_retry("customers", [EVIL]) == 0  # nothing rejected
            assert statements and not [s for s in statements if "DROP TABLE" in s or "brien" in s]
            with world.wh.connect() as conn:  # and the tables are all still there
                assert conn.execute(text("SELECT COUNT(*) FROM customers")).scalar_one() == 5
        finally:
            world.close()


# --- TLS verification is on, and turning it off takes an explicit, logged setting -----------------


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1 that no trust store knows."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make a self-signed certificate")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def tls_sandbox(tmp_path: Path) -> Iterator[str]:
    """The sandbox behind HTTPS with a self-signed certificate (what a MITM would present)."""
    import socket

    cert, key = _self_signed(tmp_path)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = create_app(SandboxConfig(partners={PARTNER: API_KEY}))
    server = uvicorn.Server(
        uvicorn.Config(
            app, log_level="warning", ssl_certfile=str(cert), ssl_keyfile=str(key), lifespan="on"
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline, "TLS sandbox did not start"
        time.sleep(0.01)
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
        app.state.sandbox.close()


def _get_businesses(settings: ThredSettings) -> Any:
    async def call() -> Any:
        async with ThredClient(settings) as client:
            return (await client.request("GET", "businesses/")).body

    return asyncio.run(call())


def test_tls_is_verified_and_turning_it_off_is_explicit_and_logged(
    tls_sandbox: str, caplog: pytest.LogCaptureFixture
) -> None:
    base = {"base_url": tls_sandbox, "partner_id": PARTNER, "api_key": SecretStr(API_KEY)}
    verified = ThredSettings(**base, max_attempts=1)
    assert verified.verify_tls
    with pytest.raises(ThredConfigError) as refused:
        _get_businesses(verified)
    assert "CERTIFICATE_VERIFY_FAILED" in str(refused.value)  # the credentials never left

    with pytest.raises(ValidationError, match="allow_insecure_tls"):
        ThredSettings(**base, verify_tls=False)

    caplog.set_level(logging.WARNING, logger="thred_pipeline.thred")
    insecure = ThredSettings(**base, verify_tls=False, allow_insecure_tls=True)
    assert any("TLS certificate verification is DISABLED" in r.getMessage() for r in caplog.records)
    assert _get_businesses(insecure)["results"] == []


def test_the_dagster_resource_never_turns_verification_off_silently(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="thred_pipeline.thred")
    where = "https://thred.invalid"
    assert ThredResource(base_url=where, partner_id=PARTNER, api_key=API_KEY).settings().verify_tls
    relaxed = ThredResource(
        base_url=where, partner_id=PARTNER, api_key=API_KEY, allow_insecure_tls=True
    ).settings()
    # Either verification stays on, or turning it off is logged loudly.
    assert relaxed.verify_tls or any("DISABLED" in r.getMessage() for r in caplog.records)
    assert ssl.create_default_context().verify_mode is ssl.CERT_REQUIRED


def test_str_and_repr_of_settings_and_resources_mask_the_secrets() -> None:
    """Both: an f-string or a log line uses str(), a debugger or an exception repr()."""
    key, password = "key-0123456789abcdef", "pw-0123456789abcdef"
    db_url = f"postgresql://sync:{password}@db.internal:5432/thred"
    objects: list[object] = [
        ThredResource(base_url="https://thred.example", partner_id="p", api_key=key),
        WarehouseResource(url=db_url),
        LedgerResource(url=db_url),
        PipelineSettings(
            warehouse_url=db_url,
            ledger_url=db_url,
            thred_base_url="https://thred.example",
            partner_id="p",
            api_key=SecretStr(key),
        ),
    ]
    for obj in objects:
        for shown in (str(obj), repr(obj), f"{obj}"):
            assert key not in shown and password not in shown, shown
    for obj in objects[1:]:
        assert "sync:***@db.internal" in str(obj) and "sync:***@db.internal" in repr(obj)
