"""Starting the broker inside the test process: the async API and the pytest fixture."""

from __future__ import annotations

import nats

from broker.embedded import ServerThread, running_server


async def test_running_server_starts_on_a_free_port_and_stops():
    async with running_server() as server:
        assert server.client_port > 0
        nc = await nats.connect(server.client_url)
        sub = await nc.subscribe("in.process")
        await nc.publish("in.process", b"ok")
        assert (await sub.next_msg(timeout=2)).data == b"ok"
        await nc.close()
    assert not server.ready


async def test_two_servers_in_one_process_do_not_share_state():
    async with running_server() as a, running_server() as b:
        assert a.client_port != b.client_port
        na, nb = await nats.connect(a.client_url), await nats.connect(b.client_url)
        sub = await nb.subscribe("x")
        await nb.flush()
        await na.publish("x", b"only on a")
        await na.flush()
        assert sub.pending_msgs == 0
        await na.close()
        await nb.close()


async def test_pytest_fixture_gives_a_running_server(nats_server):
    assert isinstance(nats_server, ServerThread)
    nc = await nats.connect(nats_server.client_url)
    resp_sub = await nc.subscribe("svc")

    async def serve():
        msg = await resp_sub.next_msg(timeout=2)
        await msg.respond(b"pong")

    import asyncio

    task = asyncio.create_task(serve())
    reply = await nc.request("svc", b"ping", timeout=2)
    await task
    assert reply.data == b"pong"
    await nc.close()


def test_server_thread_serves_synchronous_code():
    import socket

    with ServerThread() as handle:
        sock = socket.create_connection(("127.0.0.1", handle.server.client_port))
        assert sock.recv(4096).startswith(b"INFO {")
        sock.sendall(b"PING\r\n")
        assert sock.recv(64) == b"PONG\r\n"
        sock.close()
