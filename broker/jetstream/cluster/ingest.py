"""A replicated stream's publish pipeline on its leader, and who answers a publish: the rules,
without I/O (`streamreplica.StreamReplica` moves the bytes and runs the Raft driver).

A publish gets at most one answer, and only from the server that decides its fate. An error
means the message was not stored; a PubAck means it is stored on a quorum. Anything in between
is *indeterminate* and gets no answer at all: the client times out (nats-server's "maybe") and,
retrying with the same `Nats-Msg-Id`, gets the original sequence back (`duplicate: true`) if it
was stored after all.

The subtle part: for a moment two servers may hold a stream's ingest interest, a leader that
lost its term without knowing yet (after a pause or a partition) and the new leader, and a
publish then reaches both. The stale one can never store it, but the new one may, so nothing
the stale one could say is true: it says nothing.

Outcomes, by where each publish ends on the server that took it in (D: definite, I:
indeterminate):

  its entry committed and was applied here                  D stored     PubAck (`duplicate`
                                                                           for a known msg id)
  its entry committed; the state machine refused it         D not stored that error (the same
    (expected last seq or subject seq, msg-id rules,                       on every replica)
    discard new limits, a full store)
  refused before proposing (the server's storage or memory  D not stored the error, sent only
    budget), answered with the batch it came in                            once that batch's
                                                                           entry committed: we
                                                                           led, nobody else
                                                                           took the message
  still in the batch when leadership was lost               I            none
  proposal refused at once (not leader, transfer under way) I            none
  proposal failed: leadership lost before it committed      I            none; PubAck if it
                                                                           commits after all
  proposal failed: another leader's entry took its index    I            none (the new leader
                                                                           may have taken the
                                                                           same message)
  proposal covered by a snapshot from the new leader        I            none (stored, but the
    (it is not applied here)                                               entry is not applied
                                                                           here to answer it)
  replica stopped (shutdown, lame duck) with proposals      I            none: they may still
    in flight                                                              commit elsewhere
  stream deleted with proposals in flight                   D            10059 stream not found
  no server holds the stream's ingest interest              D not stored no responders (core)
  nothing came back within PENDING_EXPIRY                   I            none

A purge or message delete through the log (`propose_request`) follows the same rules: answered
when its entry is applied here; any failure says nothing. R1 streams have no Raft group: their
one server decides alone, so its errors are always definite.

Not covered here, and the same as nats-server: a member of a stream group without a leader
answers API requests with 503/10008 after a short delay (`cluster.api.LEADERLESS_DELAY`), unless
a leader appeared meanwhile; a leader elected in the very moment after that answer may still
carry the request out.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Generic, NamedTuple, TypeVar

from broker.jetstream.cluster.entries import Origin

MAX_BATCH_MSGS = 2048
MAX_BATCH_BYTES = 4 << 20
PENDING_EXPIRY = 30.0  # seconds: forget the replies of proposals that never came back
EXPIRE_CHECK = 1024  # pending proposals before expired ones are looked for

Request = TypeVar("Request")  # what a purge or delete proposal waits with (a future)


class Message(NamedTuple):
    subject: bytes
    hdr: bytes
    data: bytes
    ts: int


@dataclass
class Batch:
    """What arrived in one loop turn: one MSGS entry once proposed."""

    msgs: list[Message] = field(default_factory=list)
    replies: list[bytes] = field(default_factory=list)  # one per message; b"": no ack wanted
    refused: list[tuple[bytes, bytes]] = field(default_factory=list)  # (reply, error payload)
    size: int = 0

    def __bool__(self) -> bool:
        return bool(self.msgs or self.refused)


@dataclass
class Answers:
    """What to send once a MSGS entry this server proposed is applied here."""

    replies: list[bytes]  # one per message, answered with what applying it decided
    refused: list[tuple[bytes, bytes]]  # answered with their error as they are


class Ingest(Generic[Request]):
    """The leader's batch and the proposals waiting for their entries."""

    def __init__(self) -> None:
        self.batch = Batch()
        self._waiting: dict[Origin, tuple[float, Answers | Request]] = {}

    # The batch

    def add(self, msg: Message, reply: bytes) -> bool:
        """Queue a message for the next entry; True when the batch is full (propose now)."""
        batch = self.batch
        batch.msgs.append(msg)
        batch.replies.append(reply)
        batch.size += len(msg.subject) + len(msg.hdr) + len(msg.data)
        return len(batch.msgs) >= MAX_BATCH_MSGS or batch.size >= MAX_BATCH_BYTES

    def refuse(self, reply: bytes, payload: bytes) -> None:
        """A message refused before proposing: answered only if this batch's entry commits
        (which proves this server led when the message arrived), else never."""
        if reply:
            self.batch.refused.append((reply, payload))

    def take(self) -> Batch | None:
        """The batch to propose now (even one of refusals only: its entry is the proof of
        leadership they wait for), or None."""
        if not self.batch:
            return None
        batch, self.batch = self.batch, Batch()
        return batch

    def drop_batch(self) -> None:
        """Leadership lost before proposing: nothing in the batch is answered."""
        self.batch = Batch()

    # Proposals

    def proposed(self, origin: Origin, batch: Batch) -> None:
        self._waiting[origin] = (time.monotonic(), Answers(batch.replies, batch.refused))
        self._expire()

    def requested(self, origin: Origin, waiter: Request) -> None:
        self._waiting[origin] = (time.monotonic(), waiter)
        self._expire()

    def applied(self, origin: Origin) -> Answers | Request | None:
        """The entry of `origin` is applied here: what waited for it (None: nothing here)."""
        waiting = self._waiting.pop(origin, None)
        return None if waiting is None else waiting[1]

    def failed(self, origin: Origin, may_still_commit: bool) -> Request | None:
        """The proposal of `origin` failed: its publishes are forgotten, unanswered (another
        leader may have taken the same messages); a request's waiter is returned, to be let
        go without an answer. When the entry may still commit it keeps waiting: applied here
        after all, it is answered."""
        if may_still_commit:
            return None
        waiting = self._waiting.pop(origin, None)
        if waiting is None or isinstance(waiting[1], Answers):
            return None
        return waiting[1]

    def stopped(self, deleted_error: bytes | None
                ) -> tuple[list[tuple[bytes, bytes]], list[Request]]:
        """The replica stops: (answers to send, request waiters to let go). Only a deleted
        stream is a definite outcome (`deleted_error`: its payload); anything else in flight
        may still commit on the other replicas, so it is not answered."""
        waiting, self._waiting = self._waiting, {}
        self.batch = Batch()
        answers: list[tuple[bytes, bytes]] = []
        requests: list[Request] = []
        for _, item in waiting.values():
            if not isinstance(item, Answers):
                requests.append(item)
            elif deleted_error is not None:
                answers += [(reply, deleted_error) for reply in item.replies if reply]
                answers += [(reply, deleted_error) for reply, _ in item.refused]
        return answers, requests

    def _expire(self) -> None:
        if len(self._waiting) < EXPIRE_CHECK:
            return
        cutoff = time.monotonic() - PENDING_EXPIRY
        for origin in [o for o, (at, _) in self._waiting.items() if at < cutoff]:
            del self._waiting[origin]
