"""The deterministic simulator: random schedules over many seeds, and named scenarios.

Every run checks raft.testing's invariants after every event (one leader per term, log matching,
leader completeness, committed entries never change, state machines agree, acknowledged
proposals survive, undamaged nodes always recover able to vouch) and ends with a liveness check
(heal everything: a leader must emerge and a new proposal must reach every voter).

Sizes (defaults fit `make test` on a 2-core machine; more seeds for soak runs):

    RAFT_SIM_SEEDS=400  RAFT_SIM_STEPS=4000  RAFT_SIM_SEED0=0    three nodes (a pool of five)
    RAFT_SIM_SEEDS5=80                                            five-node clusters
    RAFT_SIM_SEEDS_VARIANT=50                                     each configuration variant
"""

from __future__ import annotations

import logging
import os

import pytest

from raft.core import RaftError
from raft.options import RaftConfig
from raft.state import Role
from raft.testing import Invariant, Sim, SimConfig

SEEDS = int(os.environ.get("RAFT_SIM_SEEDS", "400"))
SEEDS5 = int(os.environ.get("RAFT_SIM_SEEDS5", "80"))
SEEDS_VARIANT = int(os.environ.get("RAFT_SIM_SEEDS_VARIANT", "50"))
STEPS = int(os.environ.get("RAFT_SIM_STEPS", "4000"))
SEED0 = int(os.environ.get("RAFT_SIM_SEED0", "0"))
BATCH = 25

QUIET = SimConfig(drop=0.0, duplicate=0.0, garble=0.0, crashes=False, partitions=False,
                  power_loss=False, damage=False, membership=False, transfers=False)


@pytest.fixture(autouse=True)
def _quiet_raft_logs():
    logging.getLogger("raft").setLevel(logging.CRITICAL)
    yield
    logging.getLogger("raft").setLevel(logging.NOTSET)


def _batches(total: int) -> list[range]:
    return [range(SEED0 + a, SEED0 + min(a + BATCH, total)) for a in range(0, total, BATCH)]


def _run(seed: int, config: SimConfig) -> dict[str, int]:
    sim = Sim(seed, config)
    sim.run(STEPS)
    sim.settle()
    return sim.summary()


@pytest.mark.parametrize("seeds", _batches(SEEDS), ids=lambda r: f"seeds{r.start}-{r.stop - 1}")
def test_random_schedules(seeds):
    totals: dict[str, int] = {}
    for seed in seeds:
        for k, v in _run(seed, SimConfig()).items():
            totals[k] = totals.get(k, 0) + v
    # The schedules really exercise what they are meant to (not a quiet run that proves nothing).
    assert totals["acked"] > 20 * len(seeds)
    assert totals.get("snapshots_installed", 0) > 0 and totals.get("truncations", 0) > 0
    assert totals.get("restarts_cannot_vouch", 0) > 0 and totals.get("repaired", 0) > 0
    assert totals.get("malformed", 0) > 0 and totals.get("membership_changes", 0) > 0


@pytest.mark.parametrize("seeds", _batches(SEEDS5), ids=lambda r: f"seeds{r.start}-{r.stop - 1}")
def test_random_schedules_five_nodes(seeds):
    for seed in seeds:
        _run(seed, SimConfig(nodes=5, pool=6))


# Other regimes: each found bugs the default one did not.
VARIANTS = {
    "large-batches": SimConfig(segment_bytes=8192, raft=RaftConfig(
        heartbeat_ticks=3, election_ticks_min=10, election_ticks_max=20, max_inflight=64,
        max_batch_entries=1000, snapshot_chunk_bytes=1000)),
    "lossy-network": SimConfig(drop=0.2, duplicate=0.2, max_delay=60),
    "no-check-quorum": SimConfig(raft=RaftConfig(
        heartbeat_ticks=2, election_ticks_min=8, election_ticks_max=16, max_inflight=4,
        max_batch_entries=8, snapshot_chunk_bytes=5, check_quorum=False)),
    "no-prevote": SimConfig(raft=RaftConfig(
        heartbeat_ticks=2, election_ticks_min=8, election_ticks_max=16, max_inflight=4,
        max_batch_entries=8, snapshot_chunk_bytes=5, prevote=False)),
}


@pytest.mark.parametrize("seeds", _batches(SEEDS_VARIANT),
                         ids=lambda r: f"seeds{r.start}-{r.stop - 1}")
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_random_schedules_variants(variant, seeds):
    for seed in seeds:
        _run(seed, VARIANTS[variant])


def test_simulation_is_deterministic():
    assert _run(11, SimConfig()) == _run(11, SimConfig())


def _leader(sim: Sim) -> str:
    assert sim.run_until(lambda: sim.leader() is not None, 20000), "no leader"
    leader = sim.leader()
    assert leader is not None
    return leader


def _commit(sim: Sim, n: int, on: list[str]) -> int:
    """Propose n entries through the leader; return the last index once `on` applied it."""
    last = 0
    for i in range(n):
        index = sim.propose(b"v%d" % i)
        assert index is not None
        last = index
    assert sim.run_until(lambda: all(sim.nodes[x].sm.index >= last for x in on), 20000)
    assert last in sim.acked
    return last


def test_pysyncobj_lagging_follower_then_leader_crash_keeps_committed_entries():
    """pysyncobj lost committed entries when a lagging follower and a leader crash met: the
    follower that lagged must not win, and what the majority holds must survive."""
    sim = Sim(1, QUIET)
    lead = _leader(sim)
    fast, lagging = (n for n in ("n1", "n2", "n3") if n != lead)
    sim.partition([lagging], [lead, fast])
    last = _commit(sim, 40, [lead, fast])
    sim.crash(lead)
    sim.crash(fast)  # power loss on the fast follower too: only fsynced bytes survive
    sim.heal()
    sim.start(fast)
    new = _leader(sim)
    assert new == fast, "the lagging follower was elected"
    core = sim.nodes[new].core
    assert core is not None and core.log.last_index >= last
    sim.start(lead)
    _commit(sim, 5, ["n1", "n2", "n3"])


def _corrupted_voter(naive: bool) -> Sim:
    """reliability.md: n1 leads; n2 lags; a batch commits on n1+n3; n1 is killed; n3 loses the
    tail of its log; n3 restarts next to n2."""
    sim = Sim(2, QUIET)
    lead = _leader(sim)
    voter, lagging = (n for n in ("n1", "n2", "n3") if n != lead)
    _commit(sim, 3, [lead, voter, lagging])
    lag_at = sim.nodes[lagging].sm.index
    sim.partition([lagging], [lead, voter])
    _commit(sim, 30, [lead, voter])
    sim.crash(lead)
    sim.crash(voter)
    sim.nodes[voter].files.lose_tail(lag_at - 1)  # now even shorter than the lagging node's
    sim.nodes[voter].damaged = True
    sim.heal()
    sim.start(voter)
    v = sim.nodes[voter].core
    assert v is not None and not v.can_vouch and v.log.last_index < lag_at
    if naive:
        v.can_vouch = True  # what a node without protocol-aware recovery would do
    return sim


def test_corrupted_voter_refuses_to_vote_until_repaired():
    sim = _corrupted_voter(naive=False)
    # Nothing may be elected without the old leader: the lagging node lacks the batch and the
    # damaged one cannot vouch.
    assert not sim.run_until(lambda: sim.leader() is not None, 6000)
    voter = next(n.id for n in sim.nodes.values() if n.damaged)
    assert sim.nodes[voter].core.counters["votes_refused_cannot_vouch"] > 0
    sim.start(next(n for n in ("n1", "n2", "n3") if not sim.up(n)))
    _leader(sim)
    assert sim.run_until(lambda: sim.nodes[voter].core.can_vouch, 20000), "never repaired"
    _commit(sim, 5, ["n1", "n2", "n3"])


def test_corrupted_voter_without_the_rule_loses_committed_entries():
    """The control: the same schedule with a node that votes anyway elects the lagging node,
    and the checker sees committed entries disappear. (So the test above can fail.)"""
    sim = _corrupted_voter(naive=True)
    with pytest.raises(Invariant, match="lacks committed entry"):
        sim.run_until(lambda: sim.leader() is not None, 6000)


def test_coordinated_power_loss_keeps_every_acknowledged_entry():
    cfg = SimConfig(drop=0.0, duplicate=0.0, crashes=False, partitions=False, power_loss=False,
                    damage=False, membership=False, transfers=False, sync_delay=12)
    for seed in range(20):
        sim = Sim(100 + seed, cfg)
        sim.run(600, nemesis=False)
        acked = dict(sim.acked)
        assert acked
        sim.power_loss(restart=False)  # every node at once, mid-sync, torn tails
        for n in ("n1", "n2", "n3"):
            sim.start(n)
            assert sim.nodes[n].core.can_vouch
        lead = _leader(sim)
        core = sim.nodes[lead].core
        assert core is not None
        for index, (term, data) in acked.items():
            if index > core.log.snap_index:
                assert core.log.entry(index).data == data and core.log.term(index) == term
        sim.settle()


def test_isolated_leader_steps_down_within_an_election_timeout():
    sim = Sim(3, QUIET)
    old = _leader(sim)
    _commit(sim, 5, ["n1", "n2", "n3"])
    lost = sim.propose(b"never acknowledged")
    sim.partition([old], [n for n in ("n1", "n2", "n3") if n != old])
    core = sim.nodes[old].core
    assert core is not None
    start = core.ticks
    assert sim.run_until(lambda: core.role is not Role.LEADER, 20000)
    assert core.ticks - start <= sim.cfg.raft.election_ticks_min + 1
    new = _leader(sim)
    assert new != old
    _commit(sim, 5, [n for n in ("n1", "n2", "n3") if n != old])
    sim.heal()
    sim.settle()
    assert lost not in sim.acked or sim.acked[lost][1] != b"never acknowledged"


def test_prevote_keeps_a_rejoining_node_from_disrupting_the_leader():
    for prevote in (True, False):
        cfg = SimConfig(**{**QUIET.__dict__, "raft": RaftConfig(
            heartbeat_ticks=2, election_ticks_min=8, election_ticks_max=16, prevote=prevote)})
        sim = Sim(4, cfg)
        lead = _leader(sim)
        term = sim.nodes[lead].core.term
        other = next(n for n in ("n1", "n2", "n3") if n != lead)
        sim.partition([other], [n for n in ("n1", "n2", "n3") if n != other])
        sim.run_until(lambda: False, 3000)
        sim.heal()
        sim.run_until(lambda: False, 3000)
        disrupted = sim.leader() != lead or sim.nodes[lead].core.term != term
        assert disrupted is (not prevote), f"prevote={prevote}"


def test_leadership_transfer_is_quick():
    sim = Sim(5, QUIET)
    lead = _leader(sim)
    _commit(sim, 3, ["n1", "n2", "n3"])
    target = next(n for n in ("n1", "n2", "n3") if n != lead)
    assert sim.transfer(lead, target)
    t0 = sim.now
    assert sim.run_until(lambda: sim.leader() == target, 20000)
    assert sim.now - t0 < sim.cfg.raft.election_ticks_min * sim.cfg.tick
    _commit(sim, 3, ["n1", "n2", "n3"])


def test_lagging_follower_catches_up_through_a_chunked_snapshot():
    sim = Sim(6, SimConfig(**{**QUIET.__dict__, "compact_every": 10}))
    lead = _leader(sim)
    lagging = next(n for n in ("n1", "n2", "n3") if n != lead)
    sim.partition([lagging], [n for n in ("n1", "n2", "n3") if n != lagging])
    _commit(sim, 80, [n for n in ("n1", "n2", "n3") if n != lagging])
    assert sim.nodes[lead].core.log.snap_index > sim.nodes[lagging].core.log.last_index
    sim.heal()
    sim.settle()
    core = sim.nodes[lagging].core
    assert core.counters["snapshots_installed"] >= 1
    assert core.counters["snapshot_chunks_received"] > 1  # 5-byte chunks of a 12-byte snapshot


def test_membership_changes_under_kills():
    cfg = SimConfig(**{**QUIET.__dict__, "drop": 0.02, "duplicate": 0.02})
    for seed in range(10):
        sim = Sim(200 + seed, cfg)
        plan = [("add", "n4"), ("remove", "n1"), ("add", "n5"), ("remove", "n2"),
                ("add", "n1"), ("remove", "n4")]
        for step, (op, who) in enumerate(plan):
            for _attempt in range(50):
                lead = _leader(sim)
                _commit(sim, 2, [lead])
                try:
                    sim.change(lead, **{op: who})
                except RaftError:  # a change still in progress, or its term not yet committed
                    sim.run_until(lambda: False, 50)
                    continue
                break
            victim = sim.rng.choice(sorted(sim.started))
            sim.crash(victim)  # kill someone (maybe the leader) right after proposing
            sim.run_until(lambda: False, 200 + 50 * step)
            sim.start(victim)
        sim.settle()
        lead = sim.leader()
        assert lead is not None
        assert sim.nodes[lead].core.voters == {"n1", "n3", "n5"}
