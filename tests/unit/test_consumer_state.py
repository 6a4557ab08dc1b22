"""The consumer state machine against brute-force models, its replay after a restart, and the
position of a filtered consumer (nats-server 2.9 / 2.10 rules, see consumerstate.py) in a
JetStream running over an in-memory bus."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.jetstream.api import JetStreamApi
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
from broker.jetstream.jetstream import JetStream
from config.options import JetStreamOptions
from tests.unit.jsfakes import MemoryBus, Sent

STREAM_LAST = 30
MS = 1_000_000


class Model:
    """What the counters must say, computed from the history of deliveries and acks."""

    def __init__(self) -> None:
        self.delivered: list[int] = []  # stream seqs, in delivery order (cseq = index + 1)
        self.first_cseq: dict[int, int] = {}  # stream seq -> cseq of its first delivery
        self.last_cseq: dict[int, int] = {}  # stream seq -> cseq of its latest delivery
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

    def skip(self, n: int) -> int:
        """The consumer looked past `n` sequences it does not take; the last one skipped."""
        self.cursor += n
        return self.cursor - 1

    def _deliver(self, seq: int) -> None:
        self.delivered.append(seq)
        self.first_cseq.setdefault(seq, len(self.delivered))
        self.last_cseq[seq] = len(self.delivered)
        self.outstanding.add(seq)
        self.deliveries[seq] = self.deliveries.get(seq, 0) + 1

    def explicit_floor(self, floor: tuple[int, int], acked: int | None) -> tuple[int, int]:
        """Where acknowledging `acked` (None: something not outstanding) takes the floor (as
        nats-server moves it): with nothing outstanding, to everything delivered and what the
        consumer looked past; acknowledging the first delivery above the floor, to below the
        next outstanding message; anything else leaves it."""
        if not self.outstanding:
            return len(self.delivered), self.cursor - 1
        if acked is None or self.first_cseq[acked] != floor[0] + 1:
            return floor
        above = [s for s in self.outstanding if s > acked]
        if not above:
            return self.first_cseq[acked], acked
        return self.first_cseq[min(above)] - 1, min(above) - 1


def replay_reaches_the_same_state(state: ConsumerState, log: list[bytes]) -> None:
    """A restart: snapshot + replay, or replay alone, reaches the same state."""
    replayed = ConsumerState(acks_required=state.acks_required)
    for record in log:
        replayed.apply(ConsumerState.decode_op(record))
    restored = ConsumerState.restore(state.snapshot(), acks_required=state.acks_required)
    for other in (replayed, restored):
        assert other.snapshot() == state.snapshot()
        assert set(other.pending) == set(state.pending)


explicit_ops = st.lists(st.tuples(st.sampled_from(["new", "ack", "nak", "term", "redeliver",
                                                   "drop", "skip", "stale"]),
                                  st.integers(min_value=0, max_value=40)), max_size=80)


@settings(max_examples=300, deadline=None)
@given(explicit_ops)
def test_explicit_acks_match_the_model_and_replay_reproduces_the_state(history):
    state = ConsumerState(acks_required=True)
    model = Model()
    floor = (0, 0)  # moves only when something is acknowledged
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
        elif kind == "skip":
            apply((SKIP, model.skip(pick % 4 + 1)))
        elif kind == "stale":
            # An ack of something not pending: with nothing pending the floor follows
            # `delivered`, as nats-server moves it (the consumer records it only then).
            if not model.outstanding:
                apply((ACK, max(model.cursor - 1, 1)))
                floor = model.explicit_floor(floor, None)
        elif target is None:
            continue
        elif kind == "redeliver":
            model._deliver(target)
            apply((DELIVER, target, model.deliveries[target], ts))
        elif kind in ("ack", "term", "drop"):
            model.outstanding.discard(target)
            apply(({"ack": ACK, "term": TERM, "drop": DROP}[kind], target))
            floor = model.explicit_floor(floor, target)
        elif kind == "nak":
            apply((NAK, target, ts + 1000))
        # Invariants after every operation.
        assert set(state.pending) == model.outstanding
        assert (state.floor_cseq, state.floor_sseq) == floor
        # Nothing at or below the floor is still outstanding; the floor is never past delivered.
        assert all(s > floor[1] for s in model.outstanding)
        assert floor[0] <= state.delivered_cseq and floor[1] <= state.cursor - 1
        assert state.delivered_cseq == len(model.delivered)
        assert (state.cursor, state.delivered_sseq) == (model.cursor, model.cursor - 1)
        assert list(state.pending) == sorted(state.pending)
        for seq, pending in state.pending.items():
            assert state.deliveries(seq) == model.deliveries[seq]
            assert pending.cseq == model.first_cseq[seq]  # a redelivery keeps it
        assert len(state.redelivered) == sum(model.deliveries[s] > 1 for s in model.outstanding)
    replay_reaches_the_same_state(state, log)


ack_all_ops = st.lists(st.tuples(st.sampled_from(["new", "ackall", "redeliver", "skip"]),
                                 st.integers(min_value=0, max_value=40)), max_size=80)


@settings(max_examples=200, deadline=None)
@given(ack_all_ops)
def test_ack_all_floor_is_the_delivery_acknowledged(history):
    state = ConsumerState(acks_required=True)
    model = Model()
    floor = (0, 0)
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
        elif kind == "skip":
            apply((SKIP, model.skip(pick % 4 + 1)))
        elif target is None:
            continue
        elif kind == "redeliver":
            model._deliver(target)
            apply((DELIVER, target, model.deliveries[target], ts))
        elif kind == "ackall":
            # The ack subject carries the consumer seq of the delivery being acknowledged.
            cseq = model.last_cseq[target]
            if cseq > floor[0] and target > floor[1]:
                floor = (cseq, target)
                model.outstanding = {s for s in model.outstanding if s > target}
            apply((ACK_ALL, target, cseq))
        assert set(state.pending) == model.outstanding
        assert (state.floor_cseq, state.floor_sseq) == floor
        assert (state.cursor, state.delivered_sseq) == (model.cursor, model.cursor - 1)
    replay_reaches_the_same_state(state, log)


def test_ack_none_moves_the_floor_on_delivery_only():
    state = ConsumerState(acks_required=False)
    state.apply((DELIVER, 1, 1, 10))
    state.apply((DELIVER, 2, 1, 11))
    assert (state.floor_cseq, state.floor_sseq, state.pending) == (2, 2, {})
    state.apply((SKIP, 5))  # looked past 3..5: `delivered` moves, the floor does not
    assert (state.delivered_cseq, state.delivered_sseq, state.cursor) == (2, 5, 6)
    assert (state.floor_cseq, state.floor_sseq) == (2, 2)


def test_a_stale_redelivery_of_an_acked_message_is_not_pending_again():
    state = ConsumerState(acks_required=True)
    state.apply((DELIVER, 1, 1, 10))
    state.apply((ACK, 1))
    state.apply((DELIVER, 1, 2, 12))
    assert not state.pending and state.floor_sseq == 1


def test_explicit_floor_reaches_what_the_filter_skipped_once_nothing_is_pending():
    state = ConsumerState(acks_required=True)
    state.apply((DELIVER, 1, 1, 10))
    state.apply((SKIP, 3))  # 2 and 3 are not for this consumer
    assert (state.delivered_cseq, state.delivered_sseq) == (1, 3)
    assert (state.floor_cseq, state.floor_sseq) == (0, 0)
    state.apply((ACK, 1))
    assert (state.floor_cseq, state.floor_sseq) == (1, 3)
    # Skipping on with nothing pending leaves the floor until the next acknowledgement.
    state.apply((SKIP, 4))
    assert (state.floor_cseq, state.floor_sseq) == (1, 3)
    state.apply((ACK, 1))  # acknowledging again (nothing pending): the floor follows
    assert (state.floor_cseq, state.floor_sseq) == (1, 4)


def test_ack_all_takes_the_consumer_seq_of_the_redelivery():
    state = ConsumerState(acks_required=True)
    for seq in (1, 2, 3):
        state.apply((DELIVER, seq, 1, seq))
    state.apply((DELIVER, 2, 2, 9))  # redelivered as cseq 4
    state.apply((ACK_ALL, 1, 1))
    assert (state.floor_cseq, state.floor_sseq, list(state.pending)) == (1, 1, [2, 3])
    state.apply((ACK_ALL, 2, 4))
    assert (state.floor_cseq, state.floor_sseq, list(state.pending)) == (4, 2, [3])
    assert not state.redelivered
    state.apply((ACK_ALL, 3, 3))  # below the floor's consumer seq: ignored
    assert (state.floor_cseq, state.floor_sseq, list(state.pending)) == (4, 2, [3])


def test_ack_all_of_an_old_log_without_consumer_seq():
    state = ConsumerState(acks_required=True)
    for seq in (1, 2, 3):
        state.apply((DELIVER, seq, 1, seq))
    old = ConsumerState.encode_op((ACK_ALL, 2))  # as logs wrote it before
    assert ConsumerState.decode_op(old) == (ACK_ALL, 2, 0)
    state.apply(ConsumerState.decode_op(old))
    assert (state.floor_cseq, state.floor_sseq, list(state.pending)) == (2, 2, [3])


def test_purge_moves_the_position_and_acknowledges_what_was_pending_below():
    state = ConsumerState(acks_required=True)
    for seq in (1, 3, 5):
        state.apply((DELIVER, seq, 1, seq))
    state.apply((DELIVER, 1, 2, 9))  # redelivered
    state.apply((PURGE, 4))  # 1..3 left the stream
    assert list(state.pending) == [5] and not state.redelivered
    assert (state.floor_cseq, state.floor_sseq) == (2, 3)
    assert (state.delivered_cseq, state.delivered_sseq, state.cursor) == (4, 5, 6)
    state.apply((PURGE, 9))  # everything, the stream's last seq being 8
    assert not state.pending
    assert (state.floor_cseq, state.floor_sseq) == (3, 8)
    assert (state.delivered_cseq, state.delivered_sseq, state.cursor) == (4, 8, 9)
    idle = ConsumerState(acks_required=True)
    idle.apply((PURGE, 5))
    assert (idle.delivered_cseq, idle.delivered_sseq, idle.floor_cseq, idle.floor_sseq) == \
        (0, 4, 0, 4)


def test_new_ops_round_trip():
    for op in [(PURGE, 7), (SKIP, 3), (ACK_ALL, 5, 9), (TERM, 2), (NAK, 4, 123)]:
        assert ConsumerState.decode_op(ConsumerState.encode_op(op)) == op


# A filtered consumer's position in a running JetStream (over an in-memory bus)


async def until(condition: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.001)


async def start_js(store_dir: str) -> JetStream:
    engine = JetStream(MemoryBus(), JetStreamOptions(enabled=True, store_dir=store_dir))
    JetStreamApi(engine).subscribe()
    engine.start()
    return engine


@pytest.fixture
async def js(tmp_path):
    engine = await start_js(str(tmp_path))
    yield engine
    await engine.stop()


def bus_of(js: JetStream) -> MemoryBus:
    assert isinstance(js.bus, MemoryBus)
    return js.bus


def api(js: JetStream, subject: str, body: bytes | dict = b"") -> dict:
    replies = bus_of(js).request("$JS.API." + subject, body)
    assert len(replies) == 1, replies
    return replies[0].json()


async def publish(js: JetStream, *subjects: str) -> None:
    for subject in subjects:
        await answer(js, subject, b"x")


async def answer(js: JetStream, subject: str, body: bytes | dict = b"") -> dict:
    """A request answered once what it changed is durable."""
    replies = bus_of(js).request(subject, body)
    await until(lambda: replies)
    return replies[0].json()


def position(js: JetStream, name: str = "c") -> tuple[tuple[int, int], tuple[int, int], int, int]:
    info = api(js, f"CONSUMER.INFO.S.{name}")
    return ((info["delivered"]["consumer_seq"], info["delivered"]["stream_seq"]),
            (info["ack_floor"]["consumer_seq"], info["ack_floor"]["stream_seq"]),
            info["num_pending"], info["num_ack_pending"])


def create(js: JetStream, name: str = "c", **config: object) -> None:
    created = api(js, f"CONSUMER.CREATE.S.{name}",
                  {"stream_name": "S", "config": {"durable_name": name, **config}})
    assert "error" not in created, created


def fetch(js: JetStream, name: str = "c", batch: int = 1, expires: int = 0) -> list[Sent]:
    body = {"batch": batch, **({"expires": expires} if expires else {})}
    return bus_of(js).request(f"$JS.API.CONSUMER.MSG.NEXT.S.{name}", body)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_caught_up_filtered_consumer_reports_the_stream_last_sequence(js):
    api(js, "STREAM.CREATE.S", {"name": "S", "subjects": ["s.*"]})
    await publish(js, "s.a", "s.b", "s.b")
    create(js, ack_policy="explicit", filter_subject="s.a")
    got = fetch(js, batch=2, expires=5000 * MS)  # a request that waits: the consumer looks on
    await until(lambda: got)
    await settle()
    assert position(js) == ((1, 3), (0, 0), 0, 1)
    bus_of(js).publish_internal(got[0].reply, payload=b"+ACK")
    assert position(js) == ((1, 3), (1, 3), 0, 0)
    # A message the filter does not take wakes nobody: the position stays.
    await publish(js, "s.b")
    await settle()
    assert position(js) == ((1, 3), (1, 3), 0, 0)
    await publish(js, "s.a")
    await until(lambda: len(got) == 2)
    await settle()
    assert position(js) == ((2, 5), (1, 3), 0, 1)


async def test_a_pending_message_deleted_from_the_stream_is_acknowledged(js):
    api(js, "STREAM.CREATE.S", {"name": "S", "subjects": ["s.*"]})
    await publish(js, "s.a", "s.a", "s.a")
    advisories = bus_of(js).inbox("$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.S.c")
    create(js, ack_policy="explicit", ack_wait=30_000 * MS)
    got = fetch(js, batch=3)
    await until(lambda: len(got) == 3)
    assert (await answer(js, "$JS.API.STREAM.MSG.DELETE.S", {"seq": 2}))["success"] is True
    assert position(js) == ((3, 3), (0, 0), 0, 2)
    event = advisories[0].json()
    assert (event["consumer_seq"], event["stream_seq"], event["reason"]) == \
        (2, 2, "Unacknowledged message was deleted")
    bus_of(js).publish_internal(got[0].reply, payload=b"+ACK")
    assert position(js) == ((3, 3), (2, 2), 0, 1)  # up to below 3, past the deleted 2


async def test_on_purged_moves_an_idle_consumer(js):
    api(js, "STREAM.CREATE.S", {"name": "S", "subjects": ["s.*"]})
    await publish(js, "s.a", "s.b", "s.a", "s.b")
    create(js, name="a", ack_policy="explicit", filter_subject="s.a")
    create(js, name="b", ack_policy="explicit", filter_subject="s.b")
    stream = js.lookup("S")
    before = position(js, "b")
    stream.store.purge(subject="s.a")
    for consumer in stream.consumers.values():
        consumer.on_purged("s.a")
    # Only the consumer within the purged subject moves: past the stream's last sequence.
    assert position(js, "a") == ((0, 4), (0, 4), 0, 0)
    assert position(js, "b") == before
    stream.store.purge(seq=4)
    for consumer in stream.consumers.values():
        consumer.on_purged()
    assert position(js, "b") == ((0, 3), (0, 3), 1, 0)


async def test_the_position_survives_a_restart(tmp_path):
    engine = await start_js(str(tmp_path))
    try:
        api(engine, "STREAM.CREATE.S", {"name": "S", "subjects": ["s.*"]})
        await publish(engine, "s.a", "s.b", "s.b")
        create(engine, ack_policy="explicit", filter_subject="s.a")
        got = fetch(engine, batch=2, expires=5000 * MS)
        await until(lambda: got)
        bus_of(engine).publish_internal(got[0].reply, payload=b"+ACK")
        assert position(engine) == ((1, 3), (1, 3), 0, 0)
    finally:
        await engine.stop()
    engine = await start_js(str(tmp_path))
    try:
        assert position(engine) == ((1, 3), (1, 3), 0, 0)
    finally:
        await engine.stop()
