"""B5's subject, run in a fresh process so its peak RSS is its own (``wait4``).

``python -m benchmarks.extract_plan <warehouse-url> <start> <end>`` streams every invoice of
the window (with its line items) through the product's warehouse extraction, and hashes each
record as the no-change plan does before it compares with the ledger. It prints the number
of records. Nothing is sent and nothing is written.
"""

from __future__ import annotations

import hashlib
import json
import sys
from datetime import UTC, datetime

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
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
