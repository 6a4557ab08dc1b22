"""Answering reads from the index and the segments: `Reader`, and the subject index lookups.

Damaged records are never served: `load()` raises CorruptRecord and `state().damaged` lists
them; `load_next`/`load_last` raise CorruptRecord when the answer could lie in a damaged range. A
record that fails verification when it is read is marked damaged (`StoreIndex.mark_damaged`).

`load_batch` picks the entries from the segment index first (live flags, which local subjects
match, sizes for `max_bytes`; segments whose subject summary has no live match are skipped), then
reads them with one read per stretch of a segment (`SegmentReader.fetch`) and decodes them in one
loop. A record that fails there is read again alone, as `load` would; if it still fails it is
marked damaged and the batch ends before it (see `MessageStore.load_batch`).

Filters are normalised once per distinct tuple (`subjects.normalized`), and matched against the
subject table once per subject (`SubjectTable.matching`) and per segment (`Segment.live_locals`).
"""

from __future__ import annotations

import logging
import zlib
from bisect import bisect_right
from collections.abc import Sequence

from storage import record
from storage.filestore.index import StoreIndex
from storage.filestore.segreader import BATCH_GAP, BATCH_SPAN, SegmentReader
from storage.record import READ_SLACK, BadRecord
from storage.segment import DAMAGED, DELETED, LIVE, Segment
from storage.store import (
    ALL,
    FILE_HDR_OVERHEAD,
    FILE_MSG_OVERHEAD,
    CorruptRecord,
    StoredMessage,
    StoreState,
    new_message,
)
from storage.subjects import normalize, normalized

log = logging.getLogger("storage")

_HEADER_SIZE = record.HEADER_SIZE
_TTL_SIZE = record.TTL_SIZE
_CRC_SIZE = record.CRC_SIZE


# ---------------------------------------------------------------------------------------------
# Subject index lookups (also used by retention)


def find_local(seg: Segment, local: int, start: int) -> int:
    """The first live entry at or after `start` with this local subject id, or -1."""
    sids, flags = seg.sids, seg.flags
    i = start
    while True:
        try:
            i = sids.index(local, i)
        except ValueError:
            return -1
        if flags[i] == LIVE:
            return i
        i += 1


def first_of(ix: StoreIndex, gid: int) -> tuple[Segment, int] | None:
    """The oldest live message of a subject, starting from its lower bound."""
    subs = ix.subjects
    lower = subs.first[gid]
    loc = ix.locate(lower)
    if loc is not None:
        seg, i = loc
        if seg.flags[i] == LIVE and seg.lsub_gid[seg.sids[i]] == gid:
            return loc
    k = max(0, bisect_right(ix.bases, lower) - 1)
    for seg in ix.segs[k:]:
        local = seg.local(gid)
        if local is None or not seg.lsub_live[local]:
            continue
        i = find_local(seg, local, seg.lower(lower))
        if i >= 0:
            subs.first[gid] = seg.seqs[i]
            return seg, i
    return None


def next_of_subject(ix: StoreIndex, gid: int, start: int) -> tuple[Segment, int] | None:
    """The first live message of a subject with seq >= start."""
    subs = ix.subjects
    from_first = start <= subs.first[gid]
    start = max(start, subs.first[gid])
    k = max(0, bisect_right(ix.bases, start) - 1)
    for seg in ix.segs[k:]:
        local = seg.local(gid)
        if local is None or not seg.lsub_live[local]:
            continue
        j = find_local(seg, local, seg.lower(start))
        if j >= 0:
            if from_first:
                subs.first[gid] = seg.seqs[j]
            return seg, j
    return None


def exact_last(ix: StoreIndex, gid: int) -> int:
    """The newest live seq of a subject (count must be > 0)."""
    subs = ix.subjects
    if gid not in subs.stale_last:
        return subs.last[gid]
    upper = subs.last[gid]
    k = bisect_right(ix.bases, upper) - 1
    for seg in reversed(ix.segs[:k + 1]):
        local = seg.local(gid)
        if local is None or not seg.lsub_live[local]:
            continue
        sids, flags = seg.sids, seg.flags
        for i in range(len(flags) - 1, -1, -1):
            if flags[i] == LIVE and sids[i] == local:
                subs.last[gid] = seg.seqs[i]
                subs.stale_last.discard(gid)
                return seg.seqs[i]
    log.error("store %s: subject %s has a count but no message", ix.name, subs.names[gid])
    return 0


def wanted(seg: Segment, norm: tuple[str, ...], gids: set[int]) -> list[int]:
    """The local subject ids of `seg` matching `norm` (`gids`) that have live messages."""
    return [x for x in seg.live_locals(norm, gids.__contains__) if seg.lsub_live[x]]


# ---------------------------------------------------------------------------------------------
# Reads


class Reader:
    """The reads of `MessageStore`, over the index `ix`, reading bytes through `io`."""

    def __init__(self, ix: StoreIndex, io: SegmentReader) -> None:
        self.ix = ix
        self.io = io

    def decode(self, seg: Segment, i: int) -> StoredMessage:
        """The message of live entry `i`, verified; CorruptRecord (and the entry marked
        damaged) when its record fails verification even when read again alone."""
        seq = seg.seqs[i]
        subs = self.ix.subjects
        gid = seg.lsub_gid[seg.sids[i]]
        name, raw = subs.names[gid], subs.raw[gid]
        io = self.io
        try:
            buf, pos = io.fetch(seg, seg.offs[i], seg.sizes[i] + READ_SLACK)
            return record.decode_at(buf, pos, seq, name, raw)
        except (BadRecord, OSError):
            pass
        # Read it again on its own, whole and fresh (not from the kept block), to be sure.
        io.block = None
        try:
            return record.decode_at(io.record_bytes(seg, i), 0, seq, name, raw)
        except (BadRecord, OSError) as e:
            detail = str(e)
        log.error("store %s: message %d in segment %d fails verification (%s); not serving it",
                  self.ix.name, seq, seg.id, detail)
        self.ix.mark_damaged(seg, i)
        raise CorruptRecord(seq, detail)

    def load(self, seq: int) -> StoredMessage | None:
        ix = self.ix
        loc = ix.locate(seq)
        if loc is None:
            if ix.damaged and seq in ix.damaged:
                raise CorruptRecord(seq)
            return None
        seg, i = loc
        flag = seg.flags[i]
        if flag == LIVE:
            return self.decode(seg, i)
        if flag == DAMAGED:
            raise CorruptRecord(seq)
        return None

    def load_batch(self, start_seq: int, filters: tuple[str, ...], max_msgs: int,
                   max_bytes: int) -> list[StoredMessage]:
        ix = self.ix
        out: list[StoredMessage] = []
        start = max(start_seq, ix.floor())
        if max_msgs <= 0 or start > ix.last_seq:
            return out
        norm = normalized(filters)
        gids = None if norm is None else ix.subjects.matching(norm)
        stop = ix.last_seq + 1  # candidates lie below it: the end, or the first damaged seq
        damaged = ix.damaged.first_at_or_after(start) if ix.damaged else None
        if damaged is not None:
            stop = damaged
        used = 0  # the sizes of `out`, when max_bytes
        segs = ix.segs if gids is None or gids else []  # no subject matches: none to read
        for k in range(max(0, bisect_right(ix.bases, start) - 1), len(segs)):
            seg = segs[k]
            if seg.base >= stop:
                break
            if not seg.live:
                continue
            matched = single = None
            if gids is not None:
                assert norm is not None  # gids is set exactly when norm is
                matched = seg.live_locals(norm, gids.__contains__)
                lsub_live = seg.lsub_live
                if len(matched) == len(seg.lsub_gid):
                    matched = None  # every subject of the segment matches
                elif len(matched) == 1:
                    (single,) = matched
                    if not lsub_live[single]:
                        continue
                elif not any(lsub_live[x] for x in matched):
                    continue
            sel = _select(seg, start, stop, matched, single, max_msgs - len(out))
            if not sel:
                continue
            full = len(out) + len(sel) >= max_msgs
            if max_bytes > 0:
                cut, used = self._within_bytes(seg, sel, max_bytes, used, not out)
                if cut < len(sel):
                    sel, full = sel[:cut], True
            error = self._decode_batch(seg, sel, out)
            if error is not None:
                if not out:
                    raise error
                return out
            if full:
                return out
        if not out and damaged is not None:
            raise CorruptRecord(damaged, "the next message may be in a damaged range")
        return out

    def _within_bytes(self, seg: Segment, sel: Sequence[int], max_bytes: int, used: int,
                      first: bool) -> tuple[int, int]:
        """How many of the entries `sel` fit in max_bytes of `StoredMessage.size` on top of
        `used` (the first message of a batch always does), and the new total."""
        sizes, hdrs = seg.sizes, seg.hdrs
        subs = self.ix.subjects
        extra = subs.extra if subs.any_extra else None
        sids, lsub_gid = seg.sids, seg.lsub_gid
        for p, j in enumerate(sel):
            # file_msg_size without its overheads, and the subject in characters
            size = sizes[j] - FILE_MSG_OVERHEAD - (FILE_HDR_OVERHEAD if hdrs[j] else 0)
            if extra is not None:
                size -= extra[lsub_gid[sids[j]]]
            if used + size > max_bytes and not (first and p == 0):
                return p, used
            used += size
        return len(sel), used

    def _decode_batch(self, seg: Segment, sel: Sequence[int],
                      out: list[StoredMessage]) -> CorruptRecord | None:
        """Append the messages of entries `sel` (ascending) to `out`, reading neighbouring
        records with one read. Stops at a record that fails verification: `decode` marks it
        damaged, and its CorruptRecord is returned."""
        offs, sizes, seqs = seg.offs, seg.sizes, seg.seqs
        sids, lsub_gid = seg.sids, seg.lsub_gid
        subs = self.ix.subjects
        names, raws = subs.names, subs.raw
        fetch = self.io.fetch
        unpack, unpack_ttl, unpack_crc = (record.HEADER.unpack_from, record.TTL.unpack_from,
                                          record.CRC.unpack_from)
        crc32, make, append = zlib.crc32, new_message, out.append
        kind_msg, f_ttl = record.KIND_MSG, record.F_TTL
        n = len(sel)
        p = 0
        while p < n:
            i = sel[p]
            lo = offs[i]
            hi = lo + sizes[i] + READ_SLACK
            q = p + 1
            while q < n:  # extend the read over the next records while they are near
                j = sel[q]
                o = offs[j]
                e = o + sizes[j] + READ_SLACK
                if o - hi >= BATCH_GAP or e - lo > BATCH_SPAN:
                    break
                hi = e
                q += 1
            try:
                buf, base = fetch(seg, lo, hi - lo, ahead=False)
            except OSError:
                buf, base = b"", 0  # each record is read again on its own below
            size = len(buf)
            with memoryview(buf) as view:
                for r in range(p, q):
                    i = sel[r]
                    o = offs[i] - lo + base
                    seq = seqs[i]
                    # record.decode_at, inlined
                    if o + _HEADER_SIZE <= size:
                        kind, flags, s, h, d, rseq, ts = unpack(buf, o)
                        body = o + _HEADER_SIZE
                        ttl = 0
                        if flags == f_ttl and body + _TTL_SIZE <= size:
                            ttl = unpack_ttl(buf, body)[0]
                            body += _TTL_SIZE
                            flags = 0
                        b = body + s
                        c = b + h
                        e = c + d
                        if (not flags and kind == kind_msg and rseq == seq
                                and e + _CRC_SIZE <= size
                                and crc32(view[o:e]) == unpack_crc(buf, e)[0]):
                            gid = lsub_gid[sids[i]]
                            raw = raws[gid]
                            if s == len(raw) and buf.startswith(raw, body):
                                subject = names[gid]
                            else:
                                subject = buf[body:b].decode()
                            append(make(seq, subject, buf[b:c] if h else b"", buf[c:e], ts, ttl))
                            continue
                    try:  # not whole in this read, or damaged: as load() would
                        append(self.decode(seg, i))
                    except CorruptRecord as exc:
                        return exc
            p = q
        return None

    def _next_entry(self, start: int, norm: tuple[str, ...] | None) -> tuple[Segment, int] | None:
        ix = self.ix
        k = max(0, bisect_right(ix.bases, start) - 1)
        if norm is None:
            for seg in ix.segs[k:]:
                if seg.live:
                    j = seg.flags.find(LIVE, seg.lower(start))
                    if j >= 0:
                        return seg, j
            return None
        gids = ix.subjects.matching(norm)
        if len(norm) == 1 and len(gids) <= 1:
            gid = next(iter(gids), None)
            if gid is None or not ix.subjects.count[gid]:
                return None
            return next_of_subject(ix, gid, start)
        for seg in ix.segs[k:]:
            if not seg.live:
                continue
            want = wanted(seg, norm, gids)
            if not want:
                continue
            i = seg.lower(start)
            if len(want) == 1:
                j = find_local(seg, want[0], i)
                if j >= 0:
                    return seg, j
                continue
            sids, flags, wanted_set = seg.sids, seg.flags, set(want)
            for j in range(i, len(flags)):
                if flags[j] == LIVE and sids[j] in wanted_set:
                    return seg, j
        return None

    def load_next(self, start_seq: int, filters: tuple[str, ...]) -> StoredMessage | None:
        ix = self.ix
        start = max(start_seq, ix.floor())
        if start > ix.last_seq:
            return None
        found = self._next_entry(start, normalized(filters))
        if ix.damaged:
            d = ix.damaged.first_at_or_after(start)
            if d is not None and (found is None or d < found[0].seqs[found[1]]):
                raise CorruptRecord(d, "the next message may be in a damaged range")
        if found is None:
            return None
        return self.decode(*found)

    def load_last(self, filters: tuple[str, ...]) -> StoredMessage | None:
        ix = self.ix
        norm = normalized(filters)
        seq = 0
        if norm is None:
            for seg in reversed(ix.segs):
                if seg.live:
                    seq = seg.seqs[seg.flags.rfind(LIVE)]
                    break
        else:
            subs = ix.subjects
            for gid in subs.matching(norm):
                if subs.count[gid]:
                    seq = max(seq, exact_last(ix, gid))
        if ix.damaged:
            for lo, hi in reversed(ix.damaged.ranges()):
                if hi > seq:
                    raise CorruptRecord(max(lo, seq + 1), "the last message may be damaged")
        if not seq:
            return None
        return self.load(seq)

    def last_seq_for(self, subject: str) -> int:
        ix = self.ix
        gid = ix.subjects.ids.get(subject)
        if gid is None or not ix.subjects.count[gid]:
            return 0
        return exact_last(ix, gid)

    def num_pending(self, start_seq: int, filters: tuple[str, ...],
                    last_per_subject: bool) -> int:
        ix = self.ix
        subs = ix.subjects
        start = max(start_seq, ix.first)
        if start > ix.last_seq:
            return 0
        norm = normalized(filters)
        gids = None if norm is None else subs.matching(norm)
        if last_per_subject:
            pool = range(len(subs.count)) if gids is None else gids
            return sum(1 for g in pool if subs.count[g] and (
                subs.last[g] >= start and exact_last(ix, g) >= start))
        if start <= ix.first:
            return ix.msgs if gids is None else sum(subs.count[g] for g in gids)
        total = 0
        k = max(0, bisect_right(ix.bases, start) - 1)
        for seg in ix.segs[k:]:
            if not seg.live:
                continue
            i = seg.lower(start)
            if gids is None:
                total += seg.live if i == 0 else seg.flags.count(LIVE, i)
                continue
            assert norm is not None  # gids is set exactly when norm is
            want = wanted(seg, norm, gids)
            if not want:
                continue
            if i == 0:
                total += sum(seg.lsub_live[x] for x in want)
                continue
            sids, flags, wanted_set = seg.sids, seg.flags, set(want)
            total += sum(1 for j in range(i, len(flags))
                         if flags[j] == LIVE and sids[j] in wanted_set)
        return total

    def state(self) -> StoreState:
        ix = self.ix
        first = ix.floor()
        first_ts = 0
        if ix.msgs:
            loc = ix.locate(ix.first)
            if loc is not None:
                first_ts = loc[0].tss[loc[1]]
        span = ix.last_seq - first + 1
        damaged = ix.damaged.count()
        return StoreState(
            msgs=ix.msgs, bytes=ix.bytes, first_seq=first, first_ts=first_ts,
            last_seq=ix.last_seq, last_ts=ix.last_ts,
            num_deleted=max(0, span - ix.msgs - damaged) if span > 0 else 0,
            num_subjects=ix.subjects.nsubj, damaged=ix.damaged.ranges())

    def subjects(self, filter: str = ALL) -> dict[str, int]:
        subs = self.ix.subjects
        norm = normalize(filter)
        pool = range(len(subs.count)) if norm is None else sorted(subs.matching(norm))
        return {subs.names[g]: subs.count[g] for g in pool if subs.count[g]}

    def deleted(self) -> list[int]:
        ix = self.ix
        first, last = ix.floor(), ix.last_seq
        out: list[int] = []
        prev = first - 1
        for seg in ix.segs:
            seqs, flags = seg.seqs, seg.flags
            for i in range(seg.lower(first), len(seqs)):
                seq = seqs[i]
                if seq > last:
                    break
                out.extend(range(prev + 1, seq))
                if flags[i] == DELETED:
                    out.append(seq)
                prev = seq
        out.extend(range(prev + 1, last + 1))
        if ix.damaged:
            out = [s for s in out if s not in ix.damaged]
        return out


def _select(seg: Segment, start: int, stop: int, matched: frozenset[int] | None,
            single: int | None, want: int) -> Sequence[int]:
    """Indices of up to `want` live entries of `seg` with start <= seq < stop, in order:
    all of them (matched None), those of local subject `single`, or those whose local
    subject is in `matched`."""
    seqs, flags = seg.seqs, seg.flags
    i = seg.lower(start)
    end = len(seqs) if seqs[-1] < stop else seg.lower(stop)
    if i >= end:
        return ()
    if matched is None:
        if flags.count(DELETED, i, min(end, i + want)) == 0 and \
                flags.count(DAMAGED, i, min(end, i + want)) == 0:
            return range(i, min(end, i + want))  # the common case: all live
        out: list[int] = []
        while want > 0:  # runs of live entries
            i = flags.find(LIVE, i, end)
            if i < 0:
                break
            w = min(end - i, want)
            run = w - len(flags[i:i + w].lstrip(b"\x00"))
            out.extend(range(i, i + run))
            want -= run
            i += run
        return out
    sids = seg.sids
    out = []
    if single is not None:
        while len(out) < want:
            try:
                i = sids.index(single, i, end)
            except ValueError:
                break
            if flags[i] == LIVE:
                out.append(i)
            i += 1
        return out
    for j in range(i, end):
        if flags[j] == LIVE and sids[j] in matched:
            out.append(j)
            if len(out) >= want:
                break
    return out
