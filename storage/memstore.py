"""MemoryStore: the MessageStore interface in memory (streams with storage: memory, ordered
consumers). Same semantics as FileStore; nothing is durable, so `begin_sync` returns None.

Messages live in a dict by sequence, plus an ascending list of sequences (compacted lazily) for
ordered scans and an insertion-ordered dict of sequences per subject, which gives each subject's
count, first and last directly. Bytes count nats-server's memory-store size
(`store.memory_msg_size`: 16 + subject + headers + payload).
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, bisect_right

from storage.store import (
    ALL,
    MEMORY_MSG_OVERHEAD,
    MessageStore,
    StoreConfig,
    StoredMessage,
    StoreError,
    StoreState,
    SyncJob,
    memory_msg_size,
    subject_len,
    truncation_needed,
)
from storage.subjects import matcher, normalized


class MemoryStore(MessageStore):
    removals: int = 0  # MessageStore.removals: a plain attribute, counted where messages go

    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        self._msgs: dict[int, StoredMessage] = {}
        self._seqs: list[int] = []  # ascending; entries from _head on, some possibly removed
        self._head = 0
        self._by_subject: dict[str, dict[int, None]] = {}
        self._last_seq = max(1, config.first_seq) - 1
        self._last_ts = 0
        self._bytes = 0
        self.removals = 0
        self._ttl_heap: list[tuple[int, int]] = []
        self._ts_sorted = True
        self._max_ts = -(1 << 63)
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("store is closed")

    # Helpers

    def _first(self) -> int:
        seqs, msgs = self._seqs, self._msgs
        while self._head < len(seqs) and seqs[self._head] not in msgs:
            self._head += 1
        if self._head > 4096 and self._head * 2 > len(seqs):
            del seqs[:self._head]
            self._head = 0
        return seqs[self._head] if self._head < len(seqs) else self._last_seq + 1

    def _compact(self) -> None:
        if len(self._seqs) > 2 * len(self._msgs) + 4096:
            self._seqs = [s for s in self._seqs[self._head:] if s in self._msgs]
            self._head = 0

    def _matches(self, filters: tuple[str, ...] | str | None):
        norm = normalized(filters)
        return None if norm is None else matcher(norm)

    @staticmethod
    def _size(msg: StoredMessage) -> int:
        return memory_msg_size(subject_len(msg.subject), len(msg.hdr), len(msg.data))

    def _remove(self, seq: int) -> None:
        msg = self._msgs.pop(seq)
        self._bytes -= self._size(msg)
        self.removals += 1
        subject_seqs = self._by_subject[msg.subject]
        del subject_seqs[seq]
        if not subject_seqs:
            del self._by_subject[msg.subject]

    def _live_from(self, start: int):
        seqs, msgs = self._seqs, self._msgs
        for i in range(max(self._head, bisect_left(seqs, start)), len(seqs)):
            seq = seqs[i]
            if seq in msgs:
                yield msgs[seq]

    # Writing

    def store_msg(self, subject: str, hdr: bytes, data: bytes, ts: int, ttl: int = 0) -> int:
        self._check_open()
        seq = self._last_seq + 1
        msg = StoredMessage(seq, subject, hdr, data, ts, ttl)
        self._msgs[seq] = msg
        self._seqs.append(seq)
        self._by_subject.setdefault(subject, {})[seq] = None
        self._bytes += (MEMORY_MSG_OVERHEAD + len(hdr) + len(data)  # memory_msg_size, inlined
                        + (len(subject) if subject.isascii() else len(subject.encode())))
        self._last_seq = seq
        self._last_ts = ts
        if ts < self._max_ts:
            self._ts_sorted = False
        self._max_ts = max(self._max_ts, ts)
        if ttl:
            heapq.heappush(self._ttl_heap, (ts + ttl, seq))
        self._enforce(subject)
        return seq

    def _enforce(self, subject: str | None = None) -> None:
        cfg = self.config
        if cfg.max_msgs_per_subject > 0:
            pool = [subject] if subject is not None else list(self._by_subject)
            for subj in pool:
                seqs = self._by_subject.get(subj)
                while seqs and len(seqs) > cfg.max_msgs_per_subject:
                    self._remove(next(iter(seqs)))
        if cfg.max_msgs > 0:
            while len(self._msgs) > cfg.max_msgs:
                self._remove(self._first())
        if cfg.max_bytes > 0:
            while self._bytes > cfg.max_bytes:
                self._remove(self._first())
        self._compact()

    def skip_msg(self, ts: int) -> int:
        self._check_open()
        self._last_seq += 1
        self._last_ts = ts
        return self._last_seq

    def skip_msgs(self, first_seq: int) -> None:
        self._check_open()
        if first_seq <= self._last_seq:
            raise StoreError(f"skip_msgs({first_seq}) would move back from last sequence "
                             f"{self._last_seq}")
        self.purge()
        self._last_seq = first_seq - 1

    def remove(self, seq: int, erase: bool = False) -> bool:
        self._check_open()
        if seq not in self._msgs:
            return False
        self._remove(seq)
        self._compact()
        return True

    def purge(self, subject: str | None = None, seq: int = 0, keep: int = 0) -> int:
        self._check_open()
        match = self._matches(subject)
        if match is None and not seq and keep <= 0:
            n = len(self._msgs)
            self._msgs.clear()
            self._seqs = []
            self._head = 0
            self._by_subject.clear()
            self._bytes = 0
            self._ttl_heap = []
            self.removals += n
            return n
        candidates = [m.seq for m in self._live_from(0) if match is None or match(m.subject)]
        if keep > 0:
            if keep >= len(candidates):
                return 0
            candidates = candidates[:len(candidates) - keep]
        if seq > 0:
            candidates = [s for s in candidates if s < seq]
        for s in candidates:
            self._remove(s)
        self._compact()
        return len(candidates)

    def expire(self, now: int) -> int:
        self._check_open()
        removed = 0
        if self.config.max_age > 0:
            cutoff = now - self.config.max_age
            expired = []
            for msg in self._live_from(0):
                if msg.ts <= cutoff:
                    expired.append(msg.seq)
                elif self._ts_sorted:
                    break
            for seq in expired:
                self._remove(seq)
            removed += len(expired)
        heap = self._ttl_heap
        while heap and heap[0][0] <= now:
            _, seq = heapq.heappop(heap)
            if seq in self._msgs:
                self._remove(seq)
                removed += 1
        self._compact()
        return removed

    def update_config(self, config: StoreConfig) -> None:
        self._check_open()
        self.config = config
        self._enforce()

    def truncate(self, last_seq: int) -> None:
        self._check_open()
        if not truncation_needed(self, last_seq):
            return
        seqs = self._seqs
        cut = bisect_right(seqs, last_seq)
        for seq in seqs[max(cut, self._head):]:
            if seq in self._msgs:
                self._remove(seq)
        del seqs[cut:]
        self._head = min(self._head, cut)
        # Expiry entries of removed messages must go: their sequences will be used again.
        self._ttl_heap = [(exp, seq) for exp, seq in self._ttl_heap if seq <= last_seq]
        heapq.heapify(self._ttl_heap)
        self._last_seq = last_seq
        self._last_ts = self._msgs[seqs[-1]].ts if self._last_live() else 0
        # _max_ts and _ts_sorted may stay as they were: at worst age expiry looks further.

    # Reading

    def load(self, seq: int) -> StoredMessage | None:
        self._check_open()
        return self._msgs.get(seq)

    def load_next(self, start_seq: int, filters: tuple[str, ...] = (ALL,)) -> StoredMessage | None:
        self._check_open()
        match = self._matches(filters)
        for msg in self._live_from(start_seq):
            if match is None or match(msg.subject):
                return msg
        return None

    def load_batch(self, start_seq: int, filters: tuple[str, ...] = (ALL,), max_msgs: int = 256,
                   max_bytes: int = 0) -> list[StoredMessage]:
        self._check_open()
        out: list[StoredMessage] = []
        if max_msgs <= 0:
            return out
        match = self._matches(filters)
        decided: dict[str, bool] = {}  # the match decision per subject, taken once
        seqs, msgs = self._seqs, self._msgs
        used = 0
        for i in range(max(self._head, bisect_left(seqs, start_seq)), len(seqs)):
            msg = msgs.get(seqs[i])
            if msg is None:
                continue
            if match is not None:
                ok = decided.get(msg.subject)
                if ok is None:
                    ok = decided[msg.subject] = match(msg.subject)
                if not ok:
                    continue
            if max_bytes > 0:
                used += len(msg.subject) + len(msg.hdr) + len(msg.data)
                if used > max_bytes and out:
                    break
            out.append(msg)
            if len(out) >= max_msgs:
                break
        return out

    def load_last(self, filters: tuple[str, ...] = (ALL,)) -> StoredMessage | None:
        self._check_open()
        match = self._matches(filters)
        if match is None:
            return self._msgs[self._seqs[-1]] if self._msgs and self._last_live() else None
        best = 0
        for subject, seqs in self._by_subject.items():
            if match(subject):
                best = max(best, next(reversed(seqs)))
        return self._msgs.get(best) if best else None

    def _last_live(self) -> bool:
        seqs = self._seqs
        while len(seqs) > self._head and seqs[-1] not in self._msgs:
            seqs.pop()
        return len(seqs) > self._head

    def last_seq_for(self, subject: str) -> int:
        self._check_open()
        seqs = self._by_subject.get(subject)
        return next(reversed(seqs)) if seqs else 0

    def num_pending(self, start_seq: int, filters: tuple[str, ...] = (ALL,),
                    last_per_subject: bool = False) -> int:
        self._check_open()
        match = self._matches(filters)
        if last_per_subject:
            return sum(1 for subject, seqs in self._by_subject.items()
                       if (match is None or match(subject)) and next(reversed(seqs)) >= start_seq)
        if start_seq <= self._first():
            if match is None:
                return len(self._msgs)
            return sum(len(s) for subj, s in self._by_subject.items() if match(subj))
        return sum(1 for m in self._live_from(start_seq) if match is None or match(m.subject))

    @property
    def first_seq(self) -> int:
        return self._first()

    @property
    def last_seq(self) -> int:
        return self._last_seq

    @property
    def msgs(self) -> int:
        return len(self._msgs)

    def msg_size(self, subject: str, hdr: bytes, data: bytes) -> int:
        return memory_msg_size(subject_len(subject), len(hdr), len(data))

    def state(self) -> StoreState:
        self._check_open()
        first = self._first()
        msgs = len(self._msgs)
        return StoreState(
            msgs=msgs, bytes=self._bytes, first_seq=first,
            first_ts=self._msgs[first].ts if msgs else 0,
            last_seq=self._last_seq, last_ts=self._last_ts,
            num_deleted=(self._last_seq - first + 1 - msgs) if msgs else 0,
            num_subjects=len(self._by_subject))

    def subjects(self, filter: str = ALL) -> dict[str, int]:
        self._check_open()
        match = self._matches(filter)
        return {s: len(seqs) for s, seqs in sorted(self._by_subject.items())
                if match is None or match(s)}

    def deleted(self) -> list[int]:
        self._check_open()
        if not self._msgs:
            return []
        return [s for s in range(self._first(), self._last_seq + 1) if s not in self._msgs]

    # Durability and lifecycle

    def begin_sync(self) -> SyncJob | None:
        return None

    def finish_sync(self, job: SyncJob) -> None:
        return None

    def close(self) -> None:
        self._closed = True

    def destroy(self) -> None:
        self._msgs.clear()
        self._seqs = []
        self._by_subject.clear()
        self._closed = True
