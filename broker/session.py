"""The rules of one client connection, sans-IO: parsed operations in, actions and bytes out.

`ClientSession` decides everything nats-server decides about a client connection: CONNECT first
(or an implicit one when no auth is needed), the CONNECT decode and its checks in nats-server's
order, auth violations and the auth timeout, verbose `+OK` and pedantic subject checks,
subscription validation, limits and permissions, PING/PONG with the first-PONG async INFO, the
ping timer's stale-connection rule, and which errors close the connection with what reason. It
owns the parser (`broker.protocol.ClientParser`) and the connection's subscriptions. It does no
I/O and has no timers: the asyncio side (`broker.client.ClientConnection`) feeds it bytes, calls
`ping_tick(now)` and `auth_timeout()` from its timers, and applies the actions it returns.

Using it:

    for event in session.receive(data):          # the parser's events, in order
        for action in session.handle(event):     # what to do about each, in order
            ...apply action...
    while session.paused: ...same with session.receive(b"")

Each event must be handled, and its actions applied, before the next is handled: applying a
publish can change the session (a delivery to this client may end one of its subscriptions, or
let it answer a request its permissions otherwise deny). The one shortcut: while `pub_checks` is
False, a PUB event is a PUBLISH action as it stands and need not go through `handle()` (the hot
path). After routing a batch of publishes, the host calls `published()` once.

Actions are tuples, like the parser's events:

    (PUBLISH, subject, reply, hdr, payload)   route it (the parser's PUB event itself); if nothing
                                              received it, the request has a reply and
                                              `no_responders` is set, answer with a 503 status
    (SEND, data)                  queue bytes for the client
    (SUBSCRIBE, sub)              add the subscription (already in `subs`) to the server's interest
    (UNSUBSCRIBE, sub)            remove it (already gone from `subs`)
    (AUTHENTICATED,)              the auth timer is no longer needed
    (NEGOTIATED,)                 what the delivery path reads per message changed (`echo`,
                                  `headers`, `perms`, `tracks_responses`): refresh its copies
    (INFO_DUE,)                   the client takes async INFO: send the current INFO if it changed
                                  since the connection started
    (CLOSE, reason)               flush what was sent, then close (reason: a `ClosedReason`)

Nothing follows a CLOSE; the host feeds the session nothing more afterwards.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Protocol, TypeVar

from broker import protocol
from broker.auth import Identity, PermissionChecker, new_nonce
from broker.logger import logger, trace, tracing
from broker.protocol import CONNECT, ERR, FATAL, PING, PONG, PUB, SUB, UNSUB
from broker.sublist import Subscription
from broker.tls import ClientCertificate
from common.subjects import is_valid_literal_subject, is_valid_subject, subject_text
from config.options import Options

_T = TypeVar("_T")

CLIENT_PROTO_INFO = 1  # a client at this protocol level understands async INFO
FIRST_PING_INTERVAL = 2.0

# Actions. PUBLISH is the parser's PUB code: a PUB event passes through unchanged.
PUBLISH = PUB
SEND = 21
SUBSCRIBE = 22
UNSUBSCRIBE = 23
AUTHENTICATED = 24
INFO_DUE = 25
NEGOTIATED = 26
CLOSE = 27

_SEND_OK = (SEND, protocol.OK_BYTES)
_SEND_PONG = (SEND, protocol.PONG_BYTES)
_SEND_PING = (SEND, protocol.PING_BYTES)
_SEND_INVALID_PUB_SUBJECT = (SEND, protocol.err_line("Invalid Publish Subject"))
_AUTHENTICATED = (AUTHENTICATED,)
_INFO_DUE = (INFO_DUE,)
_NEGOTIATED = (NEGOTIATED,)

# CONNECT fields and their JSON types; a mismatch fails the decode, as in nats-server.
_CONNECT_TYPES: dict[str, type | tuple[type, ...]] = {
    "verbose": bool, "pedantic": bool, "tls_required": bool, "echo": bool, "headers": bool,
    "no_responders": bool, "protocol": int, "name": str, "lang": str, "version": str,
    "user": str, "pass": str, "auth_token": str, "nkey": str, "sig": str, "jwt": str,
}


# What clients may not publish to (see `is_reserved`).
RESERVED_PREFIX = b"$JSC."

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
    TLS_HANDSHAKE = "TLS Handshake Failure"

    FROM_PARSER = {"parse": PARSE_ERROR, "max_payload": MAX_PAYLOAD,
                   "max_control_line": MAX_CONTROL_LINE}


class Authority(Protocol):
    """Who may connect (`broker.auth.Authenticator`)."""

    @property
    def required(self) -> bool: ...

    @property
    def timeout(self) -> float:
        """Seconds a client has to authenticate."""

    @property
    def nonce_required(self) -> bool:
        """Whether INFO carries a nonce (nkey users sign it in their CONNECT)."""

    def authenticate(self, connect: dict[str, object], nonce: str = "",
                     certificate: ClientCertificate | None = None) -> Identity | None: ...

    def default_identity(self) -> Identity | None: ...


class SessionHost(Protocol):
    """What the rules read of the server. Read at each use: a reload replaces them."""

    @property
    def options(self) -> Options: ...

    @property
    def auth(self) -> Authority: ...

    @property
    def headers_supported(self) -> bool: ...


# CONNECT fields that never reach a log (nats-server's removeSecretsFromTrace).
_SECRET = re.compile(rb'("(?:pass|auth_token)"\s*:\s*)"(?:[^"\\]|\\.)*"')


def redact_secrets(connect: bytes) -> bytes:
    """CONNECT's JSON with the password and the token replaced by [REDACTED]."""
    return _SECRET.sub(rb'\1"[REDACTED]"', connect)


def decode_connect(raw: bytes) -> dict[str, object] | None:
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


class ClientSession:
    """One client connection's protocol state and rules (see the module docstring)."""

    def __init__(self, host: SessionHost, owner: object, cid: int,
                 clock: Callable[[], float]) -> None:
        """`owner`: what this client's subscriptions deliver to (the connection); `clock`: the
        monotonic time of the host's timers (the event loop's)."""
        self.host = host
        self.owner = owner
        self.cid = cid
        self.addr = ""  # "host:port", for the log
        # The nonce this connection's INFO carries, when nkey users may connect: what their
        # CONNECT signs, so a signature cannot be replayed on another connection.
        self.nonce = new_nonce() if host.auth.nonce_required else ""
        self._clock = clock
        opts = host.options
        # HPUB is refused until a CONNECT negotiates headers, as in nats-server.
        self.parser = protocol.ClientParser(opts.max_control_line, opts.max_payload, headers=False)
        self.subs: dict[bytes, Subscription] = {}

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
        # The client's verified TLS certificate, set by the connection once the handshake is
        # done (it names the user with verify_and_map).
        self.certificate: ClientCertificate | None = None
        self.perms: PermissionChecker | None = None
        self.tracks_responses = False  # perms.allow_responses: remember delivered reply subjects
        self.first_pong_sent = False
        # Whether a publish needs more than routing (auth not done, permissions, pedantic or
        # verbose): one flag keeps the common case to a single test per message.
        self.pub_checks = True

        self.rtt = 0.0
        self._pings_out = 0
        self._ping_sent_at = 0.0
        self._last_msg_activity = 0.0  # publishes and subscription changes, as nats-server counts
        self._last_client_ping = 0.0

    # Input

    def receive(self, data: bytes) -> list[tuple]:
        """Parse `data`: the operations it completes (`broker.protocol` events), for `handle`."""
        return self.parser.feed(data)

    @property
    def paused(self) -> bool:
        """Parsing stopped after a CONNECT (so that what it negotiated applies to what follows):
        once its actions are applied, `receive(b"")` goes on."""
        return self.parser.paused

    def handle(self, event: tuple) -> list[tuple]:
        """The actions for one parsed operation, in order."""
        kind = event[0]
        if kind == PUB:
            return self._publish(event) if self.pub_checks or is_reserved(event[1]) else [event]
        out: list[tuple] = []
        if tracing():
            if kind == CONNECT:  # as nats-server traces it, the secrets redacted
                trace("%s - cid:%d - <<- [CONNECT %s]", self.addr, self.cid,
                      redact_secrets(event[1]).decode("utf-8", "replace"))
            else:
                trace("%s - cid:%d - <<- [%s]", self.addr, self.cid, _trace_op(event))
        if kind == FATAL:
            if not self.connect_received and self.host.auth.required:
                self._auth_violation(out)  # with auth, anything but CONNECT first is a violation
            else:
                self._fatal(out, event[1], ClosedReason.FROM_PARSER.get(
                    event[2], ClosedReason.PROTOCOL_VIOLATION))
            return out
        if kind == CONNECT:
            self._connect(event[1], out)
            return out
        if not self.connect_received and not self._implicit_connect(out):
            return out
        if kind == PING:
            self._ping(out)
        elif kind == PONG:
            if self._pings_out and self._ping_sent_at:
                self.rtt = self._clock() - self._ping_sent_at
            self._pings_out = 0
        elif kind == SUB:
            self._subscribe(event[1], event[2], event[3], out)
        elif kind == UNSUB:
            self._unsubscribe(event[1], event[2], out)
        elif kind == ERR:
            logger.error("%s - cid:%d - Client error: %s", self.addr, self.cid, event[1])
        return out

    def published(self) -> None:
        """The host routed publishes (counts as activity for the ping timer)."""
        self._last_msg_activity = self._clock()

    def drop_subscription(self, sub: Subscription) -> bool:
        """A subscription reached its delivery limit. True if it was still here: the host then
        removes it from the server's interest."""
        return self.subs.pop(sub.sid, None) is not None

    def take_subscriptions(self) -> list[Subscription]:
        """The connection closes: every subscription, for the host to remove."""
        subs = list(self.subs.values())
        self.subs.clear()
        return subs

    # Timers

    def auth_deadline(self) -> float | None:
        """Seconds the client has to authenticate; None when no auth is required."""
        auth = self.host.auth
        return auth.timeout if auth.required else None

    def first_ping_delay(self, jitter: float) -> float:
        """When the first PING goes out: early, to measure the RTT: after at most 2s, plus up to
        20% (`jitter` in [0, 1))."""
        return min(self.host.options.ping_interval, FIRST_PING_INTERVAL) * (1 + jitter / 5)

    @property
    def ping_interval(self) -> float:
        """The time between `ping_tick` calls after the first."""
        return self.host.options.ping_interval

    def auth_timeout(self) -> list[tuple]:
        """The auth timer fired: closes the connection unless the client authenticated."""
        if self.identity is not None:
            return []
        logger.error("%s - cid:%d - Authentication Timeout", self.addr, self.cid)
        out: list[tuple] = []
        self._fatal(out, "Authentication Timeout", ClosedReason.AUTH_TIMEOUT)
        return out

    def ping_tick(self, now: float) -> list[tuple]:
        """nats-server's ping timer: skip while the client is visibly alive, else PING; after
        ping_max unanswered PINGs the connection is stale."""
        opts = self.host.options
        interval = opts.ping_interval
        recently_active = (now - self._last_msg_activity < interval
                           or now - self._last_client_ping < interval)
        if self.rtt != 0.0 and recently_active:
            return []
        if self._pings_out + 1 > opts.ping_max:
            logger.debug("%s - cid:%d - Stale Client Connection - Closing", self.addr, self.cid)
            out: list[tuple] = []
            self._fatal(out, "Stale Connection", ClosedReason.STALE)
            return out
        self._pings_out += 1
        self._ping_sent_at = now
        return [_SEND_PING]

    # Rules

    def _publish(self, event: tuple) -> list[tuple]:
        """The per-publish checks that most connections do not need (see `pub_checks`)."""
        out: list[tuple] = []
        if not self.connect_received and not self._implicit_connect(out):
            return out
        subject = event[1]
        if subject.startswith(RESERVED_PREFIX):
            self._publish_violation(subject, out)
            return out
        if self.perms is not None and not self._may_publish(subject, out):
            return out
        if self.pedantic and not is_valid_literal_subject(subject):
            # nats-server complains but still routes the message.
            out.append(_SEND_INVALID_PUB_SUBJECT)
        if self.verbose:
            out.append(_SEND_OK)
        out.append(event)
        return out

    def _update_pub_checks(self) -> None:
        self.pub_checks = (not self.connect_received or self.perms is not None
                           or self.pedantic or self.verbose)

    def _implicit_connect(self, out: list[tuple]) -> bool:
        """An op arrived before CONNECT: fine without auth (telnet style), else a violation."""
        auth = self.host.auth
        if not auth.required:
            self.connect_received = True
            self._update_pub_checks()
            return True
        identity = auth.default_identity()
        if identity is None:
            self._auth_violation(out)
            return False
        self._authenticated(identity, out)
        return True

    def _connect(self, raw: bytes, out: list[tuple]) -> None:
        """CONNECT, checked in nats-server's order: JSON, auth, protocol, no_responders."""
        opts = decode_connect(raw)
        if opts is None:
            logger.error("%s - cid:%d - Error parsing CONNECT", self.addr, self.cid)
            out.append((CLOSE, ClosedReason.PROTOCOL_VIOLATION))
            return
        # A later CONNECT is applied on top of the current options, as nats-server decodes it.
        self.verbose = _field(opts, "verbose", self.verbose)
        self.pedantic = _field(opts, "pedantic", self.pedantic)
        self.echo = _field(opts, "echo", self.echo)
        self.headers = _field(opts, "headers", self.headers) and self.host.headers_supported
        self.no_responders = _field(opts, "no_responders", self.no_responders)
        self.protocol = _field(opts, "protocol", self.protocol)
        self.name = _field(opts, "name", self.name)
        self.lang = _field(opts, "lang", self.lang)
        self.version = _field(opts, "version", self.version)
        self.parser.headers = self.headers
        out.append(_NEGOTIATED)
        auth = self.host.auth
        if auth.required and self.identity is None:
            identity = auth.authenticate(opts, self.nonce, self.certificate)
            if identity is None:
                self._auth_violation(out)
                return
            self._authenticated(identity, out)
        if self.protocol < 0 or self.protocol > CLIENT_PROTO_INFO:
            self._fatal(out, "invalid client protocol", ClosedReason.BAD_PROTOCOL)
            return
        if self.no_responders and not self.headers:
            self._fatal(out, "no responders requires headers support",
                        ClosedReason.NO_RESPONDERS_HEADERS)
            return
        self.connect_received = True
        self._update_pub_checks()
        if self.verbose:
            out.append(_SEND_OK)

    def _authenticated(self, identity: Identity, out: list[tuple]) -> None:
        self.identity = identity
        self.connect_received = True
        if identity.permissions is not None:
            self.perms = PermissionChecker(identity.permissions)
            self.tracks_responses = self.perms.tracks_responses
            out.append(_NEGOTIATED)
        self._update_pub_checks()
        out.append(_AUTHENTICATED)

    def _auth_violation(self, out: list[tuple]) -> None:
        logger.error("%s - cid:%d - authentication error", self.addr, self.cid)
        self._fatal(out, "Authorization Violation", ClosedReason.AUTH_VIOLATION)

    def _ping(self, out: list[tuple]) -> None:
        out.append(_SEND_PONG)
        self._last_client_ping = self._clock()
        if self.first_pong_sent or not self.connect_received:
            return
        self.first_pong_sent = True
        if self.protocol >= CLIENT_PROTO_INFO:
            out.append(_INFO_DUE)

    def _subscribe(self, subject: bytes, queue: bytes | None, sid: bytes,
                   out: list[tuple]) -> None:
        if not is_valid_subject(subject) or (queue is not None and not is_valid_subject(queue)):
            out.append((SEND, protocol.err_line("Invalid Subject")))
            return
        if self.perms is not None and not self.perms.may_subscribe(subject):
            self._sub_violation(subject, queue, sid, out)
            return
        limit = self.host.options.max_subscriptions
        if limit and len(self.subs) >= limit:
            logger.error("%s - cid:%d - maximum subscriptions exceeded", self.addr, self.cid)
            out.append((SEND, protocol.err_line("maximum subscriptions exceeded")))
            return
        if sid in self.subs:  # nats-server ignores a SUB that reuses a sid
            self._ok(out)
            return
        self._last_msg_activity = self._clock()
        sub = Subscription(subject, sid, self.owner, queue)
        self.subs[sid] = sub
        out.append((SUBSCRIBE, sub))
        self._ok(out)

    def _sub_violation(self, subject: bytes, queue: bytes | None, sid: bytes,
                       out: list[tuple]) -> None:
        text = f"Permissions Violation for Subscription to {_quote(subject)}"
        if queue is not None:
            text += f" using queue {_quote(queue)}"
        logger.error("%s - cid:%d - Subscription Violation - %s, Subject %s, SID %s",
                     self.addr, self.cid, self._user(), _quote(subject), subject_text(sid))
        out.append((SEND, protocol.err_line(text)))

    def _unsubscribe(self, sid: bytes, max_msgs: int | None, out: list[tuple]) -> None:
        sub = self.subs.get(sid)
        if sub is not None:
            self._last_msg_activity = self._clock()
            # The limit counts what was delivered before the UNSUB too.
            if max_msgs is not None and sub.delivered < max_msgs:
                sub.max = max_msgs
            else:
                del self.subs[sid]
                out.append((UNSUBSCRIBE, sub))
        self._ok(out)

    def _may_publish(self, subject: bytes, out: list[tuple]) -> bool:
        perms = self.perms
        assert perms is not None
        if not perms.may_publish(subject):
            self._publish_violation(subject, out)
            return False
        return True

    def _publish_violation(self, subject: bytes, out: list[tuple]) -> None:
        logger.error("%s - cid:%d - Publish Violation - %s, Subject %s", self.addr,
                     self.cid, self._user(), _quote(subject))
        out.append((SEND, protocol.err_line(
            f"Permissions Violation for Publish to {_quote(subject)}")))

    def _ok(self, out: list[tuple]) -> None:
        if self.verbose:
            out.append(_SEND_OK)

    def _fatal(self, out: list[tuple], err_text: str | None, reason: str) -> None:
        """`-ERR` (if any) after everything sent so far, then close."""
        if err_text is not None:
            out.append((SEND, protocol.err_line(err_text)))
        out.append((CLOSE, reason))

    def _user(self) -> str:
        return self.identity.name if self.identity else ""


def is_reserved(subject: bytes) -> bool:
    """A subject no client may publish to: the JetStream cluster's own requests and replies
    (`$JSC.`: catch-up, info gathering), which nats-server keeps in the system account."""
    return subject[:1] == b"$" and subject.startswith(RESERVED_PREFIX)


def _field(opts: dict[str, object], key: str, current: _T) -> _T:
    """A CONNECT field (`decode_connect` checked its type), or `current` when absent."""
    value = opts.get(key, current)
    return value if isinstance(value, type(current)) else current


_OP_NAMES = {SUB: "SUB", UNSUB: "UNSUB", PING: "PING", PONG: "PONG", ERR: "-ERR",
             FATAL: "ERROR"}


def _trace_op(event: tuple) -> str:
    """An operation as nats-server's trace shows it: `SUB foo 1`, `PING`."""
    args = [arg.decode("utf-8", "replace") if isinstance(arg, bytes) else str(arg)
            for arg in event[1:] if arg is not None]
    return " ".join([_OP_NAMES.get(event[0], str(event[0])), *args])


def _quote(subject: bytes) -> str:
    return json.dumps(subject.decode("utf-8", "replace"))
