"""Settings from the environment, shared by the CLI, the demo and the Dagster resources.

Every knob is an environment variable (README has the table). The defaults describe the
embedded mode: SQLite files under ``THRED_HOME`` and the local sandbox on 127.0.0.1:8765.

A wrong setting is reported as a ``SettingsError``: one line that names the environment
variable and never contains a key or a database password. The helpers below open the
warehouse and the ledger and check them before a run starts (``open_warehouse``,
``open_ledger``), so that a typo fails the command with that line instead of a traceback
halfway through a run.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, SecretStr, ValidationError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

    from thred_pipeline.entities import EntitySpec
    from thred_pipeline.ledger import SyncLedger
    from thred_pipeline.thred.settings import ThredSettings
    from thred_pipeline.warehouse.extract import Warehouse

DEMO_PARTNER_ID = "demo-partner"
DEMO_API_KEY = "sandbox-demo-key"  # the sandbox's built-in demo credential, not a real secret
DEFAULT_SANDBOX_PORT = 8765

WAREHOUSE_URL = "THRED_WAREHOUSE_URL"
LEDGER_URL = "THRED_LEDGER_URL"

# ThredSettings field -> the environment variable it comes from.
_THRED_FIELDS = {
    "base_url": "THRED_BASE_URL",
    "partner_id": "THRED_PARTNER_ID",
    "api_key": "THRED_API_KEY",
    "timeout_s": "THRED_TIMEOUT_S",
    "max_attempts": "THRED_MAX_ATTEMPTS",
    "verify_tls": "THRED_VERIFY_TLS",
    "allow_insecure_tls": "THRED_ALLOW_INSECURE_TLS",
    "rate_per_business": "THRED_RATE_PER_BUSINESS",
    "rate_burst": "THRED_RATE_BURST",
}


class SettingsError(Exception):
    """A setting is wrong. ``str()`` is one line naming ``setting``; no secret in it."""

    def __init__(self, setting: str, message: str) -> None:
        line = " ".join(message.split())
        super().__init__(line)
        self.setting = setting
        self.message = line

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.setting, self.message))


def thred_home() -> Path:
    return Path(os.environ.get("THRED_HOME", ".thred")).resolve()


def default_warehouse_url() -> str:
    return f"sqlite:///{thred_home() / 'warehouse.db'}"


def default_ledger_url() -> str:
    return f"sqlite:///{thred_home() / 'ledger.db'}"


def database_url(url: str) -> str:
    """The URL SQLAlchemy should get for ``THRED_WAREHOUSE_URL`` / ``THRED_LEDGER_URL``.

    A plain ``postgresql://`` URL (what PostgreSQL itself, psql and most platforms print)
    names no driver; SQLAlchemy 2.1 then loads psycopg 3, which is not installed. It is
    rewritten to ``postgresql+psycopg2://``, the driver the project installs. Everything
    else is returned unchanged (surrounding whitespace removed).
    """
    text = url.strip()
    if text.startswith("postgresql://"):
        return "postgresql+psycopg2://" + text[len("postgresql://") :]
    return text


_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")


def masked_url(url: str | URL) -> str:
    """The URL for messages and logs, with any password replaced by ``***``."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if not isinstance(url, str):
        return url.render_as_string(hide_password=True)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return _URL_PASSWORD.sub(r"\1***@", url)


_DATABASE_URL_FIELDS = ("warehouse_url", "ledger_url")


class PipelineSettings(BaseModel):
    warehouse_url: str
    ledger_url: str
    thred_base_url: str
    partner_id: str
    api_key: SecretStr
    lookback_hours: float = 2.0
    concurrency: int = 10
    timeout_s: float = 30.0
    max_attempts: int = 6
    verify_tls: bool = True
    allow_insecure_tls: bool = False
    rate_per_business: float | None = None  # None: unknown, the rate governor finds it
    rate_burst: int | None = None

    def __repr_args__(self) -> Iterable[tuple[str | None, Any]]:
        """repr() and str(): a database URL may carry its password (the key is a SecretStr)."""
        for name, value in super().__repr_args__():
            yield name, masked_url(value) if name in _DATABASE_URL_FIELDS else value

    @classmethod
    def from_env(cls) -> PipelineSettings:
        """Read the environment; a malformed number raises ``SettingsError`` naming it."""
        env = os.environ
        return cls(
            warehouse_url=database_url(env.get(WAREHOUSE_URL, default_warehouse_url())),
            ledger_url=database_url(env.get(LEDGER_URL, default_ledger_url())),
            thred_base_url=env.get("THRED_BASE_URL", f"http://127.0.0.1:{DEFAULT_SANDBOX_PORT}"),
            partner_id=env.get("THRED_PARTNER_ID", DEMO_PARTNER_ID),
            api_key=SecretStr(env.get("THRED_API_KEY", DEMO_API_KEY)),
            lookback_hours=_number("THRED_LOOKBACK_HOURS", "2", float, minimum=0),
            concurrency=int(_number("THRED_CONCURRENCY", "10", int, minimum=1)),
            timeout_s=_number("THRED_TIMEOUT_S", "30", float, minimum=0, inclusive=False),
            max_attempts=int(_number("THRED_MAX_ATTEMPTS", "6", int, minimum=1)),
            verify_tls=env.get("THRED_VERIFY_TLS", "1") != "0",
            allow_insecure_tls=env.get("THRED_ALLOW_INSECURE_TLS", "") == "1",
            rate_per_business=_optional_number(
                "THRED_RATE_PER_BUSINESS", float, minimum=0, inclusive=False
            ),
            rate_burst=_optional_int("THRED_RATE_BURST", minimum=1),
        )

    def thred_settings(self) -> ThredSettings:
        """The client's settings; an invalid value raises ``SettingsError`` naming its variable."""
        from thred_pipeline.thred.settings import ThredSettings

        same_names = {name: getattr(self, name) for name in _THRED_FIELDS if name != "base_url"}
        try:
            return ThredSettings(base_url=self.thred_base_url, **same_names)
        except ValidationError as exc:
            # hide_input_in_errors: the messages never carry the rejected value (a key).
            first = exc.errors()[0]
            field = str(first["loc"][0]) if first["loc"] else ""
            setting = _THRED_FIELDS.get(field, "THRED_VERIFY_TLS")
            reason = str(first["msg"]).removeprefix("Value error, ")
            raise SettingsError(setting, f"{setting}: {reason}") from None


def _number(
    name: str, default: str, kind: type[float], *, minimum: float, inclusive: bool = True
) -> float:
    text = os.environ.get(name, default).strip()
    try:
        value = kind(text)
    except ValueError:
        raise SettingsError(
            name, f"{name} must be {'an integer' if kind is int else 'a number'}, got {text!r}"
        ) from None
    if value < minimum or (not inclusive and value == minimum):
        bound = f">= {minimum:g}" if inclusive else f"> {minimum:g}"
        raise SettingsError(name, f"{name} must be {bound}, got {text!r}")
    return value


def _optional_number(
    name: str, kind: type[float], *, minimum: float, inclusive: bool = True
) -> float | None:
    """Unset or empty: ``None`` (the client's own default); otherwise checked like ``_number``."""
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    return _number(name, text, kind, minimum=minimum, inclusive=inclusive)


def _optional_int(name: str, *, minimum: int) -> int | None:
    value = _optional_number(name, int, minimum=minimum)
    return None if value is None else int(value)


# -- databases ---------------------------------------------------------------------------------


def _db_reason(exc: BaseException) -> str:
    """The driver's own first line (never the SQL statement or its parameters)."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _parse(setting: str, url: str) -> URL:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url)
    except (ArgumentError, ValueError):
        raise SettingsError(
            setting,
            f"{setting}={masked_url(url)} is not a database URL; expected e.g. "
            "sqlite:///path/to/file.db or postgresql://user:password@host:5432/db",
        ) from None


def _require_sqlite_file(setting: str, url: URL, hint: str) -> None:
    """A SQLite URL must name an existing file: SQLite would create a missing one, empty."""
    database = url.database or ""
    if url.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        return
    if database.startswith("file:"):
        return
    path = Path(database).expanduser()
    if not path.is_file():
        raise SettingsError(
            setting,
            f"{setting}={masked_url(url)}: the SQLite file {path} does not exist ({hint})",
        )


def _reason(url: URL, exc: BaseException) -> str:
    reason = _db_reason(exc)
    password = url.password
    if isinstance(password, str) and password:
        reason = reason.replace(password, "***")
    return reason


def _connect_error(setting: str, url: URL, exc: BaseException) -> SettingsError:
    return SettingsError(
        setting, f"{setting}={masked_url(url)}: cannot connect: {_reason(url, exc)}"
    )


def _driver_error(setting: str, url: URL, exc: BaseException) -> SettingsError:
    return SettingsError(
        setting,
        f"{setting}={masked_url(url)}: unsupported database URL ({_reason(url, exc)}); "
        "use sqlite:///path/to/file.db or postgresql://user:password@host:5432/db",
    )


def required_tables(specs: Iterable[EntitySpec]) -> list[str]:
    """Warehouse tables the given entities read (their own, their children, their parents')."""
    from thred_pipeline import entities
    from thred_pipeline.warehouse import schema as wh

    names: dict[str, None] = {wh.businesses.name: None}
    for spec in specs:
        for entity in (spec, *(entities.get(ref.entity) for ref in spec.refs)):
            names[entity.table.name] = None
            for child in entity.children:
                names[child.table.name] = None
    return list(names)


def open_warehouse(url: str, specs: Iterable[EntitySpec] | None = None) -> Warehouse:
    """The warehouse at ``url``, checked: it exists, answers, and has the contract's tables.

    A SQLite path whose file does not exist is refused rather than created empty (a typo
    in ``THRED_WAREHOUSE_URL`` would otherwise sync nothing, successfully).
    """
    from sqlalchemy import inspect
    from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

    from thred_pipeline import entities
    from thred_pipeline.warehouse.db import create_warehouse_engine
    from thred_pipeline.warehouse.extract import Warehouse

    setting = WAREHOUSE_URL
    parsed = _parse(setting, database_url(url))
    _require_sqlite_file(setting, parsed, "create it with `thred-dev seed`, or fix the path")
    try:
        engine = create_warehouse_engine(parsed)
    except (ValueError, ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise _driver_error(setting, parsed, exc) from None
    try:
        with engine.connect() as conn:
            inspector = inspect(conn)
            present = set(inspector.get_table_names()) | set(inspector.get_view_names())
    except DBAPIError as exc:
        engine.dispose()
        raise _connect_error(setting, parsed, exc) from None
    wanted = required_tables(entities.ENTITIES if specs is None else specs)
    missing = [name for name in wanted if name not in present]
    if missing:
        engine.dispose()
        raise SettingsError(
            setting,
            f"{setting}={masked_url(parsed)}: not a warehouse of this pipeline, missing "
            f"table(s) {', '.join(missing)} (see docs/warehouse-contract.md)",
        )
    return Warehouse(engine)


def open_ledger(url: str, *, must_exist: bool = False) -> SyncLedger:
    """The sync ledger at ``url``, or ``SettingsError`` naming the setting.

    By default (``sync``, ``reconcile``) a new ledger is created: a SQLite file, or the table
    in an empty database. With ``must_exist`` (``status``, ``quarantine``: they only read or
    release what a sync wrote) a SQLite path that does not exist, or a database without the
    ledger's table, is refused and nothing is created: a typo would otherwise report an empty,
    healthy ledger.
    """
    from sqlalchemy import inspect
    from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

    from thred_pipeline.ledger import SyncLedger, create_ledger_engine, ledger_table

    setting = LEDGER_URL
    normalized = database_url(url)
    parsed = _parse(setting, normalized)
    if must_exist:
        why = "no sync has used this ledger yet, or the path is wrong"
        _require_sqlite_file(setting, parsed, why)
    try:
        if not must_exist:
            return SyncLedger.from_url(normalized)
        engine = create_ledger_engine(normalized)
        try:
            with engine.connect() as conn:
                present = inspect(conn).has_table(ledger_table.name)
        except BaseException:
            engine.dispose()
            raise
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise _driver_error(setting, parsed, exc) from None
    except (DBAPIError, OSError) as exc:
        raise _connect_error(setting, parsed, exc) from None
    if not present:
        engine.dispose()
        raise SettingsError(
            setting,
            f"{setting}={masked_url(parsed)}: no sync ledger there (table {ledger_table.name} "
            "is missing: no sync has used this database yet, or the URL is wrong)",
        )
    return SyncLedger(engine)
