"""The seed's cluster from one config file shared by three servers, as the StatefulSet runs it:
`server_name: $POD_NAME`, `cluster { name, routes }` listing every pod (itself included),
`jetstream { store_dir }`. R1 and R3 streams, quorum acks, failover and catch-up through it."""

from __future__ import annotations

import asyncio

import nats
import pytest

from tests.cluster.faults import STREAM, SUBJECT, Publisher, check_replicas, wait_converged
from tests.cluster.helpers import broker_and_nats_server, eventually
from tests.clusters import Cluster

SEED_CONFIG = """
# One file for every pod; only the environment differs between them.
server_name: $POD_NAME

jetstream {
  store_dir: $STORE_DIR
  max_file_store: 1GB
}

cluster {
  name: nats-cluster
  host: 127.0.0.1
  port: $CLUSTER_PORT
  routes: [
{routes}
  ]
}
"""


@pytest.mark.parametrize("impl", broker_and_nats_server())
async def test_the_seed_config_brings_up_a_cluster_with_r1_and_r3_streams(tmp_path, impl):
    cluster = Cluster(str(tmp_path), impl=impl, config=SEED_CONFIG).start()
    try:
        cluster.wait_ready(60)
        nc = await nats.connect(cluster.url(2))
        js = nc.jetstream()
        try:
            r3 = await js.add_stream(name="ORDERS", subjects=["orders.>"], num_replicas=3)
            r1 = await js.add_stream(name="AUDIT", subjects=["audit.>"], num_replicas=1)
            assert r3.config.num_replicas == 3 and r1.config.num_replicas == 1
            for i in range(10):
                ack = await js.publish("orders.new", b"o%d" % i)
                assert (ack.stream, ack.seq) == ("ORDERS", i + 1)
                await js.publish("audit.log", b"a%d" % i)
            info = await js.stream_info("ORDERS")
            names = {info.cluster.leader} | {r.name for r in info.cluster.replicas or []}
            assert names == {"S0", "S1", "S2"}, "R3 lives on three distinct servers"
            assert info.state.messages == 10
            info = await js.stream_info("AUDIT")
            assert info.cluster.leader in {"S0", "S1", "S2"} and not info.cluster.replicas
            assert info.state.messages == 10
        finally:
            await nc.close()
    finally:
        cluster.stop()


async def test_failover_and_catch_up_of_a_cluster_from_the_seed_config(tmp_path):
    cluster = Cluster(str(tmp_path), config=SEED_CONFIG).start()
    try:
        cluster.wait_ready(60)
        nc = await nats.connect(servers=cluster.urls())
        try:
            js = nc.jetstream()
            await js.add_stream(name=STREAM, subjects=[SUBJECT], num_replicas=3)
            victim = cluster.index((await js.stream_info(STREAM)).cluster.leader)
        finally:
            await nc.close()
        publisher = Publisher(cluster.urls())
        loop = asyncio.get_running_loop()
        killed: list[asyncio.Future] = []

        def progress(acked: int) -> None:
            if acked >= 300 and not killed:
                killed.append(loop.run_in_executor(None, cluster.kill, victim))

        await publisher.run(1000, progress)
        await killed[0]
        assert len(publisher.acked) == 1000
        cluster.servers[victim].start()  # same file, same POD_NAME: it rejoins and catches up
        cluster.wait_for_mesh()
        wait_converged(cluster, max(publisher.acked.values()))

        async def healthy() -> bool:
            return cluster.servers[victim].get("/healthz?js-enabled-only=true")[0] == 200
        await eventually(healthy, 30, f"S{victim} healthy again")
        check_replicas(cluster, publisher.acked)
    finally:
        cluster.stop()
