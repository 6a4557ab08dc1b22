"""Group membership: voter sets, their encoding in CONFIG entries, and which one is in force.

Changes are single-server (add one or remove one voter per entry), so any majority of the old set
and any majority of the new set overlap, and no joint consensus is needed (Raft thesis §4.2). A
server uses the newest configuration in its log, committed or not (§4.1), and falls back to the
previous one when a conflicting suffix holding a CONFIG entry is truncated. That is why this
keeps the history of CONFIG entries after the snapshot, not only the newest one.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

_U16 = struct.Struct("<H")


def encode_voters(voters: frozenset[str] | tuple[str, ...] | set[str]) -> bytes:
    parts = [_U16.pack(len(voters))]
    for v in sorted(voters):
        raw = v.encode()
        parts.append(_U16.pack(len(raw)))
        parts.append(raw)
    return b"".join(parts)


def decode_voters(data: bytes) -> frozenset[str]:
    """Voters from a CONFIG entry. Raises ValueError on bytes that are not a voter list."""
    if len(data) < 2:
        raise ValueError("short voter list")
    (n,) = _U16.unpack_from(data, 0)
    pos = 2
    out = []
    for _ in range(n):
        if pos + 2 > len(data):
            raise ValueError("short voter list")
        (size,) = _U16.unpack_from(data, pos)
        pos += 2
        if pos + size > len(data):
            raise ValueError("short voter list")
        out.append(data[pos:pos + size].decode())
        pos += size
    if pos != len(data):
        raise ValueError("trailing bytes in voter list")
    return frozenset(out)


def quorum(n: int) -> int:
    return n // 2 + 1


@dataclass
class ConfigHistory:
    """`base` is the configuration at `base_index` (the snapshot's, or the bootstrap set at 0);
    `changes` are the CONFIG entries after it, ascending by index."""

    base_index: int
    base: frozenset[str]
    changes: list[tuple[int, frozenset[str]]] = field(default_factory=list)

    @property
    def voters(self) -> frozenset[str]:
        return self.changes[-1][1] if self.changes else self.base

    @property
    def last_change_index(self) -> int:
        return self.changes[-1][0] if self.changes else self.base_index

    def at(self, index: int) -> frozenset[str]:
        """The configuration in force once the log holds exactly `index` entries."""
        voters = self.base
        for i, v in self.changes:
            if i > index:
                break
            voters = v
        return voters

    def append(self, index: int, voters: frozenset[str]) -> None:
        self.changes.append((index, voters))

    def truncate(self, index: int) -> bool:
        """Forget changes at `index` and after; True if the voters in force changed."""
        before = self.voters
        while self.changes and self.changes[-1][0] >= index:
            self.changes.pop()
        return self.voters != before

    def compact(self, index: int) -> None:
        """The log now starts after `index` (a snapshot there): fold older changes into base."""
        self.base = self.at(index)
        self.base_index = index
        self.changes = [(i, v) for i, v in self.changes if i > index]

    def reset(self, index: int, voters: frozenset[str]) -> None:
        self.base_index, self.base, self.changes = index, voters, []
