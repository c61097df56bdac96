"""ASGI middleware: request body limit enforced while streaming, security headers, cache headers by API key.

Cached tiles are answered in front of all of these: :mod:`app.tilefast`."""

from __future__ import annotations

import json
import re

from .http import CLIENT_RECEIVE
from .problems import MEDIA_TYPE, SECURITY_HEADERS


class _TooLarge(Exception):
    pass


class BodyLimit:
    """Reject bodies over ``max_bytes`` as they stream in (413), before they are buffered or parsed.

    A chunked body has no Content-Length: the 413 is sent from inside ``receive`` the moment the limit is
    crossed, because the form parser turns any error raised there into its own 400.
    """

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length and length.isdigit() and int(length) > self.max_bytes:
            return await self._reject(send, scope)
        seen = 0
        started = rejected = False

        async def limited_receive():
            nonlocal seen, rejected
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    if not started and not rejected:
                        rejected = True
                        await self._reject(send, scope)
                    raise _TooLarge
            return message

        async def tracking_send(message):
            nonlocal started
            if rejected:
                return  # the 413 has been sent; drop the app's answer to the aborted read
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            pass

    async def _reject(self, send, scope):
        mb = self.max_bytes / 2**20
        body = json.dumps(
            {
                "type": "https://segmap.dev/problems/too_large",
                "title": "Upload too large",
                "status": 413,
                "detail": f"The request body is larger than the {mb:g} MB allowed; upload a smaller or simplified "
                "file (or raise SEGMAP_MAX_UPLOAD_MB).",
                "instance": scope.get("path"),
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", MEDIA_TYPE.encode()),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class ClientWatch:
    """Make this request's ``receive`` available to :class:`app.http.HeavyWork`, to notice a client that hung up."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        token = CLIENT_RECEIVE.set(receive)
        try:
            await self.app(scope, receive, send)
        finally:
            CLIENT_RECEIVE.reset(token)


def _vary(headers: list, name: bytes) -> list:
    """``headers`` with one Vary header naming ``name`` and the existing ones, each once."""
    tokens: dict = {}
    for k, v in headers:
        if k.lower() == b"vary":
            tokens.update((t.strip().lower(), t.strip()) for t in v.split(b",") if t.strip())
    tokens.setdefault(name.lower(), name)
    return [(k, v) for k, v in headers if k.lower() != b"vary"] + [(b"vary", b", ".join(tokens.values()))]


class KeyedCaching:
    """Responses may differ by API key (owners see raw counts): every cacheable response varies on it, and
    those to a key holder are ``private`` so no shared cache keeps them. The memory tile cache
    (:mod:`app.tilefast`) stores answers with these headers and keeps none marked ``private``."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        keyed = any(k.lower() == b"x-api-key" for k, _ in scope.get("headers", []))

        async def with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                control = [v for k, v in headers if k.lower() == b"cache-control"]
                if control and not any(b"no-store" in v for v in control):
                    headers = _vary(headers, b"X-API-Key")
                    if keyed:
                        headers = [
                            (k, re.sub(rb"\bpublic\b", b"private", v) if k.lower() == b"cache-control" else v)
                            for k, v in headers
                        ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


class SecurityHeaders:
    """Headers every response carries; HTML pages set their own CSP and framing policy."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                for k, v in SECURITY_HEADERS.items():
                    if k.lower().encode() not in names:
                        headers.append((k.lower().encode(), v.encode()))
                ctype = dict(headers).get(b"content-type", b"")
                if ctype.startswith(b"text/html") and b"content-security-policy" not in names:
                    headers.append(
                        (
                            b"content-security-policy",
                            b"default-src 'self'; img-src 'self' data: blob:; "
                            b"style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; frame-ancestors 'self'",
                        )
                    )
                    headers.append((b"x-frame-options", b"SAMEORIGIN"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
