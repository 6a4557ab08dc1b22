"""Group commit: replies that promise durability are released only after the fsync covering them.

A stream stores a message (a write into the store's buffer) and asks `after_sync(store, reply)`.
Once per loop turn, every store with waiting replies starts one sync job in a worker thread; when
it returns, all replies registered before the job began are released. Replies registered while a
job runs wait for the next one, because their bytes may not be covered. One fdatasync thus pays for
every message that arrived while the previous one ran.

With `sync_interval` set (an explicit opt-in), replies go out at once and stores are synced on a
timer: faster, and able to lose acknowledged messages on power loss.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from broker.log import logger
from storage.store import MessageStore

# Called with None once durable, or with the error that prevented it.
Reply = Callable[[BaseException | None], None]


class GroupCommit:
    def __init__(self, loop: asyncio.AbstractEventLoop, sync_interval: float | None = None) -> None:
        self.loop = loop
        self.sync_interval = sync_interval
        self._waiting: dict[MessageStore, list[Reply]] = {}
        self._in_flight: dict[MessageStore, asyncio.Task] = {}
        self._scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task] = set()
        # store -> (called as a job starts, returns a mark; called with the mark once durable)
        self._watchers: dict[Any, tuple[Callable[[], int], Callable[[int], None]]] = {}
        self.syncs = 0  # completed sync jobs, for monitoring and tests
        if sync_interval is not None:
            self._timer = loop.call_later(sync_interval, self._periodic)

    def after_sync(self, store: MessageStore, reply: Reply) -> None:
        """Call `reply` once everything `store` holds now is durable."""
        if self.sync_interval is not None:
            self._waiting.setdefault(store, [])  # remember the store for the periodic sync
            reply(None)
            return
        self._waiting.setdefault(store, []).append(reply)
        if not self._scheduled:
            self._scheduled = True
            self.loop.call_soon(self._start_jobs)

    def _start_jobs(self) -> None:
        self._scheduled = False
        for store in list(self._waiting):
            if store not in self._in_flight and self._waiting[store]:
                self._start(store)

    def watch(self, store: Any, mark: Callable[[], int], durable: Callable[[int], None]) -> None:
        """Around every sync of `store`: `mark()` as it starts, `durable(mark)` once it is done.
        (A stream learns which sequences are on disk, so consumers never see one that is not.)"""
        self._watchers[store] = (mark, durable)

    def unwatch(self, store: Any) -> None:
        self._watchers.pop(store, None)

    def _start(self, store: MessageStore) -> None:
        replies = self._waiting.pop(store, [])
        watcher = self._watchers.get(store)
        mark = watcher[0]() if watcher is not None else 0
        try:
            job = store.begin_sync()
        except OSError as exc:
            _release(replies, exc)
            return
        if job is None:
            if watcher is not None:
                watcher[1](mark)
            _release(replies, None)
            return
        task = self.loop.create_task(self._run(store, job, replies, mark))
        self._in_flight[store] = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, store: MessageStore, job, replies: list[Reply], mark: int) -> None:
        error: BaseException | None = None
        try:
            await self.loop.run_in_executor(None, job.run)
        except OSError as exc:
            logger.error("JetStream sync failed for %s: %s", _name(store), exc)
            error = exc
        try:
            store.finish_sync(job)
        except OSError as exc:
            error = error or exc
        self.syncs += 1
        self._in_flight.pop(store, None)
        watcher = self._watchers.get(store)
        if error is None and watcher is not None:
            watcher[1](mark)
        _release(replies, error)
        if self._waiting.get(store):
            self._start(store)

    def _periodic(self) -> None:
        """sync_interval mode: one sync per interval for every store that saw writes."""
        assert self.sync_interval is not None
        for store in list(self._waiting):
            if store not in self._in_flight:
                self._start(store)
        self._timer = self.loop.call_later(self.sync_interval, self._periodic)

    async def settle(self, store: MessageStore) -> None:
        """Wait until no sync job runs on `store`; then it may be closed or deleted."""
        while store in self._in_flight:
            await asyncio.gather(self._in_flight[store], return_exceptions=True)

    def detach(self, store: MessageStore) -> list[Reply]:
        """Stop tracking `store`; returns the replies still waiting (the caller settles them)."""
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
    return getattr(config, "name", None) or getattr(store, "name", "?")


def _release(replies: list[Reply], error: BaseException | None) -> None:
    for reply in replies:
        try:
            reply(error)
        except Exception:  # a reply that fails must not stop the others
            logger.exception("JetStream reply failed")
