"""What the fault tests share: a publisher that keeps going through failures (retrying with the
same Nats-Msg-Id, so a retry of a message that was in fact stored is a duplicate, not a second
copy), and a check of every replica's store, read from disk after the cluster stopped."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

import nats

from storage import FileStore
from storage.store import StoreConfig
from tests.clusters import Cluster, wait_for

STREAM = "ORDERS"
# Concurrent publishers number their messages from k * PUBLISHER_RANGE (run(first=...)).
PUBLISHER_RANGE = 10**8
SUBJECT = "orders.new"


def payload_for(n: int, size: int = 0) -> bytes:
    """Message n's payload: `m<n>-<sha256 of that>`, the digest repeated up to `size` bytes."""
    body = b"m%d-" % n
    digest = hashlib.sha256(body).hexdigest().encode()
    data = body + digest
    if size > len(data):
        data += (digest * (size // len(digest) + 1))[:size - len(data)]
    return data


def number_of(data: bytes) -> int:
    """The n of a payload_for(n, ...), checked byte for byte."""
    body = data[:data.index(b"-") + 1]
    n = int(body[1:-1])
    assert data == payload_for(n, len(data)), f"damaged payload {data[:100]!r}..."
    return n


async def _quiet(*args: object) -> None:
    pass


@dataclass
class Publisher:
    """Publishes messages 0..total-1 in order, each until it is acknowledged."""

    urls: list[str]
    acked: dict[int, int] = field(default_factory=dict)  # message number -> seq
    errors: int = 0
    give_up_after: float = 60.0
    servers_used: list[str] = field(default_factory=list)  # host:port, at connect and reconnect
    randomize: bool = True  # False: connect to urls[0] first, as a client pinned to one pod
    tls: ssl.SSLContext | None = None  # for tls:// servers

    async def run(self, total: int, progress: Callable[[int], None] | None = None,
                  window: int = 32, first: int = 0, until: asyncio.Event | None = None) -> None:
        """Publish messages first..first+total-1, or until `until` is set (the batch under
        way is finished: every message sent is acknowledged before this returns)."""
        async def reconnected() -> None:
            self._note_server(nc)

        nc = await nats.connect(servers=self.urls, dont_randomize=not self.randomize,
                                max_reconnect_attempts=-1, tls=self.tls,
                                reconnect_time_wait=0.1, error_cb=_quiet,
                                disconnected_cb=_quiet, reconnected_cb=reconnected)
        self._note_server(nc)
        js = nc.jetstream(timeout=2)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.give_up_after
        try:
            n, end = first, first + total
            while n < end and not (until is not None and until.is_set()):
                batch = list(range(n, min(n + window, end)))
                futures = {}
                for i in batch:
                    try:
                        futures[i] = await js.publish_async(
                            SUBJECT, payload_for(i), headers={"Nats-Msg-Id": f"m{i}"})
                    except Exception:
                        self.errors += 1
                if futures:
                    await asyncio.wait(futures.values(), timeout=3)
                for i in batch:
                    fut = futures.get(i)
                    if fut is not None and fut.done() and not fut.cancelled() \
                            and fut.exception() is None:
                        self.acked[i] = fut.result().seq
                        continue
                    if fut is not None and not fut.done():
                        fut.cancel()
                    self.errors += 1
                    await self._one(js, i, deadline)
                n += len(batch)
                if progress is not None:
                    progress(len(self.acked))
        finally:
            with contextlib.suppress(Exception):  # the servers may all be gone
                await nc.close()

    def _note_server(self, nc: nats.NATS) -> None:
        url = nc.connected_url
        if url is not None:
            self.servers_used.append(f"{url.hostname}:{url.port}")

    async def _one(self, js, i: int, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        while loop.time() < deadline:
            try:
                ack = await js.publish(SUBJECT, payload_for(i), headers={"Nats-Msg-Id": f"m{i}"},
                                       timeout=2)
            except Exception:
                self.errors += 1
                await asyncio.sleep(0.1)
                continue
            self.acked[i] = ack.seq
            return
        raise AssertionError(f"message {i} was never acknowledged (giving up)")


def local_state(cluster: Cluster, i: int, stream: str = STREAM) -> dict | None:
    """Server i's own copy of the stream, as its /jsz reports it."""
    status, body = cluster.servers[i].get("/jsz?streams=true")
    if status != 200:
        return None
    for account in body.get("account_details", []):
        for detail in account.get("stream_detail", []):
            if detail["name"] == stream:
                return detail["state"]
    return None


def wait_converged(cluster: Cluster, last_seq: int, timeout: float = 30.0) -> None:
    """Every replica's own store reached `last_seq`."""
    for i in cluster.up():
        wait_for(lambda i=i: (local_state(cluster, i) or {}).get("last_seq", 0) >= last_seq,
                 timeout, f"S{i}'s copy to reach seq {last_seq}")


def read_store(cluster: Cluster, i: int, stream: str = STREAM) -> list[tuple[int, int]]:
    """(seq, message number) of every message in server i's store, read from disk."""
    return read_stream_copy(cluster.store_dir(i), stream)


def read_stream_copy(store_dir: str | os.PathLike[str], stream: str = STREAM
                     ) -> list[tuple[int, int]]:
    """(seq, message number) of every message in the copy of `stream` that the server with
    JetStream `store_dir` holds, read from disk (the server must be stopped)."""
    path = os.path.join(store_dir, "jetstream", "$G", "streams", stream, "msgs")
    store = FileStore(path, StoreConfig(name=stream))
    try:
        out = []
        seq = 0
        while True:
            msg = store.load_next(seq + 1)
            if msg is None:
                return out
            out.append((msg.seq, number_of(msg.data)))
            seq = msg.seq
    finally:
        store.close()


def stored_bytes(store_dir: str, stream: str = STREAM) -> int:
    """How many bytes server `store_dir`'s copy of `stream` has written to its segments."""
    msgs = os.path.join(store_dir, "jetstream", "$G", "streams", stream, "msgs")
    if not os.path.isdir(msgs):
        return 0
    return sum(os.path.getsize(os.path.join(msgs, f)) for f in os.listdir(msgs)
               if f.endswith(".seg"))


def flip_bits(store_dir: str, where: list[float], stream: str = STREAM) -> str | None:
    """Flip bits in the largest segment of server `store_dir`'s copy of `stream`, at the given
    fractions of its length (the server must be down). The segment's path, or None when there
    is none or every one is empty (a replica's store is written lazily; its Raft log holds the
    rest)."""
    msgs = os.path.join(store_dir, "jetstream", "$G", "streams", stream, "msgs")
    if not os.path.isdir(msgs):
        return None  # the server had not opened its copy yet
    segments = sorted((os.path.getsize(os.path.join(msgs, f)), f) for f in os.listdir(msgs)
                      if f.endswith(".seg"))
    if not segments or segments[-1][0] == 0:
        return None
    size, name = segments[-1]
    path = os.path.join(msgs, name)
    with open(path, "r+b") as f:
        for fraction in where:
            offset = int(size * fraction)
            f.seek(offset)
            byte = f.read(1)
            f.seek(offset)
            f.write(bytes([byte[0] ^ 0x5A]))
    return path


def check_replicas(cluster: Cluster, acked: dict[int, int]) -> None:
    """Stop the cluster; every replica holds every acknowledged message exactly once, at the
    sequence its PubAck named, in publish order, and all replicas hold the same."""
    for server in cluster.servers:
        server.stop()
    check_copies({f"S{i}": read_store(cluster, i) for i in range(cluster.size)}, acked)


def check_copies(copies: dict[str, list[tuple[int, int]]], acked: dict[int, int]) -> None:
    """Every copy (server name -> its (seq, message number) list) holds every acknowledged
    message exactly once, at the sequence its PubAck named, in each publisher's order (numbers
    within one PUBLISHER_RANGE come from one publisher); all copies are equal."""
    for name, copy in copies.items():
        numbers = [n for _, n in copy]
        assert len(numbers) == len(set(numbers)), f"{name} holds a message twice"
        by_publisher: dict[int, list[int]] = {}
        for n in numbers:
            by_publisher.setdefault(n // PUBLISHER_RANGE, []).append(n)
        assert all(ns == sorted(ns) for ns in by_publisher.values()), \
            f"{name} holds messages out of publish order"
        at = dict(copy)
        for n, seq in acked.items():
            assert at.get(seq) == n, f"{name}: acknowledged message {n} not at seq {seq}"
    first, *rest = copies.values()
    assert all(copy == first for copy in rest), "the replicas differ"
