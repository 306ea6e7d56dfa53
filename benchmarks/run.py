"""``make bench``: measure issue 8's figures beside their anchors and write docs/benchmarks.md.

Run on a quiet machine: ``make bench`` (about 15 minutes on 2 cores), or
``BENCH_QUICK=1 make bench`` for a smoke run of a few minutes whose figures mean nothing.
``BENCH_OUT=path`` writes the report elsewhere; ``BENCH_ONLY=B1,B3`` runs some figures
only; every size in ``figures.Sizes`` is a ``BENCH_<NAME>`` variable.

Each figure runs its subject and its anchor one after the other in this run, every program
in its own process (see ``procs.py``), so a figure and its anchor see the same machine.
A figure that fails is reported as failed (and the command exits 1); the others still run.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from benchmarks import figures, report
from benchmarks.figures import Results, Row, Sizes

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "benchmarks.md"

Figure = Callable[[Sizes, Path, Results], None]
FIGURES: dict[str, Figure] = {
    "B1": figures.b1_latency,
    "B2": figures.b2_cpu_b4,  # also CPU per record and B4 (the rerun needs B2's sandbox)
    "B3": figures.b3_rate_limit,
    "B5": figures.b5_memory,
    "B6": figures.b6_dagster,
    "profile": figures.profiles,
}


def selected() -> dict[str, Figure]:
    only = os.environ.get("BENCH_ONLY")
    if not only:
        return FIGURES
    wanted = {name.strip() for name in only.split(",")}
    return {name: fn for name, fn in FIGURES.items() if name in wanted}


def main() -> int:
    sizes = Sizes.from_env()
    out_path = Path(os.environ.get("BENCH_OUT", OUT))
    results = Results()
    failed: list[str] = []
    load_before = os.getloadavg()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="thred-bench-") as folder:
        for name, figure in selected().items():
            tmp = Path(folder) / name
            tmp.mkdir()
            print(f"[bench] {name} ...", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            try:
                figure(sizes, tmp, results)
            except Exception as exc:
                failed.append(name)
                traceback.print_exc()
                first = str(exc).splitlines()[0] if str(exc) else ""
                results.details.append(f"{name} FAILED: {type(exc).__name__}: {first}")
                results.rows.append(
                    Row(name, "failed (see the details)", math.nan, math.nan, "", "", False)
                )
            print(f"[bench] {name} done in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    text = report.render(
        results, sizes, REPO, load_before, os.getloadavg(), time.perf_counter() - started
    )
    out_path.write_text(text)
    print(text)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
