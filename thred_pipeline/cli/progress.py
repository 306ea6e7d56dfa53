"""What ``sync`` shows on a terminal while it runs: entities done, and the current entity's
records."""

from __future__ import annotations

import logging
import sys
from collections.abc import Generator, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from thred_pipeline.core.records import SourceRecord, TimeWindow
    from thred_pipeline.warehouse.extract import Warehouse
    from thred_pipeline.warehouse.source import SourceTable


class SyncProgress:
    """What ``sync`` shows on a terminal: entities done, and the current entity's records.

    Drawn by rich on stderr, only when stderr is a terminal; elsewhere it only counts. A chunk
    of records read for the current entity counts once the engine asks for the next chunk, or
    the entity finishes: by then the chunk has been processed.
    """

    def __init__(self, progress: Any = None, entities: int = 0) -> None:
        self._progress = progress
        self._overall = (
            progress.add_task("entities", total=entities, records="") if progress else None
        )
        self._task: Any = None
        self._entity = ""
        self._pending = 0
        self.records = 0  # processed records of the current entity

    def start(self, entity: str) -> None:
        self._entity, self._pending, self.records = entity, 0, 0
        if self._progress is not None:
            self._task = self._progress.add_task(entity, total=None, records=0)
            self._progress.refresh()

    def handed(self, entity: str, records: int) -> None:
        """The warehouse handed ``records`` of ``entity`` to the engine."""
        self._flush()
        self._pending = records if entity == self._entity else 0

    def finish(self) -> None:
        self._flush()
        if self._progress is not None and self._task is not None:
            done = max(self.records, 1)
            self._progress.update(self._task, total=done, completed=done)
            self._progress.update(self._overall, advance=1)
            self._progress.refresh()  # each entity is drawn at least once, however fast
        self._task = None

    def _flush(self) -> None:
        if not self._pending:
            return
        self.records += self._pending
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, advance=self._pending, records=self.records)
        self._pending = 0


@contextmanager
def sync_progress(entities: int) -> Iterator[SyncProgress]:
    """A progress display on stderr when it is a terminal (rich), else a silent counter."""
    if not sys.stderr.isatty():
        yield SyncProgress()
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description:18s}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[records]} records"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
        redirect_stdout=sys.stdout.isatty(),
        redirect_stderr=True,
    )
    with progress:
        # Log lines (stderr) go through the display instead of tearing it.
        moved = [
            h
            for h in logging.getLogger().handlers
            if type(h) is logging.StreamHandler and h.stream is sys.__stderr__
        ]
        for handler in moved:
            handler.setStream(sys.stderr)
        try:
            yield SyncProgress(progress, entities)
        finally:
            for handler in moved:
                handler.setStream(sys.__stderr__)


def counting_warehouse(engine: Engine, progress: SyncProgress) -> Warehouse:
    """A warehouse that tells ``progress`` about every chunk of records it hands out."""
    from thred_pipeline.warehouse.extract import DEFAULT_CHUNK_SIZE, Warehouse

    class CountingWarehouse(Warehouse):
        def fetch(self, source: SourceTable, source_ids: Sequence[str]) -> list[SourceRecord]:
            found = super().fetch(source, source_ids)
            progress.handed(source.name, len(found))
            return found

        def iter_changed(
            self, source: SourceTable, window: TimeWindow, *, chunk_size: int = DEFAULT_CHUNK_SIZE
        ) -> Generator[list[SourceRecord], None, None]:
            for chunk in super().iter_changed(source, window, chunk_size=chunk_size):
                progress.handed(source.name, len(chunk))
                yield chunk

    return CountingWarehouse(engine)
