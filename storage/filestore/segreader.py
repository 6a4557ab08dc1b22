"""`SegmentReader`: getting a segment's bytes back, with as few syscalls as possible.

* The tail of the active segment stays in memory (its `AppendFile` window, `cache_bytes`, at
  least everything not yet durable), so reading recent messages costs no syscall.
* Sealed segments are read through read-only fds, at most `max_readers` of them open (LRU); a
  segment being compacted is read through the fd pinned on its old file.
* A read that continues the previous one (`load_next` walking a segment) fetches READ_AHEAD
  bytes, and the bytes of the last read are kept for the next (`block`): a record's bytes do not
  change while its segment keeps its header (a compaction writes a new one; an erase drops the
  block). Callers still check every record (CRC, kind, seq) each time they decode it.
"""

from __future__ import annotations

import os
from collections import OrderedDict

from storage import durable, record
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


class SegmentReader:
    def __init__(self, max_readers: int) -> None:
        self.max_readers = max_readers
        self.fds: OrderedDict[int, int] = OrderedDict()  # segment id -> read-only fd
        # The last bytes read from a file: (segment, its header, file offset, bytes). Bytes of a
        # record never change while its segment keeps that header (compaction gives a new one),
        # except when it is erased, which drops this.
        self.block: tuple[Segment, SegmentHeader, int, bytes] | None = None

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
        if seg.pin_fd is not None:  # being compacted: the old file, whatever its name holds
            return os.pread(seg.pin_fd, n, off)
        return os.pread(self._fd(seg), n, off)

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
            if lo <= off and (off + n <= lo + len(buf) or lo + len(buf) >= seg.size):
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

    def close(self) -> None:
        self.block = None
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()
