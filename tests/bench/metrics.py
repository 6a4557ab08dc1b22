"""The cost of a /metrics scrape with many streams and consumers, on a real broker process.

Creates `streams` streams with one durable consumer each (nats-py), publishes one message to
each and delivers it, then scrapes /metrics `scrapes` times, one after the other. Meanwhile a
probe thread sends PING and waits for PONG on a raw client connection, over and over: a round
trip that takes long is the server's event loop stalled (by the scrape, if it happens during
one). Reports the median and worst scrape time, the body size, and the longest round trip seen
during scrapes next to the longest seen before any scrape (the noise floor).

nats-server has no /metrics: for it the bench reads what prometheus-nats-exporter reads instead
(/jsz with consumers and config), for comparison.
"""

from __future__ import annotations

import asyncio
import json
import socket
import statistics
import threading
import time
import urllib.request

import nats

from tests.procs import ServerProcess

EXPORTER_PATH = "/jsz?consumers=true&config=true"
BASELINE_SECONDS = 1.0
CONCURRENT_REQUESTS = 32


def scrape_cost(server: ServerProcess, streams: int = 1000, scrapes: int = 20) -> dict:
    started = time.monotonic()
    asyncio.run(_populate(server, streams))
    setup = time.monotonic() - started
    path = "/metrics" if server.impl == "broker" else EXPORTER_PATH
    probe = Probe(server)
    probe.start()
    try:
        time.sleep(BASELINE_SECONDS)
        windows, sizes = _scrape(server, path, scrapes)
    finally:
        probe.stop()
    times = [end - start for start, end in windows]
    return {
        "path": path,
        "streams": streams,
        "consumers": streams,
        "setup_s": round(setup, 1),
        "scrape_p50_ms": round(statistics.median(times) * 1e3, 1),
        "scrape_max_ms": round(max(times) * 1e3, 1),
        "body_bytes": max(sizes),
        "max_stall_during_scrapes_ms": round(probe.longest(windows, inside=True) * 1e3, 1),
        "max_stall_idle_ms": round(probe.longest(windows, inside=False) * 1e3, 1),
        "probes": len(probe.samples),
    }


async def _populate(server: ServerProcess, streams: int) -> None:
    """Streams S<i> (subject m.<i>) with a durable pull consumer C<i> that got its message."""
    nc = await nats.connect(server.url, max_outstanding_pings=100)
    try:
        names = list(range(streams))
        for start in range(0, streams, CONCURRENT_REQUESTS):
            batch = names[start:start + CONCURRENT_REQUESTS]
            await asyncio.gather(*(_stream_with_consumer(nc, i) for i in batch))
            if start and start % 200 == 0:
                print(f"  ... {start}/{streams} streams", flush=True)
    finally:
        await nc.close()


async def _stream_with_consumer(nc: nats.NATS, i: int) -> None:
    await _api(nc, f"$JS.API.STREAM.CREATE.S{i}",
               {"name": f"S{i}", "subjects": [f"m.{i}"], "max_msgs": 1000})
    await _api(nc, f"$JS.API.CONSUMER.CREATE.S{i}.C{i}",
               {"stream_name": f"S{i}", "config": {"durable_name": f"C{i}",
                                                   "ack_policy": "explicit"}})
    await _api(nc, f"m.{i}", None, payload=b"hello")
    # A delivered message comes with its own subject, not the inbox's: no nc.request() here.
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    await nc.publish(f"$JS.API.CONSUMER.MSG.NEXT.S{i}.C{i}", b"1", reply=inbox)
    await sub.next_msg(timeout=30)
    await sub.unsubscribe()


async def _api(nc: nats.NATS, subject: str, body: dict | None, payload: bytes = b"") -> dict:
    data = json.dumps(body).encode() if body is not None else payload
    answer = json.loads((await nc.request(subject, data, timeout=30)).data)
    if "error" in answer:
        raise RuntimeError(f"{subject}: {answer['error']}")
    return answer


def _scrape(server: ServerProcess, path: str, scrapes: int
            ) -> tuple[list[tuple[float, float]], list[int]]:
    windows: list[tuple[float, float]] = []
    sizes: list[int] = []
    for _ in range(scrapes):
        start = time.monotonic()
        with urllib.request.urlopen(server.monitor_url + path, timeout=60) as resp:
            body = resp.read()
        windows.append((start, time.monotonic()))
        sizes.append(len(body))
    return windows, sizes


class Probe:
    """PING/PONG round trips, back to back, on a raw connection in its own thread."""

    def __init__(self, server: ServerProcess) -> None:
        self.sock = socket.create_connection((server.host, server.port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.samples: list[tuple[float, float]] = []  # (sent at, answered at)
        self._buffer = b""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._next_line()  # INFO
        self.sock.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\nPING\r\n')
        self._wait_pong()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()

    def longest(self, windows: list[tuple[float, float]], inside: bool) -> float:
        """The longest round trip that overlapped a scrape (inside) or none (outside)."""
        def overlaps(sent: float, answered: float) -> bool:
            return any(sent < end and answered > start for start, end in windows)
        rtts = [answered - sent for sent, answered in self.samples
                if overlaps(sent, answered) == inside]
        return max(rtts, default=0.0)

    def _run(self) -> None:
        while not self._stop.is_set():
            sent = time.monotonic()
            self.sock.sendall(b"PING\r\n")
            self._wait_pong()
            self.samples.append((sent, time.monotonic()))

    def _wait_pong(self) -> None:
        """Read lines up to our PONG, answering the server's own PINGs; an INFO the server
        sends meanwhile (cluster changes) is skipped."""
        while True:
            line = self._next_line()
            if line == b"PONG":
                return
            if line == b"PING":
                self.sock.sendall(b"PONG\r\n")

    def _next_line(self) -> bytes:
        while b"\r\n" not in self._buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("probe connection closed")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\r\n", 1)
        return line
