"""One account's view of the server, as JetStream needs it (`broker.jetstream.bus.Bus`).

JetStream serves one account: its API, streams and consumers publish and subscribe inside that
account only. The server routes by account; this binds one, so JetStream stays unaware that
accounts exist.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from broker.account import Account, InterestCallback
from broker.sublist import InternalHandler, Subscription


class Router(Protocol):
    """What an account's bus needs of the server (`broker.server.Server`)."""

    @property
    def name(self) -> str: ...

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    def publish_internal(self, account: Account, subject: bytes, reply: bytes = b"",
                         payload: bytes = b"", hdr: int = -1) -> int: ...

    def subscribe_internal(self, account: Account, subject: str, handler: InternalHandler,
                           queue: str | None = None, propagate: bool = False,
                           ) -> Subscription: ...

    def unsubscribe_internal(self, account: Account, sub: Subscription) -> None: ...

    def deliver_as(self, account: Account, target: bytes, subject: bytes, reply: bytes,
                   hdr: int, payload: bytes) -> int: ...

    def has_interest(self, account: Account, subject: bytes, queue: str = "") -> bool: ...

    def watch_interest(self, account: Account, subject: bytes,
                       callback: InterestCallback) -> None: ...

    def unwatch_interest(self, account: Account, subject: bytes,
                         callback: InterestCallback) -> None: ...

    def flush(self) -> None: ...


class AccountBus:
    """`Bus` for the JetStream of `account`."""

    def __init__(self, router: Router, account: Account) -> None:
        self._router = router
        self.account = account

    @property
    def name(self) -> str:
        return self._router.name

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._router.loop

    def publish_internal(self, subject: bytes, reply: bytes = b"", payload: bytes = b"",
                         hdr: int = -1) -> int:
        return self._router.publish_internal(self.account, subject, reply, payload, hdr)

    def subscribe_internal(self, subject: str, handler: InternalHandler,
                           queue: str | None = None, propagate: bool = False) -> Subscription:
        return self._router.subscribe_internal(self.account, subject, handler, queue, propagate)

    def unsubscribe_internal(self, sub: Subscription) -> None:
        self._router.unsubscribe_internal(self.account, sub)

    def deliver_as(self, target: bytes, subject: bytes, reply: bytes, hdr: int,
                   payload: bytes) -> int:
        return self._router.deliver_as(self.account, target, subject, reply, hdr, payload)

    def has_interest(self, subject: bytes, queue: str = "") -> bool:
        return self._router.has_interest(self.account, subject, queue)

    def watch_interest(self, subject: bytes, callback: InterestCallback) -> None:
        self._router.watch_interest(self.account, subject, callback)

    def unwatch_interest(self, subject: bytes, callback: InterestCallback) -> None:
        self._router.unwatch_interest(self.account, subject, callback)

    def flush(self) -> None:
        self._router.flush()
