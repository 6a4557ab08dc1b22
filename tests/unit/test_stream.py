"""Stream behind its interfaces: the one store-and-ack path (`store_publish`), PubAcks held until
durable, refusals answered at once with nats-server's errors, dedupe, retention. No server: a
memory store and a list of what the stream sent."""

from __future__ import annotations

import json

import pytest

from broker import headers as h
from broker.jetstream.stream import Stream, store_config
from broker.jetstream.streamconfig import StreamConfig
from storage import MemoryStore, StoreFull

NOW = 1_700_000_000 * 10**9


class Consumer:
    """A StreamConsumer that wants everything on `subject` and remembers what it was told."""

    def __init__(self, subject: str = ">") -> None:
        self.subject = subject
        self.stored: list[int] = []
        self.signals = 0

    def matches(self, subject: str) -> bool:
        return self.subject == ">" or subject == self.subject

    def needs(self, seq: int, subject: str) -> bool:
        return self.matches(subject)

    def on_stored(self, seq: int, subject: str) -> None:
        self.stored.append(seq)

    def on_removed(self) -> None:
        pass

    def signal(self) -> None:
        self.signals += 1


def make_stream(**fields) -> tuple[Stream[Consumer], list[tuple[bytes, dict]]]:
    config = StreamConfig(name="ORDERS", subjects=["orders.>"], storage="memory",
                          **fields).normalized()
    sent: list[tuple[bytes, dict]] = []
    stream: Stream[Consumer] = Stream(config, MemoryStore(store_config(config)), NOW,
                                      lambda reply, payload: sent.append((reply, json.loads(
                                          payload))))
    return stream, sent


def publish(stream: Stream[Consumer], reply: bytes = b"r", data: bytes = b"x",
            subject: str = "orders.new", headers: dict[str, str] | None = None, ts: int = NOW):
    return stream.store_publish(subject, h.build(headers) if headers else b"", data, ts, reply)


def test_the_puback_waits_for_durability_and_leaves_in_order():
    stream, sent = make_stream()
    assert [publish(stream, b"r%d" % i).seq for i in range(1, 4)] == [1, 2, 3]
    assert sent == []  # stored, not durable: nothing promised yet
    stream.on_durable(2)
    assert sent == [(b"r1", {"stream": "ORDERS", "seq": 1}),
                    (b"r2", {"stream": "ORDERS", "seq": 2})]
    stream.on_durable(3)
    assert sent[-1] == (b"r3", {"stream": "ORDERS", "seq": 3})


def test_consumers_are_woken_only_for_durable_messages():
    stream, _ = make_stream()
    consumer = Consumer()
    stream.consumers["c"] = consumer
    publish(stream)
    assert consumer.stored == [1] and consumer.signals == 0
    stream.on_durable(1)
    assert consumer.signals == 1 and stream.durable_seq == 1


def test_a_duplicate_gets_the_original_sequence():
    stream, sent = make_stream()
    first = publish(stream, b"a", headers={"Nats-Msg-Id": "order-1"})
    again = publish(stream, b"b", headers={"Nats-Msg-Id": "order-1"})
    assert first is not None and again is not None
    assert (first.seq, again.seq, again.duplicate) == (1, 1, True)
    stream.on_durable(1)
    assert sent == [(b"a", {"stream": "ORDERS", "seq": 1}),
                    (b"b", {"stream": "ORDERS", "seq": 1, "duplicate": True})]
    assert stream.store.msgs == 1


def test_a_refusal_is_answered_at_once_and_stores_nothing():
    stream, sent = make_stream()
    publish(stream)
    assert publish(stream, b"bad", headers={"Nats-Expected-Last-Sequence": "7"}) is None
    assert sent == [(b"bad", {"error": {"code": 400, "err_code": 10071,
                                        "description": "wrong last sequence: 1"},
                              "stream": "ORDERS", "seq": 0})]
    assert stream.store.msgs == 1


def test_discard_new_limits_refuse_with_nats_server_error():
    stream, sent = make_stream(max_msgs=1, discard="new")
    publish(stream)
    assert publish(stream, b"full") is None
    assert sent[-1][1]["error"] == {"code": 503, "err_code": 10077,
                                    "description": "maximum messages exceeded"}


def test_a_full_store_is_nats_server_storage_error(monkeypatch):
    stream, sent = make_stream()

    def full(*args, **kwargs):
        raise StoreFull("no space left on device")
    monkeypatch.setattr(stream.store, "store_msg", full)
    assert publish(stream, b"r") is None
    assert sent == [(b"r", {"error": {"code": 500, "err_code": 10047,
                                      "description": "insufficient storage resources "
                                                     "available"},
                            "stream": "ORDERS", "seq": 0})]


def test_no_ack_streams_answer_nothing_not_even_errors():
    stream, sent = make_stream(no_ack=True)
    publish(stream, b"r")
    publish(stream, b"r", headers={"Nats-Expected-Last-Sequence": "9"})
    stream.on_durable(5)
    assert sent == [] and stream.store.msgs == 1


def test_a_failed_sync_answers_the_waiting_publishers_with_an_error():
    stream, sent = make_stream()
    publish(stream, b"r1")
    publish(stream, b"r2")
    stream.on_sync_failed(1, OSError(5, "Input/output error"))
    assert [reply for reply, _ in sent] == [b"r1"]
    assert sent[0][1]["error"]["err_code"] == 10077
    stream.on_durable(2)
    assert sent[-1] == (b"r2", {"stream": "ORDERS", "seq": 2})


def test_interest_retention_keeps_nothing_nobody_wants():
    stream, _ = make_stream(retention="interest")
    publish(stream, subject="orders.new")
    stream.consumers["c"] = Consumer("orders.paid")
    publish(stream, subject="orders.new")
    publish(stream, subject="orders.paid")
    assert stream.store.last_seq == 3  # every publish takes a sequence
    assert stream.store.msgs == 1  # only the one a consumer wants is kept
    assert stream.store.load(3) is not None


def test_acks_remove_messages_from_a_work_queue():
    stream, _ = make_stream(retention="workqueue")
    consumer = Consumer()
    stream.consumers["c"] = consumer
    for _ in range(3):
        publish(stream)
    stream.on_acked(consumer, [1, 3])
    assert stream.store.msgs == 1 and stream.store.load(2) is not None


@pytest.mark.parametrize("rollup,left", [("sub", 2), ("all", 1)])
def test_rollup_keeps_only_the_rollup_message(rollup, left):
    stream, _ = make_stream(allow_rollup_hdrs=True)
    publish(stream, subject="orders.a")
    publish(stream, subject="orders.b")
    publish(stream, subject="orders.b", headers={"Nats-Rollup": rollup})
    assert stream.store.msgs == left
    assert stream.store.load(3) is not None
