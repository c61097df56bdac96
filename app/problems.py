"""RFC 9457 problem responses: every 4xx says what was wrong and how to fix it."""

from __future__ import annotations

import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from spatial.errors import ValidationError

MEDIA_TYPE = "application/problem+json"
# Sent on every response (middleware.SecurityHeaders), and by the 500 handler, which answers outside it.
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "strict-origin-when-cross-origin"}


class ProblemError(Exception):
    def __init__(
        self, status: int, title: str, detail: str, *, code: str | None = None, headers: dict | None = None, **extra
    ):
        self.status, self.title, self.detail, self.code, self.headers, self.extra = (
            status,
            title,
            detail,
            code,
            headers,
            extra,
        )


def problem_response(
    status: int,
    title: str,
    detail: str,
    *,
    code: str | None = None,
    instance: str | None = None,
    headers: dict | None = None,
    **extra,
) -> JSONResponse:
    body = {"type": f"https://segmap.dev/problems/{code or status}", "title": title, "status": status, "detail": detail}
    if instance:
        body["instance"] = instance
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def not_found(what: str, ident: str, hint: str) -> ProblemError:
    return ProblemError(404, f"Unknown {what}", f"No {what} {ident!r}. {hint}", code=f"unknown_{what}")


async def _problem(request: Request, exc: ProblemError):
    return problem_response(
        exc.status,
        exc.title,
        exc.detail,
        code=exc.code,
        instance=request.url.path,
        headers=exc.headers,
        **exc.extra,
    )


async def _invalid(request: Request, exc: ValidationError):
    return problem_response(
        422,
        "Invalid input",
        " ".join(p.message for p in exc.problems),
        code=exc.code,
        instance=request.url.path,
        problems=[p.to_dict() for p in exc.problems],
    )


async def _params(request: Request, exc: RequestValidationError):
    msgs = []
    for e in exc.errors():
        where = ".".join(str(p) for p in e.get("loc", ()) if p not in ("query", "body", "path"))
        msgs.append(f"{where}: {e.get('msg')}")
    return problem_response(
        422,
        "Invalid request parameters",
        "; ".join(msgs) or "invalid parameters",
        code="bad_parameter",
        instance=request.url.path,
    )


async def _http(request: Request, exc: StarletteHTTPException):
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    headers = dict(getattr(exc, "headers", None) or {})
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"No route {request.url.path!r}; see /docs for the API"
    if exc.status_code == 405:
        # Starlette names the methods of the first route matching the path only; list every route's.
        headers["Allow"] = allowed_methods(request, headers.get("Allow", ""))
        detail = f"{request.method} is not allowed on {request.url.path!r}; use {headers['Allow']}"
    return problem_response(exc.status_code, "HTTP error", detail, instance=request.url.path, headers=headers or None)


async def _crash(request: Request, exc: Exception):
    # Starlette answers this outside every middleware: the security headers must come from here.
    return problem_response(
        500,
        "Internal error",
        "The server failed on this request and logged it; please report it with the request that caused it.",
        code="internal",
        instance=request.url.path,
        headers={**SECURITY_HEADERS, "Cache-Control": "no-store"},
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(ProblemError, _problem)
    app.add_exception_handler(ValidationError, _invalid)
    app.add_exception_handler(RequestValidationError, _params)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _crash)


def allowed_methods(request: Request, fallback: str = "") -> str:
    """Every method the API documents for this path (what a client can read in /openapi.json)."""
    methods: set[str] = set()
    for template, operations in request.app.openapi().get("paths", {}).items():
        pattern = re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, request.url.path):
            methods |= {
                m.upper() for m in operations if m in ("get", "put", "post", "delete", "patch", "head", "options")
            }
    return ", ".join(sorted(methods)) or fallback
