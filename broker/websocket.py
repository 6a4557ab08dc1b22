"""NATS over WebSocket (`websocket { }`), as nats-server serves nats.ws and nats-py's ws://.

The HTTP upgrade and the framing are wsproto's (sans-IO): `WebSocketConnection` feeds it the
socket's bytes, checks the origin, and once upgraded runs an ordinary `ClientConnection` whose
transport is a `FramedTransport`: each write of the client connection (one per loop turn, see
`OutBuffer`) leaves as one binary frame, and the payload of every data frame the client sends is
protocol bytes for the client connection, whatever the frame boundaries. Everything else (INFO,
CONNECT and auth, permissions, JetStream) is the client connection's, unchanged.

A refused upgrade gets nats-server's HTTP status (400 for a request that is not a WebSocket
upgrade, 403 for an origin not allowed) and is logged as "websocket handshake error: ...".
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Message,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.extensions import Extension, PerMessageDeflate
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from broker.logger import logger
from config.options import WebSocketOptions

_BAD_REQUEST = (400, b"Bad Request\n")
_FORBIDDEN = (403, b"Forbidden\n")


class FramedTransport:
    """What a `ClientConnection` writes to, framed as WebSocket binary messages."""

    def __init__(self, raw: asyncio.Transport, ws: WSConnection) -> None:
        self._raw = raw
        self._ws = ws
        self._closing = False

    def write(self, data: bytes) -> None:
        if self._closing:
            return
        try:
            framed = self._ws.send(Message(data=data))
        except LocalProtocolError:  # the WebSocket is closing (a close or a broken frame)
            self._closing = True
            return
        self._raw.write(framed)

    def get_write_buffer_size(self) -> int:
        return self._raw.get_write_buffer_size()

    def is_closing(self) -> bool:
        return self._closing or self._raw.is_closing()

    def close(self) -> None:
        """A close frame (normal closure), then the socket."""
        if self._closing:
            return
        self._closing = True
        with contextlib.suppress(LocalProtocolError):  # the client closed first
            self._raw.write(self._ws.send(CloseConnection(code=1000)))
        self._raw.close()

    def abort(self) -> None:
        self._closing = True
        self._raw.abort()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._raw.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._raw.pause_reading()

    def resume_reading(self) -> None:
        self._raw.resume_reading()


class WebSocketConnection(asyncio.Protocol):
    """One WebSocket connection: the HTTP upgrade, then a client connection inside frames."""

    def __init__(self, options: WebSocketOptions,
                 new_client: Callable[[], asyncio.Protocol]) -> None:
        self.options = options
        self._new_client = new_client
        self._ws = WSConnection(ConnectionType.SERVER)
        self._raw: asyncio.Transport | None = None
        self._client: asyncio.Protocol | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._addr = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._raw = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername") or ("", 0)
        self._addr = f"{peer[0]}:{peer[1]}"
        self._timer = asyncio.get_running_loop().call_later(
            self.options.handshake_timeout, self._handshake_expired)

    def data_received(self, data: bytes) -> None:
        if self._raw is None or self._raw.is_closing():
            return
        try:
            self._ws.receive_data(data)
            for event in self._ws.events():
                self._on_event(event)
        except (RemoteProtocolError, ValueError) as exc:  # ValueError: a Host wsproto can't
            if self._client is None:                      # decode (UnicodeError)
                self._refuse(_BAD_REQUEST, str(exc))
            else:  # a broken frame: the connection goes
                self._fail(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        if self._client is not None:
            self._client.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._client is not None:
            self._client.pause_writing()

    def resume_writing(self) -> None:
        if self._client is not None:
            self._client.resume_writing()

    # Events

    def _on_event(self, event: object) -> None:
        if isinstance(event, Request):
            self._upgrade(event)
        elif isinstance(event, (BytesMessage, TextMessage)):
            if self._client is not None:
                data = event.data
                self._client.data_received(data.encode() if isinstance(data, str)
                                           else bytes(data))
        elif isinstance(event, Ping):
            self._send(event.response())
        elif isinstance(event, CloseConnection):
            self._send(event.response())
            assert self._raw is not None
            self._raw.close()

    def _upgrade(self, request: Request) -> None:
        headers = {name.decode("latin-1").lower(): value.decode("latin-1")
                   for name, value in request.extra_headers}
        problem = origin_problem(self.options, request.host, headers.get("origin"))
        if problem:
            self._refuse(_FORBIDDEN, f"origin not allowed: {problem}")
            return
        self._cancel_timer()
        extensions: list[Extension] = [PerMessageDeflate()] if self.options.compression else []
        self._send(AcceptConnection(extensions=extensions))
        assert self._raw is not None
        client = self._new_client()
        self._client = client
        client.connection_made(FramedTransport(self._raw, self._ws))  # type: ignore[arg-type]

    # Failures

    def _refuse(self, status: tuple[int, bytes], reason: str) -> None:
        """An HTTP error for a refused upgrade, as nats-server answers it, and the log line."""
        logger.error("%s - websocket handshake error: %s", self._addr, reason)
        code, body = status
        # (_send writes nothing when the request was not HTTP enough for wsproto to reply to.)
        self._send(RejectConnection(status_code=code, has_body=True, headers=[
            (b"Sec-Websocket-Version", b"13"),
            (b"Content-Type", b"text/plain; charset=utf-8"),
            (b"Content-Length", str(len(body)).encode())]))
        self._send(RejectData(data=body))
        self._cancel_timer()
        if self._raw is not None:
            self._raw.close()

    def _fail(self, exc: Exception) -> None:
        logger.debug("%s - websocket protocol error: %s", self._addr, exc)
        if self._raw is not None:
            self._raw.close()

    def _handshake_expired(self) -> None:
        self._timer = None
        if self._client is None and self._raw is not None:
            logger.debug("%s - websocket handshake timeout", self._addr)
            self._raw.abort()

    def _send(self, event: Any) -> None:
        """Send an event; nothing once the connection is closing (a reply to a close frame,
        or to a broken frame, that wsproto's state no longer allows)."""
        assert self._raw is not None
        try:
            data = self._ws.send(event)
        except LocalProtocolError:
            return
        self._raw.write(data)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def origin_problem(options: WebSocketOptions, host: str, origin: str | None) -> str:
    """Why `origin` may not connect ("" when it may), by nats-server's rules: no Origin header,
    or neither `same_origin` nor `allowed_origins` configured, lets everyone in."""
    if origin is None or not (options.same_origin or options.allowed_origins):
        return ""
    parts = urlsplit(origin)
    if not parts.hostname:
        return "not same origin" if options.same_origin else "not in the allowed list"
    scheme = parts.scheme
    port = parts.port or (443 if scheme == "https" else 80)
    if options.same_origin:
        request_host, _, request_port = host.rpartition(":") if ":" in host else (host, "", "")
        same = parts.hostname == (request_host or host) and \
            (not request_port or str(port) == request_port)
        if not same:
            return "not same origin"
    if options.allowed_origins:
        for allowed in options.allowed_origins:
            wanted = urlsplit(allowed)
            wanted_port = wanted.port or (443 if wanted.scheme == "https" else 80)
            if (wanted.scheme, wanted.hostname, wanted_port) == (scheme, parts.hostname, port):
                return ""
        return "not in the allowed list"
    return ""
