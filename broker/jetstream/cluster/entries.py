"""The entries of a replicated stream's Raft log, in a binary encoding (no JSON per message).

    MSGS    a batch of publishes, each with the leader's timestamp: applying it on any replica
            assigns the same sequences and makes the same dedupe and limit decisions
    PURGE   a purge request (JSON: filter, seq, keep), applied in log order
    DELETE  a message delete (JSON: seq, no_erase)

Every entry starts with the proposer's `Origin`: an id the leader draws when it is elected, and a
counter. The server that proposed an entry keeps the replies waiting for it under that origin, and
answers them when the entry is applied, whoever leads by then.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

MSGS = 1
PURGE = 2
DELETE = 3

_HEAD = struct.Struct("<B8sQ")  # kind, proposer epoch, proposal number
_COUNT = struct.Struct("<I")
_MSG = struct.Struct("<qHII")  # ts, subject, header and data lengths


class Origin(NamedTuple):
    epoch: bytes  # 8 random bytes drawn by a leader at election
    number: int


def new_epoch() -> bytes:
    return os.urandom(8)


class Publish(NamedTuple):
    subject: str
    hdr: bytes
    data: bytes
    ts: int


@dataclass
class Entry:
    kind: int
    origin: Origin
    msgs: list[Publish] | None = None
    request: dict[str, Any] | None = None


def encode_msgs(origin: Origin, msgs: Sequence[tuple[bytes, bytes, bytes, int]]) -> bytes:
    """`msgs`: (subject, header, data, ts) as the ingest path has them."""
    parts = [_HEAD.pack(MSGS, origin.epoch, origin.number), _COUNT.pack(len(msgs))]
    for subject, hdr, data, ts in msgs:
        parts.append(_MSG.pack(ts, len(subject), len(hdr), len(data)))
        parts.append(subject)
        parts.append(hdr)
        parts.append(data)
    return b"".join(parts)


def encode_request(kind: int, origin: Origin, request: dict[str, Any]) -> bytes:
    return _HEAD.pack(kind, origin.epoch, origin.number) + \
        json.dumps(request, separators=(",", ":")).encode()


def decode(data: bytes) -> Entry:
    """Raises ValueError on a malformed entry (which a CRC'd log should never hand us)."""
    try:
        kind, epoch, number = _HEAD.unpack_from(data, 0)
    except struct.error as exc:
        raise ValueError(f"stream entry too short: {exc}") from None
    origin = Origin(epoch, number)
    if kind == MSGS:
        return Entry(kind, origin, msgs=_decode_msgs(data, _HEAD.size))
    if kind in (PURGE, DELETE):
        request = json.loads(data[_HEAD.size:])
        if not isinstance(request, dict):
            raise ValueError("stream entry request is not an object")
        return Entry(kind, origin, request=request)
    raise ValueError(f"unknown stream entry kind {kind}")


def _decode_msgs(data: bytes, offset: int) -> list[Publish]:
    view = memoryview(data)
    (count,) = _COUNT.unpack_from(data, offset)
    offset += _COUNT.size
    msgs: list[Publish] = []
    try:
        for _ in range(count):
            ts, slen, hlen, dlen = _MSG.unpack_from(data, offset)
            offset += _MSG.size
            end = offset + slen + hlen + dlen
            if end > len(data):
                raise ValueError("stream entry truncated")
            # Subjects are bytes off the wire with no encoding promise: invalid UTF-8 reads
            # as U+FFFD, as common.subjects.subject_text (and R1 ingest) reads it.
            subject = str(view[offset:offset + slen], "utf-8", "replace")
            offset += slen
            hdr = bytes(view[offset:offset + hlen])
            offset += hlen
            msgs.append(Publish(subject, hdr, bytes(view[offset:end]), ts))
            offset = end
    except struct.error as exc:
        raise ValueError(f"stream entry truncated: {exc}") from None
    if offset != len(data):
        raise ValueError("stream entry has trailing bytes")
    return msgs
