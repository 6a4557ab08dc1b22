"""One segment file's in-memory index: compact arrays, no Python object per message.

Per message (entry) a segment keeps, in `array`s: seq (u64), file offset (u32), size (u32, what
counts in the store's bytes and against byte limits: `storage.store.file_msg_size`), timestamp
(i64), local subject id (u8/u16/u32, widened on demand), one flag byte (0 live, 1 deleted,
2 damaged) and one byte saying whether the message has headers (with the ttl, it turns the size
into the record's length on disk, which compaction needs): 27 to 30 bytes. Subjects are numbered
per segment ("local ids"); `lsub_gid` maps them to the store's global subject ids, and
`lsub_live` counts the live messages of each, which is the per-segment subject summary that lets
filtered scans skip a segment and lets whole segments be dropped without touching their entries.

A segment also remembers the markers its file holds (tombstones, the highest purge floor) and the
ttl of messages that have one, because recovery replays them.

A framed (compressed) segment (`frames` set, `storage.framing`) has the same entries: offsets are
logical, into the bytes the frames decompress to; `size` is its file's length.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left

from storage.durable import AppendFile
from storage.framing import FrameTable
from storage.record import SegmentHeader

LIVE, DELETED, DAMAGED = 0, 1, 2
_WIDER = {"B": ("H", 0xFF), "H": ("I", 0xFFFF)}


class Segment:
    __slots__ = (
        "base", "compacting", "compress", "erase_later", "erase_owed", "expire_pos", "file",
        "flags", "frames", "gaps", "hdrs", "header", "id", "index_queued", "indexed", "live",
        "live_bytes", "lmap", "lsub_first",
        "lsub_gid", "lsub_last", "lsub_live", "lsub_total", "mark_floor", "mark_last_seq",
        "mark_last_ts", "match_cache", "max_seq", "max_seq_ts", "max_ts", "min_ts", "names", "offs",
        "path", "pin_fd", "sealed", "seqs", "sids", "size", "sizes", "tombs", "ts_sorted", "tss",
        "ttl_exps", "ttl_seqs",
    )

    def __init__(self, seg_id: int, path: str, header: SegmentHeader) -> None:
        self.id = seg_id
        self.path = path
        self.header = header
        self.base = header.next_seq  # every seq in this file is >= base (and < the next's base)
        self.file: AppendFile | None = None  # open for writing while active or not yet durable
        self.size = 0  # file length, including bytes not yet written
        # A framed (compressed) segment's frames; None for a plain one. Offsets (`offs`) are
        # logical: the same for both (see `storage.framing`), the file length is `size`.
        self.frames: FrameTable | None = None
        self.compress = False  # to be compressed once sealed and durable
        self.erase_owed = False  # framed: an erased record waits for a rewrite (compaction)
        self.seqs = array("Q")
        self.offs = array("I")
        self.sizes = array("I")
        self.tss = array("q")
        self.sids = array("B")
        self.flags = bytearray()
        self.hdrs = bytearray()  # 1: the message has headers
        self.lsub_gid = array("I")  # local subject id -> global id
        self.lsub_live = array("I")  # live messages per local subject
        self.lsub_total = array("I")  # message records per local subject (what the file holds)
        self.lsub_first = array("Q")  # first / last seq per local subject among the records
        self.lsub_last = array("Q")
        self.lmap: dict[int, int] | None = {}  # global -> local; built lazily for sealed ones
        self.names: list[str] | None = None  # local subject names, between loading and interning
        self.tombs = array("Q")  # sequences deleted by DEL records in this file
        self.mark_floor = 0  # highest PURGE floor recorded in this file
        self.mark_last_seq = 0  # last_seq / last_ts recorded with that PURGE
        self.mark_last_ts = 0
        self.max_seq = 0  # highest message seq in this file (ERASED records included)
        self.max_seq_ts = 0
        self.ttl_seqs = array("Q")
        self.ttl_exps = array("q")
        # Damaged stretches found by scanning: (last good seq before, first good seq after);
        # None where the stretch touches the segment's start or end.
        self.gaps: list[tuple[int | None, int | None]] = []
        self.live = 0
        self.live_bytes = 0
        self.min_ts = 1 << 63  # a lower bound of the live messages' timestamps
        self.max_ts = -(1 << 63)
        self.ts_sorted = True
        self.sealed = False
        self.indexed = False  # its persisted index is durable and current
        self.index_queued = False
        self.expire_pos = 0  # entries before it are known to be gone (age expiry resumes here)
        self.match_cache: dict[tuple[str, ...], tuple[int, frozenset[int]]] = {}
        # While a compaction rewrites the file: an fd on the old file for reads, and erasures
        # to redo on the new file.
        self.compacting = False
        self.pin_fd: int | None = None
        self.erase_later: list[int] = []

    # Appending

    def add(self, seq: int, off: int, size: int, ts: int, gid: int, has_hdr: int) -> None:
        """Append a live entry for global subject `gid`."""
        lmap = self.lmap
        local = lmap.get(gid) if lmap is not None else self.local(gid)
        if local is None:
            local = self._new_local(gid, seq)
        self.append_entry(seq, off, size, ts, local, has_hdr)

    def append_entry(self, seq: int, off: int, size: int, ts: int, local: int,
                     has_hdr: int) -> None:
        self.seqs.append(seq)
        self.offs.append(off)
        self.sizes.append(size)
        self.tss.append(ts)
        self.sids.append(local)
        self.flags.append(LIVE)
        self.hdrs.append(has_hdr)
        self.lsub_live[local] += 1
        self.lsub_total[local] += 1
        self.lsub_last[local] = seq
        self.live += 1
        self.live_bytes += size
        if ts < self.min_ts:
            self.min_ts = ts
        if ts >= self.max_ts:
            self.max_ts = ts
        else:
            self.ts_sorted = False
        self.max_seq = seq
        self.max_seq_ts = ts

    def _new_local(self, gid: int, seq: int) -> int:
        local = len(self.lsub_gid)
        widen = _WIDER.get(self.sids.typecode)
        if widen is not None and local > widen[1]:
            self.sids = array(widen[0], self.sids)
        self.lsub_gid.append(gid)
        self.lsub_live.append(0)
        self.lsub_total.append(0)
        self.lsub_first.append(seq)
        self.lsub_last.append(seq)
        if self.lmap is not None:
            self.lmap[gid] = local
        self.match_cache.clear()
        return local

    # Looking up

    def local(self, gid: int) -> int | None:
        if self.lmap is None:
            self.lmap = {g: i for i, g in enumerate(self.lsub_gid)}
        return self.lmap.get(gid)

    def find(self, seq: int) -> int:
        """The entry index of `seq`, or -1."""
        seqs = self.seqs
        n = len(seqs)
        if not n:
            return -1
        i = seq - seqs[0]
        if 0 <= i < n and seqs[i] == seq:
            return i
        i = bisect_left(seqs, seq)
        return i if i < n and seqs[i] == seq else -1

    def lower(self, seq: int) -> int:
        """The index of the first entry with seq >= `seq`."""
        seqs = self.seqs
        if not seqs or seq <= seqs[0]:
            return 0
        i = seq - seqs[0]
        if i < len(seqs) and seqs[i] == seq:
            return i
        return bisect_left(seqs, seq)

    @property
    def logical_size(self) -> int:
        """The length of the segment's logical bytes (the file's, unless it is framed)."""
        return self.size if self.frames is None else self.frames.end

    def last_entry_seq(self) -> int:
        return self.seqs[-1] if self.seqs else 0

    def live_locals(self, match_key: tuple[str, ...], accept) -> frozenset[int]:
        """Local ids whose subject `accept(gid)` says match; cached per filter key."""
        cached = self.match_cache.get(match_key)
        n = len(self.lsub_gid)
        if cached is not None and cached[0] == n:
            return cached[1]
        found = frozenset(i for i, gid in enumerate(self.lsub_gid) if accept(gid))
        self.match_cache[match_key] = (n, found)
        return found

    def live_entries(self) -> list[int]:
        """Indices of live entries (a Python loop; used off the hot path)."""
        flags = self.flags
        out = []
        i = flags.find(LIVE)
        while i >= 0:
            out.append(i)
            i = flags.find(LIVE, i + 1)
        return out

    def recompute_live(self) -> None:
        """Recount live messages, bytes and per-subject live counts from the flags."""
        live_counts = array("I", bytes(4 * len(self.lsub_total)))
        live = 0
        live_bytes = 0
        sizes, sids = self.sizes, self.sids
        min_ts = 1 << 63
        tss = self.tss
        for i in self.live_entries():
            live += 1
            live_bytes += sizes[i]
            live_counts[sids[i]] += 1
            if tss[i] < min_ts:
                min_ts = tss[i]
        self.live = live
        self.live_bytes = live_bytes
        self.lsub_live = live_counts
        self.min_ts = min_ts
