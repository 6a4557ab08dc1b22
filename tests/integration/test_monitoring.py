"""Monitoring endpoints of a real broker, read over HTTP while nats-py clients use it."""

from __future__ import annotations

import nats


async def test_varz_counts_messages_connections_and_subscriptions(start_broker):
    server = start_broker("-n", "mon-test")
    status, varz = server.get("/varz")
    assert status == 200
    assert varz["server_name"] == "mon-test"
    assert varz["port"] == server.port
    assert varz["http_port"] == -1  # the configured value, as nats-server reports it
    assert varz["max_payload"] == 1024 * 1024
    assert (varz["connections"], varz["in_msgs"]) == (0, 0)
    # The server's own subscriptions count too (the system account's requests), as in
    # nats-server: a client's come on top.
    internal = varz["subscriptions"]
    nc = await nats.connect(server.url)
    sub = await nc.subscribe("m.*")
    for _ in range(3):
        await nc.publish("m.x", b"12345")
    await nc.flush()
    for _ in range(3):
        await sub.next_msg(timeout=2)
    _, varz = server.get("/varz")
    assert varz["connections"] == 1 and varz["total_connections"] == 1
    assert varz["subscriptions"] == internal + 1
    assert (varz["in_msgs"], varz["in_bytes"]) == (3, 15)
    assert (varz["out_msgs"], varz["out_bytes"]) == (3, 15)
    await nc.close()


async def test_connz_lists_open_and_closed_connections(start_broker):
    server = start_broker()
    nc = await nats.connect(server.url, name="tracker")
    await nc.subscribe("a")
    await nc.subscribe("b")
    await nc.flush()
    _, connz = server.get("/connz?subs=1")
    assert connz["num_connections"] == 1
    conn = connz["connections"][0]
    assert conn["name"] == "tracker" and conn["lang"] == "python3"
    assert sorted(conn["subscriptions_list"]) == ["a", "b"]
    await nc.close()
    _, closed = server.get("/connz?state=closed")
    assert [c["name"] for c in closed["connections"]] == ["tracker"]
    assert closed["connections"][0]["reason"] == "Client Closed"


async def test_subsz_reports_the_index(start_broker):
    server = start_broker()
    internal = server.get("/subsz")[1]["num_subscriptions"]  # the server's own, as nats-server
    nc = await nats.connect(server.url)
    await nc.subscribe("s.*", queue="q")
    await nc.subscribe("s.x")
    await nc.flush()
    _, subsz = server.get("/subsz?subs=1&test=s.x")
    assert subsz["num_subscriptions"] == internal + 2
    assert sorted(s["subject"] for s in subsz["subscriptions_list"]) == ["s.*", "s.x"]
    await nc.close()


async def test_healthz_flavours_without_jetstream(start_broker):
    server = start_broker()
    for path in ("/healthz", "/healthz?js-enabled-only=true", "/healthz?js-enabled=true",
                 "/healthz?js-server-only=true"):
        assert server.get(path) == (200, {"status": "ok"}), path
    status, body = server.get("/healthz?stream=foo")
    assert status == 400 and body["status"] == "error"


async def test_metrics_in_prometheus_text_format(start_broker):
    server = start_broker()
    nc = await nats.connect(server.url)
    await nc.publish("p", b"abc")
    await nc.flush()
    status, text = server.get("/metrics")
    assert status == 200
    lines = {line.split("{")[0]: float(line.rsplit(" ", 1)[1])
             for line in text.splitlines() if line and not line.startswith("#")}
    assert lines["gnatsd_varz_connections"] == 1
    assert lines["gnatsd_varz_in_msgs"] == 1
    assert lines["gnatsd_varz_in_bytes"] == 3
    await nc.close()


async def test_unknown_path_is_404_and_varz_has_json_headers(start_broker):
    server = start_broker()
    assert server.get("/nope")[0] == 404
    import urllib.request

    with urllib.request.urlopen(server.monitor_url + "/varz") as resp:
        assert resp.headers["Content-Type"] == "application/json"
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
