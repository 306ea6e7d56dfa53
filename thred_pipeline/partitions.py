"""The only place partition definitions live: daily UTC windows of warehouse ``updated_at``.

Tenants are iterated inside each run rather than partitioned: 365 days x N businesses would
exceed Dagster's ~100k partitions guidance within a year.
"""

from __future__ import annotations

import os

import dagster as dg

PARTITION_START = os.environ.get("THRED_PARTITION_START", "2026-01-01")

daily_partitions = dg.DailyPartitionsDefinition(start_date=PARTITION_START, timezone="UTC")
