"""One client connection: owns the socket, feeds the parser, acts on its events.

Outbound bytes are appended to `out` and written once per loop turn by the server (see
`Server.flush`), so a burst of messages costs one `write` per connection, not one per message.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from typing import TYPE_CHECKING

from broker import protocol
from broker.auth import Identity, PermissionChecker
from broker.log import logger, trace, tracing
from broker.protocol import CONNECT, ERR, FATAL, PING, PONG, PUB, SUB, UNSUB
from broker.sublist import Subscription
from common.subjects import is_valid_literal_subject, is_valid_subject

if TYPE_CHECKING:
    from broker.server import Server

CLIENT_PROTO_INFO = 1  # a client at this protocol level understands async INFO
FIRST_PING_INTERVAL = 2.0

# CONNECT fields and their JSON types; a mismatch fails the decode, as in nats-server.
_CONNECT_TYPES: dict[str, type | tuple[type, ...]] = {
    "verbose": bool, "pedantic": bool, "tls_required": bool, "echo": bool, "headers": bool,
    "no_responders": bool, "protocol": int, "name": str, "lang": str, "version": str,
    "user": str, "pass": str, "auth_token": str, "nkey": str, "sig": str, "jwt": str,
}


def _decode_connect(raw: bytes) -> dict | None:
    """CONNECT's JSON with typed fields, or None if nats-server could not decode it."""
    try:
        opts = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(opts, dict):
        return None
    for key, kind in _CONNECT_TYPES.items():
        value = opts.get(key)
        if value is None:
            opts.pop(key, None)
        elif not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            return None
    return opts


class ClosedReason:
    """The `reason` strings nats-server shows in /connz for closed connections."""

    CLIENT_CLOSED = "Client Closed"
    SERVER_SHUTDOWN = "Server Shutdown"
    PARSE_ERROR = "Parse Error"
    PROTOCOL_VIOLATION = "Protocol Violation"
    AUTH_TIMEOUT = "Authentication Timeout"
    AUTH_VIOLATION = "Authentication Failure"
    STALE = "Stale Connection"
    SLOW_PENDING = "Slow Consumer (Pending Bytes)"
    SLOW_DEADLINE = "Slow Consumer (Write Deadline)"
    MAX_PAYLOAD = "Maximum Message Payload Exceeded"
    MAX_CONTROL_LINE = "Maximum Control Line Exceeded"
    MAX_CONNECTIONS = "Maximum Connections Exceeded"
    BAD_PROTOCOL = "Bad Client Protocol Version"
    NO_RESPONDERS_HEADERS = "No Responders Requires Headers"
    LAME_DUCK = "Lame Duck Mode"
    WRITE_ERROR = "Write Error"

    FROM_PARSER = {"parse": PARSE_ERROR, "max_payload": MAX_PAYLOAD,
                   "max_control_line": MAX_CONTROL_LINE}


class ClientConnection(asyncio.Protocol):
    is_route = False

    def __init__(self, server: Server) -> None:
        self.server = server
        opts = server.options
        self.cid = server.next_client_id()
        self.transport: asyncio.Transport | None = None
        # HPUB is refused until a CONNECT negotiates headers, as in nats-server.
        self.parser = protocol.ClientParser(opts.max_control_line, opts.max_payload, headers=False)
        self.out: list[bytes] = []
        self.max_pending = opts.max_pending
        self.subs: dict[bytes, Subscription] = {}
        self.closed = False
        self.close_reason = ""

        # CONNECT options, nats-server defaults when omitted.
        self.verbose = True
        self.pedantic = True
        self.echo = True
        self.headers = False
        self.no_responders = False
        self.protocol = 0
        self.name = ""
        self.lang = ""
        self.version = ""
        self.connect_received = False
        self.identity: Identity | None = None
        self.perms: PermissionChecker | None = None
        self.tracks_responses = False  # perms.allow_responses: remember delivered reply subjects
        self.first_pong_sent = False
        # Whether a publish needs more than routing (auth not done, permissions, pedantic or
        # verbose): one flag keeps the common case to a single test per message.
        self.pub_checks = True

        # Stats (see /connz).
        self.start = time.time()
        self.stop = 0.0
        self.last_activity = self.start
        self.in_msgs = self.in_bytes = self.out_msgs = self.out_bytes = 0
        self.host = ""
        self.port = 0

        self.rtt = 0.0
        self._pings_out = 0
        self._ping_sent_at = 0.0
        self._last_msg_activity = 0.0  # publishes and subscription changes, as nats-server counts
        self._last_client_ping = 0.0
        self._ping_timer: asyncio.TimerHandle | None = None
        self._auth_timer: asyncio.TimerHandle | None = None
        self._write_timer: asyncio.TimerHandle | None = None

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername") or ("", 0)
        self.host, self.port = peer[0], peer[1]
        server = self.server
        admitted = server.admit(self)
        self._write_now(protocol.info_line(server.client_info_json(self)))
        if not admitted:
            self._write_now(protocol.err_line("maximum connections exceeded"))
            self.close(ClosedReason.MAX_CONNECTIONS)
            return
        loop = server.loop
        if server.auth.required:
            self._auth_timer = loop.call_later(server.auth.timeout, self._auth_timeout)
        # The first PING measures the RTT early: after at most 2s (plus up to 20% jitter).
        first = min(server.options.ping_interval, FIRST_PING_INTERVAL)
        self._ping_timer = loop.call_later(first * (1 + random.random() / 5), self._ping_tick)
        logger.debug("%s - cid:%d - Client connection created", self._addr(), self.cid)

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        parser = self.parser
        self._handle(parser.feed(data))
        while parser.paused and not self.closed:
            self._handle(parser.feed(b""))

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

    # Event handling

    def _handle(self, events: list[tuple]) -> None:
        server = self.server
        route = server.route
        n_in = b_in = 0
        for event in events:
            if event[0] != PUB:
                if self.closed:
                    break
                self._handle_control(event)
                continue
            _, subject, reply, hdr, payload = event
            if self.pub_checks and not self._admit_publish(subject, reply):
                if self.closed:
                    break
                continue
            n_in += 1
            b_in += len(payload)
            if not route(subject, reply, hdr, payload, self) and reply and self.no_responders:
                server.no_responders(self, subject, reply)
        if n_in:
            self.in_msgs += n_in
            self.in_bytes += b_in
            self._last_msg_activity = server.loop.time()

    def _admit_publish(self, subject: bytes, reply: bytes) -> bool:
        """The per-publish checks that most connections do not need (see `pub_checks`)."""
        if not self.connect_received and not self._implicit_connect():
            return False
        if self.perms is not None and not self._may_publish(subject, reply):
            return False
        if self.pedantic and not is_valid_literal_subject(subject):
            # nats-server complains but still routes the message.
            self.send(protocol.err_line("Invalid Publish Subject"))
        if self.verbose:
            self.send(protocol.OK_BYTES)
        return True

    def _update_pub_checks(self) -> None:
        self.pub_checks = (not self.connect_received or self.perms is not None
                           or self.pedantic or self.verbose)

    def _handle_control(self, event: tuple) -> None:
        kind = event[0]
        if tracing():
            trace("%s - cid:%d - <<- %r", self._addr(), self.cid, event[1:])
        if kind == FATAL:
            if not self.connect_received and self.server.auth.required:
                self._auth_violation()  # with auth, anything but CONNECT first is a violation
                return
            self._fatal(event[1], ClosedReason.FROM_PARSER.get(event[2],
                                                               ClosedReason.PROTOCOL_VIOLATION))
            return
        if kind == CONNECT:
            self._connect(event[1])
            return
        if not self.connect_received and not self._implicit_connect():
            return
        if kind == PING:
            self._ping()
        elif kind == PONG:
            self._pong()
        elif kind == SUB:
            self._subscribe(event[1], event[2], event[3])
        elif kind == UNSUB:
            self._unsubscribe(event[1], event[2])
        elif kind == ERR:
            logger.error("%s - cid:%d - Client error: %s", self._addr(), self.cid, event[1])

    def _implicit_connect(self) -> bool:
        """An op arrived before CONNECT: fine without auth (telnet style), else a violation."""
        auth = self.server.auth
        if not auth.required:
            self.connect_received = True
            self._update_pub_checks()
            return True
        identity = auth.default_identity()
        if identity is None:
            self._auth_violation()
            return False
        self._authenticated(identity)
        return True

    def _connect(self, raw: bytes) -> None:
        """CONNECT, checked in nats-server's order: JSON, auth, protocol, no_responders."""
        opts = _decode_connect(raw)
        if opts is None:
            logger.error("%s - cid:%d - Error parsing CONNECT", self._addr(), self.cid)
            self.close(ClosedReason.PROTOCOL_VIOLATION)
            return
        # A later CONNECT is applied on top of the current options, as nats-server decodes it.
        self.verbose = opts.get("verbose", self.verbose)
        self.pedantic = opts.get("pedantic", self.pedantic)
        self.echo = opts.get("echo", self.echo)
        self.headers = opts.get("headers", self.headers) and self.server.headers_supported
        self.no_responders = opts.get("no_responders", self.no_responders)
        self.protocol = opts.get("protocol", self.protocol)
        self.name = opts.get("name", self.name)
        self.lang = opts.get("lang", self.lang)
        self.version = opts.get("version", self.version)
        self.parser.headers = self.headers
        if self.server.auth.required and self.identity is None:
            identity = self.server.auth.authenticate(opts)
            if identity is None:
                self._auth_violation()
                return
            self._authenticated(identity)
        if self.protocol < 0 or self.protocol > CLIENT_PROTO_INFO:
            self._fatal("invalid client protocol", ClosedReason.BAD_PROTOCOL)
            return
        if self.no_responders and not self.headers:
            self._fatal("no responders requires headers support",
                        ClosedReason.NO_RESPONDERS_HEADERS)
            return
        self.connect_received = True
        self._update_pub_checks()
        if self.verbose:
            self.send(protocol.OK_BYTES)

    def _authenticated(self, identity: Identity) -> None:
        self.identity = identity
        self.connect_received = True
        if identity.permissions is not None:
            self.perms = PermissionChecker(identity.permissions)
            self.tracks_responses = self.perms.tracks_responses
        self._update_pub_checks()
        if self._auth_timer is not None:
            self._auth_timer.cancel()
            self._auth_timer = None

    def _auth_violation(self) -> None:
        logger.error("%s - cid:%d - authentication error", self._addr(), self.cid)
        self._fatal("Authorization Violation", ClosedReason.AUTH_VIOLATION)

    def _auth_timeout(self) -> None:
        self._auth_timer = None
        if self.closed or self.identity is not None:
            return
        logger.error("%s - cid:%d - Authentication Timeout", self._addr(), self.cid)
        self._fatal("Authentication Timeout", ClosedReason.AUTH_TIMEOUT)

    def _ping(self) -> None:
        self.send(protocol.PONG_BYTES)
        self._last_client_ping = self.server.loop.time()
        if self.first_pong_sent or not self.connect_received:
            return
        self.first_pong_sent = True
        if self.protocol >= CLIENT_PROTO_INFO and self.server.info_changed_since(self.start):
            self.send(protocol.info_line(self.server.client_info_json(self)))

    def _pong(self) -> None:
        if self._pings_out and self._ping_sent_at:
            self.rtt = self.server.loop.time() - self._ping_sent_at
        self._pings_out = 0

    def _subscribe(self, subject: bytes, queue: bytes | None, sid: bytes) -> None:
        if not is_valid_subject(subject) or (queue is not None and not is_valid_subject(queue)):
            self.send(protocol.err_line("Invalid Subject"))
            return
        if self.perms is not None and not self.perms.may_subscribe(subject):
            self._sub_violation(subject, queue, sid)
            return
        limit = self.server.options.max_subscriptions
        if limit and len(self.subs) >= limit:
            logger.error("%s - cid:%d - maximum subscriptions exceeded", self._addr(), self.cid)
            self.send(protocol.err_line("maximum subscriptions exceeded"))
            return
        if sid in self.subs:  # nats-server ignores a SUB that reuses a sid
            self._ok()
            return
        self._last_msg_activity = self.server.loop.time()
        sub = Subscription(subject, sid, self, queue)
        self.subs[sid] = sub
        self.server.add_sub(sub)
        self._ok()

    def _sub_violation(self, subject: bytes, queue: bytes | None, sid: bytes) -> None:
        text = f"Permissions Violation for Subscription to {_quote(subject)}"
        if queue is not None:
            text += f" using queue {_quote(queue)}"
        logger.error("%s - cid:%d - Subscription Violation - %s, Subject %s, SID %s",
                     self._addr(), self.cid, self._user(), _quote(subject), sid.decode())
        self.send(protocol.err_line(text))

    def _unsubscribe(self, sid: bytes, max_msgs: int | None) -> None:
        sub = self.subs.get(sid)
        if sub is not None:
            self._last_msg_activity = self.server.loop.time()
            # The limit counts what was delivered before the UNSUB too.
            if max_msgs is not None and sub.delivered < max_msgs:
                sub.max = max_msgs
            else:
                self.remove_subscription(sub)
        self._ok()

    def remove_subscription(self, sub: Subscription) -> None:
        if self.subs.pop(sub.sid, None) is not None:
            self.server.remove_sub(sub)

    def _may_publish(self, subject: bytes, reply: bytes) -> bool:
        perms = self.perms
        assert perms is not None
        if not perms.may_publish(subject):
            logger.error("%s - cid:%d - Publish Violation - %s, Subject %s", self._addr(),
                         self.cid, self._user(), _quote(subject))
            self.send(protocol.err_line(f"Permissions Violation for Publish to {_quote(subject)}"))
            return False
        return True

    def _ok(self) -> None:
        if self.verbose:
            self.send(protocol.OK_BYTES)

    # Pings and write deadlines

    def _ping_tick(self) -> None:
        """nats-server's ping timer: skip while the client is visibly alive, else PING; after
        ping_max unanswered PINGs the connection is stale."""
        self._ping_timer = None
        if self.closed:
            return
        server = self.server
        loop = server.loop
        interval = server.options.ping_interval
        now = loop.time()
        recently_active = (now - self._last_msg_activity < interval
                           or now - self._last_client_ping < interval)
        if self.rtt == 0.0 or not recently_active:
            if self._pings_out + 1 > server.options.ping_max:
                logger.debug("%s - cid:%d - Stale Client Connection - Closing", self._addr(),
                             self.cid)
                server.stale_connections += 1
                self._fatal("Stale Connection", ClosedReason.STALE)
                return
            self._pings_out += 1
            self._ping_sent_at = now
            self.send(protocol.PING_BYTES)
        self._ping_timer = loop.call_later(interval, self._ping_tick)

    def _write_deadline_exceeded(self) -> None:
        self._write_timer = None
        if self.closed:
            return
        logger.info("%s - cid:%d - Slow Consumer Detected: WriteDeadline of %ss exceeded",
                    self._addr(), self.cid, self.server.options.write_deadline)
        self.server.slow_consumers += 1
        self.close(ClosedReason.SLOW_DEADLINE, flush=False)

    # Output

    def send(self, data: bytes) -> None:
        """Queue protocol bytes; they go out with this loop turn's flush."""
        if not self.out:
            self.server.mark_dirty(self)
        self.out.append(data)

    def flush(self) -> None:
        out = self.out
        if not out:
            return
        transport = self.transport
        if self.closed or transport is None:
            out.clear()
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        transport.write(data)
        if transport.get_write_buffer_size() > self.max_pending:
            logger.info("%s - cid:%d - Slow Consumer Detected: MaxPending of %d Exceeded",
                        self._addr(), self.cid, self.max_pending)
            self.server.slow_consumers += 1
            self.close(ClosedReason.SLOW_PENDING, flush=False)

    def _write_now(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    # Closing

    def _fatal(self, err_text: str | None, reason: str) -> None:
        """Send `-ERR` (if any) after everything queued so far, then close."""
        if err_text is not None:
            self.send(protocol.err_line(err_text))
        self.close(reason)

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
        self._ping_timer = self._auth_timer = self._write_timer = None
        subs = list(self.subs.values())
        self.subs.clear()
        for sub in subs:
            self.server.remove_sub(sub)
        self.server.forget(self)
        logger.debug("%s - cid:%d - Client connection closed: %s", self._addr(), self.cid, reason)

    # Helpers

    def _addr(self) -> str:
        return f"{self.host}:{self.port}"

    def _user(self) -> str:
        return self.identity.name if self.identity else ""

    def pending_bytes(self) -> int:
        buffered = self.transport.get_write_buffer_size() if self.transport else 0
        return buffered + sum(len(b) for b in self.out)


def _quote(subject: bytes) -> str:
    return json.dumps(subject.decode("utf-8", "replace"))
