"""The ``thred-pipeline`` command: demo, seed, sandbox, sync, reconcile, quarantine, DDL.

Exit codes (docs/cli.md has the full table):

- 0: done; for ``sync``, every record synced or unchanged;
- 1: an unexpected failure (one line; ``--debug`` shows the traceback), or for
  ``reconcile`` a failed check;
- 2: a usage or configuration error: bad arguments, a wrong setting, a warehouse, ledger
  or Thred that cannot be used. Nothing was synced;
- 3: ``sync`` completed, but some records are quarantined, deferred, drifted or uncertain.

Every failure is one line on stderr that names what to fix, never a traceback (unless
``--debug``) and never a key or a database password.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from thred_pipeline import config

if TYPE_CHECKING:
    from thred_pipeline.entities import EntitySpec
    from thred_pipeline.sync.ledger import SyncLedger
    from thred_pipeline.thred.settings import ThredSettings
    from thred_pipeline.warehouse.extract import Warehouse

PROG = "thred-pipeline"

EXIT_OK = 0
EXIT_FAILURE = 1  # unexpected failure; for reconcile also: a check failed
EXIT_CONFIG = 2  # usage or configuration error (argparse uses 2 as well)
EXIT_ATTENTION = 3  # sync completed with records that need attention

# Run outcomes (EntityRunResult.counts) that mean "a record is not in Thred as it should be",
# with the word an operator reads.
ATTENTION = {
    "rejected": "quarantined",
    "deferred": "deferred",
    "drift": "drifted",
    "unknown": "uncertain",
}


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the usage text is behind ``--help``)."""

    def error(self, message: str) -> NoReturn:
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


# -- commands ---------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from thred_pipeline.demo import run_demo

    report = run_demo(Path(args.home), port=args.port, reseed=args.reseed)
    return EXIT_OK if report.ok else EXIT_FAILURE


def cmd_seed(args: argparse.Namespace) -> int:
    from thred_pipeline.warehouse.seed import SeedConfig, seed_warehouse

    url = config.database_url(
        args.warehouse_url or config.PipelineSettings.from_env().warehouse_url
    )
    counts = seed_warehouse(
        url, SeedConfig(seed=args.seed, businesses=args.businesses, days=args.days)
    )
    for table, n in counts.items():
        print(f"{table:28s} {n:6d}")
    return EXIT_OK


def cmd_sandbox(args: argparse.Namespace) -> int:
    from thred_pipeline.sandbox.config import SandboxConfig, fault_config_from_args
    from thred_pipeline.sandbox.server import serve

    data_dir = Path(args.data_dir) if args.data_dir else None
    try:
        faults = fault_config_from_args(args)
    except ValueError as exc:
        args.parser.error(str(exc))
    serve(SandboxConfig(data_dir=data_dir, faults=faults), host=args.host, port=args.port)
    return EXIT_OK


def cmd_sync(args: argparse.Namespace) -> int:
    """Run the engine without Dagster (diagnosis, scripting); same code the assets call."""
    from thred_pipeline.sync.engine import SyncEngine, SyncOptions
    from thred_pipeline.sync.records import TimeWindow

    window = TimeWindow(*_window(args))
    parts = open_parts(args)
    options = SyncOptions(
        lookback=timedelta(hours=parts.settings.lookback_hours),
        concurrency=parts.settings.concurrency,
        full_refresh=args.full_refresh,
    )
    engine = SyncEngine(parts.warehouse, parts.ledger, parts.thred, options)
    totals: Counter[str] = Counter()
    for spec in _specs(args):
        result = engine.sync_entity(spec, window)
        print(f"{spec.name:18s} {json.dumps(result.metrics())}", flush=True)
        totals.update(result.counts)
    attention = {word: totals[outcome] for outcome, word in ATTENTION.items() if totals[outcome]}
    if attention:
        counts = ", ".join(f"{n} {word}" for word, n in attention.items())
        _say(
            f"sync completed, {sum(attention.values())} records need attention ({counts}); "
            f"see `{PROG} quarantine list`"
        )
        return EXIT_ATTENTION
    return EXIT_OK


def cmd_reconcile(args: argparse.Namespace) -> int:
    """The books (default) or, with ``--start``, the window checks: exit 0 / 3 / 1."""
    from thred_pipeline.reconcile import BooksReconciler, SeverityPolicy, WindowReconciler
    from thred_pipeline.reconcile.report import EXIT_EQUAL, EXIT_EXPLAINED_ONLY, EXIT_UNEXPLAINED
    from thred_pipeline.sync.records import TimeWindow

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


def cmd_quarantine(args: argparse.Namespace) -> int:
    from thred_pipeline.sync.records import Status

    ledger = config.open_ledger(config.PipelineSettings.from_env().ledger_url)
    if args.action == "list":
        statuses = (Status.REJECTED, Status.DRIFT, Status.DEFERRED, Status.UNKNOWN)
        n = 0
        for row in ledger.iter_rows(args.entity, statuses=statuses):
            n += 1
            print(
                f"{row.status.value:9s} {row.entity:16s} {row.external_id:32s} "
                f"{row.error_code or '':22s} {row.error_message or ''}"
            )
        print(f"{n} records need attention")
        return EXIT_OK
    released = ledger.release_for_retry(args.entity, args.ids or None)
    print(f"{released} rejected records will be re-sent on the next run")
    return EXIT_OK


def cmd_ddl(args: argparse.Namespace) -> int:
    from thred_pipeline.warehouse.ddl import render_ddl

    print(render_ddl(args.dialect))
    return EXIT_OK


# -- parser -----------------------------------------------------------------------------------


def _common(suppress: bool) -> ArgumentParser:
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


def build_parser(*, sandbox_options: bool = True) -> ArgumentParser:
    """The parser. ``sandbox_options=False`` leaves out the sandbox's fault switches, whose
    import loads the whole sandbox server (most of the start-up time of every command)."""
    parser = ArgumentParser(
        prog=PROG,
        description="Sync a platform warehouse into Thred. Exit codes: see docs/cli.md.",
        parents=[_common(suppress=False)],
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    common = _common(suppress=True)
    entity_names = _entity_names()

    def command(name: str, func: Callable[[argparse.Namespace], int], **kw: Any) -> Any:
        p = sub.add_parser(name, parents=[common], **kw)
        p.set_defaults(func=func, parser=p)
        return p

    demo = command("demo", cmd_demo, help="seed, start the sandbox, sync every day via Dagster")
    demo.add_argument("--home", default=str(config.thred_home() / "demo"))
    demo.add_argument("--port", type=int, default=config.DEFAULT_SANDBOX_PORT)
    demo.add_argument("--reseed", action="store_true", help="regenerate the demo warehouse")

    seed = command("seed", cmd_seed, help="generate the deterministic demo warehouse")
    seed.add_argument("--warehouse-url", help="default: THRED_WAREHOUSE_URL")
    seed.add_argument("--seed", type=int, default=7)
    seed.add_argument("--businesses", type=int, default=3)
    seed.add_argument("--days", type=int, default=30)

    sandbox = command("sandbox", cmd_sandbox, help="run the local Thred-compatible API server")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=config.DEFAULT_SANDBOX_PORT)
    sandbox.add_argument("--data-dir", help="persist state here (default: in memory)")
    if sandbox_options:
        from thred_pipeline.sandbox.config import add_fault_arguments

        add_fault_arguments(sandbox)

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
        p.add_argument(
            "--entity",
            action="append",
            choices=entity_names,
            metavar="ENTITY",
            help=f"limit to these entities (repeatable): {', '.join(entity_names)}",
        )
        if name == "reconcile":
            p.add_argument(
                "--as-of",
                type=_moment,
                help="books as of this moment (default: today 00:00 UTC, the end of the last "
                "nightly window); rows changed later are reported as in flight",
            )
            p.add_argument(
                "--business",
                action="append",
                metavar="ID",
                help="only this warehouse business id (repeatable)",
            )
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

    quarantine = command(
        "quarantine", cmd_quarantine, help="list or retry records that need attention"
    )
    quarantine.add_argument("action", choices=("list", "retry"))
    quarantine.add_argument(
        "--entity", choices=entity_names, metavar="ENTITY", help="only this entity"
    )
    quarantine.add_argument("ids", nargs="*", help="source ids to retry (default: all)")

    ddl = command("warehouse-ddl", cmd_ddl, help="print the warehouse source contract as DDL")
    ddl.add_argument("--dialect", choices=("postgresql", "sqlite"), default="postgresql")
    return parser


def _env_cents() -> int | None:
    value = os.environ.get("THRED_RECONCILE_ERROR_ABOVE_CENTS", "").strip()
    if not value or value == "-1":
        return None
    try:
        return int(value)
    except ValueError:
        _say(f"THRED_RECONCILE_ERROR_ABOVE_CENTS={value!r} is not a whole number of minor units")
        raise SystemExit(EXIT_CONFIG) from None


# -- errors -----------------------------------------------------------------------------------


def _say(line: str) -> None:
    print(f"{PROG}: {line}", file=sys.stderr, flush=True)


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


def _failure(exc: BaseException, debug: bool) -> int:
    """Map an exception to its one line and exit code (see the module docstring)."""
    from sqlalchemy.exc import InterfaceError, OperationalError

    from thred_pipeline.thred.errors import ThredConfigError, ThredError

    if isinstance(exc, config.SettingsError | ThredConfigError):
        _say(f"configuration error: {_scrub(str(exc))}")
        return EXIT_CONFIG
    if isinstance(exc, OperationalError | InterfaceError):
        orig = getattr(exc, "orig", None) or exc
        reason = (str(orig).strip().splitlines() or [type(exc).__name__])[0]
        _say(
            f"configuration error: database error ({_scrub(reason)}); check "
            f"{config.WAREHOUSE_URL} and {config.LEDGER_URL}"
        )
        return EXIT_CONFIG
    if debug:
        raise exc
    what = _scrub(str(exc))
    if isinstance(exc, ThredError):  # escaped the engine: Thred kept failing (5xx, ...)
        what += " (Thred itself failed; rerun later)"
    _say(
        f"unexpected failure: {type(exc).__name__}: {what or 'no message'}; "
        "rerun with --debug for the traceback"
    )
    return EXIT_FAILURE


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(sandbox_options="sandbox" in words).parse_args(words)
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
        _say("interrupted")
        return 130
    except Exception as exc:  # every failure becomes one line and an exit code
        return _failure(exc, debug)


if __name__ == "__main__":
    sys.exit(main())
