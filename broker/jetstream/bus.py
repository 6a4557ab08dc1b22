"""What JetStream needs of core NATS: the seam between the two, declared on JetStream's side.

JetStream is a set of server-side subscribers and publishers: the API, the stream ingest, the
consumers' deliveries, replication's catch-up. It reaches core NATS only through `Bus`, which
`broker.server.Server` satisfies as it is (the composition root hands it over), so nothing under
broker/jetstream/ imports the server, and tests can give JetStream an in-memory bus.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from broker.sublist import InternalHandler, Subscription

InterestCallback = Callable[[], None]


class Bus(Protocol):
    """Publish and subscribe inside the server; the names follow nats-server's internal client."""

    @property
    def name(self) -> str:
        """This server's name (a peer id on a cluster)."""
        ...

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    def publish_internal(self, subject: bytes, reply: bytes = b"", payload: bytes = b"",
                         hdr: int = -1) -> int:
        """Route a server message as any client's; returns how many subscribers got it."""
        ...

    def subscribe_internal(self, subject: str, handler: InternalHandler,
                           queue: str | None = None, propagate: bool = False) -> Subscription:
        """A server-side subscriber; `propagate`: peers route matching messages here."""
        ...

    def unsubscribe_internal(self, sub: Subscription) -> None: ...

    def deliver_as(self, target: bytes, subject: bytes, reply: bytes, hdr: int,
                   payload: bytes) -> int:
        """Deliver to the subscribers of `target`, showing `subject` on the MSG line."""
        ...

    def has_interest(self, subject: bytes, queue: str = "") -> bool: ...

    def watch_interest(self, subject: bytes, callback: InterestCallback) -> None:
        """Call `callback()` whenever a subscription matching `subject` comes or goes."""
        ...

    def unwatch_interest(self, subject: bytes, callback: InterestCallback) -> None: ...

    def flush(self) -> None:
        """Write out what this loop turn queued for clients (PubAcks released in a batch)."""
        ...
