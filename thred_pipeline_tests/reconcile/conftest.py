"""Reconciliation fixtures: the sync suite's real environments (warehouse, ledger, sandbox)."""

from thred_pipeline_tests.sync.conftest import backend, env, seed_data

__all__ = ["backend", "env", "seed_data"]
