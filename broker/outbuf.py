"""The outgoing side of a connection: bytes queued during a loop turn, written with one `write`.

Client and route connections both inherit `OutBuffer`. Anything that sends appends to `out`
(`send()`, or the server's fan-out, which appends MSG frames to `out` directly); the first append
of a turn asks the server to flush this connection (`_mark_dirty`), and the server's flush at the
end of the turn joins the list into a single `transport.write`. A connection with `max_pending`
set is a slow consumer when the transport's buffer grows past it after a write.
"""

from __future__ import annotations

import asyncio
from typing import Protocol


class Flushable(Protocol):
    """What the server's end-of-turn flush needs of a connection it was asked to flush."""

    def flush(self) -> None: ...


class OutBuffer:
    """`out`, `send()`, `flush()` and the slow-consumer check shared by every connection."""

    # The transport's buffer limit after a write; None: no limit (routes).
    max_pending: int | None = None

    def __init__(self) -> None:
        self.out: list[bytes] = []
        self.transport: asyncio.Transport | None = None
        self.closed = False

    def _mark_dirty(self) -> None:
        """Ask the server to call `flush()` at the end of this loop turn."""
        raise NotImplementedError

    def _slow_consumer(self) -> None:
        """The transport's buffer is above `max_pending` after a flush."""
        raise NotImplementedError

    def send(self, data: bytes) -> None:
        """Queue bytes; they go out with this loop turn's flush."""
        if self.closed:
            return
        if not self.out:
            self._mark_dirty()
        self.out.append(data)

    def flush(self) -> None:
        out = self.out
        if not out:
            return
        transport = self.transport
        if self.closed or transport is None:
            out.clear()
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        transport.write(data)
        limit = self.max_pending
        if limit is not None and transport.get_write_buffer_size() > limit:
            self._slow_consumer()

    def write_now(self, data: bytes) -> None:
        """Write at once, ahead of anything queued (greetings sent before the first turn)."""
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def pending_bytes(self) -> int:
        buffered = self.transport.get_write_buffer_size() if self.transport else 0
        return buffered + sum(len(b) for b in self.out)
