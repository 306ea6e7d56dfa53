"""Exit codes, and every failure as one line on stderr: no traceback (unless ``--debug``), no
key and no database password."""

from __future__ import annotations

import os
import sys

from thred_pipeline import config

PROG = "thred-pipeline"

EXIT_OK = 0
EXIT_FAILURE = 1  # unexpected failure; for reconcile also: a check failed
EXIT_CONFIG = 2  # usage or configuration error (argparse uses 2 as well)
EXIT_ATTENTION = 3  # sync completed with records that need attention
EXIT_INTERRUPTED = 130  # Ctrl-C
EXIT_BROKEN_PIPE = 141  # stdout closed by its reader (as a shell reports SIGPIPE)


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


def failure(exc: BaseException, debug: bool, prog: str) -> int:
    """Map an exception to its one line and exit code (see ``thred_pipeline.cli``)."""
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
