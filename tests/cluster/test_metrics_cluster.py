"""/metrics on a three-server cluster: every replica reports an R3 stream and consumer, exactly
one says it is the leader and its numbers equal STREAM.INFO / CONSUMER.INFO, and the Raft series
show each group's leader and, on the leader, its peers."""

from __future__ import annotations

import json

from nats.aio.client import Client
from nats.js import api

from tests.cluster.helpers import connect, eventually
from tests.clusters import Cluster
from tests.metrics_scrape import (
    CONSUMER_SERIES,
    STREAM_SERIES,
    Scrape,
    api_json,
    pull,
)


async def populate(nc: Client, stream: str, consumer: str) -> None:
    """An R3 stream with 10 messages on 3 subjects, an R3 pull consumer that got 5 and acked
    3 of them, the acks applied by the consumer's leader."""
    jsm, js = nc.jsm(), nc.jetstream()
    await jsm.add_stream(name=stream, subjects=[f"{stream}.>"], num_replicas=3, max_msgs=1000)
    for i in range(10):
        await js.publish(f"{stream}.{i % 3}", b"m%d" % i)
    await jsm.add_consumer(stream, api.ConsumerConfig(
        durable_name=consumer, ack_policy=api.AckPolicy.EXPLICIT, ack_wait=60))
    msgs = await pull(nc, stream, consumer, 5)
    for msg in msgs[:3]:
        await msg.ack()

    async def acks_applied() -> bool:
        info = await api_json(nc, f"$JS.API.CONSUMER.INFO.{stream}.{consumer}")
        return info["ack_floor"]["stream_seq"] == 3 and info["num_ack_pending"] == 2
    await eventually(acks_applied, 10, "the acks to reach the consumer leader")


async def every_replica_reports(cluster: Cluster, stream: str, consumer: str) -> None:
    """Until every server holds its copy of the stream and the consumer and knows their leaders
    (a quorum answered the publishes; the third replica may still be getting there)."""
    async def reported() -> bool:
        for scrape in scrape_all(cluster).values():
            streams = scrape.find("jetstream_stream_total_messages", stream_name=stream)
            consumers = scrape.find("jetstream_consumer_num_pending", consumer_name=consumer)
            if len(streams) != 1 or len(consumers) != 1:
                return False
            if not streams[0][0]["stream_leader"] or not consumers[0][0]["consumer_leader"]:
                return False
        return True
    await eventually(reported, 10, f"every replica of {stream} and {consumer} to report")


def scrape_all(cluster: Cluster) -> dict[str, Scrape]:
    """Server name -> its scrape."""
    scrapes = {}
    for i in cluster.up():
        status, text = cluster.servers[i].get("/metrics")
        assert status == 200
        scrapes[f"S{i}"] = Scrape(text)
    return scrapes


def numbers(info: dict, series: dict[str, tuple[str, ...]]) -> dict[str, object]:
    """Series name -> the info's value at its path (0 where the info leaves it out)."""
    out = {}
    for name, path in series.items():
        value: object = info
        for key in path:
            value = value.get(key, 0) if isinstance(value, dict) else 0
        out[name] = value
    return out


async def test_replicas_report_and_the_leader_equals_info(cluster):
    stream, consumer = "MET", "reader"
    nc = await connect(cluster, 0)
    try:
        await populate(nc, stream, consumer)
        await every_replica_reports(cluster, stream, consumer)
        stream_info = await api_json(nc, f"$JS.API.STREAM.INFO.{stream}")
        consumer_info = await api_json(nc, f"$JS.API.CONSUMER.INFO.{stream}.{consumer}")
        scrapes = scrape_all(cluster)
        jsz = {f"S{i}": cluster.servers[i].get("/jsz")[1] for i in cluster.up()}
        # Nothing moved while the servers were scraped.
        after = await api_json(nc, f"$JS.API.STREAM.INFO.{stream}")
        assert numbers(after, STREAM_SERIES) == numbers(stream_info, STREAM_SERIES)
        after = await api_json(nc, f"$JS.API.CONSUMER.INFO.{stream}.{consumer}")
        assert numbers(after, CONSUMER_SERIES) == numbers(consumer_info, CONSUMER_SERIES)
    finally:
        await nc.close()

    leader, group = stream_info["cluster"]["leader"], stream_info["cluster"]["raft_group"]
    assert group.startswith("S-R3")
    stream_leaders = []
    for name, scrape in scrapes.items():
        found = scrape.find("jetstream_stream_total_messages", stream_name=stream)
        assert len(found) == 1, name  # every replica reports its own copy
        labels = found[0][0]
        assert (labels["server_name"], labels["stream_raft_group"]) == (name, group)
        assert labels["stream_leader"] == leader
        if labels["is_stream_leader"] == "true":
            stream_leaders.append(name)
    assert stream_leaders == [leader]
    expected = numbers(stream_info, STREAM_SERIES)
    got = {s: scrapes[leader].value(s, stream_name=stream, is_stream_leader="true")
           for s in STREAM_SERIES}
    assert got == expected
    assert expected["jetstream_stream_total_messages"] == 10
    assert expected["jetstream_stream_consumer_count"] == 1
    assert expected["jetstream_stream_subject_count"] == 3

    consumer_leader = consumer_info["cluster"]["leader"]
    consumer_leaders = [name for name, scrape in scrapes.items()
                        if scrape.find("jetstream_consumer_num_pending", consumer_name=consumer,
                                       is_consumer_leader="true")]
    assert consumer_leaders == [consumer_leader]
    for scrape in scrapes.values():
        assert len(scrape.find("jetstream_consumer_num_ack_pending", consumer_name=consumer)) == 1
    got = {s: scrapes[consumer_leader].value(s, consumer_name=consumer) for s in CONSUMER_SERIES}
    assert got == numbers(consumer_info, CONSUMER_SERIES)
    assert got["jetstream_consumer_num_ack_pending"] == 2
    assert got["jetstream_consumer_num_pending"] == 5

    for name, scrape in scrapes.items():
        assert scrape.value("gnatsd_varz_routes") == 2, name
        assert scrape.value("jetstream_server_total_streams", cluster=cluster.name) == \
            jsz[name]["streams"]


async def test_raft_series_show_leaders_and_their_peers(cluster):
    stream, consumer_name = "RAFTY", "raft_reader"
    nc = await connect(cluster, 1)
    try:
        await populate(nc, stream, consumer_name)
        info = await api_json(nc, f"$JS.API.STREAM.INFO.{stream}")
        consumer = await api_json(nc, f"$JS.API.CONSUMER.INFO.{stream}.{consumer_name}")
    finally:
        await nc.close()
    groups = {"stream": (info["cluster"]["raft_group"], info["cluster"]["leader"]),
              "consumer": (consumer["cluster"]["raft_group"], consumer["cluster"]["leader"])}
    names = sorted(f"S{i}" for i in cluster.up())

    async def caught_up() -> bool:
        """Each group has one leader, which sees both peers active and not behind."""
        scrapes = scrape_all(cluster)
        for kind, (group, leader) in groups.items():
            leaders = [n for n, s in scrapes.items()
                       if s.value("jetstream_raft_is_leader", raft_group=group) == 1]
            if leaders != [leader]:
                return False
            lag = scrapes[leader].find("jetstream_raft_peer_lag", raft_group=group,
                                       group_kind=kind)
            active = scrapes[leader].find("jetstream_raft_peer_active", raft_group=group)
            if sorted(lbl["peer"] for lbl, _ in lag) != [n for n in names if n != leader]:
                return False
            if any(v != 0 for _, v in lag) or any(v != 1 for _, v in active):
                return False
        return True
    await eventually(caught_up, 10, "the groups' peers to be current")

    scrapes = scrape_all(cluster)
    for kind, (group, leader) in groups.items():
        terms = set()
        for name, scrape in scrapes.items():
            labels, _ = scrape.find("jetstream_raft_term", raft_group=group)[0]
            assert labels["group_kind"] == kind and labels["stream_name"] == stream
            assert labels["consumer_name"] == (consumer_name if kind == "consumer" else "")
            terms.add(scrape.value("jetstream_raft_term", raft_group=group))
            assert scrape.value("jetstream_raft_applied_index", raft_group=group) <= \
                scrape.value("jetstream_raft_commit_index", raft_group=group)
            if name != leader:  # only the leader knows how far its peers are
                assert scrape.find("jetstream_raft_peer_lag", raft_group=group) == []
        assert len(terms) == 1
    meta_leaders = [n for n, s in scrapes.items()
                    if s.value("jetstream_raft_is_leader", group_kind="meta") == 1]
    assert len(meta_leaders) == 1
    for name, scrape in scrapes.items():
        labels, _ = scrape.find("jetstream_server_total_streams")[0]
        assert labels["meta_leader"] == meta_leaders[0]
        assert labels["is_meta_leader"] == json.dumps(name == meta_leaders[0])
