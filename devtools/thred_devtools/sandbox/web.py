"""HTTP plumbing shared by the route modules: bodies, query parameters, pagination."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

from thred_devtools.sandbox import rules
from thred_devtools.sandbox.errors import ApiError, pydantic_details, validation_error
from thred_devtools.sandbox.store import Obj

__all__ = [
    "page_params",
    "paginate",
    "parse_body",
    "parse_json",
    "q_bool",
    "q_date",
    "q_int",
    "q_list",
    "q_str",
    "respond",
]

M = TypeVar("M", bound=BaseModel)


def parse_json(raw: bytes) -> dict[str, Any]:
    """The JSON object of a body; an empty body counts as ``{}``."""
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        msg = f"Malformed JSON: {exc}" if isinstance(exc, ValueError) else "Malformed JSON."
        raise ApiError(400, rules.MALFORMED_JSON_CODE, msg, {"non_field_errors": [msg]}) from None
    problem = _json_problem(data, rules.MAX_JSON_DEPTH)
    if problem:
        raise ApiError(400, rules.MALFORMED_JSON_CODE, problem, {"non_field_errors": [problem]})
    if not isinstance(data, dict):
        msg = "Expected a JSON object."
        raise ApiError(400, rules.MALFORMED_JSON_CODE, msg, {"non_field_errors": [msg]})
    return data


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _json_problem(value: Any, limit: int) -> str | None:
    """Refuse what would break later: absurd nesting, strings that are not valid UTF-8."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return "Malformed JSON: strings must be valid Unicode (no lone surrogates)."
        elif isinstance(item, dict | list):
            if depth > limit:
                return f"JSON nested deeper than {limit} levels."
            if isinstance(item, dict):
                stack.extend((key, depth) for key in item)
                stack.extend((child, depth + 1) for child in item.values())
            else:
                stack.extend((child, depth + 1) for child in item)
    return None


def parse_body(model: type[M], data: dict[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = pydantic_details(exc)
        first = next(iter(details.items()), ("non_field_errors", ["Invalid input."]))
        raise validation_error(details, f"{first[0]}: {first[1][0]}") from None
    except RecursionError:
        raise validation_error("Input is nested too deeply.") from None


def respond(status: int, body: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)


def q_str(request: Request, name: str) -> str | None:
    value = request.query_params.get(name)
    return value if value not in (None, "") else None


def q_list(request: Request, name: str) -> list[str] | None:
    value = q_str(request, name)
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def q_bool(request: Request, name: str) -> bool | None:
    value = q_str(request, name)
    if value is None:
        return None
    lowered = value.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise validation_error({name: ["Must be a valid boolean."]})


def q_int(request: Request, name: str, minimum: int | None = None) -> int | None:
    value = q_str(request, name)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise validation_error({name: ["A valid integer is required."]}) from None
    if minimum is not None and number < minimum:
        raise validation_error(
            {name: [f"Ensure this value is greater than or equal to {minimum}."]}
        )
    return number


def q_date(request: Request, name: str) -> dt.date | None:
    value = q_str(request, name)
    if value is None:
        return None
    try:
        return (
            dt.date.fromisoformat(value[:10]) if len(value) >= 10 else dt.date.fromisoformat(value)
        )
    except ValueError:
        raise validation_error({name: ["Date has wrong format. Use YYYY-MM-DD."]}) from None


def page_params(request: Request) -> tuple[int, int]:
    page = q_int(request, "page")
    size = q_int(request, "page_size")
    details: dict[str, list[str]] = {}
    if page is not None and page < 1:
        details["page"] = ["Ensure this value is greater than or equal to 1."]
    if size is not None and not 1 <= size <= rules.MAX_PAGE_SIZE:
        details["page_size"] = [f"Ensure this value is between 1 and {rules.MAX_PAGE_SIZE}."]
    if details:
        raise validation_error(details)
    return page or 1, size or rules.DEFAULT_PAGE_SIZE


def paginate(
    request: Request, items: Sequence[Obj], serialize: Callable[[Obj], dict[str, Any]]
) -> dict[str, Any]:
    """``{count, page_info, results, next, previous}`` ([doc] + the DRF reading)."""
    page, size = page_params(request)
    total = len(items)
    pages = max(rules.MIN_TOTAL_PAGES, math.ceil(total / size))
    chunk = items[(page - 1) * size : page * size]
    next_url = str(request.url.include_query_params(page=page + 1)) if page < pages else None
    prev_url = None
    if page > 1:
        prev_url = str(request.url.include_query_params(page=min(page - 1, pages)))
    return {
        "count": total,
        "page_info": {
            "total_count": total,
            "current_page": page,
            "total_pages": pages,
            "page_size": size,
        },
        "results": [serialize(obj) for obj in chunk],
        "next": next_url,
        "previous": prev_url,
    }
