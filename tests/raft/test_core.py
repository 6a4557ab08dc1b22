"""Unit tests of the core's rules, one rule per test, driving a RaftNode by hand."""

from __future__ import annotations

import random

import pytest

from raft.core import MembershipError, NotLeader, RaftNode, SafetyViolation
from raft.messages import (
    AppendEntries,
    AppendResponse,
    Entry,
    EntryType,
    InstallSnapshot,
    RequestVote,
    SnapshotResponse,
    TimeoutNow,
    VoteReject,
    VoteResponse,
)
from raft.progress import PeerState
from raft.state import HardState, Role, Vouch
from tests.raft.harness import CFG, G, View, drain, elect, log_of, node, of_type, sent


def test_leader_appends_a_noop_and_commits_only_entries_of_its_own_term():
    """Figure 8 of the Raft paper (§5.4.2): entry 2 of term 2 sits on a majority (the leader
    and n2) but must not be committed by counting in term 4; only once an entry of term 4 is
    on a majority are both committed."""
    n = node(entries=log_of(1, 2), term=3)
    msgs = elect(n)
    assert n.term == 4 and n.log.last_index == 3
    assert n.log.entry(3).type is EntryType.NOOP and n.log.entry(3).term == 4
    assert n.commit == 0
    # n2 confirms it holds entries 1..2: a majority holds index 2, but it is of term 2.
    n.step(AppendResponse(G, "n2", "n1", 4, True, 2))
    drain(n)
    assert n.commit == 0, "committed an entry of an older term by counting"
    # n2 now holds the no-op of term 4: committing it commits everything before it.
    n.step(AppendResponse(G, "n2", "n1", 4, True, 3))
    rds = drain(n)
    assert n.commit == 3
    assert [e.index for rd in rds for e in rd.committed] == [1, 2, 3]
    assert of_type(msgs, AppendEntries), "the no-op was replicated"


def test_leader_counts_itself_only_once_its_copy_is_durable():
    n = node(entries=log_of(1), term=1, commit=1)
    elect(n)
    n.step(AppendResponse(G, "n2", "n1", n.term, True, 2))
    drain(n)
    index = n.propose(b"x")
    rd = n.ready()  # the leader's copy is being written
    n.step(AppendResponse(G, "n2", "n1", n.term, True, index))
    assert n.commit == index - 1, "counted the leader's own copy before it was durable"
    n.advance(rd)
    assert n.commit == index  # leader + n2
    index = n.propose(b"y")
    rd = n.ready()
    n.step(AppendResponse(G, "n2", "n1", n.term, True, index))
    n.step(AppendResponse(G, "n3", "n1", n.term, True, index))
    assert n.commit == index  # two followers are a majority without the leader
    n.advance(rd)


def test_follower_never_truncates_on_a_duplicate_or_reordered_old_append():
    n = node("n2", entries=log_of(1, 1, 1, 1, 1), term=1)
    n.step(AppendEntries(G, "n1", "n2", 1, 1, 1, 0, log_of(1, 1, start=2)))
    rds = drain(n)
    assert n.log.last_index == 5, "an old append covering 2..3 cut the log"
    assert all(rd.truncate_from is None for rd in rds)
    resp = of_type(sent(rds), AppendResponse)[-1]
    assert resp.success and resp.index == 3  # it vouches for what that message covered
    # A real conflict (same index, different term) truncates exactly from there.
    n.step(AppendEntries(G, "n1", "n2", 2, 3, 1, 0, log_of(2, start=4)))
    rds = drain(n)
    assert n.log.last_index == 4 and n.log.term(4) == 2
    assert [rd.truncate_from for rd in rds if rd.truncate_from] == [4]


def test_follower_rejects_a_gap_with_a_hint_and_never_truncates_committed_entries():
    n = node("n2", entries=log_of(1, 1, 2, 2), term=3, commit=2)
    n.step(AppendEntries(G, "n1", "n2", 3, 6, 3, 2, log_of(3, start=7)))
    resp = of_type(sent(drain(n)), AppendResponse)[-1]
    assert not resp.success and resp.index == 6
    assert (resp.hint_index, resp.hint_term) == (4, 2)
    # prev (4, term 3) disagrees with our (4, term 2): the hint names our last entry of a term
    # <= 3, and the leader then skips back over its own entries of later terms at once.
    n.step(AppendEntries(G, "n1", "n2", 3, 4, 3, 2, []))
    resp = of_type(sent(drain(n)), AppendResponse)[-1]
    assert not resp.success and (resp.hint_index, resp.hint_term) == (4, 2)
    leader = node(entries=log_of(1, 1, 3, 3, 3), term=3)
    assert leader.log.find_conflict_by_term(resp.hint_index, resp.hint_term) == 2
    with pytest.raises(SafetyViolation):  # a conflict below the commit index is refused
        n.step(AppendEntries(G, "n1", "n2", 3, 1, 1, 2, log_of(3, start=2)))


def test_next_index_moves_back_only_on_a_fresh_rejection():
    n = node(entries=log_of(1, 1, 1), term=1, commit=3)
    elect(n)
    for i in range(5):
        n.propose(b"%d" % i)
    drain(n)
    pr = n.progress["n2"]
    n.step(AppendResponse(G, "n2", "n1", n.term, True, 4))
    drain(n)
    assert pr.state is PeerState.REPLICATE and pr.match == 4
    nxt = pr.next
    assert nxt > 5
    # Successes, duplicated and reordered, never move next back.
    for idx in (4, 2, 3, 4):
        n.step(AppendResponse(G, "n2", "n1", n.term, True, idx))
    assert pr.next == nxt and pr.match == 4
    # A stale rejection (of an index we know matches) is ignored.
    n.step(AppendResponse(G, "n2", "n1", n.term, False, 3, 3, 1))
    assert pr.next == nxt and pr.state is PeerState.REPLICATE
    # A real one moves next back to where the follower's hint says the logs agree.
    n.step(AppendResponse(G, "n2", "n1", n.term, False, nxt - 1, 5, n.term))
    assert pr.state is PeerState.PROBE and pr.next == 6
    # In PROBE, a rejection of some other append is stale too.
    n.step(AppendResponse(G, "n2", "n1", n.term, False, 8, 4, 1))
    assert pr.next == 6


def test_a_restarted_follower_that_lost_entries_is_probed_again():
    """A follower acknowledged up to 5, then came back (newer incarnation) with less: its
    rejection must not be dismissed as stale."""
    n = node(entries=log_of(1, 1, 1, 1), term=1, commit=4)
    elect(n)
    drain(n)
    pr = n.progress["n2"]
    n.step(AppendResponse(G, "n2", "n1", n.term, True, 5, incarnation=1))
    assert pr.match == 5
    n.step(AppendResponse(G, "n2", "n1", n.term, False, 5, 2, 1, incarnation=2))
    assert pr.match == 0 and pr.state is PeerState.PROBE and pr.next == 3
    # A late reply from the previous life is ignored.
    n.step(AppendResponse(G, "n2", "n1", n.term, True, 5, incarnation=1))
    assert pr.match == 0


def test_votes_and_acknowledgements_wait_for_the_fsync():
    n = node("n2", entries=log_of(1), term=1)
    n.step(RequestVote(G, "n3", "n2", 2, 1, 1))
    rd = n.ready()
    assert rd.hard_state is not None and (rd.hard_state.term, rd.hard_state.vote) == (2, "n3")
    assert of_type(rd.messages, VoteResponse)[0].granted
    assert not rd.eager
    n.advance(rd)
    n.step(AppendEntries(G, "n3", "n2", 2, 1, 1, 1, log_of(2, start=2)))
    rd = n.ready()
    assert rd.entries and of_type(rd.messages, AppendResponse)  # sent after persisting
    n.advance(rd)


def test_a_node_votes_once_per_term_and_only_for_an_up_to_date_log():
    n = node("n2", entries=log_of(1, 2), term=2)
    n.step(RequestVote(G, "n1", "n2", 3, 5, 1))  # longer log, older last term
    n.step(RequestVote(G, "n3", "n2", 3, 2, 2))
    n.step(RequestVote(G, "n1", "n2", 3, 9, 2))
    votes = of_type(sent(drain(n)), VoteResponse)
    assert [(v.dst, v.granted, v.reason) for v in votes] == [
        ("n1", False, VoteReject.LOG_BEHIND), ("n3", True, VoteReject.NONE),
        ("n1", False, VoteReject.ALREADY_VOTED)]


def test_prevote_does_not_raise_terms_and_is_refused_while_a_leader_is_heard():
    n = node("n2", entries=log_of(1), term=1)
    n.step(AppendEntries(G, "n1", "n2", 1, 1, 1, 1, []))  # a healthy leader
    drain(n)
    n.step(RequestVote(G, "n3", "n2", 2, 1, 1, prevote=True))
    n.step(RequestVote(G, "n3", "n2", 2, 1, 1))
    assert n.term == 1 and n.leader == "n1" and n.vote is None
    assert not of_type(sent(drain(n)), VoteResponse)  # ignored inside the lease
    # An isolated node campaigning: pre-votes only, its term does not move.
    lone = node("n3", entries=log_of(1), term=1)
    for _ in range(5 * CFG.election_ticks_max):
        lone.tick()
        drain(lone)
    assert lone.term == 1 and lone.role is Role.PRECANDIDATE
    assert lone.counters["prevotes_started"] >= 4 and lone.counters["elections_started"] == 0


def test_leader_steps_down_when_it_loses_the_quorum():
    n = node(entries=log_of(1), term=1)
    elect(n)
    for tick in range(1, CFG.election_ticks_min + 1):
        n.tick()
        if tick < CFG.election_ticks_min:
            assert n.role is Role.LEADER
            n.step(AppendResponse(G, "n2", "n1", n.term, True, 0))  # n2 answers for a while
            if tick > 2:
                break
    for _ in range(CFG.election_ticks_min):
        n.tick()
    assert n.role is Role.FOLLOWER and n.leader is None
    assert n.counters["checkquorum_stepdowns"] == 1


def test_a_node_that_cannot_vouch_neither_votes_nor_campaigns_until_repaired():
    n = node("n2", entries=log_of(1, 1, 1), term=1, commit=3,
             vouch=Vouch(can_vouch=False, mark=6, mark_term=1,
                         reason="log ends at 3, below the acknowledged 6"))
    for _ in range(3 * CFG.election_ticks_max):
        n.tick()
    assert n.role is Role.FOLLOWER and n.counters["prevotes_started"] == 0
    n.step(RequestVote(G, "n3", "n2", 2, 3, 1, prevote=True))
    votes = of_type(sent(drain(n)), VoteResponse)
    n.step(RequestVote(G, "n3", "n2", 2, 3, 1))
    votes += of_type(sent(drain(n)), VoteResponse)
    assert [(v.granted, v.reason) for v in votes] == [
        (False, VoteReject.CANNOT_VOUCH), (False, VoteReject.CANNOT_VOUCH)]
    assert n.term == 2 and n.vote is None
    # The leader repairs the log up to (and past) the mark: from then on it votes again.
    n.step(AppendEntries(G, "n1", "n2", 3, 3, 1, 6, log_of(1, 1, 3, start=4)))
    drain(n)
    assert n.log.stable >= 6
    assert n.can_vouch and n.counters["repairs_completed"] == 1
    for _ in range(CFG.election_ticks_min):  # the leader falls silent: the lease expires
        n.tick()
    drain(n)
    n.step(RequestVote(G, "n3", "n2", 4, 9, 3))
    assert of_type(sent(drain(n)), VoteResponse)[0].granted


def test_membership_changes_one_at_a_time_after_the_leader_committed_its_term():
    n = node(entries=log_of(1), term=1, commit=1)
    with pytest.raises(NotLeader):
        n.propose_membership(add="n4")
    elect(n)
    with pytest.raises(MembershipError, match="not yet committed"):
        n.propose_membership(add="n4")
    n.step(AppendResponse(G, "n2", "n1", n.term, True, 2))
    drain(n)
    assert n.commit == 2
    index = n.propose_membership(add="n4")
    assert n.voters == {"n1", "n2", "n3", "n4"}  # in force as soon as it is in the log
    assert "n4" in n.progress
    with pytest.raises(MembershipError, match="in progress"):
        n.propose_membership(remove="n2")
    with pytest.raises(MembershipError, match="exactly one"):
        n.propose_membership()
    drain(n)
    n.step(AppendResponse(G, "n2", "n1", n.term, True, index))
    n.step(AppendResponse(G, "n3", "n1", n.term, True, index))
    drain(n)
    assert n.commit == index  # 3 of 4 (leader, n2, n3)
    n.propose_membership(remove="n4")
    assert "n4" not in n.progress


def test_a_follower_reverts_its_configuration_when_the_change_is_truncated():
    n = node("n2", entries=log_of(1), term=1, commit=1)
    cfg = Entry(1, 2, EntryType.CONFIG, b"\x02\x00\x02\x00n1\x02\x00n2")
    n.step(AppendEntries(G, "n1", "n2", 1, 1, 1, 1, [cfg]))
    drain(n)
    assert n.voters == {"n1", "n2"}
    n.step(AppendEntries(G, "n3", "n2", 2, 1, 1, 1, log_of(2, start=2)))
    drain(n)
    assert n.voters == {"n1", "n2", "n3"}


def test_leadership_transfer_sends_timeout_now_to_an_up_to_date_target():
    n = node(entries=log_of(1), term=1, commit=1)
    elect(n)
    assert n.transfer_leadership("n2")
    assert n.propose(b"refused during a transfer") is None
    drain(n)
    n.step(AppendResponse(G, "n2", "n1", n.term, True, n.log.last_index))
    timeout = of_type(sent(drain(n)), TimeoutNow)
    assert [m.dst for m in timeout] == ["n2"]
    # The target campaigns at once, without a pre-vote, and voters ignore their lease.
    t = node("n2", entries=log_of(1, n.term), term=n.term)
    t.step(AppendEntries(G, "n1", "n2", n.term, 2, n.term, 2, []))
    drain(t)
    t.step(timeout[0])
    votes = of_type(sent(drain(t)), RequestVote)
    assert t.role is Role.CANDIDATE and votes and all(v.transfer and not v.prevote
                                                      for v in votes)


def test_snapshot_is_sent_in_chunks_and_installed():
    n = node(entries=log_of(1, 1, 1, 1), term=1, commit=4,
             config=CFG.__class__(**{**CFG.__dict__, "snapshot_chunk_bytes": 4}))
    n.applied = 4
    elect(n)
    n.compact(3, b"0123456789")
    drain(n)
    pr = n.progress["n2"]
    # n2 holds only entry 1: it rejects the probe.
    n.step(AppendResponse(G, "n2", "n1", n.term, False, pr.next - 1, 1, 1))
    msgs = sent(drain(n))
    assert pr.state is PeerState.SNAPSHOT
    f = node("n2", entries=log_of(1), term=n.term)
    chunks = 0
    while True:
        snap = of_type(msgs, InstallSnapshot)
        assert len(snap) == 1
        chunks += 1
        f.step(snap[0])
        replies = of_type(sent(drain(f)), SnapshotResponse)
        n.step(replies[0])
        msgs = sent(drain(n))
        if replies[0].done:
            break
    assert chunks == 3 and f.log.snap_index == 3 and f.commit >= 3
    assert f.counters["snapshots_installed"] == 1 and f.counters["snapshot_chunks_received"] == 3
    assert n.counters["snapshot_chunks_sent"] == 3 and pr.match == 3
    assert pr.state is PeerState.PROBE


def test_what_the_application_applied_is_never_delivered_again():
    """After a restart the COMMIT record may lag what the application applied (it applies only
    committed entries): nothing at or below its applied index is delivered twice."""
    view = View(HardState(2, None, 3), None, log_of(1, 1, 2, 2, 2))
    n = RaftNode("n1", ("n1", "n2", "n3"), view, CFG, random.Random(0), group=G, applied=5)
    assert n.commit == 5 and n.applied == 5
    assert all(not rd.committed for rd in drain(n))


def test_campaign_starts_a_prevote_at_once_and_is_refused_while_a_leader_is_heard():
    """A new group's preferred leader campaigns without waiting out a timeout, but through the
    pre-vote: it cannot disturb a group that already has a leader."""
    n = node("n3", entries=log_of(1), term=1)
    n.campaign()
    prevotes = of_type(sent(drain(n)), RequestVote)
    assert n.role is Role.PRECANDIDATE and n.term == 1
    assert sorted(m.dst for m in prevotes) == ["n1", "n2"] and all(m.prevote for m in prevotes)
    follower = node("n2", entries=log_of(1), term=1)
    follower.step(AppendEntries(G, "n1", "n2", 1, 1, 1, 1, []))  # a healthy leader
    drain(follower)
    follower.step(next(m for m in prevotes if m.dst == "n2"))
    assert not of_type(sent(drain(follower)), VoteResponse)  # ignored inside the lease
    assert follower.leader == "n1" and follower.term == 1 and n.term == 1


def test_a_follower_is_current_only_once_it_applied_the_leaders_commit():
    """Health and the startup probe ask `Status.current`: a follower that heard a heartbeat
    naming commit 5 while it holds only 2 entries is behind, though its own commit (capped at
    its last entry) equals what it applied."""
    n = node("n2", entries=log_of(1, 1), term=1)
    n.step(AppendEntries(G, "n1", "n2", 1, 5, 1, 5, []))  # a heartbeat: prev 5 is unknown here
    drain(n)
    status = n.status()
    assert (status.commit, status.leader_commit) == (0, 5)
    assert not status.current
    n.step(AppendEntries(G, "n1", "n2", 1, 2, 1, 5, log_of(1, 1, 1, start=3)))
    drain(n)
    status = n.status()
    assert status.applied == status.commit == 5
    assert status.current
