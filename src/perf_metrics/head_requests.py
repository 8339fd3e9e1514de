"""`HEAD` wherever `GET` works (RFC 9110 §9.3.2): the GET route answers, the body is dropped.

FastAPI routes declared with `@router.get` answer HEAD with 405. Rather than declaring every
route twice (and documenting every operation twice in OpenAPI), this middleware hands the route
a GET and sends the client the same status and headers, Content-Length included, with no body.
The route sees a copy of the scope: the server's own scope still says HEAD, so uvicorn knows
not to expect a body either.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGetMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        inner = {**scope, "method": "GET"}
        try:
            await self.app(inner, receive, send_without_body)
        finally:
            # What routing found, for the access log and the request metrics outside.
            for key in ("route", "endpoint", "path_params"):
                if key in inner:
                    scope[key] = inner[key]
