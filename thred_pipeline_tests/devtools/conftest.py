"""The seed's tests use the warehouse suite's seeded data fixtures."""

from thred_pipeline_tests.warehouse.conftest import (  # noqa: F401  (pytest fixtures)
    default_config,
    default_data,
    pg_seeded_url,
    sqlite_seeded,
)
