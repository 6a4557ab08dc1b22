"""Messages leaving the store on request or by rule: `remove`, `purge`, expiry (max_age and
per-message ttls) and the limits (max_msgs, max_bytes, max_msgs_per_subject; discard-old).

Everything here changes only the index (`StoreIndex.delete_at` / `drop_whole`): a removal marks
the entry in memory and owes the disk a tombstone, and removals at the front only advance the
floor. The next sync writes them as markers (`syncplan`). Whole segments go at once when every
live message of one goes (per-subject counts make that cheap), and front segments left without
live messages are retired. `remove(erase=True)` also has the record overwritten on disk, once
the removal is durable (`SyncPlanner.erase`).
"""

from __future__ import annotations

import heapq
import logging
from array import array
from bisect import bisect_right
from collections.abc import Callable

from storage.filestore.index import StoreIndex
from storage.filestore.reading import first_of
from storage.ranges import RangeSet
from storage.segment import DAMAGED, DELETED, LIVE, Segment
from storage.store import StoreConfig
from storage.subjects import normalize

log = logging.getLogger("storage")


def remove(ix: StoreIndex, seq: int, erase: Callable[[Segment, int], None] | None) -> bool:
    """`MessageStore.remove`; `erase(seg, i)` when the record must be overwritten too."""
    loc = ix.locate(seq)
    if loc is None:
        if seq in ix.damaged:  # accept the loss of a damaged record: it is gone now
            ix.forget_damage(seq, seq)
            return True
        return False
    seg, i = loc
    flag = seg.flags[i]
    if flag == DELETED:
        return False
    if flag == DAMAGED:
        seg.flags[i] = DELETED
        ix.forget_damage(seq, seq)
        return True
    if erase is not None:
        erase(seg, i)
    ix.delete_at(seg, i)
    ix.drop_dead_front()
    return True


# Purging


def purge(ix: StoreIndex, subject: str | None, seq: int, keep: int) -> int:
    """`MessageStore.purge`."""
    norm = normalize(subject)
    if norm is None and not seq and keep <= 0:
        return purge_all(ix)
    limit = None
    if keep > 0:
        subs = ix.subjects
        total = ix.msgs if norm is None else sum(subs.count[g] for g in subs.matching(norm))
        if keep >= total:
            return 0
        limit = total - keep
    below = seq if seq > 0 else None
    if norm is None and below is not None and ix.damaged:
        ix.forget_damage(0, below - 1)
    removed = _remove_matching(ix, norm, below, limit)
    ix.drop_dead_front()
    return removed


def purge_all(ix: StoreIndex) -> int:
    """Remove every message (and accept the loss of every damaged one); numbering stays."""
    n = ix.msgs
    if ix.damaged:
        ix.damaged = RangeSet()
    for seg in ix.segs:
        ix.drop_whole(seg)
    ix.pending_tombs = array("Q")
    ix.first = ix.last_seq + 1
    ix.drop_dead_front()
    return n


def _remove_matching(ix: StoreIndex, norm: tuple[str, ...] | None, below: int | None,
                     limit: int | None) -> int:
    """Remove live messages matching `norm`, oldest first, with seq < below, at most limit."""
    removed = 0
    gids = None if norm is None else ix.subjects.matching(norm)
    for seg in list(ix.segs):
        if limit is not None and removed >= limit:
            break
        if below is not None and seg.base >= below:
            break
        if not seg.live:
            continue
        if gids is None:
            locals_all = True
            wanted = None
        else:
            assert norm is not None  # gids is set exactly when norm is
            wanted = seg.live_locals(norm, gids.__contains__)
            if not any(seg.lsub_live[x] for x in wanted):
                continue
            locals_all = all(x in wanted for x in range(len(seg.lsub_gid)) if seg.lsub_live[x])
        whole = (locals_all and (below is None or seg.last_entry_seq() < below)
                 and (limit is None or seg.live <= limit - removed))
        if whole:
            removed += ix.drop_whole(seg)
            continue
        removed += _remove_in_segment(ix, seg, wanted, below,
                                      None if limit is None else limit - removed)
    return removed


def _remove_in_segment(ix: StoreIndex, seg: Segment, wanted: frozenset[int] | None,
                       below: int | None, limit: int | None) -> int:
    removed = 0
    seqs, sids, flags = seg.seqs, seg.sids, seg.flags
    for i in seg.live_entries():
        if below is not None and seqs[i] >= below:
            break
        if limit is not None and removed >= limit:
            break
        if flags[i] != LIVE or (wanted is not None and sids[i] not in wanted):
            continue
        ix.delete_at(seg, i)
        removed += 1
    return removed


# Expiry


def expire(ix: StoreIndex, now: int, max_age: int) -> int:
    """`MessageStore.expire`: messages older than `max_age` (when > 0) and past their ttl."""
    removed = 0
    if max_age > 0:
        removed += _expire_age(ix, now - max_age)
    heap = ix.ttl_heap
    while heap and heap[0][0] <= now:
        _, seq = heapq.heappop(heap)
        loc = ix.locate(seq)
        if loc is not None and loc[0].flags[loc[1]] == LIVE:
            ix.delete_at(*loc)
            removed += 1
    ix.drop_dead_front()
    return removed


def _expire_age(ix: StoreIndex, cutoff: int) -> int:
    """Remove every live message with ts <= cutoff."""
    removed = 0
    for seg in list(ix.segs):
        if not seg.live or seg.min_ts > cutoff:
            continue
        if seg.max_ts <= cutoff:
            removed += ix.drop_whole(seg)
            continue
        tss = seg.tss
        if seg.ts_sorted:
            end = bisect_right(tss, cutoff)
            for i in range(seg.expire_pos, end):
                if seg.flags[i] == LIVE:
                    ix.delete_at(seg, i)
                    removed += 1
            seg.expire_pos = end
            seg.min_ts = tss[end] if end < len(tss) else seg.min_ts
            continue
        min_ts = 1 << 63
        for i in seg.live_entries():
            if tss[i] <= cutoff:
                ix.delete_at(seg, i)
                removed += 1
            elif tss[i] < min_ts:
                min_ts = tss[i]
        seg.min_ts = min_ts
    return removed


# Limits


def is_limited(cfg: StoreConfig) -> bool:
    """Whether storing a message may have to drop others (`enforce_after_store` is needed)."""
    return cfg.max_msgs > 0 or cfg.max_bytes > 0 or cfg.max_msgs_per_subject > 0


def enforce_after_store(ix: StoreIndex, cfg: StoreConfig, gid: int) -> None:
    """The limits, after one message of subject `gid` was stored."""
    mps = cfg.max_msgs_per_subject
    if mps > 0 and ix.subjects.count[gid] > mps:
        _trim_subject(ix, gid, mps)
    if cfg.max_msgs > 0 and ix.msgs > cfg.max_msgs:
        _drop_front(ix, count=ix.msgs - cfg.max_msgs)
    if cfg.max_bytes > 0 and ix.bytes > cfg.max_bytes:
        _drop_front(ix, max_bytes=cfg.max_bytes)
    ix.drop_dead_front()


def enforce_all(ix: StoreIndex, cfg: StoreConfig) -> None:
    """The limits, over the whole store (at open and after a config change)."""
    if cfg.max_msgs_per_subject > 0:
        for gid, count in enumerate(ix.subjects.count):
            if count > cfg.max_msgs_per_subject:
                _trim_subject(ix, gid, cfg.max_msgs_per_subject)
    if cfg.max_msgs > 0 and ix.msgs > cfg.max_msgs:
        _drop_front(ix, count=ix.msgs - cfg.max_msgs)
    if cfg.max_bytes > 0 and ix.bytes > cfg.max_bytes:
        _drop_front(ix, max_bytes=cfg.max_bytes)
    ix.drop_dead_front()


def _drop_front(ix: StoreIndex, count: int = 0, max_bytes: int = 0) -> None:
    """Drop the oldest messages: `count` of them, or until bytes <= max_bytes. Whole
    segments go at once."""
    for seg in list(ix.segs):
        if (count <= 0 and not max_bytes) or (max_bytes and ix.bytes <= max_bytes):
            return
        if not seg.live:
            continue
        if (count and seg.live <= count) or \
                (max_bytes and ix.bytes - seg.live_bytes >= max_bytes):
            count -= ix.drop_whole(seg)
            continue
        flags = seg.flags
        i = flags.find(LIVE)
        while i >= 0:
            ix.delete_at(seg, i)
            count -= 1
            if count <= 0 and not max_bytes:
                return
            if max_bytes and ix.bytes <= max_bytes:
                return
            i = flags.find(LIVE, i + 1)


def _trim_subject(ix: StoreIndex, gid: int, limit: int) -> None:
    subs = ix.subjects
    while subs.count[gid] > limit:
        loc = first_of(ix, gid)
        if loc is None:  # pragma: no cover - counts and entries disagree
            log.error("store %s: subject count out of step", ix.name)
            return
        seg, i = loc
        seq = seg.seqs[i]
        ix.delete_at(seg, i)
        if subs.count[gid] == 1 and gid not in subs.stale_last:
            subs.first[gid] = subs.last[gid]
        else:
            subs.first[gid] = seq + 1
