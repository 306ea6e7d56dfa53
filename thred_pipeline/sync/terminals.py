"""Terminal actions after the documents they would block.

A void or archive is made only once no dependant of the record (records whose ``refs`` point
at it) is still waiting to be sent (never seen, ``pending``/``unknown``/``deferred``, or
changed since Thred confirmed it); quarantined dependants (``rejected``, ``drift``) wait for a
human and do not hold it back. Until then the ledger row is ``synced`` with ``error_code``
``terminal_waiting`` and the dependants named; waiting terminals are made at the start of
their entity's sync and at the end of the sync of the entity itself and of each dependant
entity, so a customer created, invoiced, paid and archived on one day is archived at the end
of the payments step.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select

from thred_pipeline import entities
from thred_pipeline.core.records import SourceRecord
from thred_pipeline.entities import EntitySpec, Ref
from thred_pipeline.ledger import LedgerCode, LedgerRow, SyncLedger
from thred_pipeline.sync.context import IN_BATCH, ContextReader
from thred_pipeline.sync.executor import Executor
from thred_pipeline.sync.outcomes import EntityRunResult
from thred_pipeline.sync.planner import waiting_to_be_sent
from thred_pipeline.sync.run import BusinessState, Job, Run
from thred_pipeline.sync.versions import record_version, wants_terminal
from thred_pipeline.thred.errors import ThredConfigError
from thred_pipeline.warehouse.extract import Warehouse


class Terminals:
    def __init__(
        self, warehouse: Warehouse, ledger: SyncLedger, context: ContextReader, executor: Executor
    ) -> None:
        self.warehouse = warehouse
        self.ledger = ledger
        self.context = context
        self.executor = executor

    def blockers(self, spec: EntitySpec, records: Sequence[SourceRecord]) -> dict[str, list[str]]:
        """Per record, its dependants still waiting to be sent ("invoice inv-1", ...)."""
        if spec.terminal is None or not records:
            return {}
        ids = sorted({r.source_id for r in records})
        out: dict[str, list[str]] = defaultdict(list)
        for dependant, ref in entities.dependants(spec.name):
            pairs = self._dependant_ids(dependant, ref, ids)
            if not pairs:
                continue
            dependant_ids = sorted({d for _, d in pairs})
            versions = self._versions(dependant, dependant_ids)
            rows = self.ledger.get_many(dependant.name, dependant_ids)
            for parent, child in sorted(set(pairs)):
                if child not in versions:
                    continue  # not extracted (inactive business, deleted): it will not be sent
                if waiting_to_be_sent(rows.get(child), versions[child]):
                    out[parent].append(f"{dependant.label} {child}")
        return out

    def _versions(self, spec: EntitySpec, ids: list[str]) -> dict[str, datetime | None]:
        """Warehouse versions of the records (None: unreadable)."""
        versions: dict[str, datetime | None] = {}
        for start in range(0, len(ids), IN_BATCH):
            for found in self.warehouse.fetch(spec.source, ids[start : start + IN_BATCH]):
                versions[found.source_id] = record_version(found) if found.problem is None else None
        return versions

    def _dependant_ids(
        self, dependant: EntitySpec, ref: Ref, parent_ids: Sequence[str]
    ) -> list[tuple[str, str]]:
        """(parent id, dependant id) for every warehouse row of ``dependant`` naming a parent."""
        if ref.child is None:
            table, column, owner = dependant.table, ref.column, "id"
        else:
            child = next(c for c in dependant.children if c.key == ref.child)
            table, column, owner = child.table, ref.column, child.parent_column
        pairs: list[tuple[str, str]] = []
        with self.warehouse.engine.connect() as conn:
            for start in range(0, len(parent_ids), IN_BATCH):
                rows = conn.execute(
                    select(table.c[column], table.c[owner]).where(
                        table.c[column].in_(parent_ids[start : start + IN_BATCH])
                    )
                )
                pairs.extend((str(a), str(b)) for a, b in rows if a is not None and b is not None)
        return pairs

    async def apply_waiting(self, run: Run, owners: Sequence[EntitySpec]) -> None:
        """Make the void/archive of records left ``terminal_waiting`` whose dependants landed."""
        for owner in owners:
            if owner.terminal is None:
                continue
            waiting = self._waiting_rows(owner)
            if not waiting:
                continue
            own = owner.name == run.spec.name
            counts = run.result if own else EntityRunResult(owner.name, run.result.window)
            for start in range(0, len(waiting), IN_BATCH):
                rows = {r.source_id: r for r in waiting[start : start + IN_BATCH]}
                await self._apply_batch(run, owner, rows, counts)
            if not own:
                run.result.late[owner.name].update(counts.counts)

    async def _apply_batch(
        self, run: Run, owner: EntitySpec, rows: dict[str, LedgerRow], counts: EntityRunResult
    ) -> None:
        records = [
            r
            for r in self.warehouse.fetch(owner.source, sorted(rows))
            if r.problem is None
            and wants_terminal(owner, r)
            and rows[r.source_id].confirmed_updated_at == record_version(r)
        ]
        blockers = self.blockers(owner, records)
        for record in records:
            row = rows[record.source_id]
            assert row.thred_id is not None and row.confirmed_hash is not None
            job = Job(
                run,
                owner,
                record,
                BusinessState(record.business_id),
                counts,
                version=record_version(record),
                digest=row.confirmed_hash,
            )
            if blockers.get(record.source_id):
                self.executor.recorder.waiting(
                    job, row.thred_id, blockers[record.source_id], count=False
                )
                continue
            known = run.businesses.get(record.business_id)
            if known is not None and known.paused:
                continue  # credentials refused this run: it stays waiting
            job.state.thred_id = self.context.business_thred_id(record.business_id)
            if job.state.thred_id is None:
                continue
            try:
                await self.executor.make_terminal(job, row.thred_id)
            except ThredConfigError:
                raise
            except Exception as exc:
                self.executor.recorder.internal_error(job, exc)

    def _waiting_rows(self, spec: EntitySpec) -> list[LedgerRow]:
        ids = self.ledger.synced_with_code(spec.name, LedgerCode.TERMINAL_WAITING)
        if not ids:
            return []
        rows = self.ledger.get_many(spec.name, ids)
        return [
            rows[i]
            for i in sorted(rows)
            if not rows[i].terminal_done and rows[i].confirmed_hash is not None
        ]


def terminal_owners(spec: EntitySpec) -> list[EntitySpec]:
    """Entities whose waiting terminals syncing ``spec`` may unblock (``spec`` is a dependant)."""
    return [
        owner
        for owner in entities.sync_order()
        if owner.terminal is not None
        and any(dependant.name == spec.name for dependant, _ in entities.dependants(owner.name))
    ]
