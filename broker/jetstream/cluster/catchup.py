"""Stream catch-up: a replica whose store lacks messages its Raft snapshot covers (it was down
while the log was compacted, or lost a damaged range) copies them from a peer's store.

A replica serves `$JSC.CATCHUP.<group>.<server>`: a request `{"from": a, "to": b}` is answered
with one batch of stored messages from `a` on (at most `BATCH_BYTES`), in a binary encoding:

    covered (u64): every sequence up to here is accounted for (absent ones were deleted)
    count (u32), then per message: seq u64, ts i64, subject u16, header u32, data u32, bytes

The requester asks again from `covered + 1` until it reaches `b`, so the flow is paced by the
requester (one batch in flight) and survives a peer going away (it asks another).
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Callable
from typing import NamedTuple

from broker.jetstream.bus import Bus
from broker.logger import logger
from common.subjects import subject_text
from storage.store import MessageStore, StoredMessage, StoreError

BATCH_BYTES = 1 << 20
BATCH_MSGS = 4096
REQUEST_TIMEOUT = 5.0

_HEAD = struct.Struct("<QI")
_MSG = struct.Struct("<QqHII")


class Copied(NamedTuple):
    seq: int
    ts: int
    subject: str
    hdr: bytes
    data: bytes


def subject(group: str, server_name: str) -> str:
    return f"$JSC.CATCHUP.{group}.{server_name}"


def encode_batch(store: MessageStore, start: int, stop: int) -> bytes:
    """Messages of `store` in [start, stop], up to the batch limits. Raises StoreError (for a
    damaged record: the requester must get that message from another peer, not a gap)."""
    last = min(stop, store.last_seq)
    msgs: list[StoredMessage] = []
    size = 0
    covered = start - 1
    while covered < last and len(msgs) < BATCH_MSGS and size < BATCH_BYTES:
        batch = [m for m in store.load_batch(covered + 1, max_msgs=256) if m.seq <= last]
        if not batch:
            covered = last  # nothing stored in (covered, last]: all deleted
            break
        for msg in batch:
            if len(msgs) >= BATCH_MSGS or size >= BATCH_BYTES:
                break
            msgs.append(msg)
            size += len(msg.subject) + len(msg.hdr) + len(msg.data)
            covered = msg.seq
    parts = [_HEAD.pack(max(covered, 0), len(msgs))]
    for msg in msgs:
        subj = msg.subject.encode()
        parts.append(_MSG.pack(msg.seq, msg.ts, len(subj), len(msg.hdr), len(msg.data)))
        parts += (subj, msg.hdr, msg.data)
    return b"".join(parts)


def decode_batch(data: bytes) -> tuple[int, list[Copied]]:
    covered, count = _HEAD.unpack_from(data, 0)
    offset = _HEAD.size
    msgs = []
    for _ in range(count):
        seq, ts, slen, hlen, dlen = _MSG.unpack_from(data, offset)
        offset += _MSG.size
        subj = subject_text(data[offset:offset + slen])
        offset += slen
        hdr = data[offset:offset + hlen]
        offset += hlen
        msgs.append(Copied(seq, ts, subj, hdr, data[offset:offset + dlen]))
        offset += dlen
    if offset != len(data):
        raise ValueError("catch-up batch has trailing or missing bytes")
    return covered, msgs


def store_copied(store: MessageStore, covered: int, msgs: list[Copied]) -> None:
    """Append copied messages at their own sequences; gaps become deleted sequences."""
    for msg in msgs:
        _skip_to(store, msg.seq, msg.ts)
        store.store_msg(msg.subject, msg.hdr, msg.data, msg.ts)
    _skip_to(store, covered + 1, 0)


def _skip_to(store: MessageStore, seq: int, ts: int) -> None:
    """Make `seq` the next sequence to be stored."""
    if store.last_seq + 1 >= seq:
        return
    if store.msgs == 0:
        store.skip_msgs(seq)
        return
    while store.last_seq + 1 < seq:
        store.skip_msg(ts)


def serve(store: Callable[[], MessageStore], server: Bus
          ) -> Callable[[bytes, bytes, int, bytes], None]:
    """The handler of a replica's catch-up subject."""
    def on_request(subject: bytes, reply: bytes, hdr: int, payload: bytes) -> None:
        if not reply:
            return
        try:
            request = json.loads(payload[hdr:] if hdr > 0 else payload)
            start, stop = int(request["from"]), int(request["to"])
        except (ValueError, KeyError, TypeError):
            return
        try:
            batch = encode_batch(store(), start, stop)
        except StoreError as exc:
            logger.error("JetStream catch-up from %d not served: %s", start, exc)
            return
        server.publish_internal(reply, payload=batch)
    return on_request


async def fetch(server: Bus, group: str, peers: Callable[[], list[str]],
                store: MessageStore, stop: int, label: str) -> None:
    """Copy what `store` lacks up to `stop` from peers, one batch at a time."""
    loop = asyncio.get_running_loop()
    total = stop - store.last_seq
    logger.info("JetStream catching up %s: %d messages (to seq %d)", label, total, stop)
    inbox = f"$JSC.R.{group}.{server.name}.{id(store)}"
    replies: asyncio.Queue[bytes] = asyncio.Queue()
    sub = server.subscribe_internal(inbox, lambda s, r, h, p: replies.put_nowait(p),
                                    propagate=True)
    last_report = loop.time()
    try:
        attempt = 0
        while store.last_seq < stop:
            candidates = peers()
            if not candidates:
                await asyncio.sleep(0.2)
                continue
            peer = candidates[attempt % len(candidates)]
            request = json.dumps({"from": store.last_seq + 1, "to": stop}).encode()
            server.publish_internal(subject(group, peer).encode(), inbox.encode(), request)
            try:
                data = await asyncio.wait_for(replies.get(), REQUEST_TIMEOUT)
                covered, msgs = decode_batch(data)
            except (TimeoutError, ValueError, struct.error):
                attempt += 1
                continue
            if covered < store.last_seq + 1:
                attempt += 1  # that peer is behind too: ask another
                await asyncio.sleep(0.1)
                continue
            store_copied(store, covered, msgs)
            if loop.time() - last_report > 2:
                last_report = loop.time()
                logger.info("JetStream catching up %s: at seq %d of %d", label,
                            store.last_seq, stop)
    finally:
        server.unsubscribe_internal(sub)
    logger.info("JetStream caught up %s to seq %d", label, stop)
