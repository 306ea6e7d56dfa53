"""The sync ledger's state machine, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Column, MetaData, String, Table, inspect
from sqlalchemy.engine import make_url

from thred_pipeline.core.records import Status
from thred_pipeline.ledger import (
    ERROR_CODE_LENGTH,
    ID_COLUMNS,
    LEDGER_ID_LENGTH,
    RETRY_FIRST,
    WIDEN_SQL,
    LedgerCode,
    SyncLedger,
    create_ledger_engine,
    ledger_key,
    ledger_table,
)
from thred_pipeline.ledger.schema import ADD_SQL
from thred_pipeline_tests.sync.conftest import Backend

VERSION = datetime(2026, 9, 3, 10, 15, 30, 123456, tzinfo=UTC)
LATER = VERSION + timedelta(hours=5, microseconds=7)


@pytest.fixture
def ledger(backend: Backend) -> Iterator[SyncLedger]:
    led = SyncLedger.from_url(backend.ledger_url)
    led.create_schema()  # idempotent
    yield led
    led.engine.dispose()


def intent(ledger: SyncLedger, source_id: str = "inv-1", digest: str = "h1", **kw: object) -> None:
    ledger.record_intent(
        entity=str(kw.get("entity", "invoices")),
        source_id=source_id,
        business_id="biz-1",
        external_id=f"invoice-{source_id}",
        intended_hash=digest,
        source_updated_at=kw.get("at", VERSION),  # type: ignore[arg-type]
    )


def synced(ledger: SyncLedger, source_id: str = "inv-1", digest: str = "h1", **kw: object) -> None:
    ledger.record_synced(
        entity=str(kw.get("entity", "invoices")),
        source_id=source_id,
        thred_id=f"t-{source_id}",
        confirmed_hash=digest,
        confirmed_updated_at=kw.get("at", VERSION),  # type: ignore[arg-type]
        terminal_done=bool(kw.get("terminal", False)),
        confirmed_body=kw.get("body", {"invoice_number": "HF-1", "total": 100}),  # type: ignore[arg-type]
    )


def outcome(ledger: SyncLedger, status: Status, source_id: str = "inv-1", **kw: object) -> None:
    ledger.record_outcome(
        entity="invoices",
        source_id=source_id,
        business_id="biz-1",
        external_id=f"invoice-{source_id}",
        status=status,
        error_code=str(kw.get("code", status.value)),
        error_message=str(kw.get("message", f"{status.value} because")),
        error_details=kw.get("details"),  # type: ignore[arg-type]
        intended_hash=kw.get("digest"),  # type: ignore[arg-type]
        source_updated_at=kw.get("at"),  # type: ignore[arg-type]
        thred_id=kw.get("thred_id"),  # type: ignore[arg-type]
    )


def test_intent_then_synced(ledger: SyncLedger) -> None:
    intent(ledger)
    pending = ledger.get("invoices", "inv-1")
    assert pending is not None
    assert pending.status is Status.PENDING
    assert pending.intended_hash == "h1" and pending.confirmed_hash is None
    assert pending.thred_id is None and pending.attempts == 1
    assert pending.source_updated_at == VERSION  # microseconds and UTC survive both backends
    assert pending.external_id == "invoice-inv-1" and pending.business_id == "biz-1"
    assert ledger.source_ids_with_status("invoices", RETRY_FIRST) == ["inv-1"]

    time.sleep(0.002)
    synced(ledger)
    row = ledger.get("invoices", "inv-1")
    assert row is not None
    assert row.status is Status.SYNCED
    assert row.thred_id == "t-inv-1" and row.confirmed_hash == "h1"
    assert row.confirmed_updated_at == VERSION
    assert row.attempts == 0 and row.error_code is None and row.error_details is None
    assert row.synced_at is not None and row.synced_at.tzinfo is not None
    assert row.status_since > pending.status_since
    assert row.first_seen_at == pending.first_seen_at
    assert ledger.confirmed_body("invoices", "inv-1") == {"invoice_number": "HF-1", "total": 100}
    assert ledger.source_ids_with_status("invoices", RETRY_FIRST) == []
    assert ledger.thred_ids("invoices", ["inv-1", "inv-2", ""]) == {"inv-1": "t-inv-1"}


def test_a_new_intent_keeps_what_thred_confirmed(ledger: SyncLedger) -> None:
    intent(ledger)
    synced(ledger, terminal=True)
    intent(ledger, digest="h2", at=LATER)
    intent(ledger, digest="h2", at=LATER)
    row = ledger.get("invoices", "inv-1")
    assert row is not None
    assert row.status is Status.PENDING and row.attempts == 2
    assert row.intended_hash == "h2" and row.source_updated_at == LATER
    assert row.thred_id == "t-inv-1" and row.confirmed_hash == "h1" and row.terminal_done
    assert row.confirmed_updated_at == VERSION


def test_status_since_is_kept_while_the_status_repeats(ledger: SyncLedger) -> None:
    outcome(ledger, Status.DEFERRED, message="customer_id: customers 'c1' is not in Thred yet")
    first = ledger.get("invoices", "inv-1")
    assert first is not None and first.status is Status.DEFERRED
    time.sleep(0.002)
    outcome(ledger, Status.DEFERRED, message="customer_id: customers 'c2' is not in Thred yet")
    again = ledger.get("invoices", "inv-1")
    assert again is not None
    assert again.status_since == first.status_since
    assert again.error_message == "customer_id: customers 'c2' is not in Thred yet"
    time.sleep(0.002)
    outcome(ledger, Status.REJECTED, details={"line_items[0].tax_code": ["unknown"]})
    rejected = ledger.get("invoices", "inv-1")
    assert rejected is not None and rejected.status is Status.REJECTED
    assert rejected.status_since > first.status_since
    assert rejected.error_details == {"line_items[0].tax_code": ["unknown"]}
    assert rejected.first_seen_at == first.first_seen_at

    # The same holds for updates of existing rows (record_synced, touch_confirmed).
    intent(ledger)
    synced(ledger)
    since = ledger.get("invoices", "inv-1")
    assert since is not None
    time.sleep(0.002)
    synced(ledger, digest="h2")
    ledger.touch_confirmed("invoices", "inv-1", LATER)
    after = ledger.get("invoices", "inv-1")
    assert after is not None and after.status_since == since.status_since


def test_outcomes_keep_the_thred_id_and_the_hash_unless_given(ledger: SyncLedger) -> None:
    intent(ledger)
    synced(ledger)
    outcome(ledger, Status.UNKNOWN, code="uncertain")
    row = ledger.get("invoices", "inv-1")
    assert row is not None and row.status is Status.UNKNOWN
    assert row.thred_id == "t-inv-1" and row.intended_hash == "h1" and row.confirmed_hash == "h1"
    outcome(ledger, Status.DRIFT, digest="h3", at=LATER, thred_id="t-inv-1")
    row = ledger.get("invoices", "inv-1")
    assert row is not None and row.intended_hash == "h3" and row.source_updated_at == LATER
    outcome(ledger, Status.REJECTED, source_id="inv-2", digest=None)
    fresh = ledger.get("invoices", "inv-2")
    assert fresh is not None and fresh.thred_id is None and fresh.intended_hash is None
    # A payload that never reached Thred (invalid locally) must not look like one it refused.
    ledger.record_outcome(
        entity="invoices",
        source_id="inv-1",
        business_id="biz-1",
        external_id="invoice-inv-1",
        status=Status.REJECTED,
        error_code="invalid_source_data",
        error_message="invoice inv-1: line_items[0].tax_code: unknown tax code 'VAT_99'",
        forget_intended=True,
    )
    row = ledger.get("invoices", "inv-1")
    assert row is not None and row.intended_hash is None and row.confirmed_hash == "h1"


def test_record_synced_without_a_body_keeps_the_stored_one(ledger: SyncLedger) -> None:
    intent(ledger)
    synced(ledger, body={"memo": "first"})
    synced(ledger, digest="h2", body=None)
    assert ledger.confirmed_body("invoices", "inv-1") == {"memo": "first"}
    synced(ledger, digest="h3", body={})
    assert ledger.confirmed_body("invoices", "inv-1") == {}  # nothing kept to compare
    assert ledger.confirmed_body("invoices", "missing") is None


def test_release_for_retry(ledger: SyncLedger) -> None:
    for source_id in ("inv-1", "inv-2", "inv-3"):
        outcome(ledger, Status.REJECTED, source_id=source_id, digest=f"h-{source_id}")
    outcome(ledger, Status.DRIFT, source_id="inv-4", digest="h4")
    outcome(ledger, Status.DEFERRED, source_id="inv-5")
    ledger.record_outcome(
        entity="bills",
        source_id="bill-1",
        business_id="biz-1",
        external_id="bill-bill-1",
        status=Status.REJECTED,
        error_code="validation_error",
        error_message="bill bill-1: line_items[0].quantity: must be positive",
        intended_hash="hb",
    )
    before = ledger.get("invoices", "inv-1")
    assert before is not None

    assert ledger.release_for_retry("invoices", ["inv-1", "inv-9"]) == 1
    released = ledger.get("invoices", "inv-1")
    assert released is not None
    assert released.status is Status.UNKNOWN and released.error_code == LedgerCode.RETRY_REQUESTED
    assert released.intended_hash is None
    assert released.error_message == before.error_message  # the reason stays readable
    assert ledger.source_ids_with_status("invoices", RETRY_FIRST) == ["inv-1"]

    assert ledger.release_for_retry("invoices") == 2
    assert ledger.status_counts("invoices")["unknown"] == 3
    assert ledger.status_counts("invoices")["drift"] == 1  # drift is not retried
    assert ledger.status_counts("invoices")["deferred"] == 1
    assert ledger.status_counts("bills")["rejected"] == 1
    assert ledger.release_for_retry() == 1
    assert ledger.release_for_retry() == 0


def test_touch_confirmed(ledger: SyncLedger) -> None:
    intent(ledger)
    synced(ledger)
    outcome(ledger, Status.DRIFT, digest="h2", at=LATER, message="customer changed after sync")
    ledger.touch_confirmed("invoices", "inv-1", LATER)
    row = ledger.get("invoices", "inv-1")
    assert row is not None
    assert row.status is Status.SYNCED
    assert row.confirmed_updated_at == LATER and row.source_updated_at == LATER
    assert row.error_code is None and row.error_message is None
    assert row.confirmed_hash == "h1"
    with pytest.raises(KeyError, match="missing"):
        ledger.touch_confirmed("invoices", "missing", LATER)
    with pytest.raises(KeyError):
        synced(ledger, source_id="missing")


def test_reads(ledger: SyncLedger) -> None:
    ids = [f"pay-{i:04d}" for i in range(503)]  # more than one IN batch
    for i, source_id in enumerate(ids):
        intent(ledger, source_id=source_id, entity="invoice_payments")
        if i % 50 == 0:
            synced(ledger, source_id=source_id, entity="invoice_payments")
    found = ledger.get_many("invoice_payments", [*ids, *ids[:5]])
    assert set(found) == set(ids)
    assert len(ledger.thred_ids("invoice_payments", ids)) == 11
    assert ledger.created_counts("invoice_payments") == {"biz-1": 11}
    counts = ledger.status_counts("invoice_payments")
    assert counts["synced"] == 11 and counts["pending"] == 492 and counts["drift"] == 0
    assert ledger.status_counts("invoice_payments", business_id="other")["synced"] == 0
    pending = ledger.source_ids_with_status("invoice_payments", [Status.PENDING])
    assert pending == sorted(pending) and len(pending) == 492
    rows = list(ledger.iter_rows("invoice_payments", statuses=[Status.SYNCED]))
    assert len(rows) == 11 and all(r.status is Status.SYNCED for r in rows)
    assert list(ledger.iter_rows("invoices")) == []
    assert ledger.get("invoices", "pay-0000") is None


# --- ids and codes no write can choke on ------------------------------------------------------


@pytest.mark.parametrize(
    "source_id",
    [
        pytest.param("i" * 300, id="300 characters"),
        pytest.param("i" * 512, id="exactly the column"),
        pytest.param("ü" * 600, id="600 non-ASCII characters"),
        pytest.param("x" * 20_000, id="20,000 characters"),
        pytest.param("inv-\x00-1", id="NUL"),
        pytest.param("inv-\ud800-1", id="lone surrogate"),
    ],
)
def test_any_id_can_be_recorded_and_found_again(ledger: SyncLedger, source_id: str) -> None:
    business_id = f"biz-{source_id}"
    ledger.record_outcome(
        entity="invoices",
        source_id=source_id,
        business_id=business_id,
        external_id=f"invoice-{source_id}",
        status=Status.REJECTED,
        error_code="invalid_source_data",
        error_message=f"invoice {source_id}: id: is too long",
        source_updated_at=VERSION,
        forget_intended=True,
    )
    ledger.record_outcome(  # a second write to the same row (the upsert path)
        entity="invoices",
        source_id=source_id,
        business_id=business_id,
        external_id=f"invoice-{source_id}",
        status=Status.REJECTED,
        error_code="invalid_source_data",
        error_message=f"invoice {source_id}: id: is still too long",
        error_details={"id": ["is too long"]},
    )
    ledger.record_outcome(
        entity="invoices",
        source_id="inv-ok",
        business_id="biz-1",
        external_id="invoice-inv-ok",
        status=Status.REJECTED,
        error_code="invalid_source_data",
        error_message="invoice inv-ok: memo: bad",
    )
    found = ledger.get_many("invoices", [source_id, "inv-ok"])
    assert set(found) == {source_id, "inv-ok"}
    row = found[source_id]
    assert row.source_id == source_id and row.status is Status.REJECTED
    assert row.error_details == {"id": ["is too long"]}
    assert row.source_updated_at == VERSION
    stored = ledger_key(source_id)
    assert len(stored) <= LEDGER_ID_LENGTH and len(row.external_id) <= LEDGER_ID_LENGTH
    if stored == source_id:
        assert row.error_message == f"invoice {source_id}: id: is still too long"
    else:  # the full id stays readable in the message (escaped where it has to be)
        assert "sha256:" in stored and stored != ledger_key(source_id + "x")
        escaped = source_id.encode("utf-8", "backslashreplace").decode().replace("\x00", "\\x00")
        assert escaped in (row.error_message or "")
        assert "is still too long" in (row.error_message or "")
    assert ledger.status_counts("invoices")["rejected"] == 2
    assert stored in ledger.source_ids_with_status("invoices", [Status.REJECTED])
    assert ledger.release_for_retry("invoices", [source_id]) == 1
    released = ledger.get("invoices", source_id)
    assert released is not None and released.status is Status.UNKNOWN


def test_long_ids_through_intent_synced_and_thred_ids(ledger: SyncLedger) -> None:
    source_id = "p" * 700
    ledger.record_intent(
        entity="invoice_payments",
        source_id=source_id,
        business_id="b" * 700,
        external_id=f"payment-{source_id}",
        intended_hash="h1",
        source_updated_at=VERSION,
    )
    ledger.record_synced(
        entity="invoice_payments",
        source_id=source_id,
        thred_id="t" * 600,
        confirmed_hash="h1",
        confirmed_updated_at=VERSION,
        terminal_done=False,
        confirmed_body={"memo": "m" * 5000},
    )
    ledger.touch_confirmed("invoice_payments", source_id, LATER)
    assert ledger.thred_ids("invoice_payments", [source_id]) == {source_id: ledger_key("t" * 600)}
    assert ledger.confirmed_body("invoice_payments", source_id) == {"memo": "m" * 5000}
    row = ledger.get("invoice_payments", source_id)
    assert row is not None and row.status is Status.SYNCED and row.source_id == source_id
    assert ledger.status_counts(business_id="b" * 700)["synced"] == 1
    assert [r.business_id for r in ledger.iter_rows(business_id="b" * 700)] == [
        ledger_key("b" * 700)
    ]


def test_error_code_longer_than_its_column_is_shortened_and_quoted(ledger: SyncLedger) -> None:
    code = "thred_" + "very_long_error_code_" * 10
    outcome(ledger, Status.REJECTED, code=code, message="invoice inv-1: refused")
    row = ledger.get("invoices", "inv-1")
    assert row is not None and row.error_code is not None
    assert len(row.error_code) == ERROR_CODE_LENGTH and row.error_code.startswith("thred_very")
    assert row.error_message == f"invoice inv-1: refused (error_code {code!r})"
    outcome(ledger, Status.REJECTED, source_id="inv-2", code="x" * 65)
    other = ledger.get("invoices", "inv-2")
    assert other is not None and other.error_code != row.error_code
    outcome(ledger, Status.REJECTED, source_id="inv-3", code="x" * 64)
    exact = ledger.get("invoices", "inv-3")
    assert exact is not None and exact.error_code == "x" * 64


def test_messages_are_bounded_but_keep_a_long_id(ledger: SyncLedger) -> None:
    outcome(ledger, Status.REJECTED, message="m" * 10_000)
    row = ledger.get("invoices", "inv-1")
    assert row is not None and len(row.error_message or "") == 4000
    long_id = "i" * 6000
    outcome(ledger, Status.REJECTED, source_id=long_id, message=f"invoice {long_id}: id: long")
    kept = ledger.get("invoices", long_id)
    assert kept is not None and kept.error_message == f"invoice {long_id}: id: long"


@pytest.mark.postgres
@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+psycopg2"])
def test_from_url_accepts_plain_postgresql_urls(postgres_url: str, scheme: str) -> None:
    url = make_url(postgres_url).set(drivername=scheme)
    ledger = SyncLedger.from_url(url.render_as_string(hide_password=False))
    try:
        assert ledger.engine.dialect.name == "postgresql"
        assert ledger.engine.dialect.driver == "psycopg2"
        intent(ledger)
        assert ledger.get("invoices", "inv-1") is not None
    finally:
        ledger.engine.dispose()


def test_a_malformed_url_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValueError, match="THRED_LEDGER_URL is not a valid") as caught:
        SyncLedger.from_url("postgresql://user:s3cr3t@host:notaport/db")
    assert "s3cr3t" not in str(caught.value)


def test_an_older_ledger_is_widened_in_place(backend: Backend) -> None:
    """A ledger created with the earlier VARCHAR(128)/VARCHAR(255) ids takes long ids after
    ``create_schema`` (PostgreSQL enforces lengths; SQLite does not)."""
    old = MetaData()
    Table(
        ledger_table.name,
        old,
        *[
            Column(
                c.name,
                String(128) if c.name in ("source_id", "thred_id") else c.type,
                primary_key=c.primary_key,
                nullable=c.nullable,
            )
            for c in ledger_table.columns
        ],
    )
    ledger = SyncLedger(create_ledger_engine(backend.ledger_url))
    try:
        old.create_all(ledger.engine)
        intent(ledger)
        ledger.create_schema()
        ledger.create_schema()  # idempotent
        lengths = {
            c["name"]: getattr(c["type"], "length", None)
            for c in inspect(ledger.engine).get_columns(ledger_table.name)
        }
        if backend.name == "postgres":
            assert all(lengths[name] == LEDGER_ID_LENGTH for name in ID_COLUMNS), lengths
        outcome(ledger, Status.REJECTED, source_id="i" * 400)
        assert ledger.get("invoices", "i" * 400) is not None
        assert ledger.get("invoices", "inv-1") is not None, "existing rows are kept"
    finally:
        ledger.engine.dispose()


def test_the_widening_statements_match_the_table() -> None:
    assert set(WIDEN_SQL) == set(ID_COLUMNS)
    for column, statement in WIDEN_SQL.items():
        assert statement == (
            f"ALTER TABLE {ledger_table.name} ALTER COLUMN {column} "
            f"TYPE varchar({LEDGER_ID_LENGTH})"
        )


def test_refused_records_come_back_after_upstream_progress(ledger: SyncLedger) -> None:
    """A refusal is re-sent only once an upstream record of its business changed after it;
    local quarantines (the row's own fault) never."""
    intent(ledger, "pay-old", entity="invoice_payments")
    synced(ledger, "pay-old", entity="invoice_payments")
    time.sleep(0.002)
    outcome(ledger, Status.REJECTED, "inv-refused", code="validation_error")
    outcome(ledger, Status.REJECTED, "inv-local", code="invalid_source_data")
    local = ["invalid_source_data"]
    assert ledger.refused_since_upstream("invoices", ["invoice_payments"], local) == []

    time.sleep(0.002)
    intent(ledger, "pay-new", entity="invoice_payments")
    synced(ledger, "pay-new", entity="invoice_payments")
    assert ledger.refused_since_upstream("invoices", ["invoice_payments"], local) == ["inv-refused"]
    assert ledger.refused_since_upstream("invoices", ["customers"], local) == []
    # A new attempt moves the refusal's time: no longer after the upstream change.
    time.sleep(0.002)
    intent(ledger, "inv-refused", "h2")
    outcome(ledger, Status.REJECTED, "inv-refused", code="validation_error")
    assert ledger.refused_since_upstream("invoices", ["invoice_payments"], local) == []


def test_synced_with_code_finds_waiting_terminals(ledger: SyncLedger) -> None:
    intent(ledger, "cus-1", entity="customers")
    synced(ledger, "cus-1", entity="customers")
    ledger.record_outcome(
        entity="customers",
        source_id="cus-1",
        business_id="biz-1",
        external_id="customer-cus-1",
        status=Status.SYNCED,
        error_code=LedgerCode.TERMINAL_WAITING,
        error_message="archive waits",
        thred_id="t-cus-1",
    )
    outcome(ledger, Status.DEFERRED, "cus-2", code=LedgerCode.TERMINAL_WAITING)  # not synced
    assert ledger.synced_with_code("customers", LedgerCode.TERMINAL_WAITING) == ["cus-1"]
    assert ledger.synced_with_code("invoices", LedgerCode.TERMINAL_WAITING) == []


def test_an_older_ledger_gains_the_columns_added_since(backend: Backend) -> None:
    """A ledger made before the inputs columns existed gets them from ``create_schema``, keeps
    its rows (their inputs unknown: those records are mapped as before), and stores them."""
    old = MetaData()
    Table(
        ledger_table.name,
        old,
        *[
            Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable)
            for c in ledger_table.columns
            if c.name not in ADD_SQL
        ],
    )
    ledger = SyncLedger(create_ledger_engine(backend.ledger_url))
    try:
        old.create_all(ledger.engine)
        intent(ledger, "inv-old")
        synced(ledger, "inv-old")
        ledger.create_schema()
        ledger.create_schema()  # idempotent
        names = {c["name"] for c in inspect(ledger.engine).get_columns(ledger_table.name)}
        assert set(ADD_SQL) <= names
        kept = ledger.get("invoices", "inv-old")
        assert kept is not None and kept.status is Status.SYNCED
        assert kept.inputs_hash is None and kept.mapped_amount_cents is None
        ledger.note_inputs("invoices", "inv-old", ("b" * 40, 12_345))
        noted = ledger.get("invoices", "inv-old")
        assert noted is not None and noted.inputs_hash == "b" * 40
        assert noted.mapped_amount_cents == 12_345
        assert noted.confirmed_hash == kept.confirmed_hash, "nothing else moves"
    finally:
        ledger.engine.dispose()


def test_the_added_columns_match_the_table() -> None:
    for column, statement in ADD_SQL.items():
        kind = ledger_table.c[column].type.compile()
        assert statement == f"ALTER TABLE {ledger_table.name} ADD COLUMN {column} {kind}"
        assert ledger_table.c[column].nullable


def test_synced_keeps_inputs_only_when_given(ledger: SyncLedger) -> None:
    intent(ledger, "inv-1")
    ledger.record_synced(
        entity="invoices",
        source_id="inv-1",
        thred_id="t-inv-1",
        confirmed_hash="h1",
        confirmed_updated_at=VERSION,
        terminal_done=False,
        confirmed_body=None,
        inputs=("a" * 40, 500),
    )
    synced(ledger, "inv-1", digest="h2")  # confirmed by a path that did not map it
    row = ledger.get("invoices", "inv-1")
    assert row is not None and row.confirmed_hash == "h2"
    # Kept: it is bound to "h1" (sync.versions.bound_inputs), so it no longer matches.
    assert row.inputs_hash == "a" * 40 and row.mapped_amount_cents == 500
