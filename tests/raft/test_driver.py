"""raft.driver: real logs on disk, the loopback transport, 10 ms ticks. Every wait is on an
event the driver signals (a future, `wait_for`, `wait_applied`), never a sleep."""

from __future__ import annotations

import asyncio
import random
import struct

import pytest

from raft import codec
from raft.core import NotLeader, SafetyViolation
from raft.driver import DriverStopped, ProposalFailed, RaftDriver
from raft.log import RaftLog
from raft.messages import AppendEntries, Entry, EntryType, TimeoutNow
from raft.options import RaftConfig
from raft.state import SnapshotMeta
from raft.testing.loopback import LoopbackNetwork
from raft.transport import Demux

IDS = ("n1", "n2", "n3")
CFG = RaftConfig(heartbeat_ticks=2, election_ticks_min=10, election_ticks_max=20,
                 snapshot_chunk_bytes=64)
TIMEOUT = 20.0


class App:
    """Keeps the data of NORMAL entries in order; snapshots are that list, length-prefixed."""

    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.applied = 0
        self.restores = 0

    def apply(self, entry: Entry) -> None:
        assert entry.index == self.applied + 1, (entry.index, self.applied)
        self.applied = entry.index
        if entry.type is EntryType.NORMAL:
            self.data.append(entry.data)

    def restore(self, meta: SnapshotMeta, data: bytes) -> None:
        self.restores += 1
        self.applied = meta.index
        self.data = []
        pos = 0
        while pos < len(data):
            (n,) = struct.unpack_from("<I", data, pos)
            self.data.append(data[pos + 4:pos + 4 + n])
            pos += 4 + n

    def snapshot(self) -> bytes:
        return b"".join(struct.pack("<I", len(d)) + d for d in self.data)


class Cluster:
    def __init__(self, root) -> None:
        self.root = root
        self.net = LoopbackNetwork()
        self.drivers: dict[str, RaftDriver] = {}
        self.apps: dict[str, App] = {}

    async def start(self, nid: str, peers: tuple[str, ...] | None = IDS) -> RaftDriver:
        log = RaftLog.open(str(self.root / nid), segment_bytes=4096)
        app = App()
        d = RaftDriver(nid, peers, log, app, self.net.sender(nid), group="g", config=CFG,
                       tick_interval=0.01, rng=random.Random(nid))
        self.net.join(nid, d.receive)
        self.drivers[nid], self.apps[nid] = d, app
        await d.start()
        return d

    async def stop(self, nid: str) -> None:
        d = self.drivers.pop(nid)
        self.net.leave(nid)
        await d.stop()
        d.log.close()

    async def leader(self) -> RaftDriver:
        """The first node to become leader (among those running)."""
        drivers = list(self.drivers.values())
        waits = [asyncio.ensure_future(d.wait_for(lambda d=d: d.is_leader)) for d in drivers]
        try:
            done, _ = await asyncio.wait(waits, timeout=TIMEOUT,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        assert done, "no leader"
        return next(d for d in drivers if d.is_leader)

    async def close(self) -> None:
        for nid in list(self.drivers):
            await self.stop(nid)


@pytest.fixture
async def cluster(tmp_path):
    c = Cluster(tmp_path)
    for nid in IDS:
        await c.start(nid)
    yield c
    await c.close()


async def test_three_nodes_replicate_and_agree(cluster):
    leader = await cluster.leader()
    futures = [leader.propose(b"m%d" % i) for i in range(200)]
    indexes = await asyncio.wait_for(asyncio.gather(*futures), TIMEOUT)
    assert indexes == sorted(indexes) and len(set(indexes)) == 200
    for d in cluster.drivers.values():
        await d.wait_applied(indexes[-1], TIMEOUT)
    expected = [b"m%d" % i for i in range(200)]
    assert all(app.data == expected for app in cluster.apps.values())
    m = leader.metrics
    assert m.syncs < 200, "no group commit: one fsync per proposal"
    assert m.entries_applied >= 200 and m.frames_out > 0
    follower = next(d for d in cluster.drivers.values() if d is not leader)
    assert await follower.wait_for_leader(TIMEOUT) == leader.id
    with pytest.raises(NotLeader) as err:
        await follower.propose(b"x")
    assert err.value.leader == leader.id
    status = leader.status()
    assert all(p.match == status.last_index and p.active for p in status.peers.values())


async def test_failover_and_a_restarted_node_catches_up(cluster):
    leader = await cluster.leader()
    await asyncio.wait_for(asyncio.gather(*(leader.propose(b"a%d" % i) for i in range(20))),
                           TIMEOUT)
    old = leader.id
    await cluster.stop(old)
    leader = await cluster.leader()
    assert leader.id != old
    last = await asyncio.wait_for(leader.propose(b"after failover"), TIMEOUT)
    back = await cluster.start(old)
    await back.wait_applied(last, TIMEOUT)
    assert cluster.apps[old].data == cluster.apps[leader.id].data
    assert cluster.apps[old].data[-1] == b"after failover"


async def test_malformed_frames_are_dropped_and_counted(cluster):
    leader = await cluster.leader()
    follower = next(d for d in cluster.drivers.values() if d is not leader)
    good = codec.encode(TimeoutNow("g", "n9", follower.id, 0))
    bad = bytearray(good)
    bad[-6] ^= 0x40
    for frame in (b"", b"junk", bytes(bad), good[:-1]):
        follower.receive(frame)
    assert follower.metrics.malformed_dropped == 4
    index = await asyncio.wait_for(leader.propose(b"still fine"), TIMEOUT)
    await follower.wait_applied(index, TIMEOUT)
    # Frames for other groups on a shared connection are routed by the demultiplexer.
    demux = Demux()
    demux.add("g", follower.receive)
    demux.receive(b"garbage")
    demux.receive(codec.encode(TimeoutNow("other", "n9", follower.id, 0)))
    assert (demux.malformed, demux.unknown_group) == (1, 1)


async def test_proposals_fail_when_leadership_is_lost(cluster):
    leader = await cluster.leader()
    await asyncio.wait_for(leader.propose(b"first"), TIMEOUT)
    cluster.net.isolate(leader.id)
    fut = leader.propose(b"stranded")
    with pytest.raises(ProposalFailed) as err:
        await asyncio.wait_for(fut, TIMEOUT)
    assert err.value.indeterminate
    assert not leader.is_leader
    others = [d for d in cluster.drivers.values() if d is not leader]
    waits = [d.wait_for(lambda d=d: d.is_leader) for d in others]
    done, pending = await asyncio.wait([asyncio.ensure_future(w) for w in waits],
                                       timeout=TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
    for p in pending:
        p.cancel()
    assert done
    cluster.net.heal()
    new = next(d for d in others if d.is_leader)
    index = await asyncio.wait_for(new.propose(b"after heal"), TIMEOUT)
    await leader.wait_applied(index, TIMEOUT)
    assert cluster.apps[leader.id].data == cluster.apps[new.id].data


async def test_a_lagging_node_is_repaired_by_a_chunked_snapshot(cluster):
    leader = await cluster.leader()
    lagging = next(d for d in cluster.drivers.values() if d is not leader)
    cluster.net.isolate(lagging.id)
    indexes = await asyncio.wait_for(
        asyncio.gather(*(leader.propose(b"s%03d" % i) for i in range(60))), TIMEOUT)
    for d in cluster.drivers.values():
        if d is not lagging:
            await d.wait_applied(indexes[-1], TIMEOUT)
            d.compact(d.core.applied, cluster.apps[d.id].snapshot())
    await leader.wait_for(lambda: leader.core.log.snap_index >= indexes[-1], TIMEOUT)
    cluster.net.heal()
    await lagging.wait_applied(indexes[-1], TIMEOUT)
    app = cluster.apps[lagging.id]
    assert app.restores == 1 and app.data == cluster.apps[leader.id].data
    assert lagging.metrics.extra["snapshot_chunks_received"] > 1
    assert leader.metrics.extra["snapshots_sent"] >= 1
    # It survives a restart from what it installed.
    await cluster.stop(lagging.id)
    back = await cluster.start(lagging.id)
    index = await asyncio.wait_for(leader.propose(b"later"), TIMEOUT)
    await back.wait_applied(index, TIMEOUT)
    assert cluster.apps[lagging.id].data == cluster.apps[leader.id].data


async def change_membership(cluster: Cluster, **change: str) -> tuple[RaftDriver, int]:
    """One membership change, acknowledged once committed: (the leader, the entry's index).
    With 100 ms election timeouts leadership may move under a loaded machine, failing the
    proposal (its fate open); then the change is asked of whoever leads now, unless the
    configuration it wanted is already committed there."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while True:
        leader = await cluster.leader()
        core = leader.core
        wanted = core.voters | {change["add"]} if "add" in change else \
            core.voters - {change["remove"]}
        done_at = core.membership.last_change_index
        if core.voters == wanted and done_at and core.commit >= done_at:
            return leader, done_at  # the failed proposal committed after all
        try:
            return leader, await asyncio.wait_for(leader.propose_membership(**change), TIMEOUT)
        except (ProposalFailed, NotLeader):
            assert loop.time() < deadline, "the membership change never committed"


async def test_membership_changes_are_acknowledged_after_commit(cluster):
    leader = await cluster.leader()
    await asyncio.wait_for(leader.propose(b"x"), TIMEOUT)
    joiner = await cluster.start("n4", peers=None)  # learns the configuration from the leader
    leader, index = await change_membership(cluster, add="n4")
    assert leader.core.commit >= index and leader.core.voters == {"n1", "n2", "n3", "n4"}
    await joiner.wait_applied(index, TIMEOUT)
    assert joiner.core.voters == {"n1", "n2", "n3", "n4"}
    gone = next(n for n in IDS if n != leader.id and n != joiner.id)
    leader, _ = await change_membership(cluster, remove=gone)
    await cluster.stop(gone)
    index = await asyncio.wait_for(leader.propose(b"three of the new four"), TIMEOUT)
    await joiner.wait_applied(index, TIMEOUT)


async def test_leadership_transfer_and_role_callbacks(cluster):
    leader = await cluster.leader()
    await asyncio.wait_for(leader.propose(b"x"), TIMEOUT)
    target = next(d for d in cluster.drivers.values() if d is not leader)
    changes: list[tuple[bool, str | None]] = []
    target.on_change = lambda: changes.append((target.is_leader, target.leader))
    assert leader.transfer_leadership(target.id)
    await target.wait_for(lambda: target.is_leader and target.caught_up(), TIMEOUT)
    assert changes and changes[-1] == (True, target.id)
    assert target.core.applied >= target.core.term_start > 0
    await asyncio.wait_for(target.propose(b"y"), TIMEOUT)


async def test_a_failed_fsync_stops_the_node(cluster):
    leader = await cluster.leader()
    real = leader.log.begin_sync

    def broken():
        job = real()
        if job is not None:
            def fail() -> None:
                raise OSError(5, "simulated EIO")
            job.run = fail
        return job

    leader.log.begin_sync = broken
    fut = leader.propose(b"never acknowledged")
    with pytest.raises(DriverStopped):
        await asyncio.wait_for(fut, TIMEOUT)
    assert isinstance(leader.failure, OSError)
    with pytest.raises(DriverStopped):
        leader.propose(b"refused")


async def test_a_broken_invariant_stops_the_node_instead_of_overwriting(cluster):
    leader = await cluster.leader()
    last = (await asyncio.wait_for(
        asyncio.gather(*(leader.propose(b"c%d" % i) for i in range(5))), TIMEOUT))[-1]
    follower = next(d for d in cluster.drivers.values() if d is not leader)
    await follower.wait_applied(last, TIMEOUT)
    core = follower.core
    # Someone claiming to lead this term sends an entry that conflicts with a committed one.
    evil = AppendEntries("g", leader.id, follower.id, core.term, 1, core.log.term(1) or 0, 0,
                         [Entry(core.log.term(2) + 1, 2, EntryType.NORMAL, b"evil")])
    follower.receive(codec.encode(evil))
    assert isinstance(follower.failure, SafetyViolation)
    with pytest.raises(DriverStopped):
        follower.propose(b"x")
    assert core.log.entry(2).data != b"evil"
