"""Lame duck on a cluster, as a StatefulSet's preStop hook uses it: the pod's server hands its
Raft leaderships to peers, leaves JetStream (readiness fails), tells its clients to move, closes
them, and exits; the kubelet's SIGTERM that follows the hook does not cut this short. Under a
publisher that keeps publishing with acks, nothing acknowledged is lost or stored twice."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys

import nats
from nats.js.api import ConsumerConfig

from tests.cluster.faults import STREAM, SUBJECT, Publisher, check_replicas, wait_converged
from tests.cluster.helpers import eventually
from tests.clusters import Cluster, pod_config, wait_for

TOTAL = 1500
# The shortest lame duck nats-server accepts (30 s), with a short grace so the test is quick:
# after the grace, the closes are spread one second apart at most.
CONFIG = pod_config(top="lame_duck_duration: 30s\nlame_duck_grace_period: 1s")


async def test_lame_duck_hands_over_leadership_and_ignores_sigterm(tmp_path):
    cluster = Cluster(str(tmp_path), config=CONFIG).start()
    try:
        cluster.wait_ready()
        nc = await nats.connect(servers=cluster.urls())
        js = nc.jetstream()
        await js.add_stream(name=STREAM, subjects=[SUBJECT], num_replicas=3)
        await js.add_consumer(STREAM, ConsumerConfig(durable_name="billing", num_replicas=3))
        info = await js.stream_info(STREAM)
        victim = cluster.index(info.cluster.leader)
        others = [i for i in range(3) if i != victim]

        moved: list[str] = []
        told = asyncio.Event()
        watcher = await nats.connect(servers=[cluster.url(victim)] + [cluster.url(i) for i in
                                                                      others],
                                     dont_randomize=True, reconnect_time_wait=0.1,
                                     lame_duck_mode_cb=_set(told),
                                     reconnected_cb=_note(moved, lambda: watcher.connected_url))
        assert watcher.connected_url.port == cluster.servers[victim].port

        publisher = Publisher(cluster.urls())
        loop = asyncio.get_running_loop()
        started: list[asyncio.Future] = []

        def lame_duck() -> None:
            subprocess.run([sys.executable, "-m", "broker", "--signal",
                            f"ldm={cluster.servers[victim].pid}"], check=True, timeout=10)
            wait_for(lambda: "Entering lame duck mode" in cluster.servers[victim].log(), 10,
                     "the victim to enter lame duck mode")
            # What the kubelet does once the preStop hook returned.
            cluster.servers[victim].signal(signal.SIGTERM)

        def progress(acked: int) -> None:
            if acked >= TOTAL // 3 and not started:
                started.append(loop.run_in_executor(None, lame_duck))

        publishing = asyncio.ensure_future(publisher.run(TOTAL, progress))
        await eventually(lambda: _started(started), 30, "lame duck to be signalled")
        await started[0]

        # The ldm INFO reaches clients only after the hand-over and after JetStream stopped,
        # so getting it proves the SIGTERM sent before did not stop the server.
        await asyncio.wait_for(told.wait(), 15)
        status, _ = cluster.servers[victim].get("/healthz?js-enabled=true")
        assert status == 503, "readiness must fail while the pod drains"
        new_leader = (await js.stream_info(STREAM)).cluster.leader
        assert cluster.index(new_leader) in others
        consumer_leader = (await js.consumer_info(STREAM, "billing")).cluster.leader
        assert cluster.index(consumer_leader) in others

        process = cluster.servers[victim].process
        assert process is not None
        assert await loop.run_in_executor(None, lambda: process.wait(40)) == 0
        log = cluster.servers[victim].log()
        assert "ignoring SIGTERM" in log
        assert "handed over leadership of" in log
        await eventually(lambda: _moved(moved, cluster, others), 15,
                         "the watcher to reconnect to another server")

        await asyncio.wait_for(publishing, 120)
        assert len(publisher.acked) == TOTAL
        await watcher.close()
        await nc.close()

        cluster.restart(victim)
        wait_converged(cluster, TOTAL)
        check_replicas(cluster, publisher.acked)
    finally:
        cluster.stop()


def _set(event: asyncio.Event):
    async def callback() -> None:
        event.set()
    return callback


def _note(seen: list[str], url):
    async def callback() -> None:
        seen.append(f"{url().hostname}:{url().port}")
    return callback


async def _started(started: list) -> bool:
    return bool(started)


async def _moved(moved: list[str], cluster: Cluster, others: list[int]) -> bool:
    ports = {cluster.servers[i].port for i in others}
    return any(int(url.rsplit(":", 1)[1]) in ports for url in moved)
