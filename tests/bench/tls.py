"""What TLS on the client port costs: the same two benchmarks on a plain server and on one with
`tls { }` (certificates made for the run, tests/certs.py), in the same run.

- core pub -> sub, 128-byte messages, raw sockets (one TLS session each for publisher and
  subscriber);
- JetStream publish (R1, fsync before the PubAck), in windows of 256 with a reply subject per
  message as clients send them, one connection (one thread: an SSL socket is not shared
  between a reading and a writing thread).
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import tempfile
import threading
import time

import nats

from tests.bench.core import handshake, read_line
from tests.certs import authority
from tests.procs import ServerProcess, cleanup, start_server

SIZE = 128
WINDOW = 256


def tls_cost(impl: str, count: int = 500_000, js_count: int = 100_000) -> dict:
    pki = tempfile.mkdtemp(prefix="bench-pki-")
    ca = authority(pki)
    server_pair = ca.issue("server")
    context = ssl.create_default_context(cafile=ca.ca_file)
    out: dict[str, float] = {}
    for mode in ("plain", "tls"):
        store = tempfile.mkdtemp(prefix="bench-store-")
        extra = ["-js", "-sd", store]
        if mode == "tls":
            extra += ["--tlscert", server_pair.cert, "--tlskey", server_pair.key]
        tls = context if mode == "tls" else None
        server = start_server(impl, extra, monitor=False)
        try:
            print(f"{impl}: tls_cost: {mode} pub_sub", flush=True)
            out[f"pub_sub_{mode}"] = pub_sub(server, count, tls)
            print(f"{impl}: tls_cost: {mode} js_publish", flush=True)
            out[f"js_publish_{mode}"] = js_publish(server, js_count, tls)
        finally:
            server.stop()
            cleanup(server)
    out["pub_sub_ratio"] = round(out["pub_sub_tls"] / out["pub_sub_plain"], 2)
    out["js_publish_ratio"] = round(out["js_publish_tls"] / out["js_publish_plain"], 2)
    return out


def _connect(server: ServerProcess, tls: ssl.SSLContext | None,
             extra: bytes = b"") -> socket.socket:
    sock = socket.create_connection((server.host, server.port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    read_line(sock)  # INFO, in the clear
    if tls is not None:
        sock = tls.wrap_socket(sock, server_hostname="127.0.0.1")
    handshake(sock, extra)
    return sock


def pub_sub(server: ServerProcess, count: int, tls: ssl.SSLContext | None) -> float:
    """Messages per second at the subscriber."""
    sub = _connect(server, tls, b"SUB bench.tls 1\r\n")
    pub = _connect(server, tls)
    frame = b"PUB bench.tls %d\r\n%s\r\n" % (SIZE, b"x" * SIZE)
    expected = count * (len(b"MSG bench.tls 1 %d\r\n" % SIZE) + SIZE + 2)
    done = threading.Event()

    def reader() -> None:
        received = 0
        while received < expected:
            data = sub.recv(1 << 20)
            if not data:
                break
            received += len(data)
        done.set()

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    start = time.perf_counter()
    for sent in range(0, count, 1000):
        pub.sendall(frame * min(1000, count - sent))
    done.wait(120)
    seconds = time.perf_counter() - start
    pub.close()
    sub.close()
    return round(count / seconds)


def js_publish(server: ServerProcess, count: int, tls: ssl.SSLContext | None) -> float:
    """PubAcks per second, publishing in windows of WINDOW (each message its own reply)."""
    asyncio.run(_create_stream(server, tls))
    sock = _connect(server, tls, b"SUB _INBOX.tlsbench.* 1\r\n")
    payload = b"x" * SIZE
    start = time.perf_counter()
    acked = 0
    n = 0
    while acked < count:
        window = min(WINDOW, count - acked)
        frames = []
        for _ in range(window):
            n += 1
            frames.append(b"PUB bench.tlsjs _INBOX.tlsbench.%d %d\r\n%s\r\n" % (n, SIZE, payload))
        sock.sendall(b"".join(frames))
        got = 0
        tail = b""
        while got < window:
            data = sock.recv(1 << 20)
            if not data:
                raise ConnectionError("closed while publishing")
            chunk = tail + data
            got += chunk.count(b'"seq":')
            tail = chunk[-5:]
        acked += window
    seconds = time.perf_counter() - start
    sock.close()
    return round(count / seconds)


async def _create_stream(server: ServerProcess, tls: ssl.SSLContext | None) -> None:
    scheme = "tls" if tls is not None else "nats"
    nc = await nats.connect(f"{scheme}://{server.host}:{server.port}", tls=tls)
    try:
        reply = await nc.request("$JS.API.STREAM.CREATE.TLSBENCH", json.dumps(
            {"name": "TLSBENCH", "subjects": ["bench.tlsjs"]}).encode(), timeout=10)
        if b'"error"' in reply.data:
            raise RuntimeError(reply.data.decode())
    finally:
        await nc.close()
