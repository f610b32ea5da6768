"""The one way the gateway answers on its own: TGI's `{"error", "error_type"}` shape."""

from __future__ import annotations

from aiohttp import web


class Refusal(Exception):
    """A request the gateway answers itself. `reason` is the metrics label; `close` drops the
    connection (used when the client's body was never read)."""

    def __init__(self, status: int, error: str, error_type: str, reason: str,
                 headers: dict[str, str] | None = None, close: bool = False):
        super().__init__(error)
        self.status, self.error, self.error_type, self.reason = status, error, error_type, reason
        self.headers = headers or {}
        self.close = close

    def response(self) -> web.Response:
        response = web.json_response({"error": self.error, "error_type": self.error_type},
                                     status=self.status, headers=self.headers)
        if self.close:
            response.force_close()
        return response


class ClientGone(Exception):
    """The client closed its connection before the gateway could answer."""


def invalid(message: str) -> Refusal:
    """A 422 for a request TGI would also refuse."""
    return Refusal(422, message, "validation", "validation")


def shown(value: object, limit: int = 60) -> str:
    """A client value quoted in an error message, cut short so errors stay one line."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
