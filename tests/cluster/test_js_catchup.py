"""Replicas that were away: a restart replays the log onto the store (never twice), and a
replica behind the leader's snapshot copies what it lacks from a peer."""

from __future__ import annotations

import nats
import pytest

from tests.cluster.faults import STREAM, SUBJECT, check_replicas, payload_for, wait_converged
from tests.cluster.helpers import connect
from tests.clusters import Cluster


async def publish(cluster: Cluster, first: int, count: int) -> dict[int, int]:
    """Plain publishes (no Nats-Msg-Id: nothing would hide a message applied twice)."""
    nc = await nats.connect(servers=cluster.urls())
    js = nc.jetstream()
    acked = {}
    try:
        for start in range(first, first + count, 100):
            futures = {n: await js.publish_async(SUBJECT, payload_for(n))
                       for n in range(start, min(start + 100, first + count))}
            for n, fut in futures.items():
                acked[n] = (await fut).seq
    finally:
        await nc.close()
    return acked


async def follower_of(cluster: Cluster) -> int:
    nc = await connect(cluster, 0)
    try:
        info = await nc.jetstream().stream_info(STREAM)
        return cluster.index(info.cluster.replicas[0].name)
    finally:
        await nc.close()


@pytest.mark.parametrize("snapshot_every", ["100000", "150"])
async def test_a_restarted_replica_applies_its_log_once(tmp_path, snapshot_every):
    """A clean restart (a rolling upgrade) finds its store ahead of its last snapshot (or of
    an empty log): the store is cut back and the log applied again, never twice."""
    cluster = Cluster(str(tmp_path), env={"BROKER_STREAM_SNAPSHOT_MSGS": snapshot_every}).start()
    try:
        cluster.wait_ready()
        nc = await connect(cluster, 0)
        await nc.jetstream().add_stream(name=STREAM, subjects=[SUBJECT], num_replicas=3)
        await nc.close()
        acked = await publish(cluster, 0, 500)
        follower = await follower_of(cluster)
        wait_converged(cluster, 500)
        cluster.servers[follower].stop()
        acked.update(await publish(cluster, 500, 300))
        cluster.servers[follower].start()
        wait_converged(cluster, 800)
        if snapshot_every != "100000":
            assert "store cut back" in cluster.servers[follower].log()
        check_replicas(cluster, acked)
    finally:
        cluster.stop()


async def test_a_replica_behind_the_snapshot_catches_up_from_a_peer(tmp_path):
    cluster = Cluster(str(tmp_path), env={"BROKER_STREAM_SNAPSHOT_MSGS": "200"}).start()
    try:
        cluster.wait_ready()
        nc = await connect(cluster, 0)
        await nc.jetstream().add_stream(name=STREAM, subjects=[SUBJECT], num_replicas=3)
        await nc.close()
        acked = await publish(cluster, 0, 100)
        follower = await follower_of(cluster)
        wait_converged(cluster, 100)
        cluster.kill(follower)
        acked.update(await publish(cluster, 100, 1500))  # snapshots compact the others' logs
        cluster.restart(follower)
        wait_converged(cluster, 1600)
        log = cluster.servers[follower].log()
        assert "catching up" in log and "caught up" in log, log[-3000:]
        check_replicas(cluster, acked)
    finally:
        cluster.stop()
