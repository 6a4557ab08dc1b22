"""The server: listeners, the set of client connections, message routing and lifecycle.

The composition root: the one module that builds the parts and wires them together (client
connections, routes, JetStream and its cluster, monitoring). Each part declares what it needs of
the server as a Protocol in its own module (`ClientHost`, `RouteHost`, `jetstream.bus.Bus`,
`MonitoredServer`...) and this class satisfies them; only `cli.py` and `embedded.py` import it.

Routing is the hot path: `route()` matches a subject in the sublist and appends MSG frames to each
receiving connection's outbound list; `flush()` writes every touched connection once per loop turn.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import random
import secrets
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from broker import headers, protocol
from broker import routeproto as rp
from broker.account import (
    MAX_IMPORT_HOPS,
    Account,
    InterestCallback,
    service_import_map,
    stream_import_map,
)
from broker.accountbus import AccountBus
from broker.auth import Authenticator, Identity
from broker.client import CLIENT_PROTO_INFO, ClientConnection, ClosedReason
from broker.jetstream.api import JetStreamApi, refuse_without_jetstream
from broker.jetstream.cluster.jetstream_cluster import JetStreamCluster
from broker.jetstream.jetstream import JetStream
from broker.logger import logger, set_levels
from broker.monitor import MonitorServer, connection_info
from broker.operator import Operator
from broker.outbuf import Flushable
from broker.route import RouteManager
from broker.sublist import InternalHandler, MatchResult, Subscription, msg_start
from broker.system import SystemServices
from broker.tls import ServerTLS, TLSConfigError, monitoring_context, server_tls
from broker.version import PROTO, RUNTIME, SERVER_VERSION
from broker.websocket import WebSocketConnection
from common.subjects import subject_matches, subject_text
from config.options import (
    GLOBAL_ACCOUNT,
    RANDOM_PORT,
    AccountJetStream,
    AccountOptions,
    Import,
    Options,
    TLSOptions,
)

# Which TLS block of the options a held context serves (read again from the new options).
TLSOptionsGetter = Callable[[Options], TLSOptions | None]

MAX_CLOSED_CLIENTS = 10_000
LAME_DUCK_HANDOVER = 2.0  # seconds lame duck waits for peers to take over the groups led here
RELOADABLE = frozenset({
    "debug", "trace", "trace_verbose", "logtime", "logtime_utc", "username", "password",
    "authorization", "auth_timeout", "users", "no_auth_user", "max_connections",
    "max_subscriptions", "max_payload", "max_control_line", "max_pending", "ping_interval",
    "ping_max", "write_deadline", "lame_duck_duration", "lame_duck_grace_period", "server_tags",
    "server_metadata", "config_file", "tls",
})


class Relayed:
    """The origin of a message that crossed into another account through an import: a client's
    message, shown as one, which no receiver's `echo: false` concerns."""

    echo = True
    rtt = 0.0


RELAYED = Relayed()
# Who published a message being routed: a client, a relay through an import, or the server.
Origin = ClientConnection | Relayed | None
# An import's entry: routes one message into the other account; how many got it there.
Bridge = Callable[[bytes, bytes, int, bytes, Origin], int]
REQUEST_INFO = "Nats-Request-Info"  # what a responder behind a service import learns


def _never_called(subject: bytes, reply: bytes, hdr: int, payload: bytes) -> None:
    """The handler of a bridge subscription (the server calls the bridge instead)."""


def build_accounts(options: Options, operator: Operator | None) -> dict[str, Account]:
    """The global account, the configured ones (in operator mode, those the operator signed)
    and the system account (nats-server has it even when the configuration does not name it)."""
    cache = not options.disable_sublist_cache
    accounts = {GLOBAL_ACCOUNT: Account(GLOBAL_ACCOUNT, cache=cache)}
    configured = operator.account_options() if operator is not None else options.accounts
    for account in configured:
        accounts[account.name] = Account(account.name, account, cache=cache)
    system = options.system_account
    if system and system not in accounts and not options.no_system_account:
        accounts[system] = Account(system, AccountOptions(system), cache=cache)
    return accounts


def jetstream_accounts(options: Options, accounts: dict[str, Account],
                       ) -> list[tuple[Account, AccountJetStream]]:
    """The accounts JetStream serves, with their limits: as nats-server, the global account
    alone when no accounts are configured, otherwise those whose config (or JWT) enables it."""
    if not options.accounts and not options.operators:
        return [(accounts[GLOBAL_ACCOUNT], AccountJetStream())]
    return [(account, account.options.jetstream) for account in accounts.values()
            if account.options.jetstream is not None]


class StartupError(Exception):
    """The options cannot make a working server (nats-server refuses to start on these too)."""


def startup_problem(options: Options) -> str:
    """Why these options cannot start, or "" (nats-server's checks and words)."""
    if options.http_port and options.https_port:
        return (f"can't specify both HTTP ({options.http_port}) and HTTPs "
                f"({options.https_port}) ports")
    if options.https_port and options.tls is None:
        return "TLS cert and key required for HTTPS"
    websocket = options.websocket
    if websocket.port and websocket.tls is None and not websocket.no_tls:
        return "websocket requires TLS configuration"
    if options.jetstream.enabled and options.cluster.port:
        if not options.server_name:
            return "jetstream cluster requires `server_name` to be set"
        if not options.cluster.name:
            return "jetstream cluster requires `cluster.name` to be set"
        if not options.cluster.routes:
            return ("JetStream cluster requires configured routes or solicited leafnode for "
                    "the system account")
    return ""


def new_server_id() -> str:
    # nats-server ids are 56-character base32 public keys starting with N; ours look alike.
    return "N" + base64.b32encode(secrets.token_bytes(35)).decode()[:55]


class Server:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.server_id = new_server_id()
        self.name = options.server_name or self.server_id
        self.loop: asyncio.AbstractEventLoop = asyncio.get_running_loop()
        self.operator = Operator(options) if options.operators else None
        self.accounts = build_accounts(options, self.operator)
        self.global_account = self.accounts[GLOBAL_ACCOUNT]
        self.auth = Authenticator(options, self.operator)
        self.headers_supported = not options.no_header_support
        self.client_tls: ServerTLS | None = None  # built at start, from options.tls
        self.clients: dict[int, ClientConnection] = {}
        self.closed_clients: deque[dict[str, Any]] = deque(maxlen=MAX_CLOSED_CLIENTS)
        self.start_time = time.time()
        self.config_load_time = self.start_time
        self.lame_duck_mode = False
        self.ready = False
        # JetStream per account that has it; `jetstream` is the first (the global account's
        # when there are no accounts), which monitoring reports on.
        self.jetstreams: dict[str, JetStream] = {}
        self.jetstream: JetStream | None = None
        self.jetstream_cluster: JetStreamCluster | None = None
        self.routes: RouteManager | None = None

        # Counters reported by /varz and /metrics; message totals live on the connections and
        # are added up on demand (see `totals`), these keep what closed connections counted.
        self.closed_in_msgs = self.closed_in_bytes = 0
        self.closed_out_msgs = self.closed_out_bytes = 0
        self.internal_out_msgs = 0
        self.internal_publishes = 0
        self.slow_consumers = 0
        self.stale_connections = 0
        self.total_connections = 0

        self.client_port = 0
        self.monitor_port = 0
        self._cid = 0
        self._dirty: list[Flushable] = []
        self._flush_scheduled = False
        self._info_changed_at = 0.0
        self._listener: asyncio.AbstractServer | None = None
        # Monitoring's data, served over HTTP (when a port is configured) and to the system
        # account's requests.
        self.monitoring = MonitorServer(self)
        self._monitor: MonitorServer | None = None
        self._websocket: asyncio.AbstractServer | None = None
        self.websocket_port = 0
        # Contexts that listeners hold for good (TLS-first listeners, HTTPS monitoring,
        # routes): a reload loads renewed certificate files into them in place.
        self._held_contexts: list[tuple[ssl.SSLContext, TLSOptionsGetter]] = []
        self._ports_file = ""
        self._stopped = asyncio.Event()
        self._shutting_down = False
        self._shutdown_task: asyncio.Task | None = None
        self._lame_duck_task: asyncio.Task | None = None
        self._info_base = self._build_info_base()
        # Server-side subscriptions that peers hear about (a stream leader's subjects...).
        self._propagated: set[Subscription] = set()
        self._import_hops = 0  # accounts the message being routed has crossed (see _relay)
        self._bridges: dict[Subscription, Bridge] = {}
        # Stream imports' way for JetStream deliveries (`deliver_as`): target, subject, ...
        self._bridged_deliveries: dict[Subscription, Callable[[bytes, bytes, bytes, int, bytes],
                                                               int]] = {}

    # Lifecycle

    async def start(self) -> None:
        opts = self.options
        problem = startup_problem(opts)
        if problem:
            raise StartupError(problem)
        if opts.tls is not None:
            try:
                self.client_tls = server_tls(opts.tls)
            except TLSConfigError as exc:
                raise StartupError(str(exc)) from None
        port = 0 if opts.port == RANDOM_PORT else opts.port
        # handshake_first: the listener runs the handshake before the connection exists (then
        # INFO); otherwise each connection switches to TLS after INFO (ClientConnection).
        first = self.client_tls if self.client_tls and self.client_tls.handshake_first else None
        if first is not None:
            self._held_contexts.append((first.context, lambda o: o.tls))
        self._listener = await self.loop.create_server(
            lambda: ClientConnection(self), opts.host, port, reuse_address=True, backlog=1024,
            ssl=first.context if first else None,
            ssl_handshake_timeout=first.timeout if first else None)
        self.client_port = self._listener.sockets[0].getsockname()[1]
        self._info_base = self._build_info_base()
        logger.info("Starting nats-server")
        logger.info("  Version:  %s", SERVER_VERSION)
        logger.info("  Name:     %s", self.name)
        logger.info("  ID:       %s", self.server_id)
        if opts.cluster.port:
            await self._start_routes()
        self._wire_imports()
        system = self.accounts.get(opts.system_account)
        if system is not None and not opts.no_system_account:
            SystemServices(AccountBus(self, system), self, self.monitoring).subscribe()
        if opts.jetstream.enabled:
            self._start_jetstream()
        if opts.http_port or opts.https_port:
            await self._start_monitor()
        if opts.websocket.port:
            await self._start_websocket()
        logger.info("Listening for client connections on %s",
                    _hostport(opts.host, self.client_port))
        if self.client_tls is not None:
            logger.info("TLS required for client connections")
        self._write_process_files()
        self.ready = True
        logger.info("Server is ready")

    def _start_jetstream(self) -> None:
        """JetStream for each account that has it (the global account, when no accounts are
        configured), each with its own API, streams and limits; joined to the cluster when
        routes are configured (its streams and consumers are then placed by the meta group)."""
        for account, limits in jetstream_accounts(self.options, self.accounts):
            js = JetStream(AccountBus(self, account), self.options.jetstream, account.name,
                           limits)
            cluster = None
            if self.routes is not None:
                cluster = JetStreamCluster(js, self.routes.for_account(account.name))
                js.join_cluster(cluster)
            if self.jetstream is None:
                self.jetstream, self.jetstream_cluster = js, cluster
            account.jetstream = js
            JetStreamApi(js, cluster).subscribe()
            js.start(banner=not self.jetstreams)
            self.jetstreams[account.name] = js
        for account in self.accounts.values():
            if account.jetstream is None:
                refuse_without_jetstream(AccountBus(self, account))
        self._info_base = self._build_info_base()

    def _wire_imports(self) -> None:
        """Each import as a bridge between two accounts (see broker/account.py)."""
        for account in self.accounts.values():
            for imp in account.options.imports:
                exporter = self.accounts.get(imp.account)
                if exporter is None or \
                        exporter.exports_to(account.name, imp.subject, imp.service) is None:
                    # The config refuses this; an account JWT may still ask for it.
                    logger.warning("Account %s: import of %r from %s not authorized, ignored",
                                   account.name, imp.subject, imp.account)
                    continue
                if imp.service:
                    self._bridge_service(account, exporter, imp)
                else:
                    self._bridge_stream(account, exporter, imp)

    def _bridge_stream(self, importer: Account, exporter: Account, imp: Import) -> None:
        """Messages published in `exporter` on the import's subjects, into `importer`."""
        listen, mapping = stream_import_map(imp)

        def relay(subject: bytes, reply: bytes, hdr: int, payload: bytes, origin: Origin) -> int:
            return self._relay(importer, mapping.apply(subject), reply, hdr, payload)

        def deliver(target: bytes, subject: bytes, reply: bytes, hdr: int,
                    payload: bytes) -> int:
            if self._import_hops >= MAX_IMPORT_HOPS:
                return 0
            self._import_hops += 1
            try:
                return self.deliver_as(importer, mapping.apply(target), subject, reply, hdr,
                                       payload)
            finally:
                self._import_hops -= 1

        sub = self._add_bridge(exporter, listen, relay)
        self._bridged_deliveries[sub] = deliver

    def _bridge_service(self, importer: Account, exporter: Account, imp: Import) -> None:
        """Requests in `importer` on the import's subjects, into `exporter`, with a reply
        subject of the exporter's that takes the responses back. The responder sees who asked
        in a `Nats-Request-Info` header, as from nats-server."""
        listen, mapping = service_import_map(imp)
        export = exporter.exports_to(importer.name, imp.subject, service=True)
        response_type = export.response_type if export is not None else "Singleton"
        self._open_responses(exporter)

        def request(subject: bytes, reply: bytes, hdr: int, payload: bytes,
                    origin: Origin) -> int:
            if reply:
                reply = exporter.responses.open(importer, reply, response_type)
            rtt = origin.rtt if origin is not None else 0.0
            info = json.dumps({"acc": importer.name, "rtt": int(rtt * 1e9)},
                              separators=(",", ":"))
            block = headers.merge(payload[:hdr] if hdr > 0 else b"",
                                  [(REQUEST_INFO, info)])
            payload = block + (payload[hdr:] if hdr > 0 else payload)
            return self._relay(exporter, mapping.apply(subject), reply, len(block), payload)

        self._add_bridge(importer, listen, request)

    def _add_bridge(self, account: Account, subject: str, cross: Bridge) -> Subscription:
        sub = self.subscribe_internal(account, subject, _never_called)
        sub.bridge = True
        self._bridges[sub] = cross
        return sub

    def _open_responses(self, exporter: Account) -> None:
        """The exporter's response bridge, once: responses on `_R_.<id>.>` go back to the
        requester. Peers route them here (it is propagated): only this server knows where."""
        if exporter.response_sub is not None:
            return

        def respond(subject: bytes, reply: bytes, hdr: int, payload: bytes) -> None:
            pending = exporter.responses.take(subject)
            if pending is not None:
                self._relay(pending.account, pending.reply, reply, hdr, payload)

        exporter.response_sub = self.subscribe_internal(
            exporter, exporter.responses.wildcard, respond, propagate=True)

    def _relay(self, account: Account, subject: bytes, reply: bytes, hdr: int,
               payload: bytes) -> int:
        """A message crossing into `account` through an import, shown as the client's it was;
        dropped past MAX_IMPORT_HOPS (imports that form a cycle). How many got it."""
        if self._import_hops >= MAX_IMPORT_HOPS:
            return 0
        self._import_hops += 1
        try:
            return self.route(account, subject, reply, hdr, payload, RELAYED)
        finally:
            self._import_hops -= 1

    async def _start_routes(self) -> None:
        try:
            self.routes = RouteManager(self)
        except TLSConfigError as exc:
            raise StartupError(str(exc)) from None
        if self.routes.tls is not None:
            for context in (self.routes.tls.accept, self.routes.tls.dial):
                self._held_contexts.append((context, lambda o: o.cluster.tls))
        await self.routes.start()
        self._info_base = self._build_info_base()

    async def _start_websocket(self) -> None:
        """The WebSocket listener: the same clients, the same rules, framed (over TLS with
        websocket { tls { } }, the handshake before the HTTP upgrade)."""
        ws = self.options.websocket
        context = None
        if ws.tls is not None:
            try:
                context = monitoring_context(ws.tls) if not ws.tls.verify else \
                    server_tls(ws.tls).context
            except TLSConfigError as exc:
                raise StartupError(str(exc)) from None
        port = 0 if ws.port == RANDOM_PORT else ws.port
        if context is not None:
            self._held_contexts.append((context, lambda o: o.websocket.tls))
        self._websocket = await self.loop.create_server(
            lambda: WebSocketConnection(ws, lambda: ClientConnection(self, websocket=True)),
            ws.host, port, reuse_address=True, ssl=context,
            ssl_handshake_timeout=ws.handshake_timeout if context else None)
        self.websocket_port = self._websocket.sockets[0].getsockname()[1]
        scheme = "wss" if context else "ws"
        logger.info("Listening for websocket clients on %s://%s", scheme,
                    _hostport(ws.host, self.websocket_port))
        if context is None:
            logger.warning("Websocket not configured with TLS. DO NOT USE IN PRODUCTION!")

    async def _start_monitor(self) -> None:
        opts = self.options
        host = opts.http_host or opts.host
        wanted = opts.https_port or opts.http_port
        port = 0 if wanted == RANDOM_PORT else wanted
        context = None
        if opts.https_port and opts.tls is not None:
            try:
                context = monitoring_context(opts.tls)
            except TLSConfigError as exc:
                raise StartupError(str(exc)) from None
        if context is not None:
            self._held_contexts.append((context, lambda o: o.tls))
        self._monitor = self.monitoring
        self.monitor_port = await self._monitor.start(host, port, context)
        scheme = "https" if context is not None else "http"
        logger.info("Starting %s monitor on %s", scheme, _hostport(host, self.monitor_port))

    def _write_process_files(self) -> None:
        opts = self.options
        if opts.pid_file:
            _write_atomically(opts.pid_file, str(os.getpid()))
        if opts.ports_file_dir:
            self._ports_file = os.path.join(opts.ports_file_dir, f"broker_{os.getpid()}.ports")
            _write_atomically(self._ports_file, json.dumps(self.ports()))

    @property
    def client_url(self) -> str:
        host = self.options.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        return f"nats://{_hostport(host, self.client_port)}"

    def jetstream_ready(self) -> bool:
        """Whether JetStream is enabled and serving (in every account that has it)."""
        return bool(self.jetstreams) and all(js.ready for js in self.jetstreams.values())

    def jetstream_health(self) -> tuple[int, dict[str, Any]]:
        """/healthz's deep check: every stream of every account recovered."""
        if not self.jetstreams:
            return 503, {"status": "unavailable", "status_code": 503,
                         "error": "JetStream not enabled"}
        for js in self.jetstreams.values():
            status, body = js.health()
            if status != 200:
                return status, body
        return 200, {"status": "ok"}

    def ports(self) -> dict[str, list[str]]:
        ports = {"nats": [self.client_url]}
        if self.monitor_port:
            mhost = self.options.http_host or self.options.host
            if mhost in ("0.0.0.0", "::", ""):
                mhost = "127.0.0.1"
            scheme = "https" if self.options.https_port else "http"
            ports["monitoring"] = [f"{scheme}://{_hostport(mhost, self.monitor_port)}"]
        if self.websocket_port:
            ws = self.options.websocket
            whost = "127.0.0.1" if ws.host in ("0.0.0.0", "::", "") else ws.host
            scheme = "wss" if ws.tls is not None else "ws"
            ports["websocket"] = [f"{scheme}://{_hostport(whost, self.websocket_port)}"]
        if self.routes is not None:
            chost = self.routes.options.host
            if chost in ("0.0.0.0", "::", ""):
                chost = "127.0.0.1"
            ports["cluster"] = [f"nats://{_hostport(chost, self.routes.cluster_port)}"]
        return ports

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    def terminate(self) -> None:
        """SIGTERM: a graceful stop, unless lame duck is already under way. As in nats-server,
        lame duck then runs to its end, so the kubelet's SIGTERM after a preStop hook that
        started lame duck does not cut the clients' migration short."""
        if self.lame_duck_mode:
            logger.info("Lame duck mode in progress, ignoring SIGTERM")
            return
        self._shutdown_task = self.loop.create_task(self.shutdown())

    async def shutdown(self) -> None:
        """Graceful stop: stop accepting, flush and close every client, stop monitoring."""
        if self._shutting_down:
            await self._stopped.wait()
            return
        self._shutting_down = True
        logger.info("Initiating Shutdown...")
        self.ready = False
        for listener in (self._listener, self._websocket):
            if listener is not None:
                listener.close()
        for client in list(self.clients.values()):
            client.close(ClosedReason.SERVER_SHUTDOWN)
        for js in self.jetstreams.values():
            await js.stop()
        if self.routes is not None:
            await self.routes.stop()
        if self._monitor is not None:
            await self._monitor.stop()
        for listener in (self._listener, self._websocket):
            if listener is not None:
                await listener.wait_closed()
        if self._ports_file:
            _remove_quietly(self._ports_file)
        logger.info("Server Exiting..")
        self._stopped.set()

    def enter_lame_duck(self) -> None:
        """SIGUSR2 (`--signal ldm`): lame duck, flagged at once, so that a SIGTERM arriving
        before the task runs (the kubelet's, right after the preStop hook) is already ignored."""
        if self.lame_duck_mode or self._shutting_down:
            return
        self.lame_duck_mode = True
        self._lame_duck_task = self.loop.create_task(self._lame_duck())

    async def _lame_duck(self) -> None:
        """Stop accepting, tell clients (INFO ldm), close them over the lame duck duration."""
        opts = self.options
        logger.info("Entering lame duck mode, stop accepting new clients")
        if self._listener is not None:
            self._listener.close()
        if self.jetstreams:
            # As nats-server: hand Raft leadership to peers first, then leave JetStream, so the
            # streams and consumers led here move on at once instead of after an election
            # timeout, and readiness (`/healthz?js-enabled=true`) fails while clients drain.
            handed = sum(await asyncio.gather(*(js.hand_over(LAME_DUCK_HANDOVER)
                                                for js in self.jetstreams.values())))
            if handed:
                logger.info("Lame duck: handed over leadership of %d raft groups", handed)
            for js in self.jetstreams.values():
                await js.stop()
        if not self.clients:
            await self.shutdown()  # nobody to migrate (nats-server does the same)
            return
        self._info_base["ldm"] = True
        for client in list(self.clients.values()):
            client.send(protocol.info_line(self.client_info_json(client)))
        self.flush()
        grace = min(opts.lame_duck_grace_period, opts.lame_duck_duration)
        await asyncio.sleep(grace)
        clients = list(self.clients.values())
        spread = max(opts.lame_duck_duration - grace, 1.0)
        # Like nats-server: spread the closes, but never wait more than a second between two.
        pause = min(spread / len(clients), 1.0) if clients else 0.0
        logger.info("Closing %d existing clients over %.1fs", len(clients), spread)
        for client in clients:
            client.close(ClosedReason.LAME_DUCK)
            if pause:
                await asyncio.sleep(pause)
        await self.shutdown()

    def reload(self, new: Options) -> list[str]:
        """Apply what can change at run time. Returns the fields that could not be applied."""
        changed = _changed_fields(self.options, new)
        refused = [name for name in changed if name not in RELOADABLE]
        if "tls" in changed and not _tls_reloadable(self.options, new):
            refused.append("tls")
        if refused:
            return refused
        # The certificate files are read again even when their paths did not change: rotating
        # a certificate replaces the files. New connections use it; open ones keep theirs.
        # Raises TLSConfigError (nothing applied) when the new files cannot be loaded.
        client_tls = server_tls(new.tls) if new.tls is not None else None
        renewed = self._renewed_certificates(new)
        self.client_tls = client_tls
        for context, tls in renewed:
            context.load_cert_chain(tls.cert_file, tls.key_file)
        self.options = new
        self.auth = type(self.auth)(new, self.operator)
        self.config_load_time = time.time()
        set_levels(new.debug, new.trace)
        self._info_base = self._build_info_base()
        for client in self.clients.values():
            client.max_pending = new.max_pending
        logger.info("Reloaded server configuration")
        return []

    def _renewed_certificates(self, new: Options) -> list[tuple[ssl.SSLContext, TLSOptions]]:
        """The held contexts and the files to load into them, each pair checked first (a file
        that cannot be loaded raises TLSConfigError before any context changes)."""
        renewed = []
        for context, which in self._held_contexts:
            tls = which(new)
            if tls is None:
                continue
            server_tls(tls)  # loads the files into a scratch context: TLSConfigError if bad
            renewed.append((context, tls))
        return renewed

    # Connections

    def next_client_id(self) -> int:
        self._cid += 1
        return self._cid

    def admit(self, client: ClientConnection) -> bool:
        if self._shutting_down or len(self.clients) >= self.options.max_connections:
            if not self._shutting_down:
                logger.error("%s:%d - maximum connections exceeded", client.host, client.port)
            return False
        self.clients[client.cid] = client
        self.total_connections += 1
        return True

    def forget(self, client: ClientConnection) -> None:
        if self.clients.pop(client.cid, None) is not None:
            self.closed_in_msgs += client.in_msgs
            self.closed_in_bytes += client.in_bytes
            self.closed_out_msgs += client.out_msgs
            self.closed_out_bytes += client.out_bytes
            self.closed_clients.append(connection_info(client))

    def totals(self) -> tuple[int, int, int, int]:
        """(in_msgs, in_bytes, out_msgs, out_bytes) over every connection since start."""
        in_msgs, in_bytes = self.closed_in_msgs, self.closed_in_bytes
        out_msgs, out_bytes = self.closed_out_msgs, self.closed_out_bytes
        for c in self.clients.values():
            in_msgs += c.in_msgs
            in_bytes += c.in_bytes
            out_msgs += c.out_msgs
            out_bytes += c.out_bytes
        return in_msgs, in_bytes, out_msgs, out_bytes

    def client_info_json(self, client: ClientConnection) -> bytes:
        info = dict(self._info_base)
        if client.websocket:  # its TLS is the WebSocket listener's, not the client port's
            info.pop("tls_required", None)
            info.pop("tls_verify", None)
        info["client_id"] = client.cid
        info["client_ip"] = client.host
        if client.nonce:
            info["nonce"] = client.nonce
        return json.dumps(info, separators=(",", ":")).encode()

    def info_changed_since(self, when: float) -> bool:
        return self._info_changed_at >= when

    # The cluster as clients see it

    def own_client_urls(self) -> list[str]:
        """Where clients reach this server, as peers tell their clients (`host:port`)."""
        opts = self.options
        if opts.client_advertise:
            adv = opts.client_advertise.split("://")[-1]
            return [adv if ":" in adv else f"{adv}:{self.client_port}"]
        host = opts.host
        if host not in ("", "0.0.0.0", "::"):
            return [_hostport(host, self.client_port)]
        return [_hostport(ip, self.client_port) for ip in _local_addresses()]

    def client_urls(self) -> list[str]:
        """This server's client URLs and those its peers announced: clients' failover list."""
        urls = self.own_client_urls()
        if self.routes is not None:
            urls += [u for u in self.routes.client_urls() if u not in urls]
        return urls

    def info_version(self) -> str:
        return SERVER_VERSION

    def identity(self) -> dict[str, Any]:
        """Who this server is, as the system account's answers name it."""
        opts = self.options
        host = opts.host if opts.host not in ("", "0.0.0.0", "::") else "0.0.0.0"
        return {"host": host, "cluster": self.routes.name if self.routes is not None else "",
                "domain": opts.jetstream.domain, "tags": opts.server_tags,
                "version": SERVER_VERSION, "jetstream": self.jetstream_ready()}

    def topology_changed(self) -> None:
        """A peer came or went: clients that understand async INFO get the new URL list."""
        self._info_changed_at = time.time()
        self._info_base = self._build_info_base()
        if self.routes is None or self.routes.options.no_advertise:
            return
        for client in list(self.clients.values()):
            if client.protocol >= CLIENT_PROTO_INFO and client.connect_received:
                client.send(protocol.info_line(self.client_info_json(client)))

    def _build_info_base(self) -> dict[str, Any]:
        opts = self.options
        info: dict[str, Any] = {
            "server_id": self.server_id,
            "server_name": self.name,
            "version": SERVER_VERSION,
            "proto": PROTO,
            "go": RUNTIME,
            "host": opts.host,
            "port": self.client_port or opts.port,
            "headers": self.headers_supported,
            "max_payload": opts.max_payload,
        }
        if self.auth.required:
            info["auth_required"] = True
        if self.options.tls is not None:
            info["tls_required"] = True
            if self.options.tls.verify:
                info["tls_verify"] = True
        if self.jetstream_ready():
            info["jetstream"] = True
        if self.lame_duck_mode:
            info["ldm"] = True
        if self.routes is not None:
            info["cluster"] = self.routes.name
            if not self.routes.options.no_advertise:
                info["connect_urls"] = self.client_urls()
        return info

    # Routing (hot path)

    def route(self, account: Account, subject: bytes, reply: bytes, hdr: int, payload: bytes,
              origin: ClientConnection | Relayed | None) -> int:
        """Deliver one message to every matching subscription of `account`. Returns how many
        got it. `origin` None: the server's own message.

        Per-connection counters are the only bookkeeping here; server totals are summed from
        connections when asked for (see `totals`), which keeps this loop short.
        """
        result = account.lookup(subject)
        if result is None:
            result = account.sublist.match(subject)
        delivered = 0
        # The publisher when it asked not to get its own messages back (CONNECT echo: false).
        no_echo = origin if origin is not None and not origin.echo else None
        if hdr < 0:
            size = len(payload)
            # "<size>\r\n" or "<reply> <size>\r\n": the same for every receiver of this message.
            # (nats-server 2.9 wrote the empty reply of its own messages as a second space;
            # 2.10 leaves it out, as for any message.)
            rest = b"%s %d\r\n" % (reply, size) if reply else b"%d\r\n" % size
        for sub, start in result.psubs:
            client = sub.client
            if client is None:
                delivered += self._deliver_internal(sub, subject, reply, hdr, payload, origin)
                continue
            if client is no_echo:
                continue
            out = client.out
            if not out:
                self.mark_dirty(client)
            if hdr < 0:
                out += (start, rest, payload, b"\r\n")
                client.out_bytes += size
            else:
                shown = reply if reply or origin is not None else None
                out.append(_header_frame(client, start, shown, hdr, payload))
                client.out_bytes += len(payload)
            client.out_msgs += 1
            delivered += 1
            sub.delivered += 1
            if sub.max and sub.delivered >= sub.max:
                client.remove_subscription(sub)
            if reply and client.tracks_responses:
                client.perms.expect_response(reply)
        if result.qsubs:
            delivered += self._route_queues(account, result.qsubs, subject, reply, hdr, payload,
                                            origin, no_echo)
        return delivered

    def _route_queues(self, account: Account, groups: list[list[Subscription]], subject: bytes,
                      reply: bytes, hdr: int, payload: bytes,
                      origin: ClientConnection | Relayed | None,
                      no_echo: ClientConnection | Relayed | None) -> int:
        """One member of each group gets the message; a peer's share is its member count."""
        delivered = 0
        for group in groups:
            queue = group[0].queue
            assert queue is not None  # a group is the subscriptions of one queue
            n = len(group)
            first = random.randrange(n) if n > 1 else 0
            for i in range(n):
                sub = group[(first + i) % n]
                client = sub.client
                if client is None:
                    self._deliver_internal(sub, subject, reply, hdr, payload, origin)
                elif client.is_route:
                    client.send(rp.queue_msg(account.name_bytes, subject, queue, reply, hdr,
                                             payload))
                    client.out_msgs += 1
                    client.out_bytes += len(payload)
                elif client is no_echo:
                    continue
                else:
                    shown = reply if reply or origin is not None else None
                    self._send(sub, msg_start(subject, sub.sid), shown, hdr, payload)
                delivered += 1
                break
        return delivered

    def route_from_peer(self, account_name: bytes, subject: bytes, reply: bytes,
                        queue: bytes | None, hdr: int, payload: bytes) -> None:
        """A message a peer forwarded: for our own subscribers only (the mesh is full, nothing
        goes on to another peer), for one local member of `queue` when the peer picked us.
        Import bridges are skipped: the peer crossed the accounts already."""
        account = self.account_named(account_name)
        if account is None:
            return  # an account the peer has and we do not: a configuration mismatch
        result = account.lookup(subject)
        if result is None:
            result = account.sublist.match(subject)
        if queue is not None:
            self._deliver_to_queue_locally(result, queue, subject, reply, hdr, payload)
            return
        for sub, start in result.psubs:
            client = sub.client
            if client is None:
                if not sub.bridge:
                    self._deliver_internal(sub, subject, reply, hdr, payload)
            elif not client.is_route:
                self._send(sub, start, reply, hdr, payload)

    def deliver_from_peer(self, account_name: bytes, target: bytes, subject: bytes,
                          reply: bytes, queue: bytes | None, hdr: int, payload: bytes) -> None:
        """A peer's `deliver_as` for our subscribers of `target`."""
        account = self.account_named(account_name)
        if account is None:
            return
        result = account.sublist.match(target)
        if queue is not None:
            self._deliver_to_queue_locally(result, queue, subject, reply, hdr, payload)
            return
        for sub, _ in result.psubs:
            if sub.client is None and sub.bridge:
                continue  # the peer crossed the accounts already
            if sub.client is None or not sub.client.is_route:
                self._deliver_one(sub, subject, reply, hdr, payload)

    def _deliver_to_queue_locally(self, result: MatchResult, queue: bytes, subject: bytes,
                                  reply: bytes, hdr: int, payload: bytes) -> None:
        for group in result.qsubs:
            if group[0].queue != queue:
                continue
            local = [sub for sub in group if sub.client is None or not sub.client.is_route]
            if local:
                sub = local[random.randrange(len(local))] if len(local) > 1 else local[0]
                self._deliver_one(sub, subject, reply, hdr, payload)
            return

    def _send(self, sub: Subscription, start: bytes, reply: bytes | None, hdr: int,
              payload: bytes) -> None:
        """One message to one client subscription, off the plain fan-out fast path. `reply`
        None: a server-generated message without one (see `_header_frame`)."""
        client = sub.client
        client.send(_header_frame(client, start, reply, hdr, payload))
        client.out_msgs += 1
        client.out_bytes += len(payload)
        sub.delivered += 1
        if sub.max and sub.delivered >= sub.max:
            client.remove_subscription(sub)
        if reply and client.tracks_responses:
            client.perms.expect_response(reply)

    def _deliver_internal(self, sub: Subscription, subject: bytes, reply: bytes, hdr: int,
                          payload: bytes, origin: Origin = None) -> int:
        """A server-side subscriber; its failure is logged, never the publisher's problem.
        How many got the message: one, or for an import's bridge, those it reached in the
        other account (none: the publisher hears "no responders")."""
        self.internal_out_msgs += 1
        try:
            if sub.bridge:
                return self._bridges[sub](subject, reply, hdr, payload, origin)
            sub.callback(subject, reply, hdr, payload)  # type: ignore[misc]
        except Exception:
            logger.exception("internal subscriber on %r failed", sub.subject)
        return 1

    def no_responders(self, client: ClientConnection, subject: bytes, reply: bytes) -> None:
        """Tell a requester nobody listens: a 503 status to its own subscription on `reply`."""
        for sub, _ in client.account.sublist.match(reply).psubs:
            if sub.client is client:
                # The 2.10 form; servers from 2.11 on add a Nats-Subject header.
                client.send(b"HMSG %s %s 16 16\r\nNATS/1.0 503\r\n\r\n\r\n" % (reply, sub.sid))
                return

    def mark_dirty(self, client: Flushable) -> None:
        self._dirty.append(client)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write out everything queued this loop turn, one write per connection."""
        self._flush_scheduled = False
        dirty = self._dirty
        if not dirty:
            return
        self._dirty = []
        for client in dirty:
            client.flush()

    # Internal (server-side) subscribers and publishers, for JetStream and system services.

    def subscribe_internal(self, account: Account, subject: str, handler: InternalHandler,
                           queue: str | None = None, propagate: bool = False) -> Subscription:
        """A server-side subscriber. Only a `propagate`d one draws messages from peers: most
        services (the JetStream API...) run on every server and answer locally."""
        self._cid += 1
        sub = Subscription(subject.encode(), b"i%d" % self._cid, None,
                           queue.encode() if queue else None, handler)
        if propagate:
            self._propagated.add(sub)
        self.add_sub(account, sub, propagate)
        return sub

    def unsubscribe_internal(self, account: Account, sub: Subscription) -> None:
        propagated = sub in self._propagated
        self._propagated.discard(sub)
        self.remove_sub(account, sub, propagated)

    def add_sub(self, account: Account, sub: Subscription, propagate: bool = True) -> None:
        account.sublist.insert(sub)
        self.interest_changed(account, sub.subject)
        if propagate and self.routes is not None:
            self.routes.local_interest(account.name_bytes, sub.subject, sub.queue, True)

    def remove_sub(self, account: Account, sub: Subscription, propagate: bool = True) -> None:
        if not account.sublist.remove(sub):
            return
        self.interest_changed(account, sub.subject)
        if propagate and self.routes is not None:
            self.routes.local_interest(account.name_bytes, sub.subject, sub.queue, False)

    def deliver_as(self, account: Account, target: bytes, subject: bytes, reply: bytes,
                   hdr: int, payload: bytes) -> int:
        """Deliver to the subscribers of `target`, showing `subject` on the MSG line (JetStream
        delivers a stored message to a deliver subject or inbox under its own subject)."""
        result = account.sublist.match(target)
        delivered = 0
        name = account.name_bytes
        for sub, _ in result.psubs:
            client = sub.client
            if client is not None and client.is_route:
                client.send(rp.deliver_msg(name, target, subject, None, reply, hdr, payload))
                delivered += 1
            else:
                delivered += self._deliver_one(sub, subject, reply, hdr, payload, target)
        for group in result.qsubs:
            sub = group[random.randrange(len(group))] if len(group) > 1 else group[0]
            client = sub.client
            if client is not None and client.is_route:
                client.send(rp.deliver_msg(name, target, subject, sub.queue, reply, hdr,
                                           payload))
                delivered += 1
            else:
                delivered += self._deliver_one(sub, subject, reply, hdr, payload, target)
        return delivered

    def _deliver_one(self, sub: Subscription, subject: bytes, reply: bytes, hdr: int,
                     payload: bytes, target: bytes = b"") -> int:
        client = sub.client
        if client is None:
            relay = self._bridged_deliveries.get(sub) if sub.bridge else None
            if relay is not None and target:
                # A delivery for `target` crossing a stream import: delivered for the mapped
                # target in the importer, still shown under `subject`.
                return relay(target, subject, reply, hdr, payload)
            self._deliver_internal(sub, subject, reply, hdr, payload)
            return 1
        self._send(sub, msg_start(subject, sub.sid), reply, hdr, payload)
        return 1

    def has_interest(self, account: Account, subject: bytes, queue: str = "") -> bool:
        """Whether anything would receive `subject` (only members of `queue`, when given)."""
        result = account.sublist.match(subject)
        if queue:
            wanted = queue.encode()
            return any(group and group[0].queue == wanted for group in result.qsubs)
        return bool(result.psubs or result.qsubs)

    def watch_interest(self, account: Account, subject: bytes,
                       callback: InterestCallback) -> None:
        """Call `callback()` whenever a subscription that matches `subject` comes or goes."""
        account.interest_watchers.setdefault(subject, []).append(callback)

    def unwatch_interest(self, account: Account, subject: bytes,
                         callback: InterestCallback) -> None:
        watchers = account.interest_watchers
        callbacks = watchers.get(subject, [])
        if callback in callbacks:
            callbacks.remove(callback)
        if not callbacks:
            watchers.pop(subject, None)

    def interest_changed(self, account: Account, pattern: bytes) -> None:
        """A subscription on `pattern` was added to or removed from `account`."""
        if not account.interest_watchers:
            return
        for subject, callbacks in list(account.interest_watchers.items()):
            if subject_matches(pattern, subject):
                for callback in list(callbacks):
                    callback()

    def publish_internal(self, account: Account, subject: bytes, reply: bytes = b"",
                         payload: bytes = b"", hdr: int = -1) -> int:
        self.internal_publishes += 1
        return self.route(account, subject, reply, hdr, payload, None)

    @property
    def subscription_count(self) -> int:
        return sum(account.sublist.count for account in self.accounts.values())

    def account_named(self, name: bytes) -> Account | None:
        """The account a peer named on a route line (None: not one of ours)."""
        return self.accounts.get(subject_text(name))

    def account_of(self, identity: Identity | None) -> Account:
        """The account a connection's user belongs to (the global one without accounts)."""
        if identity is None or not identity.account:
            return self.global_account
        return self.accounts.get(identity.account, self.global_account)


def _header_frame(client: ClientConnection, start: bytes, reply: bytes | None, hdr: int,
                  payload: bytes) -> bytes:
    """One MSG or HMSG frame; a receiver without header support gets the body in a MSG.

    `reply` None marks a server-generated message without reply, written like any other (2.10;
    nats-server 2.9 wrote two spaces where the reply would be)."""
    if hdr >= 0 and not client.headers:
        payload = payload[hdr:]
        hdr = -1
    if reply is None:
        reply = b""
    if hdr < 0:
        if reply:
            return b"%s%s %d\r\n%s\r\n" % (start, reply, len(payload), payload)
        return b"%s%d\r\n%s\r\n" % (start, len(payload), payload)
    if reply:
        return b"H%s%s %d %d\r\n%s\r\n" % (start, reply, hdr, len(payload), payload)
    return b"H%s%d %d\r\n%s\r\n" % (start, hdr, len(payload), payload)


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _local_addresses() -> list[str]:
    """This host's addresses other than loopback (what nats-server advertises for 0.0.0.0)."""
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
    except OSError:
        infos = []
    found = (str(info[4][0]) for info in infos)  # AF_INET: (host, port) with a str host
    addresses = sorted({address for address in found if not address.startswith("127.")})
    return addresses or ["127.0.0.1"]


def _write_atomically(path: str, text: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(path)


def _tls_reloadable(old: Options, new: Options) -> bool:
    """TLS may change at run time, but not be turned on or off, and not with handshake_first
    (the listener runs that handshake with the context it was created with)."""
    if old.tls is None or new.tls is None:
        return False
    return not old.tls.handshake_first and not new.tls.handshake_first


def _changed_fields(old: Options, new: Options) -> list[str]:
    return [name for name in vars(old) if getattr(old, name) != getattr(new, name)]

