"""``create_app``: the FastAPI application of the Thred sandbox."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from thred_devtools.sandbox import (
    admin,
    routes,
    routes_ap,
    routes_ar,
    routes_books,
    routes_businesses,
    routes_parties,
    rules,
)
from thred_devtools.sandbox.config import SandboxConfig
from thred_devtools.sandbox.errors import ApiError, error_body
from thred_devtools.sandbox.faults import FaultMiddleware
from thred_devtools.sandbox.middleware import BodyLimitMiddleware, StatsMiddleware
from thred_devtools.sandbox.state import Sandbox

__all__ = ["ROUTERS", "create_app"]

# The Platform API routers, in registration order (routes.py holds their dependencies).
ROUTERS = (
    routes.router,
    routes_businesses.router,
    routes_parties.router,
    routes_ar.router,
    routes_ap.router,
    routes_books.router,
)

log = logging.getLogger(__name__)


async def _api_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers or None)


async def _http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        body = error_body("Not found.", rules.NOT_FOUND_CODE)
    elif exc.status_code == 405:
        body = error_body("Method not allowed.", rules.METHOD_NOT_ALLOWED_CODE)
    else:
        body = error_body(str(exc.detail), "http_error")
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def _request_validation(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    details: dict[str, list[str]] = {}
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
        details.setdefault(".".join(loc) or "non_field_errors", []).append(str(err.get("msg")))
    return JSONResponse(
        error_body("Validation failed.", "validation_error", details), status_code=400
    )


async def _unexpected(_: Request, exc: Exception) -> Response:
    log.exception("sandbox bug", exc_info=exc)
    return JSONResponse(
        error_body("Internal server error.", rules.SERVER_ERROR_CODE), status_code=500
    )


def create_app(config: SandboxConfig) -> FastAPI:
    """Build the sandbox app; state is loaded from ``config.data_dir`` when set."""
    sb = Sandbox(config)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        sb.close()

    admin_on = config.admin_enabled
    app = FastAPI(
        title="Thred sandbox",
        description="Local Thred-compatible Platform API (see thred-api.md).",
        docs_url="/_sandbox/docs" if admin_on else None,
        redoc_url=None,
        openapi_url="/_sandbox/openapi.json" if admin_on else None,
        lifespan=lifespan,
    )
    # Thred's paths end with a slash; a missing slash is a client bug, not a redirect.
    app.router.redirect_slashes = False
    app.state.sandbox = sb
    for router in ROUTERS:
        app.include_router(router)
    if admin_on:
        app.include_router(admin.router)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(Exception, _unexpected)
    # Added innermost first: Stats wraps BodyLimit wraps Faults wraps the routes. The body is
    # read before a fault can hang the request, so a hung write still commits afterwards.
    app.add_middleware(FaultMiddleware, controller=sb.faults)
    app.add_middleware(BodyLimitMiddleware, max_bytes=config.max_body_bytes)
    # Route templates come from our own routers (FastAPI may wrap included routers).
    own_routes = [r for router in ROUTERS for r in router.routes]
    own_routes += admin.router.routes if admin_on else []
    app.add_middleware(StatsMiddleware, sandbox=sb, routes=lambda: own_routes)
    return app
