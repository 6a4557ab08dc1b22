"""In-memory stand-ins for what JetStream needs from above it, so Stream, Consumer and the
JetStream API run in a unit test without a server: `MemoryBus` is a `broker.jetstream.bus.Bus`
(the real subscription index, synchronous delivery, every published message recorded), and
`MemoryLog` a `broker.jetstream.consumer.ConsumerLog` that is durable at once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from broker.jetstream.bus import InterestCallback
from broker.sublist import InternalHandler, Sublist, Subscription
from common.subjects import subject_matches


@dataclass
class Sent:
    subject: bytes
    reply: bytes
    hdr: int
    payload: bytes

    def json(self) -> dict[str, Any]:
        return json.loads(self.payload[self.hdr:] if self.hdr > 0 else self.payload)


class MemoryBus:
    """Core NATS inside one process: internal subscribers only, delivered synchronously."""

    def __init__(self, name: str = "unit") -> None:
        self.name = name
        self.sublist = Sublist(cache=False)
        self.sent: list[Sent] = []  # every publish and deliver_as, in order
        self.flushes = 0
        self._sid = 0
        self._watchers: dict[bytes, list[InterestCallback]] = {}

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    def publish_internal(self, subject: bytes, reply: bytes = b"", payload: bytes = b"",
                         hdr: int = -1) -> int:
        self.sent.append(Sent(subject, reply, hdr, payload))
        return self._deliver(subject, subject, reply, hdr, payload)

    def deliver_as(self, target: bytes, subject: bytes, reply: bytes, hdr: int,
                   payload: bytes) -> int:
        self.sent.append(Sent(subject, reply, hdr, payload))
        return self._deliver(target, subject, reply, hdr, payload)

    def _deliver(self, target: bytes, subject: bytes, reply: bytes, hdr: int,
                 payload: bytes) -> int:
        result = self.sublist.match(target)
        subs = [sub for sub, _ in result.psubs] + [group[0] for group in result.qsubs]
        for sub in subs:
            assert sub.callback is not None
            sub.callback(subject, reply, hdr, payload)
        return len(subs)

    def subscribe_internal(self, subject: str, handler: InternalHandler,
                           queue: str | None = None, propagate: bool = False) -> Subscription:
        self._sid += 1
        sub = Subscription(subject.encode(), b"%d" % self._sid, None,
                           queue.encode() if queue else None, handler)
        self.sublist.insert(sub)
        self._interest_changed(sub.subject)
        return sub

    def unsubscribe_internal(self, sub: Subscription) -> None:
        if self.sublist.remove(sub):
            self._interest_changed(sub.subject)

    def has_interest(self, subject: bytes, queue: str = "") -> bool:
        result = self.sublist.match(subject)
        return bool(result.psubs or result.qsubs)

    def watch_interest(self, subject: bytes, callback: InterestCallback) -> None:
        self._watchers.setdefault(subject, []).append(callback)

    def unwatch_interest(self, subject: bytes, callback: InterestCallback) -> None:
        callbacks = self._watchers.get(subject, [])
        if callback in callbacks:
            callbacks.remove(callback)

    def _interest_changed(self, pattern: bytes) -> None:
        for subject, callbacks in list(self._watchers.items()):
            if subject_matches(pattern, subject):
                for callback in list(callbacks):
                    callback()

    def flush(self) -> None:
        self.flushes += 1

    # For tests

    def inbox(self, subject: str = "_INBOX.unit.*") -> list[Sent]:
        """Collect what is published to `subject` from now on."""
        got: list[Sent] = []
        self.subscribe_internal(subject, lambda s, r, h, p: got.append(Sent(s, r, h, p)))
        return got

    def request(self, subject: str, body: bytes | dict[str, Any] = b"") -> list[Sent]:
        """Publish with a fresh reply subject; what came back to it (synchronously)."""
        self._sid += 1
        reply = f"_INBOX.req.{self._sid}"
        got = self.inbox(reply)
        payload = json.dumps(body).encode() if isinstance(body, dict) else body
        self.publish_internal(subject.encode(), reply.encode(), payload)
        return got


class MemoryLog:
    """A consumer state log kept in a list, durable at once (or when `hold` is released)."""

    def __init__(self) -> None:
        self.records: list[bytes] = []
        self.snapshot: bytes | None = None
        self.closed = self.destroyed = False
        self.hold = False
        self._waiting: list[Callable[[BaseException | None], None]] = []

    def append(self, record: bytes) -> None:
        self.records.append(record)

    def size(self) -> int:
        return sum(map(len, self.records))

    def compact(self, snapshot: bytes) -> None:
        self.snapshot, self.records = snapshot, []

    def close(self) -> None:
        self.closed = True

    def destroy(self) -> None:
        self.destroyed = True

    def after_durable(self, callback: Callable[[BaseException | None], None]) -> None:
        if self.hold:
            self._waiting.append(callback)
        else:
            callback(None)

    def release(self, error: BaseException | None = None) -> None:
        waiting, self._waiting = self._waiting, []
        for callback in waiting:
            callback(error)
