"""HTTP monitoring endpoints (-m): /varz, /healthz, /connz, /subsz."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

import pytest

from .wire import PING, PONG, msg, pub

pytestmark = pytest.mark.conformance(area="monitoring")

VARZ_KEYS = {
    "server_id",
    "server_name",
    "version",
    "proto",
    "go",
    "host",
    "port",
    "max_connections",
    "ping_interval",
    "ping_max",
    "http_host",
    "http_port",
    "auth_timeout",
    "max_control_line",
    "max_payload",
    "max_pending",
    "start",
    "now",
    "uptime",
    "mem",
    "cores",
    "cpu",
    "connections",
    "total_connections",
    "routes",
    "remotes",
    "leafnodes",
    "in_msgs",
    "out_msgs",
    "in_bytes",
    "out_bytes",
    "slow_consumers",
    "subscriptions",
    "http_req_stats",
    "jetstream",
}
CONNZ_KEYS = {"server_id", "now", "num_connections", "total", "offset", "limit", "connections"}
CONN_KEYS = {
    "cid",
    "kind",
    "type",
    "ip",
    "port",
    "start",
    "last_activity",
    "rtt",
    "uptime",
    "idle",
    "pending_bytes",
    "in_msgs",
    "out_msgs",
    "in_bytes",
    "out_bytes",
    "subscriptions",
}
SUBSZ_KEYS = {
    "num_subscriptions",
    "num_cache",
    "num_inserts",
    "num_removes",
    "num_matches",
    "cache_hit_rate",
    "max_fanout",
    "avg_fanout",
}


def get(srv, path: str) -> tuple[int, str, bytes]:
    """(status, Content-Type, body) of GET <monitor>/<path>; HTTP errors are returned too."""
    assert srv.monitor_url, f"no monitoring URL in ports file: {srv.ports}"
    try:
        with urllib.request.urlopen(srv.monitor_url + path, timeout=2) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read()


def get_json(srv, path: str) -> dict:
    status, ctype, body = get(srv, path)
    assert status == 200, (path, status, body)
    assert ctype == "application/json", (path, ctype)
    return json.loads(body)


@pytest.fixture
def busy(start_server, connect):
    """A fresh server with one client that subscribed once and sent/received one 2-byte message."""
    srv = start_server()
    c = connect(srv)
    c.handshake()
    c.send(b"SUB foo 1\r\n" + pub("foo", b"hi") + PING)
    c.expect(msg("foo", 1, b"hi") + PONG)
    return srv, c


def test_ports_file_lists_monitoring_url(server):
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", server.monitor_url), server.ports
    assert server.ports["nats"] == [f"nats://127.0.0.1:{server.port}"]


def test_varz(busy):
    srv, _ = busy
    v = get_json(srv, "/varz")
    missing = VARZ_KEYS - v.keys()
    assert not missing, f"/varz lacks {sorted(missing)}"
    assert v["port"] == srv.port
    assert v["host"] == "127.0.0.1"
    assert v["max_payload"] == 1048576
    assert v["max_control_line"] == 4096
    assert v["max_connections"] == 65536
    assert v["ping_max"] == 2
    assert v["ping_interval"] == 120_000_000_000  # nanoseconds (Go time.Duration)
    assert v["auth_timeout"] == 2  # seconds
    assert re.fullmatch(r"\d+\.\d+\.\d+", v["version"]), v["version"]
    assert v["connections"] == 1
    assert v["total_connections"] >= 1
    # Counters include the test client's traffic; internal (system) traffic may add to them.
    assert v["in_msgs"] >= 1 and v["out_msgs"] >= 1
    assert v["in_bytes"] >= 2 and v["out_bytes"] >= 2
    assert v["subscriptions"] >= 1
    assert v["slow_consumers"] == 0
    assert v["jetstream"] == {}  # JetStream disabled: an empty object
    for key in ("in_msgs", "out_msgs", "in_bytes", "out_bytes", "subscriptions", "mem", "cores"):
        assert isinstance(v[key], int), key


@pytest.mark.nats_quirk
def test_varz_http_port_is_configured_value(server):
    # /varz reports the http_port as configured (-m -1), not the port actually bound.
    assert get_json(server, "/varz")["http_port"] == -1


def test_varz_reflects_config(start_server):
    srv = start_server(config_text="max_payload: 100\nmax_control_line: 256\nmax_connections: 7\n")
    v = get_json(srv, "/varz")
    assert (v["max_payload"], v["max_control_line"], v["max_connections"]) == (100, 256, 7)


def test_healthz(server):
    status, ctype, body = get(server, "/healthz")
    assert (status, ctype) == (200, "application/json")
    assert json.loads(body) == {"status": "ok"}


@pytest.mark.parametrize("query", ["js-enabled-only=true", "js-enabled=true", "js-enabled-only=1"])
def test_healthz_js_query_without_jetstream_is_ok(server, query):
    # Without JetStream configured the JetStream checks are skipped entirely: 200 ok.
    status, ctype, body = get(server, f"/healthz?{query}")
    assert (status, ctype) == (200, "application/json")
    assert json.loads(body) == {"status": "ok"}


@pytest.mark.parametrize("query", ["", "?js-enabled-only=true"])
def test_healthz_with_jetstream(start_server, tmp_path, query):
    srv = start_server(["-js", "-sd", str(tmp_path / "store")])
    status, ctype, body = get(srv, "/healthz" + query)
    assert (status, ctype) == (200, "application/json")
    assert json.loads(body) == {"status": "ok"}
    v = get_json(srv, "/varz")
    assert v["jetstream"]["config"]["store_dir"] == str(tmp_path / "store" / "jetstream")


def test_healthz_bad_boolean_is_400(server):
    status, ctype, body = get(server, "/healthz?js-enabled-only=nope")
    assert status == 400
    assert ctype.startswith("text/plain")
    assert body.startswith(b"Error decoding boolean for 'js-enabled-only'"), body


def test_connz(busy):
    srv, c = busy
    z = get_json(srv, "/connz")
    missing = CONNZ_KEYS - z.keys()
    assert not missing, f"/connz lacks {sorted(missing)}"
    assert (z["num_connections"], z["total"], z["offset"], z["limit"]) == (1, 1, 0, 1024)
    (conn,) = z["connections"]
    missing = CONN_KEYS - conn.keys()
    assert not missing, f"/connz connection lacks {sorted(missing)}"
    assert conn["cid"] == c.info["client_id"]
    assert conn["kind"] == "Client" and conn["type"] == "nats"
    assert conn["ip"] == "127.0.0.1"
    assert conn["port"] == c.sock.getsockname()[1]
    assert (conn["in_msgs"], conn["out_msgs"], conn["in_bytes"], conn["out_bytes"]) == (1, 1, 2, 2)
    assert conn["subscriptions"] == 1


def test_subsz(busy):
    srv, _ = busy
    s = get_json(srv, "/subsz")
    missing = SUBSZ_KEYS - s.keys()
    assert not missing, f"/subsz lacks {sorted(missing)}"
    assert s["num_subscriptions"] >= 1
    assert isinstance(s["cache_hit_rate"], int | float)
    assert isinstance(s["avg_fanout"], int | float)


def test_unknown_path_is_404(server):
    status, _, _ = get(server, "/no-such-endpoint")
    assert status == 404
