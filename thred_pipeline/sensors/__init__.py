"""Sensors: what keeps the sync running without anyone watching the UI.

- ``books_after_nightly_sync`` (``books``): reconcile the books once after a nightly (or
  catch-up) batch.
- ``run_failure_alert`` / ``run_recovered_alert`` (``run_alerts``) and ``check_alert``
  (``check_alerts``): post to the team's webhook (``thred_pipeline.alerts``) once per state
  change: a job (and partition) that starts failing, that succeeds again, a check that starts
  failing or warning, that passes again.
- ``catch_up_missed_nights`` (``catch_up``): every night that failed or was missed is requested
  again, oldest first, bounded, each attempt once.
- ``sync_new_businesses`` (``onboarding``): a business that becomes active (new, or
  reactivated) is synced within minutes instead of waiting for the night.
- ``freshness_checks_sensor``: Dagster's own, evaluating the freshness checks.

Settings are environment variables read when a sensor ticks, i.e. in the user-code server's
environment (see README and docs/runbook.md).
"""

from __future__ import annotations

import warnings

import dagster as dg

from thred_pipeline.assets import FRESHNESS_CHECKS
from thred_pipeline.schedules import SENSOR_STATUS
from thred_pipeline.sensors.books import books_after_nightly_sync
from thred_pipeline.sensors.catch_up import catch_up_missed_nights
from thred_pipeline.sensors.check_alerts import check_alert
from thred_pipeline.sensors.onboarding import sync_new_businesses
from thred_pipeline.sensors.run_alerts import run_failure_alert, run_recovered_alert

# Dagster's own sensor factory passes `owners` (a beta parameter) when the code location loads.
warnings.filterwarnings(
    "ignore", r"Parameter `owners` of initializer `SensorDefinition", dg.BetaWarning
)
with warnings.catch_warnings():  # "superseded" by FreshnessPolicy: see assets.FRESHNESS_CHECKS
    warnings.simplefilter("ignore")
    freshness_checks_sensor = dg.build_sensor_for_freshness_checks(
        freshness_checks=FRESHNESS_CHECKS,
        name="freshness_checks_sensor",
        minimum_interval_seconds=5 * 60,
        default_status=SENSOR_STATUS,
    )

ALL_SENSORS = [
    books_after_nightly_sync,
    run_failure_alert,
    run_recovered_alert,
    check_alert,
    catch_up_missed_nights,
    sync_new_businesses,
    freshness_checks_sensor,
]
