"""Push assets, one per registry entity, generated from ``entities.ENTITIES``.

Each asset streams the partition window's changed rows out of the warehouse, plans them
against the ledger and pushes them to Thred (see ``sync/engine.py``); extraction is not a
separate asset because a staged copy of the window would double the IO and break streaming.
The warehouse tables appear as external assets so the lineage reads warehouse -> Thred.

Operations metadata, set here for every asset: owners, a code version
derived from the package version and the registry entry, the backfill policy, and freshness —
the push assets are flagged when yesterday's data is not in Thred by ``THRED_FRESH_BY_HOUR``.
"""

import hashlib
import json
import os
import re
import tomllib
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from enum import Enum
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any

import dagster as dg
from sqlalchemy import Table
from sqlalchemy.exc import OperationalError

from thred_pipeline.checks import (
    WINDOW_CHECK,
    books_check_specs,
    books_metadata,
    books_results,
    check_result,
    window_check_spec,
)
from thred_pipeline.config import SettingsError
from thred_pipeline.core.records import TimeWindow
from thred_pipeline.entities import EntitySpec, sync_order
from thred_pipeline.partitions import daily_partitions
from thred_pipeline.resources import (
    LedgerResource,
    ReconcileResource,
    SyncResource,
    ThredResource,
    WarehouseResource,
    build_books_reconciler,
    build_engine,
    build_window_reconciler,
)
from thred_pipeline.sync.engine import EntityRunResult
from thred_pipeline.thred.errors import ThredConfigError, ThredTransientError

THRED_POOL = "thred_api"
BOOKS_KEY = dg.AssetKey(["thred", "books"])
AS_OF_TAG = "thred/as_of"  # set by the sensor: the end of the window the nightly run synced

TRANSIENT_RETRY = dg.RetryPolicy(
    max_retries=3, delay=5, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)


TRANSIENT = (ThredTransientError, OperationalError)  # retried by TRANSIENT_RETRY


class UncertainOutcomes(Exception):
    """Some writes ended with an uncertain outcome; a retry resolves them before new work."""


@contextmanager
def as_dagster_failures(what: str) -> Iterator[None]:
    """Map errors to Dagster's retry semantics: transient ones retry, the rest fail at once."""
    try:
        yield
    except (ThredConfigError, SettingsError) as exc:  # a setting to fix: one clear line
        raise dg.Failure(description=f"configuration error: {exc}", allow_retries=False) from None
    except TRANSIENT as exc:
        raise UncertainOutcomes(f"{what}: transient failure, will retry: {exc}") from None
    except Exception as exc:  # a bug: retrying cannot help
        raise dg.Failure(
            description=f"{what} failed: {type(exc).__name__}: {exc}", allow_retries=False
        ) from exc


# --- operations metadata: owners, code versions, backfill policy, freshness -------------------

DEFAULT_OWNERS = ("team:data-platform",)
DEFAULT_FRESH_BY = "06:00"

# Backfill policies are a beta parameter in Dagster 1.13; the version is pinned exactly.
warnings.filterwarnings("ignore", r".*backfill_policy.*", dg.BetaWarning)


def owners_from_env() -> list[str]:
    """``THRED_OWNERS``: comma-separated owners (``team:name`` or an e-mail address)."""
    raw = os.environ.get("THRED_OWNERS", "")
    owners = [o.strip() for o in raw.split(",") if o.strip()] or list(DEFAULT_OWNERS)
    for owner in owners:
        if not (owner.startswith("team:") and len(owner) > 5) and not re.fullmatch(
            r"[^@\s]+@[^@\s]+\.[^@\s]+", owner
        ):
            raise SettingsError(
                "THRED_OWNERS",
                f"THRED_OWNERS: {owner!r} is neither team:<name> nor an e-mail address",
            )
    return owners


def fresh_by_from_env() -> tuple[int, int]:
    """``THRED_FRESH_BY_HOUR``: the UTC time (``6``, ``06``, ``06:30``) by which yesterday's
    data must be in Thred; default 06:00."""
    raw = os.environ.get("THRED_FRESH_BY_HOUR", "").strip() or DEFAULT_FRESH_BY
    match = re.fullmatch(r"(\d{1,2})(?::(\d{2}))?", raw)
    hour, minute = (int(match.group(1)), int(match.group(2) or 0)) if match else (-1, -1)
    if not (0 <= hour <= 23 and 0 <= minute <= 59) or (hour, minute) == (0, 0):
        raise SettingsError(
            "THRED_FRESH_BY_HOUR",
            f"THRED_FRESH_BY_HOUR must be a UTC time from 00:01 to 23:59 (e.g. 06:00), got {raw!r}",
        )
    return hour, minute


def freshness_policy(hour: int, minute: int) -> dg.FreshnessPolicy:
    """Dagster's freshness state (evaluated by the daemon): materialized between midnight UTC
    and the deadline. It looks at the latest materialization of any partition, so the
    partition-aware check ``freshness_checks`` below is what says *yesterday* is in Thred."""
    return dg.FreshnessPolicy.cron(
        deadline_cron=f"{minute} {hour} * * *",
        lower_bound_delta=timedelta(hours=hour, minutes=minute),
        timezone="UTC",
    )


def backfill_days_per_run() -> int:
    """``THRED_BACKFILL_DAYS_PER_RUN`` (default 1): partitions per run of a UI backfill."""
    raw = os.environ.get("THRED_BACKFILL_DAYS_PER_RUN", "").strip() or "1"
    if not raw.isdigit() or int(raw) < 1:
        raise SettingsError(
            "THRED_BACKFILL_DAYS_PER_RUN",
            f"THRED_BACKFILL_DAYS_PER_RUN must be a whole number of days >= 1, got {raw!r}",
        )
    return int(raw)


def backfill_policy(days_per_run: int) -> dg.BackfillPolicy | None:
    """No policy for one day per run; ``multi_run(days)`` otherwise.

    Measured on Dagster 1.13.27 (test_backfill_ui): with *any* backfill policy, even
    ``multi_run(1)``, a UI backfill launches runs tagged with a partition *range*, and in such a
    run the window checks evaluate once with no partition (each day's check stays "planned"), so
    the per-day check history is lost. Without a policy each run is tagged with its day and each
    day gets its own check result. A larger value makes a long backfill take fewer runs (the
    assets read ``partition_time_window``, so a range run syncs every day correctly) at that
    price.
    """
    return None if days_per_run == 1 else dg.BackfillPolicy.multi_run(days_per_run)


def package_version() -> str:
    try:
        return package_metadata.version("thred-pipeline")
    except package_metadata.PackageNotFoundError:  # run from a checkout without installing
        pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
        try:
            return str(tomllib.loads(pyproject.read_text())["project"]["version"])
        except (OSError, KeyError, tomllib.TOMLDecodeError):
            return "0"


def _stable(value: Any) -> Any:
    """A JSON-able form of a registry value that does not change between processes."""
    if isinstance(value, Table):
        return {"table": value.name, "columns": [[c.name, str(c.type)] for c in value.columns]}
    if isinstance(value, Enum):
        return value.value
    if callable(value):
        return f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', '')}"
    if isinstance(value, tuple | list):
        return [_stable(v) for v in value]
    if isinstance(value, Mapping):  # e.g. a measure name -> the function that reads it
        return {str(k): _stable(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return sorted((_stable(v) for v in value), key=lambda v: json.dumps(v, default=str))
    if hasattr(value, "__dataclass_fields__"):
        return {k: _stable(getattr(value, k)) for k in sorted(value.__dataclass_fields__)}
    return value


def code_version(*parts: Any) -> str:
    """``<package version>+<12 hex of the registry entry>``: changes when either does."""
    digest = hashlib.sha256(
        json.dumps(_stable(list(parts)), sort_keys=True, default=str).encode()
    ).hexdigest()[:12]
    return f"{package_version()}+{digest}"


OWNERS = owners_from_env()
FRESH_BY = fresh_by_from_env()
BACKFILL_POLICY = backfill_policy(backfill_days_per_run())


def plural(spec: EntitySpec) -> str:
    """The registry name spelled as words: "businesses", "invoice payments"."""
    return spec.name.replace("_", " ")


def asset_key(spec: EntitySpec) -> dg.AssetKey:
    return dg.AssetKey(["thred", spec.name])


def warehouse_key(spec: EntitySpec) -> dg.AssetKey:
    return dg.AssetKey(["warehouse", spec.table.name])


def warehouse_specs() -> list[dg.AssetSpec]:
    return [
        dg.AssetSpec(
            warehouse_key(spec),
            group_name="warehouse",
            description=f"Platform warehouse table `{spec.table.name}` (read-only source).",
            kinds={"sql"},
            owners=OWNERS,
            code_version=code_version(spec.table),
        )
        for spec in sync_order()
    ]


def result_metadata(result: EntityRunResult) -> dict[str, Any]:
    metadata: dict[str, Any] = dict(result.metrics())
    metadata["window"] = (
        f"{result.window.start:%Y-%m-%d %H:%M} .. {result.window.end:%Y-%m-%d %H:%M}"
    )
    metadata["per_business"] = dg.MetadataValue.json(
        {b: dict(c) for b, c in sorted(result.per_business.items())}
    )
    for outcome, samples in sorted(result.samples.items()):
        metadata[f"{outcome}_samples"] = dg.MetadataValue.md(_samples_md(samples))
    if result.paused_businesses:
        metadata["paused"] = dg.MetadataValue.json(result.paused_businesses)
    return metadata


def _samples_md(samples: list[dict[str, Any]]) -> str:
    keys = sorted({k for s in samples for k in s})
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for sample in samples:
        cells = [json.dumps(sample.get(k), default=str).replace("|", "\\|") for k in keys]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def build_push_asset(spec: EntitySpec) -> dg.AssetsDefinition:
    # retry_after orders too (refunds after invoice payments), as in entities.sync_order().
    upstream = dict.fromkeys((*spec.depends_on, *spec.retry_after))
    deps = [warehouse_key(spec), *(dg.AssetKey(["thred", d]) for d in upstream)]

    @dg.asset(
        key=asset_key(spec),
        group_name=spec.group,
        partitions_def=daily_partitions,
        deps=deps,
        pool=THRED_POOL,
        retry_policy=TRANSIENT_RETRY,
        kinds={"thred"},
        description=(
            f"{plural(spec).capitalize()} pushed to Thred ({spec.create_path}); "
            f"changes after creation: {spec.change_policy.value}."
        ),
        tags={"thred/entity": spec.name},
        check_specs=[window_check_spec(spec, asset_key(spec))],
        owners=OWNERS,
        code_version=code_version(spec),
        backfill_policy=BACKFILL_POLICY,
        freshness_policy=freshness_policy(*FRESH_BY),
    )
    def push(
        context: dg.AssetExecutionContext,
        warehouse: WarehouseResource,
        ledger: LedgerResource,
        thred: ThredResource,
        sync: SyncResource,
    ) -> dg.MaterializeResult:  # type: ignore[type-arg]
        start, end = context.partition_time_window
        window = TimeWindow(start, end)
        with as_dagster_failures(spec.name):
            result = build_engine(warehouse, ledger, thred, sync).sync_entity(spec, window)
        context.log.info(f"{spec.name}: {dict(result.counts)} ({result.api_calls} API calls)")
        if result.counts["unknown"]:
            raise UncertainOutcomes(
                f"{result.counts['unknown']} {spec.label} writes have an uncertain outcome; "
                "retrying re-sends them with the same external_id first"
            )
        with as_dagster_failures(f"{spec.name} window check"):
            report = build_window_reconciler(warehouse, ledger, thred).check(spec.name, window)
        return dg.MaterializeResult(
            metadata=result_metadata(result), check_results=[check_result(report, WINDOW_CHECK)]
        )

    return push


@dg.asset(
    key=BOOKS_KEY,
    group_name="thred_reconciliation",
    deps=[asset_key(spec) for spec in sync_order()],
    pool=THRED_POOL,
    kinds={"thred", "pandas"},
    description=(
        "Thred's books against the warehouse's, once per night (after the nightly sync) and "
        "on demand: every record, every customer's and vendor's balance and aging, per active "
        "business. A difference is never green; the ledger only explains it."
    ),
    check_specs=books_check_specs(BOOKS_KEY),
    owners=OWNERS,
    code_version=code_version("books", [c.name for c in books_check_specs(BOOKS_KEY)]),
)
def books(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    ledger: LedgerResource,
    thred: ThredResource,
    reconcile: ReconcileResource,
) -> dg.MaterializeResult:  # type: ignore[type-arg]
    as_of_tag = context.run.tags.get(AS_OF_TAG)
    as_of = datetime.fromisoformat(as_of_tag) if as_of_tag else None
    with as_dagster_failures("books"):
        report = build_books_reconciler(warehouse, ledger, thred, reconcile).run(as_of=as_of)
    context.log.info(f"books: {report.verdict}; money at stake {report.money_at_stake()}")
    return dg.MaterializeResult(
        metadata=books_metadata(report),
        check_results=books_results(report, ledger.ledger()),
    )


PUSH_ASSETS = [build_push_asset(spec) for spec in sync_order()]
BOOKS_ASSETS = [books]
WAREHOUSE_ASSETS = warehouse_specs()

# Partition-aware freshness: from FRESH_BY (UTC) on, yesterday's partition of every push asset
# must be materialized, else the check fails as a WARN (and check_alert posts it). Dagster
# marks this factory "superseded" by FreshnessPolicy, which cannot tell which day arrived.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.SupersessionWarning)
    FRESHNESS_CHECKS = dg.build_time_partition_freshness_checks(
        assets=PUSH_ASSETS,
        deadline_cron=f"{FRESH_BY[1]} {FRESH_BY[0]} * * *",
        timezone="UTC",
        severity=dg.AssetCheckSeverity.WARN,
    )
