"""Mirrors and sources on a three-server cluster: the origin (R3 or R1) on some servers, the
copy (R1) on another; the copy survives kill -9 of its own server and of the origin's, and every
origin message is there once and in order. Replicated copies (R3 mirrors) are refused until the
replicas check origin sequences themselves (10052)."""

from __future__ import annotations

import nats
import pytest
from nats.js.api import StreamSource
from nats.js.errors import APIError

from tests.cluster.helpers import eventually
from tests.clusters import Cluster


async def info_of(js, name: str):
    return await js.stream_info(name)


async def test_an_r1_mirror_and_source_of_an_r3_stream_survive_kills(cluster: Cluster):
    nc = await nats.connect(servers=cluster.urls(), max_reconnect_attempts=-1,
                            reconnect_time_wait=0.1)
    try:
        js = nc.jetstream()
        await js.add_stream(name="SRC", subjects=["src.>"], num_replicas=3)
        mirror = await js.add_stream(name="SRCM", mirror=StreamSource(name="SRC"),
                                     num_replicas=1)
        await js.add_stream(name="SRCC", sources=[StreamSource(name="SRC")], num_replicas=1)
        host = cluster.index(mirror.cluster.leader)
        for n in range(1, 201):
            await js.publish(f"src.{n % 3}", b"%d" % n, headers={"Nats-Msg-Id": str(n)})
        cluster.kill(host)  # the mirror's own server, copies under way
        cluster.servers[host].start()
        for n in range(201, 301):
            async def published(n=n) -> bool:
                ack = await js.publish(f"src.{n % 3}", b"%d" % n, timeout=2,
                                       headers={"Nats-Msg-Id": str(n)})
                return ack.seq == n
            await eventually(published, 30, f"publish {n}")

        async def caught_up() -> bool:
            m, c = await info_of(js, "SRCM"), await info_of(js, "SRCC")
            return m.state.last_seq == 300 and c.state.messages == 300
        await eventually(caught_up, 60, "the copies to catch up")
        for seq in (1, 150, 300):
            assert (await js.get_msg("SRCM", seq)).data == b"%d" % seq
        origins = [int((await js.get_msg("SRCC", seq)).headers["Nats-Stream-Source"]
                       .split(" ")[1]) for seq in range(1, 301)]
        assert origins == list(range(1, 301))
        with pytest.raises(APIError) as replicated:
            await js.add_stream(name="SRCR3", mirror=StreamSource(name="SRC"), num_replicas=3)
        assert replicated.value.err_code == 10052
    finally:
        await nc.close()
