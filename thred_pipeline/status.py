"""What ``thred-pipeline status`` and ``quarantine list`` report, read from the ledger and Dagster.

The ledger says, per business and entity, where every record stands; the Dagster instance
(``DAGSTER_HOME``) says when the nightly job last ran and what the last books reconciliation
concluded. Both are read only: nothing here creates a ledger or a Dagster instance.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import case, func, select

from thred_pipeline.config import SettingsError
from thred_pipeline.core.records import Status
from thred_pipeline.entities import sync_order
from thred_pipeline.ledger import LedgerCode, LedgerRow, SyncLedger, ledger_table

# The Dagster names status reads (thred_pipeline.jobs / .assets; a test keeps them in step).
NIGHTLY_JOB_NAME = "nightly_thred_sync"
BOOKS_ASSET_PATH = ("thred", "books")

# Ledger statuses -> the status column an operator reads.
COLUMNS: dict[str, tuple[Status, ...]] = {
    "synced": (Status.SYNCED,),
    "pending": (Status.PENDING, Status.UNKNOWN),
    "deferred": (Status.DEFERRED,),
    "quarantined": (Status.REJECTED,),
    "drifted": (Status.DRIFT,),
}
# What `quarantine list` shows by default: every record that is not in Thred as it should be.
ATTENTION_STATUSES = (Status.REJECTED, Status.DRIFT, Status.DEFERRED, Status.UNKNOWN)
LIST_FIELDS = (
    "entity",
    "business_id",
    "source_id",
    "status",
    "error_code",
    "error_message",
    "attempts",
    "status_since",
    "external_id",
    "thred_id",
)


NUMBERS = (*COLUMNS, "waiting_terminals")  # what is counted per business and entity


@dataclass
class EntityStatus:
    """How many records of one business and entity are in each column (``NUMBERS``)."""

    business_id: str
    entity: str
    counts: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        """Every record once (a waiting terminal is also synced)."""
        return sum(self.counts[name] for name in COLUMNS)

    def add(self, other: EntityStatus) -> None:
        self.counts.update(other.counts)

    def to_dict(self) -> dict[str, Any]:
        numbers = {name: self.counts[name] for name in NUMBERS}
        return {
            "business_id": self.business_id,
            "entity": self.entity,
            **numbers,
            "total": self.total,
        }


@dataclass
class LastRun:
    run_id: str
    status: str
    partition: str | None
    started: datetime | None
    ended: datetime | None


@dataclass
class BooksVerdict:
    verdict: str
    at: datetime
    run_id: str


@dataclass
class Report:
    rows: list[EntityStatus]
    dagster_home: str | None
    last_run: LastRun | None = None
    books: BooksVerdict | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def totals(self) -> EntityStatus:
        total = EntityStatus("(all)", "(all)")
        for row in self.rows:
            total.add(row)
        return total

    def to_json(self) -> str:
        def moment(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return json.dumps(
            {
                "ledger": [row.to_dict() for row in self.rows],
                "totals": {k: v for k, v in self.totals.to_dict().items() if k not in _KEYS},
                "dagster_home": self.dagster_home,
                "last_run": (
                    None
                    if self.last_run is None
                    else {
                        **asdict(self.last_run),
                        "started": moment(self.last_run.started),
                        "ended": moment(self.last_run.ended),
                    }
                ),
                "books": (
                    None
                    if self.books is None
                    else {**asdict(self.books), "at": moment(self.books.at)}
                ),
                "notes": self.notes,
            },
            indent=2,
        )


_KEYS = ("business_id", "entity")


# -- the ledger ---------------------------------------------------------------------------------


def _entity_rank() -> dict[str, int]:
    return {spec.name: i for i, spec in enumerate(sync_order())}


def ledger_status(
    ledger: SyncLedger,
    *,
    businesses: Sequence[str] | None = None,
    entities: Sequence[str] | None = None,
) -> list[EntityStatus]:
    """Per (business, entity), how many records are in each state: one grouped query."""
    t = ledger_table
    waiting = func.sum(case((t.c.error_code == LedgerCode.TERMINAL_WAITING.value, 1), else_=0))
    query = select(
        t.c.business_id, t.c.entity, t.c.status, func.count().label("n"), waiting.label("w")
    ).group_by(t.c.business_id, t.c.entity, t.c.status)
    if businesses:
        query = query.where(t.c.business_id.in_(list(businesses)))
    if entities:
        query = query.where(t.c.entity.in_(list(entities)))
    column_of = {status.value: name for name, statuses in COLUMNS.items() for status in statuses}
    found: dict[tuple[str, str], EntityStatus] = {}
    with ledger.engine.connect() as conn:
        for business_id, entity, status, n, waiting_n in conn.execute(query):
            row = found.setdefault((business_id, entity), EntityStatus(business_id, entity))
            name = column_of.get(status)
            if name is not None:
                row.counts[name] += int(n)
            row.counts["waiting_terminals"] += int(waiting_n or 0)
    rank = _entity_rank()
    return sorted(
        found.values(), key=lambda r: (r.business_id, rank.get(r.entity, len(rank)), r.entity)
    )


def attention_rows(
    ledger: SyncLedger,
    *,
    businesses: Sequence[str] | None = None,
    entities: Sequence[str] | None = None,
    statuses: Sequence[Status] | None = None,
) -> Iterator[LedgerRow]:
    """Ledger rows in ``statuses`` (default: every kind that needs attention), in entity order."""
    wanted = tuple(statuses) if statuses else ATTENTION_STATUSES
    owners: list[str | None] = list(dict.fromkeys(businesses)) if businesses else [None]
    for entity in _ordered_entities(entities):
        for business in owners:
            yield from ledger.iter_rows(entity, statuses=wanted, business_id=business)


def _ordered_entities(entities: Sequence[str] | None) -> list[str | None]:
    if not entities:
        return [None]
    rank = _entity_rank()
    ordered = sorted(dict.fromkeys(entities), key=lambda e: rank.get(e, len(rank)))
    return list(ordered)


def row_dict(row: LedgerRow) -> dict[str, Any]:
    return {
        "entity": row.entity,
        "business_id": row.business_id,
        "source_id": row.source_id,
        "status": row.status.value,
        "error_code": row.error_code,
        "error_message": row.error_message,
        "attempts": row.attempts,
        "status_since": row.status_since.isoformat(),
        "external_id": row.external_id,
        "thred_id": row.thred_id,
    }


def write_csv(rows: Iterable[LedgerRow], out: io.TextIOBase | Any) -> int:
    writer = csv.DictWriter(out, fieldnames=LIST_FIELDS, lineterminator="\n")
    writer.writeheader()
    n = 0
    for row in rows:
        writer.writerow(row_dict(row))
        n += 1
    return n


# -- Dagster ------------------------------------------------------------------------------------


def _instance_is_empty(home: Path) -> bool:
    """No ``dagster.yaml`` and no local storage: no run was ever recorded here (and opening
    the instance would create its storage)."""
    return not (home / "dagster.yaml").exists() and not any(
        (home / name).exists() for name in ("history", "storage", "schedules")
    )


def dagster_report(report: Report) -> None:
    """Fill in the last nightly run and the last books verdict from ``DAGSTER_HOME``, if any.

    Raises ``SettingsError`` (naming ``DAGSTER_HOME``) when it is set but cannot be read.
    """
    value = os.environ.get("DAGSTER_HOME", "").strip()
    if not value:
        report.notes.append("DAGSTER_HOME is not set: no Dagster runs to read")
        return
    home = Path(value).expanduser()
    report.dagster_home = str(home)
    if not home.is_dir():
        raise SettingsError(
            "DAGSTER_HOME", f"DAGSTER_HOME={home} is not a directory (unset it, or fix the path)"
        )
    if _instance_is_empty(home):
        report.notes.append(f"DAGSTER_HOME={home} holds no Dagster instance yet")
        return
    try:
        _read_instance(report)
    except SettingsError:
        raise
    except Exception as exc:  # the instance's own storage failed: name it, one line
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise SettingsError(
            "DAGSTER_HOME", f"DAGSTER_HOME={home}: cannot read the Dagster instance: {reason}"
        ) from None


def _read_instance(report: Report) -> None:
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        records = instance.get_run_records(dg.RunsFilter(job_name=NIGHTLY_JOB_NAME), limit=1)
        if records:
            record = records[0]
            run = record.dagster_run
            report.last_run = LastRun(
                run_id=run.run_id,
                status=run.status.value,
                partition=run.tags.get("dagster/partition"),
                started=_utc(record.start_time),
                ended=_utc(record.end_time),
            )
        event = instance.get_latest_materialization_event(dg.AssetKey(list(BOOKS_ASSET_PATH)))
        materialization = event.asset_materialization if event else None
        if event is not None and materialization is not None:
            verdict = materialization.metadata.get("verdict")
            if verdict is not None:
                report.books = BooksVerdict(
                    verdict=str(verdict.value),
                    at=datetime.fromtimestamp(event.timestamp, UTC),
                    run_id=event.run_id,
                )


def _utc(timestamp: float | None) -> datetime | None:
    return datetime.fromtimestamp(timestamp, UTC) if timestamp else None


def build_report(
    ledger: SyncLedger,
    *,
    businesses: Sequence[str] | None = None,
    entities: Sequence[str] | None = None,
) -> Report:
    report = Report(
        rows=ledger_status(ledger, businesses=businesses, entities=entities), dagster_home=None
    )
    dagster_report(report)
    return report
