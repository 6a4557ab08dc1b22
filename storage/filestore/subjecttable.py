"""`SubjectTable`: the subjects a FileStore holds, under global ids.

Per subject: its name (str, and UTF-8 bytes as records hold it), the live message count, the first
live sequence (a lower bound: lookups move it up) and the last one (exact, unless the id is in
`stale_last`: then an upper bound, made exact again by the next lookup). Segments refer to
subjects by these ids (`Segment.lsub_gid`); an id is never reused while the store is open.
"""

from __future__ import annotations

from array import array

from storage.record import MAX_SUBJECT
from storage.store import StoreError
from storage.subjects import matcher


class _Matches:
    """The ids of the subjects matching one filter, among the first `checked` ids."""

    __slots__ = ("checked", "gids")

    def __init__(self) -> None:
        self.checked = 0
        self.gids: set[int] = set()


class SubjectTable:
    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.names: list[str] = []
        self.raw: list[bytes] = []  # the names in UTF-8
        self.extra = array("I")  # UTF-8 bytes beyond one per character
        self.any_extra = False
        self.count = array("Q")  # live messages
        self.first = array("Q")  # a lower bound of the first live seq
        self.last = array("Q")  # the last live seq (an upper bound when in stale_last)
        self.stale_last: set[int] = set()
        self.nsubj = 0  # subjects with a live message
        self._matches: dict[tuple[str, ...], _Matches] = {}

    def intern(self, subject: str) -> int:
        """The id of `subject`, a new one when it has none (StoreError when it is too long)."""
        gid = self.ids.get(subject)
        if gid is not None:
            return gid
        raw = subject.encode()
        if len(raw) > MAX_SUBJECT:
            raise StoreError(f"subject longer than {MAX_SUBJECT} bytes")
        gid = len(self.names)
        self.ids[subject] = gid
        self.names.append(subject)
        self.raw.append(raw)
        extra = len(raw) - len(subject)
        self.extra.append(extra)
        if extra:
            self.any_extra = True
        self.count.append(0)
        self.first.append(0)
        self.last.append(0)
        return gid

    def matching(self, norm: tuple[str, ...]) -> set[int]:
        """The ids of the subjects matching normalized filters `norm` (any count), remembered
        per filter and extended as subjects are added."""
        entry = self._matches.get(norm)
        if entry is None:
            if len(self._matches) > 1024:  # many one-off filters: start over
                self._matches.clear()
            entry = self._matches[norm] = _Matches()
        names = self.names
        if entry.checked < len(names):
            match = matcher(norm)
            entry.gids.update(g for g in range(entry.checked, len(names)) if match(names[g]))
            entry.checked = len(names)
        return entry.gids
