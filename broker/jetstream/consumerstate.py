"""A consumer's durable state as a deterministic state machine.

Delivered/ack-floor sequences, the pending (delivered, unacknowledged) messages and redelivery
counts change only through `apply(op)`. Ops are small tuples with a binary encoding, so the same
ops can be appended to a local log (and later replicated through Raft) and replayed after a
restart to reach the same state.

    (DELIVER, sseq, dc, ts)   delivered stream seq `sseq` for the dc-th time at `ts` (new cseq)
    (ACK, sseq)               acknowledged (explicit)
    (ACK_ALL, sseq)           acknowledged everything up to and including sseq (AckAll)
    (NAK, sseq, at)           redeliver sseq not before `at` (ns)
    (TERM, sseq)              stop redelivering sseq (treated as acknowledged)
    (DROP, sseq)              max_deliver reached: stop tracking sseq (it stays in the stream)
    (SKIP, sseq)              the cursor moved past sseq (it left the stream, or was filtered)
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
            self._ack_all(op[1])
        elif kind == NAK:
            pending = self.pending.get(op[1])
            if pending is not None:
                pending.ts = op[2]
        elif kind == SKIP:
            self._skip(op[1])

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
            pending.cseq, pending.ts = cseq, ts

    def _ack(self, sseq: int) -> None:
        pending = self.pending.pop(sseq, None)
        self.redelivered.pop(sseq, None)
        if pending is None:
            return
        self._advance_floor(pending.cseq, sseq)

    def _advance_floor(self, cseq: int, sseq: int) -> None:
        if not self.pending:
            self.floor_cseq = self.delivered_cseq
            self.floor_sseq = max(self.floor_sseq, self.cursor - 1)
            return
        first_sseq, first = next(iter(self.pending.items()))
        # Everything below the oldest pending message is acknowledged.
        if first_sseq - 1 > self.floor_sseq:
            self.floor_sseq = first_sseq - 1
            self.floor_cseq = max(self.floor_cseq, first.cseq - 1)

    def _ack_all(self, sseq: int) -> None:
        acked = [s for s in self.pending if s <= sseq]
        for s in acked:
            del self.pending[s]
            self.redelivered.pop(s, None)
        if sseq > self.floor_sseq:
            self.floor_sseq = min(sseq, self.cursor - 1)
            cseqs = [p.cseq for p in self.pending.values()]
            self.floor_cseq = (min(cseqs) - 1) if cseqs else self.delivered_cseq
        self._advance_floor(0, 0)

    def _skip(self, sseq: int) -> None:
        self.cursor = max(self.cursor, sseq + 1)
        if not self.pending:
            self.floor_sseq = max(self.floor_sseq, self.cursor - 1)

    # Encoding

    @staticmethod
    def encode_op(op: tuple[int, ...]) -> bytes:
        kind = op[0]
        if kind == DELIVER:
            return _OP.pack(kind, op[1], op[2], op[3])
        if kind == NAK:
            return _OP.pack(kind, op[1], 0, op[2])
        return _OP.pack(kind, op[1], 0, 0)

    @staticmethod
    def decode_op(data: bytes) -> tuple[int, ...]:
        kind, a, b, c = _OP.unpack(data)
        if kind == DELIVER:
            return (kind, a, b, c)
        if kind == NAK:
            return (kind, a, c)
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
