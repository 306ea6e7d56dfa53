"""Every Thred URL path the client builds, in one place.

Thred serves everything under ``/v1/platform/`` and every path ends with a slash. The two
token endpoints are deliberately asymmetric (the business token has *no* ``businesses/``
segment), which is exactly the kind of detail to keep out of call sites.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

__all__ = [
    "API_PREFIX",
    "business_resource",
    "business_token_path",
    "chart_of_accounts_path",
    "check_business_id",
    "partner_token_path",
    "platform_path",
    "tax_codes_path",
]

API_PREFIX = "/v1/platform/"

# Thred ids are UUIDs; the sandbox may use other simple ids. Anything that could change the
# meaning of a URL (slashes, dots-only segments, query or fragment characters) is refused.
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
_SEGMENT_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")


def check_business_id(business_id: str) -> str:
    """Return ``business_id`` if it is safe to put into a URL path, else raise ValueError."""
    if not _ID_RE.match(business_id) or ".." in business_id:
        raise ValueError(f"not a valid business id: {business_id!r}")
    return business_id


def platform_path(path: str) -> str:
    """Turn a path relative to ``/v1/platform/`` into the absolute URL path.

    ``"businesses"`` and ``"/businesses/"`` both become ``/v1/platform/businesses/``: the
    trailing slash is added because Thred's routes require it. Absolute URLs, query strings,
    and ``..`` segments are refused (query parameters go in ``params``), so a path taken
    from a response can never redirect the credentials elsewhere.
    """
    if "://" in path or path.startswith("//") or urlsplit(path).netloc:
        raise ValueError("path must be relative to /v1/platform/, not an absolute URL")
    if "?" in path or "#" in path:
        raise ValueError("pass query parameters via params=, not in the path")
    stripped = path.strip("/")
    if stripped.startswith("v1/platform/") or stripped == "v1/platform":
        stripped = stripped[len("v1/platform") :].strip("/")
    segments = [s for s in stripped.split("/") if s]
    for segment in segments:
        if segment in (".", "..") or not _SEGMENT_RE.match(segment):
            raise ValueError(f"invalid path segment: {segment!r}")
    if not segments:
        raise ValueError("path must not be empty")
    return API_PREFIX + "/".join(segments) + "/"


def partner_token_path() -> str:
    """``POST`` here with Basic partner credentials for the partner ("unscoped") token."""
    return API_PREFIX + "oauth2/token/"


def business_token_path(business_id: str) -> str:
    """``POST`` here with the partner token for a token scoped to one business."""
    return f"{API_PREFIX}{check_business_id(business_id)}/oauth2/token/"


def business_resource(business_id: str, *parts: str) -> str:
    """Relative path of a business's resource: ``businesses/{id}/invoices/payments/``.

    The result is meant for ``ThredClient.request`` (which prefixes ``/v1/platform/``).
    """
    tail = "/".join(p.strip("/") for p in parts if p.strip("/"))
    base = f"businesses/{check_business_id(business_id)}/"
    return base + (tail + "/" if tail else "")


def tax_codes_path(business_id: str) -> str:
    """Relative path of a business's tax codes (not paginated: a plain list)."""
    return business_resource(business_id, "tax-codes")


def chart_of_accounts_path(business_id: str) -> str:
    """Relative path of a business's chart of accounts (paginated: read with ``iter_pages``)."""
    return business_resource(business_id, "general-ledger", "chart-of-accounts")
