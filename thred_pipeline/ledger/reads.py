"""Reading the ledger: every method takes and returns the caller's full ids."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import fields, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, func, or_, select

from thred_pipeline.core.records import Status
from thred_pipeline.ledger.keys import aware, ledger_key
from thred_pipeline.ledger.rows import LedgerRow
from thred_pipeline.ledger.schema import ledger_table

_IN_BATCH = 500  # ids per IN (...) clause
# What a LedgerRow holds: not the confirmed payload (read only to explain drift), which is most
# of a row's bytes.
_ROW_COLUMNS = tuple(ledger_table.c[f.name] for f in fields(LedgerRow))
_ROW_NAMES = tuple(c.name for c in _ROW_COLUMNS)


def _as_dict(row: Row[Any]) -> dict[str, Any]:
    """A selected row of ``_ROW_COLUMNS`` by name: a plain dict reads faster than a RowMapping."""
    return dict(zip(_ROW_NAMES, row, strict=True))


class LedgerReader:
    """The read side of :class:`~thred_pipeline.ledger.store.SyncLedger`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _before_read(self) -> None:
        """Writes held back (the store's batches) land before any read sees the table."""

    def _reading(self) -> Connection:
        self._before_read()
        return self.engine.connect()

    def get_many(self, entity: str, source_ids: Iterable[str]) -> dict[str, LedgerRow]:
        """Rows by the caller's source ids (an over-long id's row says its full id too)."""
        keys = {ledger_key(i): i for i in dict.fromkeys(source_ids)}
        t = ledger_table
        found: dict[str, LedgerRow] = {}
        for chunk in self._in_batches(list(keys)):
            with self._reading() as conn:
                rows = conn.execute(
                    select(*_ROW_COLUMNS).where(t.c.entity == entity, t.c.source_id.in_(chunk))
                )
                for row in map(_as_dict, rows):
                    stored = row["source_id"]
                    full = keys[stored]
                    found[full] = LedgerRow.from_mapping(row)
                    if full != stored:  # only an over-long id is stored as its key
                        found[full] = replace(found[full], source_id=full)
        return found

    def get(self, entity: str, source_id: str) -> LedgerRow | None:
        return self.get_many(entity, [source_id]).get(source_id)

    def thred_ids(self, entity: str, source_ids: Iterable[str]) -> dict[str, str]:
        """Thred ids of records that exist in Thred (synced, drift, or created then rejected)."""
        keys = {ledger_key(i): i for i in dict.fromkeys(source_ids) if i}
        t = ledger_table
        out: dict[str, str] = {}
        for chunk in self._in_batches(list(keys)):
            query = select(t.c.source_id, t.c.thred_id).where(
                t.c.entity == entity, t.c.source_id.in_(chunk), t.c.thred_id.is_not(None)
            )
            with self._reading() as conn:
                out.update({keys[r.source_id]: r.thred_id for r in conn.execute(query)})
        return out

    @staticmethod
    def _in_batches(ids: list[str]) -> Iterator[list[str]]:
        """The ids in batches small enough for one IN (...) clause."""
        for start in range(0, len(ids), _IN_BATCH):
            yield ids[start : start + _IN_BATCH]

    def source_ids_with_status(
        self, entity: str, statuses: Sequence[Status], business_id: str | None = None
    ) -> list[str]:
        """Stored source ids (an id longer than ``LEDGER_ID_LENGTH`` comes back as its key)."""
        t = ledger_table
        query = select(t.c.source_id).where(
            t.c.entity == entity, t.c.status.in_([s.value for s in statuses])
        )
        if business_id is not None:
            query = query.where(t.c.business_id == ledger_key(business_id))
        with self._reading() as conn:
            return [r.source_id for r in conn.execute(query.order_by(t.c.source_id))]

    def iter_rows(
        self,
        entity: str | None = None,
        *,
        statuses: Sequence[Status] | None = None,
        business_id: str | None = None,
    ) -> Iterator[LedgerRow]:
        t = ledger_table
        query = select(*_ROW_COLUMNS)
        if entity is not None:
            query = query.where(t.c.entity == entity)
        if statuses is not None:
            query = query.where(t.c.status.in_([s.value for s in statuses]))
        if business_id is not None:
            query = query.where(t.c.business_id == ledger_key(business_id))
        with self._reading() as conn:
            for row in conn.execute(query.order_by(t.c.entity, t.c.source_id)):
                yield LedgerRow.from_mapping(_as_dict(row))

    def status_counts(
        self, entity: str | None = None, business_id: str | None = None
    ) -> dict[str, int]:
        t = ledger_table
        query = select(t.c.status, func.count()).group_by(t.c.status)
        if entity is not None:
            query = query.where(t.c.entity == entity)
        if business_id is not None:
            query = query.where(t.c.business_id == ledger_key(business_id))
        counts = {s.value: 0 for s in Status}
        with self._reading() as conn:
            for status, n in conn.execute(query):
                counts[status] = int(n)
        return counts

    def created_counts(self, entity: str) -> dict[str, int]:
        """Per business, how many records of the entity exist in Thred by our account."""
        t = ledger_table
        query = (
            select(t.c.business_id, func.count())
            .where(t.c.entity == entity, t.c.thred_id.is_not(None))
            .group_by(t.c.business_id)
        )
        with self._reading() as conn:
            return {b: int(n) for b, n in conn.execute(query)}

    def confirmed_body(self, entity: str, source_id: str) -> dict[str, Any] | None:
        t = ledger_table
        with self._reading() as conn:
            raw = conn.execute(
                select(t.c.confirmed_body).where(
                    t.c.entity == entity, t.c.source_id == ledger_key(source_id)
                )
            ).scalar_one_or_none()
        return json.loads(raw) if raw else None

    def synced_with_code(self, entity: str, error_code: str) -> list[str]:
        """Stored ids of synced rows Thred holds that carry ``error_code`` (a waiting terminal)."""
        t = ledger_table
        query = select(t.c.source_id).where(
            t.c.entity == entity,
            t.c.status == Status.SYNCED.value,
            t.c.error_code == str(error_code),
            t.c.thred_id.is_not(None),
        )
        with self._reading() as conn:
            return [str(r.source_id) for r in conn.execute(query)]

    def refused_since_upstream(
        self, entity: str, upstream: Collection[str], local_codes: Collection[str]
    ) -> list[str]:
        """Stored ids of records Thred refused whose business had an upstream record change since.

        "Refused" excludes ``local_codes`` (quarantines caused by the row or by this process).
        "Changed" is a record of an ``upstream`` entity that was created, updated or resolved
        (``synced_at`` / ``status_since`` of a synced row) after the refusal (``status_since``,
        which every new attempt moves).
        """
        with self._reading() as conn:
            refused = _refused(conn, entity, local_codes)
            if not refused:
                return []
            owners = sorted({r.business_id for r in refused})
            latest = _latest_upstream_change(conn, sorted(str(u) for u in upstream), owners)
        out = []
        for row in refused:
            changed = latest.get(row.business_id)
            since = _when(row.status_since)
            if changed is not None and since is not None and changed > since:
                out.append(str(row.source_id))
        return sorted(out)


def _refused(
    conn: Connection, entity: str, local_codes: Collection[str]
) -> Sequence[Row[Any, Any, Any]]:
    t = ledger_table
    return conn.execute(
        select(t.c.source_id, t.c.business_id, t.c.status_since).where(
            t.c.entity == entity,
            t.c.status == Status.REJECTED.value,
            or_(
                t.c.error_code.is_(None), t.c.error_code.not_in(sorted(str(c) for c in local_codes))
            ),
        )
    ).all()


def _latest_upstream_change(
    conn: Connection, upstream: list[str], owners: list[str]
) -> dict[str, datetime]:
    """Per business, when a synced record of an ``upstream`` entity last changed."""
    t = ledger_table
    latest: dict[str, datetime] = {}
    for start in range(0, len(owners), _IN_BATCH):
        rows = conn.execute(
            select(
                t.c.business_id,
                func.max(t.c.synced_at).label("synced_at"),
                func.max(t.c.status_since).label("status_since"),
            )
            .where(
                t.c.entity.in_(upstream),
                t.c.status == Status.SYNCED.value,
                t.c.business_id.in_(owners[start : start + _IN_BATCH]),
            )
            .group_by(t.c.business_id)
        )
        for row in rows:
            known = [x for x in (_when(row.synced_at), _when(row.status_since)) if x is not None]
            if known:
                latest[row.business_id] = max(known)
    return latest


def _when(value: Any) -> datetime | None:
    """A MAX() over timestamps: SQLite may hand back text."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    return aware(value) if isinstance(value, datetime) else None
