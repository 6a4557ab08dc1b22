"""The JetStream API, streams and consumers together, over an in-memory bus (tests/unit/jsfakes):
requests in, JSON out, exactly as a client sees them, without a server process. The real-process
tests (tests/integration) check the same behaviour through nats-py; these pin the rules fast."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest

from broker.jetstream.api import JetStreamApi
from broker.jetstream.jetstream import JetStream
from config.options import JetStreamOptions
from tests.unit.jsfakes import MemoryBus, Sent

MS = 1_000_000


async def until(condition: Callable[[], object], timeout: float = 5.0) -> None:
    """Let the loop run (timers, group commit) until `condition()` holds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.001)


@pytest.fixture
async def js(tmp_path):
    bus = MemoryBus()
    engine = JetStream(bus, JetStreamOptions(enabled=True, store_dir=str(tmp_path)))
    JetStreamApi(engine).subscribe()
    engine.start()
    yield engine
    await engine.stop()


def api(js: JetStream, subject: str, body: bytes | dict = b"") -> dict:
    assert isinstance(js.bus, MemoryBus)
    replies = js.bus.request("$JS.API." + subject, body)
    assert len(replies) == 1, replies
    return replies[0].json()


async def publish(js: JetStream, subject: str, data: bytes = b"x") -> dict:
    bus = js.bus
    assert isinstance(bus, MemoryBus)
    replies = bus.request(subject, data)
    await until(lambda: replies)  # the PubAck leaves once the group commit synced
    return replies[0].json()


def create_stream(js: JetStream, **config) -> dict:
    config = {"name": "ORDERS", "subjects": ["orders.>"], **config}
    return api(js, "STREAM.CREATE.ORDERS", config)


async def test_stream_create_info_and_a_publish(js):
    created = create_stream(js)
    assert created["type"] == "io.nats.jetstream.api.v1.stream_create_response"
    assert created["did_create"] is True
    assert created["config"]["retention"] == "limits"
    assert await publish(js, "orders.new") == {"stream": "ORDERS", "seq": 1}
    info = api(js, "STREAM.INFO.ORDERS")
    assert info["state"]["messages"] == 1 and info["state"]["last_seq"] == 1


async def test_bad_requests_get_nats_server_errors(js):
    assert api(js, "STREAM.CREATE.ORDERS", b"")["error"] == {
        "code": 400, "err_code": 10025, "description": "invalid JSON"}
    mismatch = api(js, "STREAM.CREATE.OTHER", {"name": "ORDERS", "subjects": ["a"]})
    assert mismatch["error"]["err_code"] == 10056
    assert api(js, "STREAM.INFO.NOPE")["error"] == {
        "code": 404, "err_code": 10059, "description": "stream not found"}
    create_stream(js)
    overlap = api(js, "STREAM.CREATE.MORE", {"name": "MORE", "subjects": ["orders.new"]})
    assert overlap["error"]["err_code"] == 10065


async def test_an_unknown_api_gets_no_answer(js):
    bus = js.bus
    assert isinstance(bus, MemoryBus)
    assert bus.request("$JS.API.STREAM.FROBNICATE.X", b"{}") == []


async def test_pull_consumer_delivers_and_takes_acks(js):
    create_stream(js)
    for i in range(3):
        await publish(js, "orders.new", b"order-%d" % i)
    created = api(js, "CONSUMER.CREATE.ORDERS.worker",
                  {"stream_name": "ORDERS", "config": {"durable_name": "worker",
                                                       "ack_policy": "explicit"}})
    assert created["name"] == "worker" and created["num_pending"] == 3
    bus = js.bus
    assert isinstance(bus, MemoryBus)
    got = bus.request("$JS.API.CONSUMER.MSG.NEXT.ORDERS.worker", b'{"batch": 2}')
    await until(lambda: len(got) == 2)
    assert [m.payload for m in got] == [b"order-0", b"order-1"]
    assert got[0].reply.startswith(b"$JS.ACK.ORDERS.worker.1.1.1.")
    bus.publish_internal(got[0].reply, payload=b"+ACK")
    info = api(js, "CONSUMER.INFO.ORDERS.worker")
    assert info["ack_floor"]["stream_seq"] == 1
    assert info["num_ack_pending"] == 1 and info["num_pending"] == 1


async def test_an_unacknowledged_message_is_redelivered_after_ack_wait(js):
    create_stream(js)
    await publish(js, "orders.new", b"order")
    api(js, "CONSUMER.CREATE.ORDERS.worker",
        {"stream_name": "ORDERS", "config": {"durable_name": "worker", "ack_policy": "explicit",
                                             "ack_wait": 50 * MS}})
    bus = js.bus
    assert isinstance(bus, MemoryBus)
    got = bus.request("$JS.API.CONSUMER.MSG.NEXT.ORDERS.worker", b'{"batch": 5, "expires": '
                      + str(5000 * MS).encode() + b"}")
    await until(lambda: len(got) == 2)
    deliveries = [m.reply.split(b".")[4] for m in got]
    assert deliveries == [b"1", b"2"]  # the delivery count in the ack subject


async def test_max_deliver_stops_redelivery_and_advises(js):
    create_stream(js)
    await publish(js, "orders.new", b"order")
    bus = js.bus
    assert isinstance(bus, MemoryBus)
    advisories: list[Sent] = bus.inbox("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>")
    api(js, "CONSUMER.CREATE.ORDERS.worker",
        {"stream_name": "ORDERS", "config": {"durable_name": "worker", "ack_policy": "explicit",
                                             "ack_wait": 30 * MS, "max_deliver": 2}})
    got = bus.request("$JS.API.CONSUMER.MSG.NEXT.ORDERS.worker", b'{"batch": 5, "expires": '
                      + str(5000 * MS).encode() + b"}")
    await until(lambda: advisories)
    assert len(got) == 2
    event = json.loads(advisories[0].payload)
    assert (event["stream"], event["consumer"], event["stream_seq"], event["deliveries"]) == \
        ("ORDERS", "worker", 1, 2)


async def test_work_queue_acks_remove_messages(js):
    create_stream(js, retention="workqueue")
    await publish(js, "orders.new")
    api(js, "CONSUMER.CREATE.ORDERS.worker",
        {"stream_name": "ORDERS", "config": {"durable_name": "worker", "ack_policy": "explicit"}})
    bus = js.bus
    assert isinstance(bus, MemoryBus)
    got = bus.request("$JS.API.CONSUMER.MSG.NEXT.ORDERS.worker", b"1")
    await until(lambda: got)
    bus.publish_internal(got[0].reply, payload=b"+ACK")
    assert api(js, "STREAM.INFO.ORDERS")["state"]["messages"] == 0
    second = api(js, "CONSUMER.CREATE.ORDERS.other",
                 {"stream_name": "ORDERS", "config": {"durable_name": "other",
                                                      "ack_policy": "explicit"}})
    assert second["error"]["err_code"] == 10099
