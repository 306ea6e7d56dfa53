"""Run a console command under cProfile with a CPU clock, then write the profile.

``python -m benchmarks.profiled <out.prof> <command> [args...]`` runs the installed console
script ``<command>`` (``thred-pipeline``, ``thred-dev``) in this process. ``python -m
cProfile`` would time with the wall clock, so a server's idle event loop would look like its
busiest function; ``time.process_time`` charges only CPU. Start-up (imports) is included: it
is part of what a command costs.
"""

from __future__ import annotations

import cProfile
import sys
import time
from importlib.metadata import entry_points


def main(argv: list[str]) -> int:
    out, command, *args = argv
    (entry,) = entry_points(group="console_scripts", name=command)
    sys.argv = [command, *args]
    profiler = cProfile.Profile(time.process_time)
    code: object = 0
    profiler.enable()
    try:
        code = entry.load()()
    except SystemExit as exc:
        code = exc.code
    finally:
        profiler.disable()
        profiler.dump_stats(out)
    return code if isinstance(code, int) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
