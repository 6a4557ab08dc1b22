"""Publish deduplication: `Nats-Msg-Id` -> the sequence it was stored at, within a time window.

Entries are kept in arrival order, so expiring the window is popping from the front. The state
is derived from the stream (ids live in stored headers) and rebuilt from it after a restart, so
a duplicate is still recognised across a crash.
"""

from __future__ import annotations

from collections import OrderedDict


class Dedupe:
    def __init__(self, window_ns: int) -> None:
        self.window = window_ns
        self._ids: OrderedDict[str, tuple[int, int]] = OrderedDict()  # id -> (seq, ts)

    def __len__(self) -> int:
        return len(self._ids)

    def lookup(self, msg_id: str, now: int) -> int | None:
        """The sequence an earlier message with this id got, if still inside the window."""
        self.expire(now)
        entry = self._ids.get(msg_id)
        return entry[0] if entry is not None else None

    def record(self, msg_id: str, seq: int, ts: int) -> None:
        self._ids[msg_id] = (seq, ts)
        self._ids.move_to_end(msg_id)

    def expire(self, now: int) -> None:
        cutoff = now - self.window
        ids = self._ids
        while ids:
            msg_id, (_, ts) = next(iter(ids.items()))
            if ts > cutoff:
                return
            del ids[msg_id]

    def clear(self) -> None:
        self._ids.clear()
