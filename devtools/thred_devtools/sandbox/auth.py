"""Two-tier auth: partner tokens (Basic credentials) and business-scoped tokens.

Business routes accept the owning partner's token or a business token for that same
business ([doc] tax-codes page; the docs disagree elsewhere, the sandbox accepts both).
"""

from __future__ import annotations

import base64
import binascii
import copy
import hmac
import time
from dataclasses import dataclass

from starlette.requests import Request

from thred_devtools.sandbox import rules
from thred_devtools.sandbox.errors import ApiError, not_found
from thred_devtools.sandbox.state import Sandbox
from thred_devtools.sandbox.store import Obj
from thred_devtools.sandbox.tokens import Claims, TokenError, verify

__all__ = [
    "Principal",
    "business_access",
    "partner_from_basic",
    "partner_only",
    "principal",
    "revoke",
]

META = "_meta"
GLOBAL_SCOPE = "_global"
REVOCATIONS_ID = "token_revocations"


@dataclass(frozen=True)
class Principal:
    partner_id: str
    business_id: str | None  # set for business tokens

    @property
    def is_partner(self) -> bool:
        return self.business_id is None


def _auth_required() -> ApiError:
    return ApiError(
        401,
        "authentication_required",
        "Authentication credentials were not provided.",
        headers={"WWW-Authenticate": "Bearer"},
    )


def _invalid_token(reason: str = "Token is invalid or expired.") -> ApiError:
    return ApiError(401, "invalid_token", reason, headers={"WWW-Authenticate": "Bearer"})


def partner_from_basic(sb: Sandbox, request: Request) -> str:
    """Check ``Authorization: Basic base64(partner_id:api_key)``; return the partner id."""
    header = request.headers.get("authorization")
    if not header:
        raise _auth_required()
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        raise ApiError(
            401,
            rules.BAD_CREDENTIALS_CODE,
            "Use HTTP Basic authentication with the partner id and API key.",
            headers={"WWW-Authenticate": "Basic"},
        )
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        decoded = ""
    partner_id, sep, api_key = decoded.partition(":")
    expected = sb.config.partners.get(partner_id) if sep else None
    if expected is None or not hmac.compare_digest(expected.encode(), api_key.encode()):
        raise ApiError(
            401,
            rules.BAD_CREDENTIALS_CODE,
            "Invalid partner credentials.",
            headers={"WWW-Authenticate": "Basic"},
        )
    return partner_id


def _revocations(sb: Sandbox) -> Obj:
    return sb.store.get(META, REVOCATIONS_ID) or {}


def revoke(sb: Sandbox, partner_id: str | None, business_id: str | None) -> float:
    """Expire every token issued up to now (optionally only a partner's or a business's)."""
    moment = time.time()
    with sb.store.transaction():
        current = copy.deepcopy(_revocations(sb))
        current.setdefault("id", REVOCATIONS_ID)
        current["_scope"] = GLOBAL_SCOPE
        if business_id:
            current.setdefault("businesses", {})[business_id] = moment
        elif partner_id:
            current.setdefault("partners", {})[partner_id] = moment
        else:
            current["all"] = moment
        sb.store.put(META, current)
    return moment


def _is_revoked(sb: Sandbox, claims: Claims) -> bool:
    rev = _revocations(sb)
    if not rev:
        return False
    cutoffs = [rev.get("all"), rev.get("partners", {}).get(claims.partner_id)]
    if claims.business_id:
        cutoffs.append(rev.get("businesses", {}).get(claims.business_id))
    return any(c is not None and claims.issued_at <= float(c) for c in cutoffs)


def principal(sb: Sandbox, request: Request) -> Principal:
    header = request.headers.get("authorization")
    if not header:
        raise _auth_required()
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _invalid_token("Expected 'Authorization: Bearer <token>'.")
    try:
        claims = verify(sb.secret, token.strip())
    except TokenError as exc:
        raise _invalid_token(
            "Token has expired." if "expired" in str(exc) else "Token is invalid."
        ) from None
    if claims.partner_id not in sb.config.partners or _is_revoked(sb, claims):
        raise _invalid_token("Token has expired.")
    if claims.kind == "business" and not claims.business_id:
        raise _invalid_token()
    return Principal(claims.partner_id, claims.business_id if claims.kind == "business" else None)


def partner_only(sb: Sandbox, request: Request) -> Principal:
    who = principal(sb, request)
    if not who.is_partner:
        raise ApiError(403, "permission_denied", "This endpoint needs the partner token.")
    return who


def business_access(sb: Sandbox, request: Request, business_id: str) -> Obj:
    """The business of the path, if the caller may act on it."""
    who = principal(sb, request)
    if not who.is_partner and who.business_id != business_id:
        raise ApiError(403, "permission_denied", "This token is scoped to a different business.")
    business = sb.store.get("businesses", business_id)
    if business is None or business.get("partner_id") != who.partner_id:
        raise not_found("businesses", "business")
    return business
