"""How ``status`` and ``quarantine list`` look on a terminal (rich tables; plain text when
piped: wide enough that no row wraps, no colour codes)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.table import Table

from thred_pipeline.ledger import LedgerRow
from thred_pipeline.status import NUMBERS, EntityStatus, Report


class _Console(Console):
    def on_broken_pipe(self) -> None:
        raise BrokenPipeError  # the CLI's own handling (exit 141), not rich's exit 1


def _console(out: Any) -> Console:
    terminal = bool(getattr(out, "isatty", lambda: False)())
    # Not a terminal (a pipe, a file): wide enough that no row wraps; no colour codes.
    return _Console(file=out, width=None if terminal else 200, highlight=False, soft_wrap=False)


def _counts(business: str, entity: str, row: EntityStatus) -> list[str]:
    return [business, entity, *(f"{row.counts[name]}" for name in NUMBERS), f"{row.total}"]


def _ledger_table(report: Report) -> Table:
    table = Table(title="Ledger: records per business and entity", title_justify="left")
    table.add_column("business", no_wrap=True)
    table.add_column("entity", no_wrap=True)
    for name in NUMBERS:
        table.add_column(name.replace("_", " "), justify="right", no_wrap=True)
    table.add_column("total", justify="right", no_wrap=True)
    for row in report.rows:
        table.add_row(*_counts(row.business_id, row.entity, row))
    table.add_section()
    table.add_row(*_counts("all", "", report.totals))
    return table


def _dagster_lines(report: Report) -> list[str]:
    """The last nightly run, the last books verdict, and what could not be read."""
    run = report.last_run
    if run is None:
        lines = ["Last nightly run: none recorded"]
    else:
        when = run.ended or run.started
        lines = [
            f"Last nightly run: partition {run.partition or '-'}, {run.status}"
            + (f", {when:%Y-%m-%d %H:%M:%S} UTC" if when else "")
            + f" (run {run.run_id})"
        ]
    books = report.books
    if books is None:
        lines.append("Books: no books reconciliation recorded")
    else:
        lines.append(
            f"Books: verdict {books.verdict}, {books.at:%Y-%m-%d %H:%M:%S} UTC (run {books.run_id})"
        )
    return [*lines, *(f"({note})" for note in report.notes)]


def render_status(report: Report, out: Any) -> None:
    console = _console(out)
    if report.rows:
        console.print(_ledger_table(report))
    else:
        console.print("Ledger: no records (nothing synced yet, or none match the filters)")
    for line in _dagster_lines(report):
        console.print(line)


def render_attention(rows: Iterable[LedgerRow], out: Any) -> int:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("status", "entity", "business", "source id", "error code"):
        table.add_column(name, no_wrap=True)
    table.add_column("message", overflow="fold")
    n = 0
    for row in rows:
        n += 1
        table.add_row(
            row.status.value,
            row.entity,
            row.business_id,
            row.source_id,
            row.error_code or "",
            " ".join((row.error_message or "").split()),
        )
    console = _console(out)
    if n:
        console.print(table)
    console.print(f"{n} records need attention" if n else "0 records need attention")
    return n
