"""Core NATS benchmarks: pub->sub throughput (raw protocol) and request/reply latency (nats-py).

The throughput generator writes pre-built PUB frames and the counter only counts bytes, so the
client side costs almost nothing and the number measures the server.
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import threading
import time

import nats

from tests.procs import ServerProcess


def _connect(server: ServerProcess) -> socket.socket:
    sock = socket.create_connection((server.host, server.port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    read_line(sock)  # INFO
    return sock


def read_line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = sock.recv(1)
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def handshake(sock: socket.socket, extra: bytes = b"") -> None:
    sock.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\n' + extra + b"PING\r\n")
    buf = b""
    while b"PONG\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed during handshake")
        buf += chunk


def pub_sub_throughput(server: ServerProcess, count: int = 2_000_000, size: int = 128,
                       subject: bytes = b"bench.data", progress: bool = True) -> dict:
    """1 publisher, 1 subscriber; returns msgs/s measured at the subscriber."""
    payload = b"x" * size
    frame_in = b"PUB %s %d\r\n%s\r\n" % (subject, size, payload)
    frame_out = len(b"MSG %s 1 %d\r\n" % (subject, size)) + size + 2
    sub = _connect(server)
    handshake(sub, b"SUB %s 1\r\n" % subject)
    pub = _connect(server)
    handshake(pub)

    expected = count * frame_out
    received = 0
    done = threading.Event()
    first_byte = [0.0]

    def reader() -> None:
        nonlocal received
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        next_report = expected // 10
        while received < expected:
            n = sub.recv_into(view)
            if not n:
                break
            if not received:
                first_byte[0] = time.perf_counter()
            received += n
            if progress and received >= next_report:
                print(f"  ... {received * 100 // expected}% received", flush=True)
                next_report += expected // 10
        done.set()

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    batch = 1000
    chunk = frame_in * batch
    start = time.perf_counter()
    sent = 0
    while sent < count:
        n = min(batch, count - sent)
        pub.sendall(chunk if n == batch else frame_in * n)
        sent += n
    send_done = time.perf_counter()
    done.wait(120)
    end = time.perf_counter()
    pub.close()
    sub.close()
    got = received // frame_out
    elapsed = end - start
    return {
        "messages": count,
        "received": got,
        "payload_bytes": size,
        "seconds": round(elapsed, 3),
        "publish_seconds": round(send_done - start, 3),
        "msgs_per_sec": round(got / elapsed),
        "mb_per_sec": round(got * size / elapsed / 1e6, 1),
    }


async def _request_latency(url: str, count: int, size: int) -> list[float]:
    responder = await nats.connect(url)
    requester = await nats.connect(url)

    async def echo(msg):
        await msg.respond(msg.data)

    await responder.subscribe("bench.echo", cb=echo)
    await responder.flush()
    payload = b"x" * size
    for _ in range(min(200, count)):  # warm up
        await requester.request("bench.echo", payload, timeout=5)
    samples = []
    for i in range(count):
        t0 = time.perf_counter()
        await requester.request("bench.echo", payload, timeout=5)
        samples.append(time.perf_counter() - t0)
        if i and i % (count // 4) == 0:
            print(f"  ... {i}/{count} requests", flush=True)
    await requester.close()
    await responder.close()
    return samples


def request_reply_latency(server: ServerProcess, count: int = 5000, size: int = 128) -> dict:
    samples = asyncio.run(_request_latency(f"nats://{server.host}:{server.port}", count, size))
    samples.sort()
    return {
        "requests": count,
        "p50_us": round(statistics.median(samples) * 1e6),
        "p99_us": round(samples[int(len(samples) * 0.99)] * 1e6),
        "requests_per_sec": round(count / sum(samples)),
    }
