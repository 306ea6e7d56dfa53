"""Thread-safe object store with an append-only JSONL journal.

Every stored object is a JSON-native dict with ``id``, ``_scope`` (the business id, or
``partner:<id>`` for businesses) and ``_seq`` (creation order). The store keeps:

- unique indexes on ``(scope, collection, field, value)`` for ``external_id`` and ``_key``,
  so idempotent replays and ledger look-ups are O(1);
- per-scope insertion-ordered listings;
- named secondary indexes (``register_index``) and change hooks (``register_hook``, used by
  the ledger to keep running balances).

Writes happen inside ``transaction()``: on success the transaction's final object states
are appended to ``<data_dir>/journal.jsonl`` as one line (so a write costs O(changed
objects), never a rewrite of the whole state) and flushed; on an exception every change is
undone in memory. On start the journal is replayed (a torn last line is ignored) and
compacted when it has grown well past the live state. Stored objects are never mutated in
place: callers ``put`` a new dict (``editable`` gives a deep copy to start from).
"""

from __future__ import annotations

import copy
import json
import os
import threading
import uuid
from collections.abc import Callable, Hashable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Protocol

__all__ = ["ChangeHook", "Obj", "Store"]

Obj = dict[str, Any]
UNIQUE_FIELDS = ("external_id", "_key")
JOURNAL_NAME = "journal.jsonl"


class ChangeHook(Protocol):
    def on_change(self, old: Obj | None, new: Obj | None) -> None: ...

    def clear(self) -> None: ...


class Store:
    def __init__(self, data_dir: Path | None = None) -> None:
        self.lock = threading.RLock()
        self._data_dir = data_dir
        self._objs: dict[str, dict[str, Obj]] = {}
        self._by_scope: dict[tuple[str, str], dict[str, None]] = {}
        self._unique: dict[tuple[str, str, str, str], str] = {}
        self._index_defs: dict[str, tuple[str, Callable[[Obj], Iterable[Hashable]]]] = {}
        self._index_data: dict[str, dict[Hashable, dict[str, None]]] = {}
        self._hooks: dict[str, list[ChangeHook]] = {}
        self._seq = 0
        self._depth = 0
        self._touched: dict[tuple[str, str], Obj | None] = {}
        self._journal: IO[str] | None = None
        self.journal_lines = 0

    # ------------------------------------------------------------------ setup
    def register_index(
        self, name: str, collection: str, keys: Callable[[Obj], Iterable[Hashable]]
    ) -> None:
        self._index_defs[name] = (collection, keys)
        self._index_data[name] = {}

    def register_hook(self, collection: str, hook: ChangeHook) -> None:
        self._hooks.setdefault(collection, []).append(hook)

    def open(self) -> None:
        """Replay the journal (if any) and open it for appending."""
        if self._data_dir is None:
            return
        self._data_dir.mkdir(parents=True, exist_ok=True)
        path = self._data_dir / JOURNAL_NAME
        lines = 0
        if path.exists():
            with path.open("r", encoding="utf-8") as fh:
                for raw in fh:
                    try:
                        entry = json.loads(raw)
                    except ValueError:
                        break  # torn final write: everything before it is intact
                    self._replay(entry)
                    lines += 1
        self.journal_lines = lines
        live = sum(len(c) for c in self._objs.values())
        if lines > 100 and lines > 2 * live:
            self._compact(path)
        self._journal = path.open("a", encoding="utf-8")

    def close(self) -> None:
        with self.lock:
            if self._journal is not None:
                self._journal.close()
                self._journal = None

    def _replay(self, entry: Obj) -> None:
        if entry.get("reset"):
            self._clear_memory()
            return
        for op in entry.get("ops", []):
            if op[0] == "p":
                obj = op[2]
                self._apply(op[1], obj["id"], obj)
                self._seq = max(self._seq, int(obj.get("_seq", 0)))
            else:
                self._apply(op[1], op[2], None)

    def _compact(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            for coll, objs in self._objs.items():
                for obj in objs.values():
                    fh.write(_dumps({"ops": [["p", coll, obj]]}) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        self.journal_lines = sum(len(c) for c in self._objs.values())

    # ------------------------------------------------------------------ reads
    def get(self, collection: str, obj_id: str) -> Obj | None:
        return self._objs.get(collection, {}).get(obj_id)

    def get_in(self, collection: str, scope: str, obj_id: str) -> Obj | None:
        obj = self.get(collection, obj_id)
        return obj if obj is not None and obj.get("_scope") == scope else None

    def find(self, scope: str, collection: str, field: str, value: str) -> Obj | None:
        obj_id = self._unique.get((scope, collection, field, value))
        return None if obj_id is None else self.get(collection, obj_id)

    def scan(self, scope: str, collection: str) -> list[Obj]:
        ids = self._by_scope.get((scope, collection), {})
        objs = self._objs.get(collection, {})
        return [objs[i] for i in ids]

    def count(self, scope: str, collection: str) -> int:
        return len(self._by_scope.get((scope, collection), {}))

    def lookup(self, index: str, key: Hashable) -> list[Obj]:
        collection = self._index_defs[index][0]
        objs = self._objs.get(collection, {})
        return [objs[i] for i in self._index_data[index].get(key, {})]

    def all_objects(self) -> Iterator[tuple[str, Obj]]:
        for coll, objs in self._objs.items():
            for obj in objs.values():
                yield coll, obj

    def scope_counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for (scope, coll), ids in self._by_scope.items():
            if ids:
                out.setdefault(scope, {})[coll] = len(ids)
        return out

    @staticmethod
    def editable(obj: Obj) -> Obj:
        return copy.deepcopy(obj)

    # ------------------------------------------------------------------ writes
    @staticmethod
    def new_id() -> str:
        return str(uuid.uuid4())

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.lock:
            self._depth += 1
            try:
                yield
            except BaseException:
                if self._depth == 1:
                    self._rollback()
                raise
            else:
                if self._depth == 1:
                    try:
                        self._commit()
                    except BaseException:
                        self._rollback()
                        raise
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self._touched = {}

    def put(self, collection: str, obj: Obj) -> Obj:
        self._require_tx()
        obj_id = obj["id"]
        if "_seq" not in obj:
            obj["_seq"] = self.next_seq()
        old = self.get(collection, obj_id)
        if old is not None and old.get("_scope") != obj.get("_scope"):
            raise ValueError("an object cannot change scope")
        for field in UNIQUE_FIELDS:
            value = obj.get(field)
            if isinstance(value, str):
                holder = self._unique.get((obj["_scope"], collection, field, value))
                if holder is not None and holder != obj_id:
                    raise ValueError(f"unique {field} {value!r} already used in {collection}")
        self._touch(collection, obj_id, old)
        self._apply(collection, obj_id, obj)
        return obj

    def delete(self, collection: str, obj_id: str) -> None:
        self._require_tx()
        old = self.get(collection, obj_id)
        if old is None:
            return
        self._touch(collection, obj_id, old)
        self._apply(collection, obj_id, None)

    def reset(self) -> None:
        """Forget everything (memory and journal)."""
        with self.lock:
            self._clear_memory()
            if self._journal is not None:
                self._journal.seek(0)
                self._journal.truncate()
                self._journal.flush()
            self.journal_lines = 0

    # ------------------------------------------------------------------ internals
    def _require_tx(self) -> None:
        if self._depth == 0:
            raise RuntimeError("store writes must happen inside transaction()")

    def _touch(self, collection: str, obj_id: str, old: Obj | None) -> None:
        key = (collection, obj_id)
        if key not in self._touched:
            self._touched[key] = old

    def _rollback(self) -> None:
        for (collection, obj_id), old in reversed(list(self._touched.items())):
            self._apply(collection, obj_id, old)

    def _commit(self) -> None:
        if not self._touched:
            return
        if self._journal is None:
            return
        ops: list[list[Any]] = []
        for collection, obj_id in self._touched:
            current = self.get(collection, obj_id)
            if current is None:
                ops.append(["d", collection, obj_id])
            else:
                ops.append(["p", collection, current])
        self._journal.write(_dumps({"ops": ops}) + "\n")
        self._journal.flush()
        self.journal_lines += 1

    def _clear_memory(self) -> None:
        self._objs.clear()
        self._by_scope.clear()
        self._unique.clear()
        for data in self._index_data.values():
            data.clear()
        for hooks in self._hooks.values():
            for hook in hooks:
                hook.clear()
        self._seq = 0

    def _apply(self, collection: str, obj_id: str, new: Obj | None) -> None:
        objs = self._objs.setdefault(collection, {})
        old = objs.get(obj_id)
        if old is not None:
            scope = old["_scope"]
            if new is None:
                self._by_scope.get((scope, collection), {}).pop(obj_id, None)
            for field in UNIQUE_FIELDS:
                value = old.get(field)
                if isinstance(value, str):
                    ukey = (scope, collection, field, value)
                    if self._unique.get(ukey) == obj_id:
                        del self._unique[ukey]
            for name, (coll, keys) in self._index_defs.items():
                if coll == collection:
                    data = self._index_data[name]
                    for k in keys(old):
                        bucket = data.get(k)
                        if bucket is not None:
                            bucket.pop(obj_id, None)
                            if not bucket:
                                del data[k]
            del objs[obj_id]
        if new is not None:
            scope = new["_scope"]
            objs[obj_id] = new
            # an update keeps its place in the listing (creation order)
            self._by_scope.setdefault((scope, collection), {})[obj_id] = None
            for field in UNIQUE_FIELDS:
                value = new.get(field)
                if isinstance(value, str):
                    self._unique[(scope, collection, field, value)] = obj_id
            for name, (coll, keys) in self._index_defs.items():
                if coll == collection:
                    data = self._index_data[name]
                    for k in keys(new):
                        data.setdefault(k, {})[obj_id] = None
        for hook in self._hooks.get(collection, ()):
            hook.on_change(old, new)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
