"""Test tooling for `raft`: never imported by the production modules of `raft`.

* `raft.testing.disk`: `SimFiles`, a node's Raft directory in memory (crashes keep only what was
  synced; damage the ways a disk can).
* `raft.testing.network`: `SimNetwork`, partitions, loss, duplication, delay, damaged frames.
* `raft.testing.cluster`: `Cluster`, nodes over simulated disks and network on a virtual clock,
  driven by hand, with the safety invariants checked after every event; `SimConfig`,
  `Invariant`.
* `raft.testing.sim`: `Sim`, a `Cluster` under random client load and a nemesis.
* `raft.testing.loopback`: `LoopbackNetwork`, an in-process network for real `RaftDriver`s.

A failing seed replays exactly: `sim = Sim(seed, config); sim.run(steps); sim.settle()`.
"""

from raft.testing.cluster import Cluster, Invariant, SimConfig
from raft.testing.disk import SimFiles
from raft.testing.loopback import LoopbackNetwork
from raft.testing.network import SimNetwork
from raft.testing.sim import Sim

__all__ = ["Cluster", "Invariant", "LoopbackNetwork", "Sim", "SimConfig", "SimFiles", "SimNetwork"]
