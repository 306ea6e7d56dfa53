"""A local Thred-compatible Platform API server (FastAPI + uvicorn), like stripe-mock or moto.

It implements the documented contract in thred-api.md: two-tier auth and business scoping,
201/200 idempotency on external_id and Idempotency-Key, ordering and tax validation, the
documented error and list shapes, and a real double-entry ledger behind balances, aging
and reports. Responses carry exactly the documented fields (``documented.py``) unless the
sandbox runs with ``extended_fields``; a repeated external_id answers 200 or, switched,
409 (docs/thred-contract.md). Undocumented choices live in ``rules.py``; test hooks in
``admin.py``; fault switches in ``faults.py``.

Receivables and payables are one implementation on a ``Side`` (``sides.py``): documents
(``documents.py``: invoices and bills), parties (``parties.py``), settlements
(``settlements.py``: payments and vendor credits) and aging take ``AR`` or ``AP``;
``invoices.py``/``bills.py`` add only each document's own fields and shape. Routes are
split by resource (``routes_*.py``) on the FastAPI dependencies of ``routes.py``.
"""

from thred_devtools.sandbox.app import create_app
from thred_devtools.sandbox.config import FaultConfig, SandboxConfig
from thred_devtools.sandbox.server import RunningSandbox, serve, start_sandbox

__all__ = ["FaultConfig", "RunningSandbox", "SandboxConfig", "create_app", "serve", "start_sandbox"]
