"""`SegmentReader`: getting a segment's bytes back, with as few syscalls as possible.

* The tail of the active segment stays in memory (its `AppendFile` window, `cache_bytes`, at
  least everything not yet durable), so reading recent messages costs no syscall.
* Sealed segments are read through read-only fds, at most `max_readers` of them open (LRU); a
  segment being compacted is read through the fd pinned on its old file.
* A read that continues the previous one (`load_next` walking a segment) fetches READ_AHEAD
  bytes, and the bytes of the last read are kept for the next (`block`): a record's bytes do not
  change while its segment keeps its header (a compaction writes a new one; an erase drops the
  block). Callers still check every record (CRC, kind, seq) each time they decode it.
* A framed (compressed) segment is read in logical bytes (`storage.framing`): the frames holding
  them are read, verified (header, compressed and decompressed checksums) and decompressed; the
  last FRAME_CACHE decompressed frames are kept, so a reader walking a segment decompresses each
  frame once. A frame that fails verification raises `BadFrame` (an OSError, as a failed read),
  or, when it is not the first frame a read needs, ends the read short (the bytes a record needs
  from the frames before it are still served).
"""

from __future__ import annotations

import os
from collections import OrderedDict

from storage import durable, record
from storage.framing import BadFrame, Codecs, decode_frame
from storage.record import READ_SLACK, SegmentHeader
from storage.segment import Segment

# A read that continues where the previous one ended (a reader walking a segment) fetches
# READ_AHEAD bytes at once; load_batch reads the records it returns from one segment with one
# read per stretch of at most BATCH_SPAN bytes, starting a new read where BATCH_GAP bytes or more
# lie between two of them (a sparse filter). A read kept for reuse is at most KEEP_BLOCK bytes.
READ_AHEAD = 64 << 10
BATCH_SPAN = 1 << 20
BATCH_GAP = 16 << 10
KEEP_BLOCK = 1 << 20
FRAME_CACHE = 8  # decompressed frames kept (32 KiB each by default)


class SegmentReader:
    def __init__(self, max_readers: int) -> None:
        self.max_readers = max_readers
        self.fds: OrderedDict[int, int] = OrderedDict()  # segment id -> read-only fd
        # The last bytes read from a file: (segment, its header, file offset, bytes). Bytes of a
        # record never change while its segment keeps that header (compaction gives a new one),
        # except when it is erased, which drops this.
        self.block: tuple[Segment, SegmentHeader, int, bytes] | None = None
        # Decompressed frames of framed segments: (segment id, generation, frame) -> bytes.
        self.frames: OrderedDict[tuple[int, int, int], bytes] = OrderedDict()
        self.codecs = Codecs()

    def _fd(self, seg: Segment) -> int:
        fd = self.fds.get(seg.id)
        if fd is not None:
            self.fds.move_to_end(seg.id)
            return fd
        fd = durable.open_ro(seg.path)
        self.fds[seg.id] = fd
        if len(self.fds) > self.max_readers:
            _, old = self.fds.popitem(last=False)
            os.close(old)
        return fd

    def read(self, seg: Segment, off: int, n: int) -> bytes:
        if seg.file is not None:
            return seg.file.read(off, n)
        if seg.frames is not None:
            return self._read_framed(seg, off, n)
        if seg.pin_fd is not None:  # being compacted: the old file, whatever its name holds
            return os.pread(seg.pin_fd, n, off)
        return os.pread(self._fd(seg), n, off)

    def _read_framed(self, seg: Segment, off: int, n: int) -> bytes:
        """Logical bytes [off, off+n) of a framed segment (fewer at its end, or before a
        damaged frame that is not the first one needed)."""
        frames = seg.frames
        assert frames is not None
        k = frames.find(off)
        if k < 0:
            raise BadFrame(f"segment {seg.id}: no frame holds offset {off}")
        end = min(off + n, frames.end)
        parts: list[bytes] = []
        pos = off
        while pos < end and k < len(frames.lo):
            lo = frames.lo[k]
            if lo > pos:  # a frame left out (damaged) lies between
                break
            try:
                raw = self._frame(seg, k)
            except BadFrame:
                if parts:
                    break
                raise
            if pos - lo >= len(raw):  # pos lies in a damaged stretch after this frame
                break
            piece = raw[pos - lo:end - lo]
            parts.append(piece)
            pos += len(piece)
            k += 1
        if not parts:
            raise BadFrame(f"segment {seg.id}: no valid frame holds offset {off}")
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _frame(self, seg: Segment, k: int) -> bytes:
        """Frame k of a framed segment, decompressed and verified (cached)."""
        key = (seg.id, seg.header.generation, k)
        cache = self.frames
        raw = cache.get(key)
        if raw is not None:
            cache.move_to_end(key)
            return raw
        frames = seg.frames
        assert frames is not None
        a, b = frames.extent(k)
        fd = seg.pin_fd if seg.pin_fd is not None else self._fd(seg)
        data = os.pread(fd, b - a, a)
        _, raw, _ = decode_frame(data, 0, self.codecs, frames.lo[k])
        cache[key] = raw
        if len(cache) > FRAME_CACHE:
            cache.popitem(last=False)
        return raw

    def record_bytes(self, seg: Segment, i: int) -> bytes:
        """The bytes of entry `i`'s record (at least; fresh, not from the kept block)."""
        off = seg.offs[i]
        buf = self.read(seg, off, seg.sizes[i] + READ_SLACK)
        rec = record.header_at(buf, 0, 1 << 62)
        if rec is not None and len(buf) < rec.length < (1 << 32):
            buf = self.read(seg, off, rec.length)  # multi-byte subject characters
        return buf

    def fetch(self, seg: Segment, off: int, n: int, ahead: bool = True) -> tuple[bytes, int]:
        """Bytes holding file bytes [off, off+n) of `seg` (fewer at its end), and where they
        start in them. From the tail window, the kept block, or one read, which fetches
        READ_AHEAD bytes when `ahead` and it continues the previous one."""
        blk = self.block
        sequential = False
        if blk is not None and blk[0] is seg and blk[1] is seg.header:
            lo, buf = blk[2], blk[3]
            if lo <= off and (off + n <= lo + len(buf) or lo + len(buf) >= seg.logical_size):
                return buf, off - lo
            sequential = ahead and lo <= off <= lo + len(buf) + BATCH_GAP
        f = seg.file
        if f is not None and off >= f.win_start:
            return f.read(off, n), 0
        buf = self.read(seg, off, max(n, READ_AHEAD) if sequential else n)
        if len(buf) <= KEEP_BLOCK:
            self.block = (seg, seg.header, off, buf)
        return buf, 0

    def forget(self, seg: Segment) -> None:
        """Close the fd of a segment that is gone or whose file was replaced."""
        fd = self.fds.pop(seg.id, None)
        if fd is not None:
            os.close(fd)

    def drop(self, seg: Segment) -> None:
        """Forget the bytes kept of a segment (its records are about to change on disk)."""
        if self.block is not None and self.block[0] is seg:
            self.block = None
        for key in [key for key in self.frames if key[0] == seg.id]:
            del self.frames[key]

    def close(self) -> None:
        self.block = None
        self.frames.clear()
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()
