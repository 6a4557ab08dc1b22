"""The consumer state machine against a brute-force model, and its replay after a restart."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from broker.jetstream.consumerstate import (
    ACK,
    ACK_ALL,
    DELIVER,
    DROP,
    NAK,
    TERM,
    ConsumerState,
)

STREAM_LAST = 30


class Model:
    """What the counters must say, computed from the history of deliveries and acks."""

    def __init__(self) -> None:
        self.delivered: list[int] = []  # stream seqs, in delivery order (cseq = index + 1)
        self.outstanding: set[int] = set()
        self.deliveries: dict[int, int] = {}
        self.cursor = 1

    def deliver_new(self) -> int | None:
        if self.cursor > STREAM_LAST:
            return None
        seq = self.cursor
        self.cursor += 1
        self._deliver(seq)
        return seq

    def _deliver(self, seq: int) -> None:
        self.delivered.append(seq)
        self.outstanding.add(seq)
        self.deliveries[seq] = self.deliveries.get(seq, 0) + 1

    def floor(self) -> int:
        """Every stream seq below the oldest outstanding one is acknowledged."""
        if not self.outstanding:
            return self.cursor - 1
        return min(self.outstanding) - 1


ops = st.lists(st.tuples(st.sampled_from(["new", "ack", "nak", "term", "redeliver", "ackall",
                                          "drop"]),
                         st.integers(min_value=0, max_value=40)), max_size=80)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_counters_match_the_model_and_replay_reproduces_the_state(history):
    state = ConsumerState(acks_required=True)
    model = Model()
    log: list[bytes] = []
    ts = 1

    def apply(op: tuple[int, ...]) -> None:
        state.apply(op)
        log.append(ConsumerState.encode_op(op))

    for kind, pick in history:
        ts += 1
        outstanding = sorted(model.outstanding)
        target = outstanding[pick % len(outstanding)] if outstanding else None
        if kind == "new":
            seq = model.deliver_new()
            if seq is not None:
                apply((DELIVER, seq, 1, ts))
        elif target is None:
            continue
        elif kind == "redeliver":
            model._deliver(target)
            apply((DELIVER, target, model.deliveries[target], ts))
        elif kind in ("ack", "term", "drop"):
            model.outstanding.discard(target)
            apply(({"ack": ACK, "term": TERM, "drop": DROP}[kind], target))
        elif kind == "ackall":
            model.outstanding = {s for s in model.outstanding if s > target}
            apply((ACK_ALL, target))
        elif kind == "nak":
            apply((NAK, target, ts + 1000))
        # Invariants after every operation.
        assert set(state.pending) == model.outstanding
        assert state.floor_sseq == model.floor()
        assert state.delivered_cseq == len(model.delivered)
        assert list(state.pending) == sorted(state.pending)
        for seq in state.pending:
            assert state.deliveries(seq) == model.deliveries[seq]
        assert state.floor_sseq >= 0 and state.floor_cseq >= 0

    # A restart: snapshot + replay, or replay alone, reaches the same state.
    replayed = ConsumerState(acks_required=True)
    for record in log:
        replayed.apply(ConsumerState.decode_op(record))
    restored = ConsumerState.restore(state.snapshot(), acks_required=True)
    for other in (replayed, restored):
        assert other.snapshot() == state.snapshot()
        assert set(other.pending) == set(state.pending)


def test_ack_none_moves_the_floor_on_delivery():
    state = ConsumerState(acks_required=False)
    state.apply((DELIVER, 1, 1, 10))
    state.apply((DELIVER, 2, 1, 11))
    assert (state.floor_cseq, state.floor_sseq, state.pending) == (2, 2, {})


def test_a_stale_redelivery_of_an_acked_message_is_not_pending_again():
    state = ConsumerState(acks_required=True)
    state.apply((DELIVER, 1, 1, 10))
    state.apply((ACK, 1))
    state.apply((DELIVER, 1, 2, 12))
    assert not state.pending and state.floor_sseq == 1
