"""The commands: each takes the parsed arguments and returns its exit code.

The parts a command needs (the engine, the reconcilers, pandas, httpx) are imported by the
command that uses them, so ``--help``, ``status`` and a usage error start without them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from thred_pipeline import config
from thred_pipeline.cli.failures import EXIT_ATTENTION, EXIT_CONFIG, EXIT_OK, PROG, say
from thred_pipeline.cli.progress import counting_warehouse, sync_progress

if TYPE_CHECKING:
    from thred_pipeline.core.records import Status
    from thred_pipeline.entities import EntitySpec
    from thred_pipeline.ledger import SyncLedger
    from thred_pipeline.thred.settings import ThredSettings
    from thred_pipeline.warehouse.extract import Warehouse

# Run outcomes (EntityRunResult.counts) that mean "a record is not in Thred as it should be",
# with the word an operator reads.
ATTENTION = {
    "rejected": "quarantined",
    "deferred": "deferred",
    "drift": "drifted",
    "unknown": "uncertain",
}


def _window(args: argparse.Namespace) -> tuple[datetime, datetime]:
    start: datetime = args.start
    try:
        end: datetime = args.end or start + timedelta(days=1)
    except OverflowError:
        args.parser.error(f"argument --start: {start.date()} leaves no day after it")
    if end <= start:
        args.parser.error(f"argument --end: {end.isoformat()} is not after --start")
    return start, end


# -- opening the parts, each checked and named ------------------------------------------------


@dataclass
class Parts:
    warehouse: Warehouse
    ledger: SyncLedger
    thred: ThredSettings
    settings: config.PipelineSettings


def _specs(args: argparse.Namespace) -> list[EntitySpec]:
    from thred_pipeline.sync.engine import iter_specs

    return iter_specs(args.entity or None)


async def _check_thred(settings: ThredSettings) -> None:
    from thred_pipeline.thred.client import ThredClient

    async with ThredClient(settings) as client:
        await client.check_connection()


def open_parts(args: argparse.Namespace) -> Parts:
    """Settings, warehouse, ledger and Thred, each checked before any record is touched.

    Raises ``config.SettingsError`` or ``ThredConfigError`` (exit 2) naming the setting.
    """
    settings = config.PipelineSettings.from_env()
    thred = settings.thred_settings()
    warehouse = config.open_warehouse(settings.warehouse_url, _specs(args))
    ledger = config.open_ledger(settings.ledger_url)
    from thred_pipeline.thred import loop as event_loop

    event_loop.run(_check_thred(thred))  # wrong key, not Thred, unreachable: stop here
    return Parts(warehouse, ledger, thred, settings)


# -- commands ---------------------------------------------------------------------------------


def cmd_sync(args: argparse.Namespace) -> int:
    """Run the engine without Dagster (diagnosis, scripting); same code the assets call."""
    from thred_pipeline.core.records import TimeWindow
    from thred_pipeline.sync.engine import SyncEngine, SyncOptions

    window = TimeWindow(*_window(args))
    parts = open_parts(args)
    options = SyncOptions(
        lookback=timedelta(hours=parts.settings.lookback_hours),
        concurrency=parts.settings.concurrency,
        full_refresh=args.full_refresh,
    )
    specs = _specs(args)
    totals: Counter[str] = Counter()
    with sync_progress(len(specs)) as progress:
        warehouse = counting_warehouse(parts.warehouse.engine, progress)
        engine = SyncEngine(warehouse, parts.ledger, parts.thred, options)
        for spec in specs:
            progress.start(spec.name)
            result = engine.sync_entity(spec, window)
            progress.finish()
            print(f"{spec.name:18s} {json.dumps(result.metrics())}", flush=True)
            totals.update(result.counts)
    attention = {word: totals[outcome] for outcome, word in ATTENTION.items() if totals[outcome]}
    if attention:
        counts = ", ".join(f"{n} {word}" for word, n in attention.items())
        say(
            f"sync completed, {sum(attention.values())} records need attention ({counts}); "
            f"see `{PROG} quarantine list`"
        )
        return EXIT_ATTENTION
    return EXIT_OK


def _env_cents() -> int | None:
    """THRED_RECONCILE_ERROR_ABOVE_CENTS, read only when reconcile runs."""
    value = os.environ.get("THRED_RECONCILE_ERROR_ABOVE_CENTS", "").strip()
    if not value or value == "-1":
        return None
    try:
        return int(value)
    except ValueError:
        say(f"THRED_RECONCILE_ERROR_ABOVE_CENTS={value!r} is not a whole number of minor units")
        raise SystemExit(EXIT_CONFIG) from None


def cmd_reconcile(args: argparse.Namespace) -> int:
    """The books (default) or, with ``--start``, the window checks: exit 0 / 3 / 1."""
    from thred_pipeline.core.records import TimeWindow
    from thred_pipeline.reconcile import BooksReconciler, SeverityPolicy, WindowReconciler
    from thred_pipeline.reconcile.report import EXIT_EQUAL, EXIT_EXPLAINED_ONLY, EXIT_UNEXPLAINED

    error_above = args.error_above_cents if args.error_above_cents is not None else _env_cents()
    parts = open_parts(args)
    policy = SeverityPolicy(error_above)
    if args.start is None:
        report = BooksReconciler(parts.warehouse, parts.ledger, parts.thred, policy=policy).run(
            businesses=args.business or None, as_of=args.as_of
        )
        print(report.to_json() if args.json else report.render_text())
        return report.exit_code
    window = TimeWindow(*_window(args))
    reconciler = WindowReconciler(parts.warehouse, parts.ledger, parts.thred)
    severities = set()
    for spec in _specs(args):
        check = reconciler.check(spec.name, window)
        flag = "PASS" if check.passed else ("WARN" if check.severity == "WARN" else "FAIL")
        print(f"{flag} {spec.name}: {check.summary()}")
        for row in check.differences.head(20).to_dict("records"):
            print(f"     {json.dumps(row, default=str)}")
        severities.add(check.severity)
    if "ERROR" in severities:
        return EXIT_UNEXPLAINED
    return EXIT_EXPLAINED_ONLY if "WARN" in severities else EXIT_EQUAL


def _statuses(args: argparse.Namespace) -> list[Status] | None:
    from thred_pipeline.core.records import Status

    return [Status(value) for value in args.status] if args.status else None


def cmd_status(args: argparse.Namespace) -> int:
    """Per business and entity, where the records stand; the last run and books verdict."""
    from thred_pipeline.cli.tables import render_status
    from thred_pipeline.status import build_report

    ledger = config.open_ledger(config.PipelineSettings.from_env().ledger_url, must_exist=True)
    report = build_report(ledger, businesses=args.business, entities=args.entity)
    if args.json:
        print(report.to_json())
    else:
        render_status(report, sys.stdout)
    return EXIT_OK


def cmd_quarantine_list(args: argparse.Namespace) -> int:
    from thred_pipeline.cli.tables import render_attention
    from thred_pipeline.status import attention_rows, row_dict, write_csv

    ledger = config.open_ledger(config.PipelineSettings.from_env().ledger_url, must_exist=True)
    rows = attention_rows(
        ledger, businesses=args.business, entities=args.entity, statuses=_statuses(args)
    )
    if args.format == "json":
        print(json.dumps([row_dict(row) for row in rows], indent=2))
    elif args.format == "csv":
        write_csv(rows, sys.stdout)
    else:
        render_attention(rows, sys.stdout)
    return EXIT_OK


def cmd_quarantine_retry(args: argparse.Namespace) -> int:
    ledger = config.open_ledger(config.PipelineSettings.from_env().ledger_url, must_exist=True)
    released = 0
    for entity in args.entity or [None]:
        released += ledger.release_for_retry(entity, args.ids or None)
    print(f"{released} rejected records will be re-sent on the next run")
    return EXIT_OK


def cmd_ddl(args: argparse.Namespace) -> int:
    from thred_pipeline.warehouse.ddl import render_ddl

    print(render_ddl(args.dialect))
    return EXIT_OK
