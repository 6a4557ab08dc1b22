"""`LoopbackNetwork`: an in-process network of real `RaftDriver`s, for tests and benchmarks.

Nodes join with their `receive(frame)`; `sender(node)` is that node's `send(peer, frame)`.
Delivery is asynchronous (`loop.call_soon`), ordered per sender, and can be cut between any two
nodes.
"""

from __future__ import annotations

import asyncio

from raft.transport import Receive, Send


class LoopbackNetwork:
    """Nodes join with a receive callable; `sender(node)` is that node's `send(peer, frame)`."""

    def __init__(self) -> None:
        self._nodes: dict[str, Receive] = {}
        self._cut: set[tuple[str, str]] = set()
        self.delivered = 0
        self.dropped = 0

    def join(self, node: str, receive: Receive) -> None:
        self._nodes[node] = receive

    def leave(self, node: str) -> None:
        self._nodes.pop(node, None)

    def sender(self, node: str) -> Send:
        def send(peer: str, frame: bytes) -> None:
            if (node, peer) in self._cut or peer not in self._nodes:
                self.dropped += 1
                return
            asyncio.get_running_loop().call_soon(self._deliver, node, peer, frame)
        return send

    def _deliver(self, src: str, dst: str, frame: bytes) -> None:
        target = self._nodes.get(dst)
        if target is None or (src, dst) in self._cut:
            self.dropped += 1
            return
        self.delivered += 1
        target(frame)

    def isolate(self, node: str) -> None:
        for other in self._nodes:
            if other != node:
                self._cut.add((node, other))
                self._cut.add((other, node))

    def cut(self, a: str, b: str) -> None:
        self._cut.add((a, b))
        self._cut.add((b, a))

    def heal(self) -> None:
        self._cut.clear()
