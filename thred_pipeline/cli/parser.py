"""The command line: argument types, one-line usage errors with the close match, and one small
builder per command."""

from __future__ import annotations

import argparse
import difflib
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NoReturn

from thred_pipeline.cli import commands
from thred_pipeline.cli.failures import EXIT_CONFIG, PROG

LIST_STATUSES = ("rejected", "deferred", "drift", "unknown", "pending")

Command = Callable[[argparse.Namespace], int]

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


# -- the parser -------------------------------------------------------------------------------


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


class _Commands:
    """Adds commands to a level of subcommands, each with the common options."""

    def __init__(self, sub: Any, common: ArgumentParser, entity_names: list[str]) -> None:
        self.sub = sub  # argparse's subparsers action
        self.common = common
        self.entity_names = entity_names

    def add(self, name: str, func: Command | None, **kw: Any) -> ArgumentParser:
        p: ArgumentParser = self.sub.add_parser(name, parents=[self.common], **kw)
        if func is not None:
            p.set_defaults(func=func, parser=p)
        return p

    def nested(self, p: ArgumentParser, dest: str) -> _Commands:
        """The subcommands of command ``p`` (e.g. ``quarantine list``)."""
        sub = p.add_subparsers(
            dest=dest, required=True, parser_class=ArgumentParser, metavar="ACTION"
        )
        return _Commands(sub, self.common, self.entity_names)

    def add_filtered(self, name: str, func: Command, help_text: str) -> ArgumentParser:
        """A command that reads the ledger of some businesses and entities."""
        p = self.add(name, func, help=help_text)
        _business_option(p, "only this warehouse business id")
        self.entity_option(p, "only these entities")
        return p

    def entity_option(self, p: ArgumentParser, what: str) -> None:
        p.add_argument(
            "--entity",
            action="append",
            choices=self.entity_names,
            metavar="ENTITY",
            help=f"{what} (repeatable): {', '.join(self.entity_names)}",
        )


def _business_option(p: ArgumentParser, what: str) -> None:
    p.add_argument("--business", action="append", metavar="ID", help=f"{what} (repeatable)")


def _window_options(cmds: _Commands, p: ArgumentParser, *, required: bool, note: str = "") -> None:
    p.add_argument(
        "--start",
        required=required,
        type=_moment,
        help="window start, ISO date or datetime (UTC)" + note,
    )
    p.add_argument("--end", type=_moment, help="window end (default: start + 1 day)")
    cmds.entity_option(p, "limit to these entities")


def _add_sync(cmds: _Commands) -> None:
    p = cmds.add("sync", commands.cmd_sync, help="sync a window without Dagster")
    _window_options(cmds, p, required=True)
    p.add_argument(
        "--full-refresh",
        action="store_true",
        help="re-send every record regardless of the ledger (idempotent)",
    )


def _add_reconcile(cmds: _Commands) -> None:
    p = cmds.add(
        "reconcile",
        commands.cmd_reconcile,
        help="compare Thred's books with the warehouse (exit 0 equal, 3 explained, 1 not)",
    )
    note = "; reconcile: check only this window's records"
    _window_options(cmds, p, required=False, note=note)
    p.add_argument(
        "--as-of",
        type=_moment,
        help="books as of this moment (default: today 00:00 UTC, the end of the last "
        "nightly window); rows changed later are reported as in flight",
    )
    _business_option(p, "only this warehouse business id")
    p.add_argument(
        "--error-above-cents",
        type=int,
        default=None,  # read by cmd_reconcile, so a bad env value fails only reconcile
        help="explained differences above this much money at stake in one business "
        "are errors (default: THRED_RECONCILE_ERROR_ABOVE_CENTS, else never)",
    )
    p.add_argument("--json", action="store_true", help="print every difference as JSON")


def _add_status(cmds: _Commands) -> None:
    p = cmds.add_filtered(
        "status",
        commands.cmd_status,
        "per business and entity: synced, pending, deferred, quarantined, drifted; "
        "the last run and the books verdict",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def _add_quarantine(cmds: _Commands) -> None:
    quarantine = cmds.add("quarantine", None, help="list or retry records that need attention")
    actions = cmds.nested(quarantine, "action")
    listing = actions.add_filtered(
        "list",
        commands.cmd_quarantine_list,
        "list the records that need attention (default: quarantined, drifted, deferred, uncertain)",
    )
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
    retry = actions.add(
        "retry",
        commands.cmd_quarantine_retry,
        help="release quarantined (rejected) records so the next run re-sends them",
    )
    actions.entity_option(retry, "only these entities")
    retry.add_argument("ids", nargs="*", help="source ids to retry (default: all)")


def _add_ddl(cmds: _Commands) -> None:
    p = cmds.add(
        "warehouse-ddl", commands.cmd_ddl, help="print the warehouse source contract as DDL"
    )
    p.add_argument(
        "--dialect",
        choices=("postgresql", "sqlite"),
        default="postgresql",
        help="SQL dialect (default: postgresql)",
    )


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog=PROG,
        description="Sync a platform warehouse into Thred. Exit codes: see docs/cli.md.",
        parents=[common_options(suppress=False)],
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    cmds = _Commands(sub, common_options(suppress=True), _entity_names())
    for add in (_add_sync, _add_reconcile, _add_status, _add_quarantine, _add_ddl):
        add(cmds)
    return parser
