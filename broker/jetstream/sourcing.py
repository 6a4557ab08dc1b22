"""Mirrors and sources: a stream filled from other streams, as nats-server does it.

For each origin (the mirror, or each of the sources) a `SourceRunner` creates an ephemeral
push consumer on the origin through the JetStream API (any server, any account or domain the
API prefix reaches): flow control, idle heartbeats, no acks, starting at the origin sequence
after the last one the stream holds. Each message arrives with the `$JS.ACK...` reply that
names its origin sequence, its consumer sequence and what is pending:

- a mirror stores it under the same sequence (gaps in the origin skipped), subject and
  headers unchanged;
- a source stores it next, under its subject (transformed, if the source says so), with a
  `Nats-Stream-Source: <name> <origin seq> <filter> <dest> <subject>` header that tells on
  restart where each source stopped.

A gap in the consumer sequence, a heartbeat that says more was sent than arrived, or silence
for three heartbeats recreates the consumer from the last origin sequence stored: nothing is
lost, and an origin sequence at or below what the stream holds is never stored again, so
nothing is stored twice. Stream info shows each origin's `lag` (what the consumer says is
pending) and `active` (nanoseconds since it was last heard from).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from broker import headers as h
from broker.jetstream import errors
from broker.jetstream.bus import Bus
from broker.jetstream.errors import ApiError
from broker.jetstream.streamconfig import StreamConfig
from broker.logger import logger
from broker.sublist import Subscription
from common.gotime import now_ns
from common.subjects import subject_text
from common.transform import SubjectTransform
from storage import MessageStore

SOURCE_HEADER = "Nats-Stream-Source"
HEARTBEAT = 1.0  # seconds between the origin consumer's idle heartbeats
STALLED_AFTER = 3 * HEARTBEAT  # silence that recreates the consumer
CREATE_TIMEOUT = 5.0  # seconds to wait for CONSUMER.CREATE's answer
RETRY_MIN, RETRY_MAX = 0.25, 10.0  # back-off between failed attempts
PROGRESS_EVERY = 10_000  # log a large copy's progress this often (messages)


@dataclass(frozen=True)
class Origin:
    """One mirror or source entry of a stream config (its JSON, read)."""

    name: str
    mirror: bool = False
    filter_subject: str = ""
    transforms: tuple[tuple[str, str], ...] = ()  # (src, dest) pairs
    opt_start_seq: int = 0
    opt_start_time: str = ""
    api_prefix: str = "$JS.API"
    deliver_prefix: str = ""
    external: dict[str, str] = field(default_factory=dict, compare=False)

    @classmethod
    def from_json(cls, entry: dict[str, Any], mirror: bool = False) -> Origin:
        external = entry.get("external") or {}
        transforms = tuple((t.get("src", ""), t.get("dest", ""))
                           for t in entry.get("subject_transforms") or [])
        return cls(name=entry.get("name", ""), mirror=mirror,
                   filter_subject=entry.get("filter_subject", ""), transforms=transforms,
                   opt_start_seq=int(entry.get("opt_start_seq") or 0),
                   opt_start_time=entry.get("opt_start_time", "") or "",
                   api_prefix=(external.get("api") or "$JS.API").rstrip("."),
                   deliver_prefix=(external.get("deliver") or "").rstrip("."),
                   external=dict(external))

    @property
    def index_name(self) -> tuple[str, str, str]:
        """(name, filter, destination) as the source header names them (nats-server's iname):
        the name carries a hash of the API prefix for an external origin."""
        name = self.name
        if self.external.get("api"):
            name += ":" + hashlib.sha256(self.api_prefix.encode()).hexdigest()[:8]
        if self.transforms:
            return (name, "\f".join(src or ">" for src, _ in self.transforms),
                    "\f".join(dest or ">" for _, dest in self.transforms))
        return name, self.filter_subject or ">", ">"

    def source_header(self, origin_seq: int, subject: str) -> str:
        name, filter_subject, dest = self.index_name
        return f"{name} {origin_seq} {filter_subject} {dest} {subject}"


def parse_source_header(value: str) -> tuple[tuple[str, str, str], int] | None:
    """(index name, origin sequence) of a `Nats-Stream-Source` value, or None."""
    parts = value.split(" ")
    if len(parts) < 4 or not parts[1].isdigit():
        return None
    return (parts[0], parts[2], parts[3]), int(parts[1])


class SourceTarget(Protocol):
    """The stream a runner fills (`jetstream.JetStream` for a stream it holds)."""

    def resume_after(self, origin: Origin) -> int:
        """The last origin sequence the stream holds from `origin` (0: none)."""
        ...

    def store_sourced(self, origin: Origin, origin_seq: int, subject: str, hdr: bytes,
                      data: bytes) -> bool:
        """Store one message from `origin`; False if it was refused (the error is logged)."""
        ...


class SourceRunner:
    """Keeps one origin's messages flowing into a stream."""

    def __init__(self, bus: Bus, stream: str, origin: Origin, target: SourceTarget,
                 subscribe: Callable[[str, Callable[[bytes, bytes, int, bytes], None]],
                                     Subscription]) -> None:
        self.bus = bus
        self.stream = stream
        self.origin = origin
        self.target = target
        self._subscribe = subscribe
        self.last_seq = 0  # the last origin sequence stored
        self.lag = 0
        self.error: dict[str, Any] | None = None
        self._heard_at = 0  # ns
        self._consumer = ""
        self._dseq = 0  # the consumer sequence of the last message taken
        self._deliveries: Subscription | None = None
        self._replies: Subscription | None = None
        self._pending_create: asyncio.Future[dict[str, Any]] | None = None
        self._restart = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._copied = 0
        self._stopped = False

    # Lifecycle

    def start(self) -> None:
        self.last_seq = self.target.resume_after(self.origin)
        self._task = self.bus.loop.create_task(self._run())

    def stop(self) -> None:
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._drop_consumer()

    # Info

    def info(self) -> dict[str, Any]:
        """A `StreamSourceInfo`, as stream info shows it."""
        body: dict[str, Any] = {"name": self.origin.name, "lag": self.lag,
                                "active": now_ns() - self._heard_at if self._heard_at else -1}
        if self.origin.filter_subject:
            body["filter_subject"] = self.origin.filter_subject
        if self.origin.transforms:
            body["subject_transforms"] = [{"src": s, "dest": d}
                                          for s, d in self.origin.transforms]
        if self.origin.external:
            body["external"] = dict(self.origin.external)
        if self.error is not None:
            body["error"] = self.error
        return body

    # The loop: create a consumer, take what it delivers, recreate it when it stalls.

    async def _run(self) -> None:
        delay = RETRY_MIN
        while not self._stopped:
            self._restart.clear()
            try:
                await self._create_consumer()
            except (TimeoutError, OSError) as exc:
                self._failed(f"{exc or 'no answer'}")
            except _Refused as exc:
                self._failed(str(exc), exc.error)
            else:
                delay = RETRY_MIN
                await self._watch()
                continue
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)

    async def _watch(self) -> None:
        """Until the consumer stalls (or a gap asks for a restart)."""
        while not self._stopped and not self._restart.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._restart.wait(), HEARTBEAT)
            silent = (now_ns() - self._heard_at) / 1e9
            if silent > STALLED_AFTER:
                logger.debug("JetStream stream %r: %s stalled, recreating its consumer",
                             self.stream, self._what())
                break
        self._drop_consumer()

    def _failed(self, text: str, error: dict[str, Any] | None = None) -> None:
        self.error = error or {"code": 503, "description": text}
        logger.warning("JetStream stream %r: %s not available: %s", self.stream, self._what(),
                       self.error.get("description", text))

    def _what(self) -> str:
        return f"mirror {self.origin.name!r}" if self.origin.mirror else \
            f"source {self.origin.name!r}"

    async def _create_consumer(self) -> None:
        token = os.urandom(6).hex()
        deliver = f"$JS.S.{token}"
        if self.origin.deliver_prefix:
            deliver = f"{self.origin.deliver_prefix}.{deliver}"
        reply = f"$JS.R.{token}"
        self._dseq = 0
        self._deliveries = self._subscribe(deliver, self._on_delivery)
        loop = self.bus.loop
        self._pending_create = loop.create_future()
        self._replies = self._subscribe(reply, self._on_created)
        request = {"stream_name": self.origin.name, "config": self._consumer_config(deliver)}
        self.bus.publish_internal(f"{self.origin.api_prefix}.CONSUMER.CREATE.{self.origin.name}"
                                  .encode(), reply.encode(), json.dumps(request).encode())
        self.bus.flush()
        try:
            answer = await asyncio.wait_for(self._pending_create, CREATE_TIMEOUT)
        finally:
            self._unsubscribe_replies()
        if "error" in answer:
            self._drop_consumer()
            error = answer["error"]
            raise _Refused(error.get("description", "consumer create failed"), error)
        self._consumer = answer.get("name", "")
        self.error = None
        self._heard_at = now_ns()
        logger.debug("JetStream stream %r: %s from sequence %d", self.stream, self._what(),
                     self.last_seq + 1)

    def _consumer_config(self, deliver: str) -> dict[str, Any]:
        config: dict[str, Any] = {
            "deliver_subject": deliver, "ack_policy": "none", "max_deliver": 1,
            "flow_control": True, "idle_heartbeat": int(HEARTBEAT * 1e9),
            "inactive_threshold": int(4 * STALLED_AFTER * 1e9), "mem_storage": True,
            "num_replicas": 1, "replay_policy": "instant",
        }
        if self.last_seq > 0:
            config.update(deliver_policy="by_start_sequence", opt_start_seq=self.last_seq + 1)
        elif self.origin.opt_start_seq > 0:
            config.update(deliver_policy="by_start_sequence",
                          opt_start_seq=self.origin.opt_start_seq)
        elif self.origin.opt_start_time:
            config.update(deliver_policy="by_start_time",
                          opt_start_time=self.origin.opt_start_time)
        else:
            config["deliver_policy"] = "all"
        sources = [src for src, _ in self.origin.transforms if src]
        if len(sources) > 1:
            config["filter_subjects"] = sources
        elif sources:
            config["filter_subject"] = sources[0]
        elif self.origin.filter_subject:
            config["filter_subject"] = self.origin.filter_subject
        return config

    def _on_created(self, subject: bytes, reply: bytes, hdr: int, payload: bytes) -> None:
        future = self._pending_create
        if future is None or future.done():
            return
        try:
            answer = json.loads(payload[hdr:] if hdr > 0 else payload)
        except ValueError:
            answer = {"error": {"code": 500, "description": "bad consumer create answer"}}
        future.set_result(answer if isinstance(answer, dict) else {})

    def _drop_consumer(self) -> None:
        """Leave the current consumer (the origin deletes it when its inactivity threshold
        passes; asked now as well)."""
        if self._deliveries is not None:
            self.bus.unsubscribe_internal(self._deliveries)
            self._deliveries = None
        self._unsubscribe_replies()
        if self._consumer:
            subject = f"{self.origin.api_prefix}.CONSUMER.DELETE.{self.origin.name}." \
                      f"{self._consumer}"
            self.bus.publish_internal(subject.encode(), b"$JS.IGNORED", b"")
            self._consumer = ""

    def _unsubscribe_replies(self) -> None:
        if self._replies is not None:
            self.bus.unsubscribe_internal(self._replies)
            self._replies = None

    # Deliveries

    def _on_delivery(self, subject: bytes, reply: bytes, hdr: int, payload: bytes) -> None:
        self._heard_at = now_ns()
        block = payload[:hdr] if hdr > 0 else b""
        if block:
            code, _ = h.status(block)
            if code == "100":
                self._on_control(reply, block)
                return
        seqs = _ack_sequences(reply)
        if seqs is None:
            return
        origin_seq, consumer_seq, pending = seqs
        if consumer_seq <= self._dseq:
            return  # seen already
        if consumer_seq != self._dseq + 1 and self._dseq:
            self._restart.set()  # a gap: start again from the last sequence stored
            return
        self._dseq = consumer_seq
        self.lag = pending
        if origin_seq <= self.last_seq:
            return  # stored before (a consumer recreated from an earlier point)
        data = payload[hdr:] if hdr > 0 else payload
        if not self.target.store_sourced(self.origin, origin_seq, subject_text(subject), block,
                                         data):
            return
        self.last_seq = origin_seq
        self._copied += 1
        if self._copied % PROGRESS_EVERY == 0:
            logger.info("JetStream stream %r: %s copied %d messages, %d to go", self.stream,
                        self._what(), self._copied, pending)

    def _on_control(self, reply: bytes, block: bytes) -> None:
        """An idle heartbeat (a gap if it says more was sent than we took), or a flow control
        request to answer."""
        if reply:
            self.bus.publish_internal(reply)
            return
        fields = h.parse(block)
        last = h.first(fields, "Nats-Last-Consumer")
        if last is not None and last.isdigit() and int(last) > self._dseq:
            self._restart.set()


class _Refused(Exception):
    def __init__(self, text: str, error: dict[str, Any]) -> None:
        super().__init__(text)
        self.error = error


def _ack_sequences(reply: bytes) -> tuple[int, int, int] | None:
    """(origin stream sequence, consumer sequence, pending) of a `$JS.ACK` reply subject, in
    its short and long (domain, account hash) forms."""
    tokens = reply.split(b".")
    if len(tokens) < 9 or tokens[0] != b"$JS" or tokens[1] != b"ACK":
        return None
    base = 2 if len(tokens) == 9 else 4
    try:
        return (int(tokens[base + 3]), int(tokens[base + 4]), int(tokens[base + 6]))
    except (ValueError, IndexError):
        return None


# A source's subject transforms, as one function (the identity when it has none).
Transform = Callable[[str], str]


def source_transform(origin: Origin) -> Transform:
    """The first of a source's subject transforms that matches a subject maps it; a subject
    none matches is stored as it came (nats-server's order)."""
    if not origin.transforms:
        return _same
    transforms = [SubjectTransform(src or ">", dest or ">") for src, dest in origin.transforms]

    def apply(subject: str) -> str:
        for transform in transforms:
            mapped = transform.apply(subject)
            if mapped is not None:
                return mapped
        return subject
    return apply


def _same(subject: str) -> str:
    return subject


class StreamSink:
    """A stream held on this server as a runner's target: what it holds tells where each
    origin stopped, and messages go in through `ingest`, the stream's one store path (the
    ingest handler of a single server, or of a replicated stream's leader, which proposes
    them). Each carries its origin sequence in the source header; the stream checks it where
    the message is applied (`Stream.apply_publish`): a mirror aligns its sequences and drops the
    header, a copy at or below where its origin stopped is not stored again. `synchronous`:
    the ingest stores at once (not through a Raft group), so a refusal shows."""

    def __init__(self, stream: SinkStream, ingest: Callable[[bytes, bytes, int, bytes], None],
                 transform_for: Callable[[Origin], Transform], synchronous: bool = True) -> None:
        self.stream = stream
        self.ingest = ingest
        self._transform_for = transform_for
        self._transforms: dict[Origin, Transform] = {}
        self.synchronous = synchronous

    def resume_after(self, origin: Origin) -> int:
        if origin.mirror:
            return self.stream.store.last_seq
        return last_origin_seq(self.stream.store, origin.index_name)

    def store_sourced(self, origin: Origin, origin_seq: int, subject: str, hdr: bytes,
                      data: bytes) -> bool:
        store = self.stream.store
        before = store.last_seq
        transform = self._transforms.get(origin)
        if transform is None:
            transform = self._transforms[origin] = self._transform_for(origin)
        block = h.merge(_strip_sourcing_headers(hdr),
                        [(SOURCE_HEADER, origin.source_header(origin_seq, subject))])
        self.ingest(transform(subject).encode(), b"", len(block), block + data)
        return not self.synchronous or store.last_seq > before or \
            (origin.mirror and store.last_seq >= origin_seq)


def last_origin_seq(store: MessageStore, index_name: tuple[str, str, str]) -> int:
    """The last origin sequence a stream holds from the source named `index_name` (0: none),
    read back from the newest message carrying its source header."""
    wanted = SOURCE_HEADER.encode()
    seq = store.last_seq
    while seq >= max(store.first_seq, 1):
        msg = store.load(seq)
        seq -= 1
        if msg is None or not msg.hdr or wanted not in msg.hdr:
            continue
        parsed = parse_source_header(h.first(h.parse(msg.hdr), SOURCE_HEADER) or "")
        if parsed is not None and parsed[0] == index_name:
            return parsed[1]
    return 0


def origin_of(hdr: bytes) -> tuple[tuple[str, str, str], int] | None:
    """(index name, origin sequence) of a message's source header, or None."""
    if not hdr or SOURCE_HEADER.encode() not in hdr:
        return None
    return parse_source_header(h.first(h.parse(hdr), SOURCE_HEADER) or "")


def without_source_header(block: bytes) -> bytes:
    """A mirror stores the origin's headers as they were: the source header (which carried
    the origin sequence to where the message is applied) comes off."""
    lines = block.split(b"\r\n")
    kept = [lines[0]] + [line for line in lines[1:] if line and not line.lower().startswith(
        SOURCE_HEADER.lower().encode() + b":")]
    if len(kept) == 1:
        return b""
    return b"\r\n".join(kept) + b"\r\n\r\n"


class SinkStream(Protocol):
    """What a sink reads of the stream it fills (`stream.Stream`)."""

    @property
    def store(self) -> MessageStore: ...


def _strip_sourcing_headers(block: bytes) -> bytes:
    """A message's headers without an earlier source's header (daisy chains) or
    `Nats-Expected-*` (they were checked when it was first stored), as nats-server does."""
    if not block or (SOURCE_HEADER.encode() not in block and b"Nats-Expected-" not in block):
        return block
    lines = block.split(b"\r\n")
    kept = [lines[0]] + [line for line in lines[1:] if line and not (
        line.lower().startswith(SOURCE_HEADER.lower().encode() + b":") or
        line.lower().startswith(b"nats-expected-"))]
    if len(kept) == 1:
        return b""
    return b"\r\n".join(kept) + b"\r\n\r\n"


class Refusing(Protocol):
    """A stream as `guard_published` needs it (`stream.Stream`)."""

    @property
    def config(self) -> StreamConfig: ...

    def refuse(self, reply: bytes, exc: ApiError) -> None: ...


def guard_published(stream: Refusing, ingest: Callable[[bytes, bytes, int, bytes], None],
                    ) -> Callable[[bytes, bytes, int, bytes], None]:
    """`ingest` for what clients publish to a stream with sources: a source header from a
    client is refused (10227, as nats-server 2.14+ refuses it anywhere), since it would pass
    for a copy and could make the stream take later copies for duplicates."""
    marker = SOURCE_HEADER.encode()

    def published(subject: bytes, reply: bytes, hdr: int, payload: bytes) -> None:
        if hdr > 0 and stream.config.sources and marker in payload[:hdr]:
            stream.refuse(reply, errors.source_header_not_allowed())
            return
        ingest(subject, reply, hdr, payload)
    return published

