"""JetStream on one server: the streams of the (single, global) account, their stores on disk,
the ingest path from core NATS into streams, and recovery at start.

Layout on disk, as nats-server's: `<store_dir>/jetstream/$G/streams/<name>/meta.json` (the stream
config, written atomically with a checksum) and `.../<name>/msgs/` (the file store).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from broker.jetstream import errors
from broker.jetstream.commit import GroupCommit, Watcher
from broker.jetstream.consumer import Consumer, nuid
from broker.jetstream.consumerconfig import ConsumerConfig
from broker.jetstream.consumerreplica import ReplicatedLog
from broker.jetstream.consumerstate import ConsumerState
from broker.jetstream.errors import ApiError
from broker.jetstream.stream import Stream, store_config
from broker.jetstream.streamconfig import StreamConfig
from broker.log import logger
from common.gotime import format_ns, now_ns
from common.subjects import subjects_collide
from storage import FileStore, MemoryStore, StoreError, StoreFull, durable
from storage.durable import read_checked, write_checked
from storage.statelog import MemoryStateLog, StateLog

if TYPE_CHECKING:
    from broker.jetstream.cluster import JetStreamCluster
    from broker.server import Server
    from broker.sublist import Subscription

ACCOUNT = "$G"
EXPIRY_TICK = 1.0  # seconds between max_age / ttl sweeps
USAGE_REFRESH = 0.1  # seconds a computed storage usage is trusted on the publish path


def _total_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 1 << 30


class JetStream:
    def __init__(self, server: Server) -> None:
        self.server = server
        opts = server.options.jetstream
        base = opts.store_dir or os.path.join(os.environ.get("TMPDIR", "/tmp"), "nats")
        self.store_dir = os.path.join(base, "jetstream")
        self.streams_dir = os.path.join(self.store_dir, ACCOUNT, "streams")
        self.max_memory = opts.max_memory_store if opts.max_memory_store > 0 else \
            _total_memory() * 3 // 4
        self.max_storage = opts.max_file_store if opts.max_file_store > 0 else -1
        self.strict = opts.strict
        self.domain = opts.domain
        self.duplicate_limit = int(opts.duplicate_window * 1e9)
        self.commit = GroupCommit(server.loop, opts.sync_interval)
        self.commit.on_released = server.flush
        self.streams: dict[str, Stream] = {}
        self.offline: dict[str, str] = {}  # stream name -> why it could not be recovered
        self._ingest_subs: dict[str, list[Subscription]] = {}
        # Builds the DIRECT.GET handler of a stream with allow_direct (set by the API layer).
        self.direct_get: Callable[[Stream], Callable[[bytes, bytes, int, bytes], None]] | None = \
            None
        self._expiry_timer: Any = None
        self._usage_cache: dict[str, list] = {}  # storage -> [bytes, refresh at]
        self.api_total = 0
        self.api_errors = 0
        self.ready = False
        self._stopped = False
        # Set when the server is part of a cluster: streams and consumers are then created
        # through the meta group, and this server holds those assigned to it.
        self.cluster: JetStreamCluster | None = None
        if server.routes is not None:
            from broker.jetstream.cluster import JetStreamCluster

            self.cluster = JetStreamCluster(self)

    # Lifecycle

    def start(self) -> None:
        durable.makedirs(self.streams_dir)
        if self.max_storage < 0:
            self.max_storage = shutil.disk_usage(self.store_dir).free
        logger.info("Starting JetStream")
        logger.info("  Store Directory: %r", self.store_dir)
        logger.info("  Max Memory:      %s", _human(self.max_memory))
        logger.info("  Max Storage:     %s", _human(self.max_storage))
        if self.cluster is not None:
            logger.info("Starting JetStream cluster")
            self.cluster.start()
        else:
            self._recover()
        self._expiry_timer = self.server.loop.call_later(EXPIRY_TICK, self._expire)
        self.ready = True

    async def hand_over(self, timeout: float) -> int:
        """Lame duck: give away the leadership of every Raft group led here, so that stopping
        this server does not leave a stream or consumer leaderless for an election timeout."""
        if self.cluster is None:
            return 0
        return await self.cluster.groups.hand_over(timeout)

    async def stop(self) -> None:
        if self._stopped:
            return  # lame duck stops JetStream before the server's own shutdown does
        self._stopped = True
        self.ready = False
        if self._expiry_timer is not None:
            self._expiry_timer.cancel()
        if self.cluster is not None:
            await self.cluster.stop()
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
                logger.error("JetStream could not recover stream '%s > %s': %s", ACCOUNT, name,
                             exc)
        if names:
            logger.info("  Recovered %d of %d streams", len(self.streams), len(names))

    def _recover_stream(self, name: str) -> None:
        started = time.monotonic()
        meta = json.loads(read_checked(os.path.join(self.streams_dir, name, "meta.json")))
        config = StreamConfig(**_known_fields(meta["config"]))
        config = config.normalized(self.duplicate_limit)
        stream = Stream(config, self._open_store(config), int(meta.get("created", 0)))
        self._attach(stream)
        self._recover_consumers(stream)
        state = stream.store.state()
        logger.info("  Restored %d messages for stream '%s > %s' in %.3fs", state.msgs, ACCOUNT,
                    name, time.monotonic() - started)

    def _open_store(self, config: StreamConfig):
        if config.storage == "memory":
            return MemoryStore(store_config(config))
        return FileStore(os.path.join(self.streams_dir, config.name, "msgs"),
                         store_config(config))

    # Streams

    def add_stream(self, requested: StreamConfig) -> tuple[Stream, bool]:
        """Create (or find an identical) stream. Returns (stream, created)."""
        config = plan_stream(requested, self.duplicate_limit)
        if config.num_replicas > 1:
            raise errors.replicas_not_supported()
        existing = self.streams.get(config.name)
        if existing is not None:
            if existing.config.to_json() == config.to_json():
                return existing, False
            raise errors.stream_name_in_use()
        if config.name in self.offline:
            raise errors.stream_offline()
        self._check_overlap(config)
        self._check_resources(config)
        created = now_ns()
        durable.makedirs(os.path.join(self.streams_dir, config.name))
        self._write_meta(config, created)
        stream = Stream(config, self._open_store(config), created)
        if config.first_seq > 1:
            stream.store.skip_msgs(config.first_seq)
        self._attach(stream)
        logger.debug("JetStream created stream '%s > %s'", ACCOUNT, config.name)
        return stream, True

    def update_stream(self, requested: StreamConfig) -> Stream:
        stream = self.lookup(requested.name)
        config = requested.normalized(self.duplicate_limit).check_update(stream.config)
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
                             empty: bool = False) -> Stream:
        """Open this server's copy of a stream, keeping what is on disk only if it is the
        same stream (a stream deleted and created again while we were away is another).
        `empty`: start from an empty store whatever is on disk (it is rebuilt from a log)."""
        directory = os.path.join(self.streams_dir, config.name)
        if os.path.isdir(directory) and not self._same_incarnation(directory, created, group):
            logger.info("JetStream removing stale data of stream '%s > %s'", ACCOUNT,
                        config.name)
            shutil.rmtree(directory)
        if empty:
            shutil.rmtree(os.path.join(directory, "msgs"), ignore_errors=True)
        durable.makedirs(directory)
        self._write_meta(config, created, group)
        stream = Stream(config, self._open_store(config), created)
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

    def attach_assigned(self, stream: Stream, ingest: bool) -> None:
        self._attach(stream, ingest)

    def apply_stream_update(self, stream: Stream, config: StreamConfig, ingest: bool) -> None:
        """A config change the meta group decided (already validated by its leader)."""
        self._write_meta(config, stream.created, self._group(stream))
        self._detach_ingest(stream)
        stream.update(config)
        if ingest:
            self._subscribe_ingest(stream)
        else:
            self._subscribe_direct(stream)

    def _group(self, stream: Stream) -> str:
        try:
            meta = json.loads(read_checked(os.path.join(self.streams_dir, stream.config.name,
                                                        "meta.json")))
        except (OSError, ValueError):
            return ""
        return str(meta.get("group", ""))

    def open_assigned_consumer(self, stream: Stream, name: str, config: ConsumerConfig,
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
                logger.error("JetStream consumer '%s > %s > %s' state lost: %s", ACCOUNT,
                             stream.config.name, name, exc)
                shutil.rmtree(self._consumer_dir(stream, name), ignore_errors=True)
        consumer = self._new_consumer(stream, name, config, created)
        self._save_consumer(consumer)
        stream.consumers[name] = consumer
        consumer.start()
        return consumer

    def consumer_inactive(self, stream: Stream, name: str) -> None:
        """An ephemeral consumer nobody used for its inactive threshold goes away."""
        if self.cluster is None:
            self.remove_consumer(stream, name)
            return
        self.cluster.request_consumer_delete(stream.config.name, name)

    def lookup(self, name: str) -> Stream:
        stream = self.streams.get(name)
        if stream is None:
            if name in self.offline:
                raise errors.stream_offline()
            raise errors.stream_not_found()
        return stream

    def _attach(self, stream: Stream, ingest: bool = True) -> None:
        """Serve `stream` here. `ingest`: this server stores what is published to it (not so
        for a replicated stream, whose leader ingests through its Raft group)."""
        self.streams[stream.config.name] = stream
        store = stream.store
        stream.send = self._send
        self.commit.watch(store, Watcher(lambda: store.last_seq, stream.on_durable,
                                         stream.on_sync_failed))
        if ingest:
            self._subscribe_ingest(stream)
        else:
            self._subscribe_direct(stream)

    def _send(self, reply: bytes, payload: bytes) -> None:
        self.server.publish_internal(reply, payload=payload)

    def _write_meta(self, config: StreamConfig, created: int, group: str = "") -> None:
        meta = {"config": config.to_json(), "created": created, "group": group}
        path = os.path.join(self.streams_dir, config.name, "meta.json")
        write_checked(path, json.dumps(meta).encode())

    def _check_overlap(self, config: StreamConfig, ignore: str = "") -> None:
        check_overlap(config, [s.config for s in self.streams.values()], ignore)

    def _check_resources(self, config: StreamConfig) -> None:
        if config.max_bytes <= 0:
            return
        if config.storage == "memory":
            if self.reserved("memory") + config.max_bytes > self.max_memory:
                raise errors.memory_exceeded()
        elif self.reserved("file") + config.max_bytes > self.max_storage:
            raise errors.storage_exceeded()

    def reserved(self, storage: str) -> int:
        return sum(s.config.max_bytes for s in self.streams.values()
                   if s.config.storage == storage and s.config.max_bytes > 0)

    def usage(self, storage: str) -> int:
        return sum(s.store.state().bytes for s in self.streams.values()
                   if s.config.storage == storage)

    def _recent_usage(self, storage: str, adding: int) -> int:
        """Storage used, for the publish path: `usage()` recomputed at most every
        USAGE_REFRESH seconds, plus what was published since (an upper bound)."""
        now = self.server.loop.time()
        cached = self._usage_cache.get(storage)
        if cached is None or now >= cached[1]:
            cached = [self.usage(storage), now + USAGE_REFRESH]
            self._usage_cache[storage] = cached
        used = cached[0]
        cached[0] += adding
        return used

    # Ingest: core NATS publishes on stream subjects

    def _subscribe_ingest(self, stream: Stream) -> None:
        self._subscribe_direct(stream)
        handler = self._ingest_handler(stream)
        self._ingest_subs[stream.config.name] += self.subscribe_ingest(stream, handler)

    def subscribe_ingest(self, stream: Stream, handler: Callable[[bytes, bytes, int, bytes],
                                                                 None]) -> list[Subscription]:
        """Subscribe `handler` to the stream's subjects (peers route those publishes here)."""
        return [self.subscribe(subject, handler) for subject in stream.config.subjects]

    def _subscribe_direct(self, stream: Stream) -> None:
        """Direct gets are answered by any server holding the stream (one of them: a queue)."""
        subs: list[Subscription] = []
        if stream.config.allow_direct and self.direct_get is not None:
            direct = self.direct_get(stream)
            name = stream.config.name
            for subject in (f"$JS.API.DIRECT.GET.{name}", f"$JS.API.DIRECT.GET.{name}.>"):
                subs.append(self.subscribe(subject, direct, queue="_sys_"))
        self._ingest_subs[stream.config.name] = subs

    def subscribe(self, subject: str, handler: Callable[[bytes, bytes, int, bytes], None],
                  queue: str | None = None) -> Subscription:
        """A JetStream subscription; in a cluster, peers learn of it and route to it."""
        return self.server.subscribe_internal(subject, handler, queue,
                                              propagate=self.cluster is not None)

    def _detach_ingest(self, stream: Stream) -> None:
        for sub in self._ingest_subs.pop(stream.config.name, []):
            self.server.unsubscribe_internal(sub)

    def _ingest_handler(self, stream: Stream) -> Callable[[bytes, bytes, int, bytes], None]:
        def ingest(subject: bytes, reply: bytes, hdr: int, payload: bytes) -> None:
            self.ingest(stream, subject, reply, hdr, payload)
        return ingest

    def ingest(self, stream: Stream, subject: bytes, reply: bytes, hdr: int,
               payload: bytes) -> None:
        """A message published on one of the stream's subjects."""
        if hdr > 0:
            header, data = payload[:hdr], payload[hdr:]
        else:
            header, data = b"", payload
        ack = bool(reply) and not stream.config.no_ack
        try:
            self.check_limits(stream, len(payload))
            published = stream.apply_publish(subject.decode(), header, data, now_ns())
        except ApiError as exc:
            if ack:
                self.server.publish_internal(reply, payload=stream.pub_error(exc))
            return
        except StoreFull:
            if ack:
                self.server.publish_internal(reply, payload=stream.pub_error(
                    errors.storage_exceeded()))
            return
        except StoreError as exc:
            logger.error("JetStream failed to store a msg on stream '%s > %s': %s", ACCOUNT,
                         stream.config.name, exc)
            if ack:
                self.server.publish_internal(reply, payload=stream.pub_error(
                    errors.store_failed(str(exc))))
            return
        if self.commit.lazy:  # sync_interval: acknowledge before the data is on disk
            if ack:
                self.server.publish_internal(reply, payload=stream.pub_ack(published))
            stream.on_durable(published.seq)
            self.commit.request(stream.store)
            return
        if ack:
            # Released by on_durable once the sync covering `seq` (or the original's) is done.
            stream.pending_acks.append((published.seq, reply, stream.pub_ack(published)))
        if not published.duplicate:
            self.commit.request(stream.store)
        elif ack and published.seq <= stream.durable_seq:
            stream.on_durable(stream.durable_seq)

    def check_limits(self, stream: Stream, size: int) -> None:
        if stream.config.storage == "memory":
            if self._recent_usage("memory", size) + size > self.max_memory:
                raise errors.memory_exceeded()
        elif self.max_storage > 0 and self._recent_usage("file", size) + size > self.max_storage:
            raise errors.storage_exceeded()

    # Consumers

    @property
    def api_prefixes(self) -> list[str]:
        prefixes = ["$JS.API"]
        if self.domain:
            prefixes.append(f"$JS.{self.domain}.API")
        return prefixes

    def _consumer_dir(self, stream: Stream, name: str) -> str:
        return os.path.join(self.streams_dir, stream.config.name, "obs", name)

    def add_consumer(self, stream: Stream, requested: ConsumerConfig, action: str = ""
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
        consumer = self._new_consumer(stream, name, config, now_ns())
        self._save_consumer(consumer)
        stream.consumers[name] = consumer
        consumer.start()
        self._consumer_advisory(stream, name, "create")
        return consumer, True

    def _new_consumer(self, stream: Stream, name: str, config: ConsumerConfig, created: int,
                      state: ConsumerState | None = None, log: Any = None) -> Consumer:
        persistent = self._persistent(stream, config)
        if log is None:
            log = StateLog(os.path.join(self._consumer_dir(stream, name), "state")) \
                if persistent else MemoryStateLog(name)
        if state is None:
            state = self.initial_consumer_state(stream, config)
        consumer = Consumer(self, stream, name, config, created, state, log,
                            self._consumer_dir(stream, name) if persistent else "")
        if config.deliver_policy == "last_per_subject" and not state.delivered_cseq:
            consumer.deliver_first(self._last_per_subject(stream, config))
        return consumer

    def initial_consumer_state(self, stream: Stream, config: ConsumerConfig) -> ConsumerState:
        """A new consumer starts just before its first message (nats-server shows the start
        position in `delivered` and `ack_floor` before anything was delivered)."""
        state = ConsumerState(acks_required=config.acks_required)
        state.cursor = self._start_sequence(stream, config)
        state.delivered_sseq = state.floor_sseq = state.cursor - 1
        return state

    def build_consumer(self, stream: Stream, name: str, config: ConsumerConfig, created: int,
                       state: ConsumerState, log: Any) -> Consumer:
        """A consumer over a given state and state log (a replicated consumer's)."""
        consumer = Consumer(self, stream, name, config, created, state, log)
        if config.deliver_policy == "last_per_subject" and not state.delivered_cseq:
            consumer.deliver_first(self._last_per_subject(stream, config))
        return consumer

    def after_durable(self, log: Any, callback: Callable[[BaseException | None], None]
                      ) -> None:
        """Call back once what `log` recorded so far is durable (synced, or committed)."""
        if isinstance(log, ReplicatedLog):
            log.after_commit(callback)
        else:
            self.commit.after_sync(log, callback)

    @staticmethod
    def _persistent(stream: Stream, config: ConsumerConfig) -> bool:
        return bool(config.durable_name) and not config.mem_storage and \
            stream.config.storage == "file"

    def _start_sequence(self, stream: Stream, config: ConsumerConfig) -> int:
        store = stream.store
        state = store.state()
        policy = config.deliver_policy
        if policy == "all":
            first = stream.first_seq_filtered(config.filters)
            return first or state.last_seq + 1
        if policy == "last":
            last = store.load_last(config.filters)
            return last.seq if last is not None else state.last_seq + 1
        if policy in ("new", "last_per_subject"):
            return state.last_seq + 1
        if policy == "by_start_sequence":
            return config.opt_start_seq
        start = stream.first_seq_at_or_after(config.start_time_ns) if state.msgs else 0
        return max(start, state.first_seq, 1)

    @staticmethod
    def _last_per_subject(stream: Stream, config: ConsumerConfig) -> list[int]:
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

    def remove_consumer(self, stream: Stream, name: str) -> None:
        consumer = stream.consumers.pop(name, None)
        if consumer is None:
            raise ApiError(404, 10014, "consumer not found")
        consumer.stop("Consumer Deleted")
        consumer.log.destroy()
        if consumer.durable_dir:
            shutil.rmtree(consumer.durable_dir, ignore_errors=True)
        stream.drop_unneeded()
        self._consumer_advisory(stream, name, "delete")

    def _consumer_advisory(self, stream: Stream, name: str, action: str) -> None:
        event = {"create": "CREATED", "delete": "DELETED"}[action]
        self.advise(f"$JS.EVENT.ADVISORY.CONSUMER.{event}.{stream.config.name}.{name}",
                    {"type": "io.nats.jetstream.advisory.v1.consumer_action",
                     "stream": stream.config.name, "consumer": name, "action": action})

    def advise(self, subject: str, event: dict[str, Any]) -> None:
        """Publish an advisory, only if someone listens (as nats-server does)."""
        encoded = subject.encode()
        if not self.server.has_interest(encoded):
            return
        body = {"type": event.pop("type"), "id": nuid(), "timestamp": format_ns(now_ns()),
                **event}
        if self.domain:
            body["domain"] = self.domain
        self.server.publish_internal(encoded, payload=json.dumps(body).encode())

    def _recover_consumers(self, stream: Stream) -> None:
        obs = os.path.join(self.streams_dir, stream.config.name, "obs")
        if not os.path.isdir(obs):
            return
        for name in sorted(os.listdir(obs)):
            try:
                self._recover_consumer(stream, name)
            except (OSError, ValueError, StoreError, ApiError) as exc:
                logger.error("JetStream could not recover consumer '%s > %s > %s': %s",
                             ACCOUNT, stream.config.name, name, exc)

    def _recover_consumer(self, stream: Stream, name: str) -> None:
        directory = self._consumer_dir(stream, name)
        meta = json.loads(read_checked(os.path.join(directory, "meta.json")))
        config = ConsumerConfig(**_known(ConsumerConfig, meta["config"]))
        log = StateLog(os.path.join(directory, "state"))
        if log.snapshot is not None:
            state = ConsumerState.restore(log.snapshot, config.acks_required)
        else:
            state = self.initial_consumer_state(stream, config)
        for record in log.records:
            state.apply(ConsumerState.decode_op(record))
        consumer = self._new_consumer(stream, name, config, int(meta.get("created", 0)), state,
                                      log)
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
        self._expiry_timer = self.server.loop.call_later(EXPIRY_TICK, self._expire)

    # Health

    def health(self) -> tuple[int, dict[str, Any]]:
        if self.cluster is not None:
            status = self.cluster.health()
            if status[0] != 200:
                return status
        if self.offline:
            name = sorted(self.offline)[0]
            return 503, {"status": "unavailable", "status_code": 503,
                         "error": f"JetStream stream '{ACCOUNT} > {name}' could not be recovered"}
        return 200, {"status": "ok"}


def plan_stream(requested: StreamConfig, duplicate_limit: int) -> StreamConfig:
    """The checks of a stream create that need nothing but the config."""
    config = requested.normalized(duplicate_limit)
    if config.sealed:
        raise errors.stream_invalid_config("stream configuration for create can not be sealed")
    if config.mirror_direct and config.mirror is None:
        raise errors.stream_invalid_config("stream has no mirror but does have mirror direct")
    return config


def check_overlap(config: StreamConfig, others: list[StreamConfig], ignore: str = "") -> None:
    """No two streams may capture the same subject."""
    for other in others:
        if other.name in (config.name, ignore):
            continue
        for a in config.subjects:
            for b in other.subjects:
                if subjects_collide(a.encode(), b.encode()):
                    raise errors.subjects_overlap()


def plan_consumer(stream_config: StreamConfig, existing: dict[str, ConsumerConfig],
                  requested: ConsumerConfig, action: str = ""
                  ) -> tuple[str, ConsumerConfig, ConsumerConfig | None]:
    """Check a consumer create/update against its stream and the stream's other consumers, in
    nats-server's order. Returns (name, config with defaults, the config it replaces or None)."""
    config = requested.with_defaults(stream_config)
    config.check(stream_config)
    name = config.durable_name or config.name
    previous = existing.get(name) if name else None
    if previous is not None:
        if action == "create" and previous.to_json() != config.to_json():
            raise ApiError(400, 10148, "consumer already exists")
        if previous.to_json() != config.to_json():
            config.check_update(previous)
            _check_workqueue(stream_config, existing, config, name)
        return name, config, previous
    if action == "update":
        raise ApiError(400, 10149, "consumer does not exist")
    if 0 < stream_config.max_consumers <= len(existing):
        raise ApiError(400, 10026, "maximum consumers limit reached")
    if stream_config.retention == "workqueue":
        if config.ack_policy != "explicit":
            raise ApiError(400, 10098, "workqueue stream requires explicit ack")
        _check_workqueue(stream_config, existing, config, name)
        if config.deliver_policy != "all":
            raise ApiError(400, 10101, "consumer must be deliver all on workqueue stream")
    if not name:
        name = _random_name()
    if len(name) > 255:
        raise ApiError(400, 10102, "consumer name is too long, maximum allowed is 255")
    return name, config, None


def _check_workqueue(stream_config: StreamConfig, existing: dict[str, ConsumerConfig],
                     config: ConsumerConfig, name: str) -> None:
    if stream_config.retention != "workqueue":
        return
    others = [c for n, c in existing.items() if n != name]
    if not others:
        return
    if config.filters == (">",):
        raise ApiError(400, 10099, "multiple non-filtered consumers not allowed on "
                                   "workqueue stream")
    for other in others:
        for a in config.filters:
            for b in other.filters:
                if subjects_collide(a.encode(), b.encode()):
                    raise ApiError(400, 10100, "filtered consumer not unique on workqueue "
                                               "stream")


def _known_fields(config: dict[str, Any]) -> dict[str, Any]:
    return _known(StreamConfig, config)


def _known(cls: type, config: dict[str, Any]) -> dict[str, Any]:
    names = set(cls.__dataclass_fields__)  # type: ignore[attr-defined]
    return {k: v for k, v in config.items() if k in names}


def _random_name() -> str:
    """A generated consumer name: 8 alphanumerics, like nats-server's."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(alphabet[b % len(alphabet)] for b in os.urandom(8))


def _human(size: int) -> str:
    units = ["B", "KB", "MB", "GB", "TB"]
    value = float(size)
    for unit in units:
        if value < 1024 or unit == units[-1]:
            return f"{value:.2f} {unit}"
        value /= 1024
    return f"{size} B"
