"""One client connection, the asyncio side: the socket, the timers, the server's calls.

The protocol's rules live in `broker.session.ClientSession` (sans-IO): this class feeds it the
bytes it reads, runs its timers (`ping_tick`, `auth_timeout`) and applies the actions it returns:
routing publishes, adding and removing subscriptions, queueing bytes, closing. Outbound bytes are
appended to `out` (`broker.outbuf.OutBuffer`) and written once per loop turn by the server (see
`Server.flush`), so a burst of messages costs one `write` per connection, not one per message.
"""

from __future__ import annotations

import asyncio
import random
import ssl
import time
from typing import Protocol

from broker import protocol
from broker.account import Account
from broker.auth import Identity, PermissionChecker
from broker.logger import logger
from broker.outbuf import OutBuffer
from broker.protocol import PUB
from broker.session import (
    AUTHENTICATED,
    CLIENT_PROTO_INFO,
    CLOSE,
    INFO_DUE,
    NEGOTIATED,
    SEND,
    SUBSCRIBE,
    UNSUBSCRIBE,
    ClientSession,
    ClosedReason,
    SessionHost,
    is_reserved,
)
from broker.sublist import Subscription
from broker.tls import CLOSED_REASON as TLS_HANDSHAKE_FAILURE
from broker.tls import NotTLS, ServerTLS, client_certificate, handshake_failure

__all__ = ["CLIENT_PROTO_INFO", "ClientConnection", "ClientHost", "ClosedReason"]


class ClientHost(SessionHost, Protocol):
    """What a client connection needs of the server (`broker.server.Server`): besides what the
    session's rules read (`options`, `auth`, `headers_supported`), the loop, the connection
    registry, routing and interest, the flush scheduling, the INFO it sends, two counters."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    slow_consumers: int
    stale_connections: int
    client_tls: ServerTLS | None  # TLS on the client port, when configured

    def next_client_id(self) -> int: ...

    def admit(self, client: ClientConnection) -> bool:
        """Register a new connection; False if it must be refused (maximum connections)."""

    def forget(self, client: ClientConnection) -> None: ...

    def client_info_json(self, client: ClientConnection) -> bytes: ...

    def info_changed_since(self, when: float) -> bool: ...

    @property
    def global_account(self) -> Account:
        """Where connections are until their user is known (and for good without accounts)."""
        ...

    def account_of(self, identity: Identity | None) -> Account: ...

    def route(self, account: Account, subject: bytes, reply: bytes, hdr: int, payload: bytes,
              origin: ClientConnection | None) -> int:
        """Deliver a publish in `account`; how many subscriptions got it."""

    def no_responders(self, client: ClientConnection, subject: bytes, reply: bytes) -> None: ...

    def add_sub(self, account: Account, sub: Subscription) -> None: ...

    def remove_sub(self, account: Account, sub: Subscription) -> None: ...

    def mark_dirty(self, client: ClientConnection) -> None:
        """Call `client.flush()` at the end of this loop turn."""


class ClientConnection(OutBuffer, asyncio.Protocol):
    is_route = False

    def __init__(self, server: ClientHost, websocket: bool = False) -> None:
        super().__init__()
        self.server = server
        # Inside a WebSocket (broker.websocket): TLS, if any, is the WebSocket listener's.
        self.websocket = websocket
        self.cid = server.next_client_id()
        # The subject space this connection publishes and subscribes in: its user's account.
        self.account = server.global_account
        self.session = ClientSession(server, self, self.cid, server.loop.time)
        self.max_pending = server.options.max_pending
        self.close_reason = ""
        # The session's options that the server's delivery path reads per message, copied here
        # (plain attributes, not properties, on the hot path) whenever they change (NEGOTIATED).
        self.echo = self.session.echo
        self.headers = self.session.headers
        self.perms: PermissionChecker | None = self.session.perms
        self.tracks_responses = self.session.tracks_responses

        # Stats (see /connz).
        self.start = time.time()
        self.stop = 0.0
        self.last_activity = self.start
        self.in_msgs = self.in_bytes = self.out_msgs = self.out_bytes = 0
        self.host = ""
        self.port = 0

        self._ping_timer: asyncio.TimerHandle | None = None
        self._auth_timer: asyncio.TimerHandle | None = None
        self._write_timer: asyncio.TimerHandle | None = None
        self._handshake: asyncio.Task[None] | None = None

    # What the server and the monitor read of the session (see also NEGOTIATED).

    @property
    def subs(self) -> dict[bytes, Subscription]:
        return self.session.subs

    @property
    def nonce(self) -> str:
        return self.session.nonce

    @property
    def protocol(self) -> int:
        return self.session.protocol

    @property
    def connect_received(self) -> bool:
        return self.session.connect_received

    @property
    def identity(self) -> Identity | None:
        return self.session.identity

    @property
    def name(self) -> str:
        return self.session.name

    @property
    def lang(self) -> str:
        return self.session.lang

    @property
    def version(self) -> str:
        return self.session.version

    @property
    def rtt(self) -> float:
        return self.session.rtt

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername") or ("", 0)
        self.host, self.port = peer[0], peer[1]
        session = self.session
        session.addr = self._addr()
        server = self.server
        admitted = server.admit(self)
        tls = None if self.websocket else server.client_tls
        if tls is not None and not tls.handshake_first and admitted:
            # INFO (which tells the client TLS is required) and the switch to TLS happen in one
            # step of `_start_tls`, so nothing after INFO is read in the clear. (uvloop starts
            # reading after connection_made, so pausing here would not hold.)
            logger.debug("%s - cid:%d - Client connection created", self._addr(), self.cid)
            self._handshake = server.loop.create_task(self._start_tls(tls))
            return
        self.write_now(protocol.info_line(server.client_info_json(self)))
        if not admitted:
            self.write_now(protocol.err_line("maximum connections exceeded"))
            self.close(ClosedReason.MAX_CONNECTIONS)
            return
        self._start_session()
        logger.debug("%s - cid:%d - Client connection created", self._addr(), self.cid)

    async def _start_tls(self, tls: ServerTLS) -> None:
        """INFO, then the server side of the TLS handshake within `tls.timeout`; then the
        session starts. (With handshake_first the listener itself runs the handshake.)"""
        plain = self.transport
        assert plain is not None
        self.write_now(protocol.info_line(self.server.client_info_json(self)))
        logger.debug("%s - cid:%d - Starting TLS client connection handshake", self._addr(),
                     self.cid)
        try:
            # Swaps the transport's protocol before it yields: what the client sends next
            # goes to the handshake.
            secure = await self.server.loop.start_tls(
                plain, self, tls.context, server_side=True, ssl_handshake_timeout=tls.timeout)
        except (OSError, ssl.SSLError, TimeoutError, EOFError) as exc:
            self._handshake = None
            if isinstance(exc, ConnectionAbortedError) and "longer than" in str(exc):
                exc = TimeoutError()  # asyncio's words for the handshake timeout
            self._handshake_failed(exc)
            return
        self._handshake = None
        if self.closed or secure is None:
            if secure is not None:
                secure.abort()
            return
        self.transport = secure
        cipher = secure.get_extra_info("cipher") or ("", "", 0)
        logger.debug("%s - cid:%d - TLS handshake complete", self._addr(), self.cid)
        logger.debug("%s - cid:%d - TLS version %s, cipher suite %s", self._addr(), self.cid,
                     cipher[1], cipher[0])
        self._start_session()

    def _handshake_failed(self, exc: BaseException) -> None:
        level, text = handshake_failure(exc)
        logger.log(level, "%s - cid:%d - %s", self._addr(), self.cid, text)
        self.close(TLS_HANDSHAKE_FAILURE, flush=False)

    def _start_session(self) -> None:
        """The connection is ready for the protocol: start the session's timers."""
        session = self.session
        peer = self.transport.get_extra_info("peercert") if self.transport is not None else None
        if peer:  # a verified client certificate (tls { verify: true })
            session.certificate = client_certificate(peer)
        loop = self.server.loop
        auth_deadline = session.auth_deadline()
        if auth_deadline is not None:
            self._auth_timer = loop.call_later(auth_deadline, self._auth_timeout)
        self._ping_timer = loop.call_later(session.first_ping_delay(random.random()),
                                           self._ping_tick)

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        if self._handshake is not None:  # bytes in the clear before INFO: not a TLS client
            self._handshake.cancel()
            self._handshake = None
            self._handshake_failed(NotTLS())
            return
        session = self.session
        self._process(session.receive(data))
        while session.paused and not self.closed:
            self._process(session.receive(b""))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed:
            self._teardown(ClosedReason.CLIENT_CLOSED if exc is None else ClosedReason.WRITE_ERROR)

    def pause_writing(self) -> None:
        # The peer is not reading: give it write_deadline to catch up, then drop it as slow.
        if self._write_timer is None:
            self._write_timer = self.server.loop.call_later(
                self.server.options.write_deadline, self._write_deadline_exceeded)

    def resume_writing(self) -> None:
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None

    # The session's actions

    def _process(self, events: list[tuple]) -> None:
        """Hand each parsed operation to the session and apply its actions, in order."""
        session = self.session
        server = self.server
        route = server.route
        account = self.account
        n_in = b_in = 0
        for event in events:
            # (A subject is never empty here: the parser refuses a PUB without one.)
            if event[0] == PUB and not session.pub_checks and (
                    event[1][0] != 36 or not is_reserved(event[1])):  # 36: "$"
                # The hot path: with nothing to check, a PUB event is a PUBLISH as it stands.
                _, subject, reply, hdr, payload = event
                n_in += 1
                b_in += len(payload)
                if not route(account, subject, reply, hdr, payload, self) and reply and \
                        session.no_responders:
                    server.no_responders(self, subject, reply)
                continue
            if self.closed:
                break
            for action in session.handle(event):
                kind = action[0]
                if kind == PUB:
                    _, subject, reply, hdr, payload = action
                    n_in += 1
                    b_in += len(payload)
                    if not route(account, subject, reply, hdr, payload, self) and reply and \
                            session.no_responders:
                        server.no_responders(self, subject, reply)
                elif kind == SEND:  # the most frequent (verbose +OK), without the _apply call
                    self.send(action[1])
                else:
                    self._apply(action)
                    account = self.account  # AUTHENTICATED binds the user's account
        if n_in:
            self.in_msgs += n_in
            self.in_bytes += b_in
            session.published()

    def _apply(self, action: tuple) -> None:
        """One action other than PUBLISH (see `broker.session`)."""
        kind = action[0]
        if kind == SEND:
            self.send(action[1])
        elif kind == SUBSCRIBE:
            self.server.add_sub(self.account, action[1])
        elif kind == UNSUBSCRIBE:
            self.server.remove_sub(self.account, action[1])
        elif kind == AUTHENTICATED:
            self.account = self.server.account_of(self.session.identity)
            if self._auth_timer is not None:
                self._auth_timer.cancel()
                self._auth_timer = None
        elif kind == NEGOTIATED:
            session = self.session
            self.echo = session.echo
            self.headers = session.headers
            self.perms = session.perms
            self.tracks_responses = session.tracks_responses
        elif kind == INFO_DUE:
            if self.server.info_changed_since(self.start):
                self.send(protocol.info_line(self.server.client_info_json(self)))
        elif kind == CLOSE:
            if action[1] == ClosedReason.STALE:
                self.server.stale_connections += 1
            self.close(action[1])
        else:
            raise ValueError(f"unknown session action {action!r}")

    def remove_subscription(self, sub: Subscription) -> None:
        """The delivery path's hook: `sub` reached its delivery limit."""
        if self.session.drop_subscription(sub):
            self.server.remove_sub(self.account, sub)

    # Timers

    def _auth_timeout(self) -> None:
        self._auth_timer = None
        if self.closed:
            return
        for action in self.session.auth_timeout():
            self._apply(action)

    def _ping_tick(self) -> None:
        self._ping_timer = None
        if self.closed:
            return
        server = self.server
        for action in self.session.ping_tick(server.loop.time()):
            self._apply(action)
        if not self.closed:
            self._ping_timer = server.loop.call_later(self.session.ping_interval, self._ping_tick)

    def _write_deadline_exceeded(self) -> None:
        self._write_timer = None
        if self.closed:
            return
        logger.info("%s - cid:%d - Slow Consumer Detected: WriteDeadline of %ss exceeded",
                    self._addr(), self.cid, self.server.options.write_deadline)
        self.server.slow_consumers += 1
        self.close(ClosedReason.SLOW_DEADLINE, flush=False)

    # Output (see `OutBuffer`)

    def _mark_dirty(self) -> None:
        self.server.mark_dirty(self)

    def _slow_consumer(self) -> None:
        logger.info("%s - cid:%d - Slow Consumer Detected: MaxPending of %d Exceeded",
                    self._addr(), self.cid, self.max_pending)
        self.server.slow_consumers += 1
        self.close(ClosedReason.SLOW_PENDING, flush=False)

    # Closing

    def close(self, reason: str, flush: bool = True) -> None:
        if self.closed:
            return
        if flush:
            self.flush()
        self._teardown(reason)
        if self.transport is not None:
            if flush:
                self.transport.close()
            else:
                self.transport.abort()

    def _teardown(self, reason: str) -> None:
        self.closed = True
        self.close_reason = reason
        self.stop = time.time()
        self.out.clear()
        for timer in (self._ping_timer, self._auth_timer, self._write_timer):
            if timer is not None:
                timer.cancel()
        if self._handshake is not None:
            self._handshake.cancel()
            self._handshake = None
        self._ping_timer = self._auth_timer = self._write_timer = None
        server = self.server
        for sub in self.session.take_subscriptions():
            server.remove_sub(self.account, sub)
        server.forget(self)
        logger.debug("%s - cid:%d - Client connection closed: %s", self._addr(), self.cid, reason)

    # Helpers

    def tls_state(self) -> tuple[str, str] | None:
        """(version, cipher suite) of a TLS connection, as /connz shows them: "1.3", and the
        suite's OpenSSL name (Go's for TLS 1.3 suites, which share the IANA names)."""
        if self.transport is None:
            return None
        cipher = self.transport.get_extra_info("cipher")
        if not cipher:
            return None
        return str(cipher[1]).removeprefix("TLSv"), str(cipher[0])

    def _addr(self) -> str:
        return f"{self.host}:{self.port}"
