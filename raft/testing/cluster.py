"""A simulated Raft group under full control: virtual clock, simulated disks and network, and
the invariants, checked after every event.

What runs is the real code: `RaftNode` (the core), `RaftLog` (the log, over
`raft.testing.disk.SimFiles` instead of real files) and `raft.codec` (every message is encoded and
decoded on its way, through `raft.testing.network.SimNetwork`). `Cluster` plays the driver
(`raft.driver`): eager messages, then persist (a sync takes virtual time; a crash during it keeps
a random prefix of the job's steps and tears the write in progress), then send, apply, advance.

A test drives it by hand (`propose`, `change`, `transfer`, `crash`, `start`, `damage`,
`power_loss`, `partition`, `heal`, `run_until`, `settle`); `raft.testing.sim.Sim` adds random
client load and faults. Everything is drawn from one `random.Random(seed)`, so a seed replays
exactly.

Invariants, checked after every event (`Invariant` is raised with the seed in the message):

* election safety: at most one leader per term;
* log matching: an (index, term) pair names one entry everywhere, with one predecessor term;
* leader completeness: a leader holds every entry ever reported committed;
* committed entries never change, and state machines agree on every applied prefix;
* no acknowledged proposal is lost: every later leader holds it;
* recovery: a node whose files were not damaged always comes back able to vouch for its log;
* liveness (`settle`): once everything is healed and running, a leader emerges and a new
  proposal reaches every voter.
"""

from __future__ import annotations

import heapq
import random
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from raft import codec
from raft.core import NotLeader, RaftNode, SafetyViolation
from raft.log import LogSync, RaftLog
from raft.messages import Entry, EntryType, Message
from raft.options import RaftConfig
from raft.state import Ready, Role
from raft.testing.disk import SimFiles, SimWrite
from raft.testing.network import SimNetwork


class Invariant(AssertionError):
    """A safety property failed."""


# ---------------------------------------------------------------------------------------------
# The application: a hash chain over every committed entry


_SM = struct.Struct("<QI")


class StateMachine:
    """Its state after applying entries 1..index is crc32-chained over them: two machines agree
    on a prefix exactly when their (index, chain) agree."""

    def __init__(self) -> None:
        self.index = 0
        self.chain = 0

    def apply(self, e: Entry) -> None:
        if e.index != self.index + 1:
            raise Invariant(f"applied {e.index} after {self.index}")
        self.chain = zlib.crc32(e.data, zlib.crc32(_SM.pack(e.index, e.term), self.chain))
        self.index = e.index

    def snapshot(self) -> bytes:
        return _SM.pack(self.index, self.chain)

    def restore(self, data: bytes) -> None:
        self.index, self.chain = _SM.unpack(data)


# ---------------------------------------------------------------------------------------------
# The cluster


@dataclass
class SimConfig:
    nodes: int = 3  # initial voters
    pool: int = 5  # node ids n1..n<pool> (membership changes draw from these)
    tick: int = 10  # virtual time units per tick
    max_delay: int = 25  # message delay 1..max_delay
    drop: float = 0.03
    duplicate: float = 0.03
    garble: float = 0.002  # a frame damaged in transit (must be dropped by the codec)
    sync_delay: int = 6  # a fsync takes 1..sync_delay
    slow_sync: float = 0.1  # ... or, this often, up to 10 times longer (a slow disk)
    client_every: int = 7  # mean time between client proposals
    nemesis_every: int = 120  # mean time between faults
    crashes: bool = True
    partitions: bool = True
    power_loss: bool = True
    damage: bool = True
    membership: bool = True
    transfers: bool = True
    compaction: bool = True
    torn: bool = True
    segment_bytes: int = 1024
    compact_every: int = 40  # applied entries between snapshots (when compaction is on)
    raft: RaftConfig = field(default_factory=lambda: RaftConfig(
        heartbeat_ticks=2, election_ticks_min=8, election_ticks_max=16, max_inflight=4,
        max_batch_entries=8, snapshot_chunk_bytes=5))


@dataclass
class SimNode:
    id: str
    bootstrap: frozenset[str] | None
    files: SimFiles = field(default_factory=SimFiles)
    log: RaftLog | None = None
    core: RaftNode | None = None
    sm: StateMachine = field(default_factory=StateMachine)
    inflight: tuple[Ready, LogSync, int] | None = None  # ready, sync job, token
    damaged: bool = False  # its files were damaged and it has not yet proven repaired
    incarnation: int = 0
    was_leader_term: int = 0
    proposals: dict[int, tuple[int, bytes]] = field(default_factory=dict)  # index -> term, data
    noted_commit: int = 0  # its commit index as last seen while it led


class Event:
    """Something due on the virtual clock."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Tick(Event):
    node: str
    incarnation: int


@dataclass(frozen=True, slots=True)
class Deliver(Event):
    dst: str
    frame: bytes


@dataclass(frozen=True, slots=True)
class Synced(Event):
    node: str
    incarnation: int
    token: int


@dataclass(frozen=True, slots=True)
class Start(Event):
    node: str


class Cluster:
    """Nodes n1..n<pool>, the first `nodes` of them the initial voters (started at once)."""

    def __init__(self, seed: int, config: SimConfig | None = None) -> None:
        self.seed = seed
        self.cfg = config or SimConfig()
        self.rng = random.Random(seed)
        self.now = 0
        self.steps = 0
        self._q: list[tuple[int, int, Event]] = []  # (due, seq, event)
        self._seq = 0
        ids = [f"n{i}" for i in range(1, self.cfg.pool + 1)]
        initial = frozenset(ids[:self.cfg.nodes])
        self.nodes = {i: SimNode(i, initial if i in initial else None) for i in ids}
        self.started: set[str] = set()
        self.net = SimNetwork(self.rng, drop=self.cfg.drop, duplicate=self.cfg.duplicate,
                              garble=self.cfg.garble, max_delay=self.cfg.max_delay)
        self.counters: dict[str, int] = {}
        self.events: list[str] = []  # a trace of faults, for failure messages
        # Invariant bookkeeping
        self.leaders: dict[int, str] = {}
        self.entries: dict[tuple[int, int], tuple[int, int | None]] = {}  # (i, t) -> data, prev
        self.committed: dict[int, tuple[int, bytes]] = {}
        self.commit_term: dict[int, int] = {}  # index -> term of the leader that committed it
        self.chain: dict[int, int] = {}
        self.acked: dict[int, tuple[int, bytes]] = {}
        self.proposed = 0
        for i in sorted(initial):
            self.start(i)

    # Plumbing ---------------------------------------------------------------------------------

    def _at(self, delay: int, event: Event) -> None:
        self._seq += 1
        heapq.heappush(self._q, (self.now + delay, self._seq, event))

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def note(self, what: str) -> None:
        self.events.append(f"t={self.now} {what}")

    def fail(self, what: str) -> None:
        tail = "\n  ".join(self.events[-25:])
        raise Invariant(f"seed {self.seed} step {self.steps} t={self.now}: {what}\n  "
                        f"recent faults:\n  {tail}")

    def up(self, nid: str) -> bool:
        return self.nodes[nid].core is not None

    def live(self) -> list[SimNode]:
        return [n for n in self.nodes.values() if n.core is not None]

    def leader(self) -> str | None:
        """The leader with the highest term among running nodes (None if none)."""
        best = None
        for n in self.live():
            assert n.core is not None
            if n.core.role is Role.LEADER and (best is None or n.core.term > best[0]):
                best = (n.core.term, n.id)
        return best[1] if best else None

    # Nodes ------------------------------------------------------------------------------------

    def start(self, nid: str) -> None:
        node = self.nodes[nid]
        if node.core is not None:
            return
        node.log = RaftLog(node.files, segment_bytes=self.cfg.segment_bytes)
        vouch = node.log.vouch
        if not vouch.can_vouch:
            self.count("restarts_cannot_vouch")
        if not vouch.can_vouch and not node.damaged:
            self.fail(f"{nid} restarted unable to vouch without damage: {vouch.reason}; "
                      f"{node.log.report}")
        node.sm = StateMachine()
        meta = node.log.snapshot_meta
        if meta is not None:
            node.sm.restore(node.log.read_snapshot())
            self._check_sm(nid, node.sm)
        node.core = RaftNode(nid, node.bootstrap, node.log, self.cfg.raft,
                             random.Random(self.rng.random()), group="g")
        node.incarnation += 1
        node.inflight = None
        self.started.add(nid)
        phase = self.rng.randint(1, self.cfg.tick)
        self._at(phase, Tick(nid, node.incarnation))
        self._pump(node)

    def crash(self, nid: str) -> None:
        node = self.nodes[nid]
        if node.core is None:
            return
        if node.inflight is not None:
            _, job, _ = node.inflight
            steps = job.steps
            k = self.rng.randint(0, len(steps))
            for step in steps[:k]:
                step.run()
            torn = steps[k] if k < len(steps) else None
            if isinstance(torn, SimWrite) and self.rng.random() < 0.5:
                torn.write_only()
        node.files.crash(self.rng, self.cfg.torn)
        node.core = None
        node.log = None
        node.inflight = None
        node.proposals.clear()  # the client sees an error: indeterminate, not acknowledged

    def restart(self, nid: str) -> None:
        self.crash(nid)
        self.start(nid)

    def damage(self, nid: str) -> str:
        node = self.nodes[nid]
        assert node.core is None, "damage only a node that is down"
        what = node.files.damage(self.rng)
        node.damaged = True
        self.note(f"damage {nid}: {what}")
        return what

    # Network ----------------------------------------------------------------------------------

    def partition(self, *sides: list[str]) -> None:
        self.net.partition(*sides)
        self.note(f"partition {[sorted(s) for s in sides]}")

    def heal(self) -> None:
        self.net.heal()
        self.note("heal")

    def _send(self, msg: Message) -> None:
        copies = self.net.transmit(msg.src, msg.dst, codec.encode(msg))
        if not copies:
            self.count("dropped")
        for delay, data in copies:
            self._at(delay, Deliver(msg.dst, data))

    def _deliver(self, dst: str, frame: bytes) -> None:
        node = self.nodes[dst]
        if node.core is None:
            return
        try:
            msg = codec.decode(frame)
        except codec.MalformedFrame:
            self.count("malformed")
            return
        if not self.net.connected(msg.src, dst):
            self.count("dropped")
            return
        try:
            node.core.step(msg)
        except SafetyViolation as exc:
            self.fail(str(exc))
        self._note_commit(node)
        self._pump(node)

    # Driving a node (what raft.driver does) ----------------------------------------------------

    def _pump(self, node: SimNode) -> None:
        while node.core is not None and node.inflight is None:
            core = node.core
            rd = core.ready()
            if rd is None:
                break
            for m in rd.eager:
                self._send(m)
            self._check_entries(node, rd.entries)
            if rd.must_persist():
                assert node.log is not None
                node.log.stage(rd)
                job = node.log.begin_sync()
                assert job is not None  # stage() always plans one
                self._seq += 1
                node.inflight = (rd, job, self._seq)
                slow = 10 if self.rng.random() < self.cfg.slow_sync else 1
                self._at(self.rng.randint(1, slow * self.cfg.sync_delay),
                         Synced(node.id, node.incarnation, self._seq))
                break
            self._complete(node, rd, None)

    def _synced(self, nid: str, incarnation: int, token: int) -> None:
        node = self.nodes[nid]
        if node.incarnation != incarnation or node.inflight is None or node.inflight[2] != token:
            return
        rd, job, _ = node.inflight
        node.inflight = None
        self._complete(node, rd, job)
        self._pump(node)

    def _complete(self, node: SimNode, rd: Ready, job: LogSync | None) -> None:
        core, log = node.core, node.log
        assert core is not None and log is not None
        if job is not None:
            job.run()
            log.finish_sync(job)
        for m in rd.messages:
            self._send(m)
        if rd.truncate_from is not None:
            self.count("truncations")
        if rd.snapshot is not None:
            self.count("snapshots_installed")
            node.sm.restore(rd.snapshot.data)
            self._check_sm(node.id, node.sm)
        for e in rd.committed:
            if e.type is EntryType.CONFIG and e.index not in self.committed:
                self.count("membership_changes")
            node.sm.apply(e)
            self._applied(node, e)
            if (self.cfg.compaction and e.index - core.log.snap_index >= self.cfg.compact_every
                    and self.rng.random() < 0.05):
                core.compact(e.index, node.sm.snapshot())  # from inside apply, as apps may
        core.advance(rd)
        self._note_commit(node)
        if node.damaged and core.can_vouch:
            node.damaged = False
            self.count("repaired")
            self.note(f"{node.id} repaired")
        if (self.cfg.compaction and core.applied - core.log.snap_index >= self.cfg.compact_every
                and node.sm.index == core.applied and self.rng.random() < 0.5):
            core.compact(core.applied, node.sm.snapshot())

    # Invariants -------------------------------------------------------------------------------

    def _note_commit(self, node: SimNode) -> None:
        """Remember in which term each index was first committed (by a leader counting):
        Leader Completeness binds the leaders of later terms only."""
        core = node.core
        assert core is not None
        if core.role is not Role.LEADER:
            node.noted_commit = core.commit
            return
        for i in range(max(node.noted_commit, core.log.snap_index) + 1, core.commit + 1):
            self.commit_term.setdefault(i, core.term)
        node.noted_commit = core.commit

    def _check_entries(self, node: SimNode, entries: list[Entry]) -> None:
        """Log matching: an (index, term) names one entry with one predecessor term."""
        core = node.core
        assert core is not None
        for e in entries:
            prev = core.log.term(e.index - 1)
            key = (e.index, e.term)
            data_crc = zlib.crc32(e.data) ^ (e.type << 24)
            seen = self.entries.get(key)
            if seen is None:
                self.entries[key] = (data_crc, prev)
                continue
            if seen[0] != data_crc:
                self.fail(f"log matching: two different entries at {key} ({node.id})")
            if prev is not None and seen[1] is not None and prev != seen[1]:
                self.fail(f"log matching: entry {key} on {node.id} follows term {prev}, "
                          f"elsewhere {seen[1]}")

    def _applied(self, node: SimNode, e: Entry) -> None:
        seen = self.committed.get(e.index)
        if seen is None:
            self.committed[e.index] = (e.term, e.data)
            self.chain[e.index] = node.sm.chain
            committed_in = self.commit_term.get(e.index, 1 << 62)
            for other in self.live():  # leader completeness for leaders elected meanwhile
                c = other.core
                assert c is not None
                if (c.role is Role.LEADER and c.term > committed_in
                        and e.index > c.log.snap_index):
                    self._holds(other.id, c, e.index, e.term, e.data, "committed")
        elif seen != (e.term, e.data):
            self.fail(f"committed entry {e.index} changed: {seen[0]} -> {e.term} on {node.id}")
        elif self.chain[e.index] != node.sm.chain:
            self.fail(f"state machines disagree after {e.index} on {node.id}")
        proposal = node.proposals.pop(e.index, None)
        if proposal is not None and proposal == (e.term, e.data):
            self.acked[e.index] = proposal

    def _check_sm(self, nid: str, sm: StateMachine) -> None:
        if sm.index in self.chain and self.chain[sm.index] != sm.chain:
            self.fail(f"snapshot of {nid} at {sm.index} disagrees with the applied history")

    def _holds(self, nid: str, core: RaftNode, index: int, term: int, data: bytes,
               what: str) -> None:
        if core.log.term(index) != term or core.log.entry(index).data != data:
            self.fail(f"leader {nid} (term {core.term}) lacks {what} entry {index}@{term}")

    def _check_leaders(self) -> None:
        for node in self.live():
            core = node.core
            assert core is not None
            if core.role is not Role.LEADER:
                if node.proposals:  # leadership lost: the driver fails these futures
                    self.count("proposals_failed", len(node.proposals))
                    node.proposals.clear()
                continue
            other = self.leaders.setdefault(core.term, node.id)
            if other != node.id:
                self.fail(f"two leaders in term {core.term}: {other} and {node.id}")
            if node.was_leader_term != core.term:
                node.was_leader_term = core.term
                self.note(f"{node.id} leads term {core.term}")
                snap = core.log.snap_index
                for index, (term, data) in self.committed.items():
                    if index > snap and self.commit_term.get(index, 0) < core.term:
                        self._holds(node.id, core, index, term, data, "committed")
                for index, (term, data) in self.acked.items():
                    if index > snap and self.commit_term.get(index, 0) < core.term:
                        self._holds(node.id, core, index, term, data, "acknowledged")

    # Clients, membership, leadership, power ---------------------------------------------------

    def propose(self, data: bytes | None = None, nid: str | None = None) -> int | None:
        nid = nid or self.leader()
        if nid is None or not self.up(nid):
            return None
        core = self.nodes[nid].core
        assert core is not None
        self.proposed += 1
        data = data if data is not None else b"p%d" % self.proposed
        index = core.propose(data)
        if index is not None:
            self.nodes[nid].proposals[index] = (core.term, data)
            self._pump(self.nodes[nid])
        return index

    def change(self, nid: str, *, add: str | None = None, remove: str | None = None) -> int:
        """Node `nid` (the leader) proposes a membership change; an added node that never ran
        is started empty (it learns the configuration from the leader). Raises NotLeader or
        MembershipError like the core."""
        core = self.nodes[nid].core
        if core is None:
            raise NotLeader(None)
        index = core.propose_membership(add=add, remove=remove)
        self.note(f"{nid} {'adds ' + add if add else 'removes ' + str(remove)}")
        self.pump(nid)
        if add is not None and not self.up(add) and not self.nodes[add].damaged:
            self.start(add)
        return index

    def transfer(self, nid: str, to: str) -> bool:
        core = self.nodes[nid].core
        if core is None or not core.transfer_leadership(to):
            return False
        self.note(f"{nid} transfers to {to}")
        self.pump(nid)
        return True

    def pump(self, nid: str) -> None:
        """Let node `nid` hand out its pending work now (after calling its core directly)."""
        self._pump(self.nodes[nid])

    def power_loss(self, restart: bool = True) -> None:
        """Every node loses power at once (mid-sync writes torn); with `restart`, each comes
        back at a random time within 20 ticks."""
        self.note("power loss: all nodes")
        for nid in sorted(self.started):
            self.crash(nid)
        if restart:
            for nid in sorted(self.started):
                self._at(self.rng.randint(1, 20 * self.cfg.tick), Start(nid))

    # Running ----------------------------------------------------------------------------------

    def step(self) -> bool:
        """Process one event; False when there is nothing left to do."""
        if not self._q:
            return False
        self.now, _, event = heapq.heappop(self._q)
        self.steps += 1
        match event:
            case Tick(nid, inc):
                node = self.nodes[nid]
                if node.core is not None and node.incarnation == inc:
                    node.core.tick()
                    self._note_commit(node)
                    self._pump(node)
                    self._at(self.cfg.tick, event)
            case Deliver(dst, frame):
                self._deliver(dst, frame)
            case Synced(nid, inc, token):
                self._synced(nid, inc, token)
            case Start(nid):
                self.start(nid)
            case _:
                self._event(event)
        self._check_leaders()
        return True

    def _event(self, event: Event) -> None:
        """An event of a subclass's own kind (`raft.testing.sim.Sim`: clients, faults)."""
        raise TypeError(f"unknown event {event!r}")

    def run_until(self, predicate: Callable[[], bool], max_steps: int = 20000) -> bool:
        end = self.steps + max_steps
        while self.steps < end:
            if predicate():
                return True
            if not self.step():
                return predicate()
        return predicate()

    def settle(self, max_steps: int = 60000) -> None:
        """Liveness: heal, start every started node, then a leader must emerge and a new
        proposal must be applied on every running voter."""
        self.heal()
        for nid in sorted(self.started):
            self.start(nid)
        if not self.run_until(lambda: self.leader() is not None, max_steps):
            self.fail("no leader after healing everything")
        marker = b"settle-%d" % self.seed
        key: tuple[str, int] | None = None  # (leader, index) of the marker proposal

        def done() -> bool:
            nonlocal key
            pending = key is not None and key[1] in self.nodes[key[0]].proposals
            if key is None or (not pending and self.acked.get(key[1]) is None):
                # Not proposed yet, or the proposal was lost with a leader: (re)propose.
                leader = self.leader()
                index = self.propose(marker) if leader is not None else None
                key = (leader, index) if leader is not None and index is not None else None
                return False
            if pending:
                return False
            leader = self.leader()
            if leader is None:
                return False
            core = self.nodes[leader].core
            assert core is not None
            return all(self.nodes[v].core is not None
                       and self.nodes[v].sm.index >= key[1] for v in core.voters)

        if not self.run_until(done, max_steps):
            roles = [(n.id, n.core.status().role.value, n.sm.index)
                     for n in self.live() if n.core is not None]
            self.fail(f"proposal {key} not applied everywhere after healing; {roles}")

    def summary(self) -> dict[str, int]:
        return {"steps": self.steps, "time": self.now, "committed": len(self.committed),
                "acked": len(self.acked), "terms": len(self.leaders), **self.counters}
