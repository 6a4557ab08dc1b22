"""Consensus for the broker, knowing nothing of NATS: one Raft group per replicated thing.

    from raft import RaftNode, RaftDriver, RaftLog, RaftConfig

See raft/README.md for the rules, the module map and how the broker drives a group. Test tooling
(the simulator, an in-process network) is in `raft.testing`, which nothing here imports.
"""

from raft.codec import MalformedFrame, decode, encode, peek_group
from raft.core import MembershipError, NotLeader, RaftError, RaftNode, SafetyViolation
from raft.driver import Application, DriverStopped, ProposalFailed, RaftDriver
from raft.log import LogFailed, RaftLog
from raft.messages import Entry, EntryType, Message
from raft.options import RaftConfig
from raft.state import HardState, Ready, Role, Snapshot, SnapshotMeta, Status, Vouch
from raft.transport import Demux

__all__ = [
    "Application",
    "Demux",
    "DriverStopped",
    "Entry",
    "EntryType",
    "HardState",
    "LogFailed",
    "MalformedFrame",
    "MembershipError",
    "Message",
    "NotLeader",
    "ProposalFailed",
    "RaftConfig",
    "RaftDriver",
    "RaftError",
    "RaftLog",
    "RaftNode",
    "Ready",
    "Role",
    "SafetyViolation",
    "Snapshot",
    "SnapshotMeta",
    "Status",
    "Vouch",
    "decode",
    "encode",
    "peek_group",
]
