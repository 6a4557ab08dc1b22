"""Mirrors and sources on a three-server cluster: an R3 origin; R1 and R3 copies. The copies
survive kill -9 of their own server (an R3 copy's leader: a new leader goes on from what the
replicas applied, and a copy the old leader proposed in flight is stored once), and every
origin message is there once and in order."""

from __future__ import annotations

import nats
from nats.js.api import StreamSource

from tests.cluster.helpers import eventually
from tests.clusters import Cluster


async def info_of(js, name: str):
    return await js.stream_info(name)


COPIES = {  # name -> (mirror?, replicas)
    "SRCM": (True, 1), "SRCC": (False, 1), "SRCM3": (True, 3), "SRCC3": (False, 3)}


async def test_r1_and_r3_mirrors_and_sources_of_an_r3_stream_survive_kills(cluster: Cluster):
    nc = await nats.connect(servers=cluster.urls(), max_reconnect_attempts=-1,
                            reconnect_time_wait=0.1)
    try:
        js = nc.jetstream()
        await js.add_stream(name="SRC", subjects=["src.>"], num_replicas=3)
        leaders = {}
        for name, (mirror, replicas) in COPIES.items():
            origin = StreamSource(name="SRC")
            created = await js.add_stream(name=name, num_replicas=replicas,
                                          **({"mirror": origin} if mirror else
                                             {"sources": [origin]}))
            leaders[name] = created.cluster.leader
        for n in range(1, 201):
            await js.publish(f"src.{n % 3}", b"%d" % n, headers={"Nats-Msg-Id": str(n)})
        # The R3 mirror's leader goes (it hosts other copies too), copies under way.
        victim = cluster.index(leaders["SRCM3"])
        cluster.kill(victim)
        for n in range(201, 301):
            async def published(n=n) -> bool:
                ack = await js.publish(f"src.{n % 3}", b"%d" % n, timeout=2,
                                       headers={"Nats-Msg-Id": str(n)})
                return ack.seq == n
            await eventually(published, 30, f"publish {n}")
        cluster.servers[victim].start()

        async def caught_up() -> bool:
            for name, (mirror, _) in COPIES.items():
                info = await info_of(js, name)
                if (info.state.last_seq if mirror else info.state.messages) != 300:
                    return False
            return True
        await eventually(caught_up, 90, "every copy to catch up")
        for name, (mirror, _) in COPIES.items():
            info = await info_of(js, name)
            assert info.state.messages == 300, name
            if mirror:
                assert [(await js.get_msg(name, seq)).data for seq in (1, 150, 300)] == \
                    [b"1", b"150", b"300"]
                continue
            origins = [int((await js.get_msg(name, seq)).headers["Nats-Stream-Source"]
                           .split(" ")[1]) for seq in range(1, 301)]
            assert origins == list(range(1, 301)), name  # once each, in order
    finally:
        await nc.close()


async def test_copies_go_on_after_their_leader_is_partitioned_away(tmp_path):
    """An R3 mirror's leader cut off from its peers for a few seconds while the origin takes
    publishes: a new leader goes on, the old one rejoins, nothing is missing or doubled."""
    cluster = Cluster(str(tmp_path), proxied=True).start()
    try:
        cluster.wait_ready()
        assert cluster.proxies is not None
        nc = await nats.connect(servers=cluster.urls(), max_reconnect_attempts=-1,
                                reconnect_time_wait=0.1)
        js = nc.jetstream()
        await js.add_stream(name="SRC", subjects=["src.>"], num_replicas=3)
        copy = await js.add_stream(name="COPY", mirror=StreamSource(name="SRC"),
                                   num_replicas=3)
        for n in range(1, 101):
            await js.publish("src.x", b"%d" % n, headers={"Nats-Msg-Id": str(n)})
        cluster.proxies.isolate(copy.cluster.leader, seconds=3.0)
        for n in range(101, 301):
            async def published(n=n) -> bool:
                ack = await js.publish("src.x", b"%d" % n, timeout=2,
                                       headers={"Nats-Msg-Id": str(n)})
                return ack.seq == n
            await eventually(published, 30, f"publish {n}")
        cluster.wait_for_mesh()

        async def caught_up() -> bool:
            return (await info_of(js, "COPY")).state.last_seq == 300
        await eventually(caught_up, 60, "the mirror to catch up after the partition")
        info = await info_of(js, "COPY")
        assert (info.state.messages, info.state.first_seq) == (300, 1)
        for seq in range(1, 301, 37):
            assert (await js.get_msg("COPY", seq)).data == b"%d" % seq
        await nc.close()
    finally:
        cluster.stop()
