"""Settings from the environment, shared by the CLI, the demo and the Dagster resources.

Every knob is an environment variable (README has the table). The defaults describe the
embedded mode: SQLite files under ``THRED_HOME`` and the local sandbox on 127.0.0.1:8765.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, SecretStr

DEMO_PARTNER_ID = "demo-partner"
DEMO_API_KEY = "sandbox-demo-key"  # the sandbox's built-in demo credential, not a real secret
DEFAULT_SANDBOX_PORT = 8765


def thred_home() -> Path:
    return Path(os.environ.get("THRED_HOME", ".thred")).resolve()


def default_warehouse_url() -> str:
    return f"sqlite:///{thred_home() / 'warehouse.db'}"


def default_ledger_url() -> str:
    return f"sqlite:///{thred_home() / 'ledger.db'}"


class PipelineSettings(BaseModel):
    warehouse_url: str
    ledger_url: str
    thred_base_url: str
    partner_id: str
    api_key: SecretStr
    lookback_hours: float = 2.0
    concurrency: int = 4
    timeout_s: float = 30.0
    verify_tls: bool = True
    allow_insecure_tls: bool = False

    @classmethod
    def from_env(cls) -> PipelineSettings:
        env = os.environ
        return cls(
            warehouse_url=env.get("THRED_WAREHOUSE_URL", default_warehouse_url()),
            ledger_url=env.get("THRED_LEDGER_URL", default_ledger_url()),
            thred_base_url=env.get("THRED_BASE_URL", f"http://127.0.0.1:{DEFAULT_SANDBOX_PORT}"),
            partner_id=env.get("THRED_PARTNER_ID", DEMO_PARTNER_ID),
            api_key=SecretStr(env.get("THRED_API_KEY", DEMO_API_KEY)),
            lookback_hours=float(env.get("THRED_LOOKBACK_HOURS", "2")),
            concurrency=int(env.get("THRED_CONCURRENCY", "4")),
            timeout_s=float(env.get("THRED_TIMEOUT_S", "30")),
            verify_tls=env.get("THRED_VERIFY_TLS", "1") != "0",
            allow_insecure_tls=env.get("THRED_ALLOW_INSECURE_TLS", "") == "1",
        )
