"""A consumer's durable state as a deterministic state machine.

Delivered/ack-floor sequences, the pending (delivered, unacknowledged) messages and redelivery
counts change only through `apply(op)`. Ops are small tuples with a binary encoding, so the same
ops can be appended to a local log (and later replicated through Raft) and replayed after a
restart to reach the same state.

    (DELIVER, sseq, dc, ts)   delivered stream seq `sseq` for the dc-th time at `ts` (new cseq)
    (ACK, sseq)               acknowledged (explicit)
    (ACK_ALL, sseq, cseq)     acknowledged everything up to and including sseq (AckAll); cseq is
                              the consumer seq of the delivery acknowledged (0 in old logs)
    (NAK, sseq, at)           redeliver sseq not before `at` (ns)
    (TERM, sseq)              stop redelivering sseq (treated as acknowledged)
    (DROP, sseq)              max_deliver reached: stop tracking sseq (it stays in the stream)
    (SKIP, sseq)              the cursor moved past sseq: nothing up to it is for this consumer
                              (it did not match the filter, left the stream, or was damaged)
    (PURGE, first)            the stream was purged up to `first` (exclusive)

The position follows nats-server (2.9, and 2.10 on one server). `cursor` is its next sequence to
look at (`o.sseq`), and `delivered.stream_seq` is `cursor - 1`: when the consumer looks for its
next message and none matches up to the stream's last sequence, the cursor moves past that
sequence (SKIP), so a filtered consumer that is caught up reports the stream's last sequence.
The ack floor moves only on acknowledgements (and purges):

* explicit: when nothing is left pending, the floor becomes `delivered` (both sequences), which
  takes it past the messages the filter skipped; otherwise acknowledging the delivery right above
  the floor (by consumer sequence) moves it up to just below the next pending message;
* all: the floor becomes exactly the delivery acknowledged (consumer and stream sequence);
* none: the floor is the last message delivered (a skip does not move it).

A pending message keeps the consumer sequence of its first delivery (nats-server does the same).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

DELIVER = 1
ACK = 2
ACK_ALL = 3
NAK = 4
TERM = 5
DROP = 6
SKIP = 7
PURGE = 8

_OP = struct.Struct("<BQQq")  # kind, sseq, dc, ts/at
_SNAP_HEAD = struct.Struct("<QQQQQI")  # delivered cseq/sseq, floor cseq/sseq, cursor, n pending
_SNAP_PENDING = struct.Struct("<QQqQ")  # sseq, cseq, ts, redelivered


class Pending:
    """One delivered, unacknowledged message (a slots class: one is made per delivery)."""

    __slots__ = ("cseq", "ts")

    def __init__(self, cseq: int, ts: int) -> None:
        self.cseq = cseq  # consumer sequence of the latest delivery
        self.ts = ts  # when it was (last) delivered, ns; the ack deadline counts from here

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pending) and (self.cseq, self.ts) == (other.cseq, other.ts)

    def __repr__(self) -> str:
        return f"Pending(cseq={self.cseq}, ts={self.ts})"


@dataclass
class ConsumerState:
    delivered_cseq: int = 0  # last consumer sequence handed out
    delivered_sseq: int = 0  # last stream sequence delivered for the first time
    floor_cseq: int = 0  # everything at or below is acknowledged
    floor_sseq: int = 0
    cursor: int = 1  # next stream sequence to consider for a first delivery
    pending: dict[int, Pending] = field(default_factory=dict)  # sseq -> Pending, in sseq order
    redelivered: dict[int, int] = field(default_factory=dict)  # sseq -> deliveries - 1
    acks_required: bool = True

    def deliveries(self, sseq: int) -> int:
        return self.redelivered.get(sseq, 0) + 1

    def apply(self, op: tuple[int, ...]) -> None:
        kind = op[0]
        if kind == DELIVER:
            self._deliver(op[1], op[2], op[3])
        elif kind in (ACK, TERM, DROP):
            self._ack(op[1])
        elif kind == ACK_ALL:
            self._ack_all(op[1], op[2] if len(op) > 2 else 0)
        elif kind == NAK:
            pending = self.pending.get(op[1])
            if pending is not None:
                pending.ts = op[2]
        elif kind == SKIP:
            self._skip(op[1])
        elif kind == PURGE:
            self._purge(op[1])

    def _deliver(self, sseq: int, dc: int, ts: int) -> None:
        self.delivered_cseq += 1
        cseq = self.delivered_cseq
        if dc == 1:
            self.delivered_sseq = max(self.delivered_sseq, sseq)
            self.cursor = max(self.cursor, sseq + 1)
        else:
            self.redelivered[sseq] = dc - 1
        if not self.acks_required:
            self.floor_cseq, self.floor_sseq = cseq, max(self.floor_sseq, sseq)
            return
        pending = self.pending.get(sseq)
        if pending is None:
            if sseq <= self.floor_sseq:
                return  # already acknowledged meanwhile (a stale redelivery)
            if self.pending and sseq < next(reversed(self.pending)):
                # Out of order (a message that left pending before): keep sseq order.
                self.pending[sseq] = Pending(cseq, ts)
                self.pending = dict(sorted(self.pending.items()))
            else:
                self.pending[sseq] = Pending(cseq, ts)
        else:
            pending.ts = ts  # a redelivery keeps the consumer seq of the first delivery

    def _ack(self, sseq: int) -> None:
        pending = self.pending.pop(sseq, None)
        self.redelivered.pop(sseq, None)
        if not self.pending:
            # Nothing left: everything delivered is acknowledged, also what the filter skipped.
            self._floor_to_delivered()
        elif pending is not None and pending.cseq == self.floor_cseq + 1:
            self.floor_cseq, self.floor_sseq = pending.cseq, max(self.floor_sseq, sseq)
            above = next((s for s in self.pending if s > sseq), 0)
            if above:
                # Up to just below the next message still pending.
                self.floor_cseq = max(self.floor_cseq, self.pending[above].cseq - 1)
                self.floor_sseq = max(self.floor_sseq, above - 1)

    def _floor_to_delivered(self) -> None:
        self.floor_cseq = self.delivered_cseq
        self.floor_sseq = max(self.floor_sseq, self.cursor - 1)

    def _ack_all(self, sseq: int, cseq: int) -> None:
        if not cseq:  # an op from before AckAll recorded the delivery's consumer seq
            cseqs = [p.cseq for s, p in self.pending.items() if s <= sseq]
            if not cseqs:
                return
            cseq = max(cseqs)
        if cseq <= self.floor_cseq or sseq <= self.floor_sseq:
            return
        self.floor_cseq, self.floor_sseq = cseq, sseq
        for s in [s for s in self.pending if s <= sseq]:
            del self.pending[s]
        for s in [s for s in self.redelivered if s <= sseq]:
            del self.redelivered[s]

    def _skip(self, sseq: int) -> None:
        self.cursor = max(self.cursor, sseq + 1)
        self.delivered_sseq = max(self.delivered_sseq, sseq)

    def _purge(self, first: int) -> None:
        """Everything below `first` left the stream: the position moves to it, and messages
        pending below it count as acknowledged (the floor takes their consumer seqs)."""
        self._skip(first - 1)
        if self.floor_sseq >= first:
            return
        self.floor_sseq = first - 1
        for s in [s for s in self.pending if s < first]:
            self.floor_cseq = max(self.floor_cseq, self.pending.pop(s).cseq)
            self.redelivered.pop(s, None)
        self.delivered_cseq = max(self.delivered_cseq, self.floor_cseq)
        for s in [s for s in self.redelivered if s < first]:
            del self.redelivered[s]

    # Encoding

    @staticmethod
    def encode_op(op: tuple[int, ...]) -> bytes:
        kind = op[0]
        if kind == DELIVER:
            return _OP.pack(kind, op[1], op[2], op[3])
        if kind == NAK:
            return _OP.pack(kind, op[1], 0, op[2])
        if kind == ACK_ALL and len(op) > 2:
            return _OP.pack(kind, op[1], op[2], 0)
        return _OP.pack(kind, op[1], 0, 0)

    @staticmethod
    def decode_op(data: bytes) -> tuple[int, ...]:
        kind, a, b, c = _OP.unpack(data)
        if kind == DELIVER:
            return (kind, a, b, c)
        if kind == NAK:
            return (kind, a, c)
        if kind == ACK_ALL:
            return (kind, a, b)
        return (kind, a)

    def snapshot(self) -> bytes:
        parts = [_SNAP_HEAD.pack(self.delivered_cseq, self.delivered_sseq, self.floor_cseq,
                                 self.floor_sseq, self.cursor, len(self.pending))]
        parts += [_SNAP_PENDING.pack(s, p.cseq, p.ts, self.redelivered.get(s, 0))
                  for s, p in self.pending.items()]
        return b"".join(parts)

    @classmethod
    def restore(cls, data: bytes, acks_required: bool) -> ConsumerState:
        state = cls(acks_required=acks_required)
        (state.delivered_cseq, state.delivered_sseq, state.floor_cseq, state.floor_sseq,
         state.cursor, count) = _SNAP_HEAD.unpack_from(data, 0)
        offset = _SNAP_HEAD.size
        for _ in range(count):
            sseq, cseq, ts, redelivered = _SNAP_PENDING.unpack_from(data, offset)
            offset += _SNAP_PENDING.size
            state.pending[sseq] = Pending(cseq, ts)
            if redelivered:
                state.redelivered[sseq] = redelivered
        return state

    OP_SIZE = _OP.size
