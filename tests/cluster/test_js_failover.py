"""Faults under load on an R3 stream: kill the leader, cut the power, pause it, partition it.
After each, every acknowledged message is on every replica, once, in order."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading

import nats
import nats.js.errors
import pytest
from nats.js.api import ConsumerConfig

from storage.powerloss import simulate_power_loss
from tests.cluster.faults import STREAM, SUBJECT, Publisher, check_replicas, wait_converged
from tests.cluster.helpers import eventually
from tests.clusters import Cluster

TOTAL = 1500


async def leader_of(cluster: Cluster, stream: str = STREAM) -> int:
    nc = await nats.connect(servers=cluster.urls())
    try:
        info = await nc.jetstream().stream_info(stream)
        return cluster.index(info.cluster.leader)
    finally:
        await nc.close()


async def create_stream(cluster: Cluster) -> None:
    nc = await nats.connect(servers=cluster.urls())
    try:
        await nc.jetstream().add_stream(name=STREAM, subjects=[SUBJECT], num_replicas=3)
    finally:
        await nc.close()


async def run_with_fault(cluster: Cluster, fault, at: int = TOTAL // 3) -> Publisher:
    """Publish TOTAL messages; call `fault()` (in a thread) once `at` are acknowledged."""
    publisher = Publisher(cluster.urls())
    loop = asyncio.get_running_loop()
    fired: list[asyncio.Future] = []

    def progress(acked: int) -> None:
        if acked >= at and not fired:
            fired.append(loop.run_in_executor(None, fault))

    await publisher.run(TOTAL, progress)
    if fired:
        await fired[0]
    assert len(publisher.acked) == TOTAL
    return publisher


async def test_kill_the_leader_while_publishing(tmp_path):
    cluster = Cluster(str(tmp_path)).start()
    try:
        cluster.wait_ready()
        await create_stream(cluster)
        victim = await leader_of(cluster)
        publisher = await run_with_fault(cluster, lambda: cluster.kill(victim))
        assert publisher.errors > 0  # the kill was felt
        cluster.restart(victim)
        wait_converged(cluster, TOTAL)
        check_replicas(cluster, publisher.acked)
    finally:
        cluster.stop()


async def test_power_loss_of_the_killed_leader(tmp_path):
    cluster = Cluster(str(tmp_path), journals=True).start()
    try:
        cluster.wait_ready()
        await create_stream(cluster)
        victim = await leader_of(cluster)
        publisher = await run_with_fault(cluster, lambda: cluster.kill(victim))
        simulate_power_loss(cluster.journal(victim), cluster.store_dir(victim), tail="tear",
                            seed=11)
        cluster.restart(victim)
        wait_converged(cluster, TOTAL)
        check_replicas(cluster, publisher.acked)
    finally:
        cluster.stop()


async def test_power_loss_of_all_three(tmp_path):
    cluster = Cluster(str(tmp_path), journals=True).start()
    try:
        cluster.wait_ready()
        await create_stream(cluster)
        publisher = Publisher(cluster.urls(), give_up_after=5)
        loop = asyncio.get_running_loop()
        killed = asyncio.Event()

        def progress(acked: int) -> None:
            if acked >= TOTAL // 2 and not killed.is_set():
                for i in range(3):
                    cluster.servers[i].signal(signal.SIGKILL)
                killed.set()

        # Nobody is left to acknowledge once all three are gone: the publisher gives up.
        with contextlib.suppress(AssertionError):
            await publisher.run(TOTAL, progress)
        for i in range(3):
            cluster.servers[i].process.wait(10)
            simulate_power_loss(cluster.journal(i), cluster.store_dir(i), tail="pages",
                                seed=i)
        assert killed.is_set() and publisher.acked
        for i in range(3):
            cluster.servers[i].start()
        cluster.wait_for_mesh()
        await loop.run_in_executor(None, cluster.wait_ready)
        wait_converged(cluster, max(publisher.acked.values()))
        check_replicas(cluster, publisher.acked)
    finally:
        cluster.stop()


async def test_pause_the_leader_past_the_election_timeout(tmp_path):
    cluster = Cluster(str(tmp_path)).start()
    try:
        cluster.wait_ready()
        await create_stream(cluster)
        victim = await leader_of(cluster)

        publisher = Publisher(cluster.urls())
        paused = asyncio.Event()
        resume = threading.Timer(4.0, cluster.servers[victim].signal, (signal.SIGCONT,))

        def progress(acked: int) -> None:
            if acked >= TOTAL // 3 and not paused.is_set():
                cluster.servers[victim].signal(signal.SIGSTOP)
                paused.set()
                resume.start()  # a thread: the test's loop may be blocked waiting by then

        await publisher.run(TOTAL, progress)
        assert len(publisher.acked) == TOTAL

        async def new_leader() -> bool:
            return await leader_of(cluster) != victim
        await eventually(new_leader, 10, "another leader")
        wait_converged(cluster, TOTAL)
        check_replicas(cluster, publisher.acked)
    finally:
        cluster.stop()


async def test_partition_the_leader_from_its_peers(tmp_path):
    cluster = Cluster(str(tmp_path), proxied=True).start()
    try:
        cluster.wait_ready()
        await create_stream(cluster)
        victim = await leader_of(cluster)
        assert cluster.proxies is not None
        proxies = cluster.proxies
        publisher = Publisher(cluster.urls())
        cut = asyncio.Event()

        def progress(acked: int) -> None:
            if acked >= TOTAL // 3 and not cut.is_set():
                cut.set()
                proxies.isolate(f"S{victim}", seconds=3.0)

        await publisher.run(TOTAL, progress)
        assert cut.is_set()
        cluster.wait_for_mesh()
        wait_converged(cluster, TOTAL)
        check_replicas(cluster, publisher.acked)
    finally:
        cluster.stop()


async def test_kill_the_consumer_leader_acks_survive(tmp_path):
    """Acks confirmed by ack_sync are on a quorum: after the consumer leader dies, the new one
    redelivers only what was delivered and not acknowledged, then carries on."""
    cluster = Cluster(str(tmp_path)).start()
    try:
        cluster.wait_ready()
        nc = await nats.connect(servers=cluster.urls())
        js = nc.jetstream()
        await js.add_stream(name="WORK", subjects=["work"], num_replicas=3)
        for i in range(50):
            await js.publish("work", b"%d" % i)
        sub = await js.pull_subscribe("work", durable="w", stream="WORK",
                                      config=ConsumerConfig(ack_wait=2, num_replicas=3))
        for msg in await sub.fetch(20, timeout=5):
            await msg.ack_sync()
        unacked = [int(m.data) for m in await sub.fetch(5, timeout=5)]
        assert unacked == list(range(20, 25))
        victim = cluster.index((await js.consumer_info("WORK", "w")).cluster.leader)
        await nc.close()
        cluster.kill(victim)

        survivor = next(i for i in range(3) if i != victim)
        nc = await nats.connect(cluster.url(survivor))
        js = nc.jetstream()

        async def new_leader() -> bool:
            info = await js.consumer_info("WORK", "w")
            return info.cluster.leader not in (None, f"S{victim}")
        await eventually(new_leader, 15, "a new consumer leader")
        sub = await js.pull_subscribe("work", durable="w", stream="WORK")
        seen: list[int] = []
        while len(seen) < 30:
            for msg in await sub.fetch(30 - len(seen), timeout=5):
                seen.append(int(msg.data))
                await msg.ack_sync()
        assert sorted(seen) == list(range(20, 50)), "an acknowledged message came back"
        info = await js.consumer_info("WORK", "w")
        assert info.ack_floor.stream_seq == 50 and info.num_ack_pending == 0
        await nc.close()
    finally:
        cluster.stop()


async def test_without_a_quorum_requests_fail_fast_and_work_resumes_with_one_peer_back(tmp_path):
    cluster = Cluster(str(tmp_path)).start()
    try:
        cluster.wait_ready()
        nc = await nats.connect(cluster.url(0))
        js = nc.jetstream(timeout=2)
        await js.add_stream(name="Q", subjects=["q"], num_replicas=3)
        for i in range(10):
            await js.publish("q", b"%d" % i)
        cluster.kill(1)
        cluster.kill(2)

        async def leaderless() -> bool:
            # The lone member answers from its own copy (which may not know yet that the last
            # messages were committed: only a leader can tell it).
            info = await js.stream_info("Q")
            status, body = cluster.servers[0].get("/healthz")  # and it is not ready
            return info.cluster.leader is None and info.state.messages <= 10 and \
                status == 503 and "meta leader" in body["error"]
        await eventually(leaderless, 15, "the lone member to see no stream or meta leader")
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(nats.js.errors.NoStreamResponseError):
            await js.publish("q", b"lost?")  # 503 at once: nobody leads the stream
        with pytest.raises(nats.js.errors.APIError) as refused:
            await js.add_stream(name="OTHER", subjects=["other"])
        assert refused.value.err_code == 10008
        assert loop.time() - started < 1.0, "refusals came at once, not after a timeout"

        cluster.servers[1].start()
        cluster.wait_for_mesh()

        async def publishes() -> bool:
            # A retry after a lost ack is a duplicate of the same id, not a second copy.
            ack = await js.publish("q", b"back", headers={"Nats-Msg-Id": "back"})
            return ack.seq == 11
        await eventually(publishes, 20, "a leader with one peer back")
        info = await js.stream_info("Q")
        assert info.state.messages == 11 and info.cluster.leader in ("S0", "S1")

        async def ready() -> bool:
            return cluster.servers[0].get("/healthz")[0] == 200
        await eventually(ready, 10, "S0 ready again")
        await nc.close()
    finally:
        cluster.stop()
