"""Routes: the connections that join servers into a cluster (a full mesh).

`RouteManager` listens on the cluster port, solicits the configured routes (and the ones other
servers tell it about: implicit discovery), keeps exactly one connection per peer server,
reconnects with back-off, and propagates local interest (RS+/RS-) so a message crosses to a peer
only when something there wants it. `RouteConnection` owns one socket: it feeds the sans-IO
`RouteParser` and looks enough like a client connection (`out`, `send`, `headers`...) for the
server's delivery path to write RMSG frames to it. Raft frames ride the same connections.
What routes need of the server is `RouteHost`.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import random
import ssl
import time
from collections.abc import Callable, Coroutine
from typing import Protocol
from urllib.parse import urlsplit

from broker import routeproto as rp
from broker.account import Account
from broker.logger import logger
from broker.outbuf import OutBuffer
from broker.sublist import Subscription
from broker.tls import RouteTLS, route_tls
from common.subjects import subject_text
from config.options import GLOBAL_ACCOUNT, Options

RECONNECT_MIN = 0.05
RECONNECT_MAX = 2.0
HANDSHAKE_TIMEOUT = 5.0
PING_INTERVAL_MAX = 5.0  # routes carry Raft traffic: a dead peer must be noticed in seconds
STALE_AFTER = 2.0


class RouteHost(Protocol):
    """What routes need of the server (`broker.server.Server`): its identity and options, the
    loop, the subscription index peers' interest goes into, delivery of what peers forward, the
    flush scheduling, and what the handshake tells peers about its clients."""

    @property
    def options(self) -> Options: ...

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    @property
    def server_id(self) -> str: ...

    @property
    def name(self) -> str: ...

    def account_named(self, name: bytes) -> Account | None:
        """The account a peer names on an interest or message line (None: not ours)."""
        ...

    def next_client_id(self) -> int: ...

    def route_from_peer(self, account: bytes, subject: bytes, reply: bytes,
                        queue: bytes | None, hdr: int, payload: bytes) -> None: ...

    def deliver_from_peer(self, account: bytes, target: bytes, subject: bytes, reply: bytes,
                          queue: bytes | None, hdr: int, payload: bytes) -> None: ...

    def interest_changed(self, account: Account, pattern: bytes) -> None: ...

    def mark_dirty(self, client: RouteConnection) -> None:
        """Call `route.flush()` at the end of this loop turn."""

    def client_urls(self) -> list[str]: ...

    def info_version(self) -> str: ...

    def topology_changed(self) -> None: ...


def parse_route_url(url: str) -> tuple[str, int, str, str]:
    """`nats-route://[user:pass@]host:port` -> (host, port, user, password)."""
    parts = urlsplit(url if "://" in url else "nats-route://" + url)
    return parts.hostname or "127.0.0.1", parts.port or 6222, parts.username or "", \
        parts.password or ""


class RouteConnection(OutBuffer, asyncio.Protocol):
    """One route. `out`, `send`, `flush`, `headers`, `echo` and the counters are what the server's
    delivery path uses, exactly as for a client connection."""

    is_route = True

    def __init__(self, manager: RouteManager, solicited: str = "") -> None:
        super().__init__()
        self.manager = manager
        self.server = manager.server
        self.solicited = solicited  # the URL we dialled, "" when the peer dialled us
        self.rid = self.server.next_client_id()
        self.rtt = 0.0
        self._ping_sent_at = 0.0
        self.parser = rp.RouteParser()
        self.headers = True
        self.echo = True
        self.perms = None
        self.tracks_responses = False
        self.remote_id = ""
        self.remote_name = ""
        self.remote_url = ""  # where the peer's route listener is, for gossip
        self.remote_client_urls: list[str] = []
        self.remote_jetstream = False
        self.host = ""
        self.port = 0
        self.start = time.time()
        self.last_activity = self.start
        self.in_msgs = self.in_bytes = self.out_msgs = self.out_bytes = 0
        self.established = False
        self._got_info = False
        self._authorized = bool(solicited)  # we dialled: the peer authorizes us, not the reverse
        # The peer's interest: (account, subject, queue) -> its subscription in that account.
        self._subs: dict[tuple[Account, bytes, bytes | None], Subscription] = {}
        self._handshake_timer: asyncio.TimerHandle | None = None
        self._ping_timer: asyncio.TimerHandle | None = None
        self._pings_out = 0

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername") or ("", 0)
        self.host, self.port = peer[0], peer[1]
        loop = self.server.loop
        self._handshake_timer = loop.call_later(HANDSHAKE_TIMEOUT, self._handshake_expired)
        if self.solicited:
            self.write_now(b"CONNECT " + self.manager.connect_json(self.solicited) + b"\r\n")
        self.write_now(b"INFO " + self.manager.info_json() + b"\r\n")
        self._ping_sent_at = time.monotonic()
        self.write_now(b"PING\r\n")  # the first PONG measures the round trip for /routez

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        self.last_activity = time.time()
        for event in self.parser.feed(data):
            if self.closed:
                return
            self._handle(event)

    def connection_lost(self, exc: Exception | None) -> None:
        if isinstance(exc, ssl.SSLError) and self.solicited:
            # TLS 1.3: the peer judges our certificate after our side of the handshake ended;
            # its refusal arrives as an alert on the first read.
            self.manager.tls_refused(self.solicited, exc)
        self._teardown("connection closed")

    # Events

    def _handle(self, event: tuple) -> None:
        kind = event[0]
        if kind == rp.MSG:
            if self.established:
                _, account, subject, reply, queue, hdr, payload = event
                self.in_msgs += 1
                self.in_bytes += len(payload)
                self.server.route_from_peer(account, subject, reply, queue, hdr, payload)
        elif kind == rp.DELIVER:
            if self.established:
                _, account, target, subject, reply, queue, hdr, payload = event
                self.in_msgs += 1
                self.in_bytes += len(payload)
                self.server.deliver_from_peer(account, target, subject, reply, queue, hdr,
                                              payload)
        elif kind == rp.RAFT:
            if self.established:
                self.manager.on_raft(self, event[1], event[2])
        elif kind == rp.SUB:
            if self.established:
                self._remote_sub(event[1], event[2], event[3], event[4])
        elif kind == rp.UNSUB:
            if self.established:
                self._remote_unsub(event[1], event[2], event[3])
        elif kind == rp.PING:
            self.send(b"PONG\r\n")
        elif kind == rp.PONG:
            self._pings_out = 0
            if self._ping_sent_at:
                self.rtt = time.monotonic() - self._ping_sent_at
                self._ping_sent_at = 0.0
        elif kind == rp.CONNECT:
            self._connect(event[1])
        elif kind == rp.INFO:
            self._info(event[1])
        elif kind == rp.ERR:
            logger.error("Route %s: peer error: %s", self._label(), event[1])
        elif kind == rp.FATAL:
            self.manager.malformed += 1
            logger.error("Route %s: protocol error: %s", self._label(), event[1])
            self.close(event[1], err=True)

    def _connect(self, raw: bytes) -> None:
        try:
            opts = json.loads(raw)
        except ValueError:
            self.close("bad CONNECT", err=True)
            return
        if not isinstance(opts, dict) or not self.manager.authorize(opts):
            logger.error("Route %s: authorization violation", self._label())
            self.manager.refused += 1
            self.close("Authorization Violation", err=True)
            return
        self._authorized = True

    def _info(self, raw: bytes) -> None:
        try:
            info = json.loads(raw)
            if not isinstance(info, dict):
                raise ValueError("not an object")
        except ValueError:
            self.close("bad INFO", err=True)
            return
        first = not self._got_info
        self._got_info = True
        self.remote_client_urls = [u for u in info.get("connect_urls", []) if isinstance(u, str)]
        if not first:
            self.manager.peer_info_changed(self, info)
            return
        if not self._authorized:
            logger.error("Route %s: INFO before CONNECT", self._label())
            self.close("Authorization Violation", err=True)
            return
        reason = self.manager.admit(self, info)
        if reason:
            self.close(reason, err=reason != "self")
            return
        self.established = True
        if self.solicited:
            self.manager.tls_accepted(self.solicited)
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None
        self._ping_timer = self.server.loop.call_later(self.manager.ping_interval, self._ping)

    def _remote_sub(self, name: bytes, subject: bytes, queue: bytes | None,
                    weight: int) -> None:
        account = self.server.account_named(name)
        if account is None:
            self.manager.unknown_account(self, name)
            return
        key = (account, subject, queue)
        sub = self._subs.get(key)
        if sub is not None:
            if queue is not None and weight != sub.weight:
                # Re-indexed so cached match results see the new share of the load.
                account.sublist.remove(sub)
                sub.weight = max(weight, 1)
                account.sublist.insert(sub)
            return
        sub = Subscription(subject, b"", self, queue)
        sub.weight = max(weight, 1)
        self._subs[key] = sub
        account.sublist.insert(sub)
        self.server.interest_changed(account, subject)

    def _remote_unsub(self, name: bytes, subject: bytes, queue: bytes | None) -> None:
        account = self.server.account_named(name)
        if account is None:
            return
        sub = self._subs.pop((account, subject, queue), None)
        if sub is not None:
            account.sublist.remove(sub)
            self.server.interest_changed(account, subject)

    def interest(self) -> list[str]:
        """The peer's interest, as /routez lists it (the global account's as bare subjects)."""
        listed = []
        for account, subject, queue in self._subs:
            text = subject_text(subject) + (" " + subject_text(queue) if queue else "")
            listed.append(text if account.is_global else f"{account.name} {text}")
        return listed

    def remove_subscription(self, sub: Subscription) -> None:
        """The delivery path's auto-unsubscribe hook; route interest has no message limit."""

    # Keepalive and handshake timeout

    def _ping(self) -> None:
        self._ping_timer = None
        if self.closed:
            return
        if self._pings_out >= 2:
            logger.error("Route %s: stale connection", self._label())
            self.close("Stale Connection", err=True)
            return
        self._pings_out += 1
        self._ping_sent_at = time.monotonic()
        self.send(b"PING\r\n")
        self._ping_timer = self.server.loop.call_later(self.manager.ping_interval, self._ping)

    def _handshake_expired(self) -> None:
        self._handshake_timer = None
        if not self.established and not self.closed:
            logger.error("Route %s: handshake timed out", self._label())
            self.close("handshake timeout")

    # Output (see `OutBuffer`; routes have no pending limit)

    def _mark_dirty(self) -> None:
        self.server.mark_dirty(self)

    def close(self, reason: str, err: bool = False) -> None:
        if self.closed:
            return
        if err:
            self.send(b"-ERR '" + reason.encode() + b"'\r\n")
        self.flush()
        self._teardown(reason)
        if self.transport is not None:
            self.transport.close()

    def _teardown(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.out.clear()
        for timer in (self._handshake_timer, self._ping_timer):
            if timer is not None:
                timer.cancel()
        subs = list(self._subs.items())
        self._subs.clear()
        for (account, _, _), sub in subs:
            account.sublist.remove(sub)
            self.server.interest_changed(account, sub.subject)
        self.manager.forget(self, reason)

    def _label(self) -> str:
        name = self.remote_name or self.remote_id or "?"
        return f"{self.host}:{self.port} ({name})"


class RouteManager:
    def __init__(self, server: RouteHost) -> None:
        self.server = server
        opts = server.options.cluster
        self.options = opts
        self.name = opts.name
        self.ping_interval = min(server.options.ping_interval, PING_INTERVAL_MAX)
        self.routes: dict[str, RouteConnection] = {}  # peer server id -> established route
        self.cluster_port = 0
        self._listener: asyncio.AbstractServer | None = None
        self._wanted: dict[str, bool] = {}  # URL -> explicit (configured) or gossiped
        self._dialing: set[str] = set()
        self._self_urls: set[str] = set()
        self._url_names: dict[str, str] = {}  # a dialled URL -> the server it leads to
        self._tasks: set[asyncio.Task] = set()
        # Local interest refcounts: (account, subject, queue) -> subscriptions here.
        self._interest: dict[tuple[bytes, bytes, bytes | None], int] = {}
        self._unknown_accounts: set[bytes] = set()  # named by peers, logged once each
        self._closing = False
        self.malformed = 0
        self.refused = 0
        # Routes over TLS (cluster { tls { } }): the handshake comes first, on both sides.
        # TLSConfigError when the files cannot be loaded (the server does not start).
        self.tls: RouteTLS | None = route_tls(opts.tls) if opts.tls is not None else None
        self._tls_failing: set[str] = set()  # dialled URLs whose handshake failed (logged once)
        # Each account's view for its JetStream cluster, by the prefix of its Raft groups.
        self._raft_views: dict[bytes, AccountRoutes] = {}
        # Peer joined or left: (peer server name, up).
        self.peer_listeners: list[Callable[[str, bool], None]] = []

    # Lifecycle

    async def start(self) -> None:
        opts = self.options
        tls = self.tls
        self._listener = await self.server.loop.create_server(
            lambda: RouteConnection(self), opts.host, opts.port if opts.port > 0 else 0,
            reuse_address=True, ssl=tls.accept if tls else None,
            ssl_handshake_timeout=tls.timeout if tls else None)
        self.cluster_port = self._listener.sockets[0].getsockname()[1]
        logger.info("Cluster name is %s", self.name)
        logger.info("Listening for route connections on %s:%d", opts.host, self.cluster_port)
        for url in opts.routes:
            self._want(url, explicit=True)

    async def stop(self) -> None:
        self._closing = True
        if self._listener is not None:
            self._listener.close()
        for task in list(self._tasks):
            task.cancel()
        for route in list(self.routes.values()):
            route.close("server shutdown")
        if self._listener is not None:
            await self._listener.wait_closed()

    # Soliciting routes

    def _want(self, url: str, explicit: bool) -> None:
        if url in self._wanted or url in self._self_urls:
            return
        self._wanted[url] = explicit
        self._spawn(self._dial_loop(url))

    def _spawn(self, coro: Coroutine[object, object, None]) -> None:
        task = self.server.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _dial_loop(self, url: str) -> None:
        """Keep one route to `url`: dial, and after a loss dial again with back-off."""
        delay = RECONNECT_MIN
        attempts = 0
        while not self._closing and url in self._wanted:
            if self._connected_to_url(url):
                await asyncio.sleep(RECONNECT_MAX)
                continue
            host, port, _, _ = parse_route_url(url)
            tls = self.tls
            try:
                await self.server.loop.create_connection(
                    lambda: RouteConnection(self, solicited=url), host, port,
                    ssl=tls.dial if tls else None, server_hostname=host if tls else None,
                    ssl_handshake_timeout=tls.timeout if tls else None)
                delay = RECONNECT_MIN
                attempts = 0
            except ssl.SSLError as exc:
                self.tls_refused(url, exc)
                attempts += 1
            except OSError:
                attempts += 1
                if not self._wanted.get(url) and attempts > max(self.options.connect_retries, 3):
                    self._wanted.pop(url, None)  # a gossiped route that went away for good
                    return
            await asyncio.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, RECONNECT_MAX)

    def tls_refused(self, url: str, exc: ssl.SSLError) -> None:
        """A route's TLS handshake failed (either side refused): logged once per URL until a
        route to it forms again, not at every retry."""
        if url in self._tls_failing:
            return
        self._tls_failing.add(url)
        reason = getattr(exc, "verify_message", None) or exc.reason or str(exc)
        logger.error("Error trying to connect to route %s: TLS route handshake error: %s", url,
                     str(reason).lower().replace("_", " "))

    def tls_accepted(self, url: str) -> None:
        self._tls_failing.discard(url)

    def _connected_to_url(self, url: str) -> bool:
        name = self._url_names.get(url)
        return any(r.solicited == url or r.remote_url == url or
                   (name is not None and r.remote_name == name) for r in self.routes.values())

    # Handshake

    def info_json(self) -> bytes:
        server = self.server
        info = {
            "server_id": server.server_id,
            "server_name": server.name,
            "cluster": self.name,
            "host": self.options.host,
            "port": self.cluster_port,
            "route_url": self.own_url(),
            "routes": sorted({r.remote_url for r in self.routes.values() if r.remote_url}),
            "connect_urls": [] if self.options.no_advertise else server.client_urls(),
            "jetstream": server.options.jetstream.enabled,
            "version": server.info_version(),
        }
        if self.tls is not None:
            info["tls_required"] = True
        return json.dumps(info, separators=(",", ":")).encode()

    def own_url(self) -> str:
        if self.options.advertise:
            adv = self.options.advertise
            return adv if "://" in adv else f"nats-route://{adv}"
        host = self.options.host
        if host in ("", "0.0.0.0", "::"):
            return ""  # peers use the address they see us at (see `admit`)
        return f"nats-route://{host}:{self.cluster_port}"

    def connect_json(self, url: str) -> bytes:
        _, _, user, password = parse_route_url(url)
        opts = self.options
        connect = {"server_id": self.server.server_id, "server_name": self.server.name,
                   "cluster": self.name, "user": user or opts.user,
                   "pass": password or opts.password}
        return json.dumps(connect, separators=(",", ":")).encode()

    def authorize(self, connect: dict) -> bool:
        opts = self.options
        if not opts.user and not opts.token:
            return True
        if opts.token:
            return _same(connect.get("auth_token") or connect.get("pass"), opts.token)
        return connect.get("user") == opts.user and _same(connect.get("pass"), opts.password)

    def admit(self, route: RouteConnection, info: dict) -> str:
        """Check a peer's first INFO; register the route. Returns why it is refused, or ""."""
        server = self.server
        remote_id = info.get("server_id")
        if not isinstance(remote_id, str) or not remote_id:
            return "missing server id"
        if remote_id == server.server_id:
            if route.solicited:
                self._self_urls.add(route.solicited)
                self._wanted.pop(route.solicited, None)
            return "self"
        if info.get("cluster") != self.name:
            logger.error("Route %s: cluster name %r does not match ours (%r)", route._label(),
                         info.get("cluster"), self.name)
            self.refused += 1
            return "Cluster Name Conflict"
        name = info.get("server_name") or remote_id
        if route.solicited:
            self._url_names[route.solicited] = name
        if name == server.name:
            logger.error("Route %s: remote server has a duplicate name %r", route._label(), name)
            self.refused += 1
            return "Duplicate Server Name"
        same_name = next((r for r in self.routes.values()
                          if r.remote_name == name and r.remote_id != remote_id), None)
        if same_name is not None:
            # A restarted peer comes back with a new id under its old name; until its old route
            # is seen dead (nothing heard for a while) the newcomer is the suspect.
            if time.time() - same_name.last_activity < STALE_AFTER:
                logger.error("Route %s: remote server has a duplicate name %r", route._label(),
                             name)
                self.refused += 1
                return "Duplicate Server Name"
            same_name.close("replaced by a restarted peer")
        existing = self.routes.get(remote_id)
        if existing is not None and not existing.closed:
            # Both sides dialled at once: keep the route dialled by the smaller server id.
            keep_new = (route.solicited != "") == (server.server_id < remote_id)
            if not keep_new:
                return "Duplicate Route"
            existing.close("Duplicate Route")
        route.remote_id = remote_id
        route.remote_name = name
        route.remote_jetstream = bool(info.get("jetstream"))
        advertised = info.get("route_url") or ""
        if not advertised and info.get("port"):
            advertised = f"nats-route://{route.host}:{info['port']}"
        route.remote_url = advertised
        if advertised:
            self._url_names.setdefault(advertised, name)
        self.routes[remote_id] = route
        logger.info("Route connection created to %s (%s)", name, route.host)
        self._send_interest(route)
        for url in info.get("routes", []):
            if isinstance(url, str) and url != self.own_url():
                self._want(url, explicit=False)
        self._announce()
        server.topology_changed()
        for listener in list(self.peer_listeners):
            listener(name, True)
        return ""

    def peer_info_changed(self, route: RouteConnection, info: dict) -> None:
        for url in info.get("routes", []):
            if isinstance(url, str) and url != self.own_url():
                self._want(url, explicit=False)
        self.server.topology_changed()

    def _announce(self) -> None:
        """Tell every peer what we know now (their INFO gossip drives implicit routes)."""
        frame = b"INFO " + self.info_json() + b"\r\n"
        for route in self.routes.values():
            route.send(frame)

    def forget(self, route: RouteConnection, reason: str) -> None:
        if route.remote_id and self.routes.get(route.remote_id) is route:
            del self.routes[route.remote_id]
            logger.info("Route connection to %s closed: %s", route.remote_name, reason)
            self.server.topology_changed()
            for listener in list(self.peer_listeners):
                listener(route.remote_name, False)

    # Interest propagation

    def local_interest(self, account: bytes, subject: bytes, queue: bytes | None,
                       added: bool) -> None:
        """A local subscription came or went. Peers hear of a subject when its first subscriber
        comes and its last goes; of a queue group's member count whenever it changes."""
        key = (account, subject, queue)
        count = self._interest.get(key, 0) + (1 if added else -1)
        if count < 0:
            return
        if count == 0:
            del self._interest[key]
            self._broadcast(rp.unsub_line(account, subject, queue))
            return
        self._interest[key] = count
        if (added and count == 1) or queue is not None:
            self._broadcast(rp.sub_line(account, subject, queue, count))

    def unknown_account(self, route: RouteConnection, name: bytes) -> None:
        """A peer's interest in an account this server does not have: their configurations
        differ. Logged once per account; the interest is ignored."""
        if name in self._unknown_accounts:
            return
        self._unknown_accounts.add(name)
        logger.warning("Route %s: interest in unknown account %r ignored (the servers' "
                       "accounts differ)", route.remote_name, subject_text(name))

    def _broadcast(self, frame: bytes) -> None:
        for route in self.routes.values():
            route.send(frame)

    def _send_interest(self, route: RouteConnection) -> None:
        lines = [rp.sub_line(account, subject, queue, count)
                 for (account, subject, queue), count in self._interest.items()]
        if lines:
            route.send(b"".join(lines))

    # Clustered JetStream

    def jetstream_peers(self) -> list[str]:
        return sorted(r.remote_name for r in self.routes.values() if r.remote_jetstream)

    def routes_include_self(self) -> bool:
        """Whether one of the configured routes was found to lead back to this server."""
        return bool(self._self_urls)

    def bootstrap_peers(self) -> list[str] | None:
        """The JetStream peers to found the meta group with: None until every configured route
        is known to lead to this server itself or to a server connected now."""
        if not self.options.routes:
            return None
        connected = {r.remote_name for r in self.routes.values()}
        for url in self.options.routes:
            if url in self._self_urls:
                continue
            if self._url_names.get(url) not in connected:
                return None
        return self.jetstream_peers()

    # Raft transport

    def for_account(self, account: str) -> AccountRoutes:
        """The routes as one account's JetStream cluster uses them (`ClusterRoutes`)."""
        view = AccountRoutes(self, account)
        self._raft_views[view.prefix] = view
        return view

    def send_raft(self, peer_name: str, group: bytes, frame: bytes) -> bool:
        for route in self.routes.values():
            if route.remote_name == peer_name:
                route.send(rp.raft_frame(group, frame))
                return True
        return False

    def on_raft(self, route: RouteConnection, group: bytes, frame: bytes) -> None:
        account, slash, name = group.rpartition(b"/")
        view = self._raft_views.get(account + slash)
        if view is None or view.raft_handler is None:
            return  # an account whose JetStream is not (yet) running here
        try:
            view.raft_handler(route.remote_name, name, frame)
        except Exception:  # a bad frame must not take the route down
            self.malformed += 1
            logger.exception("Raft frame from %s dropped", route.remote_name)

    # Monitoring

    def peers(self) -> list[str]:
        return sorted(r.remote_name for r in self.routes.values())

    def client_urls(self) -> list[str]:
        urls: list[str] = []
        for route in self.routes.values():
            urls += route.remote_client_urls
        return sorted(set(urls))


class AccountRoutes:
    """One account's view of the routes, for its JetStream cluster: its Raft groups travel as
    `<account>/<group>` (the global account's under their bare names), so every account runs
    its own groups over the same connections."""

    def __init__(self, manager: RouteManager, account: str) -> None:
        self.manager = manager
        self.prefix = b"" if account == GLOBAL_ACCOUNT else account.encode() + b"/"
        self.name = manager.name
        self.options = manager.options
        # Raft frames from a peer: (peer server name, group, frame bytes).
        self.raft_handler: Callable[[str, bytes, bytes], None] | None = None

    def send_raft(self, peer_name: str, group: bytes, frame: bytes) -> bool:
        return self.manager.send_raft(peer_name, self.prefix + group, frame)

    def bootstrap_peers(self) -> list[str] | None:
        return self.manager.bootstrap_peers()

    def routes_include_self(self) -> bool:
        return self.manager.routes_include_self()

    def jetstream_peers(self) -> list[str]:
        return self.manager.jetstream_peers()


def _same(given: object, expected: str) -> bool:
    return isinstance(given, str) and hmac.compare_digest(given.encode(), expected.encode())
