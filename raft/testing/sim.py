"""The simulator: a `Cluster` under random client load and a nemesis.

`Sim(seed, config).run(steps)` processes `steps` events of a random schedule: client proposals
to the leader, and faults drawn from those `SimConfig` enables: crashes and restarts (everything
not fsynced is lost, an unsynced tail may be torn), partitions of arbitrary sets, a follower left
behind, coordinated power loss, damage to a down node's files (bit flips, truncated segments,
zeroed ranges, damaged snapshot, one damaged hard-state copy, damaged vouch file; one node at a
time), reliability.md's corrupted-voter scenario, membership changes and leadership transfers.
Message loss, duplication, delay and damage come from the network (`raft.testing.network`) on
every run. `settle()` then checks liveness. The invariants (`raft.testing.cluster`) are checked
after every event; a failing seed replays exactly.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass

from raft.core import RaftError
from raft.testing.cluster import Cluster, Event


@dataclass(frozen=True, slots=True)
class Client(Event):
    """A client proposes to the leader."""


@dataclass(frozen=True, slots=True)
class Nemesis(Event):
    """The nemesis strikes."""


@dataclass(frozen=True, slots=True)
class CorruptedVoterPhase2(Event):
    """The second phase of the corrupted-voter fault."""


_RANDOM = (Client, Nemesis, CorruptedVoterPhase2)  # what ends with `run`


class Sim(Cluster):
    """A `Cluster` with random clients and faults (`run`)."""

    # Running ----------------------------------------------------------------------------------

    def run(self, steps: int, *, clients: bool = True, nemesis: bool = True) -> None:
        """Run `steps` events with random client load and faults."""
        if clients:
            self._at(1, Client())
        if nemesis:
            self._at(self.cfg.nemesis_every, Nemesis())
        end = self.steps + steps
        while self.steps < end and self.step():
            pass
        self._q = [ev for ev in self._q if not isinstance(ev[2], _RANDOM)]
        heapq.heapify(self._q)

    def _event(self, event: Event) -> None:
        if isinstance(event, Client):
            self.propose()
            self._at(self.rng.randint(1, 2 * self.cfg.client_every), event)
        elif isinstance(event, Nemesis):
            self._nemesis()
            self._at(self.rng.randint(1, 2 * self.cfg.nemesis_every), event)
        elif isinstance(event, CorruptedVoterPhase2):
            self._corrupted_voter_phase2()
        else:
            super()._event(event)

    # Faults -----------------------------------------------------------------------------------

    def change_membership(self) -> None:
        """A random single-server change through the current leader, if one is allowed."""
        nid = self.leader()
        if nid is None:
            return
        core = self.nodes[nid].core
        assert core is not None
        voters = core.voters
        candidates = [i for i in self.nodes if i not in voters]
        try:
            if candidates and (len(voters) < 4 or self.rng.random() < 0.5):
                self.change(nid, add=self.rng.choice(candidates))
            elif len(voters) > 3:
                self.change(nid, remove=self.rng.choice(sorted(voters)))
        except RaftError as exc:  # NotLeader / MembershipError: not now
            self.count(type(exc).__name__)

    def _nemesis(self) -> None:
        cfg, rng = self.cfg, self.rng
        actions: list[Callable[[], None]] = []
        if cfg.crashes:
            actions += [self._fault_crash, self._fault_crash, self._fault_restart,
                        self._fault_restart, self._fault_restart]
        if cfg.partitions:
            actions += [self._fault_partition, self._fault_heal, self._fault_lag]
        if cfg.power_loss:
            actions.append(self.power_loss)
        if cfg.crashes:
            actions.append(self._fault_leader_and_follower)
        if cfg.damage and cfg.crashes:
            actions += [self._fault_damage, self._fault_corrupted_voter]
        if cfg.membership:
            actions.append(self.change_membership)
        if cfg.transfers:
            actions.append(self._fault_transfer)
        if actions:
            rng.choice(actions)()

    def _fault_crash(self) -> None:
        live = self.live()
        if not live:
            return
        target = self.leader() if self.rng.random() < 0.4 else None
        nid = target or self.rng.choice(live).id
        self.note(f"crash {nid}")
        self.crash(nid)

    def _fault_restart(self) -> None:
        down = [i for i in sorted(self.started) if not self.up(i)]
        if down:
            nid = self.rng.choice(down)
            self.note(f"restart {nid}")
            self.start(nid)

    def _fault_partition(self) -> None:
        ids = sorted(self.started)
        if self.rng.random() < 0.4 and self.leader() is not None:
            lead = self.leader()
            assert lead is not None
            self.partition([lead], [i for i in ids if i != lead])
            return
        self.rng.shuffle(ids)
        cut = self.rng.randint(1, len(ids) - 1) if len(ids) > 1 else 1
        self.partition(ids[:cut], ids[cut:])

    def _fault_heal(self) -> None:
        self.heal()

    def _fault_lag(self) -> None:
        """Cut one follower off (as if paused), so that it falls behind."""
        lead = self.leader()
        others = [i for i in sorted(self.started) if i != lead and self.up(i)]
        if others:
            lag = self.rng.choice(others)
            self.partition([lag], [i for i in sorted(self.started) if i != lag])

    def _most_current_follower(self, lead: str) -> str | None:
        core = self.nodes[lead].core
        assert core is not None
        peers = [(pr.match, p) for p, pr in core.progress.items() if self.up(p)]
        return max(peers)[1] if peers else None

    def _fault_leader_and_follower(self) -> None:
        """Kill the leader and the follower most likely to hold the newest entries."""
        lead = self.leader()
        if lead is None:
            return
        other = self._most_current_follower(lead)
        self.note(f"crash leader {lead} and follower {other}")
        self.crash(lead)
        if other is not None:
            self.crash(other)

    def _fault_corrupted_voter(self) -> None:
        """reliability.md's scenario, in two phases: a follower is cut off and falls behind;
        later the leader dies, the follower that made its entries committed loses the tail of
        its log while down, and the lagging node comes back."""
        lead = self.leader()
        if lead is None or any(n.damaged for n in self.nodes.values()):
            return
        self._fault_lag()
        self._at(self.rng.randint(5, 40) * self.cfg.tick, CorruptedVoterPhase2())

    def _corrupted_voter_phase2(self) -> None:
        lead = self.leader()
        if lead is None or any(n.damaged for n in self.nodes.values()):
            return
        other = self._most_current_follower(lead)
        if other is None:
            return
        self.note(f"corrupted voter: crash leader {lead}, damage {other}")
        self.crash(lead)
        self.crash(other)
        node = self.nodes[other]
        node.files.damage(self.rng, kind="tail")
        node.damaged = True
        self.heal()
        self.start(other)

    def _fault_damage(self) -> None:
        down = [i for i in sorted(self.started) if not self.up(i) and not self.nodes[i].damaged]
        if not down or any(n.damaged for n in self.nodes.values()):
            return  # damage one node at a time: a majority must still vouch for its log
        self.damage(self.rng.choice(down))

    def _fault_transfer(self) -> None:
        nid = self.leader()
        if nid is None:
            return
        core = self.nodes[nid].core
        assert core is not None
        others = sorted(core.voters - {nid})
        if others:
            self.transfer(nid, self.rng.choice(others))
