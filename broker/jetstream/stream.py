"""A stream: its config, its message store, and the deterministic state machine that applies
publishes to it.

`store` is the one path from a publish to its answer, for a single server and for the Raft apply
of a replicated stream alike (nats-server's processJetStreamMsg): `apply_publish` checks
expected-headers, dedupe, size and discard-new limits, assigns the sequence (through the store)
and performs rollups; a refusal is answered at once, a PubAck waits in `pending_acks` until
`on_durable` covers its sequence. Given the same stream state and the same (subject, headers,
data, timestamp) `apply_publish` always decides the same, which is what lets every replica of a
cluster feed it from the Raft log. What makes a sequence durable is the caller's: the group
commit's fsync on a single server, the Raft commit on a cluster.

The stream's `subject_transform` maps a publish's subject before anything else looks at it
(the stored subject is the transformed one; a subject it does not match is stored as it came),
on every replica alike. `republish` sends a copy of each stored message to its transformed
subject with the `Nats-Stream`, `Nats-Subject`, `Nats-Sequence`, `Nats-Time-Stamp`,
`Nats-Last-Sequence` (and, headers only, `Nats-Msg-Size`) headers, from the leader only:
`leader` is True for a stream nobody else replicates, and the cluster moves it with leadership.

Consumers are seen through `StreamConsumer`, what the stream asks of them.
"""

from __future__ import annotations

import bisect
import json
from collections import deque
from collections.abc import Callable
from typing import Generic, NamedTuple, Protocol, TypeVar

from broker import headers as h
from broker.jetstream import errors
from broker.jetstream.dedupe import Dedupe
from broker.jetstream.errors import ApiError
from broker.jetstream.jsondecode import JsonObject
from broker.jetstream.sourcing import Origin, last_origin_seq, origin_of, without_source_header
from broker.jetstream.streamconfig import StreamConfig
from broker.logger import logger
from common.gotime import NANOS, format_ns, parse_go_duration
from common.subjects import is_valid_literal_subject
from common.transform import SubjectTransform, new_transform
from storage.store import ALL, MessageStore, StoreConfig, StoredMessage, StoreError, StoreFull

MAX_HEADER_SIZE = 65535

# Sends one server message: (reply subject, payload). The bus's publish_internal, for answers.
Send = Callable[[bytes, bytes], None]


class Publish(Protocol):
    """Publishes a server message with headers (the bus's `publish_internal`): republish."""

    def __call__(self, subject: bytes, reply: bytes = b"", payload: bytes = b"",
                 hdr: int = -1) -> int: ...


class StreamConsumer(Protocol):
    """What a stream asks of its consumers (retention, and waking them for new messages)."""

    def matches(self, subject: str) -> bool: ...

    def needs(self, seq: int, subject: str) -> bool:
        """Whether message `seq` is still to be delivered or acknowledged here."""
        ...

    def on_stored(self, seq: int, subject: str) -> None: ...

    def on_removed(self) -> None: ...

    def on_purged(self, subject: str | None = None) -> None:
        """The stream was purged (all of it, or `subject`): the store has done it."""
        ...

    def signal(self) -> None:
        """New messages are durable: deliver what is due."""
        ...


C = TypeVar("C", bound=StreamConsumer)


class Published(NamedTuple):
    """What a publish did: the sequence it got (or the original one for a duplicate)."""

    seq: int
    duplicate: bool = False


def store_config(cfg: StreamConfig) -> StoreConfig:
    return StoreConfig(name=cfg.name, max_msgs=cfg.max_msgs, max_bytes=cfg.max_bytes,
                       max_age=cfg.max_age, max_msgs_per_subject=cfg.max_msgs_per_subject,
                       first_seq=cfg.first_seq or 1, compression=cfg.compression)


class Stream(Generic[C]):
    def __init__(self, config: StreamConfig, store: MessageStore, created: int,
                 send: Send, publish: Publish | None = None) -> None:
        self.config = config
        self.store = store
        self.created = created
        self.send = send
        self.publish = publish
        # Whether this copy republishes (the cluster sets it: only a leader does).
        self.leader = True
        self._transform: SubjectTransform | None = None
        self._republish: SubjectTransform | None = None
        self._set_transforms(config)
        self.dedupe = Dedupe(config.duplicate_window)
        self._dedupe_loaded = False
        self.last_msg_id = ""
        self.consumers: dict[str, C] = {}
        # The newest sequence known to be on disk: consumers deliver nothing beyond it, so no
        # reader ever sees a message that a crash could take back.
        self.durable_seq = store.last_seq
        # Where each source stopped (its index name -> origin sequence), read back from the
        # store when first needed (see `_origin`).
        self._origin_seqs: dict[tuple[str, str, str], int] = {}
        self._source_names = _source_names(config)
        self.ack_prefix = b'{"stream":%s, "seq":' % _json_str(config.name)
        # PubAcks waiting for the sync that covers their sequence: (seq, reply, payload).
        self.pending_acks: deque[tuple[int, bytes, bytes]] = deque()

    @property
    def consumer_count(self) -> int:
        return len(self.consumers)

    # Publishing (the state machine)

    def store_publish(self, subject: str, hdr: bytes, data: bytes, ts: int, reply: bytes
                      ) -> Published | None:
        """A publish, from its arrival to its answer: applied, or refused with its error at
        once; its PubAck released by `on_durable`. None when refused. `reply` b"": nobody
        waits for an answer."""
        if self.config.no_ack:
            reply = b""
        try:
            published = self.apply_publish(subject, hdr, data, ts)
        except (ApiError, StoreError) as exc:
            self.refuse(reply, exc)
            return None
        if reply:
            self.pending_acks.append((published.seq, reply, self.pub_ack(published)))
        return published

    def refuse(self, reply: bytes, exc: ApiError | StoreError) -> None:
        """Answer a publish that was not stored (the one mapping of failures to errors)."""
        if isinstance(exc, StoreError) and not isinstance(exc, StoreFull):
            logger.error("JetStream failed to store a msg on stream '$G > %s': %s",
                         self.config.name, exc)
        if reply and not self.config.no_ack:
            self.send(reply, self.pub_error(errors.publish_error(exc)))

    def apply_publish(self, subject: str, hdr: bytes, data: bytes, ts: int) -> Published:
        """Apply one publish at time `ts` (ns). Raises ApiError when it is refused."""
        cfg = self.config
        if self._transform is not None:
            subject = self._transform.apply(subject) or subject
        if cfg.sealed:
            raise errors.stream_sealed()
        origin: tuple[tuple[str, str, str], int] | None = None
        if (cfg.mirror is not None or cfg.sources) and hdr:
            found = self._origin(hdr, ts)
            if isinstance(found, Published):
                return found
            origin = found
            if cfg.mirror is not None and origin is not None:
                hdr = without_source_header(hdr)
        msg_id = ""
        ttl = 0
        rollup = ""
        if hdr and b"Nats-" in hdr:
            fields = h.parse(hdr)
            expected = h.first(fields, h.EXPECTED_STREAM)
            if expected and expected != cfg.name:
                raise errors.expected_stream_mismatch()
            msg_id = h.first(fields, h.MSG_ID) or ""
            if msg_id:
                seq = self._duplicate_of(msg_id, ts)
                if seq is not None:
                    return Published(seq, duplicate=True)
            self._check_expectations(subject, fields)
            rollup = self._rollup(fields)
            ttl = self._ttl(fields)
        self._check_size(subject, hdr, data)
        republish = None
        if cfg.retention == "interest" and not any(c.matches(subject)
                                                   for c in self.consumers.values()):
            # Nobody will ever read it: take the sequence, keep nothing (nats-server skips it).
            seq = self.store.skip_msg(ts)
        else:
            if self._republish is not None and self.leader and self.publish is not None:
                republish = self._republish_to(subject)
            seq = self.store.store_msg(subject, hdr, data, ts, ttl)
        if msg_id:
            self.dedupe.record(msg_id, seq, ts)
        self.last_msg_id = msg_id
        if rollup == "sub":
            self.store.purge(subject=subject, keep=1)
        elif rollup == "all":
            self.store.purge(keep=1)
        for consumer in self.consumers.values():
            consumer.on_stored(seq, subject)
            if rollup:
                consumer.on_purged(subject if rollup == "sub" else None)
        if republish is not None:
            self._send_republish(republish, subject, hdr, data, seq, ts)
        if origin is not None:
            self._origin_seqs[origin[0]] = origin[1]
        return Published(seq)

    # Mirrors and sources (see sourcing.py): checked where messages are applied, so a copy
    # proposed by a leader that lost its place is stored once on every replica alike.

    def _origin(self, hdr: bytes, ts: int) -> tuple[tuple[str, str, str], int] | Published | None:
        """A copied message's origin (index name, sequence), None for another message, or the
        Published of a copy already stored. A mirror first skips the origin sequences it will
        never see, to keep the origin's numbering."""
        origin = origin_of(hdr)
        if origin is None:
            return None
        name, origin_seq = origin
        store = self.store
        if self.config.mirror is not None:
            if origin_seq <= store.last_seq:
                return Published(origin_seq, duplicate=True)
            if origin_seq > store.last_seq + 1:
                if store.state().msgs == 0:
                    store.skip_msgs(origin_seq)
                else:
                    while store.last_seq < origin_seq - 1:
                        store.skip_msg(ts)
            return name, origin_seq
        if name not in self._source_names:
            return None  # a header a client sent: stored as it is
        last = self._origin_seqs.get(name)
        if last is None:
            last = self._origin_seqs[name] = last_origin_seq(store, name)
        if origin_seq <= last:
            return Published(store.last_seq, duplicate=True)
        return name, origin_seq

    # Subject transform and republish

    def _set_transforms(self, config: StreamConfig) -> None:
        """The transforms of a (validated) config."""
        st, rp = config.subject_transform, config.republish
        self._transform = new_transform(st.get("src", ""), st.get("dest", "")) if st else None
        self._republish = new_transform(rp.get("src", ""), rp.get("dest", "")) if rp else None

    def _republish_to(self, subject: str) -> tuple[bytes, int] | None:
        """(the subject, the last sequence of `subject` before this message) to republish a
        message stored under `subject` to; None: not republished."""
        assert self._republish is not None
        target = self._republish.apply(subject)
        if target is None:
            return None
        encoded = target.encode()
        if not is_valid_literal_subject(encoded):
            logger.warning("Stream '$G > %s' suppressing republish with invalid subject %r",
                           self.config.name, target)
            return None
        return encoded, self.store.last_seq_for(subject)

    def _send_republish(self, target: tuple[bytes, int], subject: str, hdr: bytes,
                        data: bytes, seq: int, ts: int) -> None:
        """The copy of a stored message: its headers (if any) and then the stream's."""
        assert self.publish is not None
        dest, last = target
        headers_only = bool(self.config.republish and self.config.republish.get("headers_only"))
        fields = (f"Nats-Stream: {self.config.name}\r\nNats-Subject: {subject}\r\n"
                  f"Nats-Sequence: {seq}\r\nNats-Time-Stamp: {format_ns(ts)}\r\n"
                  f"Nats-Last-Sequence: {last}\r\n")
        if headers_only:
            fields += f"Nats-Msg-Size: {len(data)}\r\n"
        block = (hdr[:-2] if hdr else b"NATS/1.0\r\n") + fields.encode() + b"\r\n"
        self.publish(dest, b"", block if headers_only else block + data, len(block))

    # Consumers and retention

    def on_durable(self, seq: int) -> None:
        """Everything up to `seq` is on disk: PubAcks may go, consumers may deliver it."""
        acks = self.pending_acks
        while acks and acks[0][0] <= seq:
            _, reply, payload = acks.popleft()
            self.send(reply, payload)
        if seq > self.durable_seq:
            self.durable_seq = seq
            for consumer in self.consumers.values():
                consumer.signal()

    def on_sync_failed(self, seq: int, error: BaseException) -> None:
        """The sync covering everything up to `seq` failed: those publishers get an error."""
        acks = self.pending_acks
        payload = self.pub_error(errors.sync_failed(error))
        while acks and acks[0][0] <= seq:
            _, reply, _ = acks.popleft()
            self.send(reply, payload)

    def on_removed(self) -> None:
        """Messages left the stream (purge, delete, limits): consumers recount what is pending."""
        for consumer in self.consumers.values():
            consumer.on_removed()

    def on_purged(self, subject: str | None = None) -> None:
        """A purge (all of the stream, or `subject`) is done: consumers within it move to what
        the purge left, as in nats-server 2.10."""
        for consumer in self.consumers.values():
            consumer.on_purged(subject)

    def on_acked(self, consumer: C, seqs: list[int]) -> None:
        """Work-queue and interest retention: drop what nobody needs any more."""
        retention = self.config.retention
        if retention == "limits":
            return
        removed = False
        for seq in seqs:
            if retention == "interest" and self._still_needed(seq, consumer):
                continue
            removed = self.store.remove(seq) or removed
        if removed:
            for other in self.consumers.values():
                if other is not consumer:
                    other.on_removed()

    def _still_needed(self, seq: int, acked_by: C | None) -> bool:
        msg = None
        for consumer in self.consumers.values():
            if consumer is acked_by:
                continue
            if msg is None:
                msg = self.store.load(seq)
                if msg is None:
                    return False
            if consumer.needs(seq, msg.subject):
                return True
        return False

    def drop_unneeded(self) -> int:
        """Interest retention after a consumer left: remove what no remaining consumer needs."""
        if self.config.retention != "interest":
            return 0
        removed = 0
        seq = 0
        while True:
            msg = self.store.load_next(seq + 1)
            if msg is None:
                break
            seq = msg.seq
            if not any(c.needs(seq, msg.subject) for c in self.consumers.values()):
                removed += self.store.remove(seq)
        if removed:
            self.on_removed()
        return removed

    def _duplicate_of(self, msg_id: str, now: int) -> int | None:
        if not self._dedupe_loaded:
            self._rebuild_dedupe(now)
        return self.dedupe.lookup(msg_id, now)

    def _check_expectations(self, subject: str, fields: dict[str, list[str]]) -> None:
        text = h.first(fields, h.EXPECTED_LAST_SUBJECT_SEQ)
        if text is not None:
            expected = _parse_uint(text)
            if expected is None:
                raise errors.last_subject_seq_missing()
            last = self.store.last_seq_for(subject)
            if last != expected:
                raise errors.wrong_last_sequence(last)
        text = h.first(fields, h.EXPECTED_LAST_SEQ)
        if text is not None:
            expected = _parse_uint(text)
            last = self.store.last_seq
            if expected is None or expected != last:
                raise errors.wrong_last_sequence(last)
        text = h.first(fields, h.EXPECTED_LAST_MSG_ID)
        if text:
            if not self._dedupe_loaded:
                self._rebuild_dedupe(0)
            if text != self.last_msg_id:
                raise errors.wrong_last_msg_id(self.last_msg_id)

    def _rollup(self, fields: dict[str, list[str]]) -> str:
        value = h.first(fields, h.ROLLUP)
        if value is None:
            return ""
        if not self.config.allow_rollup_hdrs or self.config.deny_purge:
            raise errors.rollup_failed("rollup not permitted")
        if value not in ("sub", "all"):
            raise errors.rollup_failed(f"rollup value invalid: {value!r}")
        return value

    def _ttl(self, fields: dict[str, list[str]]) -> int:
        value = h.first(fields, h.TTL)
        if value is None:
            return 0
        if not self.config.allow_msg_ttl:
            raise errors.ttl_disabled()
        ttl = parse_ttl(value)
        if ttl is None:
            raise errors.ttl_invalid()
        return ttl

    def _check_size(self, subject: str, hdr: bytes, data: bytes) -> None:
        cfg = self.config
        size = len(hdr) + len(data)
        if 0 <= cfg.max_msg_size < size:
            raise errors.message_too_large()
        if len(hdr) > MAX_HEADER_SIZE:
            raise errors.header_too_large()
        if cfg.discard != "new":
            return
        # nats-server's order: the subject's limit first, then the stream's.
        if cfg.discard_new_per_subject and cfg.max_msgs_per_subject > 0 and \
                self.store.subjects(subject).get(subject, 0) >= cfg.max_msgs_per_subject:
            raise errors.store_failed("maximum messages per subject exceeded")
        if 0 < cfg.max_msgs <= self.store.msgs:
            raise errors.store_failed("maximum messages exceeded")
        # nats-server's check: the stored bytes plus this message's headers and body.
        if 0 < cfg.max_bytes <= self.store.state().bytes + size:
            raise errors.store_failed("maximum bytes exceeded")

    def parse_purge(self, request: JsonObject) -> tuple[str | None, int, int]:
        """A purge request's (filter, seq, keep), refused as nats-server refuses it."""
        if self.config.sealed:
            raise errors.stream_sealed()
        if self.config.deny_purge:
            raise errors.purge_failed("stream purge not permitted")
        subject = request.get("filter") or None
        seq = request.get("seq") or 0
        keep = request.get("keep") or 0
        if not all(isinstance(v, int) and v >= 0 for v in (seq, keep)) or \
                (subject is not None and not isinstance(subject, str)):
            raise errors.invalid_json("bad purge request")
        if seq and keep:
            raise errors.bad_request()
        return subject, seq, keep

    def parse_msg_delete(self, request: JsonObject, body: bytes) -> tuple[int, bool]:
        """A message delete request's (seq, no_erase), refused as nats-server refuses it."""
        if not body.strip():
            raise errors.bad_request()
        if self.config.sealed:
            raise errors.stream_sealed()
        if self.config.deny_delete:
            raise errors.stream_msg_delete_failed("message delete not permitted")
        seq = request.get("seq", 0)
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            raise errors.invalid_json("seq must be a number")
        if not seq:
            raise errors.bad_request()
        if seq > self.store.last_seq:
            raise errors.stream_msg_delete_failed("stream store EOF")
        return seq, bool(request.get("no_erase", False))

    def reload_dedupe(self) -> None:
        """The store changed under the stream (cut back, or copied from a peer): rebuild the
        dedupe window from it when next needed, so every replica decides duplicates alike."""
        self.dedupe = Dedupe(self.config.duplicate_window)
        self._dedupe_loaded = False
        self.last_msg_id = ""

    def _rebuild_dedupe(self, now: int) -> None:
        """Recover the id -> seq map from stored headers inside the window (after a restart)."""
        self._dedupe_loaded = True
        state = self.store.state()
        if not state.msgs:
            return
        start = self.first_seq_at_or_after(now - self.dedupe.window if now else 0)
        seq = start
        while True:
            msg = self.store.load_next(seq)
            if msg is None:
                break
            msg_id = h.first(h.parse(msg.hdr), h.MSG_ID) if msg.hdr else None
            if msg_id:
                self.dedupe.record(msg_id, msg.seq, msg.ts)
            self.last_msg_id = msg_id or ""
            seq = msg.seq + 1

    def first_seq_at_or_after(self, ts: int) -> int:
        """Binary search by timestamp (timestamps grow with sequences)."""
        state = self.store.state()
        lo, hi = state.first_seq, state.last_seq + 1

        def ts_of(seq: int) -> int:
            msg = self.store.load_next(seq)
            return msg.ts if msg is not None else 1 << 62

        return bisect.bisect_left(range(lo, hi), ts, key=ts_of) + lo

    # Replies

    def pub_ack(self, published: Published) -> bytes:
        if published.duplicate:
            return self.ack_prefix + b'%d,"duplicate": true}' % published.seq
        return self.ack_prefix + b"%d}" % published.seq

    def pub_error(self, error: ApiError) -> bytes:
        return json.dumps({"error": error.to_json(), "stream": self.config.name,
                           "seq": 0}).encode()

    # Management

    def update(self, config: StreamConfig) -> None:
        self.config = config
        self._set_transforms(config)
        self._source_names = _source_names(config)
        self.dedupe.window = config.duplicate_window
        self.ack_prefix = b'{"stream":%s, "seq":' % _json_str(config.name)
        self.store.update_config(store_config(config))

    def info(self, subjects_filter: str = "", deleted_details: bool = False,
             now: int = 0) -> JsonObject:
        return {"config": self.config.to_json(), "created": format_ns(self.created),
                "state": self.state_json(subjects_filter, deleted_details),
                "ts": format_ns(now)}

    def state_json(self, subjects_filter: str = "", deleted_details: bool = False
                   ) -> JsonObject:
        st = self.store.state()
        # A stream that never held a message reports first_seq 0, as nats-server does.
        first_seq = 0 if st.last_seq == 0 and st.msgs == 0 else st.first_seq
        out: JsonObject = {
            "messages": st.msgs, "bytes": st.bytes, "first_seq": first_seq,
            "first_ts": format_ns(st.first_ts), "last_seq": st.last_seq,
            "last_ts": format_ns(st.last_ts),
        }
        if st.num_subjects:
            out["num_subjects"] = st.num_subjects
        if subjects_filter:
            subjects = self.store.subjects(subjects_filter)
            if subjects:
                out["subjects"] = subjects
        if st.num_deleted:
            out["num_deleted"] = st.num_deleted
        if deleted_details and st.num_deleted:
            out["deleted"] = self.store.deleted()
        if st.damaged:
            out["lost"] = {"msgs": [s for lo, hi in st.damaged for s in range(lo, hi + 1)],
                           "bytes": 0}
        out["consumer_count"] = self.consumer_count
        return out

    def get_message(self, seq: int = 0, last_by_subj: str = "", next_by_subj: str = ""
                    ) -> StoredMessage | None:
        if last_by_subj:
            return self.store.load_last((last_by_subj,))
        if next_by_subj:
            return self.store.load_next(max(seq, 1), (next_by_subj,))
        if seq:
            return self.store.load(seq)
        return None

    def expire(self, now: int) -> int:
        removed = self.store.expire(now)
        if removed:
            self.on_removed()
        return removed

    @property
    def needs_expiry(self) -> bool:
        return self.config.max_age > 0 or self.config.allow_msg_ttl

    def first_seq_filtered(self, filters: tuple[str, ...] = (ALL,)) -> int:
        msg = self.store.load_next(0, filters)
        return msg.seq if msg is not None else 0


def _source_names(config: StreamConfig) -> frozenset[tuple[str, str, str]]:
    return frozenset(Origin.from_json(entry).index_name for entry in config.sources or [])


def parse_ttl(value: str) -> int | None:
    """`Nats-TTL`: a Go duration or whole seconds (min 1s), or `never`. Nanoseconds; -1 = never."""
    value = value.strip()
    if value.lower() == "never":
        return -1
    try:
        ttl = int(value) * NANOS if value.isdigit() else parse_go_duration(value)
    except ValueError:
        return None
    return ttl if ttl >= NANOS else None


def _parse_uint(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() else None


def _json_str(text: str) -> bytes:
    return json.dumps(text).encode()
