"""What every request must show before a route sees it: a Host this server answers to,
a request no other web page could have forged, a JSON body that parses strictly.

Three pure ASGI middlewares (they see the raw headers and body, before FastAPI):

- :class:`HostGuard` answers 421 to a Host header that is not allowed. A DNS-rebinding
  page (``evil.example`` re-pointed at 127.0.0.1) sends its own name as Host, so
  answering only to loopback names, IP addresses and the names the operator allows
  keeps such a page from reading anything. An IP address cannot be re-pointed, so
  every address is allowed: ``serve --host 0.0.0.0`` works at ``http://192.168.1.5:8000``.
- :class:`ForgeryGuard` answers 403 to a request that changes something (every method
  but GET, HEAD and OPTIONS) unless it carries what a page on another site cannot send
  without the server's consent (a CORS preflight this server only grants to
  ``cors_origins``): an ``X-Requested-With`` or ``X-API-Key`` header, or a JSON body.
  An ``Origin`` other than the server's own (or an allowed CORS origin), or a
  ``Sec-Fetch-Site`` of another site, is refused too. This holds with or without a key.
- :class:`JSONBodies` parses every JSON body with :func:`searchengine.strict_json.loads`
  and answers 400 to ``NaN``, ``1e400``, deep nesting or a huge number, which FastAPI's
  own parser lets through (to a 500 when the value is echoed in an error).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

import anyio
from fastapi import HTTPException
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers

from searchengine.strict_json import InvalidJSON, loads

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Headers a page can only send cross-site after a CORS preflight: proof of a same-origin caller.
PROOF_HEADERS = ("x-requested-with", "x-api-key")
#: The largest JSON body parsed (the API's JSON bodies are a few tags or ids).
JSON_MAX_BYTES = 1024 * 1024
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def _refuse(status: int, message: str) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status)


def split_host(value: str) -> str:
    """The host name of a ``Host`` header or URL netloc, without port or brackets, lower case."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    name, _, port = value.rpartition(":")
    return name.rstrip(".") if name and port.isdigit() else value.rstrip(".")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class HostGuard:
    """Answer 421 to a request whose Host is not a loopback name, an IP address or an allowed name."""

    def __init__(self, app, allowed_hosts: tuple[str, ...] = ()) -> None:
        self.app = app
        self.any = "*" in allowed_hosts
        self.names = {split_host(h) for h in allowed_hosts if not h.startswith("*.")}
        self.suffixes = tuple(h[1:].lower() for h in allowed_hosts if h.startswith("*."))

    def allows(self, name: str) -> bool:
        """Whether this server answers to the host ``name`` (from :func:`split_host`)."""
        return (
            self.any
            or name in LOOPBACK_NAMES
            or name.endswith(".localhost")  # browsers resolve these to loopback themselves
            or _is_ip(name)
            or name in self.names
            or name.endswith(self.suffixes)
        )

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":  # the app has no websockets; lifespan has no Host
            return await self.app(scope, receive, send)
        host = Headers(scope=scope).get("host")
        if host is None or self.allows(split_host(host)):  # no Host: HTTP/1.0, not a browser
            return await self.app(scope, receive, send)
        name = split_host(host)[:200]
        message = (
            f"this server does not answer to the host name {name!r} (a guard against DNS rebinding): "
            f"to reach it by that name, start it with --allow-host {name} (or SE_ALLOWED_HOSTS={name})"
        )
        return await _refuse(421, message)(scope, receive, send)


class ForgeryGuard:
    """Answer 403 to a change (not GET/HEAD/OPTIONS) that another web page could have sent."""

    def __init__(self, app, cors_origins: tuple[str, ...] = ()) -> None:
        self.app = app
        self.origins = {o.lower() for o in cors_origins}

    def problem(self, headers: Headers) -> str | None:
        """Why a request that changes something is refused, or None."""
        origin = headers.get("origin")
        if origin is not None and not self._trusted(origin, headers.get("host", "")):
            return (
                f"refused a change sent by a page from {origin[:200]}: only this server's own page may "
                "change the index (let another origin with --cors-origin, or SE_CORS_ORIGINS)"
            )
        if origin is None and headers.get("sec-fetch-site") in ("cross-site", "same-site"):
            return "refused a change sent by a page from another site"
        media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media == "application/json" or media.endswith("+json"):
            return None  # not a type a form or a no-CORS fetch may send
        if any(headers.get(name) is not None for name in PROOF_HEADERS):
            return None
        return (
            "refused: a request that changes something must send an X-Requested-With header "
            "(any value), the X-API-Key header or a JSON body, which web pages on other sites cannot"
        )

    def _trusted(self, origin: str, host: str) -> bool:
        origin = origin.strip().lower()
        if origin in self.origins or "*" in self.origins:
            return True
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not host:
            return False
        default = 443 if parts.scheme == "https" else 80
        try:
            return (parts.hostname, parts.port or default) == _host_and_port(host, default)
        except ValueError:  # a port out of range
            return False

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            return await self.app(scope, receive, send)
        message = self.problem(Headers(scope=scope))
        if message is None:
            return await self.app(scope, receive, send)
        return await _refuse(403, message)(scope, receive, send)


def _host_and_port(host: str, default: int) -> tuple[str, int]:
    """``(name, port)`` of a Host header, ``default`` when it names no port."""
    tail = host.strip().rpartition("]")[2]  # after an IPv6 address's brackets, if any
    port = tail.rpartition(":")[2] if ":" in tail else ""
    return split_host(host), int(port) if port.isdigit() else default


def _is_json_body(headers: Headers) -> bool:
    media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return not media or media == "application/json" or media.endswith("+json")


class JSONBodies:
    """Parse each JSON request body strictly first; answer 400 (or 413) with the reason."""

    def __init__(self, app, max_bytes: int = JSON_MAX_BYTES) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            return await self.app(scope, receive, send)
        if not _is_json_body(Headers(scope=scope)):
            return await self.app(scope, receive, send)
        chunks, size, more = [], 0, True
        while more:
            try:
                message = await receive()
            except HTTPException as exc:  # the body limit, raised by the middleware outside
                return await _refuse(exc.status_code, str(exc.detail))(scope, receive, send)
            if message["type"] != "http.request":  # the client went away
                return None
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.max_bytes:
                text = f"the JSON body is over the limit of {self.max_bytes:,} bytes"
                return await _refuse(413, text)(scope, receive, send)
        body = b"".join(chunks)
        if body.strip():
            try:
                await anyio.to_thread.run_sync(loads, body)  # off the event loop
            except InvalidJSON as exc:
                return await _refuse(400, f"the JSON body is refused: {exc}")(scope, receive, send)
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await self.app(scope, replay, send)
