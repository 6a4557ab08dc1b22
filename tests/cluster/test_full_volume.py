"""A pod's volume fills up, as deploy/ sizes it: `max_file_store` below the volume, so JetStream
refuses publishes with nats-server's storage error (10047) before the disk itself is full, and
nothing else goes wrong: reads go on through every server, and every acknowledged message is
intact on every replica."""

from __future__ import annotations

import contextlib
import os

import nats
import nats.js.errors
from nats.js.api import ConsumerConfig

from tests.cluster.faults import (
    STREAM,
    SUBJECT,
    check_replicas,
    number_of,
    payload_for,
    wait_converged,
)
from tests.clusters import Cluster, pod_config
from tests.volumes import small_volume

# Each server's store on its own 24 MB volume; JetStream may use 1 MB of it for messages (the
# Raft logs and snapshots live on the same volume, uncounted: hence the headroom).
CONFIG = pod_config(jetstream="max_file_store: 1MB")
SIZE = 2000


async def test_full_store_refuses_publishes_and_keeps_serving_reads(tmp_path):
    with contextlib.ExitStack() as volumes:
        cluster = Cluster(str(tmp_path / "cluster"), config=CONFIG)
        for i in range(cluster.size):
            # Mounted where Cluster puts each server's store, before the servers start.
            volumes.enter_context(small_volume(cluster.store_dir(i), "24m"))
        cluster.start()
        try:
            await _fill_and_read(cluster)
        finally:
            cluster.stop()


async def _fill_and_read(cluster: Cluster) -> None:
    cluster.wait_ready()
    nc = await nats.connect(servers=cluster.urls())
    js = nc.jetstream(timeout=10)
    await js.add_stream(name=STREAM, subjects=[SUBJECT], num_replicas=3)
    await js.add_consumer(STREAM, ConsumerConfig(durable_name="reader", num_replicas=3))
    acked: dict[int, int] = {}
    refused: list[int] = []
    for n in range(2000):
        try:
            ack = await js.publish(SUBJECT, payload_for(n, SIZE),
                                   headers={"Nats-Msg-Id": f"m{n}"})
        except nats.js.errors.APIError as exc:
            refused.append(exc.err_code)
            if len(refused) >= 10:
                break
            continue
        acked[n] = ack.seq
    await nc.close()
    assert len(refused) >= 10, f"{len(acked)} publishes and no refusal: the limit never hit"
    assert set(refused) == {10047}, f"not nats-server's storage error: {refused}"
    assert len(acked) > 300  # about 1 MB of 2 KB messages went in before

    # Reads go on, through every server.
    for i in range(cluster.size):
        reader = await nats.connect(cluster.url(i), allow_reconnect=False)
        try:
            msg = await reader.jetstream().get_msg(STREAM, max(acked.values()))
            assert number_of(msg.data) == max(acked)
        finally:
            await reader.close()
    reader = await nats.connect(servers=cluster.urls())
    try:
        sub = await reader.jetstream().pull_subscribe_bind("reader", stream=STREAM)
        got = []
        while len(got) < len(acked):
            for msg in await sub.fetch(100, timeout=10):
                got.append(number_of(msg.data))
                await msg.ack()
        assert got == sorted(acked)
    finally:
        await reader.close()

    for i in range(cluster.size):
        stat = os.statvfs(cluster.store_dir(i))
        assert stat.f_bavail > 0, f"S{i}'s volume itself filled up: the limit came too late"
    wait_converged(cluster, max(acked.values()))
    check_replicas(cluster, acked)
