"""What the server refuses before any work, and how every refusal is answered.

The bearer key is compared in constant time (`hmac.compare_digest`), so its bytes cannot be guessed from
response times; a body over `max_body_bytes` is refused with 413 while it is read (by its Content-Length
when it has one, else by counting), so a huge upload never fills the memory; every error, a bad body, an
unknown route or a bug, is OpenAI's error JSON with a one-line message, never a traceback or a file path.
"""

from __future__ import annotations

import hmac
import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from higgs_tune.errors import UserError
from higgs_tune.serving.api_errors import ApiError

log = logging.getLogger(__name__)


def key_matches(authorization: str, api_key: str) -> bool:
    """Whether an `Authorization` header is `Bearer <api_key>`, compared in constant time."""
    scheme, _, token = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), api_key.encode())


class RequireKey:
    """ASGI middleware: 401 for a `/v1/` request without the bearer key, before its body is read."""

    def __init__(self, app, api_key: str | None) -> None:
        self.app = app
        self.api_key = api_key

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and self.api_key is not None and scope["path"].startswith("/v1/"):
            given = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
            if not key_matches(given, self.api_key):
                message = "missing or wrong API key: send Authorization: Bearer <key>"
                return await _send_error(send, ApiError(401, message))
        await self.app(scope, receive, send)


class BodyLimit:
    """ASGI middleware: 413 for a request body over `max_bytes`, checked before the route reads it all."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            return await _send_error(send, ApiError(413, self._message()))
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:  # an HTTPException, which FastAPI's body parsing passes on as is
                raise StarletteHTTPException(413, self._message())
            return message

        await self.app(scope, counted, send)

    def _message(self) -> str:
        return f"request body over {self.max_bytes} bytes (the server's limit)"


async def _send_error(send, error: ApiError) -> None:
    body = json.dumps(error.body()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


def install_error_handlers(app: FastAPI) -> None:
    """Every error as OpenAI's error JSON with one line: ours, bad bodies (400, not FastAPI's 422), a
    `UserError` from the checks of a reference or text (400), HTTP errors (404, 405), and bugs (500,
    logged here with their traceback, never sent)."""

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, e: ApiError) -> JSONResponse:
        return error_response(e)

    @app.exception_handler(RequestValidationError)
    async def bad_body(_request: Request, e: RequestValidationError) -> JSONResponse:
        return error_response(ApiError(400, _validation_message(e)))

    @app.exception_handler(UserError)
    async def user_error(_request: Request, e: UserError) -> JSONResponse:
        return error_response(ApiError(400, str(e).splitlines()[0]))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, e: StarletteHTTPException) -> JSONResponse:
        return error_response(ApiError(e.status_code, str(e.detail)))

    @app.exception_handler(Exception)
    async def bug(request: Request, e: Exception) -> JSONResponse:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return error_response(ApiError(500, "internal error (logged by the server)"))


def _validation_message(error: RequestValidationError) -> str:
    """FastAPI's validation errors as one line: "input: field required; speed: ..."."""
    problems = []
    for found in error.errors():
        where = ".".join(str(p) for p in found.get("loc", ()) if p != "body")
        if found.get("type") == "json_invalid":
            problems.append("the body is not valid JSON")
        elif found.get("type") == "extra_forbidden":
            problems.append(f"{where}: not a field of this request (nothing is silently ignored)")
        else:
            problems.append(
                f"{where}: {found.get('msg', 'invalid')}" if where else found.get("msg", "invalid")
            )
    return "; ".join(problems)
