"""A consumer: its config, its state machine (`ConsumerState`) and the delivery engine around it.

Delivery (pull requests answered from a FIFO of waiting requests, or push to the deliver subject
while it has interest), acknowledgements on `$JS.ACK.<stream>.<consumer>.<dc>.<sseq>.<cseq>.<ts>
.<pending>`, AckWait/backoff redelivery, max_deliver, max_ack_pending, idle heartbeats and flow
control all live here. Every change of the durable state goes through `_record(op)`: applied to
the state machine and appended to the consumer's state log, so a restart replays to the same state.

New messages are delivered only once the stream reports them durable (`Stream.durable_seq`), so a
consumer never sees a message that a crash could take back.

What a consumer needs of JetStream is `ConsumerHost`, of its state log `ConsumerLog` (a file on
one server, a Raft group's log on a cluster): both declared here, so this module imports nothing
above it.
"""

from __future__ import annotations

import json
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from broker import headers as h
from broker.jetstream.bus import Bus
from broker.jetstream.consumerconfig import ConsumerConfig
from broker.jetstream.consumerstate import (
    ACK,
    ACK_ALL,
    DELIVER,
    DROP,
    NAK,
    PURGE,
    SKIP,
    TERM,
    ConsumerState,
)
from broker.jetstream.jsondecode import JsonObject
from broker.jetstream.stream import Stream
from broker.logger import logger
from broker.sublist import InternalHandler, Subscription
from common.gotime import NANOS, format_ns, now_ns, parse_go_duration
from common.subjects import is_subset, subject_matches
from storage import CorruptRecord, StoredMessage, StoreError

# Called with None once what was recorded is durable, or with the error that prevented it.
DurableCallback = Callable[[BaseException | None], None]


class ConsumerLog(Protocol):
    """A consumer's state log: every state change is appended before it counts."""

    def append(self, record: bytes) -> None: ...

    def size(self) -> int: ...

    def compact(self, snapshot: bytes) -> None: ...

    def close(self) -> None: ...

    def destroy(self) -> None: ...

    def after_durable(self, callback: DurableCallback) -> None:
        """Call back once everything appended so far is durable (synced, or committed)."""
        ...


class ConsumerHost(Protocol):
    """What a consumer needs of JetStream on this server."""

    @property
    def bus(self) -> Bus: ...

    @property
    def domain(self) -> str: ...

    @property
    def api_prefixes(self) -> list[str]: ...

    def subscribe(self, subject: str, handler: InternalHandler,
                  queue: str | None = None) -> Subscription: ...

    def consumer_inactive(self, stream: Stream[Consumer], name: str) -> None:
        """Nobody used this ephemeral consumer for its inactive threshold: remove it."""
        ...

encode_op = ConsumerState.encode_op
FC_MAX_WINDOW = 32 * 1024 * 1024
FC_START_WINDOW = FC_MAX_WINDOW // 16
COMPACT_AFTER = 1 << 20  # state log bytes before a snapshot replaces it
COMPACT_CHECK = 1024  # state changes between two looks at the log's size
ADVISORY_PREFIX = "io.nats.jetstream.advisory.v1."
UNACKED_REMOVED = "Unacknowledged message was deleted"  # the terminated advisory's reason
READ_AHEAD = 256  # messages read from the store per call for new deliveries


@dataclass
class PullRequest:
    reply: bytes
    batch: int
    max_bytes: int
    expires: float  # loop time; 0 = never
    no_wait: bool
    heartbeat: float  # seconds; 0 = none
    received: float
    sent: int = 0
    bytes_sent: int = 0
    timer: Any = None
    hb_timer: Any = None


class Consumer:
    def __init__(self, js: ConsumerHost, stream: Stream[Consumer], name: str,
                 config: ConsumerConfig, created: int, state: ConsumerState, log: ConsumerLog,
                 durable_dir: str = "") -> None:
        self.js = js
        self.stream = stream
        self.name = name
        self.config = config
        self.created = created
        self.state = state
        self.log = log
        self.durable_dir = durable_dir
        self.bus = js.bus
        self.loop = js.bus.loop
        self.closed = True  # until started: a replica's passive copy never is
        self.filters = config.filters
        self.acks_required = config.acks_required
        self._all = self.filters == (">",)
        self._ack_prefix = b"$JS.ACK.%s.%s." % (stream.config.name.encode(), name.encode())
        self._subs: list[Subscription] = []
        self.waiting: deque[PullRequest] = deque()
        self._redeliver: deque[int] = deque()
        self._queued: set[int] = set()
        self._lps: deque[int] = deque()  # last-per-subject sequences still to deliver first
        self._ahead: deque[StoredMessage] = deque()  # read-ahead of new messages
        self._ahead_removals = -1
        self._num_pending: int | None = None  # cached; valid while store.removals is unchanged
        self._removals_seen = -1
        # Waking for new messages, as nats-server's stream signals only the consumers whose
        # filter matches: the newest matching sequence stored, the durable sequence up to which
        # a stream signal was last acted on, and the newest sequence `on_stored` reported.
        self._last_match = stream.store.last_seq  # (what is not yet durable may match)
        self._signalled = stream.durable_seq
        self._stored_seen = stream.store.last_seq
        # Pending messages that left the stream: `store.removals` when last reconciled (all of
        # them, and those below the stream's first sequence).
        self._removals_reconciled = stream.store.removals
        self._removals_below = stream.store.removals
        self._reconcile_scheduled = False
        self._pump_scheduled = False
        self._ack_timer: Any = None
        self._hb_timer: Any = None
        self._inactive_timer: Any = None
        self.active = False  # push: the deliver subject has interest
        self.last_active = 0  # ns of the last delivery or request
        self.last_ack = 0  # ns of the last acknowledgement that moved something
        self._fc_bytes = 0
        self._fc_window = FC_START_WINDOW
        self._fc_reply = b""
        self._last_delivery = 0.0
        self._exceeded: set[int] = set()
        self._logged = 0
        self._not_before = 0.0  # loop time before which push delivery waits (rate, replay)
        self._wake_timer: Any = None
        self._replay_last_ts = 0

    # Lifecycle

    @property
    def stream_name(self) -> str:
        return self.stream.config.name

    @property
    def is_push(self) -> bool:
        return self.config.is_push

    def start(self) -> None:
        self.closed = False
        stream_name = self.stream.config.name
        self._subscribe(f"$JS.ACK.{stream_name}.{self.name}.>", self._on_ack)
        if self.is_push:
            self._subscribe(f"$JS.FC.{stream_name}.{self.name}.*", self._on_flow_control)
            self.bus.watch_interest(self.config.deliver_subject.encode(), self._interest)
            self.active = self._has_interest()
            if self.config.idle_heartbeat:
                self._hb_timer = self.loop.call_later(self.config.idle_heartbeat / NANOS,
                                                      self._heartbeat)
        for prefix in self.js.api_prefixes:
            self._subscribe(f"{prefix}.CONSUMER.MSG.NEXT.{stream_name}.{self.name}",
                            self._on_next)
        self._check_inactive()
        self._schedule_ack_timer()
        self._kick()

    def _subscribe(self, subject: str, handler: Callable[[bytes, bytes, int, bytes], None]
                   ) -> None:
        self._subs.append(self.js.subscribe(subject, handler))

    def stop(self, reason: str = "") -> None:
        """Stop delivering (deleted, or server shutdown). Waiting pull requests are told why."""
        if self.closed:
            return
        self.closed = True
        for sub in self._subs:
            self.bus.unsubscribe_internal(sub)
        self._subs.clear()
        if self.is_push:
            self.bus.unwatch_interest(self.config.deliver_subject.encode(), self._interest)
        for timer in (self._ack_timer, self._hb_timer, self._inactive_timer, self._wake_timer):
            if timer is not None:
                timer.cancel()
        while self.waiting:
            request = self.waiting.popleft()
            self._end_request(request)
            if reason:
                self._status(request.reply, "409", reason)

    def deliver_first(self, seqs: list[int]) -> None:
        """Deliver these sequences before continuing from the cursor (last_per_subject)."""
        self._lps.extend(seqs)

    # Signals from the stream

    def signal(self) -> None:
        """The stream's messages up to its `durable_seq` are durable: deliver what is due. As
        nats-server signals only the consumers a new message matches, a consumer wakes only when
        a matching message (or one `on_stored` did not report) became durable, so that the
        position it reports moves past non-matching messages only when it looks (see
        `_next_new`) for a reason of its own."""
        if self.closed:
            return
        durable = self.stream.durable_seq
        if self._last_match > self._signalled or self.stream.store.last_seq > self._stored_seen:
            self._signalled = durable
            self._stored_seen = max(self._stored_seen, self.stream.store.last_seq)
            self._kick()

    def _kick(self) -> None:
        """Something changed (new messages, acks, requests, interest): deliver what we can."""
        if not self._pump_scheduled and not self.closed:
            self._pump_scheduled = True
            self.loop.call_soon(self._pump)

    def on_stored(self, seq: int, subject: str) -> None:
        self._stored_seen = seq
        matched = self.matches(subject)
        if matched:
            self._last_match = seq
        if self.stream.store.removals != self._removals_below:
            self._schedule_reconcile()  # limits dropped something (maybe pending here)
        if self._num_pending is None:
            return
        if self.stream.store.removals != self._removals_seen:
            self._num_pending = None  # limits dropped something: recount when next needed
        elif seq >= self.state.cursor and matched:
            self._num_pending += 1

    def on_removed(self) -> None:
        """Messages left the stream (delete, purge, limits, retention)."""
        self._num_pending = None
        self._schedule_reconcile()

    def on_purged(self, subject: str | None = None) -> None:
        """The stream was purged (all of it, or the messages matching `subject`, maybe only
        below a sequence or but the newest few): call after the store's purge. As nats-server
        2.10 does, a consumer whose every filter lies within the purged subject moves to the
        first message the purge left of that subject (or past the stream's last sequence when
        none is left): its position goes there, and what it had pending below counts as
        acknowledged (no advisory). Other consumers lose only the pending messages that went
        (as for any removal, see `_reconcile_pending`)."""
        if self.closed:
            return
        store = self.stream.store
        if subject is not None and subject != ">":
            if not all(is_subset(f, subject) for f in self.filters):
                self.on_removed()
                return
            left = store.load_next(store.first_seq, (subject,))
            first = left.seq if left is not None else store.last_seq + 1
        else:
            first = store.first_seq
        if first - 1 > self.state.floor_sseq or first > self.state.cursor:
            self._record((PURGE, first))
            self._ahead.clear()
        self.on_removed()
        self._kick()

    def needs(self, seq: int, subject: str) -> bool:
        """Whether this consumer has still to deliver or see acknowledged `seq` (retention)."""
        if not self.matches(subject):
            return False
        if seq in self.state.pending:
            return True
        return seq >= self.state.cursor

    def matches(self, subject: str) -> bool:
        if self._all:
            return True
        encoded = subject.encode()
        return any(subject_matches(f.encode(), encoded) for f in self.filters)

    # Delivery

    def _pump(self) -> None:
        self._pump_scheduled = False
        if self.closed:
            return
        try:
            if self.is_push:
                self._pump_push()
            else:
                self._pump_pull()
        except (StoreError, OSError) as exc:
            logger.error("JetStream consumer '%s > %s' delivery failed: %s",
                         self.stream.config.name, self.name, exc)

    def _pump_push(self) -> None:
        target = self.config.deliver_subject.encode()
        while self.active and not self._stalled():
            if self._throttled():
                return
            item = self._next()
            if not item:  # nothing due (without max_bytes never False)
                return
            msg, dc = item
            if dc == 1 and self._hold_for_replay(msg):
                return
            size = self._deliver(msg, dc, target)
            if self.config.rate_limit_bps:
                # The next delivery waits until this one's bits fit the rate.
                self._not_before = self.loop.time() + size * 8 / self.config.rate_limit_bps

    def _throttled(self) -> bool:
        wait = self._not_before - self.loop.time()
        if wait <= 0:
            return False
        if self._wake_timer is None:
            self._wake_timer = self.loop.call_later(wait, self._wake)
        return True

    def _hold_for_replay(self, msg: StoredMessage) -> bool:
        """replay_policy "original": keep the spacing the messages were published with."""
        if self.config.replay_policy != "original" or not self._replay_last_ts:
            self._replay_last_ts = msg.ts
            return False
        due = self._last_delivery + (msg.ts - self._replay_last_ts) / NANOS
        if due <= self.loop.time():
            self._replay_last_ts = msg.ts
            return False
        self._not_before = due
        self._throttled()
        return True

    def _wake(self) -> None:
        self._wake_timer = None
        self._kick()

    def _pump_pull(self) -> None:
        now = self.loop.time()
        # Interest cannot change during this (synchronous) pass: check each request once.
        checked: set[int] = set()
        while self.waiting:
            request = self.waiting[0]
            if id(request) not in checked:
                if request.expires and now >= request.expires:
                    self.waiting.popleft()
                    self._expire_request(request)
                    continue
                if not self.bus.has_interest(request.reply):
                    self.waiting.popleft()
                    self._end_request(request)
                    continue
                checked.add(id(request))
            item = self._next(request.max_bytes - request.bytes_sent if request.max_bytes else 0,
                              len(request.reply))
            if item is None:
                # no_wait ends when nothing is left now; with `expires` it first waits for one.
                if request.no_wait and (not request.expires or request.sent):
                    self.waiting.popleft()
                    self._end_request(request)
                    if request.sent:
                        self._status(request.reply, "408", "Request Timeout",
                                     self._pending_headers(request))
                    else:
                        self._status(request.reply, "404", "No Messages")
                    continue
                return
            if item is False:  # the next message does not fit the request's max_bytes
                self.waiting.popleft()
                self._end_request(request)
                self._status(request.reply, "409", "Message Size Exceeds MaxBytes",
                             self._pending_headers(request))
                continue
            msg, dc = item
            size = self._deliver(msg, dc, request.reply)
            request.sent += 1
            request.bytes_sent += size
            if request.sent >= request.batch:
                self.waiting.popleft()
                self._end_request(request)
                if request.max_bytes and request.bytes_sent < request.max_bytes:
                    self._status(request.reply, "409", "Batch Completed",
                                 self._pending_headers(request))
            elif len(self.waiting) > 1:
                self.waiting.rotate(-1)  # round robin, one message at a time, as nats-server

    def _next(self, max_bytes: int = 0, reply_len: int = 0
              ) -> tuple[StoredMessage, int] | Literal[False] | None:
        """The next message to deliver and its delivery count: redeliveries first. False when
        it would not fit `max_bytes` (counted as nats-server does: subject, ack reply, body)."""
        state = self.state
        while self._redeliver:
            sseq = self._redeliver[0]
            if sseq not in state.pending:
                self._redeliver.popleft()
                self._queued.discard(sseq)
                continue
            dc = state.deliveries(sseq) + 1
            if 0 < self.config.max_deliver < dc:
                self._redeliver.popleft()
                self._queued.discard(sseq)
                self._max_deliveries(sseq, dc - 1)
                continue
            msg = self._load(sseq)
            if msg is None:
                self._redeliver.popleft()
                self._terminate_removed(sseq)  # it left the stream meanwhile
                continue
            if max_bytes and self._wire_size(msg) > max_bytes:
                return False
            self._redeliver.popleft()
            self._queued.discard(sseq)
            return msg, dc
        if self._at_max_ack_pending():
            if self.stream.store.removals != self._removals_below:
                self._reconcile_below_first()  # what left the stream no longer counts
            if self._at_max_ack_pending():
                return None
        msg = self._next_new()
        if msg is None:
            return None
        if max_bytes and self._wire_size(msg) > max_bytes:
            return False
        return msg, 1

    def _wire_size(self, msg: StoredMessage) -> int:
        # An estimate of the ack reply's length is enough: only max_bytes limits use it.
        return len(msg.subject) + len(self._ack_prefix) + 40 + len(msg.hdr) + len(msg.data)

    def _next_new(self) -> StoredMessage | None:
        durable = self.stream.durable_seq
        while self._lps:
            sseq = self._lps[0]
            if sseq > durable:
                return None
            self._lps.popleft()
            msg = self._load(sseq)
            if msg is not None:
                return msg
        ahead = self._read_ahead()
        if ahead and ahead[0].seq <= durable:
            return ahead[0]  # stays in the read-ahead until delivery moves the cursor past it
        # Nothing for this consumer up to the (durable) end of the stream. nats-server's search
        # for the next message ends at the stream's last sequence and moves the consumer past
        # it: a caught-up filtered consumer reports that sequence as delivered.
        end = min(durable, self.stream.store.last_seq)
        if end >= self.state.cursor:
            self._record((SKIP, end))
        return None

    def _read_ahead(self) -> deque[StoredMessage]:
        """The next matching messages from the cursor, read in batches (one store call per
        READ_AHEAD messages). Valid while nothing left the store since it was read."""
        ahead = self._ahead
        store = self.stream.store
        if ahead and store.removals != self._ahead_removals:
            ahead.clear()
        cursor = self.state.cursor
        while ahead and ahead[0].seq < cursor:
            ahead.popleft()
        while not ahead and cursor <= self.stream.durable_seq:
            try:
                ahead.extend(store.load_batch(cursor, self.filters, READ_AHEAD))
            except CorruptRecord as exc:
                # Never delivered: step over the damaged record (the stream reports it lost).
                logger.error("JetStream consumer '%s > %s': skipping %s", self.stream.config.name,
                             self.name, exc)
                self._record((SKIP, max(exc.seq, cursor)))
                cursor = self.state.cursor
                continue
            self._ahead_removals = store.removals
            break
        return ahead

    def _load(self, sseq: int) -> StoredMessage | None:
        try:
            return self.stream.store.load(sseq)
        except CorruptRecord as exc:
            logger.error("JetStream consumer '%s > %s': %s (not delivered)",
                         self.stream.config.name, self.name, exc)
            return None

    def _deliver(self, msg: StoredMessage, dc: int, target: bytes) -> int:
        first = dc == 1
        ts = now_ns()
        self._record((DELIVER, msg.seq, dc, ts))
        if first and self._num_pending:
            self._num_pending -= 1
        pending = self.num_pending()
        reply = self._ack_prefix + b"%d.%d.%d.%d.%d" % (dc, msg.seq, self.state.delivered_cseq,
                                                        msg.ts, pending)
        hdr, data = msg.hdr, msg.data
        if self.config.headers_only:
            hdr = h.merge(hdr, [("Nats-Msg-Size", str(len(data)))])
            data = b""
        payload = hdr + data if hdr else data
        subject = msg.subject.encode()
        self.bus.deliver_as(target, subject, reply, len(hdr) if hdr else -1, payload)
        self.last_active = ts
        self._last_delivery = self.loop.time()
        if self.is_push and self.config.flow_control:
            self._fc_bytes += len(payload)
            self._maybe_request_flow_control()
        if self.acks_required:
            if self._ack_timer is None:
                self._schedule_ack_timer()
        elif self.stream.config.retention != "limits":
            self.stream.on_acked(self, [msg.seq])  # AckNone: delivered is acknowledged
        return len(subject) + len(reply) + len(payload)

    def num_pending(self) -> int:
        store = self.stream.store
        if self._num_pending is None or store.removals != self._removals_seen:
            self._removals_seen = store.removals
            self._num_pending = len(self._lps) + store.num_pending(self.state.cursor,
                                                                   self.filters)
        return self._num_pending

    # State changes

    def _record(self, op: tuple[int, ...]) -> None:
        self.state.apply(op)
        self.log.append(encode_op(op))
        self._logged += 1
        if self._logged >= COMPACT_CHECK:
            self._logged = 0
            if self.log.size() > COMPACT_AFTER:
                self.log.compact(self.state.snapshot())

    # Acks

    def _on_ack(self, subject: bytes, reply: bytes, hdr: int, payload: bytes) -> None:
        # $JS.ACK.<stream>.<consumer>.<dc>.<sseq>.<cseq>.<ts>.<pending>: the last five tokens.
        tokens = subject.rsplit(b".", 5)
        if len(tokens) < 6:
            return
        try:
            dc, sseq = int(tokens[1]), int(tokens[2])
        except ValueError:
            return
        try:
            cseq = int(tokens[3])
        except ValueError:
            cseq = 0
        body = payload[hdr:] if hdr > 0 else payload
        stalled = self._at_max_ack_pending()
        if not body and not reply:  # the common case: a plain ack
            self._ack(sseq, cseq)
            if stalled and not self._at_max_ack_pending():
                self._kick()
            return
        kind, _, arg = body.strip().partition(b" ")
        if kind in (b"", b"+ACK", b"+OK"):
            self._ack(sseq, cseq)
        elif kind == b"-NAK":
            self._nak(sseq, dc, cseq, arg.strip())
        elif kind == b"+WPI":
            if sseq in self.state.pending:
                self._record((NAK, sseq, now_ns()))
        elif kind == b"+TERM":
            self._term(sseq, dc, cseq, arg.strip().decode("utf-8", "replace"))
        elif kind == b"+NXT":
            self._ack(sseq, cseq)
            if reply and not self.is_push:
                self._on_next(b"", reply, -1, arg)
            reply = b""
        # Anything else changes nothing, but is still answered, as nats-server does.
        self.last_active = now_ns()
        if reply:
            self.log.after_durable(self._ack_reply(reply))
        if stalled and not self._at_max_ack_pending():
            self._kick()  # as nats-server: an ack wakes delivery when it frees max_ack_pending

    def _at_max_ack_pending(self) -> bool:
        return self.acks_required and 0 < self.config.max_ack_pending <= len(self.state.pending)

    def _ack_reply(self, reply: bytes) -> Callable[[BaseException | None], None]:
        """An ack with a reply (AckSync) is confirmed once the ack is durable (synced, or
        committed by the consumer's group); if it is not, the confirmation would be false, so
        nothing is sent and the client's timeout lets it ack again."""
        def send(error: BaseException | None) -> None:
            if error is None:
                self.bus.publish_internal(reply)
        return send

    def _ack(self, sseq: int, cseq: int) -> None:
        """An acknowledgement of stream seq `sseq`, delivered as consumer seq `cseq`."""
        state = self.state
        if not self.acks_required:
            return
        if self.config.ack_policy == "all":
            self._ack_all(sseq, cseq)
            return
        if sseq not in state.pending:
            # nats-server: an ack while nothing is pending still brings the floor up to
            # `delivered` (past what the filter skipped since).
            if not state.pending and sseq < state.cursor and (
                    state.floor_cseq, state.floor_sseq) != (state.delivered_cseq,
                                                            state.cursor - 1):
                self._record((ACK, sseq))
            return
        self._record((ACK, sseq))
        self.last_ack = self.last_active = now_ns()
        if self.stream.config.retention != "limits":
            self.stream.on_acked(self, [sseq])

    def _ack_all(self, sseq: int, cseq: int) -> None:
        """AckAll: the floor becomes this delivery (consumer seq from the ack subject, as
        nats-server takes it), everything pending up to `sseq` is acknowledged."""
        state = self.state
        if not 0 < cseq <= state.delivered_cseq or sseq >= state.cursor:
            pending = state.pending.get(sseq)
            if pending is None:
                return
            cseq = pending.cseq  # a malformed ack subject: the pending record says
        if cseq <= state.floor_cseq or sseq <= state.floor_sseq:
            return
        acked = [s for s in state.pending if s <= sseq]
        self._record((ACK_ALL, sseq, cseq))
        self.last_ack = now_ns()
        if acked:
            self.stream.on_acked(self, acked)

    def _nak(self, sseq: int, dc: int, cseq: int, arg: bytes) -> None:
        if sseq not in self.state.pending:
            return
        delay = _nak_delay(arg)
        if delay:
            at = now_ns() - self._ack_wait(dc) + delay
            self._record((NAK, sseq, at))
            self._schedule_ack_timer(delay / NANOS)
        else:
            self._queue_redelivery(sseq)
        self._advise("nak", "CONSUMER.MSG_NAKED", sseq, dc, cseq=cseq)

    def _term(self, sseq: int, dc: int, cseq: int, reason: str) -> None:
        """Stop redelivering `sseq`: acknowledged as the ack policy acknowledges (with AckAll,
        everything up to it), and a terminated advisory."""
        pending = self.state.pending.get(sseq)
        if pending is None:
            return
        if self.config.ack_policy == "all":
            self._ack_all(sseq, cseq or pending.cseq)
        else:
            self._record((TERM, sseq))
            self.last_ack = now_ns()
            self.stream.on_acked(self, [sseq])
        self._advise("terminated", "CONSUMER.MSG_TERMINATED", sseq, dc, reason,
                     cseq or pending.cseq)

    # Pending messages that left the stream

    def _schedule_reconcile(self) -> None:
        if not self._reconcile_scheduled and not self.closed and self.state.pending:
            self._reconcile_scheduled = True
            self.loop.call_soon(self._reconcile_below_first)

    def _reconcile_below_first(self) -> None:
        """What is pending below the stream's first sequence left it (purge, limits, age,
        retention): terminated as nats-server terminates a pending message the stream
        removed. (Those removed inside the stream are found by `_reconcile_pending`.)"""
        self._reconcile_scheduled = False
        if self.closed:
            return
        self._removals_below = self.stream.store.removals
        first = self.stream.store.first_seq
        below = []
        for sseq in self.state.pending:  # in sseq order
            if sseq >= first:
                break
            below.append(sseq)
        for sseq in below:
            self._terminate_removed(sseq)

    def _reconcile_pending(self) -> None:
        """Terminate every pending message that is no longer in the stream. Reads each pending
        message still above the stream's first sequence (a store has no cheaper test), so it
        runs only for consumer info, and only once something left the store since the last
        time; a redelivery finds the others."""
        store = self.stream.store
        if self.closed or store.removals == self._removals_reconciled:
            return
        self._removals_reconciled = store.removals
        first = store.first_seq
        gone = [s for s in self.state.pending if s < first or self._load(s) is None]
        for sseq in gone:
            self._terminate_removed(sseq)

    def _terminate_removed(self, sseq: int) -> None:
        pending = self.state.pending.get(sseq)
        if pending is None:
            return
        dc = self.state.deliveries(sseq)
        self._queued.discard(sseq)
        if self.config.ack_policy == "all":
            if pending.cseq > self.state.floor_cseq and sseq > self.state.floor_sseq:
                self._record((ACK_ALL, sseq, pending.cseq))
            else:
                self._record((TERM, sseq))
        else:
            self._record((TERM, sseq))
        self._advise("terminated", "CONSUMER.MSG_TERMINATED", sseq, dc, UNACKED_REMOVED,
                     pending.cseq)

    def _max_deliveries(self, sseq: int, deliveries: int) -> None:
        # The message stays in the stream (dead-letter it from the advisory); stop tracking it.
        self._record((DROP, sseq))
        if sseq in self._exceeded:
            return
        self._exceeded.add(sseq)
        body = {"type": ADVISORY_PREFIX + "max_deliver", "id": nuid(),
                "timestamp": format_ns(now_ns()), "stream": self.stream.config.name,
                "consumer": self.name, "stream_seq": sseq, "deliveries": deliveries}
        if self.js.domain:
            body["domain"] = self.js.domain
        self._publish_event(
            f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{self.stream.config.name}.{self.name}",
            body)

    def _advise(self, kind: str, event: str, sseq: int, dc: int, reason: str = "",
                cseq: int = 0) -> None:
        pending = self.state.pending.get(sseq)
        body: JsonObject = {
            "type": ADVISORY_PREFIX + kind, "id": nuid(), "timestamp": format_ns(now_ns()),
            "stream": self.stream.config.name, "consumer": self.name,
            "consumer_seq": cseq or (pending.cseq if pending else 0), "stream_seq": sseq,
            "deliveries": dc}
        if reason:
            body["reason"] = reason
        if self.js.domain:
            body["domain"] = self.js.domain
        self._publish_event(f"$JS.EVENT.ADVISORY.{event}.{self.stream.config.name}.{self.name}",
                            body)

    def _publish_event(self, subject: str, body: JsonObject) -> None:
        encoded = subject.encode()
        if self.bus.has_interest(encoded):
            self.bus.publish_internal(encoded, payload=json.dumps(body).encode())

    # Redelivery timing

    def _ack_wait(self, dc: int) -> int:
        backoff = self.config.backoff
        if backoff:
            return backoff[min(dc - 1, len(backoff) - 1)]
        return self.config.ack_wait

    def _schedule_ack_timer(self, delay: float | None = None) -> None:
        if not self.acks_required or self.closed:
            return
        if delay is None:
            delay = self._next_deadline()
            if delay is None:
                return
        if self._ack_timer is not None:
            if self._ack_timer.when() <= self.loop.time() + delay:
                return
            self._ack_timer.cancel()
        self._ack_timer = self.loop.call_later(max(delay, 0.001), self._check_pending)

    def _next_deadline(self) -> float | None:
        state = self.state
        if not state.pending:
            return None
        now = now_ns()
        soonest = min(p.ts + self._ack_wait(state.deliveries(s)) for s, p in
                      state.pending.items())
        return max(soonest - now, 0) / NANOS

    def _check_pending(self) -> None:
        self._ack_timer = None
        if self.closed:
            return
        now = now_ns()
        state = self.state
        stalled = self._at_max_ack_pending()
        for sseq, pending in list(state.pending.items()):
            if pending.ts + self._ack_wait(state.deliveries(sseq)) <= now:
                self._queue_redelivery(sseq)
        self._schedule_ack_timer()
        if stalled and not self._at_max_ack_pending():
            self._kick()  # max_deliver released some of max_ack_pending

    def _queue_redelivery(self, sseq: int) -> None:
        deliveries = self.state.deliveries(sseq)
        if 0 < self.config.max_deliver <= deliveries:
            # Out of deliveries: tell whoever dead-letters now, not at the next pull.
            self._max_deliveries(sseq, deliveries)
            return
        if sseq not in self._queued:
            self._queued.add(sseq)
            self._redeliver.append(sseq)
            if len(self._redeliver) > 1 and sseq < self._redeliver[-2]:
                self._redeliver = deque(sorted(self._redeliver))
            self._kick()

    # Pull requests

    def _on_next(self, subject: bytes, reply: bytes, hdr: int, payload: bytes) -> None:
        if not reply or self.closed:
            return
        if self.is_push:
            self._status(reply, "409", "Consumer is push based")
            return
        body = payload[hdr:] if hdr > 0 else payload
        request = self._parse_request(reply, body)
        if request is None:
            return
        self.last_active = now_ns()
        cfg = self.config
        if cfg.max_batch and request.batch > cfg.max_batch:
            return self._status(reply, "409", f"Exceeded MaxRequestBatch of {cfg.max_batch}")
        if cfg.max_expires and request.expires and \
                (request.expires - request.received) * NANOS > cfg.max_expires:
            return self._status(reply, "409", "Exceeded MaxRequestExpires of "
                                f"{_go_duration(cfg.max_expires)}")
        if cfg.max_bytes and request.max_bytes > cfg.max_bytes:
            return self._status(reply, "409", f"Exceeded MaxRequestMaxBytes of {cfg.max_bytes}")
        if request.no_wait:
            # As nats-server: answered at once when nothing is left (the consumer does not look
            # for messages, so its position stays), or when waiting requests already claim more
            # than is left.
            left = self.num_pending() + len(self._redeliver)
            if not left and not request.expires:
                return self._status(reply, "404", "No Messages")
            if left and left < sum(r.batch - r.sent for r in self.waiting):
                return self._status(reply, "408", "Requests Pending")
        self._prune_expired()
        if len(self.waiting) >= cfg.max_waiting:
            if not request.heartbeat:
                self._status(reply, "409", "Exceeded MaxWaiting")
            return None
        self.waiting.append(request)
        if request.expires:
            request.timer = self.loop.call_at(request.expires, self._request_expired, request)
        if request.heartbeat:
            request.hb_timer = self.loop.call_later(request.heartbeat, self._request_heartbeat,
                                                    request)
        self._pump()
        return None

    def _parse_request(self, reply: bytes, body: bytes) -> PullRequest | None:
        now = self.loop.time()
        text = body.strip()
        if not text.startswith(b"{"):
            # A number is a batch size; anything else means one message (nats-server's reading).
            batch = int(text) if text.isdigit() else 1
            return PullRequest(reply, max(batch, 1), 0, 0.0, False, 0.0, now)
        try:
            req = json.loads(text)
            if not isinstance(req, dict):
                raise ValueError("not an object")
            batch = int(req.get("batch") or 1)
            expires = int(req.get("expires") or 0)
            max_bytes = int(req.get("max_bytes") or 0)
            heartbeat = int(req.get("idle_heartbeat") or 0)
            no_wait = bool(req.get("no_wait", False))
        except (ValueError, TypeError):
            self._status(reply, "400", "Bad Request")
            return None
        if heartbeat and heartbeat * 2 > expires:
            self._status(reply, "400", "Bad Request - heartbeat value too large")
            return None
        if batch <= 0 or expires < 0 or max_bytes < 0:
            self._status(reply, "400", "Bad Request")
            return None
        deadline = now + expires / NANOS if expires else 0.0
        return PullRequest(reply, batch, max_bytes, deadline, no_wait, heartbeat / NANOS, now)

    def _prune_expired(self) -> None:
        now = self.loop.time()
        alive: deque[PullRequest] = deque()
        for request in self.waiting:
            if request.expires and now >= request.expires:
                self._expire_request(request)
            else:
                alive.append(request)
        self.waiting = alive

    def _request_expired(self, request: PullRequest) -> None:
        request.timer = None
        if request in self.waiting:
            self.waiting.remove(request)
            self._expire_request(request)

    def _expire_request(self, request: PullRequest) -> None:
        self._end_request(request)
        self._status(request.reply, "408", "Request Timeout", self._pending_headers(request))

    def _end_request(self, request: PullRequest) -> None:
        for timer in (request.timer, request.hb_timer):
            if timer is not None:
                timer.cancel()
        request.timer = request.hb_timer = None

    def _request_heartbeat(self, request: PullRequest) -> None:
        request.hb_timer = None
        if request not in self.waiting:
            return
        self._status(request.reply, "100", "Idle Heartbeat", self._last_headers())
        request.hb_timer = self.loop.call_later(request.heartbeat, self._request_heartbeat,
                                                request)

    def _last_headers(self) -> list[tuple[str, str]]:
        return [("Nats-Last-Consumer", str(self.state.delivered_cseq)),
                ("Nats-Last-Stream", str(self.state.delivered_sseq))]

    @staticmethod
    def _pending_headers(request: PullRequest) -> list[tuple[str, str]]:
        return [("Nats-Pending-Messages", str(request.batch - request.sent)),
                ("Nats-Pending-Bytes", str(max(request.max_bytes - request.bytes_sent, 0)))]

    def _status(self, reply: bytes, code: str, text: str,
                extra: list[tuple[str, str]] | None = None) -> None:
        block = h.build(extra or [], code, text)
        self.bus.publish_internal(reply, payload=block, hdr=len(block))

    # Push: interest, heartbeats, flow control

    def _interest(self) -> None:
        was = self.active
        self.active = self._has_interest()
        if self.active and not was:
            self._kick()
        self._check_inactive()

    def _has_interest(self) -> bool:
        # With a deliver group only members of that queue group count (as in nats-server).
        return self.bus.has_interest(self.config.deliver_subject.encode(),
                                        self.config.deliver_group)

    def _heartbeat(self) -> None:
        self._hb_timer = None
        if self.closed:
            return
        interval = self.config.idle_heartbeat / NANOS
        if self.loop.time() - self._last_delivery >= interval * 0.9:
            extra = self._last_headers()
            if self._fc_reply and self._stalled():
                extra.append(("Nats-Consumer-Stalled", self._fc_reply.decode()))
            block = h.build(extra, "100", "Idle Heartbeat")
            self.bus.publish_internal(self.config.deliver_subject.encode(), payload=block,
                                         hdr=len(block))
        self._hb_timer = self.loop.call_later(interval, self._heartbeat)
        self._kick()  # nats-server's delivery loop looks for messages at every heartbeat tick

    def _stalled(self) -> bool:
        return self.config.flow_control and self._fc_bytes >= self._fc_window

    def _maybe_request_flow_control(self) -> None:
        if self._fc_reply or self._fc_bytes < self._fc_window // 2:
            return
        self._fc_reply = b"$JS.FC.%s.%s.%s" % (self.stream.config.name.encode(),
                                                self.name.encode(), os.urandom(2).hex().encode())
        block = h.build([], "100", "FlowControl Request")
        self.bus.publish_internal(self.config.deliver_subject.encode(), reply=self._fc_reply,
                                     payload=block, hdr=len(block))

    def _on_flow_control(self, subject: bytes, reply: bytes, hdr: int, payload: bytes) -> None:
        if subject != self._fc_reply:
            return  # only the latest request counts
        self._fc_reply = b""
        self._fc_bytes = 0
        self._fc_window = min(self._fc_window * 2, FC_MAX_WINDOW)
        self._kick()

    # Inactivity (ephemerals)

    def _inactive_after(self) -> float:
        threshold = self.config.inactive_threshold
        if not threshold and not self.config.durable_name:
            return 5.0
        return threshold / NANOS

    def _check_inactive(self) -> None:
        limit = self._inactive_after()
        if not limit or self.closed:
            return
        idle = (self.is_push and not self.active) or (not self.is_push and not self.waiting)
        if not idle:
            if self._inactive_timer is not None:
                self._inactive_timer.cancel()
                self._inactive_timer = None
            return
        if self._inactive_timer is None:
            self._inactive_timer = self.loop.call_later(limit, self._inactive_expired)

    def _inactive_expired(self) -> None:
        self._inactive_timer = None
        if self.closed:
            return
        idle_for = (now_ns() - self.last_active) / NANOS
        limit = self._inactive_after()
        if self.is_push and self.active:
            return
        if not self.is_push and (self.waiting or idle_for < limit):
            self._inactive_timer = self.loop.call_later(max(limit - idle_for, 0.05),
                                                        self._inactive_expired)
            return
        logger.debug("JetStream consumer '%s > %s' inactive, deleting", self.stream.config.name,
                     self.name)
        self.js.consumer_inactive(self.stream, self.name)

    # Info

    def info(self, now: int = 0) -> JsonObject:
        self._reconcile_pending()
        state = self.state
        return {
            "stream_name": self.stream.config.name,
            "name": self.name,
            "created": format_ns(self.created),
            "config": self.config.to_json(),
            "delivered": {"consumer_seq": state.delivered_cseq,
                          "stream_seq": state.delivered_sseq,
                          **({"last_active": format_ns(self.last_active)}
                             if self.last_active and state.delivered_cseq else {})},
            "ack_floor": {"consumer_seq": state.floor_cseq, "stream_seq": state.floor_sseq,
                          **({"last_active": format_ns(self.last_ack)} if self.last_ack else {})},
            "num_ack_pending": len(state.pending),
            "num_redelivered": len(state.redelivered),
            "num_waiting": len(self.waiting),
            "num_pending": self.num_pending(),
            **({"push_bound": True} if self.is_push and self.active else {}),
            "ts": format_ns(now or now_ns()),
        }

    def close(self) -> None:
        """Server shutdown: stop, persist the state as a snapshot."""
        self.stop("Server Shutdown")
        try:
            self.log.compact(self.state.snapshot())
            self.log.close()
        except (OSError, StoreError) as exc:
            logger.error("JetStream consumer '%s > %s' state not saved: %s",
                         self.stream.config.name, self.name, exc)


def _nak_delay(arg: bytes) -> int:
    """`-NAK <go duration>` or `-NAK {"delay": ns}`; 0 (plain NAK) when absent or unparsable."""
    if not arg:
        return 0
    try:
        if arg.startswith(b"{"):
            return max(int(json.loads(arg).get("delay", 0)), 0)
        return max(parse_go_duration(arg.decode("utf-8", "replace")), 0)
    except (ValueError, TypeError, AttributeError):
        return 0


def _go_duration(ns: int) -> str:
    seconds = ns / NANOS
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{seconds}s"


_NUID_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def nuid() -> str:
    """A 22-character random id, the shape of the NUIDs nats-server puts in events."""
    return "".join(_NUID_ALPHABET[b % 62] for b in os.urandom(22))
