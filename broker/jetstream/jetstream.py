"""JetStream of one account on one server: the account's streams, their stores on disk, the
ingest path from core NATS into streams, the account's limits, and recovery at start.

It reaches core NATS through a `Bus` (bus.py) and, on a cluster, the cluster through
`ClusterRole`, declared here: the composition root (broker/server.py) builds the cluster on top
of this engine and joins them (`join_cluster`), so nothing here imports what is above it.

Layout on disk, as nats-server's: `<store_dir>/jetstream/<account>/streams/<name>/meta.json`
(the stream config, written atomically with a checksum) and `.../<name>/msgs/` (the file store);
the account is `$G` on a server without accounts.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from collections.abc import Callable
from typing import Protocol

from broker.jetstream import errors
from broker.jetstream.bus import Bus
from broker.jetstream.consumer import Consumer, ConsumerLog, DurableCallback, nuid
from broker.jetstream.consumerconfig import ConsumerConfig
from broker.jetstream.consumerstate import ConsumerState
from broker.jetstream.errors import ApiError
from broker.jetstream.groupcommit import GroupCommit, Watcher
from broker.jetstream.jsondecode import JsonObject
from broker.jetstream.plans import (
    check_account_stream,
    check_consumer_limits_update,
    check_overlap,
    check_reservation,
    check_stream_bytes,
    known_fields,
    limit_consumer,
    plan_consumer,
    plan_stream,
)
from broker.jetstream.sourcing import (
    Origin,
    SourceRunner,
    StreamSink,
    guard_published,
    source_transform,
)
from broker.jetstream.stream import Stream, store_config
from broker.jetstream.streamconfig import StreamConfig
from broker.logger import logger
from broker.sublist import InternalHandler, Subscription
from common.gotime import format_ns, now_ns
from common.subjects import subject_text
from config.options import GLOBAL_ACCOUNT, AccountJetStream, JetStreamOptions
from storage import FileStore, MemoryStore, MessageStore, StoreError, durable
from storage.durable import read_checked, write_checked
from storage.statelog import MemoryStateLog, StateLog

EXPIRY_TICK = 1.0  # seconds between max_age / ttl sweeps
USAGE_REFRESH = 0.1  # seconds a computed storage usage is trusted on the publish path


def _total_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 1 << 30


class ClusterRole(Protocol):
    """What this engine asks of the cluster, when the server is part of one."""

    def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def hand_over(self, timeout: float) -> int:
        """Give away the leadership of every Raft group led here; how many were handed."""
        ...

    def request_consumer_delete(self, stream: str, name: str) -> None: ...

    def health(self) -> tuple[int, JsonObject]: ...


# A stream on this server, with the consumers it feeds.
LocalStream = Stream[Consumer]


class CommittedLog:
    """A consumer's state log on this server: durable once the group commit synced its file."""

    def __init__(self, log: StateLog | MemoryStateLog, commit: GroupCommit) -> None:
        self.file = log
        self._commit = commit
        # Bound once: append runs for every acknowledgement.
        self.append = log.append
        self.size = log.size
        self.compact = log.compact
        self.close = log.close
        self.destroy = log.destroy

    def after_durable(self, callback: DurableCallback) -> None:
        self._commit.after_sync(self.file, callback)


class JetStream:
    def __init__(self, bus: Bus, opts: JetStreamOptions, account: str = GLOBAL_ACCOUNT,
                 limits: AccountJetStream | None = None) -> None:
        self.bus = bus
        self.account = account
        self.limits = limits or AccountJetStream()
        base = opts.store_dir or os.path.join(os.environ.get("TMPDIR", "/tmp"), "nats")
        self.store_dir = os.path.join(base, "jetstream")
        self.streams_dir = os.path.join(self.store_dir, account, "streams")
        # The server's limits, and within them the account's (the tighter wins).
        self.max_memory = opts.max_memory_store if opts.max_memory_store > 0 else \
            _total_memory() * 3 // 4
        self.server_max_memory = self.max_memory
        if self.limits.max_memory >= 0:
            self.max_memory = min(self.max_memory, self.limits.max_memory)
        self.max_storage = opts.max_file_store if opts.max_file_store > 0 else -1
        self.server_max_storage = self.max_storage
        self._account_max_storage = self.limits.max_file
        self.strict = opts.strict
        self.domain = opts.domain
        self.duplicate_limit = int(opts.duplicate_window * 1e9)
        self.commit = GroupCommit(bus.loop, opts.sync_interval)
        self.commit.on_released = bus.flush
        self.streams: dict[str, LocalStream] = {}
        self.offline: dict[str, str] = {}  # stream name -> why it could not be recovered
        self._ingest_subs: dict[str, list[Subscription]] = {}
        self._sourcing: dict[str, list[SourceRunner]] = {}  # stream -> its origins' runners
        # Builds the DIRECT.GET handler of a stream with allow_direct (set by the API layer).
        self.direct_get: Callable[[LocalStream], InternalHandler] | None = None
        self._expiry_timer: asyncio.TimerHandle | None = None
        self._usage_cache: dict[str, list] = {}  # storage -> [bytes, refresh at]
        self.api_total = 0
        self.api_errors = 0
        self.ready = False
        self._stopped = False
        # Set when the server is part of a cluster: streams and consumers are then created
        # through the meta group, and this server holds those assigned to it.
        self.cluster: ClusterRole | None = None

    def join_cluster(self, cluster: ClusterRole) -> None:
        """Before `start`: streams and consumers are placed by the cluster's meta group."""
        self.cluster = cluster

    # Lifecycle

    def start(self, banner: bool = True) -> None:
        """Serve the account's JetStream. `banner`: log the server's JetStream settings (the
        first account to start does; the others log their own limits)."""
        durable.makedirs(self.streams_dir)
        if self.max_storage < 0:
            self.max_storage = shutil.disk_usage(self.store_dir).free
        self.server_max_storage = self.max_storage
        if self._account_max_storage >= 0:
            self.max_storage = min(self.max_storage, self._account_max_storage)
        if banner:
            logger.info("Starting JetStream")
            logger.info("  Store Directory: %r", self.store_dir)
            logger.info("  Max Memory:      %s", _human(self.server_max_memory))
            logger.info("  Max Storage:     %s", _human(self.server_max_storage))
        if self.account != GLOBAL_ACCOUNT:
            logger.info("Enabled JetStream for account %r", self.account)
            logger.info("  Max Memory:      %s", _limit(self.limits.max_memory))
            logger.info("  Max Storage:     %s", _limit(self.limits.max_file))
        if self.cluster is not None:
            logger.info("Starting JetStream cluster")
            self.cluster.start()
        else:
            self._recover()
        self._expiry_timer = self.bus.loop.call_later(EXPIRY_TICK, self._expire)
        self.ready = True

    async def hand_over(self, timeout: float) -> int:
        """Lame duck: give away the leadership of every Raft group led here, so that stopping
        this server does not leave a stream or consumer leaderless for an election timeout."""
        if self.cluster is None:
            return 0
        return await self.cluster.hand_over(timeout)

    async def stop(self) -> None:
        if self._stopped:
            return  # lame duck stops JetStream before the server's own shutdown does
        self._stopped = True
        self.ready = False
        if self._expiry_timer is not None:
            self._expiry_timer.cancel()
        if self.cluster is not None:
            await self.cluster.stop()
        for name in list(self._sourcing):
            self.stop_sourcing(name)
        for stream in self.streams.values():
            for consumer in stream.consumers.values():
                consumer.close()
        await self.commit.drain()
        self.commit.close()
        for stream in self.streams.values():
            try:
                stream.store.close()
            except (OSError, StoreError) as exc:
                logger.error("JetStream failed to close stream %r: %s", stream.config.name, exc)

    def _recover(self) -> None:
        names = sorted(os.listdir(self.streams_dir))
        for name in names:
            try:
                self._recover_stream(name)
            except (OSError, ValueError, StoreError, ApiError) as exc:
                # Never delete on local uncertainty: keep the files, report the stream offline.
                self.offline[name] = str(exc)
                logger.error("JetStream could not recover stream '%s > %s': %s", self.account,
                             name, exc)
        if names:
            logger.info("  Recovered %d of %d streams", len(self.streams), len(names))

    def _recover_stream(self, name: str) -> None:
        started = time.monotonic()
        meta = json.loads(read_checked(os.path.join(self.streams_dir, name, "meta.json")))
        config = StreamConfig(**known_fields(StreamConfig, meta["config"]))
        config = config.normalized(self.duplicate_limit)
        stream = self._new_stream(config, int(meta.get("created", 0)))
        self._attach(stream)
        self._recover_consumers(stream)
        state = stream.store.state()
        logger.info("  Restored %d messages for stream '%s > %s' in %.3fs", state.msgs,
                    self.account, name, time.monotonic() - started)

    def _config_of(self, name: str) -> StreamConfig | None:
        """Another stream's config (the checks of a mirror or sources look at their origins)."""
        stream = self.streams.get(name)
        return stream.config if stream is not None else None

    def _new_stream(self, config: StreamConfig, created: int) -> LocalStream:
        return Stream(config, self._open_store(config), created, self._send,
                      self.bus.publish_internal)

    def _open_store(self, config: StreamConfig) -> MessageStore:
        if config.storage == "memory":
            return MemoryStore(store_config(config))
        return FileStore(os.path.join(self.streams_dir, config.name, "msgs"),
                         store_config(config))

    # Streams

    def add_stream(self, requested: StreamConfig) -> tuple[LocalStream, bool]:
        """Create (or find an identical) stream. Returns (stream, created)."""
        config = plan_stream(requested, self.duplicate_limit, self._config_of)
        if config.num_replicas > 1:
            raise errors.replicas_not_supported()
        existing = self.streams.get(config.name)
        if existing is not None:
            if existing.config.to_json() == config.to_json():
                return existing, False
            raise errors.stream_name_in_use()
        if config.name in self.offline:
            raise errors.stream_offline()
        others = [s.config for s in self.streams.values()]
        check_account_stream(self.limits, others, config)
        self._check_overlap(config)
        check_reservation(others, config, self.max_memory, self.max_storage)
        created = now_ns()
        durable.makedirs(os.path.join(self.streams_dir, config.name))
        self._write_meta(config, created)
        stream = self._new_stream(config, created)
        if config.first_seq > 1:
            stream.store.skip_msgs(config.first_seq)
        self._attach(stream)
        logger.debug("JetStream created stream '%s > %s'", self.account, config.name)
        return stream, True

    def update_stream(self, requested: StreamConfig) -> LocalStream:
        stream = self.lookup(requested.name)
        config = requested.normalized(self.duplicate_limit, self._config_of) \
            .check_update(stream.config)
        check_stream_bytes(self.limits, config)
        check_consumer_limits_update(config, {n: c.config for n, c in stream.consumers.items()},
                                     stream.config)
        self._check_overlap(config, ignore=stream.config.name)
        self._write_meta(config, stream.created)
        self._detach_ingest(stream)
        stream.update(config)
        self._subscribe_ingest(stream)
        return stream

    async def delete_stream(self, name: str) -> None:
        stream = self.lookup(name)
        self._detach_ingest(stream)
        for consumer in list(stream.consumers.values()):
            consumer.stop("Consumer Deleted")
            consumer.log.destroy()
        stream.consumers.clear()
        del self.streams[name]
        await self.commit.settle(stream.store)
        for reply in self.commit.detach(stream.store):
            reply(errors.stream_not_found())
        stream.on_sync_failed(1 << 62, errors.stream_not_found())
        stream.store.destroy()
        shutil.rmtree(os.path.join(self.streams_dir, name), ignore_errors=True)

    # Streams and consumers a cluster assigned to this server (see `cluster`)

    def open_assigned_stream(self, config: StreamConfig, created: int, group: str,
                             empty: bool = False) -> LocalStream:
        """Open this server's copy of a stream, keeping what is on disk only if it is the
        same stream (a stream deleted and created again while we were away is another).
        `empty`: start from an empty store whatever is on disk (it is rebuilt from a log)."""
        directory = os.path.join(self.streams_dir, config.name)
        if os.path.isdir(directory) and not self._same_incarnation(directory, created, group):
            logger.info("JetStream removing stale data of stream '%s > %s'", self.account,
                        config.name)
            shutil.rmtree(directory)
        if empty:
            shutil.rmtree(os.path.join(directory, "msgs"), ignore_errors=True)
        durable.makedirs(directory)
        self._write_meta(config, created, group)
        stream = self._new_stream(config, created)
        if config.first_seq > 1 and stream.store.last_seq == 0:
            stream.store.skip_msgs(config.first_seq)
        return stream

    @staticmethod
    def _same_incarnation(directory: str, created: int, group: str) -> bool:
        try:
            meta = json.loads(read_checked(os.path.join(directory, "meta.json")))
        except (OSError, ValueError):
            return False
        return int(meta.get("created", 0)) == created and meta.get("group", "") == group

    def attach_assigned(self, stream: LocalStream, ingest: bool) -> None:
        self._attach(stream, ingest)

    def apply_stream_update(self, stream: LocalStream, config: StreamConfig, ingest: bool) -> None:
        """A config change the meta group decided (already validated by its leader)."""
        self._write_meta(config, stream.created, self._group(stream))
        self._detach_ingest(stream)
        stream.update(config)
        if ingest:
            self._subscribe_ingest(stream)
        else:
            self._subscribe_direct(stream)

    def _group(self, stream: LocalStream) -> str:
        try:
            meta = json.loads(read_checked(os.path.join(self.streams_dir, stream.config.name,
                                                        "meta.json")))
        except (OSError, ValueError):
            return ""
        return str(meta.get("group", ""))

    def open_assigned_consumer(self, stream: LocalStream, name: str, config: ConsumerConfig,
                               created: int) -> Consumer:
        """Start (or update) an R1 consumer held by this server, with its state from disk."""
        existing = stream.consumers.get(name)
        if existing is not None:
            if existing.config.to_json() == config.to_json():
                return existing
            return self._update_consumer(existing, config)
        if os.path.isdir(self._consumer_dir(stream, name)):
            try:
                self._recover_consumer(stream, name)
                return stream.consumers[name]
            except (OSError, ValueError, StoreError, ApiError) as exc:
                logger.error("JetStream consumer '%s > %s > %s' state lost: %s", self.account,
                             stream.config.name, name, exc)
                shutil.rmtree(self._consumer_dir(stream, name), ignore_errors=True)
        consumer = self._new_consumer(stream, name, config, created)
        self._save_consumer(consumer)
        stream.consumers[name] = consumer
        consumer.start()
        return consumer

    def consumer_inactive(self, stream: LocalStream, name: str) -> None:
        """An ephemeral consumer nobody used for its inactive threshold goes away."""
        if self.cluster is None:
            self.remove_consumer(stream, name)
            return
        self.cluster.request_consumer_delete(stream.config.name, name)

    def lookup(self, name: str) -> LocalStream:
        stream = self.streams.get(name)
        if stream is None:
            if name in self.offline:
                raise errors.stream_offline()
            raise errors.stream_not_found()
        return stream

    def _attach(self, stream: LocalStream, ingest: bool = True) -> None:
        """Serve `stream` here. `ingest`: this server stores what is published to it (not so
        for a replicated stream, whose leader ingests through its Raft group)."""
        self.streams[stream.config.name] = stream
        store = stream.store
        self.commit.watch(store, Watcher(lambda: store.last_seq, stream.on_durable,
                                         stream.on_sync_failed))
        if ingest:
            self._subscribe_ingest(stream)
        else:
            self._subscribe_direct(stream)

    def _send(self, reply: bytes, payload: bytes) -> None:
        self.bus.publish_internal(reply, payload=payload)

    def _write_meta(self, config: StreamConfig, created: int, group: str = "") -> None:
        meta = {"config": config.to_json(), "created": created, "group": group}
        path = os.path.join(self.streams_dir, config.name, "meta.json")
        write_checked(path, json.dumps(meta).encode())

    def _check_overlap(self, config: StreamConfig, ignore: str = "") -> None:
        check_overlap(config, [s.config for s in self.streams.values()], ignore)

    def reserved(self, storage: str) -> int:
        return sum(s.config.max_bytes for s in self.streams.values()
                   if s.config.storage == storage and s.config.max_bytes > 0)

    def usage(self, storage: str) -> int:
        return sum(s.store.state().bytes for s in self.streams.values()
                   if s.config.storage == storage)

    def _recent_usage(self, storage: str) -> list:
        """[bytes used, refresh at], for the publish path: `usage()` recomputed at most every
        USAGE_REFRESH seconds, plus what was accepted since (an upper bound)."""
        now = self.bus.loop.time()
        cached = self._usage_cache.get(storage)
        if cached is None or now >= cached[1]:
            cached = [self.usage(storage), now + USAGE_REFRESH]
            self._usage_cache[storage] = cached
        return cached

    # Ingest: core NATS publishes on stream subjects

    def _subscribe_ingest(self, stream: LocalStream) -> None:
        self._subscribe_direct(stream)
        handler = self._ingest_handler(stream)
        self._ingest_subs[stream.config.name] += self.subscribe_ingest(
            stream, guard_published(stream, handler))
        self.start_sourcing(stream, handler)

    def subscribe_ingest(self, stream: LocalStream, handler: InternalHandler) -> list[Subscription]:
        """Subscribe `handler` to the stream's subjects (peers route those publishes here)."""
        return [self.subscribe(subject, handler) for subject in stream.config.subjects]

    def _subscribe_direct(self, stream: LocalStream) -> None:
        """Direct gets are answered by any server holding the stream (one of them: a queue)."""
        subs: list[Subscription] = []
        config = stream.config
        names = [config.name] if config.allow_direct else []
        if config.mirror_direct and config.mirror:
            # A mirror with mirror_direct answers direct gets for its origin too, as one more
            # member of the origin's queue (nats-server).
            names.append(config.mirror.get("name", ""))
        if names and self.direct_get is not None:
            direct = self.direct_get(stream)
            for name in filter(None, names):
                for subject in (f"$JS.API.DIRECT.GET.{name}", f"$JS.API.DIRECT.GET.{name}.>"):
                    subs.append(self.subscribe(subject, direct, queue="_sys_"))
        self._ingest_subs[stream.config.name] = subs

    def subscribe(self, subject: str, handler: InternalHandler,
                  queue: str | None = None) -> Subscription:
        """A JetStream subscription; in a cluster, peers learn of it and route to it."""
        return self.bus.subscribe_internal(subject, handler, queue,
                                           propagate=self.cluster is not None)

    def _detach_ingest(self, stream: LocalStream) -> None:
        self.stop_sourcing(stream.config.name)
        for sub in self._ingest_subs.pop(stream.config.name, []):
            self.bus.unsubscribe_internal(sub)

    # Mirrors and sources (sourcing.py): run where the stream ingests.

    def start_sourcing(self, stream: LocalStream, ingest: InternalHandler,
                       synchronous: bool = True) -> None:
        """Fill `stream` from its mirror or sources, through `ingest` (the handler that
        stores what is published to it here; not `synchronous` for a replicated stream's
        leader, which proposes)."""
        config = stream.config
        origins = [Origin.from_json(config.mirror, mirror=True)] if config.mirror else []
        origins += [Origin.from_json(entry) for entry in config.sources or []]
        if not origins:
            return
        self.stop_sourcing(config.name)
        sink = StreamSink(stream, ingest, source_transform, synchronous)
        runners = [SourceRunner(self.bus, config.name, origin, sink, self._subscribe_sourcing)
                   for origin in origins]
        self._sourcing[config.name] = runners
        for runner in runners:
            runner.start()

    def stop_sourcing(self, name: str) -> None:
        for runner in self._sourcing.pop(name, []):
            runner.stop()

    def _subscribe_sourcing(self, subject: str, handler: InternalHandler) -> Subscription:
        # The origin's consumer may run on another server: peers route its deliveries here.
        return self.bus.subscribe_internal(subject, handler, propagate=True)

    def stream_info(self, stream: LocalStream, subjects_filter: str = "",
                    deleted_details: bool = False, now: int = 0) -> JsonObject:
        """A stream's info, with its mirror's and sources' state when it has them."""
        info = stream.info(subjects_filter, deleted_details, now or now_ns())
        info.update(self.sourcing_info(stream.config.name))
        return info

    def sourcing_info(self, name: str) -> JsonObject:
        """`mirror` / `sources` of a stream's info: each origin's lag and last contact."""
        runners = self._sourcing.get(name, [])
        info: JsonObject = {}
        mirror = [r.info() for r in runners if r.origin.mirror]
        if mirror:
            info["mirror"] = mirror[0]
        sources = [r.info() for r in runners if not r.origin.mirror]
        if sources:
            info["sources"] = sources
        return info

    def _ingest_handler(self, stream: LocalStream) -> InternalHandler:
        def ingest(subject: bytes, reply: bytes, hdr: int, payload: bytes) -> None:
            self.ingest(stream, subject, reply, hdr, payload)
        return ingest

    def ingest(self, stream: LocalStream, subject: bytes, reply: bytes, hdr: int,
               payload: bytes) -> None:
        """A message published on one of the stream's subjects: stored through the stream's one
        store-and-ack path, its PubAck released once the group commit synced it."""
        if hdr > 0:
            header, data = payload[:hdr], payload[hdr:]
        else:
            header, data = b"", payload
        try:
            self.check_limits(stream, len(payload))
        except ApiError as exc:
            stream.refuse(reply, exc)
            return
        published = stream.store_publish(subject_text(subject), header, data, now_ns(), reply)
        if published is None:
            return
        if self.commit.lazy:  # sync_interval: acknowledge before the data is on disk
            stream.on_durable(published.seq)
            self.commit.request(stream.store)
            return
        if not published.duplicate:
            self.commit.request(stream.store)
        elif published.seq <= stream.durable_seq:
            stream.on_durable(stream.durable_seq)  # the original is on disk: answer now

    def check_limits(self, stream: LocalStream, size: int) -> None:
        """Room for `size` more bytes: the account's limit is checked on what is stored (not
        on what streams reserved), as nats-server does, then the server's."""
        memory = stream.config.storage == "memory"
        usage = self._recent_usage("memory" if memory else "file")
        used = usage[0] + size
        account_limit = self.limits.max_memory if memory else self.limits.max_file
        if 0 <= account_limit < used:
            raise errors.account_resources_exceeded()
        if memory and used > self.max_memory:
            raise errors.memory_exceeded()
        if not memory and 0 < self.max_storage < used:
            raise errors.storage_exceeded()
        usage[0] = used  # counted once accepted: a refused publish takes no room

    # Consumers

    @property
    def api_prefixes(self) -> list[str]:
        prefixes = ["$JS.API"]
        if self.domain:
            prefixes.append(f"$JS.{self.domain}.API")
        return prefixes

    def _consumer_dir(self, stream: LocalStream, name: str) -> str:
        return os.path.join(self.streams_dir, stream.config.name, "obs", name)

    def add_consumer(self, stream: LocalStream, requested: ConsumerConfig, action: str = ""
                     ) -> tuple[Consumer, bool]:
        """Create, update or find a consumer (nats-server's addConsumerWithAction)."""
        existing = {n: c.config for n, c in stream.consumers.items()}
        name, config, previous = plan_consumer(stream.config, existing, requested, action)
        if previous is not None:
            current = stream.consumers[name]
            if previous.to_json() == config.to_json():
                return current, False
            if current.is_push and current.active and \
                    config.deliver_subject != previous.deliver_subject:
                raise ApiError(400, 10013, "consumer name already in use")
            return self._update_consumer(current, config), False
        config = limit_consumer(self.limits, stream.consumer_count, config, requested)
        consumer = self._new_consumer(stream, name, config, now_ns())
        self._save_consumer(consumer)
        stream.consumers[name] = consumer
        consumer.start()
        self._consumer_advisory(stream, name, "create")
        return consumer, True

    def _new_consumer(self, stream: LocalStream, name: str, config: ConsumerConfig,
                      created: int, state: ConsumerState | None = None,
                      log: ConsumerLog | None = None) -> Consumer:
        persistent = self._persistent(stream, config)
        if log is None:
            log = CommittedLog(StateLog(os.path.join(self._consumer_dir(stream, name), "state"))
                               if persistent else MemoryStateLog(name), self.commit)
        if state is None:
            state = self.initial_consumer_state(stream, config)
        consumer = Consumer(self, stream, name, config, created, state, log,
                            self._consumer_dir(stream, name) if persistent else "")
        if config.deliver_policy == "last_per_subject" and not state.delivered_cseq:
            consumer.deliver_first(self._last_per_subject(stream, config))
        return consumer

    def initial_consumer_state(self, stream: LocalStream, config: ConsumerConfig) -> ConsumerState:
        """A new consumer starts just before its first message (nats-server shows the start
        position in `delivered` and `ack_floor` before anything was delivered)."""
        state = ConsumerState(acks_required=config.acks_required)
        state.cursor = self._start_sequence(stream, config)
        state.delivered_sseq = state.floor_sseq = state.cursor - 1
        return state

    def build_consumer(self, stream: LocalStream, name: str, config: ConsumerConfig,
                       created: int, state: ConsumerState, log: ConsumerLog) -> Consumer:
        """A consumer over a given state and state log (a replicated consumer's)."""
        consumer = Consumer(self, stream, name, config, created, state, log)
        if config.deliver_policy == "last_per_subject" and not state.delivered_cseq:
            consumer.deliver_first(self._last_per_subject(stream, config))
        return consumer

    @staticmethod
    def _persistent(stream: LocalStream, config: ConsumerConfig) -> bool:
        return bool(config.durable_name) and not config.mem_storage and \
            stream.config.storage == "file"

    def _start_sequence(self, stream: LocalStream, config: ConsumerConfig) -> int:
        store = stream.store
        state = store.state()
        policy = config.deliver_policy
        if policy == "all":
            # The stream's first message, filtered or not (nats-server): a consumer skips what
            # its filter leaves out as it goes, and shows (0, 0) until it delivered something.
            return max(state.first_seq, 1) if state.msgs else state.last_seq + 1
        if policy == "last":
            last = store.load_last(config.filters)
            return last.seq if last is not None else state.last_seq + 1
        if policy in ("new", "last_per_subject"):
            return state.last_seq + 1
        if policy == "by_start_sequence":
            # Below the stream's first message (purged, or limits), it starts there.
            return max(config.opt_start_seq, state.first_seq) if state.msgs else \
                max(config.opt_start_seq, state.last_seq + 1)
        start = stream.first_seq_at_or_after(config.start_time_ns) if state.msgs else 0
        return max(start, state.first_seq, 1)

    @staticmethod
    def _last_per_subject(stream: LocalStream, config: ConsumerConfig) -> list[int]:
        seqs = set()
        for filter_subject in config.filters:
            for subject in stream.store.subjects(filter_subject):
                seq = stream.store.last_seq_for(subject)
                if seq:
                    seqs.add(seq)
        return sorted(seqs)

    def _update_consumer(self, consumer: Consumer, config: ConsumerConfig) -> Consumer:
        consumer.stop()
        stream = consumer.stream
        fresh = self._new_consumer(stream, consumer.name, config, consumer.created,
                                   consumer.state, consumer.log)
        fresh.last_active = consumer.last_active
        stream.consumers[consumer.name] = fresh
        self._save_consumer(fresh)
        fresh.start()
        return fresh

    def _save_consumer(self, consumer: Consumer) -> None:
        if not consumer.durable_dir:
            return
        durable.makedirs(consumer.durable_dir)
        meta = {"name": consumer.name, "config": consumer.config.to_json(),
                "created": consumer.created}
        write_checked(os.path.join(consumer.durable_dir, "meta.json"), json.dumps(meta).encode())

    def remove_consumer(self, stream: LocalStream, name: str) -> None:
        consumer = stream.consumers.pop(name, None)
        if consumer is None:
            raise ApiError(404, 10014, "consumer not found")
        consumer.stop("Consumer Deleted")
        consumer.log.destroy()
        if consumer.durable_dir:
            shutil.rmtree(consumer.durable_dir, ignore_errors=True)
        stream.drop_unneeded()
        self._consumer_advisory(stream, name, "delete")

    def _consumer_advisory(self, stream: LocalStream, name: str, action: str) -> None:
        event = {"create": "CREATED", "delete": "DELETED"}[action]
        self.advise(f"$JS.EVENT.ADVISORY.CONSUMER.{event}.{stream.config.name}.{name}",
                    {"type": "io.nats.jetstream.advisory.v1.consumer_action",
                     "stream": stream.config.name, "consumer": name, "action": action})

    def advise(self, subject: str, event: JsonObject) -> None:
        """Publish an advisory, only if someone listens (as nats-server does)."""
        encoded = subject.encode()
        if not self.bus.has_interest(encoded):
            return
        body = {"type": event.pop("type"), "id": nuid(), "timestamp": format_ns(now_ns()),
                **event}
        if self.domain:
            body["domain"] = self.domain
        self.bus.publish_internal(encoded, payload=json.dumps(body).encode())

    def _recover_consumers(self, stream: LocalStream) -> None:
        obs = os.path.join(self.streams_dir, stream.config.name, "obs")
        if not os.path.isdir(obs):
            return
        for name in sorted(os.listdir(obs)):
            try:
                self._recover_consumer(stream, name)
            except (OSError, ValueError, StoreError, ApiError) as exc:
                logger.error("JetStream could not recover consumer '%s > %s > %s': %s",
                             self.account, stream.config.name, name, exc)

    def _recover_consumer(self, stream: LocalStream, name: str) -> None:
        directory = self._consumer_dir(stream, name)
        meta = json.loads(read_checked(os.path.join(directory, "meta.json")))
        config = ConsumerConfig(**known_fields(ConsumerConfig, meta["config"]))
        log = StateLog(os.path.join(directory, "state"))
        if log.snapshot is not None:
            state = ConsumerState.restore(log.snapshot, config.acks_required)
        else:
            state = self.initial_consumer_state(stream, config)
        for record in log.records:
            state.apply(ConsumerState.decode_op(record))
        consumer = self._new_consumer(stream, name, config, int(meta.get("created", 0)), state,
                                      CommittedLog(log, self.commit))
        stream.consumers[name] = consumer
        consumer.start()

    # Limits by time

    def _expire(self) -> None:
        now = now_ns()
        for stream in list(self.streams.values()):
            if stream.needs_expiry:
                try:
                    stream.expire(now)
                except StoreError as exc:
                    logger.error("JetStream expiry failed on '%s': %s", stream.config.name, exc)
        self._expiry_timer = self.bus.loop.call_later(EXPIRY_TICK, self._expire)

    # Health

    def health(self) -> tuple[int, JsonObject]:
        if self.cluster is not None:
            status = self.cluster.health()
            if status[0] != 200:
                return status
        if self.offline:
            name = sorted(self.offline)[0]
            return 503, {"status": "unavailable", "status_code": 503,
                         "error": f"JetStream stream '{self.account} > {name}' could not be "
                                  "recovered"}
        return 200, {"status": "ok"}


def _limit(size: int) -> str:
    return "unlimited" if size < 0 else _human(size)


def _human(size: int) -> str:
    units = ["B", "KB", "MB", "GB", "TB"]
    value = float(size)
    for unit in units:
        if value < 1024 or unit == units[-1]:
            return f"{value:.2f} {unit}"
        value /= 1024
    return f"{size} B"
