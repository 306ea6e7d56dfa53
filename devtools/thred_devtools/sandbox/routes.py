"""The front door of ``/v1/platform/...``: the dependencies every route uses, and tokens.

Every path ends with a slash, as Thred's do. Handlers are thin: FastAPI dependencies
authenticate (``Partner``, ``Business``) and hand over the sandbox; the handler parses,
calls a service under the store lock (writes inside one transaction) and answers JSON in
the documented shape. Authentication always runs before the body is looked at, so an
unauthenticated request never learns anything about validation: a write declares
``RawBody`` before ``Business``, so the body is received first (nothing can interleave
between the auth check and the transaction) but parsed only after.

The resource routers (routes_businesses, routes_parties, routes_ar, routes_ap,
routes_books) use these dependencies and helpers; ``ROUTERS`` in app.py lists them in
matching order.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Annotated, Any, TypeVar
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from thred_devtools.sandbox import core, rules, settlements
from thred_devtools.sandbox import documented as doc
from thred_devtools.sandbox.auth import (
    Principal,
    business_access,
    partner_from_basic,
    partner_only,
)
from thred_devtools.sandbox.documented import Spec, page_of, shape
from thred_devtools.sandbox.errors import ApiError, not_found, validation_error
from thred_devtools.sandbox.state import Sandbox
from thred_devtools.sandbox.store import Obj
from thred_devtools.sandbox.tokens import mint
from thred_devtools.sandbox.web import (
    paginate,
    parse_body,
    parse_json,
    q_str,
    respond,
)

__all__ = [
    "B",
    "Business",
    "P",
    "Partner",
    "RawBody",
    "SandboxDep",
    "add_write",
    "by_external_id",
    "delete_settlement",
    "detail",
    "extended_only",
    "idempotency_key",
    "in_range",
    "one",
    "page",
    "router",
    "update",
    "write",
    "write_keyed",
]

router = APIRouter()
P = "/v1/platform"
B = P + "/businesses/{business_id}"
M = TypeVar("M", bound=BaseModel)


# ====================================================================== dependencies
# All async: FastAPI runs plain ``def`` dependencies in a thread pool, which would cost a
# thread hop per request and let a dependency run beside the event loop's handlers.


async def sandbox_of(request: Request) -> Sandbox:
    sb: Sandbox = request.app.state.sandbox
    return sb


SandboxDep = Annotated[Sandbox, Depends(sandbox_of)]


async def raw_body(request: Request) -> bytes:
    return await request.body()


RawBody = Annotated[bytes, Depends(raw_body)]


async def partner_of(sb: SandboxDep, request: Request) -> Principal:
    """The caller, who must hold the partner token."""
    with sb.store.lock:
        return partner_only(sb, request)


Partner = Annotated[Principal, Depends(partner_of)]


async def business_of(sb: SandboxDep, request: Request, business_id: str) -> Obj:
    """The business of the path, if the caller's token may act on it."""
    with sb.store.lock:
        return business_access(sb, request, business_id)


Business = Annotated[Obj, Depends(business_of)]


async def extended_only(sb: SandboxDep) -> None:
    """Strict mode: answer like an unknown route (the contract records no such page).

    Used as a route-level dependency, so it runs before authentication, as a missing
    route would.
    """
    if not sb.extended_fields:
        raise StarletteHTTPException(404)


# ====================================================================== helpers


def one(sb: Sandbox, spec: Spec, body: dict[str, Any], status: int = 200) -> Response:
    return respond(status, shape(sb, spec, body))


def page(
    sb: Sandbox,
    request: Request,
    items: list[Obj],
    spec: Spec,
    view: Callable[[Obj], dict[str, Any]],
) -> Response:
    """One list page (200) of ``items`` rendered by ``view``, in the ``spec`` shape."""
    return respond(200, shape(sb, page_of(spec), paginate(request, items, view)))


def write(
    sb: Sandbox,
    request: Request,
    business: Obj,
    raw: bytes,
    model: type[M],
    service: Callable[[Sandbox, Obj, M], tuple[int, dict[str, Any]]],
    spec: Spec,
    endpoint: str | None = None,
) -> Response:
    """Parse, run ``service`` in one transaction; answer in the ``spec`` shape.

    With ``endpoint`` set (creates), an ``Idempotency-Key`` header is honoured too: the
    first successful response is cached under the key and replayed with 200.
    """
    with sb.store.transaction():
        key = idempotency_key(request) if endpoint else None
        status, out = idempotent(
            sb,
            business["id"],
            endpoint,
            key,
            lambda: service(sb, business, parse_body(model, parse_json(raw))),
        )
    return one(sb, spec, out, status)


def add_write(
    router: APIRouter,
    method: str,
    path: str,
    model: type[M],
    service: Callable[[Sandbox, Obj, M], tuple[int, dict[str, Any]]],
    spec: Spec,
    endpoint: str | None = None,
) -> None:
    """Register ``method`` on ``path`` (under the business) as a plain ``write``.

    ``endpoint`` names the Idempotency-Key cache of a create; the route is named after the
    service, as a handler of its own would be.
    """

    async def handler(
        sb: SandboxDep, raw: RawBody, business: Business, request: Request
    ) -> Response:
        return write(sb, request, business, raw, model, service, spec, endpoint)

    router.add_api_route(B + path, handler, methods=[method], name=service.__name__)


def write_keyed(
    sb: Sandbox,
    request: Request,
    business: Obj,
    raw: bytes,
    model: type[M],
    service: Callable[[Sandbox, Obj, M, str | None], tuple[int, dict[str, Any]]],
    spec: Spec,
) -> Response:
    """A create whose service answers a repeated Idempotency-Key itself (the payments:
    their body is validated before a replay, and the replay is cached under their own name).
    """
    with sb.store.transaction():
        key = idempotency_key(request)
        body = parse_body(model, parse_json(raw))
        status, out = service(sb, business, body, key)
    return one(sb, spec, out, status)


def update(
    sb: Sandbox,
    business: Obj,
    raw: bytes,
    target: tuple[str, str],
    model: type[M],
    service: Callable[[Sandbox, Obj, Obj, M], tuple[int, dict[str, Any]]],
    spec: Spec,
) -> Response:
    """Change the ``target`` (collection, id) object in one transaction; answer in ``spec``."""
    collection, obj_id = target
    with sb.store.transaction():
        obj = core.get_owned(sb, collection, business, obj_id)
        body = parse_body(model, parse_json(raw))
        status, out = service(sb, business, obj, body)
    return one(sb, spec, out, status)


def detail(
    sb: Sandbox,
    business: Obj,
    target: tuple[str, str],
    spec: Spec,
    view: Callable[[Obj], dict[str, Any]],
) -> Response:
    """One object (``target``: collection, id) of the business, in the ``spec`` shape."""
    collection, obj_id = target
    with sb.store.lock:
        return one(sb, spec, view(core.get_owned(sb, collection, business, obj_id)))


def delete_settlement(
    sb: Sandbox, business: Obj, target: tuple[str, str], entry_prefix: str
) -> Response:
    """Delete a payment (``target``: collection, id) with its journal entry, if allowed."""
    collection, obj_id = target
    with sb.store.transaction():
        payment = core.get_owned(sb, collection, business, obj_id)
        status, out = settlements.delete_payment(sb, collection, entry_prefix, payment)
    return one(sb, doc.PAYMENT_DELETE, out, status)


def idempotent(
    sb: Sandbox,
    scope: str,
    endpoint: str | None,
    key: str | None,
    run: Callable[[], tuple[int, dict[str, Any]]],
) -> tuple[int, dict[str, Any]]:
    if endpoint is None or key is None:
        return run()
    cached = core.idempotent_replay(sb, scope, endpoint, key)
    if cached is not None:
        body = dict(cached["body"])
        if isinstance(body.get("_meta"), dict):
            body["_meta"] = {"created": False, "idempotent_replay": True}
        return rules.REPLAY_STATUS, body
    status, out = run()
    if status == 201:
        core.remember_response(sb, scope, endpoint, key, str(out.get("id")), out)
    return status, out


def idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > rules.MAX_IDEMPOTENCY_KEY:
        raise validation_error(
            {"Idempotency-Key": [f"Must be 1 to {rules.MAX_IDEMPOTENCY_KEY} characters."]}
        )
    return key


def by_external_id(sb: Sandbox, request: Request, scope: str, collection: str) -> list[Obj] | None:
    """``?external_id=`` narrows a list to that one object (None: not asked)."""
    ext = q_str(request, "external_id")
    if ext is None:
        return None
    found = sb.store.find(scope, collection, "external_id", ext)
    return [found] if found else []


def listing(sb: Sandbox, request: Request, scope: str, collection: str) -> list[Obj]:
    """The objects a list starts from: the ``external_id`` match, or all of them."""
    items = by_external_id(sb, request, scope, collection)
    return sb.store.scan(scope, collection) if items is None else items


def in_range(value: str | None, start: dt.date | None, end: dt.date | None) -> bool:
    if start is None and end is None:
        return True
    day = core.date_of(value)
    if day is None:
        return False
    return (start is None or day >= start) and (end is None or day <= end)


# ====================================================================== auth


def _body_fields(request: Request, raw: bytes) -> dict[str, Any]:
    """Best-effort read of a token request body (JSON, form or multipart; all optional)."""
    ctype = request.headers.get("content-type", "")
    text = raw.decode("utf-8", "replace").strip()
    if not text:
        return {}
    if "json" in ctype or text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}
    if "x-www-form-urlencoded" in ctype:
        return {k: v[0] for k, v in parse_qs(text).items()}
    return {}  # multipart: only the Basic header matters


def _token(sb: Sandbox, partner_id: str, business_id: str | None = None) -> dict[str, Any]:
    ttl = sb.config.token_ttl_s
    out: dict[str, Any] = {
        "access_token": mint(sb.secret, partner_id, ttl, business_id),
        "token_type": rules.TOKEN_TYPE,
        "expires_in": ttl,
    }
    if business_id is None:
        out["scope"] = rules.PARTNER_TOKEN_SCOPE
    else:
        out.update(scope=rules.BUSINESS_TOKEN_SCOPE, business_id=business_id)
    return out


@router.post(P + "/oauth2/token/")
async def partner_token(sb: SandboxDep, raw: RawBody, request: Request) -> Response:
    partner_id = partner_from_basic(sb, request)
    fields = _body_fields(request, raw)
    grant = fields.get("grant_type")
    if grant is not None and grant != "client_credentials":
        raise ApiError(
            400,
            "validation_error",
            "Unsupported grant_type.",
            {"grant_type": ['Must be "client_credentials".']},
        )
    client_id = fields.get("client_id")
    if client_id is not None and client_id != partner_id:
        raise ApiError(
            401, rules.BAD_CREDENTIALS_CODE, "client_id does not match the Basic credentials."
        )
    return one(sb, doc.PARTNER_TOKEN, _token(sb, partner_id))


@router.post(P + "/{business_id}/oauth2/token/")
async def business_token(sb: SandboxDep, who: Partner, business_id: str) -> Response:
    with sb.store.lock:
        business = sb.store.get("businesses", business_id)
        if business is None or business["partner_id"] != who.partner_id:
            raise not_found("businesses", "business")
    return one(sb, doc.BUSINESS_TOKEN, _token(sb, who.partner_id, business_id))
