"""Raft benchmark: `python -m tests.bench.raft [--count N] [--window W] [--size B] [--dir DIR]`.

Three `RaftDriver`s in one process over the in-memory loopback transport, each with its own
`RaftLog` on real disk (real fsyncs, one group commit per Ready). Prints commits per second seen
by the leader's clients: a proposal counts once it is committed (durable on a majority) and
applied on the leader. `window` proposals are kept outstanding, as many concurrent publishers
would.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time

from raft.driver import RaftDriver
from raft.log import RaftLog
from raft.messages import Entry
from raft.options import RaftConfig
from raft.state import SnapshotMeta
from raft.testing.loopback import LoopbackNetwork

NODES = ("n1", "n2", "n3")


class Counter:
    """A trivial state machine: counts applied bytes."""

    def __init__(self) -> None:
        self.applied = 0
        self.bytes = 0

    def apply(self, entry: Entry) -> None:
        self.applied = entry.index
        self.bytes += len(entry.data)

    def restore(self, meta: SnapshotMeta, data: bytes) -> None:
        self.applied = meta.index


async def run(count: int, window: int, size: int, root: str) -> dict:
    net = LoopbackNetwork()
    config = RaftConfig(heartbeat_ticks=2, election_ticks_min=10, election_ticks_max=20,
                        max_inflight=256)
    drivers = {}
    for n in NODES:
        log = RaftLog.open(f"{root}/{n}")
        d = RaftDriver(n, NODES, log, Counter(), net.sender(n), group="bench", config=config,
                       tick_interval=0.02)
        net.join(n, d.receive)
        drivers[n] = d
    for d in drivers.values():
        await d.start()
    try:
        lead = await drivers["n1"].wait_for_leader(timeout=10)
        while not drivers[lead].is_leader:  # n1 may know a leader that has not noticed yet
            lead = await drivers[lead].wait_for_leader(timeout=10)
        leader = drivers[lead]
        # Warm up: the leader's no-op and a few entries.
        await leader.propose(b"warm")
        payload = b"x" * size
        sem = asyncio.Semaphore(window)
        done = 0

        async def one() -> None:
            nonlocal done
            async with sem:
                await leader.propose(payload)
                done += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(count)))
        elapsed = time.perf_counter() - t0
        m = leader.metrics
        return {
            "commits_per_s": round(count / elapsed),
            "count": count, "window": window, "payload": size,
            "seconds": round(elapsed, 3),
            "leader_syncs": m.syncs,
            "entries_per_sync": round(m.entries_persisted / max(1, m.syncs), 1),
            "mean_sync_ms": round(1000 * m.sync_seconds / max(1, m.syncs), 3),
        }
    finally:
        for d in drivers.values():
            await d.stop()
            d.log.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.raft")
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--window", type=int, default=256)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--dir", default=None, help="where the logs go (default: a temp dir)")
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="bench-raft-", dir=args.dir)
    try:
        result = asyncio.run(run(args.count, args.window, args.size, root))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
