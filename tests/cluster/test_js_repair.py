"""A replica whose store was damaged while it was down (bits flipped in the middle of a segment)
serves none of the damage: it copies the damaged range back from its peers, and every
acknowledged message is on every replica again."""

from __future__ import annotations

import nats
import pytest

from tests.cluster.faults import (
    STREAM,
    SUBJECT,
    Publisher,
    check_replicas,
    flip_bits,
    stored_bytes,
    wait_converged,
)
from tests.clusters import Cluster, wait_for


@pytest.mark.parametrize("while_down", [0, 1500])
async def test_a_replica_damaged_while_down_repairs_from_its_peers(tmp_path, while_down):
    """With messages published while it is down, the leader's log no longer reaches back to
    the victim's: after the copy its own snapshot starts, the leader's newer snapshot starts
    another (or moves the running one's goal: `make chaos` found two copies at once storing
    messages twice)."""
    # Snapshots every 200 messages: the stores are synced and the Raft logs compacted, so the
    # damaged range is not in the log any more; only the peers' stores still hold it.
    cluster = Cluster(str(tmp_path), env={"BROKER_STREAM_SNAPSHOT_MSGS": "200"}).start()
    try:
        cluster.wait_ready()
        nc = await nats.connect(servers=cluster.urls())
        js = nc.jetstream()
        await js.add_stream(name=STREAM, subjects=[SUBJECT], num_replicas=3)
        leader = cluster.index((await js.stream_info(STREAM)).cluster.leader)
        await nc.close()
        publisher = Publisher(cluster.urls())
        await publisher.run(3000)
        victim = (leader + 1) % 3
        wait_converged(cluster, 3000)
        # Its store is written when it snapshots (every 200 messages), in the background.
        wait_for(lambda: stored_bytes(cluster.store_dir(victim)) > 350_000, 20,
                 f"S{victim}'s snapshots to write its store")
        cluster.kill(victim)
        assert flip_bits(cluster.store_dir(victim), [1 / 10, 1 / 2])
        total = 3000
        if while_down:
            await publisher.run(while_down, first=total)
            total += while_down
        cluster.servers[victim].start()
        cluster.wait_for_mesh()
        await publisher.run(200, first=total)
        wait_converged(cluster, total + 200)
        check_replicas(cluster, publisher.acked)
    finally:
        cluster.stop()
