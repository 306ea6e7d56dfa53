"""The ``thred-pipeline`` command: demo, seed, sandbox, sync, reconcile, quarantine, DDL."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from thred_pipeline import config
from thred_pipeline.sandbox.config import add_fault_arguments


def _window(args: argparse.Namespace) -> tuple[datetime, datetime]:
    start = datetime.fromisoformat(args.start).replace(tzinfo=UTC)
    end = (
        datetime.fromisoformat(args.end).replace(tzinfo=UTC)
        if args.end
        else start + timedelta(days=1)
    )
    return start, end


def cmd_demo(args: argparse.Namespace) -> int:
    from thred_pipeline.demo import run_demo

    report = run_demo(Path(args.home), port=args.port, reseed=args.reseed)
    return 0 if report.ok else 1


def cmd_seed(args: argparse.Namespace) -> int:
    from thred_pipeline.warehouse.seed import SeedConfig, seed_warehouse

    settings = config.PipelineSettings.from_env()
    url = args.warehouse_url or settings.warehouse_url
    counts = seed_warehouse(
        url, SeedConfig(seed=args.seed, businesses=args.businesses, days=args.days)
    )
    for table, n in counts.items():
        print(f"{table:28s} {n:6d}")
    return 0


def cmd_sandbox(args: argparse.Namespace) -> int:
    from thred_pipeline.sandbox.config import SandboxConfig, fault_config_from_args
    from thred_pipeline.sandbox.server import serve

    data_dir = Path(args.data_dir) if args.data_dir else None
    try:
        faults = fault_config_from_args(args)
    except ValueError as exc:
        args.parser.error(str(exc))
    serve(SandboxConfig(data_dir=data_dir, faults=faults), host=args.host, port=args.port)
    return 0


def _engine_parts() -> tuple[object, object, object]:
    from thred_pipeline.sync.ledger import SyncLedger
    from thred_pipeline.thred.settings import ThredSettings
    from thred_pipeline.warehouse.db import create_warehouse_engine
    from thred_pipeline.warehouse.extract import Warehouse

    s = config.PipelineSettings.from_env()
    thred = ThredSettings(
        base_url=s.thred_base_url,
        partner_id=s.partner_id,
        api_key=s.api_key,
        timeout_s=s.timeout_s,
        verify_tls=s.verify_tls,
        allow_insecure_tls=s.allow_insecure_tls,
    )
    return (
        Warehouse(create_warehouse_engine(s.warehouse_url)),
        SyncLedger.from_url(s.ledger_url),
        thred,
    )


def cmd_sync(args: argparse.Namespace) -> int:
    """Run the engine without Dagster (diagnosis, scripting); same code the assets call."""
    from thred_pipeline.sync.engine import SyncEngine, SyncOptions, iter_specs
    from thred_pipeline.sync.records import TimeWindow

    warehouse, ledger, thred = _engine_parts()
    s = config.PipelineSettings.from_env()
    options = SyncOptions(
        lookback=timedelta(hours=s.lookback_hours),
        concurrency=s.concurrency,
        full_refresh=args.full_refresh,
    )
    engine = SyncEngine(warehouse, ledger, thred, options)  # type: ignore[arg-type]
    window = TimeWindow(*_window(args))
    failed = False
    for spec in iter_specs(args.entity or None):
        result = engine.sync_entity(spec, window)
        print(f"{spec.name:18s} {json.dumps(result.metrics())}")
        failed = failed or bool(result.counts["unknown"])
    return 1 if failed else 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    from thred_pipeline.sync.engine import iter_specs
    from thred_pipeline.sync.reconcile import Reconciler
    from thred_pipeline.sync.records import TimeWindow

    warehouse, ledger, thred = _engine_parts()
    reconciler = Reconciler(warehouse, ledger, thred)  # type: ignore[arg-type]
    window = TimeWindow(*_window(args))
    ok = True
    for spec in iter_specs(args.entity or None):
        for measure in spec.measures:
            try:
                outcome = reconciler.check(spec, measure, window)
            except ValueError:
                continue
            ok = ok and outcome.passed
            flag = "PASS" if outcome.passed else "FAIL"
            print(f"{flag} {spec.name}.{measure}: {outcome.summary}")
            for mismatch in outcome.mismatches[:10]:
                print(f"     {json.dumps(mismatch, default=str)}")
    return 0 if ok else 1


def cmd_quarantine(args: argparse.Namespace) -> int:
    from thred_pipeline.sync.ledger import SyncLedger
    from thred_pipeline.sync.records import Status

    ledger = SyncLedger.from_url(config.PipelineSettings.from_env().ledger_url)
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
        return 0
    released = ledger.release_for_retry(args.entity, args.ids or None)
    print(f"{released} rejected records will be re-sent on the next run")
    return 0


def cmd_ddl(args: argparse.Namespace) -> int:
    from thred_pipeline.warehouse.ddl import render_ddl

    print(render_ddl(args.dialect))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="thred-pipeline", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="seed, start the sandbox, sync every partition via Dagster")
    demo.add_argument("--home", default=str(config.thred_home() / "demo"))
    demo.add_argument("--port", type=int, default=config.DEFAULT_SANDBOX_PORT)
    demo.add_argument("--reseed", action="store_true", help="regenerate the demo warehouse")
    demo.set_defaults(func=cmd_demo)

    seed = sub.add_parser("seed", help="generate the deterministic demo warehouse")
    seed.add_argument("--warehouse-url")
    seed.add_argument("--seed", type=int, default=7)
    seed.add_argument("--businesses", type=int, default=3)
    seed.add_argument("--days", type=int, default=30)
    seed.set_defaults(func=cmd_seed)

    sandbox = sub.add_parser("sandbox", help="run the local Thred-compatible API server")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=config.DEFAULT_SANDBOX_PORT)
    sandbox.add_argument("--data-dir", help="persist state here (default: in memory)")
    add_fault_arguments(sandbox)
    sandbox.set_defaults(func=cmd_sandbox, parser=sandbox)

    for name, func, help_text in (
        ("sync", cmd_sync, "sync a window without Dagster"),
        ("reconcile", cmd_reconcile, "compare the warehouse with Thred"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--start", required=True, help="window start, ISO date or datetime (UTC)")
        p.add_argument("--end", help="window end (default: start + 1 day)")
        p.add_argument("--entity", action="append", help="limit to these entities")
        if name == "sync":
            p.add_argument(
                "--full-refresh",
                action="store_true",
                help="re-send every record regardless of the ledger (idempotent)",
            )
        p.set_defaults(func=func)

    quarantine = sub.add_parser("quarantine", help="list or retry records that need attention")
    quarantine.add_argument("action", choices=("list", "retry"))
    quarantine.add_argument("--entity")
    quarantine.add_argument("ids", nargs="*", help="source ids to retry (default: all)")
    quarantine.set_defaults(func=cmd_quarantine)

    ddl = sub.add_parser("warehouse-ddl", help="print the warehouse source contract as DDL")
    ddl.add_argument("--dialect", choices=("postgresql", "sqlite"), default="postgresql")
    ddl.set_defaults(func=cmd_ddl)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("httpx", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
