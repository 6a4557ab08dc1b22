"""Cluster benchmarks on three servers on loopback: R3 async publish (256 acks outstanding),
R3 sync publish latency, and failover time (leader killed -> first acknowledged publish).

Our PubAck means "fsynced on a quorum"; nats-server's default does not fsync before acking.

    python -m tests.bench.cluster [--impl broker|nats-server|both] [--count N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time

import nats

from tests.bench import jetstream
from tests.clusters import Cluster


def _cluster(impl: str) -> Cluster:
    cluster = Cluster(tempfile.mkdtemp(prefix=f"bench-{impl}-"), impl=impl).start()
    cluster.wait_ready(60)
    return cluster


async def _stream_leader(cluster: Cluster, stream: str) -> int:
    nc = await nats.connect(servers=cluster.urls())
    try:
        for _ in range(100):
            info = await nc.jetstream().stream_info(stream)
            if info.cluster is not None and info.cluster.leader:
                return cluster.index(info.cluster.leader)
            await asyncio.sleep(0.1)
        raise RuntimeError("no stream leader")
    finally:
        await nc.close()


def r3_async_publish(impl: str, count: int) -> dict:
    cluster = _cluster(impl)
    try:
        # Publish through a follower's neighbour: the leader may be any of the three.
        return jetstream.async_publish(cluster.servers[0], count=count, replicas=3)
    finally:
        cluster.stop()


def r3_sync_publish(impl: str, count: int = 1000) -> dict:
    cluster = _cluster(impl)
    try:
        return jetstream.sync_publish(cluster.servers[0], count=count, replicas=3)
    finally:
        cluster.stop()


async def _failover(cluster: Cluster) -> dict:
    nc = await nats.connect(servers=cluster.urls(), reconnect_time_wait=0.05,
                            max_reconnect_attempts=-1)
    js = nc.jetstream(timeout=1)
    await js.add_stream(name="FAIL", subjects=["fail"], num_replicas=3)
    for _ in range(100):
        await js.publish("fail", b"warm")
    victim = await _stream_leader(cluster, "FAIL")
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, cluster.kill, victim)
    killed = time.perf_counter()
    attempts = 0
    while True:
        attempts += 1
        try:
            await js.publish("fail", b"after", timeout=0.5)
            break
        except Exception:  # no leader yet: the client sees a timeout or a 503
            await asyncio.sleep(0.02)
        if time.perf_counter() - killed > 30:
            raise RuntimeError("no leader 30 s after the kill")
    elapsed = time.perf_counter() - killed
    await nc.close()
    return {"failover_seconds": round(elapsed, 3), "attempts": attempts}


def failover(impl: str, rounds: int = 3) -> dict:
    results = []
    for _ in range(rounds):
        cluster = _cluster(impl)
        try:
            results.append(asyncio.run(_failover(cluster))["failover_seconds"])
        finally:
            cluster.stop()
    return {"rounds": results, "max_seconds": max(results),
            "mean_seconds": round(sum(results) / len(results), 3)}


# name -> run(impl, count): each starts and stops its own three-server cluster.
BENCHES = {
    "r3_async_publish": r3_async_publish,
    "r3_sync_publish": lambda impl, count: r3_sync_publish(impl),
    "r3_failover": lambda impl, count: failover(impl),
}


def run(impl: str, name: str, count: int) -> dict:
    print(f"{impl}: {name}", flush=True)
    result = BENCHES[name](impl, count)
    print(f"{impl}: {name}: {json.dumps(result)}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.cluster")
    parser.add_argument("--impl", default="both", choices=["broker", "nats-server", "both"])
    parser.add_argument("--count", type=int, default=200_000)
    args = parser.parse_args()
    impls = ["broker", "nats-server"] if args.impl == "both" else [args.impl]
    if "nats-server" in impls and shutil.which("nats-server") is None:
        impls.remove("nats-server")
    results: dict[str, dict] = {}
    for impl in impls:
        for name in BENCHES:
            results.setdefault(name, {})[impl] = run(impl, name, args.count)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
