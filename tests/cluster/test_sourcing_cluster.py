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
