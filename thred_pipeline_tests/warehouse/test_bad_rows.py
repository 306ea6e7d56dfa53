"""One bad row costs one row: extraction yields unreadable rows with a ``problem``, never raises.

Real databases only: values PostgreSQL holds but Python cannot ('infinity', year 1 BC, year
10000), text where SQLite should hold numbers or dates, NULL ``updated_at`` (a view or a loose
replica has no NOT NULL), ids that cannot become Thred external_ids, inactive businesses.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from thred_devtools.seed import load

from thred_pipeline.core.records import UNKNOWN_UPDATED_AT, SourceRecord, TimeWindow
from thred_pipeline.entities import ENTITIES, get
from thred_pipeline.warehouse.db import create_schema, create_warehouse_engine, drop_schema
from thred_pipeline.warehouse.extract import Warehouse

from .test_extract import FULL, T0, business, customer, extract, invoice, line

WINDOWS = [
    FULL,
    TimeWindow(T0 - timedelta(days=400), T0 - timedelta(days=399)),  # long before the data
    TimeWindow(T0 + timedelta(days=400), T0 + timedelta(days=401)),  # long after it
]


@pytest.fixture
def pg_blank(pg_scratch_url: str) -> Iterator[Warehouse]:
    """An empty contract schema on PostgreSQL (the values below only exist there)."""
    engine = create_warehouse_engine(pg_scratch_url)
    drop_schema(engine)
    create_schema(engine)
    yield Warehouse(engine)
    engine.dispose()


def sql(engine: Engine, statement: str, **params: Any) -> int:
    with engine.begin() as conn:
        return int(conn.execute(text(statement), params).rowcount or 0)


def loosen(engine: Engine, table: str, column: str) -> None:
    """Drop NOT NULL (PostgreSQL) or every constraint (SQLite rebuild), as a view would have."""
    if engine.dialect.name == "postgresql":
        sql(engine, f'ALTER TABLE "{table}" ALTER COLUMN "{column}" DROP NOT NULL')
        return
    with engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE TABLE "{table}__loose" AS SELECT * FROM "{table}"')
        conn.exec_driver_sql(f'DROP TABLE "{table}"')
        conn.exec_driver_sql(f'ALTER TABLE "{table}__loose" RENAME TO "{table}"')


def by_id(records: list[SourceRecord]) -> dict[str, SourceRecord]:
    found = {r.source_id: r for r in records}
    assert len(found) == len(records), "no record twice"
    return found


def problems(records: list[SourceRecord]) -> dict[str, tuple[str, str]]:
    return {r.source_id: (r.problem.field_path, r.problem.message) for r in records if r.problem}


def invoices_with_lines(n: int, at: datetime) -> dict[str, list[dict[str, Any]]]:
    return {
        "businesses": [business()],
        "invoices": [invoice(f"i{k}", at + timedelta(minutes=k)) for k in range(n)],
        "invoice_line_items": [line(f"l{k}", f"i{k}", 1, at) for k in range(n)],
    }


# -- PostgreSQL values Python cannot hold ---------------------------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("column", "value", "shown"),
    [
        ("sent_at", "0001-01-01 00:00:00+00 BC", "'0001-01-01 00:00:00+00 BC'"),
        ("sent_at", "-infinity", "'-infinity'"),
        ("due_at", "infinity", "'infinity'"),
        ("due_at", "10000-01-01 00:00:00+00", "'10000-01-01 00:00:00+00'"),
        ("created_at", "0044-03-15 12:00:00+00 BC", "'0044-03-15 12:00:00+00 BC'"),
    ],
)
def test_out_of_range_timestamp_costs_one_record(
    pg_blank: Warehouse, column: str, value: str, shown: str
) -> None:
    at = T0 + timedelta(days=2)
    load(pg_blank.engine, invoices_with_lines(5, at), replace=False)
    assert sql(pg_blank.engine, f"UPDATE invoices SET {column} = :v WHERE id = 'i2'", v=value)

    got = extract(pg_blank, "invoices", FULL, chunk_size=2)
    assert [r.source_id for r in got] == ["i0", "i1", "i2", "i3", "i4"]
    assert problems(got) == {
        "i2": (
            column,
            f"cannot be read as a date-time: {shown} "
            "(before year 1, after year 9999, infinite, or not a date)",
        )
    }
    bad = by_id(got)["i2"]
    assert bad.row[column] == value, "the raw value is kept (the mapper refuses it too)"
    assert bad.updated_at == at + timedelta(minutes=2) and bad.business_id == "b1"
    assert [li["id"] for li in bad.children["line_items"]] == ["l2"]
    assert by_id(got)["i3"].row["sent_at"] == at + timedelta(minutes=3)

    fetched = pg_blank.fetch(get("invoices").source, ["i2", "i3"])
    assert problems(fetched) == {"i2": problems(got)["i2"]}


@pytest.mark.postgres
def test_out_of_range_dates_in_child_rows_name_the_child(pg_blank: Warehouse) -> None:
    at = T0 + timedelta(days=2)
    load(pg_blank.engine, invoices_with_lines(3, at), replace=False)
    assert sql(pg_blank.engine, "UPDATE invoice_line_items SET quantity = 'NaN' WHERE id = 'l0'")
    assert sql(
        pg_blank.engine,
        "UPDATE invoice_line_items SET updated_at = '0001-01-01 00:00:00+00 BC' WHERE id = 'l1'",
    )
    got = by_id(extract(pg_blank, "invoices", FULL))
    assert set(got) == {"i0", "i1", "i2"}
    assert got["i0"].problem is None, "NaN is readable: the mapper refuses it, naming the field"
    assert got["i1"].problem is not None
    assert got["i1"].problem.field_path == "line_items[0].updated_at"
    assert "cannot tell when it changed" in got["i1"].problem.message
    assert got["i2"].problem is None


@pytest.mark.postgres
def test_out_of_range_payment_date_and_updated_at(pg_blank: Warehouse) -> None:
    load(pg_blank.engine, {"businesses": [business()]}, replace=False)
    rows = [
        {
            "id": f"p{k}",
            "business_id": "b1",
            "customer_id": "c1",
            "amount_cents": 100,
            "currency": "GBP",
            "payment_date": (T0 + timedelta(days=1)).date(),
            "payment_method": "cash",
            "reference": None,
            "processing_fee_cents": 0,
            "processor": None,
            "created_at": T0 + timedelta(days=1),
            "updated_at": T0 + timedelta(days=1, minutes=k),
        }
        for k in range(4)
    ]
    load(pg_blank.engine, {"payments": rows}, replace=False)
    sql(pg_blank.engine, "UPDATE payments SET payment_date = '0001-01-01 BC' WHERE id = 'p0'")
    sql(pg_blank.engine, "UPDATE payments SET updated_at = 'infinity' WHERE id = 'p1'")
    sql(pg_blank.engine, "UPDATE payments SET updated_at = '-infinity' WHERE id = 'p2'")
    for window in WINDOWS:
        got = by_id(extract(pg_blank, "invoice_payments", window))
        expected = {"p1", "p2"} | ({"p0", "p3"} if window is FULL else set())
        assert set(got) == expected, window
        for source_id in ("p1", "p2"):
            problem = got[source_id].problem
            assert problem is not None and problem.field_path == "updated_at"
            assert problem.message.endswith("; cannot tell when it changed")
            assert got[source_id].updated_at == UNKNOWN_UPDATED_AT
    full = by_id(extract(pg_blank, "invoice_payments", FULL))
    assert full["p0"].problem is not None
    assert full["p0"].problem.field_path == "payment_date"
    assert "cannot be read as a date: '0001-01-01 BC'" in full["p0"].problem.message
    assert full["p3"].problem is None


@pytest.mark.postgres
def test_business_with_an_unreadable_timestamp_is_still_readable(pg_blank: Warehouse) -> None:
    at = T0 + timedelta(days=1)
    rows = [business("b1", updated_at=at), business("b2", updated_at=at)]
    load(pg_blank.engine, {"businesses": rows}, replace=False)
    sql(pg_blank.engine, "UPDATE businesses SET created_at = '-infinity' WHERE id = 'b2'")
    row = pg_blank.business("b2")
    assert row is not None and row["created_at"] == "-infinity" and row["base_currency"] == "GBP"
    got = by_id(extract(pg_blank, "businesses", FULL))
    assert got["b2"].problem is not None and got["b2"].problem.field_path == "created_at"
    assert got["b1"].problem is None


@pytest.mark.postgres
def test_session_settings_of_a_callers_engine_do_not_change_what_is_read(
    pg_seeded_url: str,
) -> None:
    """Dates are read as text: the extraction pins datestyle and timezone itself."""
    odd = create_engine(
        make_url(pg_seeded_url).set(drivername="postgresql+psycopg2"),
        connect_args={"options": "-c timezone=Asia/Kolkata"},
    )

    @event.listens_for(odd, "connect")
    def _german_dates(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("SET datestyle = 'German, DMY'")  # after psycopg2's own SET to ISO
        cursor.close()

    reference = Warehouse(pg_seeded_url)
    try:
        with odd.connect() as conn:
            assert conn.exec_driver_sql("SHOW datestyle").scalar() == "German, DMY"
            assert conn.exec_driver_sql("SHOW timezone").scalar() == "Asia/Kolkata"
        for name in ("invoices", "invoice_payments", "refund_payments"):
            mine = extract(Warehouse(odd), name, FULL)
            theirs = extract(reference, name, FULL)
            assert [(r.source_id, r.updated_at, r.row) for r in mine] == [
                (r.source_id, r.updated_at, r.row) for r in theirs
            ]
            assert not problems(mine)
    finally:
        odd.dispose()
        reference.close()


# -- NULL and unreadable updated_at: in every window, never skipped ---------------------------


def test_null_updated_at_is_picked_up_by_every_window(blank: Warehouse) -> None:
    load(
        blank.engine,
        {
            "businesses": [business()],
            "customers": [
                customer("c-ok", T0 + timedelta(days=1)),
                customer("c-null", T0 + timedelta(days=1)),
            ],
        },
        replace=False,
    )
    loosen(blank.engine, "customers", "updated_at")
    assert sql(blank.engine, "UPDATE customers SET updated_at = NULL WHERE id = 'c-null'")
    for window in WINDOWS:
        got = by_id(extract(blank, "customers", window))
        assert set(got) == ({"c-ok", "c-null"} if window is FULL else {"c-null"}), window
        bad = got["c-null"]
        assert problems([bad]) == {"c-null": ("updated_at", "NULL: cannot tell when it changed")}
        assert bad.updated_at == UNKNOWN_UPDATED_AT and bad.business_id == "b1"
        assert bad.row["company_name"] == "Company c-null"
    assert problems(blank.fetch(get("customers").source, ["c-null", "c-ok"])) == {
        "c-null": ("updated_at", "NULL: cannot tell when it changed")
    }


def test_null_child_updated_at_picks_up_the_parent_in_every_window(blank: Warehouse) -> None:
    at = T0 + timedelta(days=3)
    load(blank.engine, invoices_with_lines(3, at), replace=False)
    loosen(blank.engine, "invoice_line_items", "updated_at")
    assert sql(blank.engine, "UPDATE invoice_line_items SET updated_at = NULL WHERE id = 'l1'")
    for window in WINDOWS:
        got = by_id(extract(blank, "invoices", window))
        assert set(got) == ({"i0", "i1", "i2"} if window is FULL else {"i1"}), window
        assert problems(list(got.values())) == {
            "i1": ("line_items[0].updated_at", "NULL: cannot tell when it changed")
        }
        assert got["i1"].updated_at == at + timedelta(minutes=1), "its own updated_at is fine"


@pytest.mark.parametrize("value", ["yesterday", "31/12/2026", "2026-09-03 25:00:00", 20260901])
def test_unreadable_updated_at_on_sqlite_is_picked_up_by_every_window(
    tmp_path: Any, value: object
) -> None:
    warehouse = Warehouse(f"sqlite:///{tmp_path / 'w.db'}")
    create_schema(warehouse.engine)
    load(
        warehouse.engine,
        {
            "businesses": [business()],
            "customers": [customer(f"c{k}", T0 + timedelta(days=k)) for k in range(3)],
        },
        replace=False,
    )
    assert sql(warehouse.engine, "UPDATE customers SET updated_at = :v WHERE id = 'c1'", v=value)
    try:
        for window in WINDOWS:
            got = by_id(extract(warehouse, "customers", window))
            assert set(got) == ({"c0", "c1", "c2"} if window is FULL else {"c1"}), window
            problem = got["c1"].problem
            assert problem is not None and problem.field_path == "updated_at"
            assert problem.message.startswith("cannot be read as a date-time: "), problem
            assert problem.message.endswith("; cannot tell when it changed")
            assert got["c1"].updated_at == UNKNOWN_UPDATED_AT
    finally:
        warehouse.close()


def test_impossible_day_on_sqlite_is_flagged_in_the_window_it_sorts_into(tmp_path: Any) -> None:
    warehouse = Warehouse(f"sqlite:///{tmp_path / 'w.db'}")
    create_schema(warehouse.engine)
    at = T0 + timedelta(days=2)
    load(warehouse.engine, {"businesses": [business()], "customers": [customer("c", at)]})
    sql(warehouse.engine, "UPDATE customers SET updated_at = '2026-09-31 10:00:00.000000'")
    try:
        (record,) = extract(warehouse, "customers", FULL)  # September, as text
        assert record.problem is not None and record.problem.field_path == "updated_at"
        assert "'2026-09-31 10:00:00.000000'" in record.problem.message
        for window in WINDOWS[1:]:
            assert extract(warehouse, "customers", window) == []
    finally:
        warehouse.close()


# -- text in SQLite's number and date columns ---------------------------------------------------


def test_text_in_number_and_date_columns_on_sqlite(tmp_path: Any) -> None:
    warehouse = Warehouse(f"sqlite:///{tmp_path / 'w.db'}")
    create_schema(warehouse.engine)
    at = T0 + timedelta(days=2)
    load(warehouse.engine, invoices_with_lines(4, at), replace=False)
    sql(warehouse.engine, "UPDATE invoice_line_items SET quantity = 'three' WHERE id = 'l0'")
    sql(warehouse.engine, "UPDATE invoices SET due_at = '31/12/2026' WHERE id = 'i1'")
    sql(warehouse.engine, "UPDATE invoices SET sent_at = 1700000000 WHERE id = 'i2'")
    try:
        got = extract(warehouse, "invoices", FULL)
        assert [r.source_id for r in got] == ["i0", "i1", "i2", "i3"]
        assert problems(got) == {
            "i0": ("line_items[0].quantity", "cannot be read as a number: 'three'"),
            "i1": (
                "due_at",
                "cannot be read as a date-time: '31/12/2026' "
                "(before year 1, after year 9999, infinite, or not a date)",
            ),
            "i2": ("sent_at", "cannot be read as a date-time: int 1700000000"),
        }
        assert by_id(got)["i0"].children["line_items"][0]["quantity"] == "three"
    finally:
        warehouse.close()


def test_several_unreadable_values_are_all_named(tmp_path: Any) -> None:
    warehouse = Warehouse(f"sqlite:///{tmp_path / 'w.db'}")
    create_schema(warehouse.engine)
    load(warehouse.engine, invoices_with_lines(1, T0 + timedelta(days=1)), replace=False)
    sql(warehouse.engine, "UPDATE invoices SET due_at = 'soon', sent_at = 'then' WHERE id = 'i0'")
    sql(warehouse.engine, "UPDATE invoice_line_items SET quantity = 'lots' WHERE id = 'l0'")
    try:
        (record,) = extract(warehouse, "invoices", FULL)
        assert record.problem is not None
        assert record.problem.field_path == "sent_at"
        assert record.problem.message.endswith("(also unreadable: due_at, line_items[0].quantity)")
    finally:
        warehouse.close()


# -- ids that cannot become Thred external_ids --------------------------------------------------


@pytest.mark.parametrize(
    ("source_id", "fragment"),
    [
        pytest.param("cus-ü1", "non-ASCII character 'ü' (U+00FC) at position 4", id="non-ASCII"),
        pytest.param("cus\t1", "control character", id="tab"),
        pytest.param("c" * 300, "is 300 characters long", id="300 characters"),
    ],
)
def test_id_that_cannot_be_a_key_is_yielded_with_a_problem(
    blank: Warehouse, source_id: str, fragment: str
) -> None:
    if blank.engine.dialect.name == "postgresql":  # an independent warehouse's ids are text
        sql(blank.engine, "ALTER TABLE customers ALTER COLUMN id TYPE text")
    at = T0 + timedelta(days=1)
    odd = customer(source_id, at) | {"company_name": "Odd Ltd"}
    load(
        blank.engine,
        {"businesses": [business()], "customers": [customer("c-ok", at), odd]},
        replace=False,
    )
    got = by_id(extract(blank, "customers", FULL))
    assert set(got) == {"c-ok", source_id}
    problem = got[source_id].problem
    assert problem is not None and problem.field_path == "id", problem
    assert fragment in problem.message
    assert got[source_id].updated_at == at, "identity and version are still read"
    assert got["c-ok"].problem is None
    assert set(by_id(blank.fetch(get("customers").source, [source_id]))) == {source_id}


def test_seeded_rows_have_no_problem(seeded: Warehouse) -> None:
    for spec in ENTITIES:
        records = extract(seeded, spec.name, FULL)
        assert records and not problems(records), spec.name


# -- inactive businesses --------------------------------------------------------------------------


def test_inactive_businesses_and_their_records_are_not_extracted(blank: Warehouse) -> None:
    at = T0 + timedelta(days=1)
    load(
        blank.engine,
        {
            "businesses": [
                business("b-on", updated_at=at),
                business("b-off", is_active=False, updated_at=at),
                business("b-null", updated_at=at),
            ],
            "customers": [
                customer("c-on", at, "b-on"),
                customer("c-off", at, "b-off"),
                customer("c-null", at, "b-null"),
                customer("c-orphan", at, "b-missing"),
            ],
        },
        replace=False,
    )
    loosen(blank.engine, "businesses", "is_active")
    assert sql(blank.engine, "UPDATE businesses SET is_active = NULL WHERE id = 'b-null'")

    assert blank.active_business_ids() == ["b-on"] == blank.business_ids()
    assert blank.inactive_business_ids() == ["b-null", "b-off"]
    assert blank.business_ids(active_only=False) == ["b-null", "b-off", "b-on"]

    assert [r.source_id for r in extract(blank, "businesses", FULL)] == ["b-on"]
    # A record whose business is missing is still extracted: it waits for it, visibly.
    assert sorted(r.source_id for r in extract(blank, "customers", FULL)) == ["c-on", "c-orphan"]
    fetched = blank.fetch(get("customers").source, ["c-on", "c-off", "c-null", "c-orphan"])
    assert sorted(r.source_id for r in fetched) == ["c-on", "c-orphan"]
    assert [r.source_id for r in blank.fetch(get("businesses").source, ["b-off", "b-on"])] == [
        "b-on"
    ]
    row = blank.business("b-off")
    assert row is not None and row["is_active"] is False, "business() reads any business"


def test_business_turning_inactive_stops_its_extraction(blank: Warehouse) -> None:
    at = T0 + timedelta(days=1)
    load(
        blank.engine,
        {
            "businesses": [business("b1"), business("b2")],
            "customers": [customer("c1", at, "b1"), customer("c2", at, "b2")],
        },
        replace=False,
    )
    assert [r.source_id for r in extract(blank, "customers", FULL)] == ["c1", "c2"]
    is_false = "0" if blank.engine.dialect.name == "sqlite" else "false"
    sql(blank.engine, f"UPDATE businesses SET is_active = {is_false} WHERE id = 'b2'")
    assert [r.source_id for r in extract(blank, "customers", FULL)] == ["c1"]
    assert blank.inactive_business_ids() == ["b2"]


def test_text_is_active_on_sqlite(tmp_path: Any) -> None:
    warehouse = Warehouse(f"sqlite:///{tmp_path / 'w.db'}")
    create_schema(warehouse.engine)
    load(
        warehouse.engine,
        {"businesses": [business(f"b{k}") for k in range(5)]},
        replace=False,
    )
    for k, value in enumerate(["true", "TRUE", "false", "no", "yes"]):
        sql(
            warehouse.engine,
            "UPDATE businesses SET is_active = :v WHERE id = :b",
            v=value,
            b=f"b{k}",
        )
    try:
        assert warehouse.active_business_ids() == ["b0", "b1", "b4"]
        assert warehouse.inactive_business_ids() == ["b2", "b3"]
    finally:
        warehouse.close()


def test_timestamps_are_still_utc(blank: Warehouse) -> None:
    moment = datetime(2026, 9, 3, 10, 15, 30, 123456, tzinfo=UTC)
    load(blank.engine, {"businesses": [business()], "customers": [customer("c", moment)]})
    (record,) = extract(blank, "customers", FULL)
    assert record.updated_at == moment and record.updated_at.tzinfo is not None
    assert record.row["created_at"] == moment
