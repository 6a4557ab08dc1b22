"""/metrics' JetStream series on a real broker, against STREAM.INFO / CONSUMER.INFO and /jsz read
just before and just after the scrape (and checked unchanged in between), through nats-py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import nats
import pytest
from nats.js import api

from tests.metrics_scrape import (
    CONSUMER_SERIES,
    SERVER_SERIES,
    STREAM_SERIES,
    Scrape,
    api_json,
    pull,
)
from tests.procs import ServerProcess

SERVER_NAME = "metrics-test"
MiB = 1024 * 1024
PUSH_DESCRIPTION = 'push "quoted" \\ back\nslash'  # every character a label value escapes

STREAMS = ("LIMITED", "OPEN")
CONSUMERS = (("LIMITED", "puller"), ("OPEN", "pusher"), ("OPEN", "waiter"))


def nanos(text: str) -> int:
    """Go's RFC 3339 (UTC, up to nine fractional digits) to Unix nanoseconds."""
    stamp, _, frac = text.rstrip("Z").partition(".")
    seconds = datetime.fromisoformat(stamp).replace(tzinfo=UTC).timestamp()
    return int(seconds) * 1_000_000_000 + int(frac.ljust(9, "0") or 0)


def without_ts(info: dict) -> dict:
    return {k: v for k, v in info.items() if k != "ts"}


@pytest.fixture
async def busy_broker(start_broker, tmp_path) -> AsyncIterator[tuple[ServerProcess, nats.NATS]]:
    """Two streams, a pull consumer with acked, pending and redelivered messages, a push
    consumer that acked some and lost its subscriber, a pull consumer with a request waiting."""
    server = start_broker("-js", "-sd", str(tmp_path / "store"), "-n", SERVER_NAME)
    nc = await nats.connect(server.url, allow_reconnect=False)
    jsm, js = nc.jsm(), nc.jetstream()
    await jsm.add_stream(name="LIMITED", subjects=["lim.>"], max_msgs=100, max_bytes=MiB,
                         max_age=3600)
    await jsm.add_stream(name="OPEN", subjects=["open.>"], storage=api.StorageType.MEMORY)
    for i in range(10):
        await js.publish(f"lim.{'abcd'[i % 4]}", b"limited %d" % i)
    for i in range(5):
        await js.publish("open.x", b"open %d" % i)

    await jsm.add_consumer("LIMITED", api.ConsumerConfig(
        durable_name="puller", ack_policy=api.AckPolicy.EXPLICIT, ack_wait=0.5,
        description="pull consumer"))
    first = await pull(nc, "LIMITED", "puller", 10)
    for msg in first[:4]:
        await msg.ack()
    # Nothing acks the other six and nothing new is there: this pull waits until ack_wait
    # passes and gets three of them again.
    again = await pull(nc, "LIMITED", "puller", 3)
    assert [m.reply.split(".")[4] for m in again] == ["2", "2", "2"]  # delivery count
    for i in range(10, 20):  # pending for the puller
        await js.publish(f"lim.{'abcd'[i % 4]}", b"limited %d" % i)

    await jsm.add_consumer("OPEN", api.ConsumerConfig(
        durable_name="pusher", deliver_subject="push.out", ack_policy=api.AckPolicy.EXPLICIT,
        ack_wait=60, description=PUSH_DESCRIPTION))
    sub = await nc.subscribe("push.out")
    pushed = [await sub.next_msg(timeout=5) for _ in range(5)]
    for msg in pushed[:2]:
        await msg.ack()
    await sub.unsubscribe()

    await jsm.add_consumer("OPEN", api.ConsumerConfig(
        durable_name="waiter", filter_subject="open.never", ack_policy=api.AckPolicy.EXPLICIT))
    await nc.subscribe("waiter.inbox")
    await nc.publish("$JS.API.CONSUMER.MSG.NEXT.OPEN.waiter", b'{"batch": 1, "expires": '
                     b'60000000000}', reply="waiter.inbox")
    await nc.flush()
    yield server, nc
    await nc.close()


async def snapshot(server: ServerProcess, nc: nats.NATS) -> tuple[dict, dict, dict]:
    streams = {s: await api_json(nc, f"$JS.API.STREAM.INFO.{s}") for s in STREAMS}
    consumers = {(s, c): await api_json(nc, f"$JS.API.CONSUMER.INFO.{s}.{c}")
                 for s, c in CONSUMERS}
    status, jsz = server.get("/jsz")
    assert status == 200
    return streams, consumers, jsz


async def scrape_between_infos(server: ServerProcess, nc: nats.NATS
                               ) -> tuple[Scrape, dict, dict, dict, dict]:
    """Infos, a scrape, infos again: (scrape, streams, consumers before, after, /jsz)."""
    streams, consumers, jsz = await snapshot(server, nc)
    status, text = server.get("/metrics")
    assert status == 200
    streams_after, consumers_after, jsz_after = await snapshot(server, nc)
    # Nothing moved while the scrape ran: what it saw is what the infos say.
    assert {s: without_ts(i) for s, i in streams.items()} == \
        {s: without_ts(i) for s, i in streams_after.items()}
    assert {k: without_ts(i) for k, i in consumers.items()} == \
        {k: without_ts(i) for k, i in consumers_after.items()}
    moving = ("now", "api")  # the clock, and the count of API requests (the infos' own)
    assert {k: v for k, v in jsz.items() if k not in moving} == \
        {k: v for k, v in jsz_after.items() if k not in moving}
    return Scrape(text), streams, consumers, consumers_after, jsz


async def test_stream_series_equal_stream_info(busy_broker):
    server, nc = busy_broker
    scrape, streams, _, _, _ = await scrape_between_infos(server, nc)
    for name, info in streams.items():
        labels = {"stream_name": name, "account": "$G", "account_name": "$G",
                  "account_id": "$G", "server_name": SERVER_NAME, "is_stream_leader": "true",
                  "stream_leader": "", "stream_raft_group": "", "is_meta_leader": "true",
                  "cluster": "", "meta_leader": ""}
        for series, (block, field) in STREAM_SERIES.items():
            assert scrape.value(series, **labels) == info[block].get(field, 0), (name, series)
        assert scrape.value("jetstream_stream_limit_age_seconds", **labels) == \
            info["config"]["max_age"] / 1e9
    # The numbers are not all zeros: a wrong field would show.
    assert streams["LIMITED"]["state"]["num_subjects"] == 4
    assert (streams["LIMITED"]["config"]["max_msgs"], streams["OPEN"]["config"]["max_msgs"]) \
        == (100, -1)
    assert scrape.value("jetstream_stream_limit_bytes", stream_name="OPEN") == -1
    assert scrape.value("jetstream_stream_limit_age_seconds", stream_name="LIMITED") == 3600
    assert scrape.value("jetstream_stream_limit_age_seconds", stream_name="OPEN") == 0
    assert scrape.value("jetstream_stream_consumer_count", stream_name="OPEN") == 2
    for series in (*STREAM_SERIES, "jetstream_stream_limit_age_seconds"):
        assert scrape.help[series].endswith('read the series with is_stream_leader="true"')


async def test_consumer_series_equal_consumer_info(busy_broker):
    server, nc = busy_broker
    scrape, _, consumers, after, _ = await scrape_between_infos(server, nc)
    for (stream, name), info in consumers.items():
        labels = {"stream_name": stream, "consumer_name": name, "is_consumer_leader": "true",
                  "consumer_leader": "", "consumer_desc": info["config"].get("description", ""),
                  "is_stream_leader": "true", "server_name": SERVER_NAME}
        for series, path in CONSUMER_SERIES.items():
            expected = info
            for key in path:
                expected = expected[key]
            assert scrape.value(series, **labels) == expected, (name, series)
        for series, block in (("jetstream_consumer_last_delivery_seconds", "delivered"),
                              ("jetstream_consumer_last_ack_seconds", "ack_floor")):
            last = info[block].get("last_active")
            if last is None:  # never delivered / acked: no series, as the exporter
                assert scrape.find(series, consumer_name=name) == [], (name, series)
                continue
            # The scrape's own `ts` lies between the two infos' (nothing else moved).
            low = (nanos(info["ts"]) - nanos(last)) / 1e9
            high = (nanos(after[(stream, name)]["ts"]) - nanos(last)) / 1e9
            assert low <= scrape.value(series, **labels) <= high, (name, series)
    puller, pusher, waiter = (consumers[k] for k in CONSUMERS)
    assert (puller["num_ack_pending"], puller["num_redelivered"], puller["num_pending"]) == \
        (6, 3, 10)
    assert (puller["ack_floor"]["stream_seq"], puller["delivered"]["consumer_seq"]) == (4, 13)
    assert (pusher["num_ack_pending"], pusher["delivered"]["stream_seq"]) == (3, 5)
    assert waiter["num_waiting"] == 1 and "last_active" not in waiter["delivered"]
    assert scrape.find("jetstream_consumer_num_pending", consumer_desc=PUSH_DESCRIPTION)
    for series in CONSUMER_SERIES:
        assert scrape.help[series].endswith('read the series with is_consumer_leader="true"')


async def test_server_and_account_series_equal_jsz(busy_broker):
    server, nc = busy_broker
    scrape, _, _, _, jsz = await scrape_between_infos(server, nc)
    server_labels = {"server_name": SERVER_NAME, "cluster": "", "domain": "",
                     "meta_leader": "", "is_meta_leader": "true"}
    for series, field in SERVER_SERIES.items():
        assert scrape.value(series, **server_labels) == jsz[field], series
    assert scrape.value("jetstream_server_max_memory") == jsz["config"]["max_memory"]
    assert scrape.value("jetstream_server_max_storage") == jsz["config"]["max_storage"]
    assert scrape.value("jetstream_server_jetstream_disabled") == 0
    assert jsz["reserved_storage"] == MiB and jsz["memory"] > 0 and jsz["consumers"] == 3
    assert scrape.value("jetstream_account_memory_used", account="$G", account_id="$G") > 0
    assert scrape.value("gnatsd_varz_routes") == 0
    assert scrape.find("jetstream_raft_term") == []  # no cluster, no Raft groups


async def test_jetstream_disabled_is_reported(start_broker):
    server = start_broker("-n", SERVER_NAME)
    status, text = server.get("/metrics")
    assert status == 200
    scrape = Scrape(text)
    assert scrape.value("jetstream_server_jetstream_disabled", server_name=SERVER_NAME) == 1
    assert scrape.value("jetstream_server_total_streams") == 0
    assert scrape.find("jetstream_account_memory_used") == []
    assert scrape.value("gnatsd_varz_connections") == 0
