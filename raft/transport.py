"""Transport helpers: the driver needs only `send(peer, frame)` and `receive(frame)`.

* `Send`, `Receive`: the types of a driver's `send(peer, frame)` and `receive(frame)`.
* `Demux`: one receiver for a connection that carries many groups; routes each frame by the
  group name in its header (malformed frames are dropped and counted).

The in-process network for tests and benchmarks is `raft.testing.loopback.LoopbackNetwork`.
"""

from __future__ import annotations

from collections.abc import Callable

from raft import codec

Send = Callable[[str, bytes], None]  # queue `frame` towards `peer`; never blocks
Receive = Callable[[bytes], None]  # one frame from a peer


class Demux:
    def __init__(self) -> None:
        self._groups: dict[str, Receive] = {}
        self.malformed = 0
        self.unknown_group = 0

    def add(self, group: str, receive: Receive) -> None:
        self._groups[group] = receive

    def remove(self, group: str) -> None:
        self._groups.pop(group, None)

    def receive(self, frame: bytes) -> None:
        try:
            group = codec.peek_group(frame)
        except codec.MalformedFrame:
            self.malformed += 1
            return
        target = self._groups.get(group)
        if target is None:
            self.unknown_group += 1
            return
        target(frame)
