"""JetStream consumers through nats-py: the seed's flows (durable push, pull fetch, replay,
redelivery, dead-lettering) and the delivery mechanics around them."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from datetime import UTC, datetime

import nats
import pytest
from nats.js import api


@pytest.fixture
async def js_env(start_broker, tmp_path):
    server = start_broker("-js", "-sd", str(tmp_path / "store"))
    nc = await nats.connect(server.url, allow_reconnect=False)
    js = nc.jetstream()
    await nc.jsm().add_stream(name="ORDERS", subjects=["orders.>"])
    yield server, nc, js
    await nc.close()


async def publish(js, n: int, subject: str = "orders.created") -> list[int]:
    return [(await js.publish(subject, b"order-%d" % i)).seq for i in range(n)]


async def info(nc, consumer: str, stream: str = "ORDERS"):
    return await nc.jsm().consumer_info(stream, consumer)


async def test_every_deliver_policy_starts_where_it_should(js_env):
    _, nc, js = js_env
    await publish(js, 3, "orders.a")
    await publish(js, 2, "orders.b")
    stamp = datetime.now(UTC)
    await publish(js, 1, "orders.a")
    jsm = nc.jsm()
    cases = {
        "all": (api.ConsumerConfig(deliver_policy=api.DeliverPolicy.ALL), 1),
        "last": (api.ConsumerConfig(deliver_policy=api.DeliverPolicy.LAST), 6),
        "by_seq": (api.ConsumerConfig(deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
                                      opt_start_seq=4), 4),
        "by_time": (api.ConsumerConfig(deliver_policy=api.DeliverPolicy.BY_START_TIME,
                                       opt_start_time=stamp.isoformat()), 6),
        "per_subject": (api.ConsumerConfig(deliver_policy=api.DeliverPolicy.LAST_PER_SUBJECT,
                                           filter_subject="orders.*"), 5),
    }
    for name, (config, first_seq) in cases.items():
        config.durable_name = name
        config.ack_policy = api.AckPolicy.EXPLICIT
        await jsm.add_consumer("ORDERS", config)
        sub = await js.pull_subscribe_bind(name, "ORDERS")
        msg = (await sub.fetch(1, timeout=2))[0]
        assert msg.metadata.sequence.stream == first_seq, name
    newsub = await js.pull_subscribe("orders.>", durable="new",
                                     config=api.ConsumerConfig(deliver_policy=api.DeliverPolicy.NEW))
    with pytest.raises(TimeoutError):
        await newsub.fetch(1, timeout=0.3)
    await js.publish("orders.a", b"fresh")
    assert (await newsub.fetch(1, timeout=2))[0].data == b"fresh"


async def test_pull_fetch_on_empty_partial_and_full(js_env):
    _, nc, js = js_env
    sub = await js.pull_subscribe("orders.>", durable="worker")
    with pytest.raises(TimeoutError):
        await sub.fetch(1, timeout=0.5)
    await publish(js, 3)
    partial = await sub.fetch(10, timeout=1)
    assert [m.metadata.sequence.stream for m in partial] == [1, 2, 3]
    assert [m.metadata.num_pending for m in partial] == [2, 1, 0]
    for m in partial:
        await m.ack()
    await publish(js, 60)
    full = await sub.fetch(50, timeout=5)
    assert len(full) == 50
    for m in full:
        await m.ack_sync()
    state = await info(nc, "worker")
    assert (state.num_ack_pending, state.num_pending) == (0, 10)
    assert (state.ack_floor.stream_seq, state.delivered.stream_seq) == (53, 53)


async def test_redelivery_after_ack_wait_counts_deliveries(js_env):
    _, nc, js = js_env
    await publish(js, 1)
    sub = await js.pull_subscribe("orders.>", durable="slow",
                                  config=api.ConsumerConfig(ack_wait=0.5))
    first = (await sub.fetch(1, timeout=2))[0]
    assert first.metadata.num_delivered == 1
    started = time.monotonic()
    again = (await sub.fetch(1, timeout=3))[0]
    assert again.metadata.num_delivered == 2
    assert again.metadata.sequence.stream == first.metadata.sequence.stream
    assert time.monotonic() - started >= 0.35
    state = await info(nc, "slow")
    assert state.num_redelivered == 1 and state.num_ack_pending == 1
    await again.ack_sync()
    assert (await info(nc, "slow")).num_ack_pending == 0


async def test_nak_with_delay_in_progress_and_term(js_env):
    _, nc, js = js_env
    await publish(js, 3)
    sub = await js.pull_subscribe("orders.>", durable="acks",
                                  config=api.ConsumerConfig(ack_wait=0.6))
    m1, m2, m3 = await sub.fetch(3, timeout=2)
    await m1.nak(delay=0.3)
    await m3.term()
    started = time.monotonic()
    for _ in range(3):  # keep m2 alive past its ack wait
        await asyncio.sleep(0.3)
        await m2.in_progress()
    redelivered = (await sub.fetch(1, timeout=2))[0]
    assert redelivered.metadata.sequence.stream == 1
    assert time.monotonic() - started >= 0.25
    with pytest.raises(TimeoutError):  # m2 is still in progress, m3 terminated
        await sub.fetch(1, timeout=0.3)
    await m2.ack_sync()
    await redelivered.ack_sync()
    state = await info(nc, "acks")
    assert state.num_ack_pending == 0 and state.ack_floor.stream_seq == 3


async def test_backoff_spaces_redeliveries(js_env):
    _, _nc, js = js_env
    await publish(js, 1)
    config = api.ConsumerConfig(backoff=[0.2, 0.6], max_deliver=4)
    sub = await js.pull_subscribe("orders.>", durable="backoff", config=config)
    times = []
    for _ in range(3):
        msg = (await sub.fetch(1, timeout=3))[0]
        times.append(time.monotonic())
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert 0.15 <= gaps[0] < 0.5
    assert 0.5 <= gaps[1] < 1.2
    assert msg.metadata.num_delivered == 3


async def test_max_deliver_advisory_exactly_once_and_message_stays(js_env):
    _, nc, js = js_env
    await publish(js, 1)
    advisories = await nc.subscribe("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.ORDERS.dlq")
    sub = await js.pull_subscribe("orders.>", durable="dlq",
                                  config=api.ConsumerConfig(ack_wait=0.2, max_deliver=2))
    for _ in range(2):
        await sub.fetch(1, timeout=2)
    event = json.loads((await advisories.next_msg(timeout=3)).data)
    assert event["type"] == "io.nats.jetstream.advisory.v1.max_deliver"
    assert (event["stream"], event["consumer"], event["stream_seq"], event["deliveries"]) == (
        "ORDERS", "dlq", 1, 2)
    with pytest.raises(TimeoutError):
        await advisories.next_msg(timeout=0.6)
    assert (await nc.jsm().get_msg("ORDERS", seq=1)).data == b"order-0"


async def test_max_ack_pending_gates_delivery(js_env):
    _, _nc, js = js_env
    await publish(js, 5)
    sub = await js.pull_subscribe("orders.>", durable="gated",
                                  config=api.ConsumerConfig(max_ack_pending=2))
    first = await sub.fetch(5, timeout=1)
    assert len(first) == 2
    await first[0].ack_sync()
    more = await sub.fetch(5, timeout=1)
    assert [m.metadata.sequence.stream for m in more] == [3]


async def test_durable_push_consumer_with_filter_resumes_where_it_stopped(js_env):
    _, _nc, js = js_env
    await publish(js, 3, "orders.eu")
    await publish(js, 3, "orders.us")
    got: list[int] = []
    done = asyncio.Event()

    async def handler(msg):
        got.append(msg.metadata.sequence.stream)
        await msg.ack()
        if len(got) == 3:
            done.set()

    sub = await js.subscribe("orders.eu", durable="eu", cb=handler, manual_ack=True)
    await asyncio.wait_for(done.wait(), 3)
    assert got == [1, 2, 3]
    await sub.unsubscribe()
    await publish(js, 2, "orders.eu")
    resumed = await js.subscribe("orders.eu", durable="eu")
    msgs = [await resumed.next_msg(timeout=2) for _ in range(2)]
    assert [m.metadata.sequence.stream for m in msgs] == [7, 8]


async def test_push_heartbeats_and_flow_control_move_50_mb(js_env):
    _, _nc, js = js_env
    chunk = b"x" * (256 * 1024)
    for _i in range(200):  # 50 MiB
        await js.publish("orders.blob", chunk)
    received = 0
    done = asyncio.Event()

    async def handler(msg):
        nonlocal received
        received += len(msg.data)
        if received >= 200 * len(chunk):
            done.set()

    await js.subscribe("orders.blob", cb=handler, ordered_consumer=True)
    await asyncio.wait_for(done.wait(), 60)
    assert received == 200 * len(chunk)


async def test_workqueue_removes_on_ack_and_refuses_a_second_reader(js_env):
    _, nc, js = js_env
    jsm = nc.jsm()
    await jsm.add_stream(name="JOBS", subjects=["jobs.>"], retention=api.RetentionPolicy.WORK_QUEUE)
    for i in range(3):
        await js.publish("jobs.x", b"%d" % i)
    sub = await js.pull_subscribe("jobs.>", durable="w1", stream="JOBS")
    msgs = await sub.fetch(3, timeout=2)
    await msgs[0].ack()
    await msgs[1].term()  # terminated counts as done for a work queue, a NAK would not
    await msgs[2].nak()
    await nc.request(msgs[2].reply, b"+WPI", timeout=2)  # acks apply in order: a barrier
    assert (await jsm.stream_info("JOBS")).state.messages == 1
    with pytest.raises(nats.js.errors.BadRequestError) as err:
        await js.pull_subscribe("jobs.>", durable="w2", stream="JOBS")
    # nats-py filters on the subscribed subject, so this is the "not unique" refusal.
    assert err.value.err_code == 10100


async def test_interest_retention_keeps_until_every_consumer_acked(js_env):
    _, nc, js = js_env
    jsm = nc.jsm()
    await jsm.add_stream(name="FAN", subjects=["fan.>"], retention=api.RetentionPolicy.INTEREST)
    await js.publish("fan.x", b"nobody listens")
    assert (await jsm.stream_info("FAN")).state.messages == 0
    a = await js.pull_subscribe("fan.>", durable="a", stream="FAN")
    await js.pull_subscribe("fan.>", durable="b", stream="FAN")
    await js.publish("fan.x", b"both")
    (ma,) = await a.fetch(1, timeout=2)
    await ma.ack_sync()
    assert (await jsm.stream_info("FAN")).state.messages == 1
    await jsm.delete_consumer("FAN", "b")
    assert (await jsm.stream_info("FAN")).state.messages == 0


async def test_ack_for_unknown_sequences_and_garbage_is_ignored(js_env):
    _, nc, js = js_env
    await publish(js, 2)
    sub = await js.pull_subscribe("orders.>", durable="robust")
    (m1,) = await sub.fetch(1, timeout=2)
    for junk in (b"+ACK", b"bogus", b"-NAK {not json", b"+TERM"):
        await nc.request("$JS.ACK.ORDERS.robust.1.99.99.0.0", junk, timeout=2)
    await m1.ack_sync()
    assert (await nc.request(m1.reply, b"+ACK", timeout=2)).data == b""  # again: no change
    state = await info(nc, "robust")
    assert (state.num_ack_pending, state.ack_floor.stream_seq, state.num_pending) == (0, 1, 1)


async def test_ordered_consumer_continues_across_a_server_restart(start_broker, tmp_path):
    server = start_broker("-js", "-sd", str(tmp_path / "store"))
    server.restart_args_fixed()
    reconnected = asyncio.Event()

    async def on_reconnect() -> None:
        reconnected.set()

    nc = await nats.connect(server.url, reconnect_time_wait=0.1, max_reconnect_attempts=-1,
                            reconnected_cb=on_reconnect)
    js = nc.jetstream()
    await nc.jsm().add_stream(name="EVENTS", subjects=["events.>"])
    for i in range(50):
        await js.publish("events.x", b"%d" % i)
    sub = await js.subscribe("events.>", ordered_consumer=True, idle_heartbeat=0.5)
    first = [int((await sub.next_msg(timeout=2)).data) for _ in range(50)]
    assert first == list(range(50))
    assert server.stop() == 0
    server.start()
    await asyncio.wait_for(reconnected.wait(), 10)
    for i in range(50, 80):
        await js.publish("events.x", b"%d" % i)
    # The ephemeral consumer died with the server; nats-py notices the missing heartbeats and
    # recreates it from the next stream sequence: no gap, no duplicate.
    rest = [int((await sub.next_msg(timeout=10)).data) for _ in range(30)]
    assert rest == list(range(50, 80))
    await nc.close()


async def test_replay_original_keeps_the_publish_spacing(js_env):
    _, _nc, js = js_env
    await js.publish("orders.a", b"1")
    await asyncio.sleep(0.4)  # the spacing under test, not a synchronisation
    await js.publish("orders.a", b"2")
    sub = await js.subscribe("orders.a", ordered_consumer=False, durable="replayer",
                             config=api.ConsumerConfig(replay_policy=api.ReplayPolicy.ORIGINAL))
    await sub.next_msg(timeout=2)
    started = time.monotonic()
    await sub.next_msg(timeout=2)
    assert time.monotonic() - started >= 0.3


async def test_rate_limit_throttles_push_delivery(js_env):
    _, _nc, js = js_env
    for _ in range(5):
        await js.publish("orders.big", b"x" * 10_000)
    started = time.monotonic()
    sub = await js.subscribe("orders.big", durable="slowpush",
                             config=api.ConsumerConfig(rate_limit_bps=400_000))
    for _ in range(5):
        await sub.next_msg(timeout=5)
    # 5 x 80 kbit at 400 kbit/s: at least four gaps of ~0.2 s.
    assert time.monotonic() - started >= 0.7
