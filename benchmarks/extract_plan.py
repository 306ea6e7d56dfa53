"""B5's subject, run in a fresh process so its peak RSS is its own (``wait4``).

``python -m benchmarks.extract_plan <warehouse-url> <start> <end>`` streams every invoice of
the window (with its line items) through the product's warehouse extraction, and hashes each
record as the no-change plan does before it compares with the ledger. It prints the number
of records, then ``peak_rss_kb <n>``: its own peak RSS (``VmHWM``). A parent's ``wait4`` is not
that figure: the kernel counts the parent's RSS at the fork in the child's ``ru_maxrss``, so
a harness with 90 MB of its own reads at least 90 MB whatever the subject uses. Nothing is sent
and nothing is written.
"""

from __future__ import annotations

import hashlib
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from thred_pipeline import entities
from thred_pipeline.core.records import TimeWindow
from thred_pipeline.warehouse.extract import Warehouse


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def main(argv: list[str]) -> int:
    url, start, end = argv
    window = TimeWindow(_moment(start), _moment(end))
    warehouse = Warehouse(url)
    records = 0
    digest = hashlib.sha256()
    try:
        for chunk in warehouse.iter_changed(entities.get("invoices").source, window):
            for record in chunk:
                digest.update(
                    hashlib.sha256(
                        json.dumps(record.row, sort_keys=True, default=str).encode()
                    ).digest()
                )
                records += 1
    finally:
        warehouse.close()
    print(records)
    print(f"peak_rss_kb {peak_rss_kb()}")
    return 0


def peak_rss_kb() -> int:
    """This process's peak RSS since its exec (``VmHWM``; Linux), in kB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
