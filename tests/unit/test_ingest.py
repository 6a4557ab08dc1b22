"""The publish outcome rules of `broker.jetstream.cluster.ingest`, driven step by step.

The race of issue 9, deterministically: for a moment a stale leader (it lost its term during a
pause and does not know yet) and the new leader both hold a stream's ingest interest, so one
publish reaches both. However the stale one's part ends (its batch dropped when it learns of the
new term, its proposal refused or overwritten), the publish gets exactly one answer: the new
leader's PubAck once its entry is applied.
"""

from __future__ import annotations

from broker.jetstream.cluster.entries import Origin
from broker.jetstream.cluster.ingest import MAX_BATCH_MSGS, Answers, Ingest, Message

M = Message(b"orders.new", b"", b"order 47", 1)
REPLY = b"_INBOX.abc.1"
REFUSED = b'{"error":{"code":500,"err_code":10047}}'


class Outbox:
    """Every answer each server sends, by reply subject."""

    def __init__(self) -> None:
        self.sent: dict[bytes, list[tuple[str, bytes]]] = {}

    def send(self, server: str, reply: bytes, payload: bytes) -> None:
        if reply:
            self.sent.setdefault(reply, []).append((server, payload))

    def apply(self, server: str, answers: Answers | None, result: bytes) -> None:
        """What StreamReplica does when an entry it proposed is applied: each message gets
        what applying it decided (`result`), each refusal its error."""
        assert answers is not None
        for reply in answers.replies:
            self.send(server, reply, result)
        for reply, payload in answers.refused:
            self.send(server, reply, payload)


def propose(ingest: Ingest, epoch: bytes, number: int = 1) -> Origin:
    """What the leader's flush does: take the batch and propose it as one entry."""
    batch = ingest.take()
    assert batch is not None
    origin = Origin(epoch, number)
    ingest.proposed(origin, batch)
    return origin


def new_leader_stores(outbox: Outbox) -> None:
    new: Ingest[object] = Ingest()
    new.add(M, REPLY)
    origin = propose(new, b"new-lead")
    answers = new.applied(origin)  # committed on a quorum, applied: stored at seq 1
    assert isinstance(answers, Answers)
    outbox.apply("new", answers, b"+ack seq 1")


def test_stale_leader_that_learns_the_new_term_before_proposing_says_nothing():
    outbox = Outbox()
    stale: Ingest[object] = Ingest()
    stale.add(M, REPLY)  # arrived in the same loop turn as the new term's heartbeat
    new_leader_stores(outbox)
    stale.drop_batch()  # the heartbeat: leadership lost before the batch was proposed
    assert stale.take() is None
    assert outbox.sent == {REPLY: [("new", b"+ack seq 1")]}


def test_stale_leaders_refused_or_overwritten_proposal_says_nothing():
    for may_still_commit in (False, True):
        outbox = Outbox()
        stale: Ingest[object] = Ingest()
        stale.add(M, REPLY)
        origin = propose(stale, b"stalelea", 7)
        new_leader_stores(outbox)
        # Its entry was overwritten by the new leader's (definite for this entry, but the
        # message itself was taken by the new leader), or its fate is still open.
        assert stale.failed(origin, may_still_commit) is None
        assert outbox.sent == {REPLY: [("new", b"+ack seq 1")]}


def test_proposal_that_may_still_commit_is_answered_if_applied_after_all():
    outbox = Outbox()
    ingest: Ingest[object] = Ingest()
    ingest.add(M, REPLY)
    origin = propose(ingest, b"leader01")
    assert ingest.failed(origin, may_still_commit=True) is None
    outbox.apply("leader", ingest.applied(origin), b"+ack seq 1")  # committed by the next one
    assert outbox.sent == {REPLY: [("leader", b"+ack seq 1")]}


def test_refusal_before_proposing_is_answered_only_once_its_batch_commits():
    outbox = Outbox()
    ingest: Ingest[object] = Ingest()
    ingest.refuse(REPLY, REFUSED)
    assert ingest.batch.msgs == [] and ingest.batch, "a batch of refusals only is proposed too"
    origin = propose(ingest, b"leader01")
    assert outbox.sent == {}, "nothing before the entry commits"
    outbox.apply("leader", ingest.applied(origin), b"")
    assert outbox.sent == {REPLY: [("leader", REFUSED)]}

    stale: Ingest[object] = Ingest()  # the same refusal on a leader that was stale
    stale.refuse(b"_INBOX.abc.2", REFUSED)
    stale.drop_batch()
    assert stale.take() is None


def test_stopping_answers_only_when_the_stream_was_deleted():
    for deleted in (None, b"stream not found"):
        ingest: Ingest[str] = Ingest()
        ingest.add(M, REPLY)
        propose(ingest, b"leader01")
        ingest.requested(Origin(b"leader01", 2), "purge waiter")
        ingest.add(M, b"_INBOX.abc.3")  # gathered, not yet proposed
        answers, requests = ingest.stopped(deleted)
        assert requests == ["purge waiter"]
        assert answers == ([] if deleted is None else [(REPLY, deleted)])
        assert ingest.take() is None


def test_a_full_batch_is_proposed_at_once():
    ingest: Ingest[object] = Ingest()
    full = [ingest.add(M, b"") for _ in range(MAX_BATCH_MSGS)]
    assert full == [False] * (MAX_BATCH_MSGS - 1) + [True]
