"""JetStream on a cluster: the meta group, and the streams and consumers this server holds.

Every JetStream server is a member of the meta group (`_meta_`), whose log holds the stream and
consumer assignments (`meta.MetaState`). The meta leader validates API mutations, places new
streams (R1 on one server, R3 on three) and proposes them; every server applies the same log and
starts what is assigned to it: an R1 stream is the single-server stream as before (its server
ingests and fsyncs), an R3 stream or consumer runs a Raft group of its own (`replica`,
`consumerreplica`). API requests reach every server (the API subscriptions are propagated); each
answers only what is its job (see `cluster.api`).

Bootstrapping: the meta group's voters are fixed the first time, once every configured route is
resolved (to a peer, or to this server itself) and all the servers they name are connected, and
are kept in `peers.json` from then on.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping
from typing import Protocol

from broker.jetstream import errors
from broker.jetstream.cluster import meta
from broker.jetstream.cluster.consumerreplica import ConsumerReplica
from broker.jetstream.cluster.groups import TICK, RaftGroups, RaftTransport
from broker.jetstream.cluster.meta import Change, ConsumerAssignment, MetaState, StreamAssignment
from broker.jetstream.cluster.streamreplica import StreamReplica, peer_hash
from broker.jetstream.consumerconfig import ConsumerConfig
from broker.jetstream.errors import ApiError
from broker.jetstream.jetstream import JetStream, LocalStream
from broker.jetstream.jsondecode import JsonObject
from broker.jetstream.streamconfig import StreamConfig
from broker.logger import logger
from common.gotime import format_ns, now_ns
from config.options import GLOBAL_ACCOUNT, ClusterOptions
from raft.driver import RaftDriver
from raft.messages import Entry, EntryType
from raft.state import SnapshotMeta
from storage import StoreError, durable

META_GROUP = "_meta_"
META_SNAPSHOT_ENTRIES = 1000
FRESH = 10.0  # seconds: a proposal older than this is being replayed, not answered
BOOTSTRAP_POLL = 0.1


class ClusterRoutes(RaftTransport, Protocol):
    """What the cluster needs of the route connections (`broker.route.RouteManager`)."""

    name: str
    options: ClusterOptions

    def bootstrap_peers(self) -> list[str] | None:
        """The servers the configured routes lead to, once every one is resolved; else None."""
        ...

    def routes_include_self(self) -> bool: ...

    def jetstream_peers(self) -> list[str]: ...


class InfoConsumer(Protocol):
    """A consumer as CONSUMER.INFO sees it (`consumer.Consumer`; /metrics' view of one)."""

    @property
    def name(self) -> str: ...

    @property
    def stream_name(self) -> str: ...

    def info(self, now: int = 0) -> Mapping[str, object]: ...


def groups_dir(store_dir: str, account: str) -> str:
    """Where this server keeps the Raft groups of an account's JetStream: nats-server's
    `$SYS/_js_` for the global account, a directory per account beside it for the others."""
    if account == GLOBAL_ACCOUNT:
        return os.path.join(store_dir, "$SYS", "_js_")
    return os.path.join(store_dir, "$SYS", "_js_accounts_", account)


class JetStreamCluster:
    def __init__(self, js: JetStream, routes: ClusterRoutes) -> None:
        self.js = js
        self.bus = js.bus
        self.routes = routes
        self.name = routes.name
        self.groups = RaftGroups(self.bus.name, routes, groups_dir(js.store_dir, js.account))
        self.meta = MetaState()
        self.meta_driver: RaftDriver | None = None
        self.meta_leader = False
        self.streams: dict[str, StreamReplica] = {}  # R3 streams held here
        self.consumers: dict[tuple[str, str], ConsumerReplica] = {}  # R3 consumers held here
        self.waiting: dict[str, asyncio.Future[Change]] = {}  # meta proposal id -> its change
        self._changes: asyncio.Queue[Change | None] = asyncio.Queue()
        self._meta_applied = 0
        self._meta_entries = 0
        self._tasks: set[asyncio.Task] = set()
        self._started = False
        self.stopped = False
        self.problem = ""  # why this server cannot take part, for health and the log

    # Lifecycle

    def start(self) -> None:
        self.track(self.bus.loop.create_task(self._run()))

    def track(self, task: asyncio.Task) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("JetStream cluster task failed", exc_info=task.exception())

    async def _run(self) -> None:
        peers = self._saved_meta_peers()
        if peers is None:
            peers = await self._bootstrap_peers()
            if peers is None:
                return
            self._save_meta_peers(peers)
        logger.info("JetStream cluster meta group: %s", ", ".join(sorted(peers)))
        self.meta_driver = await self.groups.open(META_GROUP, peers, MetaApplication(self),
                                                  on_change=self._meta_role_changed)
        self._started = True
        while not self.stopped:
            change = await self._changes.get()
            if change is None:
                break
            try:
                await self._act(change)
            except Exception:
                logger.exception("JetStream cluster failed to act on %s", change.op)

    async def hand_over(self, timeout: float) -> int:
        """Lame duck: hand the leadership of every group led here to a peer."""
        return await self.groups.hand_over(timeout)

    async def stop(self) -> None:
        self.stopped = True
        self._changes.put_nowait(None)
        for replica in list(self.consumers.values()):
            await replica.stop()
        for stream_replica in list(self.streams.values()):
            await stream_replica.stop()
        await self.groups.close_all()
        for task in list(self._tasks):
            task.cancel()

    # Bootstrapping the meta group

    def _meta_dir(self) -> str:
        return self.groups.directory(META_GROUP)

    def _saved_meta_peers(self) -> list[str] | None:
        try:
            raw = durable.read_checked(os.path.join(self._meta_dir(), "peers.json"))
        except (OSError, ValueError):
            return None
        return list(json.loads(raw))

    def _save_meta_peers(self, peers: list[str]) -> None:
        durable.makedirs(self._meta_dir())
        durable.write_checked(os.path.join(self._meta_dir(), "peers.json"),
                              json.dumps(sorted(peers)).encode())

    async def _bootstrap_peers(self) -> list[str] | None:
        """Wait until every configured route leads somewhere, then take the servers seen."""
        logger.info("JetStream cluster waiting for its peers (%d routes configured)",
                    len(self.routes.options.routes))
        while not self.stopped:
            peers = self.routes.bootstrap_peers()
            if peers is not None and self.routes.routes_include_self():
                self.problem = ""
                return sorted({self.bus.name, *peers})
            if peers is not None:
                self._refuse_to_found()
            await asyncio.sleep(BOOTSTRAP_POLL)
        return None

    def _refuse_to_found(self) -> None:
        """Every route leads to another server and none to this one: this server is not in the
        cluster's list (a pod beyond the replicas the routes name, or a wrong POD_NAME). Founding
        a meta group with the servers it sees would split the cluster; say what is wrong and
        stay out of it (health fails with the same words)."""
        problem = (f"JetStream cluster: this server ({self.bus.name}) is not one of its "
                   f"configured routes ({', '.join(self.routes.options.routes)}); every server "
                   "of a JetStream cluster lists all of them, itself included. Check POD_NAME "
                   "and that cluster.routes names every pod of the StatefulSet")
        if problem != self.problem:
            logger.error("%s", problem)
        self.problem = problem

    # The meta group

    def _meta_role_changed(self) -> None:
        driver = self.meta_driver
        if driver is None:
            return
        leader = driver.is_leader
        if leader == self.meta_leader:
            return
        self.meta_leader = leader
        if leader:
            logger.info("JetStream cluster: this server is the meta leader")
            self.js.advise("$JS.EVENT.ADVISORY.META.LEADER_ELECTED",
                           {"type": "io.nats.jetstream.advisory.v1.meta_leader_elected",
                            "leader": self.bus.name, "cluster": self.name})

    def meta_leader_name(self) -> str | None:
        return self.meta_driver.leader if self.meta_driver is not None else None

    def meta_available(self) -> bool:
        return self.meta_driver is not None and self.meta_driver.leader is not None

    def on_meta_change(self, change: Change) -> None:
        """Called in log order as the meta log is applied (never blocks)."""
        self._meta_entries += 1
        waiter = self.waiting.pop(change.request.get("id", ""), None)
        if waiter is not None and not waiter.done():
            waiter.set_result(change)
        self._changes.put_nowait(change)

    def on_meta_restored(self) -> None:
        self._changes.put_nowait(Change("reconcile"))

    def maybe_snapshot_meta(self, index: int) -> None:
        self._meta_applied = index
        if self._meta_entries >= META_SNAPSHOT_ENTRIES and self.meta_driver is not None:
            self._meta_entries = 0
            self.meta_driver.compact(index, self.meta.snapshot())

    async def propose_meta(self, op: bytes, op_id: str, timeout: float = 10.0) -> Change:
        """Propose an op (meta leader only); the change it made once applied here."""
        driver = self.meta_driver
        if driver is None or not driver.is_leader:
            raise errors.cluster_unavailable()
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Change] = loop.create_future()
        self.waiting[op_id] = waiter
        try:
            await asyncio.wait_for(driver.propose(op), timeout)
            return await asyncio.wait_for(waiter, timeout)
        except (TimeoutError, Exception) as exc:
            if isinstance(exc, ApiError):
                raise
            raise errors.cluster_unavailable() from exc
        finally:
            self.waiting.pop(op_id, None)

    # Acting on applied changes (one at a time, in log order)

    async def _act(self, change: Change) -> None:
        if change.op == "reconcile":
            await self._reconcile()
            return
        if change.error:
            return
        if change.op == meta.ADD_STREAM and change.stream is not None:
            await self._add_stream(change.stream, self._fresh_reply(change))
        elif change.op == meta.UPDATE_STREAM and change.stream is not None:
            self._update_stream(change.stream, self._fresh_reply(change))
        elif change.op == meta.DELETE_STREAM and change.stream is not None:
            sa = change.stream
            answers = self._answers_delete(self.leads_stream(sa.name), sa.peers)
            await self._remove_stream(sa.name)
            if answers:
                self._respond_deleted(self._fresh_reply(change), "stream_delete_response")
        elif change.op == meta.ADD_CONSUMER and change.consumer is not None:
            await self._add_consumer(change.consumer, self._fresh_reply(change))
        elif change.op == meta.DELETE_CONSUMER and change.consumer is not None:
            ca = change.consumer
            answers = self._answers_delete(self.leads_consumer(ca.stream, ca.name), ca.peers)
            await self._remove_consumer(ca.stream, ca.name, "Consumer Deleted")
            if answers:
                self._respond_deleted(self._fresh_reply(change), "consumer_delete_response")

    def _answers_delete(self, leads: bool, peers: list[str]) -> bool:
        """The leader answers a delete once it is done with it (so the client's next request
        finds it gone); the meta leader answers when it holds no copy and no leader can: not
        for an R1 asset whose host is up, which answers once it removed it (an earlier answer
        let the client's next request find the host still serving it)."""
        if leads:
            return True
        if not self.meta_leader or self.bus.name in peers:
            return False
        return len(peers) != 1 or peers[0] not in self.routes.jetstream_peers()

    def _respond_deleted(self, reply: bytes, kind: str) -> None:
        if reply:
            body = {"type": "io.nats.jetstream.api.v1." + kind, "success": True}
            self.bus.publish_internal(reply, payload=json.dumps(body).encode())

    @staticmethod
    def _fresh_reply(change: Change) -> bytes:
        """The client's reply subject, unless the op is old (replayed at a restart)."""
        reply = change.request.get("reply", "")
        sent = change.request.get("ts", 0)
        if not reply or (now_ns() - sent) / 1e9 > FRESH:
            return b""
        return reply.encode()

    async def _reconcile(self) -> None:
        """After a meta snapshot: hold exactly what the assignments give this server."""
        me = self.bus.name
        for name in list(self.js.streams):
            sa = self.meta.streams.get(name)
            if sa is None or me not in sa.peers or self._group_of(name) != sa.group:
                await self._remove_stream(name)
        for sa in self.meta.streams.values():
            if me in sa.peers and sa.name not in self.js.streams:
                await self._add_stream(sa, b"")
            for ca in self.meta.consumers.get(sa.name, {}).values():
                if me in ca.peers:
                    await self._add_consumer(ca, b"")
        for stream_name, name in list(self.consumers):
            if self.meta.consumer(stream_name, name) is None:
                await self._remove_consumer(stream_name, name, "Consumer Deleted")

    def _group_of(self, name: str) -> str:
        replica = self.streams.get(name)
        return replica.group if replica is not None else ""

    async def _add_stream(self, sa: StreamAssignment, reply: bytes) -> None:
        if self.bus.name not in sa.peers or sa.name in self.js.streams:
            return
        config = StreamConfig.from_json(sa.config)
        raft_log = self.groups.open_log(sa.group) if sa.replicated else None
        # A replicated store is "the last snapshot + the log": with no snapshot yet, the whole
        # log is applied again at start, so the store starts empty.
        from_scratch = raft_log is not None and raft_log.snapshot_meta is None
        try:
            stream = self.js.open_assigned_stream(config, sa.created, sa.group, from_scratch)
        except (OSError, ValueError, StoreError, ApiError) as exc:
            logger.error("JetStream could not open stream '$G > %s': %s", sa.name, exc)
            self.js.offline[sa.name] = str(exc)
            return
        if not sa.replicated:
            self.js.attach_assigned(stream, ingest=True)
            if reply:
                self.respond_info(reply, self.stream_info(stream), did_create=True)
            return
        self.js.attach_assigned(stream, ingest=False)
        replica = StreamReplica(self, stream, sa)
        if reply:
            replica.create_reply = reply
        self.streams[sa.name] = replica
        assert raft_log is not None
        await replica.start(raft_log)

    def _update_stream(self, sa: StreamAssignment, reply: bytes) -> None:
        stream = self.js.streams.get(sa.name)
        if stream is None:
            return
        replica = self.streams.get(sa.name)
        if replica is not None:
            replica.assignment = sa
        config = StreamConfig.from_json(sa.config)
        self.js.apply_stream_update(stream, config, ingest=replica is None)
        if replica is not None:
            replica.resubscribe_ingest()
        if reply and (replica is None or replica.leader):
            self.respond_info(reply, self.stream_info(stream))

    async def _remove_stream(self, name: str) -> None:
        for stream_name, consumer_name in list(self.consumers):
            if stream_name == name:
                await self._remove_consumer(stream_name, consumer_name, "Consumer Deleted")
        replica = self.streams.pop(name, None)
        if replica is not None:
            await replica.stop(destroy=True)
        if name in self.js.streams:
            await self.js.delete_stream(name)
        self.js.offline.pop(name, None)

    async def _add_consumer(self, ca: ConsumerAssignment, reply: bytes) -> None:
        if self.bus.name not in ca.peers:
            return
        stream = self.js.streams.get(ca.stream)
        if stream is None:
            return
        config = ConsumerConfig.from_json(ca.config)
        key = (ca.stream, ca.name)
        replica = self.consumers.get(key)
        if replica is not None:
            replica.update_config(config)
            if reply and replica.leader:
                self.respond_consumer_info(replica, reply)
            return
        if not ca.replicated:
            consumer = self.js.open_assigned_consumer(stream, ca.name, config, ca.created)
            if reply:
                self.respond_info(reply, self.consumer_info(consumer))
            return
        replica = ConsumerReplica(self, stream, ca, config)
        if reply:
            replica.create_reply = (reply, {})
        self.consumers[key] = replica
        await replica.start()

    async def _remove_consumer(self, stream_name: str, name: str, reason: str) -> None:
        replica = self.consumers.pop((stream_name, name), None)
        if replica is not None:
            await replica.stop(reason, destroy=True)
            stream = self.js.streams.get(stream_name)
            if stream is not None:
                stream.drop_unneeded()
            return
        stream = self.js.streams.get(stream_name)
        if stream is not None and name in stream.consumers:
            self.js.remove_consumer(stream, name)

    def request_consumer_delete(self, stream: str, name: str) -> None:
        """Ask the meta leader (wherever it is) to delete a consumer, as a client would."""
        subject = f"$JS.API.CONSUMER.DELETE.{stream}.{name}".encode()
        self.bus.publish_internal(subject, b"$JSC.IGNORED." + os.urandom(4).hex().encode())

    # Responses that a stream or consumer leader sends for the meta leader

    def respond_info(self, reply: bytes, info: JsonObject, did_create: bool = False
                     ) -> None:
        kind = "stream_create_response" if "state" in info else "consumer_create_response"
        body = {"type": "io.nats.jetstream.api.v1." + kind, **info}
        if did_create:
            body["did_create"] = True
        self.bus.publish_internal(reply, payload=json.dumps(body).encode())

    def respond_stream_info(self, replica: StreamReplica, reply: bytes) -> None:
        self.respond_info(reply, self.stream_info(replica.stream), did_create=True)

    def respond_consumer_info(self, replica: ConsumerReplica, reply: bytes) -> None:
        self.respond_info(reply, self.consumer_info(replica.consumer))

    def stream_leader_changed(self, replica: StreamReplica) -> None:
        name = replica.stream.config.name
        if replica.leader:
            self.js.advise(f"$JS.EVENT.ADVISORY.STREAM.LEADER_ELECTED.{name}",
                           {"type": "io.nats.jetstream.advisory.v1.stream_leader_elected",
                            "stream": name, "leader": self.bus.name,
                            "replicas": self._replica_list(replica.driver,
                                                           replica.assignment.peers)})

    def consumer_leader_changed(self, replica: ConsumerReplica) -> None:
        if replica.leader:
            stream = replica.stream.config.name
            self.js.advise(
                f"$JS.EVENT.ADVISORY.CONSUMER.LEADER_ELECTED.{stream}.{replica.name}",
                {"type": "io.nats.jetstream.advisory.v1.consumer_leader_elected",
                 "stream": stream, "consumer": replica.name, "leader": self.bus.name,
                 "replicas": self._replica_list(replica.driver, replica.assignment.peers)})

    # Who answers what

    def stream_assignment(self, name: str) -> StreamAssignment | None:
        return self.meta.streams.get(name)

    def leads_stream(self, name: str) -> bool:
        """Whether this server answers for stream `name` (its leader, or its R1 host)."""
        replica = self.streams.get(name)
        if replica is not None:
            return replica.leader
        return name in self.js.streams

    def stream_leaderless(self, name: str) -> bool:
        """Whether this server is a member of stream `name`'s group and knows no leader of it."""
        replica = self.streams.get(name)
        return replica is not None and replica.driver is not None and \
            replica.driver.leader is None

    def consumer_leaderless(self, stream: str, name: str) -> bool:
        replica = self.consumers.get((stream, name))
        return replica is not None and replica.driver is not None and \
            replica.driver.leader is None

    def leads_consumer(self, stream: str, name: str) -> bool:
        replica = self.consumers.get((stream, name))
        if replica is not None:
            return replica.leader
        local = self.js.streams.get(stream)
        return local is not None and name in local.consumers

    def online_peers(self) -> list[str]:
        """JetStream servers reachable now (placement chooses among them)."""
        return sorted({self.bus.name, *self.routes.jetstream_peers()})

    # Info blocks

    def stream_info(self, stream: LocalStream, subjects_filter: str = "",
                    deleted_details: bool = False) -> JsonObject:
        info = stream.info(subjects_filter, deleted_details, now_ns())
        info["cluster"] = self.stream_cluster_info(stream.config.name)
        info["state"]["consumer_count"] = len(self.meta.consumers.get(stream.config.name, {}))
        return info

    def stream_cluster_info(self, name: str) -> JsonObject:
        replica = self.streams.get(name)
        if replica is not None:
            return replica.cluster_info()
        return {"name": self.name, "leader": self.bus.name}

    def consumer_info(self, consumer: InfoConsumer) -> JsonObject:
        info = dict(consumer.info())
        replica = self.consumers.get((consumer.stream_name, consumer.name))
        if replica is not None:
            info["cluster"] = replica.cluster_info()
        else:
            info["cluster"] = {"name": self.name, "leader": self.bus.name}
        return info

    def group_info(self, driver: RaftDriver | None, peers: list[str], leader_since: int
                   ) -> JsonObject:
        if driver is None:
            return {"name": self.name}
        status = driver.status()
        out: JsonObject = {"name": self.name, "raft_group": driver.group}
        if status.leader:
            out["leader"] = status.leader
        if status.leader == self.bus.name and leader_since:
            out["leader_since"] = format_ns(leader_since)
        replicas = self._replica_list(driver, peers)
        if replicas:
            out["replicas"] = replicas
        return out

    def _replica_list(self, driver: RaftDriver | None, peers: list[str]
                      ) -> list[JsonObject]:
        if driver is None:
            return []
        status = driver.status()
        leading = status.leader == self.bus.name
        out = []
        for peer in peers:
            if peer == status.leader:
                continue
            entry: JsonObject = {"name": peer, "current": False, "peer": peer_hash(peer)}
            progress = status.peers.get(peer) if leading else None
            if progress is not None:
                entry["current"] = progress.active and progress.lag == 0
                if progress.last_contact is not None:
                    entry["active"] = int(progress.last_contact * TICK * 1e9)
                if progress.lag:
                    entry["lag"] = progress.lag
                if not progress.active:
                    entry["offline"] = True
            elif peer == self.bus.name:
                entry["current"] = status.applied >= status.commit
            out.append(entry)
        return out

    def meta_cluster_info(self) -> JsonObject:
        driver = self.meta_driver
        body: JsonObject = {"name": self.name,
                                "cluster_size": len(self._saved_meta_peers() or [])}
        if driver is None:
            return body
        status = driver.status()
        if status.leader:
            body["leader"] = status.leader
        body["peer"] = peer_hash(self.bus.name)
        body["replicas"] = self._replica_list(driver, sorted(status.voters))
        return body

    # Health

    def health(self) -> tuple[int, JsonObject]:
        if self.problem:
            return 503, {"status": "unavailable", "status_code": 503, "error": self.problem}
        driver = self.meta_driver
        if driver is None or driver.leader is None:
            return 503, {"status": "unavailable", "status_code": 503,
                         "error": "JetStream has not established contact with a meta leader"}
        if not driver.status().current:
            return 503, {"status": "unavailable", "status_code": 503,
                         "error": "JetStream is not current with the meta leader"}
        for name, replica in self.streams.items():
            if replica.catching_up or not _current(replica.driver):
                return 503, {"status": "unavailable", "status_code": 503,
                             "error": f"JetStream stream '$G > {name}' is not current"}
        for (stream, name), consumer in self.consumers.items():
            if not _current(consumer.driver):
                return 503, {"status": "unavailable", "status_code": 503,
                             "error": f"JetStream consumer '$G > {stream} > {name}' is not "
                                      "current"}
        return 200, {"status": "ok"}


def _current(driver: RaftDriver | None) -> bool:
    """Has a leader and applied all it knows committed, the leader's commit index included."""
    return driver is not None and driver.status().current


class MetaApplication:
    """The meta group's state machine, as the Raft driver sees it."""

    def __init__(self, cluster: JetStreamCluster) -> None:
        self.cluster = cluster

    def apply(self, entry: Entry) -> None:
        if entry.type is EntryType.NORMAL:
            try:
                change = self.cluster.meta.apply(entry.data)
            except (ValueError, KeyError, TypeError) as exc:
                logger.error("JetStream meta entry %d skipped: %s", entry.index, exc)
            else:
                self.cluster.on_meta_change(change)
        self.cluster.maybe_snapshot_meta(entry.index)

    def restore(self, snapshot: SnapshotMeta, data: bytes) -> None:
        self.cluster.meta = MetaState.restore(data)
        self.cluster.on_meta_restored()


