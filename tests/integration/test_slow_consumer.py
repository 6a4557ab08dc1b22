"""A subscriber that stops reading is dropped as a slow consumer; nobody else is affected."""

from __future__ import annotations

import asyncio
import socket

import nats


def raw_subscriber(host: str, port: int, subject: bytes) -> socket.socket:
    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.recv(4096)  # INFO
    sock.sendall(b'CONNECT {"verbose":false}\r\nSUB ' + subject + b" 1\r\nPING\r\n")
    buf = b""
    while b"PONG" not in buf:
        buf += sock.recv(4096)
    return sock


async def test_non_reading_subscriber_is_dropped_and_counted(start_broker):
    server = start_broker(config="max_pending: 256KB\nmax_payload: 64KB\n")
    stuck = raw_subscriber(server.host, server.port, b"firehose")
    healthy_nc = await nats.connect(server.url, allow_reconnect=False)
    healthy = await healthy_nc.subscribe("firehose")
    pub = await nats.connect(server.url, allow_reconnect=False)
    payload = b"x" * 4096
    received = 0
    # The kernel's socket buffers absorb a few MB before the broker's own queue grows.
    for _ in range(200):
        for _ in range(100):
            await pub.publish("firehose", payload)
        await pub.flush()
        while healthy.pending_msgs:
            await healthy.next_msg(timeout=1)
            received += 1
        if server.get("/varz")[1]["slow_consumers"]:
            break
    _, varz = server.get("/varz")
    assert varz["slow_consumers"] == 1
    assert varz["connections"] == 2
    _, closed = server.get("/connz?state=closed")
    assert [c["reason"] for c in closed["connections"]] == ["Slow Consumer (Pending Bytes)"]
    # The healthy subscriber got everything published so far and still works.
    await pub.publish("firehose", b"still here")
    await pub.flush()
    while True:
        msg = await healthy.next_msg(timeout=2)
        if msg.data == b"still here":
            break
        received += 1
    assert received >= 100
    stuck.close()
    await asyncio.gather(pub.close(), healthy_nc.close())
