"""A window check reads only its window's records, and compares exactly what it compared when it
read the entity's whole table (``_in_window(frame(spec))``): the same rows, values, versions.

Old and new are run on the same warehouses, SQLite and PostgreSQL, seeded and then given records
whose own ``updated_at`` is outside a window but a child row's is inside, NULL and unreadable
values, values pandas cannot hold, an inactive business, and windows with nothing in them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Column, DateTime, Engine, Integer, MetaData, String, Table, cast, select
from sqlalchemy import text as sql_text
from thred_devtools.seed import SeedConfig, generate, load

from thred_pipeline import entities
from thred_pipeline.core.records import TimeWindow
from thred_pipeline.reconcile import CheckReport, WindowReconciler
from thred_pipeline.reconcile.reconciler import _in_window
from thred_pipeline.reconcile.warehouse_side import (
    WarehouseBooks,
    _maybe_in,
    window_bounds,
    window_candidates,
)
from thred_pipeline.warehouse.db import create_warehouse_engine
from thred_pipeline.warehouse.text_reads import timestamps
from thred_pipeline_tests.pg import pg_database
from thred_pipeline_tests.sync.conftest import ORDER, WINDOW, SyncEnv, day_window, synced

__all__ = ["synced"]  # the sync suite's fixture: a synced sandbox environment

CONFIG = SeedConfig()
SMALL_START = WINDOW.start
T0 = CONFIG.window_start
Data = dict[str, list[dict[str, Any]]]


def day(n: int, hours: float = 0) -> datetime:
    return T0 + timedelta(days=n, hours=hours)


def window(start: datetime, hours: float = 24) -> TimeWindow:
    return TimeWindow(start, start + timedelta(hours=hours))


WINDOWS = [
    *(window(day(n)) for n in (0, 1, 5, 9, 10, 11, 12, 13, 14, 15, 20, 29)),
    window(day(10, 10), hours=1),  # an hour: a child row's change at 10:30 is in it
    window(day(10, 11), hours=1),
    window(datetime(2030, 1, 1, tzinfo=UTC)),  # after everything: NULL/unreadable rows only
    TimeWindow(T0, CONFIG.window_end),
]


def old_frame(books: WarehouseBooks, spec: entities.EntitySpec, w: TimeWindow) -> pd.DataFrame:
    """Today's window rows: the whole books frame, then the window's (in source id order)."""
    kept = _in_window(books.frame(spec), w)
    return kept.sort_values("source_id", kind="stable").reset_index(drop=True)


def new_frame(engine: Engine, spec: entities.EntitySpec, w: TimeWindow) -> pd.DataFrame:
    return _in_window(WarehouseBooks(engine).window_frame(spec, w), w)


# --- warehouses with awkward versions -------------------------------------------------------


def run(engine: Engine, statement: str, **params: Any) -> None:
    with engine.begin() as conn:
        conn.execute(sql_text(statement), params)


def loosen(engine: Engine, table: str) -> None:
    """Let ``updated_at`` be NULL (PostgreSQL: drop NOT NULL; SQLite: rebuild without it)."""
    if engine.dialect.name == "postgresql":
        run(engine, f'ALTER TABLE "{table}" ALTER COLUMN updated_at DROP NOT NULL')
        return
    with engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE TABLE "{table}__loose" AS SELECT * FROM "{table}"')
        conn.exec_driver_sql(f'DROP TABLE "{table}"')
        conn.exec_driver_sql(f'ALTER TABLE "{table}__loose" RENAME TO "{table}"')


def stamp(engine: Engine, table: str, column: str, row_id: str, value: Any) -> None:
    """Set ``updated_at`` of the rows whose ``column`` is ``row_id`` to a raw value."""
    target = "CAST(:v AS timestamptz)" if engine.dialect.name == "postgresql" else ":v"
    if isinstance(value, datetime) and engine.dialect.name == "sqlite":
        value = value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
    elif isinstance(value, datetime):
        value = value.isoformat()
    run(
        engine,
        f'UPDATE "{table}" SET updated_at = {target} WHERE "{column}" = :i',
        v=value,
        i=row_id,
    )


ODD_SQLITE = [
    "2026-09-31 10:00:00",  # no such day: SQLite reads it, pandas does not
    "2026-09-10T23:30:00-05:00",  # the 11th in UTC
    "1500-01-01 00:00:00",  # before pandas' range
    "garbage",
    20260910,
    "2026-09-11 00:00:00",  # midnight, no fraction
    "2026-09-12",
    "2026-09-13 24:00:00",
    "2026-09-14 10:00",
    " 2026-09-15",
    "2026-09-12T08:00:00.5",
]
ODD_POSTGRES = [
    "infinity",
    "-infinity",
    "1500-01-01 00:00:00+00",
    "0044-03-15 00:00:00+00 BC",
    "12000-01-01 00:00:00+00",
    "2262-06-01 00:00:00+00",
    "2026-09-11 23:30:00-05:00",
]


def make_awkward(engine: Engine, data: Data) -> dict[str, str]:
    """Edits every old-vs-new case needs; returns the ids the test looks for."""
    invoices, lines = data["invoices"], data["invoice_line_items"]
    pick = [i["id"] for i in invoices if any(x["invoice_id"] == i["id"] for x in lines)][:4]
    child_only, own_early, own_null, all_null = pick
    for table in ("invoices", "invoice_line_items", "customers", "payment_allocations", "vendors"):
        loosen(engine, table)
    stamp(engine, "invoices", "id", child_only, day(0, 1))
    stamp(engine, "invoice_line_items", "invoice_id", child_only, day(10, 10.5))
    stamp(engine, "invoices", "id", own_early, day(12, 9))  # own in day 12, version in day 20
    stamp(engine, "invoice_line_items", "invoice_id", own_early, day(20, 1))
    stamp(engine, "invoices", "id", own_null, None)  # version: its lines' latest
    stamp(engine, "invoices", "id", all_null, None)  # no version at all: every window
    stamp(engine, "invoice_line_items", "invoice_id", all_null, None)
    stamp(engine, "customers", "id", data["customers"][0]["id"], None)
    stamp(engine, "payment_allocations", "id", data["payment_allocations"][0]["id"], None)
    stamp(engine, "payout_items", "id", data["payout_items"][0]["id"], day(11, 3))
    odd = ODD_POSTGRES if engine.dialect.name == "postgresql" else ODD_SQLITE
    for vendor, value in zip(data["vendors"], odd, strict=False):
        stamp(engine, "vendors", "id", vendor["id"], value)
    inactive = data["businesses"][-1]["id"]
    run(engine, "UPDATE businesses SET is_active = :f WHERE id = :i", f=False, i=inactive)
    return {"child_only": child_only, "all_null": all_null, "own_early": own_early}


@pytest.fixture(scope="module")
def data() -> Data:
    return generate(CONFIG)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def awkward(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, data: Data
) -> Iterator[tuple[Engine, dict[str, str]]]:
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp("window") / "warehouse.db"
        engine = create_warehouse_engine(f"sqlite:///{path}")
        load(engine, data)
        yield engine, make_awkward(engine, data)
        engine.dispose()
        return
    with pg_database(request.getfixturevalue("postgres_admin_url"), "thred_window") as url:
        engine = create_warehouse_engine(url)
        load(engine, data)
        yield engine, make_awkward(engine, data)
        engine.dispose()


# --- old and new, side by side --------------------------------------------------------------


def test_every_window_compares_the_rows_it_compared_before(
    awkward: tuple[Engine, dict[str, str]],
) -> None:
    engine, ids = awkward
    books = WarehouseBooks(engine)
    empty = 0
    for spec in entities.ENTITIES:
        for w in WINDOWS:
            old = old_frame(books, spec, w)
            pd.testing.assert_frame_equal(new_frame(engine, spec, w), old, obj=f"{spec.name} {w}")
            empty += old.empty
    assert empty > 0, "some window has nothing in it"
    invoices = entities.get("invoices")
    in_window = {w: set(new_frame(engine, invoices, w)["source_id"]) for w in WINDOWS[:14]}
    assert ids["child_only"] in in_window[window(day(10))]  # a line changed on day 10
    assert ids["child_only"] in in_window[window(day(10, 10), hours=1)]
    assert ids["child_only"] not in in_window[window(day(0))]
    assert ids["own_early"] not in in_window[window(day(12))]  # its version is day 20
    assert ids["own_early"] in in_window[window(day(20))]
    assert all(ids["all_null"] in found for found in in_window.values())


def test_a_day_reads_a_day_not_the_history(awkward: tuple[Engine, dict[str, str]]) -> None:
    engine, _ = awkward
    invoices = entities.get("invoices")
    candidates = window_candidates(engine, invoices, window(day(5)))
    assert 0 < len(candidates) < len(WarehouseBooks(engine).frame(invoices)) / 5


def test_many_candidates_are_read_in_batches(
    awkward: tuple[Engine, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """More ids than one ``IN`` list takes (SQLite's variable limit): read in batches."""
    engine, _ = awkward
    monkeypatch.setattr("thred_pipeline.reconcile.warehouse_side.IN_BATCH_SIZE", 7)
    books, everything = WarehouseBooks(engine), TimeWindow(T0, CONFIG.window_end)
    for name in ("invoices", "vendor_credits", "payouts"):
        spec = entities.get(name)
        old = old_frame(books, spec, everything)
        assert len(old) > 7
        pd.testing.assert_frame_equal(new_frame(engine, spec, everything), old, obj=name)


# --- whole checks: the same report through Thred ------------------------------------------


def whole_books_window_frame(
    self: WarehouseBooks, spec: entities.EntitySpec, _window: TimeWindow
) -> pd.DataFrame:
    """Today's reading, for comparison: the whole books frame (``_check`` keeps the window's)."""
    return self.frame(spec).sort_values("source_id", kind="stable").reset_index(drop=True)


def assert_same_report(new: CheckReport, old: CheckReport) -> None:
    pd.testing.assert_frame_equal(new.differences, old.differences, obj=new.description)
    assert (new.name, new.entity, new.description) == (old.name, old.entity, old.description)
    assert (new.metrics, new.severity) == (old.metrics, old.severity)
    assert (new.not_read, new.notes) == (old.not_read, old.notes)


def test_every_window_check_reports_what_it_reported_before(
    synced: SyncEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A line changed later than its invoice (a child-only change), a changed payment, a
    payment changed in Thred: each check's report is today's, field by field."""
    env = synced
    later = day_window(1)
    line = env.data["invoice_line_items"][0]
    env.edit("invoice_line_items", line["id"], unit_price_cents=777, updated_at=later.start)
    env.edit("payments", env.data["payments"][1]["id"], amount_cents=1, updated_at=later.start)
    paid = env.data["payments"][3]
    env.tamper("invoice_payments", f"payment-{paid['id']}", {"total_amount_cents": 5})
    windows = [WINDOW, later, day_window(5), window(SMALL_START, hours=6)]
    check = WindowReconciler(env.warehouse, env.ledger, env.settings)
    new = {(e, w): check.check(e, w) for e in ORDER for w in windows}
    monkeypatch.setattr(WarehouseBooks, "window_frame", whole_books_window_frame)
    differing = 0
    for (entity, w), report in new.items():
        assert_same_report(report, check.check(entity, w))
        differing += not report.passed
    assert differing >= 2, "the edits show as differences"
    assert new[("invoices", later)].metrics["window_records"] == 1  # by its line alone


# --- the SQLite filter never drops a row the old test would keep ----------------------------

STAMPS = Table(
    "stamps",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("updated_at", DateTime(timezone=True)),
)


@st.composite
def date_texts(draw: st.DrawFn) -> str:
    """Date-time text near a 2026 window, often malformed (day 31 of 30, hour 24, offsets…)."""
    year = draw(st.sampled_from([1, 1500, 1677, 1678, 2025, 2026, 2026, 2026, 2261, 2262, 9999]))
    month, dom = draw(st.integers(0, 13)), draw(st.integers(0, 32))
    hour, minute, second = (draw(st.integers(0, top)) for top in (25, 60, 61))
    clock = f"{hour:02d}:{minute:02d}:{second:02d}"
    clock = draw(st.sampled_from([clock, clock[:5], ""]))
    sep = draw(st.sampled_from([" ", "T", "", "  "])) if clock else ""
    frac = draw(st.sampled_from(["", ".", ".5", ".123456", ".1234567", ".1234567890"]))
    zone = draw(
        st.sampled_from(["", "", "", "Z", "+00:00", "+05:30", "-11:00", " +02:00", "+0100"])
    )
    lead = draw(st.sampled_from(["", "", "", " "]))
    return f"{lead}{year:04d}-{month:02d}-{dom:02d}{sep}{clock}{frac if clock else ''}{zone}"


VALUES = st.one_of(  # half near-dates, half anything else a column might hold
    date_texts(),
    st.one_of(
        st.text(max_size=24),
        st.integers(-(2**63), 2**63 - 1),
        st.floats(allow_nan=False),
        st.none(),
    ),
)


@pytest.fixture(scope="module")
def stamps_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    engine = create_warehouse_engine(f"sqlite:///{tmp_path_factory.mktemp('stamps')}/s.db")
    STAMPS.metadata.create_all(engine)
    yield engine
    engine.dispose()


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    values=st.lists(VALUES, min_size=1, max_size=40),
    start=st.datetimes(datetime(2025, 12, 1), datetime(2026, 3, 1)),
    hours=st.integers(1, 96),
)
@example(
    values=[
        "1500-01-01 00:00:00",  # SQLite reads it, pandas cannot hold it
        "0001-01-01",
        "2300-01-01 10:00:00",
        "2026-02-30 10:00:00",  # no such day
        "2026-09-00 10:00:00",
        "2026-13-01",
        "2024-02-29 10:00:00.123",  # a leap day
        "2026-01-01 24:00:00",
        "2026-01-05 24:00:00",
        "2025-12-31T23:30:00-05:00",  # the 1st in UTC
        "2026-01-01 00:00:00",
        "2026-01-02",
        20260101,
        None,
    ],
    start=datetime(2026, 1, 1),
    hours=24,
)
def test_rows_left_out_are_plainly_outside_the_window(
    stamps_db: Engine, values: list[Any], start: datetime, hours: int
) -> None:
    w = TimeWindow(start.replace(tzinfo=UTC), start.replace(tzinfo=UTC) + timedelta(hours=hours))
    with stamps_db.begin() as conn:
        conn.exec_driver_sql("DELETE FROM stamps")
        for n, value in enumerate(values):
            conn.exec_driver_sql("INSERT INTO stamps VALUES (?, ?)", (n, value))
        read = select(STAMPS.c.id, cast(STAMPS.c.updated_at, String))
        text_of = {n: text for n, text in conn.execute(read)}
        query = select(STAMPS.c.id).where(_maybe_in(STAMPS.c.updated_at, postgres=False))
        kept = set(conn.execute(query, window_bounds(w, postgres=False)).scalars())
    left_out = sorted(set(text_of) - kept)
    parsed = timestamps(pd.Series([text_of[n] for n in left_out], dtype=object))
    start_, end_ = pd.Timestamp(w.start), pd.Timestamp(w.end)
    for n, version in zip(left_out, parsed, strict=True):
        assert pd.notna(version), (text_of[n], "unreadable: belongs to every window")
        assert not start_ <= version < end_, (text_of[n], w)
