"""JetStream benchmarks: async publish with a window of outstanding acks (raw protocol), sync
publish latency (nats-py), restart time with many messages on disk, disk bytes per message.

Every PubAck here was sent after the fsync covering its message (our default durability); the
nats-server comparison runs with its defaults, which do not fsync before acking.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import statistics
import threading
import time
import urllib.request

import nats

from tests.procs import ServerProcess


def _api(server: ServerProcess, subject: str, body: dict) -> dict:
    async def call() -> dict:
        nc = await nats.connect(server.url)
        try:
            msg = await nc.request(subject, json.dumps(body).encode(), timeout=10)
            return json.loads(msg.data)
        finally:
            await nc.close()
    return asyncio.run(call())


def create_stream(server: ServerProcess, name: str, subject: str, replicas: int = 1) -> None:
    resp = _api(server, f"$JS.API.STREAM.CREATE.{name}",
                {"name": name, "subjects": [subject], "num_replicas": replicas})
    if "error" in resp:
        raise RuntimeError(resp["error"])


def _handshake(sock: socket.socket, extra: bytes = b"") -> None:
    buf = b""
    while not buf.endswith(b"\r\n"):
        buf += sock.recv(4096)
    sock.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\n' + extra + b"PING\r\n")
    buf = b""
    while b"PONG\r\n" not in buf:
        buf += sock.recv(4096)


def async_publish(server: ServerProcess, count: int = 300_000, size: int = 128,
                  window: int = 256, stream: str = "BENCH", replicas: int = 1) -> dict:
    """Publish `count` messages keeping at most `window` unacknowledged; msgs/s acked."""
    create_stream(server, stream, "bench.js", replicas)
    sock = socket.create_connection((server.host, server.port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    _handshake(sock, b"SUB _INBOX.bench.* 1\r\n")
    payload = b"x" * size
    frame = b"PUB bench.js _INBOX.bench.a %d\r\n%s\r\n" % (size, payload)
    acked = 0
    errors = 0
    cond = threading.Condition()
    marker = b'"seq":'

    def reader() -> None:
        nonlocal acked, errors
        tail = b""
        while acked < count:
            data = sock.recv(1 << 20)
            if not data:
                break
            chunk = tail + data
            n = chunk.count(marker)
            e = chunk.count(b'"error"')
            tail = chunk[-(len(marker) - 1):]
            with cond:
                acked += n
                errors += e
                cond.notify()

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    sent = 0
    start = time.perf_counter()
    next_report = count // 5
    while sent < count:
        with cond:
            while sent - acked >= window:
                cond.wait(10)
            room = min(window - (sent - acked), count - sent)
        sock.sendall(frame * room)
        sent += room
        if sent >= next_report:
            print(f"  ... {sent}/{count} published", flush=True)
            next_report += count // 5
    with cond:
        while acked < count:
            if not cond.wait(30):
                break
    elapsed = time.perf_counter() - start
    sock.close()
    return {"messages": count, "acked": acked, "errors": errors, "window": window,
            "seconds": round(elapsed, 3), "msgs_per_sec": round(acked / elapsed)}


async def _sync_latency(url: str, count: int, size: int, replicas: int = 1) -> list[float]:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await nc.jsm().add_stream(name="SYNC", subjects=["bench.sync"], num_replicas=replicas)
    payload = b"x" * size
    for _ in range(50):
        await js.publish("bench.sync", payload)
    samples = []
    for _ in range(count):
        t0 = time.perf_counter()
        await js.publish("bench.sync", payload)
        samples.append(time.perf_counter() - t0)
    await nc.close()
    return samples


def sync_publish(server: ServerProcess, count: int = 2000, size: int = 128,
                 replicas: int = 1) -> dict:
    """One publish at a time, waiting for each PubAck: with nats-py, and with a raw-protocol
    client (which shows the server's own latency: nats-py adds ~150 us per round trip)."""
    samples = sorted(asyncio.run(_sync_latency(server.url, count, size, replicas)))
    raw = sorted(_raw_sync_latency(server, count, size))
    return {"requests": count,
            "nats_py_p50_us": round(statistics.median(samples) * 1e6),
            "nats_py_p99_us": round(samples[int(len(samples) * 0.99)] * 1e6),
            "raw_p50_us": round(statistics.median(raw) * 1e6),
            "raw_p99_us": round(raw[int(len(raw) * 0.99)] * 1e6)}


def _raw_sync_latency(server: ServerProcess, count: int, size: int) -> list[float]:
    sock = socket.create_connection((server.host, server.port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    _handshake(sock, b"SUB _INBOX.sync 1\r\n")
    frame = b"PUB bench.sync _INBOX.sync %d\r\n%s\r\n" % (size, b"x" * size)
    samples = []
    for _ in range(count + 50):
        t0 = time.perf_counter()
        sock.sendall(frame)
        buf = b""
        while b'"seq"' not in buf or not buf.endswith(b"\r\n"):
            buf += sock.recv(4096)
        samples.append(time.perf_counter() - t0)
    sock.close()
    return samples[50:]


def fdatasync_cost(directory: str, rounds: int = 200) -> dict:
    """What one fdatasync of a small append costs on this disk (the floor for sync publish)."""
    path = os.path.join(directory, "fsync-probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    samples = []
    try:
        for _ in range(rounds):
            os.write(fd, b"x" * 170)
            t0 = time.perf_counter()
            os.fdatasync(fd)
            samples.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
        os.remove(path)
    samples.sort()
    return {"p50_us": round(statistics.median(samples) * 1e6),
            "p99_us": round(samples[int(len(samples) * 0.99)] * 1e6)}


def _disk_bytes(root: str) -> int:
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.path.getsize(os.path.join(folder, name))
    return total


def restart_with_messages(server: ServerProcess, store_dir: str, count: int = 1_000_000,
                          size: int = 128) -> dict:
    """Fill a stream, restart the server, time until JetStream answers healthz again."""
    fill = async_publish(server, count=count, size=size, window=1024, stream="BIG")
    disk = _disk_bytes(os.path.join(store_dir, "jetstream"))
    server.restart_args_fixed()
    code = server.stop(timeout=60)
    # nats-server 2.9.10 may exit 1 on SIGTERM after a long shutdown; ours must exit cleanly.
    assert code == 0 or server.impl == "nats-server", f"the server exited with {code}"
    started = time.perf_counter()
    server.start(timeout=120)
    while True:
        try:
            with urllib.request.urlopen(server.monitor_url + "/healthz", timeout=5) as resp:
                if resp.status == 200:
                    break
        except OSError:
            pass
        time.sleep(0.01)
    restart = time.perf_counter() - started
    state = _api(server, "$JS.API.STREAM.INFO.BIG", {})["state"]
    return {"messages": state["messages"], "fill_msgs_per_sec": fill["msgs_per_sec"],
            "restart_seconds": round(restart, 3),
            "disk_bytes_per_msg": round(disk / max(state["messages"], 1), 1)}


def mirror_catchup(server: ServerProcess, count: int = 200_000, size: int = 128) -> dict:
    """Fill a stream, then create its mirror: how fast the mirror copies the backlog."""
    fill = async_publish(server, count=count, size=size, window=1024, stream="ORIGIN")
    started = time.perf_counter()
    _api(server, "$JS.API.STREAM.CREATE.COPY", {"name": "COPY", "mirror": {"name": "ORIGIN"}})
    copied = 0
    reported = 0
    while copied < count:
        time.sleep(0.05)
        copied = _api(server, "$JS.API.STREAM.INFO.COPY", {})["state"]["messages"]
        if copied >= reported + count // 10:
            reported = copied
            print(f"  ... mirror holds {copied} of {count}", flush=True)
        if time.perf_counter() - started > 600:
            raise TimeoutError(f"the mirror copied {copied} of {count} in 10 minutes")
    seconds = time.perf_counter() - started
    return {"messages": count, "fill_msgs_per_sec": fill["msgs_per_sec"],
            "seconds": round(seconds, 3), "msgs_per_sec": round(count / seconds)}


class _MsgReader:
    """Minimal client-side MSG/HMSG frame reader for the consumer benchmarks."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def frames(self) -> list[tuple[bytes, bytes]]:
        """Read once; return the complete (reply, payload) frames received."""
        data = self.sock.recv(1 << 20)
        if not data:
            raise ConnectionError("closed")
        buf = self.buf + data
        out = []
        pos = 0
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                break
            args = buf[pos:eol].split()
            if not args or args[0] not in (b"MSG", b"HMSG"):
                pos = eol + 2
                continue
            size = int(args[-1])
            end = eol + 2 + size + 2
            if end > len(buf):
                break
            reply = args[3] if (len(args) == 5 and args[0] == b"MSG") or \
                (len(args) == 6 and args[0] == b"HMSG") else b""
            out.append((reply, buf[eol + 2:eol + 2 + size]))
            pos = end
        self.buf = buf[pos:]
        return out


def _create_consumer(server: ServerProcess, stream: str, name: str, config: dict) -> None:
    body = {"stream_name": stream, "config": {"durable_name": name, **config}}
    resp = _api(server, f"$JS.API.CONSUMER.CREATE.{stream}.{name}", body)
    if "error" in resp:
        raise RuntimeError(resp["error"])


def pull_consume(server: ServerProcess, count: int = 200_000, batch: int = 256) -> dict:
    """Fill a stream, then fetch it in batches with one explicit ack per message."""
    async_publish(server, count=count, stream="PULL")
    _create_consumer(server, "PULL", "bench", {"ack_policy": "explicit"})
    sock = socket.create_connection((server.host, server.port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    _handshake(sock, b"SUB _INBOX.pull 1\r\n")
    reader = _MsgReader(sock)
    request = b'PUB $JS.API.CONSUMER.MSG.NEXT.PULL.bench _INBOX.pull %d\r\n%s\r\n'
    body = json.dumps({"batch": batch, "expires": 5_000_000_000}).encode()
    received = 0
    start = time.perf_counter()
    next_report = count // 5
    while received < count:
        sock.sendall(request % (len(body), body))
        got = 0
        while got < batch and received + got < count:
            frames = reader.frames()
            acks = [b"PUB %s 0\r\n\r\n" % reply for reply, _ in frames if reply]
            got += len(acks)
            if acks:
                sock.sendall(b"".join(acks))
        received += got
        if received >= next_report:
            print(f"  ... {received}/{count} consumed", flush=True)
            next_report += count // 5
    elapsed = time.perf_counter() - start
    sock.close()
    return {"messages": count, "batch": batch, "seconds": round(elapsed, 3),
            "msgs_per_sec": round(count / elapsed)}


def push_consume(server: ServerProcess, count: int = 200_000) -> dict:
    """Fill a stream, then let a push consumer (ack none) deliver it all."""
    async_publish(server, count=count, stream="PUSH")
    sock = socket.create_connection((server.host, server.port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    _handshake(sock, b"SUB deliver.bench 1\r\n")
    reader = _MsgReader(sock)
    start = time.perf_counter()
    _create_consumer(server, "PUSH", "pusher", {"ack_policy": "none",
                                                "deliver_subject": "deliver.bench"})
    received = 0
    while received < count:
        received += sum(1 for reply, _ in reader.frames() if reply)
    elapsed = time.perf_counter() - start
    sock.close()
    return {"messages": count, "seconds": round(elapsed, 3),
            "msgs_per_sec": round(count / elapsed)}
