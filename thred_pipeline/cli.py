"""The ``thred-pipeline`` command: sync, status, reconcile, quarantine, DDL.

(The demo, the seed and the sandbox are development tools: ``thred-dev``, in ``devtools/``.)

Exit codes (docs/cli.md has the full table):

- 0: done; for ``sync``, every record synced or unchanged;
- 1: an unexpected failure (one line; ``--debug`` shows the traceback), or for
  ``reconcile`` a failed check;
- 2: a usage or configuration error: bad arguments, a wrong setting, a warehouse, ledger
  or Thred that cannot be used. Nothing was synced;
- 3: ``sync`` completed, but some records are quarantined, deferred, drifted or uncertain.

Every failure is one line on stderr that names what to fix, never a traceback (unless
``--debug``) and never a key or a database password. A mistyped choice (``--entity invoice``)
names the close match.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import json
import logging
import os
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from thred_pipeline import config

if TYPE_CHECKING:
    from thred_pipeline.core.records import SourceRecord, Status, TimeWindow
    from thred_pipeline.entities import EntitySpec
    from thred_pipeline.sync.ledger import SyncLedger
    from thred_pipeline.thred.settings import ThredSettings
    from thred_pipeline.warehouse.extract import Warehouse

PROG = "thred-pipeline"
LIST_STATUSES = ("rejected", "deferred", "drift", "unknown", "pending")

EXIT_OK = 0
EXIT_FAILURE = 1  # unexpected failure; for reconcile also: a check failed
EXIT_CONFIG = 2  # usage or configuration error (argparse uses 2 as well)
EXIT_ATTENTION = 3  # sync completed with records that need attention
EXIT_INTERRUPTED = 130  # Ctrl-C
EXIT_BROKEN_PIPE = 141  # stdout closed by its reader (as a shell reports SIGPIPE)

# Run outcomes (EntityRunResult.counts) that mean "a record is not in Thred as it should be",
# with the word an operator reads.
ATTENTION = {
    "rejected": "quarantined",
    "deferred": "deferred",
    "drift": "drifted",
    "unknown": "uncertain",
}


_INVALID_CHOICE = re.compile(
    r"invalid choice: (?P<value>'[^']*'|\S+) \(choose from (?P<names>.*)\)$"
)


def with_close_match(message: str) -> str:
    """argparse's "invalid choice" message with the closest valid name, if one is close."""
    found = _INVALID_CHOICE.search(message)
    if found is None:
        return message
    value = found["value"].strip("'")
    names = [name.strip().strip("'") for name in found["names"].split(",")]
    close = difflib.get_close_matches(value, names, n=1, cutoff=0.6)
    if not close:
        return message
    hint = f"invalid choice: {found['value']}; did you mean {close[0]!r}?"
    return message[: found.start()] + hint + message[found.start("value") + len(found["value"]) :]


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the usage text is behind ``--help``), and a
    mistyped choice names the close match."""

    def error(self, message: str) -> NoReturn:
        message = with_close_match(message)
        self.exit(EXIT_CONFIG, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# -- argument types -----------------------------------------------------------------------------


def _moment(text: str) -> datetime:
    """An ISO date or date-time; naive values are UTC, offsets are converted to UTC."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO date or date-time (e.g. 2025-01-31 or 2025-01-31T06:00)"
        ) from None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def port_number(text: str) -> int:
    value = positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (1-65535)")
    return value


def _entity_names() -> list[str]:
    from thred_pipeline import entities

    return [spec.name for spec in entities.sync_order()]


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
    asyncio.run(_check_thred(thred))  # wrong key, not Thred, unreachable: stop here
    return Parts(warehouse, ledger, thred, settings)


# -- progress during sync ---------------------------------------------------------------------


class SyncProgress:
    """What ``sync`` shows on a terminal: entities done, and the current entity's records.

    Drawn by rich on stderr, only when stderr is a terminal; elsewhere it only counts. A chunk
    of records read for the current entity counts once the engine asks for the next chunk, or
    the entity finishes: by then the chunk has been processed.
    """

    def __init__(self, progress: Any = None, entities: int = 0) -> None:
        self._progress = progress
        self._overall = (
            progress.add_task("entities", total=entities, records="") if progress else None
        )
        self._task: Any = None
        self._entity = ""
        self._pending = 0
        self.records = 0  # processed records of the current entity

    def start(self, entity: str) -> None:
        self._entity, self._pending, self.records = entity, 0, 0
        if self._progress is not None:
            self._task = self._progress.add_task(entity, total=None, records=0)
            self._progress.refresh()

    def handed(self, entity: str, records: int) -> None:
        """The warehouse handed ``records`` of ``entity`` to the engine."""
        self._flush()
        self._pending = records if entity == self._entity else 0

    def finish(self) -> None:
        self._flush()
        if self._progress is not None and self._task is not None:
            done = max(self.records, 1)
            self._progress.update(self._task, total=done, completed=done)
            self._progress.update(self._overall, advance=1)
            self._progress.refresh()  # each entity is drawn at least once, however fast
        self._task = None

    def _flush(self) -> None:
        if not self._pending:
            return
        self.records += self._pending
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, advance=self._pending, records=self.records)
        self._pending = 0


@contextmanager
def sync_progress(entities: int) -> Iterator[SyncProgress]:
    """A progress display on stderr when it is a terminal (rich), else a silent counter."""
    if not sys.stderr.isatty():
        yield SyncProgress()
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description:18s}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[records]} records"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
        redirect_stdout=sys.stdout.isatty(),
        redirect_stderr=True,
    )
    with progress:
        # Log lines (stderr) go through the display instead of tearing it.
        moved = [
            h
            for h in logging.getLogger().handlers
            if type(h) is logging.StreamHandler and h.stream is sys.__stderr__
        ]
        for handler in moved:
            handler.setStream(sys.stderr)
        try:
            yield SyncProgress(progress, entities)
        finally:
            for handler in moved:
                handler.setStream(sys.__stderr__)


def counting_warehouse(engine: Any, progress: SyncProgress) -> Warehouse:
    """A warehouse that tells ``progress`` about every chunk of records it hands out."""
    from thred_pipeline.warehouse.extract import Warehouse

    class CountingWarehouse(Warehouse):
        def fetch(self, spec: Any, source_ids: Sequence[str]) -> list[SourceRecord]:
            found = super().fetch(spec, source_ids)
            progress.handed(spec.name, len(found))
            return found

        def iter_changed(self, spec: Any, window: TimeWindow, **kw: Any) -> Any:
            for chunk in super().iter_changed(spec, window, **kw):
                progress.handed(spec.name, len(chunk))
                yield chunk

    return CountingWarehouse(engine)


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


def cmd_reconcile(args: argparse.Namespace) -> int:
    """The books (default) or, with ``--start``, the window checks: exit 0 / 3 / 1."""
    from thred_pipeline.core.records import TimeWindow
    from thred_pipeline.reconcile import BooksReconciler, SeverityPolicy, WindowReconciler
    from thred_pipeline.reconcile.report import EXIT_EQUAL, EXIT_EXPLAINED_ONLY, EXIT_UNEXPLAINED

    parts = open_parts(args)
    policy = SeverityPolicy(args.error_above_cents)
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
    from thred_pipeline.status import build_report, render_status

    ledger = config.open_ledger(config.PipelineSettings.from_env().ledger_url, must_exist=True)
    report = build_report(ledger, businesses=args.business, entities=args.entity)
    if args.json:
        print(report.to_json())
    else:
        render_status(report, sys.stdout)
    return EXIT_OK


def cmd_quarantine_list(args: argparse.Namespace) -> int:
    from thred_pipeline.status import attention_rows, render_attention, row_dict, write_csv

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


# -- parser -----------------------------------------------------------------------------------


def common_options(suppress: bool) -> ArgumentParser:
    """-v / --debug, accepted before and after the command name."""
    default: Any = argparse.SUPPRESS if suppress else False
    common = ArgumentParser(add_help=False)
    common.add_argument(
        "-v", "--verbose", action="store_true", default=default, help="log at DEBUG"
    )
    common.add_argument(
        "--debug",
        action="store_true",
        default=default,
        help="show the traceback of an unexpected failure (and log at DEBUG)",
    )
    return common


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog=PROG,
        description="Sync a platform warehouse into Thred. Exit codes: see docs/cli.md.",
        parents=[common_options(suppress=False)],
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    common = common_options(suppress=True)
    entity_names = _entity_names()

    def command(name: str, func: Callable[[argparse.Namespace], int] | None, **kw: Any) -> Any:
        p = sub.add_parser(name, parents=[common], **kw)
        if func is not None:
            p.set_defaults(func=func, parser=p)
        return p

    def entity_option(p: Any, what: str) -> None:
        p.add_argument(
            "--entity",
            action="append",
            choices=entity_names,
            metavar="ENTITY",
            help=f"{what} (repeatable): {', '.join(entity_names)}",
        )

    def business_option(p: Any, what: str) -> None:
        p.add_argument("--business", action="append", metavar="ID", help=f"{what} (repeatable)")

    for name, func, help_text in (
        ("sync", cmd_sync, "sync a window without Dagster"),
        (
            "reconcile",
            cmd_reconcile,
            "compare Thred's books with the warehouse (exit 0 equal, 3 explained, 1 not)",
        ),
    ):
        p = command(name, func, help=help_text)
        p.add_argument(
            "--start",
            required=name == "sync",
            type=_moment,
            help="window start, ISO date or datetime (UTC)"
            + ("; reconcile: check only this window's records" if name == "reconcile" else ""),
        )
        p.add_argument("--end", type=_moment, help="window end (default: start + 1 day)")
        entity_option(p, "limit to these entities")
        if name == "reconcile":
            p.add_argument(
                "--as-of",
                type=_moment,
                help="books as of this moment (default: today 00:00 UTC, the end of the last "
                "nightly window); rows changed later are reported as in flight",
            )
            business_option(p, "only this warehouse business id")
            p.add_argument(
                "--error-above-cents",
                type=int,
                default=_env_cents(),
                help="explained differences above this much money at stake in one business "
                "are errors (default: THRED_RECONCILE_ERROR_ABOVE_CENTS, else never)",
            )
            p.add_argument("--json", action="store_true", help="print every difference as JSON")
        if name == "sync":
            p.add_argument(
                "--full-refresh",
                action="store_true",
                help="re-send every record regardless of the ledger (idempotent)",
            )

    status = command(
        "status",
        cmd_status,
        help="per business and entity: synced, pending, deferred, quarantined, drifted; "
        "the last run and the books verdict",
    )
    business_option(status, "only this warehouse business id")
    entity_option(status, "only these entities")
    status.add_argument("--json", action="store_true", help="print the report as JSON")

    quarantine = command("quarantine", None, help="list or retry records that need attention")
    actions = quarantine.add_subparsers(
        dest="action", required=True, parser_class=ArgumentParser, metavar="ACTION"
    )
    listing = actions.add_parser(
        "list",
        parents=[common],
        help="list the records that need attention (default: quarantined, drifted, deferred, "
        "uncertain)",
    )
    listing.set_defaults(func=cmd_quarantine_list, parser=listing)
    business_option(listing, "only this warehouse business id")
    entity_option(listing, "only these entities")
    listing.add_argument(
        "--status",
        action="append",
        choices=LIST_STATUSES,
        metavar="STATUS",
        help="only records in this ledger status (repeatable): "
        "rejected (quarantined), deferred, drift (drifted), unknown (uncertain), pending "
        "(default: all but pending)",
    )
    listing.add_argument(
        "--format",
        choices=("table", "json", "csv"),
        default="table",
        help="output format (default: table)",
    )
    retry = actions.add_parser(
        "retry",
        parents=[common],
        help="release quarantined (rejected) records so the next run re-sends them",
    )
    retry.set_defaults(func=cmd_quarantine_retry, parser=retry)
    entity_option(retry, "only these entities")
    retry.add_argument("ids", nargs="*", help="source ids to retry (default: all)")

    ddl = command("warehouse-ddl", cmd_ddl, help="print the warehouse source contract as DDL")
    ddl.add_argument(
        "--dialect",
        choices=("postgresql", "sqlite"),
        default="postgresql",
        help="SQL dialect (default: postgresql)",
    )
    return parser


def _env_cents() -> int | None:
    value = os.environ.get("THRED_RECONCILE_ERROR_ABOVE_CENTS", "").strip()
    if not value or value == "-1":
        return None
    try:
        return int(value)
    except ValueError:
        say(f"THRED_RECONCILE_ERROR_ABOVE_CENTS={value!r} is not a whole number of minor units")
        raise SystemExit(EXIT_CONFIG) from None


# -- errors -----------------------------------------------------------------------------------


def say(line: str, prog: str = PROG) -> None:
    print(f"{prog}: {line}", file=sys.stderr, flush=True)


def _secrets() -> list[str]:
    """Values that must never be printed: the key and any database password."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    found = [os.environ.get("THRED_API_KEY", "")]
    for name in (config.WAREHOUSE_URL, config.LEDGER_URL):
        try:
            password = make_url(config.database_url(os.environ.get(name, ""))).password
        except (ArgumentError, ValueError):  # not a URL: masked_url hides its password
            password = None
        found.append(str(password) if password else "")
    return sorted((s for s in found if len(s) >= 4), key=len, reverse=True)


def _scrub(text: str) -> str:
    line = " ".join(text.split())
    for secret in _secrets():
        line = line.replace(secret, "***")
    return line[:1000]


def _failure(exc: BaseException, debug: bool, prog: str) -> int:
    """Map an exception to its one line and exit code (see the module docstring)."""
    from sqlalchemy.exc import InterfaceError, OperationalError

    from thred_pipeline.thred.errors import ThredConfigError, ThredError

    if isinstance(exc, config.SettingsError | ThredConfigError):
        say(f"configuration error: {_scrub(str(exc))}", prog=prog)
        return EXIT_CONFIG
    if isinstance(exc, OperationalError | InterfaceError):
        orig = getattr(exc, "orig", None) or exc
        reason = (str(orig).strip().splitlines() or [type(exc).__name__])[0]
        say(
            f"configuration error: database error ({_scrub(reason)}); check "
            f"{config.WAREHOUSE_URL} and {config.LEDGER_URL}",
            prog=prog,
        )
        return EXIT_CONFIG
    if debug:
        raise exc
    what = _scrub(str(exc))
    if isinstance(exc, ThredError):  # escaped the engine: Thred kept failing (5xx, ...)
        what += " (Thred itself failed; rerun later)"
    say(
        f"unexpected failure: {type(exc).__name__}: {what or 'no message'}; "
        "rerun with --debug for the traceback",
        prog=prog,
    )
    return EXIT_FAILURE


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    return run(build_parser().parse_args(words))


def run(args: argparse.Namespace, prog: str = PROG) -> int:
    """Run a parsed command: logging set up, every failure one line and an exit code."""
    debug = bool(args.debug)
    logging.basicConfig(
        level=logging.DEBUG if (args.verbose or debug) else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("httpx", "httpcore", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        say("interrupted", prog=prog)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `thred-pipeline status | head`: the reader left; say nothing
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except Exception as exc:  # every failure becomes one line and an exit code
        return _failure(exc, debug, prog)


if __name__ == "__main__":
    sys.exit(main())
