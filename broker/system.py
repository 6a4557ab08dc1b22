"""The system account's server requests: `$SYS.REQ.SERVER.*`, as the nats CLI sends them
(`nats server ping`, `nats server info`, `nats server check`...).

Every server answers in the system account only (another account's request finds no
responder), on two kinds of subjects:

    $SYS.REQ.SERVER.PING[.<NAME>]          every server answers (the CLI gathers them)
    $SYS.REQ.SERVER.<server id>.<NAME>     that server alone

NAME is STATSZ (also the bare PING), IDZ, or a monitoring endpoint (VARZ, CONNZ, SUBSZ,
ROUTEZ, HEALTHZ, JSZ) whose HTTP answer comes back in an envelope:
`{"server": {name, host, id, cluster, ver, jetstream, flags, seq, time}, "data": {...}}`
(`"statsz"` for STATSZ, `"error": {code, description}` on a bad request). A request body may
filter which servers answer (`server_name`, `cluster`, `host`, `tags`, `domain`,
`exact_match`) and carries the endpoint's options (`{"subscriptions": true}`...). A server the
filter leaves out says nothing, as in nats-server.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol

from broker.jetstream.bus import Bus
from common.gotime import format_ns, now_ns

PING = "$SYS.REQ.SERVER.PING"
ENDPOINTS = ("STATSZ", "IDZ", "VARZ", "CONNZ", "SUBSZ", "ROUTEZ", "HEALTHZ", "JSZ")
FLAG_JETSTREAM = 1  # the capability bit nats-server sets in `flags` when JetStream runs here

# The option names of a request body -> the HTTP query parameters of the endpoint.
_QUERY_NAMES = {
    "subscriptions": "subs", "subscriptions_detail": "subs", "sort": "sort", "auth": "auth",
    "offset": "offset", "limit": "limit", "cid": "cid", "state": "state", "user": "user",
    "acc": "acc", "account": "acc", "accounts": "accounts", "streams": "streams",
    "consumer": "consumers", "consumers": "consumers", "config": "config",
    "leader_only": "leader-only", "test": "test", "js_enabled_only": "js-enabled-only",
    "js_server_only": "js-server-only", "stream": "stream",
}


class Monitoring(Protocol):
    """What the requests read (`broker.monitor.MonitorServer`)."""

    def endpoint(self, name: str, query: dict[str, str]) -> tuple[int, dict[str, Any]] | None:
        ...

    def statsz(self) -> dict[str, Any]: ...


class ServerIdentity(Protocol):
    """Who answers (`broker.server.Server`)."""

    @property
    def server_id(self) -> str: ...

    @property
    def name(self) -> str: ...

    def identity(self) -> dict[str, Any]:
        """host, cluster, tags, domain and whether JetStream runs here."""
        ...


class SystemServices:
    """This server's answers to the system account's requests."""

    def __init__(self, bus: Bus, server: ServerIdentity, monitoring: Monitoring) -> None:
        self.bus = bus
        self.server = server
        self.monitoring = monitoring
        self.seq = 0  # counts what this server sent, as nats-server's `seq`

    def subscribe(self) -> None:
        """Subscriptions peers route to (each server answers a PING for itself)."""
        own = f"$SYS.REQ.SERVER.{self.server.server_id}"
        self.bus.subscribe_internal(PING, self._handler("STATSZ", filtered=True),
                                    propagate=True)
        for name in ENDPOINTS:
            self.bus.subscribe_internal(f"{PING}.{name}", self._handler(name, filtered=True),
                                        propagate=True)
            self.bus.subscribe_internal(f"{own}.{name}", self._handler(name, filtered=False),
                                        propagate=True)

    def _handler(self, name: str, filtered: bool) -> Callable[[bytes, bytes, int, bytes], None]:
        def on_request(subject: bytes, reply: bytes, hdr: int, payload: bytes) -> None:
            if not reply:
                return
            body = self.answer(name, payload[hdr:] if hdr > 0 else payload, filtered)
            if body is not None:
                self.bus.publish_internal(reply, payload=json.dumps(body).encode())
        return on_request

    def answer(self, name: str, body: bytes, filtered: bool) -> dict[str, Any] | None:
        """The response to one request, or None when the filter leaves this server out."""
        try:
            options = json.loads(body) if body.strip() else {}
            if not isinstance(options, dict):
                raise ValueError("request options must be a JSON object")
        except ValueError as exc:
            return {"server": self.server_info(), "error": {"code": 400,
                                                            "description": str(exc)}}
        if filtered and not self.selected(options):
            return None
        if name == "IDZ":
            info = self.server_info()
            return {"name": info["name"], "host": info["host"], "id": info["id"]}
        if name == "STATSZ":
            return {"server": self.server_info(), "statsz": self.monitoring.statsz()}
        answered = self.monitoring.endpoint(name, _query(options))
        if answered is None:
            return None
        status, data = answered
        if status != 200 and name != "HEALTHZ":
            return {"server": self.server_info(),
                    "error": {"code": status, "description": data.get("error", "")}}
        return {"server": self.server_info(), "data": data}

    def selected(self, options: dict[str, Any]) -> bool:
        """Whether this server passes a request's filter (substrings unless exact_match)."""
        identity = self.server.identity()
        exact = bool(options.get("exact_match"))

        def passes(wanted: object, have: str) -> bool:
            if not wanted:
                return True
            if not isinstance(wanted, str):
                return False
            return wanted == have if exact else wanted in have

        if not passes(options.get("server_name"), self.server.name):
            return False
        if not passes(options.get("cluster"), identity.get("cluster", "")):
            return False
        if not passes(options.get("host"), identity.get("host", "")):
            return False
        if not passes(options.get("domain"), identity.get("domain", "")):
            return False
        tags = options.get("tags")
        if tags:
            have = {str(t).lower() for t in identity.get("tags", [])}
            if not isinstance(tags, list) or not all(str(t).lower() in have for t in tags):
                return False
        return True

    def server_info(self) -> dict[str, Any]:
        """The `server` block of every answer."""
        self.seq += 1
        identity = self.server.identity()
        info: dict[str, Any] = {"name": self.server.name, "host": identity["host"],
                                "id": self.server.server_id}
        if identity.get("cluster"):
            info["cluster"] = identity["cluster"]
        if identity.get("domain"):
            info["domain"] = identity["domain"]
        info["ver"] = identity["version"]
        if identity.get("tags"):
            info["tags"] = identity["tags"]
        info["jetstream"] = bool(identity.get("jetstream"))
        info["flags"] = FLAG_JETSTREAM if identity.get("jetstream") else 0
        info["seq"] = self.seq
        info["time"] = format_ns(now_ns())
        return info


def _query(options: dict[str, Any]) -> dict[str, str]:
    """A request's options as the endpoint's HTTP query (booleans as Go prints them)."""
    query: dict[str, str] = {}
    for key, value in options.items():
        name = _QUERY_NAMES.get(key)
        if name is None or value is None:
            continue
        if key == "subscriptions_detail" and value:
            value = "detail"
        query[name] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return query
