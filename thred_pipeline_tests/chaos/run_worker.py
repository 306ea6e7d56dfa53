"""A Dagster run worker for the SIGKILL scenario: materializes partitions in order, like a
backfill, against the warehouse, ledger and sandbox named by the THRED_* environment.

Prints ``ready`` once imported and one JSON line per finished partition; the test kills it
with SIGKILL at random moments and starts it again from the first unfinished partition.

    python -m thred_pipeline_tests.chaos.run_worker 2026-09-01 2026-09-02 ...
"""

from __future__ import annotations

import json
import os
import sys

import dagster as dg

from thred_pipeline_tests.chaos.dagster_runs import (
    TunedThredResource,
    fast_retry_assets,
    resources,
    summarize,
)


def main(partitions: list[str]) -> int:
    env = os.environ
    thred = TunedThredResource(
        base_url=env["THRED_BASE_URL"],
        partner_id=env["THRED_PARTNER_ID"],
        api_key=dg.EnvVar("THRED_API_KEY"),
        timeout_s=5.0,
        backoff_base_s=0.05,
        backoff_max_s=0.5,
    )
    push = fast_retry_assets()
    res = resources(env["THRED_WAREHOUSE_URL"], env["THRED_LEDGER_URL"], thred, 2.0)
    quiet = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
    print("ready", flush=True)
    ok = True
    for partition in partitions:
        result = dg.materialize(
            push, partition_key=partition, resources=res, run_config=quiet, raise_on_error=False
        )
        summary = summarize(partition, result)
        ok = ok and summary.success and not summary.checks_failed
        line = {
            "partition": partition,
            "success": summary.success,
            "checks_failed": summary.checks_failed,
            "warnings_failed": summary.warnings_failed,
            "window_differences": [
                {
                    k: d.get(k)
                    for k in ("entity", "source_id", "kind", "field", "cause", "explanation")
                }
                for c in summary.checks
                if not c.passed
                for d in c.differences
            ],
            "outcomes": dict(summary.outcomes),
        }
        print(json.dumps(line), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
