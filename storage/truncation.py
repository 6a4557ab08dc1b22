"""Truncating a FileStore's files back to a sequence, crash-safely (see `FileStore.truncate`).

Truncating to L changes several files: the segment holding L is cut after its last record that
stays, and every segment above it is removed. Removing files one by one is not atomic, and a
half-done truncation would be a damaged middle: a hole where removed records were, or tombstones
of kept messages lost with the segment that held them. So a truncation commits through an intent:

1. `prepare`: write the new contents of the cut segment as `<segment>.truncate.tmp` and
   fdatasync it. A crash now leaves the store as it was (opening removes `*.tmp` files).
2. `commit`: write `truncate.intent`, a checked file naming the segment to replace and the files
   to remove, atomically (`durable.write_checked`). Once it is durable the truncation has
   happened, whatever else reached the disk: opening the store finishes it.
3. `finish`: rename the new segment over the old one, unlink the others, fsync the directory,
   then unlink the intent and fsync again. Each step may be repeated, so opening the store runs
   `finish` again while an intent is there.

The cut segment is copied rather than cut in place with ftruncate: a cut file needs markers
appended after the cut (tombstones that lived in the removed part, the new last sequence), and an
in-place cut would leave a moment where the kept part is on disk without them. A copy replaces
the whole file by one rename. The copy keeps the old bytes up to the first record that must go
at the same offsets (damage included, so damaged sequences stay reported), then appends fresh
markers (`rewrite`, pure).
"""

from __future__ import annotations

import contextlib
import json
import os
from array import array
from dataclasses import dataclass

from storage import durable, record
from storage.record import Damage, Record

INTENT = "truncate.intent"
TMP_SUFFIX = ".truncate.tmp"  # ends in "tmp": an uncommitted one is removed when opening


# ---------------------------------------------------------------------------------------------
# The new contents of the cut segment (pure)


def beyond(buf: bytes, rec: Record, last_seq: int, keep_last: bool) -> bool:
    """Whether a record must go when truncating to `last_seq`: it holds a message above it, or
    the message at it when that one is gone (`keep_last` False; its timestamp would otherwise
    become the store's last one after a reopen), a tombstone above it, or a purge marker that
    recorded a later last sequence (or `last_seq` with another timestamp, same condition)."""
    if rec.kind in (record.KIND_MSG, record.KIND_ERASED):
        seq = rec.seq
    elif rec.kind == record.KIND_PURGE:
        seq = record.purge_info(buf, rec)[1]
    else:
        seqs = record.del_seqs(buf, rec)
        return bool(seqs) and max(seqs) > last_seq
    return seq > last_seq or (seq == last_seq and not keep_last)


@dataclass
class Cut:
    offset: int  # where the first record that must go starts (or the end)
    damage: int  # the same, moved back over damaged bytes right before that record
    tombs: array  # the tombstones of the DEL records from `offset` on


def cut_point(body: bytes, last_seq: int, keep_last: bool) -> Cut:
    """Where the records of `body` (a segment file after its header) must be cut."""
    damage_start = None
    for item in record.scan(body, 0):
        if isinstance(item, Damage):
            if damage_start is None:
                damage_start = item.start
            continue
        if beyond(body, item, last_seq, keep_last):
            return Cut(item.offset, item.offset if damage_start is None else damage_start,
                       _tombs_from(body, item.offset))
        damage_start = None
    return Cut(len(body), len(body), array("Q"))


def _tombs_from(body: bytes, offset: int) -> array:
    tombs = array("Q")
    for item in record.scan(body, offset):
        if isinstance(item, Record) and item.kind == record.KIND_DEL:
            tombs.extend(record.del_seqs(body, item))
    return tombs


def markers(tombs: array, floor: int, last_seq: int, last_ts: int) -> list[bytes]:
    """The records a truncated segment ends with: the tombstones in [floor, last_seq] (those of
    removed records may still delete kept ones) and a PURGE carrying the floor and the new last
    sequence and timestamp (so the numbering survives even if no record holds `last_seq`)."""
    keep = array("Q", sorted({t for t in tombs if floor <= t <= last_seq}))
    out = [record.encode_del(keep[k:k + record.MAX_DEL_SEQS])
           for k in range(0, len(keep), record.MAX_DEL_SEQS)]
    out.append(record.encode_purge(floor, last_seq, last_ts))
    return out


def rewrite(head: bytes, body: bytes, last_seq: int, keep_last: bool, tombs: array, floor: int,
            last_ts: int, damage_is_beyond: bool = False) -> bytes:
    """The truncated segment: `head` (its new header, or b"" for a segment whose header is
    damaged, whose `body` then starts at offset 0), the part of `body` that stays, and
    `markers` (with `tombs`, from the segments removed above, added to those cut away here).

    The result is checked by scanning it as opening the store will: nothing beyond the cut may
    be found and every marker must be found. Damaged bytes right before the cut are kept so that
    their sequences stay reported as damaged; in the unlikely case that scanning them with
    different bytes after them tells another story, they are cut too. With `damage_is_beyond`
    (the store knows no damaged sequence at or below `last_seq`) they are cut first: they can
    only have held what goes anyway, and a store cut back to drop its damage must lose it."""
    cut = cut_point(body, last_seq, keep_last)
    parts = markers(tombs + cut.tombs, floor, last_seq, last_ts)
    ends = (cut.damage, cut.offset) if damage_is_beyond else (cut.offset, cut.damage)
    for end in dict.fromkeys(ends):
        data = b"".join([head, body[:end], *parts])
        if _truncated_as_expected(data, len(head), len(head) + end, parts, last_seq, keep_last):
            return data
    raise ValueError("the truncated segment does not scan as expected")


def _truncated_as_expected(data: bytes, start: int, markers_at: int, parts: list[bytes],
                           last_seq: int, keep_last: bool) -> bool:
    expected = []
    pos = markers_at
    for part in parts:
        expected.append(pos)
        pos += len(part)
    found = []
    for item in record.scan(data, start):
        if isinstance(item, Damage):
            if item.end > markers_at:
                return False
        elif item.offset >= markers_at:
            found.append(item.offset)
        elif beyond(data, item, last_seq, keep_last):
            return False
    return found == expected


# ---------------------------------------------------------------------------------------------
# The files


def prepare(directory: str, segment: str, data: bytes) -> None:
    """Write the new contents of `segment` next to it, durably. Raises OSError with nothing
    changed (the temporary file is removed again, or by the next open)."""
    tmp = os.path.join(directory, segment + TMP_SUFFIX)
    if os.path.exists(tmp):
        durable.unlink(tmp)
    fd = durable.create(tmp)
    try:
        durable.pwrite_all(fd, data, 0)
        durable.fdatasync(fd, tmp, len(data))
    except OSError:
        with contextlib.suppress(OSError):
            durable.unlink(tmp)
        raise
    finally:
        os.close(fd)


def commit(directory: str, segment: str, remove: list[str], last_seq: int) -> None:
    """The commit point: once this returns the truncation survives any crash. An OSError may
    leave it committed or not (opening the store tells)."""
    intent = {"last_seq": last_seq, "segment": segment, "remove": remove}
    durable.write_checked(os.path.join(directory, INTENT), json.dumps(intent).encode())


def finish(directory: str) -> int | None:
    """Complete a committed truncation found in `directory`: returns its last sequence, or None
    when there is none. Raises DamagedFile when the intent is damaged (refuse to guess)."""
    path = os.path.join(directory, INTENT)
    try:
        intent = json.loads(durable.read_checked(path))
        segment, remove, last_seq = intent["segment"], intent["remove"], intent["last_seq"]
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as e:
        raise durable.DamagedFile(path, f"unreadable contents ({e})") from e
    tmp = os.path.join(directory, segment + TMP_SUFFIX)
    if os.path.exists(tmp):  # else renamed already: it existed, durably, before the intent
        durable.rename(tmp, os.path.join(directory, segment))
    for name in remove:
        with contextlib.suppress(FileNotFoundError):
            durable.unlink(os.path.join(directory, name))
    durable.fsync_dir(directory)
    # Only now may the intent go: without it, a crash would leave the steps above half done.
    durable.unlink(path)
    durable.fsync_dir(directory)
    return last_seq
