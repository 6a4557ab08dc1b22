"""Routes between three real brokers: mesh, interest, queues, request/reply, bad peers."""

from __future__ import annotations

import asyncio
import collections
import socket

import nats
import pytest
from nats.errors import NoRespondersError

from tests.clusters import Cluster, wait_for
from tests.procs import start_server


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    """Three servers that each know only S0: the rest of the mesh is discovered."""
    cluster = Cluster(str(tmp_path_factory.mktemp("mesh")), jetstream=False, seed_only=True)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def test_the_mesh_forms_from_one_seed_route(mesh):
    for i in range(3):
        status, body = mesh.servers[i].get("/routez?subs=1")
        assert status == 200
        assert body["num_routes"] == 2
        assert sorted(r["remote_name"] for r in body["routes"]) == \
            sorted(f"S{j}" for j in range(3) if j != i)
        _, varz = mesh.servers[i].get("/varz")
        assert varz["routes"] == 2
        assert varz["cluster"]["name"] == "c1"


async def test_client_info_lists_every_servers_client_url(mesh):
    nc = await nats.connect(mesh.url(0))
    try:
        info = nc._server_info
        assert info["cluster"] == "c1"
        assert sorted(info["connect_urls"]) == sorted(u.split("//")[1] for u in mesh.urls())
    finally:
        await nc.close()


async def subscribed_everywhere(mesh: Cluster, subject: str, *owners: int) -> None:
    """Wait until every other server's /routez shows the interest of `owners` in `subject`."""
    def seen() -> bool:
        for i in range(3):
            _, body = mesh.servers[i].get("/routez?subs=1")
            for route in body["routes"]:
                owner = int(route["remote_name"][1:])
                if owner in owners and not any(
                        s.split(" ")[0] == subject for s in route.get("subscriptions_list", [])):
                    return False
        return True
    await asyncio.get_running_loop().run_in_executor(
        None, lambda: wait_for(seen, 10, f"interest in {subject} to reach every peer"))


async def test_publish_on_one_server_reaches_a_subscriber_on_another_once(mesh):
    a, c = await nats.connect(mesh.url(0)), await nats.connect(mesh.url(2))
    try:
        got: list[bytes] = []
        done = asyncio.Event()

        async def on_msg(msg):
            got.append(msg.data)
            if len(got) == 100:
                done.set()

        # Two overlapping subscriptions on C: A forwards each message once, C delivers twice.
        await c.subscribe("orders.*", cb=on_msg)
        await c.subscribe("orders.>", cb=on_msg)
        await c.flush()
        await subscribed_everywhere(mesh, "orders.>", 2)
        for i in range(50):
            await a.publish("orders.new", b"%d" % i)
        await a.flush()
        await asyncio.wait_for(done.wait(), 10)
        assert sorted(collections.Counter(got).values()) == [2] * 50
        _, routez = mesh.servers[0].get("/routez")
        to_c = next(r for r in routez["routes"] if r["remote_name"] == "S2")
        assert to_c["out_msgs"] >= 50
    finally:
        await a.close()
        await c.close()


async def test_nothing_crosses_a_route_without_interest(mesh):
    a = await nats.connect(mesh.url(0))
    try:
        _, before = mesh.servers[0].get("/routez")
        for _ in range(20):
            await a.publish("nobody.listens", b"x")
        await a.flush()
        _, after = mesh.servers[0].get("/routez")
        assert [r["out_msgs"] for r in after["routes"]] == [r["out_msgs"]
                                                            for r in before["routes"]]
    finally:
        await a.close()


async def test_request_reply_and_no_responders_across_servers(mesh):
    a, b = await nats.connect(mesh.url(0)), await nats.connect(mesh.url(1))
    try:
        async def echo(msg):
            await msg.respond(b"echo:" + msg.data)

        await b.subscribe("svc.echo", cb=echo)
        await b.flush()
        await subscribed_everywhere(mesh, "svc.echo", 1)
        reply = await a.request("svc.echo", b"hi", timeout=5)
        assert reply.data == b"echo:hi"
        with pytest.raises(NoRespondersError):
            await a.request("svc.nobody", b"", timeout=5)
    finally:
        await a.close()
        await b.close()


async def test_queue_members_on_two_servers_share_the_load_and_each_message_goes_once(mesh):
    a, b, c = [await nats.connect(mesh.url(i)) for i in range(3)]
    try:
        counts: collections.Counter[str] = collections.Counter()
        seen: set[bytes] = set()
        done = asyncio.Event()
        total = 600

        def member(name):
            async def on_msg(msg):
                counts[name] += 1
                seen.add(msg.data)
                if sum(counts.values()) == total:
                    done.set()
            return on_msg

        await b.subscribe("jobs", queue="workers", cb=member("b"))
        await c.subscribe("jobs", queue="workers", cb=member("c"))
        await c.subscribe("jobs", queue="workers", cb=member("c"))
        await b.flush()
        await c.flush()
        await subscribed_everywhere(mesh, "jobs", 1, 2)
        for i in range(total):
            await a.publish("jobs", b"%d" % i)
        await a.flush()
        await asyncio.wait_for(done.wait(), 10)
        assert len(seen) == total and sum(counts.values()) == total
        # C has two members and B one: C's weight draws about two thirds.
        assert 0.2 * total < counts["b"] < 0.5 * total, counts
    finally:
        for nc in (a, b, c):
            await nc.close()


async def test_interest_goes_away_with_the_subscriber(mesh):
    a, c = await nats.connect(mesh.url(0)), await nats.connect(mesh.url(2))
    try:
        sub = await c.subscribe("temp.subject")
        await c.flush()
        await subscribed_everywhere(mesh, "temp.subject", 2)
        await sub.unsubscribe()
        await c.flush()

        def gone() -> bool:
            _, body = mesh.servers[0].get("/routez?subs=1")
            return not any("temp.subject" in s for r in body["routes"]
                           for s in r.get("subscriptions_list", []))
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: wait_for(gone, 10, "the unsubscribe to reach S0"))
        with pytest.raises(NoRespondersError):
            await a.request("temp.subject", b"", timeout=5)
    finally:
        await a.close()
        await c.close()


def route_handshake(port: int, payload: bytes) -> bytes:
    """Speak to a route port directly; returns what the server said before closing."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(payload)
        data = b""
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return data


@pytest.mark.parametrize("payload, error", [
    (b"GARBAGE\r\n", b"unknown operation"),
    (b'CONNECT {}\r\nINFO {"server_id":"NX","server_name":"X","cluster":"other"}\r\n',
     b"Cluster Name Conflict"),
    (b'CONNECT {}\r\nINFO {"server_id":"NX","server_name":"S1","cluster":"c1"}\r\n',
     b"Duplicate Server Name"),
])
def test_a_bad_peer_is_refused_and_the_mesh_is_undisturbed(mesh, payload, error):
    reply = route_handshake(mesh.cluster_ports[0], payload)
    assert reply.startswith(b"INFO ")
    assert error in reply
    assert all(mesh.num_routes(i) == 2 for i in range(3))


def test_route_authorization_refuses_a_peer_without_credentials(tmp_path):
    conf = tmp_path / "secure.conf"
    conf.write_text("""
server_name: guarded
cluster {
  name: c1
  listen: 127.0.0.1:-1
  authorization { user: ruser, password: s3cret }
}
""")
    guarded = start_server("broker", ["-c", str(conf)], workdir=str(tmp_path))
    try:
        _, varz = guarded.get("/varz")
        port = varz["cluster"]["cluster_port"]
        reply = route_handshake(port, b'CONNECT {"user":"ruser","pass":"wrong"}\r\n')
        assert b"Authorization Violation" in reply
        # A peer with the credentials in its route URL joins.
        (tmp_path / "peer").mkdir()
        peer = start_server("broker", [
            "-n", "peer", "--cluster_name", "c1", "--cluster", "nats://127.0.0.1:-1",
            "--routes", f"nats-route://ruser:s3cret@127.0.0.1:{port}"],
            workdir=str(tmp_path / "peer"))
        try:
            wait_for(lambda: guarded.get("/routez")[1]["num_routes"] == 1, 10,
                     "the authorized peer's route")
        finally:
            peer.kill()
        assert "authorization violation" in guarded.log().lower()
    finally:
        guarded.kill()


def test_a_restarted_peer_rejoins_the_mesh(tmp_path):
    cluster = Cluster(str(tmp_path), jetstream=False).start()
    try:
        cluster.kill(1)
        wait_for(lambda: cluster.num_routes(0) == 1 and cluster.num_routes(2) == 1, 10,
                 "the survivors to drop the dead route")
        cluster.restart(1)
        cluster.wait_for_mesh()
    finally:
        cluster.stop()


def test_jetstream_in_a_cluster_requires_names(tmp_path):
    with pytest.raises(RuntimeError, match="requires `server_name`"):
        start_server("broker", ["-js", "-sd", str(tmp_path / "d"), "--cluster",
                                "nats://127.0.0.1:-1"], workdir=str(tmp_path))
    with pytest.raises(RuntimeError, match=r"requires `cluster\.name`"):
        start_server("broker", ["-js", "-sd", str(tmp_path / "d"), "-n", "x", "--cluster",
                                "nats://127.0.0.1:-1"], workdir=str(tmp_path))
