"""The benchmark harness (``make bench``) still runs and still reports every figure.

The smoke run uses ``BENCH_QUICK=1`` (tiny sizes): it proves every figure and its anchor
can be measured and written, not how fast anything is, so nothing here asserts a timing.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
from thred_devtools.sandbox import SandboxConfig, start_sandbox

from benchmarks import data
from benchmarks.docs_client import ClientRun, naive_sync, raw_load, read_books
from benchmarks.figures import PARTNER, Row, Sampler, Sizes
from benchmarks.ledger_loop import sqlite_path
from benchmarks.procs import request_counts
from benchmarks.report import table

REPO = Path(__file__).resolve().parents[2]
EXPECTED_ROWS = {"B1": 1, "B2": 1, "CPU": 1, "B3": 3, "B4": 2, "B5": 2, "B6": 2}
NUMBER = re.compile(r"^-?[\d,]+(\.\d+)?( \S+)?$")


def _result_rows(report: str) -> list[list[str]]:
    section = report.split("## Results", 1)[1].split("## Machine", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[1:]]


@pytest.mark.slow
def test_quick_run_reports_every_figure_with_numbers(tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    env = {**os.environ, "BENCH_QUICK": "1", "BENCH_OUT": str(out)}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = out.read_text()
    rows = _result_rows(report)
    counts: dict[str, int] = {}
    for key, what, measured, anchor, _ratio, target, met in rows:
        counts[key] = counts.get(key, 0) + 1
        assert NUMBER.match(measured), (what, measured)
        assert NUMBER.match(anchor), (what, anchor)
        assert target and met in ("met", "**not met**")
    assert counts == EXPECTED_ROWS
    machine = report.split("## Machine", 1)[1]
    assert "cores" in machine and "load average before" in machine and "dagster" in machine
    assert "### sync" in report and "### sandbox" in report
    assert "thred_pipeline" in report.split("### sync", 1)[1]


def test_the_naive_client_and_the_load_generator_write_what_the_books_hold(
    tmp_path: Path,
) -> None:
    """Both anchors post every record of the warehouse, and the same set of objects."""
    url = data.seed_ar(data.warehouse_file(tmp_path, "w"), 2, 4, 6, 3)
    books = read_books(url)
    objects = []
    senders: list[Callable[[str], ClientRun]] = [
        partial(naive_sync, partner=PARTNER, books=books),
        partial(raw_load, partner=PARTNER, books=books, concurrency=3),
    ]
    for send in senders:
        with start_sandbox(SandboxConfig()) as sandbox:
            run = send(sandbox.url)
            stats = sandbox.app.state.sandbox.store.scope_counts()
        assert run.records == sum(b.records() for b in books)
        assert run.requests >= run.records
        objects.append(sorted(tuple(sorted(c.items())) for s, c in stats.items() if s[0] != "_"))
    assert objects[0] == objects[1]
    assert objects[0], "nothing was written"


def test_growing_a_warehouse_keeps_ids_unique_and_lines_attached(tmp_path: Path) -> None:
    url = data.seed_ar(data.warehouse_file(tmp_path, "w"), 1, 4, 10, 0)
    assert data.grow_invoices(url, 35) == 35
    assert data.grow_invoices(url, 120) == 120  # a second growth must not repeat ids
    with sqlite3.connect(sqlite_path(url)) as conn:
        orphans = conn.execute(
            "SELECT count(*) FROM invoice_line_items WHERE invoice_id NOT IN "
            "(SELECT id FROM invoices)"
        ).fetchone()[0]
        without_lines = conn.execute(
            "SELECT count(*) FROM invoices WHERE id NOT IN "
            "(SELECT invoice_id FROM invoice_line_items)"
        ).fetchone()[0]
    assert (orphans, without_lines) == (0, 0)


def test_sizes_follow_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_QUICK", "1")
    monkeypatch.setenv("BENCH_BUSINESSES", "3")
    monkeypatch.setenv("BENCH_RATE_LIMIT", "2.5")
    monkeypatch.setenv("BENCH_DEMO", "1")
    sizes = Sizes.from_env()
    assert (sizes.quick, sizes.businesses, sizes.rate_limit, sizes.demo) == (True, 3, 2.5, True)
    monkeypatch.delenv("BENCH_QUICK")
    assert Sizes.from_env().rss_large == 1_000_000


def test_the_table_says_failed_and_not_met() -> None:
    rows = [
        Row("B1", "fast", 300.0, 10.0, "records/s", ">= 30x", True, ratio_text="30.0x"),
        Row("B3", "failed (see the details)", float("nan"), float("nan"), "", "", False),
    ]
    lines = table(rows)
    assert "| 300 records/s | 10.0 records/s | 30.0x | >= 30x | met |" in lines[2]
    assert "failed" in lines[3] and "**not met**" in lines[3]


def test_request_counts_split_writes_tokens_and_429s() -> None:
    stats = {
        "requests": [
            {"method": "POST", "route": "/v1/platform/oauth2/token/", "status": 200, "count": 2},
            {"method": "POST", "route": "/v1/platform/businesses/", "status": 201, "count": 3},
            {"method": "GET", "route": "/v1/platform/businesses/", "status": 429, "count": 4},
            {"method": "GET", "route": "/_sandbox/stats", "status": 200, "count": 9},
        ]
    }
    assert request_counts(stats) == {"requests": 9, "writes": 3, "rate_limited": 4, "tokens": 2}


def test_the_sustained_rate_leaves_out_the_initial_burst() -> None:
    """A bucket of 20 spent at once, then 10 requests/s: the sustained rate is 10/s."""
    sampler = Sampler.__new__(Sampler)
    counts = [0, 0, 20, 25, 30, 35, 40, 45, 50, 55, 60, 65, 70, 70, 70]
    sampler.samples = [(0.5 * i, n) for i, n in enumerate(counts)]
    assert sampler.sustained() == pytest.approx(10.0)
    assert sampler.sustained(skip_s=0) == pytest.approx(70 / 5.5)
