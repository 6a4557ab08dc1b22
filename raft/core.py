"""The sans-IO Raft core of one group, in the manner of etcd's raft: no sockets, no files, no
clocks, no threads. `tick()`, `step(message)`, `propose(data)` and friends change state and queue
work; `ready()` hands the work out as one `Ready` batch and `advance(ready)` says it was done
(persisted, sent, applied; see `raft.state.Ready` for the order).

Rules this code keeps (raft/README.md explains why each one is needed):

* Votes and acknowledgements leave only after what they promise is durable (they are in
  `Ready.messages`, which the driver sends after persisting the same Ready).
* PreVote and CheckQuorum: a node campaigns for real only after a majority said it could win; a
  node that hears from a leader within the election timeout ignores vote requests; a leader
  that has not heard from a majority within that window steps down.
* Followers truncate only on a real conflict (same index, different term), never on a
  duplicate or reordered old append; `next` moves back only on a (non-stale) rejection.
* A leader counts an entry only when it is durable on a majority, counts itself only once its
  own copy is durable, and commits by counting only entries of its own term (§5.4.2); it
  appends a no-op when elected so that it can.
* Single-server membership changes, one at a time, only after the leader committed an entry of
  its term; acknowledged when committed.
* A node that cannot vouch for its log (it lost entries it had acknowledged, raft/README.md)
  neither votes nor campaigns until a leader has repaired its log.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Iterable

from raft.membership import ConfigHistory, decode_voters, encode_voters, quorum
from raft.memlog import MemLog
from raft.messages import (
    AppendEntries,
    AppendResponse,
    Entry,
    EntryType,
    InstallSnapshot,
    Message,
    RequestVote,
    SnapshotResponse,
    TimeoutNow,
    VoteReject,
    VoteResponse,
    needs_sync,
)
from raft.options import RaftConfig
from raft.progress import PeerState, Progress
from raft.state import (
    HardState,
    LogView,
    PeerStatus,
    Ready,
    Role,
    Snapshot,
    SnapshotMeta,
    Status,
)


class RaftError(Exception):
    pass


class NotLeader(RaftError):
    """Only the leader accepts this; `leader` is who this node believes leads (or None)."""

    def __init__(self, leader: str | None) -> None:
        super().__init__(f"not the leader (leader: {leader})")
        self.leader = leader


class MembershipError(RaftError):
    """A membership change that may not start now (one in progress, no-op, ...)."""


class SafetyViolation(RaftError):
    """Something that Raft's invariants say cannot happen did (a bug or undetected damage).
    Raised instead of silently overwriting committed state."""


class _SnapshotReceiver:
    """A snapshot being assembled from chunks on a follower."""

    __slots__ = ("buf", "index", "leader_term", "term")

    def __init__(self, leader_term: int, index: int, term: int) -> None:
        self.leader_term, self.index, self.term = leader_term, index, term
        self.buf = bytearray()


COUNTERS = ("prevotes_started", "elections_started", "elections_won", "checkquorum_stepdowns",
            "append_rejections_sent", "append_rejections_received", "stale_responses",
            "snapshots_sent", "snapshot_chunks_sent", "snapshot_chunks_received",
            "snapshots_installed", "snapshot_crc_errors", "messages_dropped_term_changed",
            "misrouted", "transfers_started", "transfers_aborted", "votes_refused_cannot_vouch",
            "repairs_completed")


class RaftNode:
    """One member of one Raft group.

    `peers`: the bootstrap configuration (with or without this node; this node is added). Used
    only when the log holds no configuration. `None`: this node joins an existing group and
    learns the configuration from the leader (it does not campaign before).
    `applied`: the application's last applied index when it keeps its own durable state (entries
    up to it are not delivered again); by default the snapshot index.
    """

    def __init__(self, node_id: str, peers: Iterable[str] | None, log_view: LogView,
                 config: RaftConfig | None = None, rng: random.Random | None = None, *,
                 group: str = "", applied: int = 0) -> None:
        self.id = node_id
        self.group = group
        self.cfg = config or RaftConfig()
        self.rng = rng or random.Random()
        self._view = log_view
        hs = log_view.hard_state
        meta = log_view.snapshot_meta
        si, st = (meta.index, meta.term) if meta else (0, 0)
        self.log = MemLog(si, st, list(log_view.entries))
        bootstrap = frozenset() if peers is None else frozenset(peers) | {node_id}
        self.membership = ConfigHistory(si, meta.voters if meta else bootstrap)
        for e in self.log.entries:
            if e.type is EntryType.CONFIG:
                self.membership.append(e.index, decode_voters(e.data))
        self.term = hs.term
        self.vote = hs.vote
        self.commit = max(si, min(hs.commit, self.log.last_index))
        # The application applies only committed entries: what it applied is committed (the
        # COMMIT record may lag behind it), and is never delivered again.
        self.applied = max(si, applied)
        self.commit = max(self.commit, min(self.applied, self.log.last_index))
        vouch = log_view.vouch
        self.can_vouch = vouch.can_vouch
        self.vouch_mark = vouch.mark
        self.amnesia = vouch.amnesia
        self.boot = log_view.boot
        self.role = Role.FOLLOWER
        self.leader: str | None = None
        self.ticks = 0
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_timeout = self._random_timeout()
        self.votes: dict[str, bool] = {}
        self.progress: dict[str, Progress] = {}
        self.transferee: str | None = None
        self.transfer_elapsed = 0
        self.term_start = 0  # index of this leader's no-op
        # The highest commit index a leader has told this node of: a follower is current only
        # once it has applied that far (its own `commit` may lag: it stops at its last entry).
        self.leader_commit = self.commit
        self.counters = dict.fromkeys(COUNTERS, 0)
        self._msgs: list[Message] = []
        self._snap_data: bytes | None = None
        self._snap_rx: _SnapshotReceiver | None = None
        self._pending_install: Snapshot | None = None
        self._install_reset = False
        self._pending_compact: Snapshot | None = None
        self._hs_sent = (hs.term, hs.vote)
        self._apply_handed = self.applied
        self._bcast = False
        self._commit_sent = self.commit
        self._rd_out: Ready | None = None
        self._rd_last = 0

    # Public API -----------------------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        return self.role is Role.LEADER

    @property
    def voters(self) -> frozenset[str]:
        return self.membership.voters

    def tick(self) -> None:
        """One unit of logical time passed."""
        self.ticks += 1
        if self.role is Role.LEADER:
            self._tick_leader()
            return
        self.election_elapsed += 1
        if self.election_elapsed >= self.randomized_timeout:
            self.election_elapsed = 0
            self.randomized_timeout = self._random_timeout()
            self._campaign()

    def campaign(self) -> None:
        """Start an election now rather than after an election timeout (a new group's
        preferred leader does this). As safe as any timeout: it goes through pre-vote."""
        if self.role is not Role.LEADER:
            self.election_elapsed = 0
            self._campaign()

    def step(self, msg: Message) -> None:
        """Handle one message from a peer."""
        if msg.group != self.group or msg.dst != self.id:
            self.counters["misrouted"] += 1
            return
        if msg.term > self.term:
            if isinstance(msg, RequestVote):
                if not msg.transfer and self._in_lease():
                    return  # a healthy leader exists: do not let a rejoining node disrupt it
                if not msg.prevote:
                    self._become_follower(msg.term, None)
            elif isinstance(msg, VoteResponse) and msg.prevote and msg.granted:
                pass  # a pre-vote for the term we would campaign in: no term change
            elif isinstance(msg, (AppendEntries, InstallSnapshot, TimeoutNow)):
                self._become_follower(msg.term, msg.src)
            else:
                self._become_follower(msg.term, None)
        elif msg.term < self.term:
            self._step_stale(msg)
            return
        if isinstance(msg, AppendEntries):
            self._handle_append(msg)
        elif isinstance(msg, AppendResponse):
            self._handle_append_response(msg)
        elif isinstance(msg, RequestVote):
            self._handle_vote_request(msg)
        elif isinstance(msg, VoteResponse):
            self._handle_vote_response(msg)
        elif isinstance(msg, InstallSnapshot):
            self._handle_snapshot(msg)
        elif isinstance(msg, SnapshotResponse):
            self._handle_snapshot_response(msg)
        elif isinstance(msg, TimeoutNow):
            self._handle_timeout_now(msg)

    def propose(self, data: bytes) -> int | None:
        """Append `data` as a new entry; its index, or None when this node is not the leader
        (or is handing leadership over). The entry is committed only once `ready()` shows it in
        `committed`, and is lost if leadership changes before."""
        if self.role is not Role.LEADER or self.transferee is not None:
            return None
        return self._append_own(EntryType.NORMAL, data)

    def propose_many(self, items: list[bytes]) -> list[int] | None:
        if self.role is not Role.LEADER or self.transferee is not None:
            return None
        return [self._append_own(EntryType.NORMAL, d) for d in items]

    def propose_membership(self, *, add: str | None = None, remove: str | None = None) -> int:
        """Start a single-server membership change; returns the CONFIG entry's index. The
        change is in force at once (on every node as soon as it holds the entry) but is
        acknowledged only when that entry commits. Raises NotLeader or MembershipError."""
        if self.role is not Role.LEADER:
            raise NotLeader(self.leader)
        if (add is None) == (remove is None):
            raise MembershipError("give exactly one of add= or remove=")
        if self.transferee is not None:
            raise MembershipError("a leadership transfer is in progress")
        if self.commit < self.term_start:
            raise MembershipError("the leader has not yet committed an entry of its term")
        if self.membership.last_change_index > self.commit:
            raise MembershipError("a membership change is in progress")
        voters = self.voters
        new = voters | {add} if add is not None else voters - {remove}
        if new == voters:
            raise MembershipError("no change")
        if not new:
            raise MembershipError("cannot remove the last voter")
        return self._append_own(EntryType.CONFIG, encode_voters(new))

    def transfer_leadership(self, to: str) -> bool:
        """Hand leadership to `to` (a voter): stop taking proposals, bring it up to date, then
        tell it to campaign now (TimeoutNow). Gives up after `RaftConfig.transfer_timeout`."""
        if self.role is not Role.LEADER or to == self.id or to not in self.voters:
            return False
        self.transferee = to
        self.transfer_elapsed = 0
        self.counters["transfers_started"] += 1
        pr = self.progress[to]
        if pr.match == self.log.last_index:
            self._send(TimeoutNow(self.group, self.id, to, self.term))
        else:
            self._send_append(to)
        return True

    def compact(self, index: int, data: bytes) -> None:
        """The application's snapshot `data` covers everything up to `index` (no further than
        it was handed to apply): keep it (it is persisted with the next Ready) and drop the log
        before it."""
        if index <= self.log.snap_index:
            return
        if index > self._apply_handed:
            raise ValueError(f"cannot compact to {index}: only {self._apply_handed} applied")
        meta = SnapshotMeta(index, self.log.term(index) or 0, self.membership.at(index))
        self.log.compact(index)
        self.membership.compact(index)
        self._snap_data = data
        self._pending_compact = Snapshot(meta, data)

    def has_ready(self) -> bool:
        """Would `ready()` return a batch? (For drivers that poll.)"""
        return self._rd_out is None and bool(
            self._msgs or self._bcast or self._pending_install or self._pending_compact
            or self.log.pending_truncate is not None or self.log.last_index > self.log.handed
            or (self.term, self.vote) != self._hs_sent
            or min(self.commit, self.log.last_index) > self._apply_handed)

    def ready(self) -> Ready | None:
        """The next batch of work, or None. Call `advance` before asking again."""
        if self._rd_out is not None:
            return None
        if self._bcast and self.role is Role.LEADER:
            self._broadcast_append(commit_notice=self.commit > self._commit_sent)
        self._bcast = False
        rd = Ready()
        log = self.log
        if self._pending_install is not None:
            rd.snapshot, rd.snapshot_reset = self._pending_install, self._install_reset
            self._pending_install = None
            self._install_reset = False
            self._apply_handed = max(self._apply_handed, rd.snapshot.meta.index)
        rd.truncate_from = log.pending_truncate
        log.pending_truncate = None
        rd.entries = log.unhanded()
        rd.compact, self._pending_compact = self._pending_compact, None
        if (self.term, self.vote) != self._hs_sent or rd.entries or rd.snapshot:
            rd.hard_state = HardState(self.term, self.vote, self.commit)
            self._hs_sent = (self.term, self.vote)
        end = min(self.commit, log.last_index)
        if end > self._apply_handed:
            rd.committed = log.slice(self._apply_handed + 1, end)
            self._apply_handed = end
        for m in self._msgs:
            # Written in an older term: an acknowledgement or vote for a term we left must not
            # leave (the log it described may have changed since). Pre-votes carry a future term.
            if m.term < self.term:
                self.counters["messages_dropped_term_changed"] += 1
            elif needs_sync(m):
                rd.messages.append(m)
            else:
                rd.eager.append(m)
        self._msgs = []
        if not (rd.must_persist() or rd.messages or rd.eager or rd.committed):
            return None
        log.handed = log.last_index
        self._rd_last = log.last_index
        log.bound = 1 << 63
        self._rd_out = rd
        return rd

    def advance(self, rd: Ready) -> None:
        """`rd` was persisted, sent and applied."""
        assert rd is self._rd_out, "advance() takes the last Ready"
        self._rd_out = None
        log = self.log
        if rd.must_persist():
            log.stable = max(log.stable, min(self._rd_last, log.bound, log.last_index))
        if rd.snapshot is not None:
            self.applied = max(self.applied, rd.snapshot.meta.index)
        if rd.committed:
            self.applied = max(self.applied, rd.committed[-1].index)
        if not self.can_vouch and not self.amnesia and log.stable >= self.vouch_mark:
            self.can_vouch = True  # repaired up to what we had acknowledged
            self.counters["repairs_completed"] += 1
        if self.role is Role.LEADER:
            self._maybe_commit()

    def status(self) -> Status:
        peers = {}
        for pid, pr in self.progress.items():
            since = self.ticks - pr.last_contact
            peers[pid] = PeerStatus(
                pid, pr.match, pr.next, pr.state.value, since,
                since < self.cfg.election_ticks_min, self.log.last_index - pr.match,
                pr.snapshot.offset if pr.snapshot else 0)
        return Status(
            self.id, self.group, self.role, self.term, self.leader, self.vote, self.commit,
            self.applied, self.log.first_index, self.log.last_index, self.log.stable,
            self.voters, self.can_vouch, self.vouch_mark, self.amnesia, self.transferee, peers,
            dict(self.counters), max(self.leader_commit, self.commit))

    def snapshot_data(self) -> bytes | None:
        """The data of the snapshot the log starts after (None when there is none)."""
        if self._snap_data is None and self.log.snap_index > 0:
            self._snap_data = self._view.read_snapshot()
        return self._snap_data

    # Roles ----------------------------------------------------------------------------------

    def _random_timeout(self) -> int:
        return self.rng.randint(self.cfg.election_ticks_min, self.cfg.election_ticks_max)

    def _reset_timers(self) -> None:
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_timeout = self._random_timeout()

    def _become_follower(self, term: int, leader: str | None) -> None:
        if term != self.term:
            self.term = term
            self.vote = None
        self.role = Role.FOLLOWER
        self.leader = leader
        self.votes = {}
        self.progress = {}
        self.transferee = None
        self._reset_timers()

    def _promotable(self) -> bool:
        """May this node campaign? It must vouch for its log, and be a voter, or be removed
        by a change that is not known committed: the node holding the newest entries may be
        the one whose removal they contain, and only it can finish that change (it counts only
        the new voters, and steps down once the change commits, thesis §4.2.2)."""
        member = (self.id in self.voters
                  or (self.membership.changes and self.membership.last_change_index > self.commit))
        return bool(member) and self.can_vouch and not self.amnesia

    def _in_lease(self) -> bool:
        if not self.cfg.check_quorum:
            return False
        if self.role is Role.LEADER:
            return True
        return self.leader is not None and self.election_elapsed < self.cfg.election_ticks_min

    def _campaign(self, transfer: bool = False) -> None:
        if not self._promotable():
            return
        if self.cfg.prevote and not transfer:
            self.role = Role.PRECANDIDATE
            self.leader = None
            self.votes = {self.id: True}
            self.counters["prevotes_started"] += 1
            if not self._tally():
                self._request_votes(self.term + 1, prevote=True, transfer=False)
            return
        self._campaign_real(transfer)

    def _campaign_real(self, transfer: bool) -> None:
        self._become_follower(self.term + 1, None)
        self.role = Role.CANDIDATE
        self.vote = self.id
        self.votes = {self.id: True}
        self.counters["elections_started"] += 1
        if not self._tally():
            self._request_votes(self.term, prevote=False, transfer=transfer)

    def _request_votes(self, term: int, prevote: bool, transfer: bool) -> None:
        for peer in sorted(self.voters):
            if peer != self.id:
                self._msgs.append(RequestVote(self.group, self.id, peer, term, self.log.last_index,
                                              self.log.last_term, prevote, transfer))

    def _tally(self) -> bool:
        """Count votes; act on a decision. True when the election is decided."""
        voters = self.voters
        need = quorum(len(voters))
        granted = sum(1 for v, ok in self.votes.items() if ok and v in voters)
        refused = sum(1 for v, ok in self.votes.items() if not ok and v in voters)
        if granted >= need:
            if self.role is Role.PRECANDIDATE:
                self._campaign_real(transfer=False)
            else:
                self._become_leader()
            return True
        if refused > len(voters) - need:
            self._become_follower(self.term, None)
            return True
        return False

    def _become_leader(self) -> None:
        self.role = Role.LEADER
        self.leader = self.id
        self.transferee = None
        self.counters["elections_won"] += 1
        self._reset_timers()
        self.progress = {}
        for peer in sorted(self.voters):  # sorted: iteration order must not depend on hashing
            if peer != self.id:
                self.progress[peer] = Progress(next=self.log.last_index + 1,
                                               last_contact=self.ticks)
        self.term_start = self._append_own(EntryType.NOOP, b"")

    def _tick_leader(self) -> None:
        if self.cfg.check_quorum and not self._quorum_active():
            self.counters["checkquorum_stepdowns"] += 1
            self._become_follower(self.term, None)
            return
        if self.transferee is not None:
            self.transfer_elapsed += 1
            if self.transfer_elapsed >= self.cfg.transfer_timeout:
                self.transferee = None
                self.counters["transfers_aborted"] += 1
        self.heartbeat_elapsed += 1
        if self.heartbeat_elapsed >= self.cfg.heartbeat_ticks:
            self.heartbeat_elapsed = 0
            for peer in list(self.progress):
                self._heartbeat(peer)

    def _quorum_active(self) -> bool:
        voters = self.voters
        active = 1 if self.id in voters else 0
        for peer, pr in self.progress.items():
            if peer in voters and self.ticks - pr.last_contact < self.cfg.election_ticks_min:
                active += 1
        return active >= quorum(len(voters))

    # Leader: log and replication ------------------------------------------------------------

    def _append_own(self, etype: EntryType, data: bytes) -> int:
        index = self.log.last_index + 1
        self.log.append([Entry(self.term, index, etype, data)])
        if etype is EntryType.CONFIG:
            self.membership.append(index, decode_voters(data))
            self._sync_progress()
        self._bcast = True
        return index

    def _sync_progress(self) -> None:
        """Track exactly the voters of the configuration in force."""
        voters = self.voters
        for peer in list(self.progress):
            if peer not in voters:
                del self.progress[peer]
        for peer in sorted(voters):
            if peer != self.id and peer not in self.progress:
                self.progress[peer] = Progress(next=self.log.last_index + 1,
                                               last_contact=self.ticks)

    def _send(self, msg: Message) -> None:
        self._msgs.append(msg)

    def _broadcast_append(self, commit_notice: bool = False) -> None:
        for peer in list(self.progress):
            sent = False
            while self._send_append(peer):
                sent = True
                if self.progress[peer].state is not PeerState.REPLICATE:
                    break
            if commit_notice and not sent:
                self._heartbeat(peer, tail=False)
        self._commit_sent = self.commit

    def _send_append(self, peer: str) -> bool:
        """Send the next append to `peer` if flow control allows; True if something left."""
        pr = self.progress[peer]
        if pr.state is PeerState.SNAPSHOT:
            return False
        if pr.state is PeerState.PROBE and pr.probe_sent:
            return False
        if pr.state is PeerState.REPLICATE and (pr.inflight_full(self.cfg.max_inflight)
                                                or pr.next > self.log.last_index):
            return False
        prev = pr.next - 1
        prev_term = self.log.term(prev)
        if prev_term is None:
            if prev < self.log.snap_index:
                self._start_snapshot(peer, pr)
                return False
            pr.next = self.log.last_index + 1  # beyond our log (cannot happen): restart probe
            prev = pr.next - 1
            prev_term = self.log.last_term
        entries = self.log.slice(pr.next, self.log.last_index, self.cfg.max_batch_bytes,
                                 self.cfg.max_batch_entries)
        self._send(AppendEntries(self.group, self.id, peer, self.term, prev, prev_term,
                                 self.commit, entries))
        if entries:
            pr.sent(entries[-1].index)
        elif pr.state is PeerState.PROBE:
            pr.probe_sent = True
        return True

    def _heartbeat(self, peer: str, tail: bool = True) -> None:
        """Keep the lease, carry the commit index, and find out about lost appends."""
        pr = self.progress[peer]
        if pr.state is PeerState.PROBE:
            pr.probe_sent = False
            self._send_append(peer)
            return
        if pr.state is PeerState.SNAPSHOT:
            tr = pr.snapshot
            if tr is not None and self.ticks - tr.sent_tick >= self.cfg.heartbeat_ticks:
                self._send_chunk(peer, pr)  # the chunk or its answer was lost: send it again
            prev = pr.match
        else:
            # Caught up: confirm the match. Otherwise ask about the last index sent, so that a
            # lost append shows up as a rejection (the only thing that may move `next` back).
            prev = pr.match if (not tail or pr.next - 1 <= pr.match) else pr.next - 1
        prev_term = self.log.term(prev)
        if prev_term is None:
            # Compacted away since it was sent: ask about the snapshot point instead. A
            # follower without it rejects, which sends it down the snapshot path.
            prev, prev_term = self.log.snap_index, self.log.snap_term
        self._send(AppendEntries(self.group, self.id, peer, self.term, prev, prev_term,
                                 self.commit, []))

    def _handle_append_response(self, m: AppendResponse) -> None:
        if self.role is not Role.LEADER:
            return
        pr = self.progress.get(m.src)
        if pr is None:
            return
        if m.incarnation < pr.incarnation:
            self.counters["stale_responses"] += 1
            return
        restarted = m.incarnation > pr.incarnation
        pr.incarnation = m.incarnation
        pr.last_contact = self.ticks
        if m.success:
            if pr.update(m.index):
                if pr.state is PeerState.PROBE:
                    pr.become_replicate()
                elif pr.state is PeerState.SNAPSHOT and pr.match >= self.log.snap_index:
                    pr.become_probe()
                self._maybe_commit()
                if self.role is not Role.LEADER:  # our own removal committed
                    return
                if m.src == self.transferee and pr.match == self.log.last_index:
                    self._send(TimeoutNow(self.group, self.id, m.src, self.term))
            while self._send_append(m.src):
                if pr.state is not PeerState.REPLICATE:
                    break
            return
        self.counters["append_rejections_received"] += 1
        probe_next = self.log.find_conflict_by_term(m.hint_index, m.hint_term) + 1
        if restarted:
            pr.restarted(m.index, probe_next)
        elif not pr.reject(m.index, probe_next):
            self.counters["stale_responses"] += 1
            return
        self._send_append(m.src)

    def _maybe_commit(self) -> None:
        """Commit the highest index durable on a majority, if it is of this term (§5.4.2)."""
        voters = self.voters
        matches = [pr.match for p, pr in self.progress.items() if p in voters]
        if self.id in voters:
            matches.append(self.log.stable)
        if not matches:
            return
        matches.sort(reverse=True)
        n = matches[quorum(len(voters)) - 1] if len(matches) >= quorum(len(voters)) else 0
        if n > self.commit and self.log.term(n) == self.term:
            self.commit = n
            self._bcast = True
            if (self.id not in voters and self.commit >= self.membership.last_change_index):
                self._step_down_removed()

    def _step_down_removed(self) -> None:
        """Our removal committed: hand over to the most up-to-date voter, then follow."""
        best = max(self.progress.items(), key=lambda kv: kv[1].match, default=None)
        if best is not None and best[1].match == self.log.last_index:
            self._send(TimeoutNow(self.group, self.id, best[0], self.term))
        self._broadcast_append(commit_notice=True)  # let the others learn the commit at once
        self._become_follower(self.term, None)

    # Snapshots: leader side -----------------------------------------------------------------

    def _start_snapshot(self, peer: str, pr: Progress) -> None:
        data = self.snapshot_data()
        if data is None:
            return
        pr.become_snapshot(self.log.snap_index, self.log.snap_term, self.ticks)
        self.counters["snapshots_sent"] += 1
        self._send_chunk(peer, pr)

    def _send_chunk(self, peer: str, pr: Progress) -> None:
        tr = pr.snapshot
        data = self.snapshot_data()
        if tr is None or data is None:
            return
        if tr.index != self.log.snap_index:  # compacted again meanwhile: send the newer one
            pr.become_snapshot(self.log.snap_index, self.log.snap_term, self.ticks)
            tr = pr.snapshot
            assert tr is not None
        chunk = data[tr.offset:tr.offset + self.cfg.snapshot_chunk_bytes]
        done = tr.offset + len(chunk) >= len(data)
        tr.sent_tick = self.ticks
        self.counters["snapshot_chunks_sent"] += 1
        self._send(InstallSnapshot(
            self.group, self.id, peer, self.term, tr.index, tr.term,
            tuple(sorted(self.membership.at(tr.index))), len(data), zlib.crc32(data),
            tr.offset, chunk, done))

    def _handle_snapshot_response(self, m: SnapshotResponse) -> None:
        if self.role is not Role.LEADER:
            return
        pr = self.progress.get(m.src)
        if pr is None or m.incarnation < pr.incarnation:
            return
        pr.incarnation = m.incarnation
        pr.last_contact = self.ticks
        if m.done:
            pr.update(m.index)
            if pr.state is PeerState.SNAPSHOT:
                pr.become_probe()
                pr.next = max(pr.next, pr.match + 1)
            self._maybe_commit()
            if self.role is Role.LEADER:
                self._send_append(m.src)
            return
        tr = pr.snapshot
        if pr.state is not PeerState.SNAPSHOT or tr is None or m.index != tr.index:
            return
        tr.offset = m.offset
        self._send_chunk(m.src, pr)

    # Follower side --------------------------------------------------------------------------

    def _step_stale(self, msg: Message) -> None:
        """A message from an older term."""
        if isinstance(msg, (AppendEntries, InstallSnapshot)):
            # A deposed leader: answer with our term so that it steps down.
            self._send(AppendResponse(self.group, self.id, msg.src, self.term, False, 0,
                                      incarnation=self.boot))
        elif isinstance(msg, RequestVote):
            self._send(VoteResponse(self.group, self.id, msg.src, self.term, False, msg.prevote,
                                    VoteReject.STALE_TERM))

    def _handle_vote_request(self, m: RequestVote) -> None:
        up_to_date = (m.last_term, m.last_index) >= (self.log.last_term, self.log.last_index)
        if m.prevote:
            reason = VoteReject.NONE
            if m.term <= self.term:
                reason = VoteReject.STALE_TERM
            elif not self.can_vouch or self.amnesia:
                reason = VoteReject.CANNOT_VOUCH
            elif not m.transfer and self._in_lease():
                reason = VoteReject.IN_LEASE
            elif not up_to_date:
                reason = VoteReject.LOG_BEHIND
            grant = reason is VoteReject.NONE
            if reason is VoteReject.CANNOT_VOUCH:
                self.counters["votes_refused_cannot_vouch"] += 1
            self._send(VoteResponse(self.group, self.id, m.src, m.term if grant else self.term,
                                    grant, True, reason))
            return
        reason = VoteReject.NONE
        if not (self.vote == m.src or (self.vote is None and self.leader is None)):
            reason = VoteReject.ALREADY_VOTED
        elif not self.can_vouch or self.amnesia:
            reason = VoteReject.CANNOT_VOUCH
        elif not up_to_date:
            reason = VoteReject.LOG_BEHIND
        grant = reason is VoteReject.NONE
        if grant:
            self.vote = m.src
            self._reset_timers()
        elif reason is VoteReject.CANNOT_VOUCH:
            self.counters["votes_refused_cannot_vouch"] += 1
        self._send(VoteResponse(self.group, self.id, m.src, self.term, grant, False, reason))

    def _handle_vote_response(self, m: VoteResponse) -> None:
        # A pre-vote is granted with the term asked for, refused with the voter's own term.
        pre = (self.role is Role.PRECANDIDATE and m.prevote
               and (m.term == self.term + 1 or (not m.granted and m.term == self.term)))
        real = self.role is Role.CANDIDATE and not m.prevote and m.term == self.term
        if pre or real:
            self.votes[m.src] = m.granted
            self._tally()

    def _handle_timeout_now(self, m: TimeoutNow) -> None:
        if self.role is not Role.LEADER and m.src == self.leader:
            self._campaign(transfer=True)

    def _follow(self, leader: str) -> None:
        if self.role is not Role.FOLLOWER:
            self._become_follower(self.term, leader)
        self.leader = leader
        self.election_elapsed = 0

    def _handle_append(self, m: AppendEntries) -> None:
        if self.role is Role.LEADER:
            return  # two leaders in one term: impossible while votes are honest
        self._follow(m.src)
        self.leader_commit = max(self.leader_commit, m.commit)
        log = self.log
        entries = m.entries
        if m.prev_index < log.snap_index:
            # The start overlaps our snapshot, which holds only committed (identical) entries.
            entries = [e for e in entries if e.index > log.snap_index]
        elif log.term(m.prev_index) != m.prev_term:
            hint = log.find_conflict_by_term(min(m.prev_index, log.last_index), m.prev_term)
            self.counters["append_rejections_sent"] += 1
            self._send(AppendResponse(self.group, self.id, m.src, self.term, False, m.prev_index,
                                      hint, log.term(hint) or 0, self.boot))
            return
        for k, e in enumerate(entries):
            if e.index > log.last_index:
                self._append_follower(entries[k:])
                break
            if log.term(e.index) == e.term:
                continue  # a duplicate: never truncate on it
            if e.index <= self.commit:
                raise SafetyViolation(f"{self.id}: append conflicts with committed entry "
                                      f"{e.index} (commit {self.commit})")
            self._truncate(e.index)
            self._append_follower(entries[k:])
            break
        last_new = m.prev_index + len(m.entries)
        if m.commit > self.commit:
            self.commit = max(self.commit, min(m.commit, last_new, log.last_index))
        self._send(AppendResponse(self.group, self.id, m.src, self.term, True,
                                  max(last_new, self.commit), incarnation=self.boot))

    def _append_follower(self, entries: list[Entry]) -> None:
        self.log.append(entries)
        for e in entries:
            if e.type is EntryType.CONFIG:
                self.membership.append(e.index, decode_voters(e.data))

    def _truncate(self, index: int) -> None:
        self.log.truncate(index)
        self.membership.truncate(index)

    def _handle_snapshot(self, m: InstallSnapshot) -> None:
        if self.role is Role.LEADER:
            return
        self._follow(m.src)
        self.counters["snapshot_chunks_received"] += 1
        if m.index <= self.commit:  # we already hold (committed) everything it covers
            self._send(SnapshotResponse(self.group, self.id, m.src, self.term, m.index, m.size,
                                        True, self.boot))
            return
        rx = self._snap_rx
        if rx is None or (rx.leader_term, rx.index, rx.term) != (m.term, m.index, m.snap_term):
            rx = self._snap_rx = _SnapshotReceiver(m.term, m.index, m.snap_term)
        if m.offset == len(rx.buf):
            rx.buf += m.chunk
        if not (m.done and len(rx.buf) == m.size and m.offset + len(m.chunk) == m.size):
            self._send(SnapshotResponse(self.group, self.id, m.src, self.term, m.index,
                                        len(rx.buf), False, self.boot))
            return
        self._snap_rx = None
        data = bytes(rx.buf)
        if zlib.crc32(data) != m.crc:
            self.counters["snapshot_crc_errors"] += 1
            self._send(SnapshotResponse(self.group, self.id, m.src, self.term, m.index, 0,
                                        False, self.boot))
            return
        self._install(SnapshotMeta(m.index, m.snap_term, frozenset(m.voters)), data)
        self._send(SnapshotResponse(self.group, self.id, m.src, self.term, m.index, m.size, True,
                                    self.boot))

    def _install(self, meta: SnapshotMeta, data: bytes) -> None:
        log = self.log
        if log.term(meta.index) == meta.term:
            # Our log continues the snapshot: keep the suffix (it may be ahead).
            log.compact(meta.index)
            self.membership.compact(meta.index)
            self.membership.base = meta.voters
            reset = False
        else:
            log.reset(meta.index, meta.term, agreed=self.commit)
            self.membership.reset(meta.index, meta.voters)
            reset = True
        self.commit = max(self.commit, meta.index)
        self._snap_data = data
        self._pending_install = Snapshot(meta, data)
        self._install_reset = reset or self._install_reset
        self.counters["snapshots_installed"] += 1
