"""Group commit: replies that promise durability are released only after the fsync covering them.

Anything that changes a store asks for a sync (`request(store)`, or `after_sync(store, reply)`
when a reply must wait for it). Once per loop turn, every store that asked starts one sync job in
a worker thread; when it returns, everything registered before the job began is released. What
arrives while a job runs waits for the next one, because its bytes may not be covered. One
fdatasync thus pays for every message that arrived while the previous one ran.

A store may also have a watcher: `mark()` is called as each job starts (a stream returns its last
sequence) and `durable(mark)` or `failed(mark, error)` when it ends. Streams use this to release
PubAcks in bulk and to let consumers deliver only what is on disk.

With `sync_interval` set (an explicit opt-in), replies go out at once and stores are synced on a
timer: faster, and able to lose acknowledged messages on power loss.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from broker.logger import logger
from storage.store import SyncJob

# Called with None once durable, or with the error that prevented it.
Reply = Callable[[BaseException | None], None]


class Syncable(Protocol):
    """What group commit needs of a store (message stores and consumer state logs)."""

    def begin_sync(self) -> SyncJob | None: ...

    def finish_sync(self, job: SyncJob) -> None: ...


@dataclass
class Watcher:
    mark: Callable[[], int]
    durable: Callable[[int], None]
    failed: Callable[[int, BaseException], None]


class GroupCommit:
    def __init__(self, loop: asyncio.AbstractEventLoop, sync_interval: float | None = None) -> None:
        self.loop = loop
        self.sync_interval = sync_interval
        self._waiting: dict[Syncable, list[Reply]] = {}  # stores that asked, and their replies
        self._in_flight: dict[Syncable, asyncio.Future] = {}
        self._watchers: dict[Syncable, Watcher] = {}
        self._scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Future] = set()
        # Called after replies were released, so they go out now rather than next loop turn.
        self.on_released: Callable[[], None] | None = None
        self.syncs = 0  # completed sync jobs, for monitoring and tests
        if sync_interval is not None:
            self._timer = loop.call_later(sync_interval, self._periodic)

    @property
    def lazy(self) -> bool:
        return self.sync_interval is not None

    def request(self, store: Syncable) -> None:
        """`store` changed: sync it soon."""
        if store not in self._waiting:
            self._waiting[store] = []
        if not self._scheduled and self.sync_interval is None:
            self._scheduled = True
            self.loop.call_soon(self._start_jobs)

    def after_sync(self, store: Syncable, reply: Reply) -> None:
        """Call `reply` once everything `store` holds now is durable."""
        if self.sync_interval is not None:
            self._waiting.setdefault(store, [])  # remember the store for the periodic sync
            reply(None)
            return
        self.request(store)
        self._waiting[store].append(reply)

    def watch(self, store: Syncable, watcher: Watcher) -> None:
        self._watchers[store] = watcher

    def unwatch(self, store: Syncable) -> None:
        self._watchers.pop(store, None)

    def _start_jobs(self) -> None:
        self._scheduled = False
        alone = len(self._waiting) == 1  # several stores' syncs overlap in workers
        for store in list(self._waiting):
            if store not in self._in_flight:
                self._start(store, inline_ok=alone)

    def _start(self, store: Syncable, inline_ok: bool = True) -> None:
        replies = self._waiting.pop(store, [])
        watcher = self._watchers.get(store)
        mark = watcher.mark() if watcher is not None else 0
        try:
            job = store.begin_sync()
        except OSError as exc:
            self._finished(store, watcher, mark, replies, exc)
            return
        if job is None:
            self._finished(store, watcher, mark, replies, None)
            return
        if inline_ok and job.small and not self._in_flight:
            # Nothing else is syncing, so nothing would overlap the fdatasync: handing the job
            # to a worker and back would only add to the wait (a lone sync publish halves).
            # Under load jobs grow past `small` and go to the worker again.
            try:
                job.run()
            except OSError as exc:
                self._done(store, job, watcher, mark, replies, exc)
            else:
                self._done(store, job, watcher, mark, replies, None)
            return
        # A future with a callback, not a task: one loop turn less between fsync and reply.
        future = self.loop.run_in_executor(None, job.run)
        self._in_flight[store] = future
        self._tasks.add(future)
        future.add_done_callback(
            lambda done: self._worker_done(store, job, watcher, mark, replies, done))

    def _worker_done(self, store: Syncable, job: SyncJob, watcher: Watcher | None, mark: int,
                     replies: list[Reply], future: asyncio.Future) -> None:
        self._tasks.discard(future)
        self._done(store, job, watcher, mark, replies, future.exception())

    def _done(self, store: Syncable, job: SyncJob, watcher: Watcher | None, mark: int,
              replies: list[Reply], error: BaseException | None) -> None:
        if error is not None:
            logger.error("JetStream sync failed for %s: %s", _name(store), error)
            if not isinstance(error, OSError):
                logger.error("unexpected sync failure", exc_info=error)
        try:
            store.finish_sync(job)
        except OSError as exc:
            error = error or exc
        self.syncs += 1
        self._in_flight.pop(store, None)
        self._finished(store, watcher, mark, replies, error)
        if store in self._waiting and self.sync_interval is None:
            self._start(store)
        if self.on_released is not None:
            self.on_released()

    @staticmethod
    def _finished(store: Syncable, watcher: Watcher | None, mark: int, replies: list[Reply],
                  error: BaseException | None) -> None:
        if watcher is not None:
            try:
                if error is None:
                    watcher.durable(mark)
                else:
                    watcher.failed(mark, error)
            except Exception:  # a watcher that fails must not stop the replies
                logger.exception("JetStream sync watcher failed for %s", _name(store))
        for reply in replies:
            try:
                reply(error)
            except Exception:
                logger.exception("JetStream reply failed")

    def _periodic(self) -> None:
        """sync_interval mode: one sync per interval for every store that saw writes."""
        assert self.sync_interval is not None
        for store in list(self._waiting):
            if store not in self._in_flight:
                self._start(store)
        self._timer = self.loop.call_later(self.sync_interval, self._periodic)

    async def settle(self, store: Syncable) -> None:
        """Wait until no sync job runs on `store`; then it may be closed or deleted."""
        while store in self._in_flight:
            await asyncio.gather(self._in_flight[store], return_exceptions=True)

    def detach(self, store: Syncable) -> list[Reply]:
        """Stop tracking `store`; returns the replies still waiting (the caller settles them)."""
        self._watchers.pop(store, None)
        return self._waiting.pop(store, [])

    async def drain(self) -> None:
        """Wait for every job in flight (shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _name(store: Any) -> str:
    config = getattr(store, "config", None)
    return str(getattr(config, "name", None) or getattr(store, "name", "?"))
