"""A replicated (R3) consumer on this server: its state fed by its Raft group.

Every replica keeps the *committed* state: what the applied log says was delivered and
acknowledged. Only the leader delivers. When it is elected (and has applied everything its
predecessors committed) it starts a live `Consumer` on a copy of the committed state; that copy
moves ahead at once as it delivers and takes acks, and every change is proposed as an op. A new
leader therefore resumes from what was committed: what the old one delivered without committing is
delivered again, and nothing whose ack was committed ever is. Followers hold a passive `Consumer`
on the committed state, so the stream's retention sees every consumer everywhere.

Log entries: `O` + ops (ConsumerState's fixed-size encoding), or `S` + a whole state (the first
leader's starting position, which depends on the store it sees, and snapshots).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from broker.jetstream.cluster.groups import GroupHost
from broker.jetstream.cluster.meta import ConsumerAssignment
from broker.jetstream.consumer import Consumer
from broker.jetstream.consumerconfig import ConsumerConfig
from broker.jetstream.consumerstate import ACK, ACK_ALL, TERM, ConsumerState
from broker.jetstream.jetstream import JetStream, LocalStream
from broker.logger import logger
from common.gotime import now_ns
from raft.driver import RaftDriver
from raft.messages import Entry, EntryType
from raft.state import SnapshotMeta

OPS = b"O"
STATE = b"S"
SNAPSHOT_OPS = 50_000
_ACKS = frozenset({ACK, ACK_ALL, TERM})


class ConsumerReplicaHost(GroupHost, Protocol):
    """What a replicated consumer needs of the cluster (`jetstream_cluster.JetStreamCluster`)."""

    @property
    def js(self) -> JetStream: ...

    def consumer_leader_changed(self, replica: ConsumerReplica) -> None: ...

    def respond_consumer_info(self, replica: ConsumerReplica, reply: bytes) -> None: ...


class ConsumerReplica:
    def __init__(self, cluster: ConsumerReplicaHost, stream: LocalStream,
                 ca: ConsumerAssignment, config: ConsumerConfig) -> None:
        self.cluster = cluster
        self.js = cluster.js
        self.stream = stream
        self.assignment = ca
        self.config = config
        self.name = ca.name
        self.group = ca.group
        self.label = f"'$G > {stream.config.name} > {ca.name}' ({ca.group})"
        self.driver: RaftDriver | None = None
        self.initialized = False  # a state entry (or snapshot) was applied
        self.committed = self.js.initial_consumer_state(stream, config)
        self.log = ReplicatedLog(self)
        self.consumer: Consumer = self._passive()
        self.leader = False
        self.leader_since = 0
        self.applied_index = 0
        self._ops_since_snapshot = 0
        self.create_reply: tuple[bytes, dict[str, Any]] | None = None
        self.closed = False

    async def start(self) -> None:
        self.stream.consumers[self.name] = self.consumer
        self.driver = await self.cluster.groups.open(self.group, self.assignment.peers, self,
                                                     on_change=self._role_changed)

    async def stop(self, reason: str = "", destroy: bool = False) -> None:
        self.closed = True
        self.consumer.stop(reason)
        if self.stream.consumers.get(self.name) is self.consumer:
            del self.stream.consumers[self.name]
        await self.cluster.groups.close(self.group, destroy=destroy)

    # Raft application

    def apply(self, entry: Entry) -> None:
        self.applied_index = entry.index
        if entry.type is not EntryType.NORMAL or not entry.data:
            return
        kind, body = entry.data[:1], entry.data[1:]
        if kind == STATE:
            self._adopt(ConsumerState.restore(body, self.config.acks_required))
            return
        if kind != OPS:
            logger.error("JetStream consumer %s: unknown entry %d skipped", self.label,
                         entry.index)
            return
        size = ConsumerState.OP_SIZE
        acked: list[int] = []
        for offset in range(0, len(body) - size + 1, size):
            op = ConsumerState.decode_op(body[offset:offset + size])
            self.committed.apply(op)
            if op[0] in _ACKS:
                acked.append(op[1])
        if acked and not self.leader and self.stream.config.retention != "limits":
            self.stream.on_acked(self.consumer, acked)
        if not self.leader:
            self.consumer.signal()
        self._ops_since_snapshot += len(body) // size
        if self._ops_since_snapshot >= SNAPSHOT_OPS and self.driver is not None:
            self._ops_since_snapshot = 0
            self.driver.compact(entry.index, STATE + self.committed.snapshot())

    def restore(self, meta: SnapshotMeta, data: bytes) -> None:
        self.applied_index = meta.index
        if data[:1] == STATE:
            self._adopt(ConsumerState.restore(data[1:], self.config.acks_required))

    def _adopt(self, state: ConsumerState) -> None:
        self.initialized = True
        self.committed = state
        if not self.leader:
            self._replace(self._passive())

    # Leadership

    def _role_changed(self) -> None:
        driver = self.driver
        if driver is None or self.closed:
            return
        if driver.is_leader and not self.leader:
            self.leader = True
            self.cluster.track(asyncio.get_running_loop().create_task(self._lead()))
        elif not driver.is_leader and self.leader:
            self.leader = False
            logger.debug("JetStream consumer %s: no longer the leader", self.label)
            self.consumer.stop("Leadership Change")
            self._replace(self._passive())
            self.cluster.consumer_leader_changed(self)

    async def _lead(self) -> None:
        """Start delivering once everything committed before this term is applied here."""
        driver = self.driver
        assert driver is not None
        try:
            await driver.wait_for(lambda: not driver.is_leader or driver.caught_up())
        except Exception:  # the driver stopped
            return
        if not driver.is_leader or not self.leader or self.closed:
            return
        self.leader_since = now_ns()
        if not self.initialized:
            # The first leader fixes the starting position from the store it sees.
            self.committed = self.js.initial_consumer_state(self.stream, self.config)
            driver.propose(STATE + self.committed.snapshot())
            self.initialized = True
        working = ConsumerState.restore(self.committed.snapshot(), self.config.acks_required)
        consumer = self.js.build_consumer(self.stream, self.name, self.config,
                                          self.assignment.created, working, self.log)
        self._replace(consumer)
        consumer.start()
        logger.info("JetStream consumer %s: this server is the leader", self.label)
        self.cluster.consumer_leader_changed(self)
        if self.create_reply is not None:
            reply, _ = self.create_reply
            self.create_reply = None
            self.cluster.respond_consumer_info(self, reply)

    def _passive(self) -> Consumer:
        return self.js.build_consumer(self.stream, self.name, self.config,
                                      self.assignment.created, self.committed, self.log)

    def _replace(self, consumer: Consumer) -> None:
        self.consumer = consumer
        if not self.closed:
            self.stream.consumers[self.name] = consumer

    def update_config(self, config: ConsumerConfig) -> None:
        """A config update (applied through the meta group): restart on the new config."""
        self.config = config
        if self.leader:
            self.consumer.stop()
            working = self.consumer.state
            consumer = self.js.build_consumer(self.stream, self.name, config,
                                              self.assignment.created, working, self.log)
            self._replace(consumer)
            consumer.start()
        else:
            self._replace(self._passive())

    def propose(self, data: bytes) -> asyncio.Future[int] | None:
        if self.driver is None or not self.leader:
            return None
        return self.driver.propose(data)

    def cluster_info(self) -> dict[str, Any]:
        return self.cluster.group_info(self.driver, self.assignment.peers, self.leader_since)


class ReplicatedLog:
    """What a live replicated consumer records its ops into: each loop turn's ops become one
    proposal. `after_durable` calls back once everything recorded so far is committed (an
    ack with a reply is answered then)."""

    def __init__(self, replica: ConsumerReplica) -> None:
        self.replica = replica
        self._ops: list[bytes] = []
        self._waiting: list[Callable[[BaseException | None], None]] = []
        self._last: asyncio.Future[int] | None = None
        self._scheduled = False

    def append(self, op: bytes) -> None:
        self._ops.append(op)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        if not self._ops:
            return
        data = OPS + b"".join(self._ops)
        self._ops = []
        waiting, self._waiting = self._waiting, []
        future = self.replica.propose(data)
        if future is None:
            for callback in waiting:
                callback(RuntimeError("not the consumer leader"))
            return
        self._last = future
        for callback in waiting:
            future.add_done_callback(_callback(callback))

    def after_durable(self, callback: Callable[[BaseException | None], None]) -> None:
        """Committed is durable here: on a quorum, fsynced there."""
        if self._ops:
            self._waiting.append(callback)
        elif self._last is not None and not self._last.done():
            self._last.add_done_callback(_callback(callback))
        else:
            callback(None)

    # What a consumer's local state log offers, which a replicated one does not need.

    def size(self) -> int:
        return 0

    def compact(self, snapshot: bytes) -> None:
        pass

    def close(self) -> None:
        self.flush()

    def destroy(self) -> None:
        self._ops = []


def _callback(callback: Callable[[BaseException | None], None]
              ) -> Callable[[asyncio.Future[int]], None]:
    def done(future: asyncio.Future[int]) -> None:
        if future.cancelled() or future.exception() is not None:
            callback(RuntimeError("not committed"))
        else:
            callback(None)
    return done
