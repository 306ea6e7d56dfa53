"""The ``thred-dev`` command: the demo, the demo warehouse's seed and the local Thred sandbox.

Development tools, installed beside the product (``pip install -e ./devtools``), never in
its images. Exit codes and failure lines follow ``thred-pipeline`` (docs/cli.md).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from thred_devtools.sandbox.config import (
    SandboxConfig,
    add_fault_arguments,
    fault_config_from_args,
)
from thred_devtools.sandbox.server import serve
from thred_devtools.seed import SeedConfig, seed_warehouse
from thred_pipeline import config
from thred_pipeline.cli import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    ArgumentParser,
    common_options,
    port_number,
    positive_int,
    run,
    say,
)

PROG = "thred-dev"


def cmd_demo(args: argparse.Namespace) -> int:
    # The demo brings Dagster and pandas (~1.7 s of start-up); `thred-dev sandbox`, which
    # benchmarks and tests start often, should not pay for them.
    from thred_devtools.demo import run_demo

    try:
        report = run_demo(Path(args.home), port=args.port, reseed=args.reseed)
    except KeyboardInterrupt:
        say("interrupted: the demo stopped (sandbox stopped, backfill canceled)", prog=PROG)
        return EXIT_INTERRUPTED
    return EXIT_OK if report.ok else EXIT_FAILURE


def cmd_seed(args: argparse.Namespace) -> int:
    url = config.database_url(
        args.warehouse_url or config.PipelineSettings.from_env().warehouse_url
    )
    try:
        shape = SeedConfig(seed=args.seed, businesses=args.businesses, days=args.days)
    except ValidationError as exc:
        first = exc.errors()[0]
        option = str(first["loc"][0]) if first["loc"] else "seed"
        args.parser.error(f"argument --{option}: {first['msg'].lower()}")
    counts = seed_warehouse(url, shape)
    for table, n in counts.items():
        print(f"{table:28s} {n:6d}")
    return EXIT_OK


def cmd_sandbox(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir) if args.data_dir else None
    try:
        faults = fault_config_from_args(args)
    except ValueError as exc:
        args.parser.error(str(exc))
    serve(SandboxConfig(data_dir=data_dir, faults=faults), host=args.host, port=args.port)
    return EXIT_OK


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog=PROG,
        description="Development tools for thred-pipeline: demo, seed, sandbox.",
        parents=[common_options(suppress=False)],
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    common = common_options(suppress=True)

    def command(name: str, func: Callable[[argparse.Namespace], int], **kw: Any) -> Any:
        p = sub.add_parser(name, parents=[common], **kw)
        p.set_defaults(func=func, parser=p)
        return p

    demo = command(
        "demo",
        cmd_demo,
        help="seed, start the sandbox, sync every day as a Dagster backfill, check the books",
    )
    demo.add_argument(
        "--home",
        default=str(config.thred_home() / "demo"),
        help="the demo's folder: warehouse, ledger, sandbox state, DAGSTER_HOME "
        "(default: $THRED_HOME/demo)",
    )
    demo.add_argument(
        "--port",
        type=port_number,
        help=f"the sandbox's port (default: {config.DEFAULT_SANDBOX_PORT}, or a free port when "
        "that one is busy; a port given here must be free)",
    )
    demo.add_argument("--reseed", action="store_true", help="regenerate the demo warehouse")

    seed = command("seed", cmd_seed, help="generate the deterministic demo warehouse")
    seed.add_argument(
        "--warehouse-url", help="where to write it (default: THRED_WAREHOUSE_URL, created if new)"
    )
    seed.add_argument("--seed", type=int, default=7, help="random seed (default: 7)")
    seed.add_argument(
        "--businesses", type=positive_int, default=3, help="how many businesses (default: 3)"
    )
    seed.add_argument(
        "--days", type=positive_int, default=30, help="how many days of activity (default: 30)"
    )

    sandbox = command("sandbox", cmd_sandbox, help="run the local Thred-compatible API server")
    sandbox.add_argument("--host", default="127.0.0.1", help="address to listen on")
    sandbox.add_argument(
        "--port",
        type=port_number,
        default=config.DEFAULT_SANDBOX_PORT,
        help=f"port to listen on (default: {config.DEFAULT_SANDBOX_PORT})",
    )
    sandbox.add_argument("--data-dir", help="persist state here (default: in memory)")
    add_fault_arguments(sandbox)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    return run(build_parser().parse_args(words), prog=PROG)


if __name__ == "__main__":
    sys.exit(main())
