"""The one kind of error a route answers with: an HTTP status and a one-line message, sent as OpenAI's
error body (`{"error": {"message", "type", "param", "code"}}`), never a traceback or a server path."""

from __future__ import annotations

from http import HTTPStatus


class ApiError(Exception):
    """A request refused: `status` (400, 401, 404, 413, 429, 504, ...) and the message the client reads.
    `headers` go with the answer (Retry-After for 429)."""

    def __init__(
        self, status: int, message: str, param: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict:
        kind = HTTPStatus(self.status).phrase.replace(" ", "") if self.status in _KNOWN else "Error"
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.status}}


_KNOWN = {int(s) for s in HTTPStatus}
