"""Clustered JetStream on three real brokers, through nats-py: placement, any-server access,
replicated streams and consumers, info blocks, stepdown."""

from __future__ import annotations

import nats
import pytest
from nats.js.api import ConsumerConfig, StreamConfig
from nats.js.errors import APIError, NotFoundError

from tests.cluster.faults import local_state
from tests.cluster.helpers import connect, eventually
from tests.clusters import Cluster, wait_for


async def test_a_stream_created_on_one_server_is_visible_from_the_others(cluster):
    a, c = await connect(cluster, 0), await connect(cluster, 2)
    try:
        created = await a.jetstream().add_stream(name="VISIBLE", subjects=["visible.>"])
        assert created.cluster is not None and created.cluster.leader in ("S0", "S1", "S2")
        info = await c.jetstream().stream_info("VISIBLE")
        assert info.config.subjects == ["visible.>"]
        names = [s.config.name for s in await c.jetstream().streams_info()]
        assert "VISIBLE" in names
        await c.jetstream().delete_stream("VISIBLE")
        with pytest.raises(NotFoundError):
            await a.jetstream().stream_info("VISIBLE")
    finally:
        await a.close()
        await c.close()


async def test_r3_publish_and_consume_through_any_server(cluster):
    ncs = [await connect(cluster, i) for i in range(3)]
    try:
        js = [nc.jetstream() for nc in ncs]
        info = await js[0].add_stream(name="ORDERS", subjects=["orders.>"], num_replicas=3)
        assert info.cluster is not None
        assert sorted([info.cluster.leader] + [r.name for r in info.cluster.replicas]) == \
            ["S0", "S1", "S2"]
        assert info.cluster.raft_group.startswith("S-R3F-")
        for i in range(30):
            ack = await js[i % 3].publish(f"orders.{i}", b"order %d" % i)
            assert ack.seq == i + 1 and ack.stream == "ORDERS"
        dup = await js[1].publish("orders.x", b"again", headers={"Nats-Msg-Id": "once"})
        again = await js[2].publish("orders.x", b"again", headers={"Nats-Msg-Id": "once"})
        assert again.duplicate and again.seq == dup.seq
        sub = await js[2].pull_subscribe("orders.>", durable="reader")
        got = []
        while len(got) < 31:
            for msg in await sub.fetch(31 - len(got), timeout=5):
                got.append(msg.data)
                await msg.ack()
        assert got[:30] == [b"order %d" % i for i in range(30)]
        consumer = await js[0].consumer_info("ORDERS", "reader")
        assert consumer.cluster is not None and consumer.cluster.raft_group.startswith("C-R3F-")

        async def settled():
            info = await js[0].consumer_info("ORDERS", "reader")
            return info.num_ack_pending == 0 and info.ack_floor.stream_seq == 31
        await eventually(settled, 10, "the acks to be applied")
        msg = await js[1].get_msg("ORDERS", 5)
        assert msg.data == b"order 4"
    finally:
        for nc in ncs:
            await nc.close()


async def test_r1_streams_live_on_one_server_and_serve_all(cluster):
    a, b = await connect(cluster, 0), await connect(cluster, 1)
    try:
        info = await a.jetstream().add_stream(name="SINGLE", subjects=["single"])
        assert info.cluster is not None and info.cluster.leader in ("S0", "S1", "S2")
        assert not info.cluster.replicas
        for i in range(5):
            assert (await b.jetstream().publish("single", b"%d" % i)).seq == i + 1
        sub = await b.jetstream().subscribe("single", durable="push", ordered_consumer=False)
        got = [(await sub.next_msg(5)).data for _ in range(5)]
        assert got == [b"%d" % i for i in range(5)]
    finally:
        await a.close()
        await b.close()


async def test_create_errors_come_from_the_meta_leader(cluster):
    nc = await connect(cluster, 1)
    js = nc.jetstream()
    try:
        await js.add_stream(name="TAKEN", subjects=["taken.>"])
        with pytest.raises(APIError) as exc:
            await js.add_stream(name="OVERLAP", subjects=["taken.a"])
        assert exc.value.err_code == 10065
        with pytest.raises(APIError) as exc:
            await js.add_stream(name="TAKEN", subjects=["other"])
        assert exc.value.err_code == 10058
        with pytest.raises(APIError) as exc:
            await js.add_stream(name="BIG", subjects=["big"], num_replicas=5)
        assert exc.value.err_code == 10005
        with pytest.raises(NotFoundError):
            await js.stream_info("NOPE")
        with pytest.raises(APIError) as exc:
            await js.add_consumer("TAKEN", ConsumerConfig(durable_name="c", num_replicas=3))
        assert exc.value.err_code == 10126
        with pytest.raises(APIError) as exc:
            await js.update_stream(StreamConfig(name="TAKEN", subjects=["taken.>"],
                                                num_replicas=3))
        assert exc.value.err_code == 10061
    finally:
        await nc.close()


async def test_stream_leader_stepdown_moves_the_leader(cluster):
    nc = await connect(cluster, 0)
    js = nc.jetstream()
    try:
        await js.add_stream(name="STEP", subjects=["step"], num_replicas=3)
        before = (await js.stream_info("STEP")).cluster.leader
        response = await nc.request("$JS.API.STREAM.LEADER.STEPDOWN.STEP", b"", timeout=5)
        assert b'"success": true' in response.data or b'"success":true' in response.data

        async def moved():
            info = await js.stream_info("STEP")
            return info.cluster.leader not in (None, before)
        await eventually(moved, 10, "a new stream leader")
        assert (await js.publish("step", b"after")).seq == 1
    finally:
        await nc.close()


async def test_consumer_leader_failover_keeps_acks(cluster):
    nc = await connect(cluster, 0)
    js = nc.jetstream()
    try:
        await js.add_stream(name="WORK", subjects=["work"], num_replicas=3)
        for i in range(20):
            await js.publish("work", b"%d" % i)
        sub = await js.pull_subscribe("work", durable="w", stream="WORK")
        first = await sub.fetch(10, timeout=5)
        for msg in first:
            await msg.ack_sync()  # acknowledged only once committed on a quorum
        info = await js.consumer_info("WORK", "w")
        old = info.cluster.leader
        await nc.request("$JS.API.CONSUMER.LEADER.STEPDOWN.WORK.w", b"", timeout=5)

        async def moved():
            ci = await js.consumer_info("WORK", "w")
            return ci.cluster.leader not in (None, old)
        await eventually(moved, 10, "a new consumer leader")
        rest = []
        while len(rest) < 10:
            rest += await sub.fetch(10 - len(rest), timeout=5)
        assert sorted(int(m.data) for m in rest) == list(range(10, 20))
    finally:
        await nc.close()


async def test_api_answers_quickly_without_a_meta_leader(tmp_path):
    cluster = Cluster(str(tmp_path)).start()
    try:
        cluster.wait_ready()
        cluster.kill(1)
        cluster.kill(2)
        nc = await nats.connect(cluster.url(0))
        try:
            async def refused():
                try:
                    await nc.jetstream().add_stream(name="X", subjects=["x"])
                except APIError as exc:
                    return exc.err_code == 10008
                except Exception:  # a timeout while the old leader still believes
                    return False
                return False
            await eventually(refused, 20, "503/10008 from the leaderless server")
        finally:
            await nc.close()
    finally:
        cluster.stop()


async def test_monitoring_shows_the_meta_group_and_replicas(cluster):
    nc = await connect(cluster, 0)
    try:
        await nc.jetstream().add_stream(name="MON", subjects=["mon"], num_replicas=3)
    finally:
        await nc.close()
    for i in range(3):
        def mon(i: int = i) -> list[dict]:
            # A follower opens its copy when it applies the assignment, maybe after the ack.
            status, jsz = cluster.servers[i].get("/jsz?streams=true")
            assert status == 200
            streams = jsz["account_details"][0]["stream_detail"] if jsz["account_details"] \
                else []
            return [s for s in streams if s["name"] == "MON"]
        (detail,) = wait_for(mon, 10, f"MON in S{i}'s /jsz")
        assert detail["cluster"]["raft_group"].startswith("S-R3F-")
        _, jsz = cluster.servers[i].get("/jsz")
        assert jsz["meta_cluster"]["cluster_size"] == 3
        assert jsz["meta_cluster"]["leader"] in ("S0", "S1", "S2")


async def test_a_purge_and_a_delete_through_any_server_reach_every_replica(cluster):
    nc = await connect(cluster, 1)
    js = nc.jetstream()
    try:
        await js.add_stream(name="PURGED", subjects=["purged.>"], num_replicas=3)
        for i in range(10):
            await js.publish("purged.a" if i % 2 else "purged.b", b"%d" % i)
        assert await js.purge_stream("PURGED", subject="purged.a")
        bad = await nc.request("$JS.API.STREAM.PURGE.PURGED", b'{"seq": 3, "keep": 1}',
                               timeout=5)
        assert b'"err_code": 10003' in bad.data  # seq and keep together: refused by the leader
        await js.delete_msg("PURGED", 9)  # a purged.b message, on every replica
        gone = await nc.request("$JS.API.STREAM.MSG.DELETE.PURGED", b'{"seq": 11}', timeout=5)
        assert b'"err_code": 10057' in gone.data  # past the end of the stream
    finally:
        await nc.close()
    for i in range(3):
        def copy(i: int = i) -> bool:
            state = local_state(cluster, i, "PURGED")
            return state is not None and state["messages"] == 4 and state["last_seq"] == 10
        wait_for(copy, 10, f"S{i}'s copy purged of purged.a and without message 9")
