"""The meta group's state machine: which streams and consumers exist, where they live.

Every JetStream server in the cluster applies the same committed ops in the same order, so all
agree on the assignments: a stream's config, its Raft group name and the servers that hold it
(`peers`), and the same for each consumer. The meta leader decides (validation, placement) before
it proposes; `apply` only re-checks what two racing proposals could both have passed, so that
whatever is applied is applied identically everywhere.

Ops and snapshots are JSON: they are rare (API calls), small, and readable in a log dump.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import asdict, dataclass, field
from typing import Any

ADD_STREAM = "add_stream"
UPDATE_STREAM = "update_stream"
DELETE_STREAM = "delete_stream"
ADD_CONSUMER = "add_consumer"
DELETE_CONSUMER = "delete_consumer"


@dataclass
class StreamAssignment:
    name: str
    config: dict[str, Any]  # StreamConfig.to_json()
    group: str  # the Raft group of an R3 stream; "" for R1 (no group)
    peers: list[str]  # server names; peers[0] is the preferred first leader
    created: int  # ns

    @property
    def replicated(self) -> bool:
        return bool(self.group)


@dataclass
class ConsumerAssignment:
    stream: str
    name: str
    config: dict[str, Any]  # ConsumerConfig.to_json()
    group: str
    peers: list[str]
    created: int

    @property
    def replicated(self) -> bool:
        return bool(self.group)


@dataclass
class Change:
    """What one applied op did, for the server to act on (start or stop local replicas)."""

    op: str
    stream: StreamAssignment | None = None
    consumer: ConsumerAssignment | None = None
    previous: StreamAssignment | None = None  # update: the assignment before
    error: str = ""  # refused at apply (a racing proposal got there first)
    request: dict[str, Any] = field(default_factory=dict)  # the op: its id, reply, time


@dataclass
class MetaState:
    streams: dict[str, StreamAssignment] = field(default_factory=dict)
    consumers: dict[str, dict[str, ConsumerAssignment]] = field(default_factory=dict)

    def apply(self, data: bytes) -> Change:
        op = json.loads(data)
        change = self._apply(op)
        change.request = op
        return change

    def _apply(self, op: dict[str, Any]) -> Change:
        kind = op.get("op", "")
        if kind == ADD_STREAM:
            return self._add_stream(StreamAssignment(**op["stream"]))
        if kind == UPDATE_STREAM:
            return self._update_stream(StreamAssignment(**op["stream"]))
        if kind == DELETE_STREAM:
            return self._delete_stream(op["name"])
        if kind == ADD_CONSUMER:
            return self._add_consumer(ConsumerAssignment(**op["consumer"]))
        if kind == DELETE_CONSUMER:
            return self._delete_consumer(op["stream"], op["name"])
        return Change(kind, error=f"unknown meta op {kind!r}")

    def _add_stream(self, sa: StreamAssignment) -> Change:
        existing = self.streams.get(sa.name)
        if existing is not None:
            return Change(ADD_STREAM, stream=existing,
                          error="" if existing.config == sa.config else "stream name in use")
        self.streams[sa.name] = sa
        self.consumers.setdefault(sa.name, {})
        return Change(ADD_STREAM, stream=sa)

    def _update_stream(self, sa: StreamAssignment) -> Change:
        previous = self.streams.get(sa.name)
        if previous is None:
            return Change(UPDATE_STREAM, error="stream not found")
        self.streams[sa.name] = sa
        return Change(UPDATE_STREAM, stream=sa, previous=previous)

    def _delete_stream(self, name: str) -> Change:
        sa = self.streams.pop(name, None)
        if sa is None:
            return Change(DELETE_STREAM, error="stream not found")
        self.consumers.pop(name, None)
        return Change(DELETE_STREAM, stream=sa)

    def _add_consumer(self, ca: ConsumerAssignment) -> Change:
        sa = self.streams.get(ca.stream)
        if sa is None:
            return Change(ADD_CONSUMER, consumer=ca, error="stream not found")
        consumers = self.consumers.setdefault(ca.stream, {})
        previous = consumers.get(ca.name)
        if previous is not None:
            # An update keeps the consumer's group and peers: only the config changes.
            ca.group, ca.peers, ca.created = previous.group, previous.peers, previous.created
        consumers[ca.name] = ca
        return Change(ADD_CONSUMER, stream=sa, consumer=ca)

    def _delete_consumer(self, stream: str, name: str) -> Change:
        ca = self.consumers.get(stream, {}).pop(name, None)
        if ca is None:
            return Change(DELETE_CONSUMER, error="consumer not found")
        return Change(DELETE_CONSUMER, stream=self.streams.get(stream), consumer=ca)

    # Queries

    def consumer(self, stream: str, name: str) -> ConsumerAssignment | None:
        return self.consumers.get(stream, {}).get(name)

    def assets_per_peer(self) -> dict[str, int]:
        """How many streams and consumers each server holds (placement spreads them)."""
        counts: dict[str, int] = {}
        for sa in self.streams.values():
            for peer in sa.peers:
                counts[peer] = counts.get(peer, 0) + 1
        for consumers in self.consumers.values():
            for ca in consumers.values():
                for peer in ca.peers:
                    counts[peer] = counts.get(peer, 0) + 1
        return counts

    # Snapshots

    def snapshot(self) -> bytes:
        body = {"streams": [asdict(sa) for sa in self.streams.values()],
                "consumers": [asdict(ca) for cs in self.consumers.values() for ca in cs.values()]}
        return json.dumps(body, separators=(",", ":")).encode()

    @classmethod
    def restore(cls, data: bytes) -> MetaState:
        body = json.loads(data)
        state = cls()
        for raw in body.get("streams", []):
            sa = StreamAssignment(**raw)
            state.streams[sa.name] = sa
            state.consumers.setdefault(sa.name, {})
        for raw in body.get("consumers", []):
            ca = ConsumerAssignment(**raw)
            state.consumers.setdefault(ca.stream, {})[ca.name] = ca
        return state


# Encoding the proposals

# Encoding the proposals. `extra` carries what only the servers acting on the op use: the
# proposal's id (its proposer waits for it), the client's reply subject, the time.

def add_stream_op(sa: StreamAssignment, **extra: Any) -> bytes:
    return _encode({"op": ADD_STREAM, "stream": asdict(sa)}, extra)


def update_stream_op(sa: StreamAssignment, **extra: Any) -> bytes:
    return _encode({"op": UPDATE_STREAM, "stream": asdict(sa)}, extra)


def delete_stream_op(name: str, **extra: Any) -> bytes:
    return _encode({"op": DELETE_STREAM, "name": name}, extra)


def add_consumer_op(ca: ConsumerAssignment, **extra: Any) -> bytes:
    return _encode({"op": ADD_CONSUMER, "consumer": asdict(ca)}, extra)


def delete_consumer_op(stream: str, name: str, **extra: Any) -> bytes:
    return _encode({"op": DELETE_CONSUMER, "stream": stream, "name": name}, extra)


def _encode(op: dict[str, Any], extra: dict[str, Any]) -> bytes:
    return json.dumps({**op, **extra}, separators=(",", ":")).encode()


# Placement

class NoPlacement(Exception):
    """Not enough servers for the replicas asked for."""


def place(replicas: int, online: list[str], load: dict[str, int],
          rng: random.Random | None = None) -> list[str]:
    """Choose `replicas` distinct servers, least loaded first (ties broken at random, so leaders
    spread). The first is the preferred leader."""
    if replicas > len(online):
        raise NoPlacement(f"no suitable peers for placement: {replicas} replicas asked, "
                          f"{len(online)} servers online")
    rng = rng or random.Random()
    shuffled = list(online)
    rng.shuffle(shuffled)
    shuffled.sort(key=lambda peer: load.get(peer, 0))
    return shuffled[:replicas]


def group_name(kind: str, replicas: int, storage: str) -> str:
    """`S-R3F-<8 random>` / `C-R3M-...`, nats-server's shape for Raft group names."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    suffix = "".join(alphabet[b % len(alphabet)] for b in os.urandom(8))
    return f"{kind}-R{replicas}{'M' if storage == 'memory' else 'F'}-{suffix}"
