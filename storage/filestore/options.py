"""`FileStoreOptions`: the tunables of a FileStore (segment size, caches, compaction, opening,
compression frames). Whether a store compresses is not a tunable but part of its configuration
(`StoreConfig.compression`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FileStoreOptions:
    segment_bytes: int = 8 << 20  # roll to a new segment past this many bytes
    segment_msgs: int = 1 << 20  # ... or this many messages
    cache_bytes: int = 4 << 20  # recent bytes of the active segment kept in memory for reads
    flush_bytes: int = 1 << 20  # buffered bytes written from the loop thread when no sync came
    retry_bytes: int = 64 << 20  # unsynced bytes kept in memory to rewrite after a failed sync
    verify_segments: bool = True  # check every sealed segment's CRC against its index at open
    compact_ratio: float = 0.5  # rewrite a sealed segment holding less than this share live
    max_readers: int = 64  # open read-only fds of sealed segments
    progress_every: int = 100  # log progress every this many segments while opening
    frame_bytes: int = 32 << 10  # compressed segments: records per frame, in bytes (framing)
