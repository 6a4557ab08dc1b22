"""`make chaos`: randomized faults against a three-server cluster under publish load.

Each round publishes a batch of messages to an R3 stream (each retried with its Nats-Msg-Id until
acknowledged) while one fault strikes at a random moment: kill a server or the stream leader,
kill it and cut its power (unsynced bytes lost, torn pages), kill it and flip bits in its store,
pause it past the election timeout,
partition it from its peers, or kill two of three. After each round the cluster heals and every
running replica must reach the last acknowledged sequence; at the end the stores are read from
disk and every acknowledged message must be on every replica, once, at its sequence, in order.

    python -m tests.chaos [--rounds N] [--per-round M] [--seed S] [--faults F,..] [--in-turn]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time

import nats

from tests.chaos.nemesis import FAULTS, Nemesis, stream_leader
from tests.cluster.faults import (
    STREAM,
    SUBJECT,
    Publisher,
    check_replicas,
    local_state,
    wait_converged,
)
from tests.clusters import Cluster, wait_for

SNAPSHOT_MSGS = "500"  # snapshots (store syncs, log compaction, catch-up) happen every round


async def one_round(cluster: Cluster, nemesis: Nemesis, publisher: Publisher, fault: str,
                    first: int, count: int) -> str:
    loop = asyncio.get_running_loop()
    leader = await stream_leader(cluster)
    at = first + nemesis.rng.randrange(count // 4, 3 * count // 4)
    struck: list[asyncio.Future] = []

    def progress(acked: int) -> None:
        if acked >= at and not struck:
            struck.append(loop.run_in_executor(None, nemesis.strike, fault, leader))

    # Two of three down: nobody can acknowledge until they are back.
    if fault == "kill_two":
        async def heal_later() -> None:
            while not struck:
                await asyncio.sleep(0.05)
            await struck[0]
            await asyncio.sleep(nemesis.rng.uniform(1.0, 3.0))
            await loop.run_in_executor(None, nemesis.heal)
        healer = asyncio.create_task(heal_later())
        await publisher.run(count, progress, first=first)
        await healer
    else:
        await publisher.run(count, progress, first=first)
    what = await struck[0] if struck else "nothing (round ended first)"
    await loop.run_in_executor(None, nemesis.heal)
    return what


async def main_async(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    workdir = tempfile.mkdtemp(prefix="chaos-")
    cluster = Cluster(workdir, proxied=True, journals=True,
                      env={"BROKER_STREAM_SNAPSHOT_MSGS": SNAPSHOT_MSGS}).start()
    print(f"chaos: seed {args.seed}, {args.rounds} rounds of {args.per_round} messages, "
          f"cluster in {workdir}", flush=True)
    try:
        cluster.wait_ready(60)
        nc = await nats.connect(servers=cluster.urls())
        await nc.jetstream().add_stream(name=STREAM, subjects=[SUBJECT], num_replicas=3)
        await nc.close()
        for i in range(cluster.size):
            wait_for(lambda i=i: local_state(cluster, i) is not None, 30,
                     f"S{i} to open its copy of the stream")
        nemesis = Nemesis(cluster, rng)
        publisher = Publisher(cluster.urls(), give_up_after=120)
        for n in range(args.rounds):
            fault = args.faults[n % len(args.faults)] if args.in_turn else rng.choice(args.faults)
            started = time.monotonic()
            publisher.urls = cluster.urls()
            what = await one_round(cluster, nemesis, publisher, fault,
                                   n * args.per_round, args.per_round)
            last = max(publisher.acked.values())
            print(f"round {n + 1}/{args.rounds}: {what}; {len(publisher.acked)} acked, "
                  f"last seq {last}, {publisher.errors} retries so far", flush=True)
            await asyncio.get_running_loop().run_in_executor(
                None, wait_converged, cluster, last, 60.0)
            print(f"round {n + 1}/{args.rounds}: replicas converged "
                  f"({time.monotonic() - started:.1f}s)", flush=True)
        check_replicas(cluster, publisher.acked)
        print(f"chaos: OK: {len(publisher.acked)} acknowledged messages on all three replicas, "
              f"once each, in order", flush=True)
    except BaseException:
        print(cluster.logs()[-20000:], flush=True)
        for i in cluster.up():
            print(f"--- S{i} /jsz ---\n{cluster.servers[i].get('/jsz?streams=true')[1]}")
        for server in cluster.servers:
            server.kill()
        if cluster.proxies is not None:
            cluster.proxies.close()
        print(f"chaos: FAILED with seed {args.seed}; the servers' files are in {workdir}")
        raise
    cluster.stop()
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--per-round", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--faults", type=lambda v: v.split(","), default=list(FAULTS),
                        help=f"comma-separated, from {','.join(FAULTS)}")
    parser.add_argument("--in-turn", action="store_true",
                        help="take the faults in the order given instead of at random")
    args = parser.parse_args(argv)
    unknown = set(args.faults) - set(FAULTS)
    if unknown:
        parser.error(f"unknown faults {sorted(unknown)}")
    return args


def main() -> None:
    raise SystemExit(asyncio.run(main_async(parse_args())))


if __name__ == "__main__":
    main()
