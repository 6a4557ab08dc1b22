"""HTTP monitoring: /varz, /connz, /subsz, /healthz, /routez, /jsz and /metrics.

A deliberately small HTTP/1.1 server on the event loop (GET only, one request per connection
unless the client asks for keep-alive): monitoring is polled, not a hot path, and this avoids a
web framework. Response shapes follow nats-server's monitor.go.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import ssl
import time
from collections import deque
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from broker.account import Account
from broker.auth import Authenticator
from broker.client import ClientConnection
from broker.jetstream.cluster.jetstream_cluster import JetStreamCluster
from broker.jetstream.jetstream import JetStream, LocalStream
from broker.logger import logger
from broker.metrics import JetStreamSummary, render_metrics
from broker.route import RouteManager
from broker.sublist import Subscription
from broker.version import PROTO, RUNTIME, SERVER_VERSION
from common.gotime import ZERO_TIME, format_ns
from common.gotime import format_duration as go_duration
from common.subjects import subject_text
from config.options import DEFAULT_TLS_TIMEOUT, GLOBAL_ACCOUNT, Options

MAX_REQUEST_HEAD = 16 * 1024
PROMETHEUS_TEXT = "text/plain; version=0.0.4"
DEFAULT_CONNZ_LIMIT = 1024


def rfc3339(ts: float) -> str:
    """A Unix time in seconds as Go's time.Time JSON (UTC)."""
    return format_ns(int(ts * 1e9)) if ts else ZERO_TIME


class MonitoredServer(Protocol):
    """What the monitoring endpoints read of the server (`broker.server.Server`)."""

    options: Options
    server_id: str
    name: str
    client_port: int
    auth: Authenticator
    start_time: float
    config_load_time: float
    lame_duck_mode: bool
    ready: bool
    clients: dict[int, ClientConnection]
    closed_clients: deque[dict[str, Any]]
    total_connections: int
    slow_consumers: int
    stale_connections: int
    internal_publishes: int
    accounts: dict[str, Account]
    routes: RouteManager | None
    jetstream: JetStream | None
    jetstreams: dict[str, JetStream]  # by account
    jetstream_cluster: JetStreamCluster | None

    def totals(self) -> tuple[int, int, int, int]: ...

    @property
    def subscription_count(self) -> int: ...

    def jetstream_ready(self) -> bool: ...

    def jetstream_health(self) -> tuple[int, dict[str, Any]]: ...


class MonitorServer:
    def __init__(self, server: MonitoredServer) -> None:
        self.server = server
        self._listener: asyncio.AbstractServer | None = None
        self._cpu_mark = (time.monotonic(), _cpu_seconds())
        self.requests: dict[str, int] = {}
        base = server.options.http_base_path.rstrip("/")
        self._base = base if base.startswith("/") or not base else "/" + base

    async def start(self, host: str, port: int, tls: ssl.SSLContext | None = None) -> int:
        """Listen (over TLS with `tls`: https_port); the port listened on."""
        self._listener = await asyncio.start_server(self._serve, host, port, reuse_address=True,
                                                    ssl=tls)
        return self._listener.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()
            await self._listener.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if len(head) > MAX_REQUEST_HEAD:
                    break
                keep_alive = await self._answer(head, writer)
                await writer.drain()
                if not keep_alive:
                    break
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        except Exception:  # a monitoring bug must never take the server down
            logger.exception("monitoring request failed")
        finally:
            writer.close()

    async def _answer(self, head: bytes, writer: asyncio.StreamWriter) -> bool:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split()
        if len(parts) != 3:
            _respond(writer, 400, {"error": "bad request"}, False)
            return False
        method, target, version = parts
        keep_alive = version == "HTTP/1.1" and not any(
            line.lower().startswith("connection:") and "close" in line.lower() for line in lines)
        url = urlsplit(target)
        path = url.path
        if self._base and path.startswith(self._base):
            path = path[len(self._base):] or "/"
        path = path.rstrip("/") or "/"
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        if method not in ("GET", "HEAD"):
            _respond(writer, 405, {"error": "method not allowed"}, keep_alive)
            return keep_alive
        self.requests[path] = self.requests.get(path, 0) + 1
        handler = self._routes().get(path)
        if handler is None:
            _respond(writer, 404, {"error": "not found"}, keep_alive)
            return keep_alive
        try:
            result = handler(query)
            # /metrics is a coroutine: it gives the loop turns while it works (broker.metrics).
            status, body = await result if inspect.isawaitable(result) else result
        except BadParameter as exc:
            _respond_text(writer, 400, str(exc), keep_alive)
            return keep_alive
        if isinstance(body, bytes):
            _write(writer, status, body, PROMETHEUS_TEXT, keep_alive)
        elif isinstance(body, str):
            _respond_text(writer, status, body, keep_alive)
        else:
            _respond(writer, status, body, keep_alive)
        return keep_alive

    def _routes(self) -> dict[str, Any]:
        return {
            "/": self.index,
            "/varz": self.varz,
            "/connz": self.connz,
            "/subsz": self.subsz,
            "/subscriptionsz": self.subsz,
            "/routez": self.routez,
            "/healthz": self.healthz,
            "/jsz": self.jsz,
            "/metrics": self.metrics,
        }

    def endpoint(self, name: str, query: dict[str, str]) -> tuple[int, dict[str, Any]] | None:
        """An endpoint by the name the system account's requests use (`$SYS.REQ.SERVER.PING.
        VARZ`...), with the options of its HTTP query; None for a name not served here."""
        handler = {"VARZ": self.varz, "CONNZ": self.connz, "SUBSZ": self.subsz,
                   "ROUTEZ": self.routez, "HEALTHZ": self.healthz, "JSZ": self.jsz}.get(name)
        return handler(query) if handler is not None else None

    def statsz(self) -> dict[str, Any]:
        """The server's statistics as `$SYS.REQ.SERVER.PING.STATSZ` reports them."""
        s = self.server
        in_msgs, in_bytes, out_msgs, out_bytes = s.totals()
        routes = s.routes.routes if s.routes is not None else {}
        body: dict[str, Any] = {
            "start": rfc3339(s.start_time),
            "mem": _rss_bytes(),
            "cores": os.cpu_count() or 1,
            "cpu": self._cpu_percent(),
            "connections": len(s.clients),
            "total_connections": s.total_connections,
            "active_accounts": len({c.account.name for c in s.clients.values()}),
            "subscriptions": s.subscription_count,
            "sent": {"msgs": out_msgs, "bytes": out_bytes},
            "received": {"msgs": in_msgs, "bytes": in_bytes},
            "slow_consumers": s.slow_consumers,
            "active_servers": len(routes) + 1,
        }
        if routes:
            body["routes"] = [{"rid": r.rid, "name": r.remote_name,
                               "sent": {"msgs": r.out_msgs, "bytes": r.out_bytes},
                               "received": {"msgs": r.in_msgs, "bytes": r.in_bytes},
                               "pending": len(r.out)} for r in routes.values()]
        return body

    # Endpoints: each returns (status, JSON-able body or text).

    def index(self, query: dict[str, str]) -> tuple[int, str]:
        links = "".join(f'<a href=".{p}">{p}</a><br/>\n' for p in self._routes() if p != "/")
        return 200, f"<html><body><h1>NATS-compatible broker</h1>\n{links}</body></html>"

    def varz(self, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        s = self.server
        opts = s.options
        now = time.time()
        in_msgs, in_bytes, out_msgs, out_bytes = s.totals()
        body: dict[str, Any] = {
            "server_id": s.server_id,
            "server_name": s.name,
            "version": SERVER_VERSION,
            "proto": PROTO,
            "go": RUNTIME,
            "host": opts.host,
            "port": s.client_port,
            "auth_required": s.auth.required,
            "max_connections": opts.max_connections,
            "max_subscriptions": opts.max_subscriptions,
            "ping_interval": int(opts.ping_interval * 1e9),
            "ping_max": opts.ping_max,
            "http_host": opts.http_host or opts.host,
            "http_port": opts.http_port,  # the configured value (-1 stays -1), as nats-server
            "http_base_path": opts.http_base_path,
            "https_port": opts.https_port,
            "auth_timeout": opts.auth_timeout,
            "max_control_line": opts.max_control_line,
            "max_payload": opts.max_payload,
            "max_pending": opts.max_pending,
            "cluster": self._cluster_varz(),
            "gateway": {},
            "leaf": {},
            "mqtt": {},
            "websocket": {},
            "jetstream": self._jetstream_varz(),
            "tls_timeout": opts.tls.timeout if opts.tls is not None else DEFAULT_TLS_TIMEOUT,
            "write_deadline": int(opts.write_deadline * 1e9),
            "start": rfc3339(s.start_time),
            "now": rfc3339(now),
            "uptime": go_duration(now - s.start_time),
            "mem": _rss_bytes(),
            "cores": os.cpu_count() or 1,
            "gomaxprocs": 1,
            "cpu": self._cpu_percent(),
            "connections": len(s.clients),
            "total_connections": s.total_connections,
            "routes": len(s.routes.routes) if s.routes is not None else 0,
            "remotes": len(s.routes.routes) if s.routes is not None else 0,
            "leafnodes": 0,
            "in_msgs": in_msgs,
            "out_msgs": out_msgs,
            "in_bytes": in_bytes,
            "out_bytes": out_bytes,
            "slow_consumers": s.slow_consumers,
            "stale_connections": s.stale_connections,
            "subscriptions": s.subscription_count,
            "http_req_stats": dict(self.requests),
            "config_load_time": rfc3339(s.config_load_time),
            "tags": opts.server_tags,
            "metadata": opts.server_metadata,
            "lame_duck_mode": s.lame_duck_mode,
        }
        if not opts.no_system_account and opts.system_account:
            body["system_account"] = opts.system_account
        if opts.tls is not None:  # nats-server omits both when false
            body["tls_required"] = True
            if opts.tls.verify:
                body["tls_verify"] = True
        return 200, body

    def _cluster_varz(self) -> dict[str, Any]:
        routes = self.server.routes
        if routes is None:
            return {}
        opts = routes.options
        body: dict[str, Any] = {"name": routes.name, "addr": opts.host,
                                "cluster_port": routes.cluster_port,
                                "auth_timeout": opts.auth_timeout, "tls_timeout": 2}
        if opts.routes:
            body["urls"] = [url.split("://")[-1].split("@")[-1] for url in opts.routes]
        return body

    def _jetstream_varz(self) -> dict[str, Any]:
        js = self.server.jetstream
        if js is None:
            return {}
        every = list(self.server.jetstreams.values())
        opts = self.server.options.jetstream
        return {
            "config": {"max_memory": js.server_max_memory, "max_storage": js.server_max_storage,
                       "store_dir": js.store_dir, "sync_always": opts.sync_interval is None,
                       "sync_interval": int((opts.sync_interval or 0) * 1e9),
                       "domain": js.domain, "strict": js.strict},
            "stats": {"memory": sum(j.usage("memory") for j in every),
                      "storage": sum(j.usage("file") for j in every),
                      "reserved_memory": sum(j.reserved("memory") for j in every),
                      "reserved_storage": sum(j.reserved("file") for j in every),
                      "accounts": len(every), "ha_assets": 0,
                      "api": {"total": sum(j.api_total for j in every),
                              "errors": sum(j.api_errors for j in every)}},
        }

    def connz(self, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        s = self.server
        state = query.get("state", "open")
        subs = query.get("subs", "")
        offset = _int(query.get("offset"), 0)
        limit = _int(query.get("limit"), DEFAULT_CONNZ_LIMIT)
        conns: list[dict[str, Any]] = []
        if state in ("open", "any"):
            conns += [connection_info(c, subs) for c in s.clients.values()]
        if state in ("closed", "any"):
            conns += list(s.closed_clients)
        if "cid" in query:
            cid = _int(query["cid"], -1)
            conns = [c for c in conns if c["cid"] == cid]
        sort = query.get("sort", "cid")
        conns.sort(key=lambda c: c.get(_SORT_KEYS.get(sort, "cid"), 0),
                   reverse=sort not in ("cid", "start"))
        page = conns[offset:offset + limit]
        return 200, {
            "server_id": s.server_id,
            "now": rfc3339(time.time()),
            "num_connections": len(page),
            "total": len(conns),
            "offset": offset,
            "limit": limit,
            "connections": page,
        }

    def subsz(self, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        s = self.server
        in_msgs = s.totals()[0]
        sublist = s.accounts[GLOBAL_ACCOUNT].sublist
        stats = sublist.stats(in_msgs + s.internal_publishes)
        stats.num_subscriptions = sum(a.sublist.count for a in s.accounts.values())
        body: dict[str, Any] = {
            "server_id": s.server_id,
            "now": rfc3339(time.time()),
            "num_subscriptions": stats.num_subscriptions,
            "num_cache": stats.num_cache,
            "num_inserts": stats.num_inserts,
            "num_removes": stats.num_removes,
            "num_matches": stats.num_matches,
            "cache_hit_rate": stats.cache_hit_rate,
            "max_fanout": stats.max_fanout,
            "avg_fanout": stats.avg_fanout,
        }
        if query.get("subs") in ("1", "true", "detail"):
            offset = _int(query.get("offset"), 0)
            limit = _int(query.get("limit"), DEFAULT_CONNZ_LIMIT)
            test = query.get("test", "").encode()
            subs = []
            for account in s.accounts.values():
                found = [sub for sub in account.sublist if sub.client is not None]
                if test:
                    result = account.sublist.match(test)
                    matched = {id(sub) for sub, _ in result.psubs}
                    matched.update(id(sub) for group in result.qsubs for sub in group)
                    found = [sub for sub in found if id(sub) in matched]
                subs += found
            body.update({"total": len(subs), "offset": offset, "limit": limit,
                         "subscriptions_list": [_sub_info(sub) for sub in
                                                subs[offset:offset + limit]]})
        return 200, body

    def routez(self, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        s = self.server
        with_subs = query.get("subs") in ("1", "true", "detail")
        routes = [] if s.routes is None else sorted(s.routes.routes.values(),
                                                     key=lambda r: r.rid)
        now = time.time()
        listed = [_route_info(r, now, with_subs) for r in routes]
        return 200, {"server_id": s.server_id, "server_name": s.name, "now": rfc3339(now),
                     "num_routes": len(listed), "routes": listed}

    def jsz(self, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        s = self.server
        body: dict[str, Any] = {"server_id": s.server_id, "now": rfc3339(time.time())}
        js = s.jetstream
        if js is None:
            body["disabled"] = True
            return 200, body
        streams = [st for j in s.jetstreams.values() for st in j.streams.values()]
        varz = self._jetstream_varz()
        body.update(varz["stats"])
        body.update({"config": varz["config"], **_stream_totals(streams)})
        if s.jetstream_cluster is not None:
            body["meta_cluster"] = s.jetstream_cluster.meta_cluster_info()
        detail = _flag(query, "streams") or _flag(query, "consumers") or _flag(query, "accounts")
        if detail:
            body["account_details"] = [{
                "name": name, "id": name,
                "stream_detail": [self._stream_detail(st, _flag(query, "consumers"),
                                                      _flag(query, "config"))
                                  for st in account_js.streams.values()],
            } for name, account_js in sorted(s.jetstreams.items())]
        return 200, body

    def _stream_detail(self, stream: LocalStream, consumers: bool, config: bool
                       ) -> dict[str, Any]:
        info = stream.info()
        detail: dict[str, Any] = {"name": stream.config.name, "created": info["created"],
                                  "state": info["state"]}
        cluster = self.server.jetstream_cluster
        if cluster is not None:
            detail["cluster"] = cluster.stream_cluster_info(stream.config.name)
        if config:
            detail["config"] = info["config"]
        if consumers:
            detail["consumer_detail"] = [c.info() for c in stream.consumers.values()]
        return detail

    def healthz(self, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """nats-server's healthz() order of checks (compat.md §6.1)."""
        s = self.server
        if ("stream" in query and "account" not in query) or \
                ("consumer" in query and "stream" not in query):
            return 400, {"status": "error", "status_code": 400,
                         "error": "bad request: account required"}
        if not s.ready:
            return 500, {"status": "error", "status_code": 500,
                         "error": "server not ready"}
        if _flag(query, "js-server-only"):
            return 200, {"status": "ok"}
        enabled_only = _flag(query, "js-enabled-only")
        if _flag(query, "js-enabled"):
            logger.warning("Healthcheck: js-enabled deprecated, use js-enabled-only instead")
            enabled_only = True
        if not s.options.jetstream.enabled:
            return 200, {"status": "ok"}
        if not s.jetstream_ready():
            return 503, {"status": "unavailable", "status_code": 503,
                         "error": "JetStream not enabled"}
        if enabled_only:
            return 200, {"status": "ok"}
        return s.jetstream_health()

    async def metrics(self, query: dict[str, str]) -> tuple[int, bytes]:
        return 200, await render_metrics(self.server, self._jetstream_summary)

    def _jetstream_summary(self) -> JetStreamSummary | None:
        """The server-wide numbers of /jsz, for /metrics (the same calls build both)."""
        js = self.server.jetstream
        if js is None:
            return None
        varz = self._jetstream_varz()
        config, stats = varz["config"], varz["stats"]
        totals = _stream_totals([st for j in self.server.jetstreams.values()
                                 for st in j.streams.values()])
        return JetStreamSummary(
            max_memory=config["max_memory"], max_storage=config["max_storage"],
            streams=totals["streams"], consumers=totals["consumers"],
            messages=totals["messages"], bytes=totals["bytes"], memory=stats["memory"],
            storage=stats["storage"], reserved_memory=stats["reserved_memory"],
            reserved_storage=stats["reserved_storage"])

    def _cpu_percent(self) -> float:
        now, cpu = time.monotonic(), _cpu_seconds()
        then, cpu_then = self._cpu_mark
        self._cpu_mark = (now, cpu)
        if now - then <= 0:
            return 0.0
        return round(100.0 * (cpu - cpu_then) / (now - then), 2)


def _stream_totals(streams: list[LocalStream]) -> dict[str, int]:
    """/jsz's counts over the streams held here (also /metrics' jetstream_server_*)."""
    states = [st.store.state() for st in streams]
    return {"streams": len(streams),
            "consumers": sum(st.consumer_count for st in streams),
            "messages": sum(state.msgs for state in states),
            "bytes": sum(state.bytes for state in states)}


_SORT_KEYS = {"cid": "cid", "start": "start", "subs": "subscriptions",
              "pending": "pending_bytes", "msgs_to": "out_msgs", "msgs_from": "in_msgs",
              "bytes_to": "out_bytes", "bytes_from": "in_bytes", "last": "last_activity",
              "idle": "idle", "uptime": "uptime", "stop": "stop", "reason": "reason"}


def connection_info(c: ClientConnection, subs: str = "") -> dict[str, Any]:
    now = time.time()
    info: dict[str, Any] = {
        "cid": c.cid,
        "kind": "Client",
        "type": "nats",
        "ip": c.host,
        "port": c.port,
        "start": rfc3339(c.start),
        "last_activity": rfc3339(c.last_activity),
        "rtt": "0s",
        "uptime": go_duration((c.stop or now) - c.start),
        "idle": go_duration(now - c.last_activity),
        "pending_bytes": c.pending_bytes() if not c.closed else 0,
        "in_msgs": c.in_msgs,
        "out_msgs": c.out_msgs,
        "in_bytes": c.in_bytes,
        "out_bytes": c.out_bytes,
        "subscriptions": len(c.subs),
        "name": c.name,
        "lang": c.lang,
        "version": c.version,
    }
    tls = c.tls_state() if not c.closed else None
    if tls is not None:
        info["tls_version"], info["tls_cipher_suite"] = tls
    if c.identity is not None and c.identity.name:
        info["authorized_user"] = c.identity.name
        info["account"] = c.account.name
    if c.closed:
        info["stop"] = rfc3339(c.stop)
        info["reason"] = c.close_reason
    if subs in ("1", "true"):
        info["subscriptions_list"] = [subject_text(sub.subject) for sub in c.subs.values()]
    elif subs == "detail":
        info["subscriptions_list_detail"] = [_sub_info(sub) for sub in c.subs.values()]
    return info


def closed_connection_info(c: ClientConnection) -> dict[str, Any]:
    return connection_info(c)


def _sub_info(sub: Subscription) -> dict[str, Any]:
    info = {"subject": subject_text(sub.subject), "sid": subject_text(sub.sid),
            "msgs": sub.delivered,
            "cid": sub.client.cid if sub.client is not None else 0}
    if sub.queue is not None:
        info["qgroup"] = subject_text(sub.queue)
    if sub.max:
        info["max"] = sub.max
    return info


def _respond(writer: asyncio.StreamWriter, status: int, body: dict[str, Any],
             keep_alive: bool) -> None:
    data = json.dumps(body, indent=2).encode()
    _write(writer, status, data, "application/json", keep_alive)


def _respond_text(writer: asyncio.StreamWriter, status: int, text: str, keep_alive: bool) -> None:
    if text.startswith("<html>"):
        kind = "text/html"
    elif text.startswith("# HELP"):
        kind = PROMETHEUS_TEXT
    else:
        kind = "text/plain; charset=utf-8"
    _write(writer, status, text.encode(), kind, keep_alive)


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            500: "Internal Server Error", 503: "Service Unavailable"}


def _write(writer: asyncio.StreamWriter, status: int, data: bytes, kind: str,
           keep_alive: bool) -> None:
    head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
            f"Content-Type: {kind}\r\n"
            "Access-Control-Allow-Origin: *\r\n"
            f"Content-Length: {len(data)}\r\n"
            f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n")
    writer.write(head.encode())
    writer.write(data)  # not head + data: a /metrics body is megabytes, not worth a copy


def _route_info(route: Any, now: float, with_subs: bool) -> dict[str, Any]:
    info: dict[str, Any] = {
        "rid": route.rid,
        "remote_id": route.remote_id,
        "remote_name": route.remote_name,
        "did_solicit": bool(route.solicited),
        "is_configured": route.solicited in route.manager.options.routes,
        "ip": route.host,
        "port": route.port,
        "start": rfc3339(route.start),
        "last_activity": rfc3339(route.last_activity),
        "rtt": go_duration(route.rtt),
        "uptime": go_duration(now - route.start),
        "idle": go_duration(now - route.last_activity),
        "pending_size": route.pending_bytes(),
        "in_msgs": route.in_msgs,
        "out_msgs": route.out_msgs,
        "in_bytes": route.in_bytes,
        "out_bytes": route.out_bytes,
        "subscriptions": len(route.interest()),
    }
    if with_subs:
        info["subscriptions_list"] = route.interest()
    return info


class BadParameter(ValueError):
    """A query parameter nats-server would refuse with 400."""


_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def _flag(query: dict[str, str], name: str) -> bool:
    """A boolean parameter as Go's strconv.ParseBool reads it; absent or empty is false."""
    value = query.get(name, "")
    if not value or value in _FALSE:
        return False
    if value in _TRUE:
        return True
    raise BadParameter(f"Error decoding boolean for '{name}': strconv.ParseBool: parsing "
                       f'"{value}": invalid syntax')


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system
