"""Streaming extraction on SQLite and PostgreSQL: windows, child changes, chunks, fetch, roles."""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.pool import QueuePool
from thred_devtools.seed import SeedConfig, generate, load

from thred_pipeline.core.records import SourceRecord, TimeWindow
from thred_pipeline.entities import ENTITIES, get
from thred_pipeline.warehouse import schema
from thred_pipeline.warehouse.db import create_warehouse_engine
from thred_pipeline.warehouse.extract import Warehouse

from .conftest import pg_database

Data = dict[str, list[dict[str, Any]]]

T0 = datetime(2026, 9, 1, tzinfo=UTC)
FULL = TimeWindow(T0, T0 + timedelta(days=30))


def extract(warehouse: Warehouse, name: str, window: TimeWindow, **kw: Any) -> list[SourceRecord]:
    return [r for chunk in warehouse.iter_changed(get(name).source, window, **kw) for r in chunk]


def as_tuples(records: list[SourceRecord]) -> list[tuple[Any, ...]]:
    return [
        (r.entity, r.source_id, r.business_id, r.updated_at, r.row, r.children) for r in records
    ]


def business(bid: str = "b1", **over: Any) -> dict[str, Any]:
    row = {
        "id": bid,
        "legal_name": f"{bid} Ltd",
        "entity_type": "limited",
        "email": f"{bid}@example.com",
        "phone_number": None,
        "country": "GB",
        "base_currency": "GBP",
        "vat_number": None,
        "company_number": None,
        "accounting_method": "accrual",
        "is_active": True,
        "created_at": T0 - timedelta(days=10),
        "updated_at": T0 - timedelta(days=10),
    }
    return row | over


def customer(cid: str, updated_at: datetime, bid: str = "b1") -> dict[str, Any]:
    return {
        "id": cid,
        "business_id": bid,
        "individual_name": None,
        "company_name": f"Company {cid}",
        "email": None,
        "phone": None,
        "address_line1": None,
        "city": None,
        "postal_code": None,
        "country": "GB",
        "vat_number": None,
        "tax_exempt": False,
        "payment_terms_days": 30,
        "archived_at": None,
        "created_at": updated_at,
        "updated_at": updated_at,
    }


def invoice(iid: str, updated_at: datetime, bid: str = "b1") -> dict[str, Any]:
    return {
        "id": iid,
        "business_id": bid,
        "customer_id": "c1",
        "invoice_number": iid.upper(),
        "currency": "GBP",
        "sent_at": updated_at,
        "due_at": None,
        "voided_at": None,
        "memo": None,
        "additional_discount_cents": 0,
        "created_at": updated_at,
        "updated_at": updated_at,
    }


def line(lid: str, iid: str, position: int, updated_at: datetime) -> dict[str, Any]:
    return {
        "id": lid,
        "invoice_id": iid,
        "position": position,
        "description": f"line {lid}",
        "product": None,
        "quantity": Decimal("1.5"),
        "unit_price_cents": 1000,
        "discount_cents": 0,
        "tax_code": "VAT_20",
        "tax_amount_cents": 300,
        "revenue_account_code": "4000",
        "updated_at": updated_at,
    }


# -- windows ----------------------------------------------------------------------------------


def test_window_is_half_open_to_the_microsecond(blank: Warehouse):
    start, end = T0 + timedelta(days=3), T0 + timedelta(days=4)
    tick = timedelta(microseconds=1)
    load(
        blank.engine,
        {
            "businesses": [business()],
            "customers": [
                customer("before", start - tick),
                customer("at-start", start),
                customer("inside", start + timedelta(hours=12, microseconds=7)),
                customer("last", end - tick),
                customer("at-end", end),
                customer("after", end + tick),
            ],
        },
        replace=False,
    )
    got = extract(blank, "customers", TimeWindow(start, end))
    assert [r.source_id for r in got] == ["at-start", "inside", "last"]
    assert got[0].updated_at == start and got[0].updated_at.tzinfo is not None
    assert got[2].row["updated_at"] == end - tick

    # The same instants written in another zone select the same rows.
    plus_two = timezone(timedelta(hours=2))
    shifted = TimeWindow(start.astimezone(plus_two), end.astimezone(plus_two))
    assert [r.source_id for r in extract(blank, "customers", shifted)] == [
        "at-start",
        "inside",
        "last",
    ]
    # Adjacent windows partition the rows: nothing lost, nothing twice.
    left = extract(blank, "customers", TimeWindow(start - timedelta(days=1), start))
    right = extract(blank, "customers", TimeWindow(end, end + timedelta(days=1)))
    assert [r.source_id for r in left] == ["before"]
    assert [r.source_id for r in right] == ["at-end", "after"]


def test_child_change_picks_up_the_parent_with_all_its_children(blank: Warehouse):
    start, end = T0 + timedelta(days=5), T0 + timedelta(days=6)
    old = start - timedelta(days=2)
    load(
        blank.engine,
        {
            "businesses": [business()],
            "invoices": [
                invoice("i-stale", old),
                invoice("i-child-changed", old),
                invoice("i-child-at-end", old),
                invoice("i-self-changed", start + timedelta(hours=1)),
            ],
            "invoice_line_items": [
                line("l-stale", "i-stale", 1, old),
                line("l-b2", "i-child-changed", 2, start),  # changed in the window
                line("l-b1", "i-child-changed", 1, old),
                line("l-b3", "i-child-changed", 3, old),
                line("l-end", "i-child-at-end", 1, end),  # just outside
            ],
        },
        replace=False,
    )
    got = extract(blank, "invoices", TimeWindow(start, end))
    assert [r.source_id for r in got] == ["i-child-changed", "i-self-changed"]
    changed = got[0]
    assert changed.updated_at == old, "the record keeps its own updated_at"
    assert [li["id"] for li in changed.children["line_items"]] == ["l-b1", "l-b2", "l-b3"]
    assert changed.children["line_items"][0]["quantity"] == Decimal("1.5")
    assert got[1].children == {"line_items": []}


def test_every_child_table_counts_as_a_change(seeded: Warehouse, default_data: Data):
    # Vendor credits have two child tables; payouts' children are items.
    for name in ("vendor_credits", "payouts", "bill_payments", "invoice_payments"):
        spec = get(name)
        for child in spec.children:
            rows = default_data[child.table.name]
            if not rows:
                continue
            sample = rows[len(rows) // 2]
            window = TimeWindow(sample["updated_at"], sample["updated_at"] + timedelta(seconds=1))
            got = {r.source_id for r in extract(seeded, name, window)}
            assert sample[child.parent_column] in got, (name, child.key)


# -- chunks, order, children ------------------------------------------------------------------


def test_chunks_cover_every_row_once_in_order(seeded: Warehouse, default_data: Data):
    chunks = list(seeded.iter_changed(get("invoices").source, FULL, chunk_size=7))
    expected_ids = {row["id"] for row in default_data["invoices"]}
    assert len(chunks) == -(-len(expected_ids) // 7)
    assert all(1 <= len(chunk) <= 7 for chunk in chunks)
    records = [r for chunk in chunks for r in chunk]
    assert len(records) == len(expected_ids)
    assert {r.source_id for r in records} == expected_ids
    # Businesses interleaved: each one's n-th record before any business's n+1-th; within a
    # business by updated_at, id.
    turns: dict[str, int] = defaultdict(int)
    keys = []
    for r in records:
        keys.append((turns[r.business_id], r.business_id, r.updated_at, r.source_id))
        turns[r.business_id] += 1
    assert keys == sorted(keys)
    assert len(turns) > 1 and records[1].business_id != records[0].business_id
    lines = defaultdict(list)
    for li in default_data["invoice_line_items"]:
        lines[li["invoice_id"]].append(li)
    for r in records:
        attached = r.children["line_items"]
        assert [li["position"] for li in attached] == sorted(li["position"] for li in attached)
        assert attached == sorted(lines[r.source_id], key=lambda li: li["position"])
        assert r.business_id == r.row["business_id"] and r.entity == "invoices"


def test_round_trip_equals_the_generated_rows(seeded: Warehouse, default_data: Data):
    for spec in ENTITIES:
        records = extract(seeded, spec.name, FULL, chunk_size=50)

        def key(row: dict[str, Any]) -> tuple[Any, ...]:
            return (row.get("business_id", row["id"]), row["updated_at"], row["id"])

        # The order is test_chunks_cover_every_row_once_in_order's.
        assert sorted((r.row for r in records), key=key) == sorted(
            default_data[spec.table.name], key=key
        ), spec.name
        for child in spec.children:
            got = sorted(
                (row for r in records for row in r.children[child.key]), key=lambda x: x["id"]
            )
            assert got == sorted(default_data[child.table.name], key=lambda x: x["id"])


def test_businesses_are_their_own_business(seeded: Warehouse):
    records = extract(seeded, "businesses", FULL)
    assert [(r.source_id, r.business_id) for r in records] == [
        ("biz-01", "biz-01"),
        ("biz-02", "biz-02"),
        ("biz-03", "biz-03"),
    ]


def test_extraction_is_lazy_and_loads_children_per_chunk(seeded: Warehouse):
    statements: list[tuple[str, Any]] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, cursor))

    event.listen(seeded.engine, "before_cursor_execute", record)
    try:
        spec = get("vendor_credits")  # two child tables
        stream = seeded.iter_changed(spec.source, FULL, chunk_size=4)
        first = next(stream)
        assert len(first) == 4
        assert len(statements) == 1 + len(spec.children), "one parent query + one per child"
        rest = list(stream)
        chunks = 1 + len(rest)
        assert len(statements) == 1 + chunks * len(spec.children)
        if seeded.engine.dialect.name == "postgresql":
            parent_cursor = statements[0][1]
            assert getattr(parent_cursor, "name", None), "PostgreSQL streams via a named cursor"
            assert all(getattr(c, "name", None) is None for _, c in statements[1:])
    finally:
        event.remove(seeded.engine, "before_cursor_execute", record)


def test_abandoned_iterator_releases_its_connection(seeded: Warehouse):
    pool = seeded.engine.pool
    assert isinstance(pool, QueuePool)
    stream = seeded.iter_changed(get("invoices").source, FULL, chunk_size=5)
    next(stream)
    assert pool.checkedout() >= 1
    stream.close()
    assert pool.checkedout() == 0


def test_one_extraction_sees_one_snapshot(blank: Warehouse):
    old = T0 + timedelta(days=1)
    load(
        blank.engine,
        {
            "businesses": [business()],
            "invoices": [invoice(f"i{n}", old + timedelta(minutes=n)) for n in range(3)],
            "invoice_line_items": [line(f"l{n}", f"i{n}", 1, old) for n in range(3)],
        },
        replace=False,
    )
    stream = blank.iter_changed(get("invoices").source, FULL, chunk_size=1)
    assert [r.source_id for r in next(stream)] == ["i0"]
    # A concurrent writer adds a line to the last invoice while the extraction is running.
    writer = create_warehouse_engine(blank.engine.url)
    with writer.begin() as conn:
        conn.execute(schema.invoice_line_items.insert(), [_db(line("l-new", "i2", 2, old), writer)])
    writer.dispose()
    rest = [r for chunk in stream for r in chunk]
    assert [r.source_id for r in rest] == ["i1", "i2"]
    assert [li["id"] for li in rest[-1].children["line_items"]] == ["l2"]
    # The next extraction sees it.
    again = extract(blank, "invoices", FULL)
    assert [li["id"] for li in again[-1].children["line_items"]] == ["l2", "l-new"]


def _db(row: dict[str, Any], engine: Any) -> dict[str, Any]:
    if engine.dialect.name == "postgresql":
        return row
    return {k: v.replace(tzinfo=None) if isinstance(v, datetime) else v for k, v in row.items()}


# -- fetch and businesses ---------------------------------------------------------------------


def test_fetch_by_ids(seeded: Warehouse, default_data: Data):
    spec = get("bill_payments")
    wanted = [row["id"] for row in default_data["bill_payments"][::9]]
    ids = [*reversed(wanted), "bp-missing", wanted[0]]
    got = seeded.fetch(spec.source, ids)
    assert sorted(r.source_id for r in got) == sorted(wanted)
    keys = [(r.business_id, r.updated_at, r.source_id) for r in got]
    assert keys == sorted(keys)
    allocations = defaultdict(list)
    for a in default_data["bill_payment_allocations"]:
        allocations[a["bill_payment_id"]].append(a)
    for r in got:
        assert r.children["allocations"] == sorted(allocations[r.source_id], key=lambda a: a["id"])
    assert seeded.fetch(spec.source, []) == []


def test_fetch_batches_large_id_lists(seeded: Warehouse, default_data: Data):
    ids = [row["id"] for row in default_data["invoices"]] * 2  # 720 ids, over one IN batch
    got = seeded.fetch(get("invoices").source, ids)
    assert len(got) == len(default_data["invoices"])
    assert all(r.children["line_items"] for r in got)


def test_fetch_matches_iter_changed(seeded: Warehouse):
    streamed = extract(seeded, "vendor_credits", FULL)
    fetched = seeded.fetch(get("vendor_credits").source, [r.source_id for r in streamed])
    assert sorted(as_tuples(fetched)) == sorted(as_tuples(streamed))


def test_business_ids_and_business(seeded: Warehouse):
    assert seeded.business_ids() == ["biz-01", "biz-02", "biz-03"]
    row = seeded.business("biz-02")
    assert row is not None and row["legal_name"] == "Maya Patel Design"
    assert row["created_at"].tzinfo is not None and row["is_active"] is True
    assert seeded.business("nope") is None


def test_inactive_businesses_are_left_out_by_default(blank: Warehouse):
    load(
        blank.engine,
        {"businesses": [business("b2"), business("b1", is_active=False), business("b3")]},
        replace=False,
    )
    assert blank.business_ids() == ["b2", "b3"]
    assert blank.business_ids(active_only=False) == ["b1", "b2", "b3"]


def test_chunk_size_must_be_positive(seeded: Warehouse):
    with pytest.raises(ValueError, match="chunk_size"):
        next(seeded.iter_changed(get("invoices").source, FULL, chunk_size=0))


# -- the two engines agree --------------------------------------------------------------------


@pytest.mark.postgres
def test_sqlite_and_postgresql_extract_identically(sqlite_seeded: Warehouse, pg_seeded: Warehouse):
    windows = [FULL] + [
        TimeWindow(T0 + timedelta(days=d), T0 + timedelta(days=d + 1)) for d in (0, 4, 13, 29)
    ]
    windows.append(TimeWindow(T0 + timedelta(days=9, hours=7, minutes=13), T0 + timedelta(days=11)))
    for spec in ENTITIES:
        for window in windows:
            lite = extract(sqlite_seeded, spec.name, window, chunk_size=11)
            pg = extract(pg_seeded, spec.name, window, chunk_size=11)
            assert as_tuples(lite) == as_tuples(pg), (spec.name, window)
        ids = [r.source_id for r in extract(sqlite_seeded, spec.name, FULL)][::5]
        assert as_tuples(sqlite_seeded.fetch(spec.source, ids)) == as_tuples(
            pg_seeded.fetch(spec.source, ids)
        )
    assert sqlite_seeded.business_ids() == pg_seeded.business_ids()
    assert sqlite_seeded.business("biz-01") == pg_seeded.business("biz-01")


def test_daily_windows_partition_the_data(seeded: Warehouse, default_data: Data):
    seen: list[str] = []
    for day in range(30):
        window = TimeWindow(T0 + timedelta(days=day), T0 + timedelta(days=day + 1))
        seen.extend(r.source_id for r in extract(seeded, "invoice_payments", window))
    assert sorted(seen) == sorted(row["id"] for row in default_data["payments"])


# -- a SELECT-only PostgreSQL role -------------------------------------------------------------


@pytest.mark.postgres
def test_read_only_role_can_extract_but_not_write(
    postgres_admin_url: str, caplog: pytest.LogCaptureFixture
):
    role = f"thred_ro_{uuid.uuid4().hex[:10]}"
    password = f"pw-{uuid.uuid4().hex}"
    admin = create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    try:
        with pg_database(postgres_admin_url, "thred_wh_ro") as owner_url:
            owner = create_warehouse_engine(owner_url)
            load(owner, generate(SeedConfig(businesses=1, invoices=30, payments=20, bills=10)))
            database = make_url(owner_url).database
            with admin.connect() as conn:
                conn.execute(text(f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{password}'"))
                conn.execute(text(f'GRANT CONNECT ON DATABASE "{database}" TO "{role}"'))
            with owner.begin() as conn:
                conn.execute(text(f'GRANT USAGE ON SCHEMA public TO "{role}"'))
                conn.execute(text(f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{role}"'))

            ro_url = make_url(owner_url).set(username=role, password=password)
            caplog.set_level(logging.DEBUG, logger="thred_pipeline")
            reader = Warehouse(ro_url.render_as_string(hide_password=False))
            as_owner = Warehouse(owner)
            try:
                assert password not in repr(reader) and role in repr(reader)
                for spec in ENTITIES:
                    mine = extract(reader, spec.name, FULL, chunk_size=9)
                    assert as_tuples(mine) == as_tuples(extract(as_owner, spec.name, FULL))
                    ids = [r.source_id for r in mine]
                    assert len(reader.fetch(spec.source, ids)) == len(ids)
                assert reader.business_ids() == ["biz-01"]

                intruder = [business("intruder", created_at=T0)]
                denied = pytest.raises(ProgrammingError, match="permission denied")
                with denied, reader.engine.begin() as conn:
                    conn.execute(schema.businesses.insert(), intruder)
                denied = pytest.raises(ProgrammingError, match="permission denied")
                with denied, reader.engine.begin() as conn:
                    conn.execute(text("CREATE TABLE sneaky (id int)"))
            finally:
                reader.close()
                owner.dispose()
            assert password not in caplog.text
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
        admin.dispose()


def test_changed_ids_are_the_ids_iter_changed_yields(seeded: Warehouse, default_data: Data):
    for spec in ENTITIES:
        for day in (0, 3, 17, 29):
            window = TimeWindow(T0 + timedelta(days=day), T0 + timedelta(days=day + 1))
            streamed = {r.source_id for r in extract(seeded, spec.name, window)}
            assert seeded.changed_ids(spec.source, window) == streamed, (spec.name, day)
    everything = {r.source_id for r in extract(seeded, "invoices", FULL)}
    assert seeded.changed_ids(get("invoices").source, FULL) == everything
    assert len(everything) == len(default_data["invoices"])


def test_changed_business_ids_are_those_of_the_records_iter_changed_yields(
    seeded: Warehouse,
) -> None:
    for spec in ENTITIES:
        for window in (
            *(TimeWindow(T0 + timedelta(days=d), T0 + timedelta(days=d + 1)) for d in (0, 17)),
            FULL,
        ):
            streamed = sorted({r.business_id for r in extract(seeded, spec.name, window)})
            assert seeded.changed_business_ids(spec.source, window) == streamed, spec.name
