"""The ``thred-pipeline`` command: sync, status, reconcile, quarantine, DDL.

(The demo, the seed and the sandbox are development tools: ``thred-dev``, in ``devtools/``; it
reuses the parser pieces and ``run`` exported here.)

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

The package: ``parser`` (arguments), ``commands`` (what each command does), ``progress`` (the
sync's progress display), ``failures`` (exit codes and the one-line failures).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from thred_pipeline.cli.failures import (
    EXIT_ATTENTION,
    EXIT_BROKEN_PIPE,
    EXIT_CONFIG,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    PROG,
    failure,
    say,
)
from thred_pipeline.cli.parser import (
    ArgumentParser,
    build_parser,
    common_options,
    port_number,
    positive_int,
)

__all__ = [
    "EXIT_ATTENTION",
    "EXIT_BROKEN_PIPE",
    "EXIT_CONFIG",
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "PROG",
    "ArgumentParser",
    "build_parser",
    "common_options",
    "main",
    "port_number",
    "positive_int",
    "run",
    "say",
]


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
        return failure(exc, debug, prog)
