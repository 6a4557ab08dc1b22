"""The meta group's state machine, placement, and the stream log's entry codec (pure parts)."""

import random

import pytest

from broker.jetstream.cluster import entries, meta
from broker.jetstream.cluster.meta import ConsumerAssignment, MetaState, StreamAssignment


def stream(name="ORDERS", peers=("S0", "S1", "S2"), group="S-R3F-x", config=None):
    return StreamAssignment(name, config or {"name": name, "subjects": ["orders.>"]}, group,
                            list(peers), 1)


def consumer(stream_name="ORDERS", name="worker", peers=("S0", "S1", "S2"), config=None):
    return ConsumerAssignment(stream_name, name, config or {"durable_name": name}, "C-R3F-y",
                              list(peers), 2)


def test_ops_apply_in_order_and_snapshots_restore_the_same_state():
    state = MetaState()
    assert state.apply(meta.add_stream_op(stream())).error == ""
    assert state.apply(meta.add_consumer_op(consumer())).error == ""
    assert state.apply(meta.add_stream_op(stream("EVENTS", peers=["S1"], group=""))).error == ""
    updated = stream(config={"name": "ORDERS", "subjects": ["orders.>", "refunds.>"]})
    change = state.apply(meta.update_stream_op(updated))
    assert change.previous is not None and change.previous.config["subjects"] == ["orders.>"]
    restored = MetaState.restore(state.snapshot())
    assert restored == state
    assert restored.consumer("ORDERS", "worker") == consumer()
    assert state.assets_per_peer() == {"S0": 2, "S1": 3, "S2": 2}


def test_racing_creates_apply_identically_everywhere():
    a, b = MetaState(), MetaState()
    first = meta.add_stream_op(stream(config={"name": "ORDERS", "subjects": ["a"]}))
    second = meta.add_stream_op(stream(config={"name": "ORDERS", "subjects": ["b"]}))
    for state in (a, b):
        assert state.apply(first).error == ""
        assert state.apply(second).error == "stream name in use"
    assert a == b and a.streams["ORDERS"].config["subjects"] == ["a"]
    # The same create again is not an error (idempotent create).
    assert a.apply(first).error == ""


def test_deletes_and_consumer_updates_keep_placement():
    state = MetaState()
    state.apply(meta.add_stream_op(stream()))
    state.apply(meta.add_consumer_op(consumer()))
    moved = consumer(peers=["S9"], config={"durable_name": "worker", "max_deliver": 3})
    change = state.apply(meta.add_consumer_op(moved))
    assert change.consumer is not None and change.consumer.peers == ["S0", "S1", "S2"]
    assert state.consumer("ORDERS", "worker").config["max_deliver"] == 3
    assert state.apply(meta.delete_consumer_op("ORDERS", "nope")).error == "consumer not found"
    assert state.apply(meta.delete_stream_op("ORDERS")).stream is not None
    assert state.consumer("ORDERS", "worker") is None
    assert state.apply(meta.add_consumer_op(consumer())).error == "stream not found"


def test_placement_picks_distinct_least_loaded_servers():
    rng = random.Random(7)
    online = ["S0", "S1", "S2", "S3"]
    assert sorted(meta.place(3, online, {"S0": 5}, rng)) == ["S1", "S2", "S3"]
    assert meta.place(1, online, {"S0": 1, "S1": 1, "S2": 0, "S3": 1}, rng) == ["S2"]
    firsts = {meta.place(3, online[:3], {}, random.Random(seed))[0] for seed in range(30)}
    assert firsts == {"S0", "S1", "S2"}  # preferred leaders spread
    with pytest.raises(meta.NoPlacement):
        meta.place(3, ["S0", "S1"], {})


def test_group_names_have_nats_servers_shape():
    name = meta.group_name("S", 3, "file")
    assert name.startswith("S-R3F-") and len(name) == 14
    assert meta.group_name("C", 3, "memory").startswith("C-R3M-")


def test_stream_entries_round_trip():
    origin = entries.Origin(b"12345678", 42)
    msgs = [(b"orders.1", b"", b"hello", 10), (b"orders.\xc3\xa9", b"NATS/1.0\r\n\r\n", b"", 11)]
    entry = entries.decode(entries.encode_msgs(origin, msgs))
    assert entry.kind == entries.MSGS and entry.origin == origin
    assert entry.msgs == [entries.Publish("orders.1", b"", b"hello", 10),
                          entries.Publish("orders.é", b"NATS/1.0\r\n\r\n", b"", 11)]
    purge = entries.decode(entries.encode_request(entries.PURGE, origin, {"keep": 1}))
    assert purge.kind == entries.PURGE and purge.request == {"keep": 1}


@pytest.mark.parametrize("data", [
    b"",
    b"\x01" + b"x" * 5,
    entries.encode_msgs(entries.Origin(b"12345678", 1), [(b"a", b"", b"abc", 1)])[:-1],
    entries.encode_msgs(entries.Origin(b"12345678", 1), [(b"a", b"", b"abc", 1)]) + b"!",
    b"\x09" + b"\x00" * 16,
])
def test_malformed_stream_entries_are_refused(data):
    with pytest.raises(ValueError):
        entries.decode(data)


def test_a_subject_that_is_not_utf8_decodes_as_r1_ingest_reads_it():
    """One such subject once made every replica skip its whole batch entry: the other
    messages of the batch must come through, the odd subject with U+FFFD."""
    origin = entries.Origin(b"12345678", 1)
    msgs = [(b"x.ok", b"", b"1", 1), (b"x.\xff\xfe", b"", b"2", 2), (b"x.ok", b"", b"3", 3)]
    decoded = entries.decode(entries.encode_msgs(origin, msgs)).msgs
    assert decoded is not None
    assert [(m.subject, m.data) for m in decoded] == [
        ("x.ok", b"1"), ("x.\ufffd\ufffd", b"2"), ("x.ok", b"3")]
