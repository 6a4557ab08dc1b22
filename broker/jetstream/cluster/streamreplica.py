"""A replicated (R3) stream on this server: its `Stream` state machine fed by its Raft group.

Only the leader ingests: it subscribes to the stream's subjects (so peers route publishes to it),
batches what arrives in one loop turn into one MSGS entry, and proposes it. Every replica applies
committed entries through `Stream.apply_publish`, in log order, with the leader's timestamps, so
all assign the same sequences and make the same dedupe and limit decisions. The PubAck leaves
once the entry is committed (on a quorum, fsynced there) and applied here.

The store is written at apply time without its own fsync: the Raft log is the write-ahead log.
A snapshot (taken after a store sync) records the stream's last sequence at an applied index;
after a restart the store is cut back to that sequence and the log after it is applied again,
so the store always equals "snapshot + log". A replica whose store lacks messages the snapshot
covers copies them from a peer first (`catchup`), holding back later entries meanwhile.

Who answers a publish, and when it gets no answer at all, is `ingest`'s table of outcomes.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import time
from collections.abc import Awaitable
from typing import Protocol

from broker.jetstream import errors
from broker.jetstream.cluster import catchup, entries
from broker.jetstream.cluster.entries import Origin
from broker.jetstream.cluster.groups import GroupHost, best_successor
from broker.jetstream.cluster.ingest import Answers, Ingest, Message
from broker.jetstream.cluster.meta import StreamAssignment
from broker.jetstream.errors import ApiError
from broker.jetstream.jetstream import JetStream, LocalStream
from broker.jetstream.jsondecode import JsonObject
from broker.jetstream.sourcing import guard_published
from broker.logger import logger
from broker.sublist import Subscription
from common.gotime import now_ns
from raft.driver import ProposalFailed, RaftDriver
from raft.log import RaftLog
from raft.messages import Entry, EntryType
from raft.state import SnapshotMeta
from storage import StoreError

# Applied messages between snapshots (bounds the replay at a restart); tests lower it to make
# a lagging replica need a snapshot.
SNAPSHOT_MSGS = int(os.environ.get("BROKER_STREAM_SNAPSHOT_MSGS", "100000"))
SNAPSHOT_SECONDS = 30.0


class StreamReplicaHost(GroupHost, Protocol):
    """What a replicated stream needs of the cluster (`jetstream_cluster.JetStreamCluster`)."""

    @property
    def js(self) -> JetStream: ...

    def stream_leader_changed(self, replica: StreamReplica) -> None: ...

    def respond_stream_info(self, replica: StreamReplica, reply: bytes) -> None: ...


class StreamReplica:
    def __init__(self, cluster: StreamReplicaHost, stream: LocalStream,
                 sa: StreamAssignment) -> None:
        self.cluster = cluster
        self.js = cluster.js
        self.bus = cluster.js.bus
        self.stream = stream
        stream.leader = False  # republishes only while leading (see _gain_leadership)
        self.assignment = sa
        self.group = sa.group
        self.label = f"'$G > {stream.config.name}' ({sa.group})"
        self.driver: RaftDriver | None = None
        self.leader = False
        self.leader_since = 0
        self.epoch = b""  # drawn at each election won; names this leader's proposals
        self._number = 0
        # The batch being gathered and the proposals waiting for their entries: replies of
        # publishes, or the futures of purge and delete requests (None: unanswered).
        self._ingest_state: Ingest[asyncio.Future[JsonObject | None]] = Ingest()
        self._flush_scheduled = False
        self._ingest: list[Subscription] = []
        self._serving: Subscription | None = None
        self._applied_msgs = 0
        self._snapshot_at = time.monotonic()
        self._snapshotting = False
        self.applied_index = 0
        self.catching_up = False
        self._catchup_to = 0  # the store's last sequence once the running catch-up is done
        self._held: list[Entry] = []
        self.create_reply: bytes | None = None  # a stream create's reply: answered when leader
        self.closed = False

    async def start(self, raft_log: RaftLog) -> None:
        self._serving = self.bus.subscribe_internal(
            catchup.subject(self.group, self.bus.name),
            catchup.serve(lambda: self.stream.store, self.bus), propagate=True)
        self.driver = await self.cluster.groups.open(self.group, self.assignment.peers, self,
                                                     on_change=self._role_changed,
                                                     raft_log=raft_log)

    async def stop(self, destroy: bool = False) -> None:
        self.closed = True
        self._lose_leadership()
        if self._serving is not None:
            self.bus.unsubscribe_internal(self._serving)
            self._serving = None
        await self.cluster.groups.close(self.group, destroy=destroy)
        deleted = errors.stream_not_found() if destroy else None
        answers, requests = self._ingest_state.stopped(
            self.stream.pub_error(deleted) if deleted else None)
        for reply, payload in answers:
            self._reply(reply, payload)
        for request in requests:
            if not request.done():
                request.set_result({"error": deleted.to_json()} if deleted else None)

    # Raft application

    def apply(self, entry: Entry) -> None:
        if entry.type is not EntryType.NORMAL:
            self.applied_index = entry.index
            return
        if self.catching_up:
            self._held.append(entry)
            return
        self._apply(entry)

    def _apply(self, entry: Entry) -> None:
        self.applied_index = entry.index
        try:
            op = entries.decode(entry.data)
        except ValueError as exc:
            logger.error("JetStream stream %s: undecodable entry %d skipped: %s", self.label,
                         entry.index, exc)
            return
        waiting = self._ingest_state.applied(op.origin)
        if op.kind == entries.MSGS:
            answers = waiting if isinstance(waiting, Answers) else None
            self._apply_msgs(op.msgs or [], answers.replies if answers else None)
            for reply, payload in answers.refused if answers else ():
                self._reply(reply, payload)  # committed: we led when they were refused
        else:
            result = self._apply_request(op.kind, op.request or {})
            if isinstance(waiting, asyncio.Future) and not waiting.done():
                waiting.set_result(result)
        stream = self.stream
        stream.on_durable(stream.store.last_seq)
        self._maybe_snapshot()

    def _apply_msgs(self, msgs: list[entries.Publish], replies: list[bytes] | None) -> None:
        """Every replica stores the committed messages through the stream's one store-and-ack
        path; the PubAcks (only the leader has replies) leave with `on_durable` right after:
        committed is durable, on a quorum."""
        stream = self.stream
        for i, msg in enumerate(msgs):
            reply = replies[i] if replies else b""
            if stream.store_publish(msg.subject, msg.hdr, msg.data, msg.ts, reply) is not None:
                self._applied_msgs += 1

    def _reply(self, reply: bytes, payload: bytes) -> None:
        if reply:
            self.bus.publish_internal(reply, payload=payload)

    def _apply_request(self, kind: int, request: JsonObject) -> JsonObject:
        """A purge or message delete, applied identically on every replica."""
        stream = self.stream
        try:
            if kind == entries.PURGE:
                purged = stream.store.purge(subject=request.get("filter") or None,
                                            seq=request.get("seq", 0),
                                            keep=request.get("keep", 0))
                stream.on_purged(request.get("filter") or None)
                return {"success": True, "purged": purged}
            seq = request.get("seq", 0)
            if not stream.store.remove(seq, erase=not request.get("no_erase", False)):
                return {"error": ApiError(400, 10043, f"sequence {seq} not found").to_json()}
            stream.on_removed()
            return {"success": True}
        except StoreError as exc:
            return {"error": errors.store_failed(str(exc)).to_json()}

    def restore(self, meta: SnapshotMeta, data: bytes) -> None:
        """Make the store what the snapshot describes: cut it back, or copy what it lacks."""
        self.applied_index = meta.index
        # Entries held back during an earlier catch-up that this snapshot covers are in it.
        self._held = [entry for entry in self._held if entry.index > meta.index]
        state = json.loads(data)
        store = self.stream.store
        last, first = int(state["last_seq"]), int(state.get("first_seq", 0))
        damaged = store.state().damaged
        if damaged and damaged[0][0] <= last:
            # Never serve damage, and never keep a hole a peer could fill: cut back to before
            # the first damaged record and copy everything after it from the peers.
            cut = damaged[0][0] - 1
            logger.error("JetStream stream %s: store damaged at %s; cut back to seq %d to copy "
                         "the rest from peers", self.label, damaged, cut)
            store.truncate(cut)
        if store.last_seq > last:
            logger.info("JetStream stream %s: store cut back from seq %d to snapshot seq %d",
                        self.label, store.last_seq, last)
            store.truncate(last)
        if first > 1 and store.msgs and store.first_seq < first:
            store.purge(seq=first)
        self.stream.on_removed()
        self.stream.reload_dedupe()
        if store.last_seq >= last:
            return
        # One copy at a time: a newer snapshot while copying only moves the running one's goal
        # (two would both append what the store lacks).
        self._catchup_to = max(self._catchup_to, last) if self.catching_up else last
        if not self.catching_up:
            self.catching_up = True
            task = asyncio.get_running_loop().create_task(self._catch_up())
            self.cluster.track(task)

    async def _catch_up(self) -> None:
        store = self.stream.store
        try:
            while store.last_seq < self._catchup_to:
                await catchup.fetch(self.bus, self.group, self._catchup_peers, store,
                                    self._catchup_to, self.label)
        except StoreError as exc:
            logger.error("JetStream stream %s: catch-up failed: %s", self.label, exc)
            return
        self.catching_up = False
        self.stream.reload_dedupe()  # the copied messages' ids count from now on
        held, self._held = self._held, []
        for entry in held:
            if self.catching_up:  # a newer snapshot arrived meanwhile
                self._held.append(entry)
                continue
            self._apply(entry)
        self.stream.on_durable(self.stream.store.last_seq)

    def _catchup_peers(self) -> list[str]:
        if self.driver is None:
            return []
        leader = self.driver.leader
        others = [p for p in self.assignment.peers if p not in (self.bus.name, leader)]
        return ([leader] if leader and leader != self.bus.name else []) + others

    # Snapshots

    def _maybe_snapshot(self) -> None:
        if self._snapshotting or self.catching_up or self.driver is None:
            return
        due = self._applied_msgs >= SNAPSHOT_MSGS or (
            self._applied_msgs and time.monotonic() - self._snapshot_at > SNAPSHOT_SECONDS)
        if due:
            self.snapshot_now()

    def snapshot_now(self) -> None:
        """Sync the store, then let the log drop what the store now holds durably."""
        store = self.stream.store
        index = self.applied_index
        data = json.dumps({"first_seq": store.first_seq, "last_seq": store.last_seq,
                           "msgs": store.msgs}).encode()
        self._snapshotting = True
        self._applied_msgs = 0
        self._snapshot_at = time.monotonic()

        def synced(error: BaseException | None) -> None:
            self._snapshotting = False
            if error is not None:
                logger.error("JetStream stream %s: store sync for snapshot failed: %s",
                             self.label, error)
                return
            if self.driver is not None and not self.closed:
                self.driver.compact(index, data)
        self.js.commit.after_sync(store, synced)

    # Leadership

    def _role_changed(self) -> None:
        driver = self.driver
        if driver is None or self.closed:
            return
        if driver.is_leader and not self.leader:
            self._gain_leadership()
        elif not driver.is_leader and self.leader:
            self._lose_leadership()

    def _gain_leadership(self) -> None:
        self.leader = True
        self.stream.leader = True
        self.leader_since = now_ns()
        self.epoch = entries.new_epoch()
        self._number = 0
        logger.info("JetStream stream %s: this server is the leader", self.label)
        self._ingest = self.js.subscribe_ingest(self.stream,
                                               guard_published(self.stream, self.ingest))
        # The leader copies the stream's mirror or sources (proposed like any publish).
        self.js.start_sourcing(self.stream, self.ingest, synchronous=False)
        self.cluster.stream_leader_changed(self)
        if self.create_reply is not None:
            reply = self.create_reply
            self.create_reply = None
            self.cluster.respond_stream_info(self, reply)

    def resubscribe_ingest(self) -> None:
        """The stream's subjects changed: the leader ingests on the new ones."""
        if not self.leader:
            return
        for sub in self._ingest:
            self.bus.unsubscribe_internal(sub)
        self._ingest = self.js.subscribe_ingest(self.stream,
                                               guard_published(self.stream, self.ingest))
        self.js.start_sourcing(self.stream, self.ingest, synchronous=False)

    def _lose_leadership(self) -> None:
        if not self.leader:
            return
        self.leader = False
        self.stream.leader = False
        self.js.stop_sourcing(self.stream.config.name)
        self.epoch = b""
        for sub in self._ingest:
            self.bus.unsubscribe_internal(sub)
        self._ingest = []
        # Not proposed, and the new leader may have the same messages: no answer (see ingest).
        self._ingest_state.drop_batch()
        self.cluster.stream_leader_changed(self)

    # Ingest (leader)

    def ingest(self, subject: bytes, reply: bytes, hdr: int, payload: bytes) -> None:
        stream = self.stream
        if hdr > 0:
            header, data = payload[:hdr], payload[hdr:]
        else:
            header, data = b"", payload
        ack = reply if reply and not stream.config.no_ack else b""
        try:
            self.js.check_limits(stream, len(payload))
        except ApiError as exc:
            self._ingest_state.refuse(ack, stream.pub_error(exc))
        else:
            if self._ingest_state.add(Message(subject, header, data, now_ns()), ack):
                self._flush()
                return
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.bus.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self.leader or self.driver is None:
            self._ingest_state.drop_batch()  # no answer: see ingest's table
            return
        batch = self._ingest_state.take()
        if batch is None:
            return
        origin = self._origin()
        self._ingest_state.proposed(origin, batch)
        self._propose(origin, entries.encode_msgs(origin, batch.msgs))

    def _propose(self, origin: Origin, entry: bytes) -> None:
        assert self.driver is not None
        future = self.driver.propose(entry)
        future.add_done_callback(lambda f: self._proposal_done(origin, f))

    def _origin(self) -> Origin:
        self._number += 1
        return Origin(self.epoch, self._number)

    def _proposal_done(self, origin: Origin, future: asyncio.Future) -> None:
        error = future.exception()
        if error is None:
            return
        may_commit = isinstance(error, ProposalFailed) and error.indeterminate
        request = self._ingest_state.failed(origin, may_commit)
        if request is not None and not request.done():
            request.set_result(None)  # no answer: see ingest's table

    def propose_request(self, kind: int, request: JsonObject
                        ) -> Awaitable[JsonObject | None]:
        """A purge or delete through the log: the result once applied here, or None when it
        gets no answer (not the leader, or the proposal failed: see ingest's table)."""
        loop = asyncio.get_running_loop()
        result: asyncio.Future[JsonObject | None] = loop.create_future()
        if not self.leader or self.driver is None:
            result.set_result(None)
            return result
        origin = self._origin()
        self._ingest_state.requested(origin, result)
        self._propose(origin, entries.encode_request(kind, origin, request))
        return result

    def step_down(self) -> None:
        driver = self.driver
        if driver is None or not driver.is_leader:
            raise ApiError(500, 10009, "JetStream cluster can not handle request")
        target = best_successor(driver, self.assignment.peers, self.bus.name)
        if target is None or not driver.transfer_leadership(target):
            raise ApiError(500, 10009, "JetStream cluster can not handle request")

    # Monitoring

    def cluster_info(self) -> JsonObject:
        return self.cluster.group_info(self.driver, self.assignment.peers, self.leader_since)


def peer_hash(name: str) -> str:
    """nats-server's short peer id: the first 8 characters of the base64 SHA-256 of the name."""
    return base64.b64encode(hashlib.sha256(name.encode()).digest()).decode()[:8]
