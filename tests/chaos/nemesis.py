"""Faults for chaos runs against a three-server cluster, and how to undo them.

    kill, kill_leader   SIGKILL a server (or the stream leader); restarted at heal
    power_loss          kill it and lose what it had not synced (journals=True clusters)
    corrupt             kill it and flip bits in its store
    pause               SIGSTOP it past the election timeout, then SIGCONT
    partition           cut it off from its peers (proxied=True clusters), healed after a while
    kill_two            kill two of three (no quorum until heal)
    stepdown            ask the stream leader to step down (STREAM.LEADER.STEPDOWN)
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import threading

import nats

from storage.powerloss import simulate_power_loss
from tests.cluster.faults import STREAM, flip_bits
from tests.clusters import Cluster

FAULTS = ("kill", "kill_leader", "power_loss", "corrupt", "pause", "partition", "kill_two",
          "stepdown")


class Nemesis:
    """Applies one fault at a time and knows how to undo it (restart, resume, heal)."""

    def __init__(self, cluster: Cluster, rng: random.Random) -> None:
        self.cluster = cluster
        self.rng = rng
        self.down: set[int] = set()
        self.timers: list[threading.Timer] = []

    def strike(self, fault: str, leader: int | None) -> str:
        """Apply `fault` (see FAULTS); `leader` is the stream leader's index when known."""
        cluster, rng = self.cluster, self.rng
        victim = leader if leader is not None and fault not in ("kill", "corrupt") else \
            rng.randrange(3)
        if fault in ("kill", "kill_leader"):
            self._kill(victim)
            return f"killed S{victim}"
        if fault == "kill_two":
            pair = sorted(rng.sample(range(3), 2))
            for i in pair:
                self._kill(i)
            return f"killed S{pair[0]} and S{pair[1]}"
        if fault == "power_loss":
            self._kill(victim)
            tail = rng.choice(("cut", "tear", "pages"))
            report = simulate_power_loss(cluster.journal(victim), cluster.store_dir(victim),
                                         tail=tail, seed=rng.randrange(1 << 30))
            return (f"power loss of S{victim} ({tail}: {len(report.torn)} torn, "
                    f"{len(report.removed)} removed, {len(report.restored)} restored)")
        if fault == "corrupt":
            self._kill(victim)
            where = sorted(rng.random() for _ in range(rng.randint(1, 3)))
            damaged = flip_bits(cluster.store_dir(victim), where)
            return f"killed S{victim} and flipped bits in {damaged or 'nothing (empty store)'}"
        if fault == "stepdown":
            return self._stepdown(leader)
        seconds = rng.uniform(2.5, 5.0)  # past the election timeout (1-2 s)
        if fault == "pause":
            cluster.servers[victim].signal(signal.SIGSTOP)
            timer = threading.Timer(seconds, cluster.servers[victim].signal, (signal.SIGCONT,))
            timer.start()
            self.timers.append(timer)
            return f"paused S{victim} for {seconds:.1f}s"
        assert fault == "partition" and cluster.proxies is not None
        cluster.proxies.isolate(f"S{victim}", seconds=seconds)
        return f"partitioned S{victim} for {seconds:.1f}s"

    def _stepdown(self, leader: int | None) -> str:
        async def ask() -> str:
            nc = await nats.connect(servers=self.cluster.urls(), connect_timeout=2)
            try:
                msg = await nc.request(f"$JS.API.STREAM.LEADER.STEPDOWN.{STREAM}", b"",
                                       timeout=5)
                return json.loads(msg.data).get("error", {}).get("description", "ok")
            finally:
                await nc.close()
        answer = asyncio.run(ask())  # strike() runs in a worker thread: a loop of its own
        return f"asked the stream leader S{leader} to step down: {answer}"

    def _kill(self, i: int) -> None:
        self.cluster.kill(i)
        self.down.add(i)

    def heal(self) -> None:
        for timer in self.timers:
            timer.join()
        self.timers.clear()
        for i in sorted(self.down):
            self.cluster.servers[i].start()
        self.down.clear()
        if self.cluster.proxies is not None:
            self.cluster.proxies.heal()
        self.cluster.wait_for_mesh(30)


async def stream_leader(cluster: Cluster) -> int | None:
    try:
        nc = await nats.connect(servers=cluster.urls(), connect_timeout=2,
                                max_reconnect_attempts=1)
    except Exception:
        return None
    try:
        info = await nc.jetstream(timeout=2).stream_info(STREAM)
        return cluster.index(info.cluster.leader) if info.cluster.leader else None
    except Exception:
        return None
    finally:
        await nc.close()


