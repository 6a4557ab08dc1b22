"""Compressed ("framed") segment files: the frame codec. Pure: bytes in, values out; no I/O.

A segment is compressed once it is sealed and durable (`FileStore` with `StoreConfig.compression`
"s2"): its bytes are rewritten as the same 52-byte segment header (magic `SEGMENT_MAGIC_FRAMED`)
followed by frames, each holding a run of whole records compressed together:

    magic "NBZF" | codec u8 | pad 3 | start u64 | raw_len u32 | comp_len u32 | raw_crc u32
    | data_crc u32 | head_crc u32 | comp_len bytes

`start` is where the frame's records begin in the segment's *logical* bytes: the file it was
compressed from, byte for byte (header included), so record offsets in indexes, tombstones and
every reader are the same for a plain and a framed segment, and only `SegmentReader` knows the
difference. Frames tile the logical bytes from offset 52, in order, each cut where a message
record starts (the index knows those offsets: records are not parsed to cut them), so a damaged
frame loses only its own records and a record is read from one frame. Checksums:
`head_crc` over the frame header (so a damaged frame still tells its extent), `data_crc` over the
compressed bytes (checked before decompressing: damaged bytes never reach the decompressor), and
`raw_crc` over the decompressed bytes (cheap next to decompression; every record inside also keeps
its own CRC, checked on every read). A frame that would shrink by less than 1/16 is stored
(codec 0).

Codec 1 is Zstandard (RFC 8878, level 1) through the `zstandard` package: our format is our own,
and "s2" names the stream setting nats-server uses for "compress sealed blocks", not the bytes.

`unframe` turns a (possibly damaged) framed file back into logical bytes for a scan: the bytes of
damaged frames become zeros, which `record.scan` reports as damage exactly as it reports damaged
bytes of a plain segment, so recovery, truncation and damage reporting work on logical bytes.
"""

from __future__ import annotations

import errno
import struct
import zlib
from array import array
from bisect import bisect_right
from dataclasses import dataclass
from typing import Any

from storage.record import SEGMENT_HEADER_SIZE

CODEC_STORED = 0
CODEC_ZSTD = 1
CODECS = frozenset((CODEC_STORED, CODEC_ZSTD))
ZSTD_LEVEL = 1

# StoreConfig.compression -> the codec of new frames (None: segments stay plain).
COMPRESSIONS: dict[str, int | None] = {"none": None, "": None, "s2": CODEC_ZSTD}

FRAME_MAGIC = b"NBZF"  # its first byte is no record kind: a frame never looks like a record
FRAME = struct.Struct("<4sB3xQIIII")
FRAME_HEAD_SIZE = FRAME.size + 4  # with head_crc
_CRC = struct.Struct("<I")
FRAME_BYTES = 32 << 10  # default target of a frame's logical bytes (FileStoreOptions.frame_bytes)
MAX_RAW = 0xFFFFFFFF


class BadFrame(OSError):
    """The frame at an offset fails verification (an I/O error of the framed file: EIO)."""

    def __init__(self, detail: str) -> None:
        super().__init__(errno.EIO, detail)


def codec_for(compression: str) -> int | None:
    """The frame codec for a `StoreConfig.compression` value; ValueError when unknown."""
    try:
        return COMPRESSIONS[compression]
    except KeyError:
        raise ValueError(f"unknown compression {compression!r}: expected one of "
                         f"{sorted(k for k in COMPRESSIONS if k)}") from None


# ---------------------------------------------------------------------------------------------
# Codecs (zstandard is imported on first use: a store without compression never loads it)

_zstd: Any = None


def _zstandard() -> Any:
    global _zstd
    if _zstd is None:
        import zstandard

        _zstd = zstandard
    return _zstd


class Codecs:
    """Compressor and decompressor objects, for one thread (zstandard's are not thread-safe)."""

    __slots__ = ("_c", "_d")

    def __init__(self) -> None:
        self._c: Any = None
        self._d: Any = None

    def compress(self, codec: int, raw: bytes | memoryview) -> bytes:
        if codec == CODEC_ZSTD:
            if self._c is None:
                self._c = _zstandard().ZstdCompressor(level=ZSTD_LEVEL)
            return self._c.compress(raw)
        raise ValueError(f"cannot compress with codec {codec}")

    def decompress(self, codec: int, data: bytes | memoryview, raw_len: int) -> bytes:
        if codec == CODEC_STORED:
            return bytes(data)
        if codec == CODEC_ZSTD:
            if self._d is None:
                self._d = _zstandard().ZstdDecompressor()
            try:
                return self._d.decompress(data, max_output_size=raw_len)
            except _zstandard().ZstdError as e:
                raise BadFrame(f"zstd: {e}") from e
        raise BadFrame(f"unknown codec {codec}")


# ---------------------------------------------------------------------------------------------
# The frame table: where each frame's logical bytes start, and where the frame is in the file


class FrameTable:
    """The frames of a framed segment file: `lo[k]` the logical offset of frame k's first byte,
    `off[k]` the file offset of its header; `end` the logical length; `size` the file length.
    Frames found damaged by a scan are left out (their records are in no index)."""

    __slots__ = ("end", "lo", "off", "size")

    def __init__(self, lo: array, off: array, end: int, size: int) -> None:
        self.lo = lo
        self.off = off
        self.end = end
        self.size = size

    def find(self, pos: int) -> int:
        """The frame whose logical bytes may hold `pos`: the last one starting at or before
        it (-1 when none does)."""
        return bisect_right(self.lo, pos) - 1

    def extent(self, k: int) -> tuple[int, int]:
        """File bytes [a, b) holding frame k (possibly followed by the damaged bytes of frames
        left out of the table)."""
        off = self.off
        return off[k], (off[k + 1] if k + 1 < len(off) else self.size)


# ---------------------------------------------------------------------------------------------
# Encoding


def encode_frame(codec: int, start: int, raw: bytes | memoryview, comp: bytes | None,
                 raw_crc: int | None = None) -> bytes:
    """One frame holding `raw` (logical bytes from `start`); `comp` its compressed form (None,
    or saving less than 1/16: the frame is stored, and read back without decompressing)."""
    if raw_crc is None:
        raw_crc = zlib.crc32(raw)
    if comp is None or len(comp) * 16 > len(raw) * 15:
        codec, comp = CODEC_STORED, bytes(raw)
    head = FRAME.pack(FRAME_MAGIC, codec, start, len(raw), len(comp), raw_crc,
                      zlib.crc32(comp))
    return b"".join((head, _CRC.pack(zlib.crc32(head)), comp))


def runs(starts: array | list[int], begin: int, end: int, target: int) -> list[tuple[int, int]]:
    """Cut logical bytes [begin, end) into runs [a, b) of about `target` bytes, each cut at one
    of `starts` (ascending offsets where records begin: a segment's message offsets; markers
    lie between them, whole), a run longer only when one record is. Cheap: one bisect per
    run, no Python loop over records (the worker thread does this holding the GIL)."""
    out = []
    a = begin
    n = len(starts)
    while a < end:
        if end - a <= target:
            b = end
        else:
            k = bisect_right(starts, a + target)  # the first start past a + target
            b = starts[k - 1] if k and starts[k - 1] > a else (starts[k] if k < n else end)
        out.append((a, b))
        a = b
    return out


def frame_segment(header: bytes, logical: bytes, starts: array | list[int], codec: int,
                  target: int, codecs: Codecs) -> tuple[bytes, FrameTable]:
    """The framed file for a segment whose logical bytes are `logical` (its plain file, header
    included) under the new segment `header` (framed), and its frame table. `starts`: offsets
    where records begin (a segment's message offsets), where frames may be cut. Each frame is
    decompressed again and compared before it is used, so a compressor fault cannot turn good
    records into damage. Records are not parsed: those damaged before this keep their own
    (failing) CRC inside a valid frame, and reads refuse them as before."""
    if len(header) != SEGMENT_HEADER_SIZE or len(logical) > MAX_RAW:
        raise ValueError("not a segment")
    parts = [header]
    lo, off = array("I"), array("I")
    pos = SEGMENT_HEADER_SIZE
    crc32 = zlib.crc32
    with memoryview(logical) as view:
        for a, b in runs(starts, SEGMENT_HEADER_SIZE, len(logical), target):
            raw = view[a:b]
            comp: bytes | None = codecs.compress(codec, raw)
            assert comp is not None
            if len(comp) * 16 > len(raw) * 15:
                comp = None  # saves less than 1/16: stored
            elif codecs.decompress(codec, comp, len(raw)) != raw:
                raise ValueError(f"frame at {a} does not decompress to its records")
            frame = encode_frame(codec, a, raw, comp, crc32(raw))
            lo.append(a)
            off.append(pos)
            parts.append(frame)
            pos += len(frame)
    return b"".join(parts), FrameTable(lo, off, len(logical), pos)


# ---------------------------------------------------------------------------------------------
# Decoding


@dataclass(slots=True)
class FrameHead:
    codec: int
    start: int  # logical offset of its first byte
    raw_len: int
    comp_len: int
    raw_crc: int
    data_crc: int


def frame_head(buf: bytes, pos: int) -> FrameHead | None:
    """The valid frame header at `pos`, or None (its bytes may still be short)."""
    if pos + FRAME_HEAD_SIZE > len(buf) or not buf.startswith(FRAME_MAGIC, pos):
        return None
    with memoryview(buf) as view:
        if zlib.crc32(view[pos:pos + FRAME.size]) != _CRC.unpack_from(buf, pos + FRAME.size)[0]:
            return None
    _m, codec, start, raw_len, comp_len, raw_crc, data_crc = FRAME.unpack_from(buf, pos)
    if codec not in CODECS or (codec == CODEC_STORED and comp_len != raw_len):
        return None
    return FrameHead(codec, start, raw_len, comp_len, raw_crc, data_crc)


def decode_frame(buf: bytes, pos: int, codecs: Codecs,
                 expect_start: int | None = None) -> tuple[int, bytes, int]:
    """(logical start, raw bytes, file offset after the frame) of the frame at `pos`, verified
    (header, compressed and raw checksums, lengths). BadFrame otherwise."""
    h = frame_head(buf, pos)
    if h is None:
        raise BadFrame(f"no valid frame header at offset {pos}")
    if expect_start is not None and h.start != expect_start:
        raise BadFrame(f"frame at offset {pos} starts at {h.start}, expected {expect_start}")
    a = pos + FRAME_HEAD_SIZE
    b = a + h.comp_len
    if b > len(buf):
        raise BadFrame(f"frame at offset {pos} is cut short")
    with memoryview(buf) as view:
        data = view[a:b]
        if zlib.crc32(data) != h.data_crc:
            raise BadFrame(f"frame at offset {pos} fails its checksum")
        raw = codecs.decompress(h.codec, data, h.raw_len)
    if len(raw) != h.raw_len or zlib.crc32(raw) != h.raw_crc:
        raise BadFrame(f"frame at offset {pos} decompresses to bytes that fail their checksum")
    return h.start, raw, b


def looks_framed(buf: bytes) -> bool:
    """For a segment whose header is damaged: whether a valid frame header follows it (a plain
    segment has a record there, and no record starts with the frame magic)."""
    return frame_head(buf, SEGMENT_HEADER_SIZE) is not None


@dataclass
class Unframed:
    logical: bytes  # the logical bytes; damaged frames' bytes are zeros
    table: FrameTable  # the valid frames
    damaged: list[tuple[int, int]]  # file byte ranges [a, b) holding no valid frame


def unframe(buf: bytes, codecs: Codecs) -> Unframed:
    """The logical bytes of a framed segment file (`buf`, header included). Damaged frames
    (and bytes between valid ones) become zeros in the logical bytes, spanning to the next valid
    frame's start; damage after the last valid frame becomes one zero byte after its end (the
    logical length it had is unknown: a scan then reports a damaged tail)."""
    parts: list[bytes] = [buf[:SEGMENT_HEADER_SIZE]]
    lo, off = array("I"), array("I")
    damaged: list[tuple[int, int]] = []
    end = len(buf)
    logical_end = SEGMENT_HEADER_SIZE
    pos = SEGMENT_HEADER_SIZE
    bad_from: int | None = None
    while pos < end:
        try:
            start, raw, nxt = decode_frame(buf, pos, codecs)
        except BadFrame:
            start = -1
        if start < logical_end:  # damaged, or out of order (a stray copy): not a frame here
            if bad_from is None:
                bad_from = pos
            nxt_at = buf.find(FRAME_MAGIC, pos + 1)
            pos = end if nxt_at < 0 else nxt_at
            continue
        if bad_from is not None:
            damaged.append((bad_from, pos))
            bad_from = None
        if start > logical_end:
            parts.append(bytes(start - logical_end))
        parts.append(raw)
        lo.append(start)
        off.append(pos)
        logical_end = start + len(raw)
        pos = nxt
    if bad_from is not None:
        damaged.append((bad_from, end))
        parts.append(b"\x00")
        logical_end += 1
    return Unframed(b"".join(parts), FrameTable(lo, off, logical_end, end), damaged)
