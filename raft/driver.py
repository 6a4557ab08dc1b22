"""The asyncio driver of one Raft node: it owns the core, the log and the timers.

Each Ready is handled in the order the core requires (`raft.state.Ready`):

1. send the leader's eager messages (appends may leave while the leader writes its own copy);
2. persist with one group commit: the log's sync job runs in a worker thread
   (`loop.run_in_executor`), so the loop keeps receiving frames and proposals meanwhile (they
   are stepped into the core and form the next Ready);
3. send the other messages: votes and acknowledgements leave only now that they are true;
4. restore/apply committed entries through the application callbacks, resolve proposal futures;
5. advance the core.

A failed fsync is fatal for the node (`LogFailed`): it stops, fails every waiting future, and must
be restarted to recover from what is really on disk.

Transport: `send(peer, frame)` (`raft.transport.Send`) is any callable that queues bytes towards a
peer (route connections in the broker, `raft.testing.loopback.LoopbackNetwork` in tests); frames
coming back are fed to `receive(frame)`. Malformed frames are dropped and counted, never raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Protocol

from raft import codec
from raft.core import NotLeader, RaftNode
from raft.log import RaftLog
from raft.messages import Entry, Message
from raft.options import RaftConfig
from raft.state import Ready, Role, SnapshotMeta, Status
from raft.transport import Send

log = logging.getLogger("raft")


class Application(Protocol):
    """The replicated state machine. Both calls run on the loop thread, in log order."""

    def apply(self, entry: Entry) -> None:
        """Apply one committed entry (NORMAL entries carry proposals; NOOP and CONFIG entries
        are delivered too, for applications that track indexes)."""

    def restore(self, meta: SnapshotMeta, data: bytes) -> None:
        """Replace the whole state by a snapshot (from the leader, or at start)."""


class ProposalFailed(Exception):
    """The proposal was not acknowledged. `indeterminate`: it may still commit later (leadership
    was lost after it was appended); otherwise it certainly did not."""

    def __init__(self, message: str, indeterminate: bool) -> None:
        super().__init__(message)
        self.indeterminate = indeterminate


class DriverStopped(Exception):
    pass


@dataclass
class DriverMetrics:
    frames_in: int = 0
    frames_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    malformed_dropped: int = 0
    send_errors: int = 0
    readies: int = 0
    syncs: int = 0
    sync_seconds: float = 0.0
    entries_persisted: int = 0
    entries_applied: int = 0
    proposals: int = 0
    proposals_failed: int = 0
    snapshots_restored: int = 0
    extra: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, float]:
        out = {k: v for k, v in self.__dict__.items() if k != "extra"}
        out.update(self.extra)
        return out


class RaftDriver:
    """Runs one `RaftNode` over a `RaftLog`, an application and a transport."""

    def __init__(self, node_id: str, peers: Iterable[str] | None, raft_log: RaftLog,
                 app: Application, send: Send, *, group: str = "",
                 config: RaftConfig | None = None, tick_interval: float = 0.1,
                 rng: random.Random | None = None, executor: Executor | None = None,
                 applied: int = 0) -> None:
        self.id = node_id
        self.group = group
        self.log = raft_log
        self.app = app
        self._send_frame = send
        self.tick_interval = tick_interval
        self.executor = executor
        self.metrics = DriverMetrics()
        self.core = RaftNode(node_id, peers, raft_log, config, rng, group=group, applied=applied)
        meta = raft_log.snapshot_meta
        if meta is not None and applied < meta.index:
            app.restore(meta, raft_log.read_snapshot())
            self.metrics.snapshots_restored += 1
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._pending: dict[int, tuple[int, asyncio.Future[int]]] = {}  # index -> term, future
        self._leader_waiters: list[asyncio.Future[str]] = []
        self._applied_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._watchers: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        # Called (on the loop) after a batch of work that changed role, leader or term.
        self.on_change: Callable[[], None] | None = None
        self._seen = (self.core.role, self.core.leader, self.core.term)
        self._stopped = False
        self._failure: BaseException | None = None

    # Lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run(), name=f"raft-{self.group}-{self.id}"),
                       asyncio.create_task(self._ticker(), name=f"raft-tick-{self.id}")]

    async def stop(self) -> None:
        """Stop timers and the loop; fail waiting futures. A sync job in flight is finished
        first (its worker thread holds the log's files: the caller closes the log after)."""
        self._stopped = True
        self._wake.set()
        for task in self._tasks[1:]:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        self._fail_all(DriverStopped("raft driver stopped"))

    @property
    def failure(self) -> BaseException | None:
        return self._failure

    # Transport ------------------------------------------------------------------------------

    def receive(self, frame: bytes) -> None:
        """Feed one frame from a peer (call on the loop thread). Malformed frames are dropped
        and counted; a frame that would break an invariant stops the node (`failure`)."""
        if self._stopped:
            return
        self.metrics.frames_in += 1
        self.metrics.bytes_in += len(frame)
        try:
            msg = codec.decode(frame)
        except codec.MalformedFrame as exc:
            self.metrics.malformed_dropped += 1
            log.debug("raft %s/%s: dropped malformed frame: %s", self.group, self.id, exc)
            return
        try:
            self.core.step(msg)
        except Exception as exc:  # a broken invariant (SafetyViolation) or a bug: fail-stop
            self._fatal(exc)
            return
        self._wake.set()

    def _send(self, msg: Message) -> None:
        frame = codec.encode(msg)
        self.metrics.frames_out += 1
        self.metrics.bytes_out += len(frame)
        try:
            self._send_frame(msg.dst, frame)
        except Exception:  # a peer we cannot reach is Raft's ordinary business
            self.metrics.send_errors += 1

    # API ------------------------------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        return self.core.role is Role.LEADER

    @property
    def leader(self) -> str | None:
        return self.core.leader

    def status(self) -> Status:
        return self.core.status()

    def caught_up(self) -> bool:
        """Has this node applied everything committed before now? For a leader: the no-op of
        its term is applied (so is every entry of earlier leaders); for others: applied ==
        commit. A new leader should wait for this before serving reads of its state machine."""
        core = self.core
        if core.role is Role.LEADER:
            return core.term_start > 0 and core.applied >= core.term_start
        return core.applied >= core.commit

    def propose(self, data: bytes) -> asyncio.Future[int]:
        """A future resolved with the entry's index once it is committed and applied here. It
        fails at once with NotLeader (naming the leader to ask, or the node a transfer is
        handing leadership to), or later with ProposalFailed when leadership is lost first.
        Raises DriverStopped when the node stopped."""
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._check_running()
        index = self.core.propose(data)
        if index is None:
            fut.set_exception(NotLeader(self.core.transferee or self.core.leader))
            return fut
        self.metrics.proposals += 1
        self._pending[index] = (self.core.term, fut)
        self._wake.set()
        return fut

    async def propose_membership(self, *, add: str | None = None,
                                 remove: str | None = None) -> int:
        """Add or remove one voter; returns once the change is committed and applied here."""
        self._check_running()
        index = self.core.propose_membership(add=add, remove=remove)
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending[index] = (self.core.term, fut)
        self._wake.set()
        return await fut

    def campaign(self) -> None:
        """Stand for election now (see `RaftNode.campaign`)."""
        self.core.campaign()
        self._wake.set()

    def transfer_leadership(self, to: str) -> bool:
        ok = self.core.transfer_leadership(to)
        self._wake.set()
        return ok

    def compact(self, index: int, data: bytes) -> None:
        """The application's snapshot up to `index` (<= applied): persisted with the next
        group commit, after which the log before it is dropped."""
        self.core.compact(index, data)
        self._wake.set()

    async def wait_for_leader(self, timeout: float | None = None) -> str:
        """The leader's id, as soon as this node knows one."""
        if self.core.leader is not None:
            return self.core.leader
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._leader_waiters.append(fut)
        return await asyncio.wait_for(fut, timeout)

    async def wait_applied(self, index: int, timeout: float | None = None) -> None:
        """Until this node applied `index` (for followers and tests)."""
        self._check_running()
        if self.core.applied >= index:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._applied_waiters.append((index, fut))
        await asyncio.wait_for(fut, timeout)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float | None = None) -> None:
        """Until `predicate()` (checked after every batch of work this node does) holds."""
        self._check_running()
        if predicate():
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._watchers.append((predicate, fut))
        await asyncio.wait_for(fut, timeout)

    # Internals ------------------------------------------------------------------------------

    def _check_running(self) -> None:
        if self._failure is not None:
            raise DriverStopped(f"raft driver failed: {self._failure!r}")
        if self._stopped:
            raise DriverStopped("raft driver stopped")

    async def _ticker(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while not self._stopped:
            next_at += self.tick_interval
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            self.core.tick()
            self._wake.set()

    async def _run(self) -> None:
        try:
            while not self._stopped:
                await self._wake.wait()
                self._wake.clear()
                while not self._stopped:
                    rd = self.core.ready()
                    if rd is None:
                        break
                    await self._handle(rd)
                self._after_cycle()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._fatal(exc)

    def _fatal(self, exc: BaseException) -> None:
        """Stop for good: state can no longer be trusted to follow the rules."""
        if self._failure is None:
            self._failure = exc
            log.error("raft %s/%s: driver failed: %r", self.group, self.id, exc, exc_info=exc)
        self._stopped = True
        self._wake.set()
        self._fail_all(DriverStopped(f"raft driver failed: {exc!r}"))

    async def _handle(self, rd: Ready) -> None:
        self.metrics.readies += 1
        for m in rd.eager:
            self._send(m)
        if rd.must_persist():
            self.log.stage(rd)
            job = self.log.begin_sync()
            if job is not None:
                t0 = time.perf_counter()
                running = asyncio.get_running_loop().run_in_executor(self.executor, job.run)
                try:
                    await asyncio.shield(running)
                except asyncio.CancelledError:
                    with contextlib.suppress(BaseException):
                        await running  # never leave a worker writing to files we give up
                    self.log.abort_sync(job)
                    raise
                except BaseException:
                    self.log.abort_sync(job)
                    raise
                self.log.finish_sync(job)
                self.metrics.syncs += 1
                self.metrics.sync_seconds += time.perf_counter() - t0
            self.metrics.entries_persisted += len(rd.entries)
        for m in rd.messages:
            self._send(m)
        if rd.snapshot is not None:
            self.app.restore(rd.snapshot.meta, rd.snapshot.data)
            self.metrics.snapshots_restored += 1
            self._fail_below(rd.snapshot.meta.index)
        for e in rd.committed:
            self.app.apply(e)
            self.metrics.entries_applied += 1
            waiting = self._pending.pop(e.index, None)
            if waiting is not None:
                term, fut = waiting
                if fut.done():
                    continue
                if term == e.term:
                    fut.set_result(e.index)
                else:
                    self.metrics.proposals_failed += 1
                    fut.set_exception(ProposalFailed(
                        f"entry {e.index} was replaced by another leader's", False))
        self.core.advance(rd)
        if self._applied_waiters and (rd.committed or rd.snapshot is not None):
            applied = self.core.applied
            keep = []
            for index, done_fut in self._applied_waiters:
                if index <= applied:
                    if not done_fut.done():
                        done_fut.set_result(None)
                else:
                    keep.append((index, done_fut))
            self._applied_waiters = keep

    def _after_cycle(self) -> None:
        core = self.core
        if self._pending and (core.role is not Role.LEADER
                              or any(t != core.term for t, _ in self._pending.values())):
            lost = [(i, t, f) for i, (t, f) in self._pending.items()
                    if core.role is not Role.LEADER or t != core.term]
            for index, _, fut in lost:
                del self._pending[index]
                if not fut.done():
                    self.metrics.proposals_failed += 1
                    fut.set_exception(ProposalFailed(
                        f"leadership lost before entry {index} committed", True))
        if core.leader is not None and self._leader_waiters:
            for leader_fut in self._leader_waiters:
                if not leader_fut.done():
                    leader_fut.set_result(core.leader)
            self._leader_waiters = []
        self.metrics.extra = dict(core.counters)
        seen = (core.role, core.leader, core.term)
        if seen != self._seen:
            self._seen = seen
            if self.on_change is not None:
                try:
                    self.on_change()
                except Exception:
                    log.exception("raft %s/%s: on_change callback failed", self.group, self.id)
        if self._watchers:
            keep = []
            for predicate, done_fut in self._watchers:
                if done_fut.done():
                    continue
                if predicate():
                    done_fut.set_result(None)
                else:
                    keep.append((predicate, done_fut))
            self._watchers = keep

    def _fail_below(self, index: int) -> None:
        for i in [i for i in self._pending if i <= index]:
            _, fut = self._pending.pop(i)
            if not fut.done():
                fut.set_exception(ProposalFailed(f"entry {i} was covered by a snapshot", True))

    def _fail_all(self, exc: BaseException) -> None:
        for _, fut in self._pending.values():
            if not fut.done():
                fut.set_exception(exc)
        self._pending.clear()
        for leader_fut in self._leader_waiters:
            if not leader_fut.done():
                leader_fut.set_exception(exc)
        self._leader_waiters = []
        for _, done_fut in self._applied_waiters + self._watchers:
            if not done_fut.done():
                done_fut.set_exception(exc)
        self._applied_waiters = []
        self._watchers = []
