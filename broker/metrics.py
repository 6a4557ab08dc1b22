"""/metrics in the Prometheus text format.

Series and labels are those of prometheus-nats-exporter, so dashboards built for nats-server work
unchanged: its `gnatsd_varz_*` server gauges and its JetStream collector's `jetstream_server_*`,
`jetstream_account_*`, `jetstream_stream_*` and `jetstream_consumer_*` series, plus
`jetstream_stream_limit_age_seconds` and the `jetstream_raft_*` group health series of our own.

Every stream and consumer value is read from the info that STREAM.INFO / CONSUMER.INFO answer
with (the same calls build both), and the server and account values from the summary /jsz reports,
so a scrape and an API request at the same moment agree. On a cluster every replica reports its
own copy; the leader's series (`is_stream_leader="true"`, `is_consumer_leader="true"`) are the
authoritative ones.

A scrape of 1,000 streams with a consumer each is ~18,000 samples with ~20 labels each (~7 MB):
the text is written here directly, each label block built once per stream or consumer, rather
than through prometheus-client's per-sample objects. Even so it takes tens of milliseconds, so it
runs in slices (`Slicer`): the event loop gets a turn every few milliseconds, and clients do not
stall while a scrape runs. Each stream's and consumer's numbers are still read in one step, from
one info; different streams may be read a few milliseconds apart.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping, Sized
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol, TypeVar

from common.gotime import NANOS, parse_ns
from raft.state import Role, Status

ACCOUNT = "$G"  # the one (global) account
LEADER_NOTE = '; on a cluster, read the series with {}="true"'
SLICE = 0.005  # seconds of scrape work between two turns of the event loop


# The seams: what the metrics read from the server, declared here so this module imports nothing
# above it. broker.server.Server, broker.jetstream's JetStream & co. satisfy them as they are.

JsonObject = Mapping[str, object]


class ConsumerView(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def stream_name(self) -> str: ...

    def info(self, now: int = 0) -> JsonObject:
        """CONSUMER.INFO's body (single server)."""
        ...


class StreamView(Protocol):
    @property
    def consumers(self) -> Mapping[str, ConsumerView]: ...

    def info(self, subjects_filter: str = "", deleted_details: bool = False,
             now: int = 0) -> JsonObject:
        """STREAM.INFO's body (single server)."""
        ...


# The stream type a server holds, as a type parameter: the cluster's STREAM.INFO takes back the
# streams the engine gave out (its own class), which a plain protocol argument would not match.
S = TypeVar("S", bound=StreamView)
S_co = TypeVar("S_co", bound=StreamView, covariant=True)
S_contra = TypeVar("S_contra", bound=StreamView, contravariant=True)


class RaftDriverView(Protocol):
    @property
    def group(self) -> str: ...

    def status(self) -> Status: ...


class ReplicaView(Protocol):
    """An R3 stream or consumer held here: its Raft group's driver (None until started)."""

    @property
    def driver(self) -> RaftDriverView | None: ...


class ClusterView(Protocol[S_contra]):
    @property
    def name(self) -> str: ...

    @property
    def meta_driver(self) -> RaftDriverView | None: ...

    @property
    def streams(self) -> Mapping[str, ReplicaView]: ...

    @property
    def consumers(self) -> Mapping[tuple[str, str], ReplicaView]: ...

    def meta_leader_name(self) -> str | None: ...

    def stream_info(self, stream: S_contra) -> JsonObject:
        """STREAM.INFO's body on a cluster (with `cluster` and the meta consumer count)."""
        ...

    def consumer_info(self, consumer: ConsumerView) -> JsonObject:
        """CONSUMER.INFO's body on a cluster (with `cluster`)."""
        ...


class JetStreamView(Protocol[S_co]):
    @property
    def streams(self) -> Mapping[str, S_co]: ...

    @property
    def domain(self) -> str: ...


class OptionsView(Protocol):
    @property
    def max_payload(self) -> int: ...


class RoutesView(Protocol):
    @property
    def routes(self) -> Sized: ...


class MetricsServer(Protocol[S]):
    @property
    def server_id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def clients(self) -> Sized: ...

    @property
    def total_connections(self) -> int: ...

    @property
    def subscription_count(self) -> int:
        """Subscriptions over every account."""
        ...

    @property
    def slow_consumers(self) -> int: ...

    @property
    def stale_connections(self) -> int: ...

    @property
    def options(self) -> OptionsView: ...

    @property
    def routes(self) -> RoutesView | None: ...

    @property
    def jetstream(self) -> JetStreamView[S] | None: ...

    @property
    def jetstream_cluster(self) -> ClusterView[S] | None:
        """The meta group and the replicated assets held here, on a cluster."""
        ...

    def totals(self) -> tuple[int, int, int, int]: ...


class JetStreamSummary(NamedTuple):
    """The server-wide JetStream numbers /jsz reports (built by the monitor for both)."""

    max_memory: int
    max_storage: int
    streams: int
    consumers: int
    messages: int
    bytes: int
    memory: int
    storage: int
    reserved_memory: int
    reserved_storage: int


# Families and the text format

Number = int | float


@dataclass(slots=True)
class Family:
    """One gauge and its sample lines, each rendered as it is added: a scrape holds one str
    per sample (no per-sample objects for the garbage collector to walk) and no second pass."""

    name: str
    help: str
    lines: list[str] = field(default_factory=list)

    def add(self, labels: str, value: Number) -> Family:
        self.lines.append(f"{self.name}{{{labels}}} {_number(value)}\n")
        return self


class Slicer:
    """Gives the event loop a turn once SLICE seconds of work went by since the last one."""

    def __init__(self, budget: float = SLICE) -> None:
        self.budget = budget
        self.mark = time.perf_counter()

    async def turn(self) -> None:
        if time.perf_counter() - self.mark >= self.budget:
            await asyncio.sleep(0)
            self.mark = time.perf_counter()


Summarize = Callable[[], JetStreamSummary | None]


async def render_metrics(server: MetricsServer[S], summarize: Summarize) -> bytes:
    """The /metrics body. `summarize` gives /jsz's server-wide numbers (None: JetStream off)."""
    slicer = Slicer()
    return b"".join(await render(await collect(server, summarize, slicer), slicer))


async def collect(server: MetricsServer[S], summarize: Summarize,
                  slicer: Slicer) -> list[Family]:
    jetstream = summarize()  # a pass over every stream: the first slice
    await slicer.turn()
    families = varz_families(server)
    js = server.jetstream
    cluster = server.jetstream_cluster
    labels = server_labels(server, js, cluster)
    families += server_families(labels, jetstream)
    if js is not None and jetstream is not None:
        families += account_families(labels, jetstream)
        families += await asset_families(js, cluster, server.name, labels, slicer)
        if cluster is not None:
            families += await raft_families(cluster, labels, slicer)
    return families


async def render(families: Iterable[Family], slicer: Slicer) -> list[bytes]:
    """The text format, one encoded chunk per family (families without samples left out)."""
    out: list[bytes] = []
    for family in families:
        if not family.lines:
            continue
        name = family.name
        head = f"# HELP {name} {_escape_help(family.help)}\n# TYPE {name} gauge\n"
        out.append((head + "".join(family.lines)).encode())
        await slicer.turn()
    return out


def label_block(names: tuple[str, ...], values: Iterable[str]) -> str:
    return ",".join([f'{n}="{_escape_label(v)}"' for n, v in zip(names, values, strict=True)])


def _escape_label(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: Number) -> str:
    # Integers stay exact (sequences and byte counts pass 2**53 long before they pass 2**63).
    return str(value) if isinstance(value, int) else repr(float(value))


# gnatsd_varz_*

def varz_families(server: MetricsServer[S]) -> list[Family]:
    in_msgs, in_bytes, out_msgs, out_bytes = server.totals()
    routes = server.routes
    values: tuple[tuple[str, str, int], ...] = (
        ("connections", "Current client connections", len(server.clients)),
        ("total_connections", "Client connections since start", server.total_connections),
        ("subscriptions", "Current subscriptions", server.subscription_count),
        ("in_msgs", "Messages received from clients", in_msgs),
        ("out_msgs", "Messages sent to clients", out_msgs),
        ("in_bytes", "Payload bytes received from clients", in_bytes),
        ("out_bytes", "Payload bytes sent to clients", out_bytes),
        ("slow_consumers", "Connections dropped as slow consumers", server.slow_consumers),
        ("stale_connections", "Connections dropped as stale", server.stale_connections),
        ("routes", "Current route connections", len(routes.routes) if routes is not None else 0),
        ("max_payload", "Largest message payload accepted", server.options.max_payload),
    )
    labels = label_block(("server_id",), (server.server_id,))
    return [Family(f"gnatsd_varz_{name}", doc).add(labels, value) for name, doc, value in values]


# jetstream_server_* and jetstream_account_*

SERVER_LABELS = ("server_id", "server_name", "cluster", "domain", "meta_leader", "is_meta_leader")
ACCOUNT_LABELS = ("account", "account_name", "account_id")
STREAM_LABELS = (*ACCOUNT_LABELS, "stream_name", "stream_leader", "is_stream_leader",
                 "stream_raft_group")
CONSUMER_LABELS = ("consumer_name", "consumer_leader", "is_consumer_leader", "consumer_desc")
RAFT_LABELS = ("raft_group", "group_kind", "stream_name", "consumer_name")


def server_labels(server: MetricsServer[S], js: JetStreamView[S] | None,
                  cluster: ClusterView[S] | None) -> str:
    """The exporter's server labels; without a cluster (no meta group) this server counts as
    the meta leader, as the exporter has it when /jsz has no meta_cluster."""
    if cluster is None:
        name, leader, is_leader = "", "", "true"
    else:
        name, leader = cluster.name, cluster.meta_leader_name() or ""
        is_leader = _bool(leader == server.name)
    domain = js.domain if js is not None else ""
    return label_block(SERVER_LABELS, (server.server_id, server.name, name, domain, leader,
                                       is_leader))


def server_families(labels: str, js: JetStreamSummary | None) -> list[Family]:
    # Disabled: /jsz has no numbers and the exporter reports its zero values.
    s = js or JetStreamSummary(0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    values: tuple[tuple[str, str, int], ...] = (
        ("jetstream_disabled", "JetStream disabled or not", int(js is None)),
        ("total_streams", "Total number of streams in JetStream", s.streams),
        ("total_consumers", "Total number of consumers in JetStream", s.consumers),
        ("total_messages", "Total number of stored messages in JetStream", s.messages),
        ("total_message_bytes", "Total number of bytes stored in JetStream", s.bytes),
        ("max_memory", "JetStream Max Memory", s.max_memory),
        ("max_storage", "JetStream Max Storage", s.max_storage),
    )
    return [Family(f"jetstream_server_{name}", doc).add(labels, value)
            for name, doc, value in values]


def account_families(labels: str, js: JetStreamSummary) -> list[Family]:
    labels += "," + label_block(ACCOUNT_LABELS, (ACCOUNT, ACCOUNT, ACCOUNT))
    values: tuple[tuple[str, str, int], ...] = (
        ("max_memory", "JetStream Account Max Memory in bytes (reserved by stream limits)",
         js.reserved_memory),
        ("max_storage", "JetStream Account Max Storage in bytes (reserved by stream limits)",
         js.reserved_storage),
        ("storage_used", "Total number of bytes used by JetStream storage", js.storage),
        ("memory_used", "Total number of bytes used by JetStream memory", js.memory),
    )
    return [Family(f"jetstream_account_{name}", doc).add(labels, value)
            for name, doc, value in values]


# jetstream_stream_* and jetstream_consumer_*: one info per stream and per consumer

STREAM_SERIES: tuple[tuple[str, str], ...] = (
    ("total_messages", "Total number of messages from a stream"),
    ("total_bytes", "Total stored bytes from a stream"),
    ("first_seq", "First sequence from a stream"),
    ("last_seq", "Last sequence from a stream"),
    ("consumer_count", "Total number of consumers from a stream"),
    ("subject_count", "Total number of subjects in a stream"),
    ("limit_bytes", "The maximum configured storage limit (in bytes) for a JetStream stream. "
     "A value of -1 indicates no limit."),
    ("limit_messages", "The maximum number of messages allowed in a JetStream stream as per its "
     "configuration. A value of -1 indicates no limit."),
    ("limit_age_seconds", "The maximum age of a message in a JetStream stream as per its "
     "configuration (max_age), in seconds. A value of 0 indicates no limit."),
)


def stream_values(info: JsonObject) -> tuple[Number | None, ...]:
    """STREAM_SERIES' values from a STREAM.INFO body, in that order."""
    state, config = _obj(info, "state"), _obj(info, "config")
    return (_int(state, "messages"), _int(state, "bytes"), _int(state, "first_seq"),
            _int(state, "last_seq"), _int(state, "consumer_count"),
            _int(state, "num_subjects"), _int(config, "max_bytes"), _int(config, "max_msgs"),
            _int(config, "max_age") / NANOS)


CONSUMER_SERIES: tuple[tuple[str, str], ...] = (
    ("delivered_consumer_seq", "Latest sequence number of a stream consumer"),
    ("delivered_stream_seq", "Latest sequence number of a stream"),
    ("last_delivery_seconds", "Seconds since last message delivery to consumer"),
    ("last_ack_seconds", "Seconds since last ack from consumer"),
    ("num_ack_pending", "Number of pending acks from a consumer"),
    ("num_redelivered", "Number of redelivered messages from a consumer"),
    ("num_waiting", "Number of inflight fetch requests from a pull consumer"),
    ("num_pending", "Number of pending messages from a consumer"),
    ("ack_floor_stream_seq", "Number of ack floor stream seq from a consumer"),
    ("ack_floor_consumer_seq", "Number of ack floor consumer seq from a consumer"),
)


def consumer_values(info: JsonObject) -> tuple[Number | None, ...]:
    """CONSUMER_SERIES' values from a CONSUMER.INFO body, in that order (None: no sample)."""
    delivered, floor = _obj(info, "delivered"), _obj(info, "ack_floor")
    ts = info.get("ts")
    return (_int(delivered, "consumer_seq"), _int(delivered, "stream_seq"),
            _seconds_since(ts, delivered), _seconds_since(ts, floor),
            _int(info, "num_ack_pending"), _int(info, "num_redelivered"),
            _int(info, "num_waiting"), _int(info, "num_pending"),
            _int(floor, "stream_seq"), _int(floor, "consumer_seq"))


async def asset_families(js: JetStreamView[S], cluster: ClusterView[S] | None,
                         server_name: str, labels: str,
                         slicer: Slicer) -> list[Family]:
    streams = _families("jetstream_stream_", STREAM_SERIES, "is_stream_leader")
    consumers = _families("jetstream_consumer_", CONSUMER_SERIES, "is_consumer_leader")
    stream_info, consumer_info = _info_sources(cluster)
    # By name, looked up again at each step: a slice boundary may have let one be deleted.
    for name in list(js.streams):
        stream = js.streams.get(name)
        if stream is None:
            continue
        info = stream_info(stream)
        stream_labels = labels + "," + _stream_labels(info, server_name)
        _add(streams, stream_labels, stream_values(info))
        for consumer_name in list(stream.consumers):
            consumer = stream.consumers.get(consumer_name)
            if consumer is None:
                continue
            info = consumer_info(consumer)
            _add(consumers, stream_labels + "," + _consumer_labels(info, server_name),
                 consumer_values(info))
            await slicer.turn()
        await slicer.turn()
    return streams + consumers


def _info_sources(cluster: ClusterView[S] | None) -> tuple[Callable[[S], JsonObject],
                                               Callable[[ConsumerView], JsonObject]]:
    """The calls that build STREAM.INFO and CONSUMER.INFO's bodies, made as the API makes them
    (on a cluster with its `cluster` block and the meta group's consumer count)."""
    if cluster is not None:
        return cluster.stream_info, cluster.consumer_info
    return (lambda stream: stream.info(now=time.time_ns())), (lambda consumer: consumer.info())


def _families(prefix: str, series: tuple[tuple[str, str], ...],
              leader_label: str) -> list[Family]:
    note = LEADER_NOTE.format(leader_label)
    return [Family(prefix + name, doc + note) for name, doc in series]


def _add(families: list[Family], labels: str, values: tuple[Number | None, ...]) -> None:
    for family, value in zip(families, values, strict=True):
        if value is not None:
            family.add(labels, value)


def _stream_labels(info: JsonObject, server_name: str) -> str:
    leader, is_leader, group = _leadership(info, server_name)
    name = _str(_obj(info, "config"), "name")
    return label_block(STREAM_LABELS, (ACCOUNT, ACCOUNT, ACCOUNT, name, leader, is_leader, group))


def _consumer_labels(info: JsonObject, server_name: str) -> str:
    leader, is_leader, _ = _leadership(info, server_name)
    description = _str(_obj(info, "config"), "description")
    return label_block(CONSUMER_LABELS, (_str(info, "name"), leader, is_leader, description))


def _leadership(info: JsonObject, server_name: str) -> tuple[str, str, str]:
    """(leader, is_leader, raft group) from an info's `cluster` block; without one (single
    server) this server is the leader, as the exporter has it."""
    cluster = info.get("cluster")
    if not isinstance(cluster, Mapping):
        return "", "true", ""
    leader = _str(cluster, "leader")
    return leader, _bool(leader == server_name), _str(cluster, "raft_group")


def _seconds_since(ts: object, block: JsonObject) -> float | None:
    """The exporter's `ts - <block>.last_active` in seconds; None when there is none yet."""
    last = block.get("last_active")
    if not isinstance(last, str) or not isinstance(ts, str):
        return None
    return (parse_ns(ts) - parse_ns(last)) / NANOS


# jetstream_raft_*: each Raft group this server is a member of

RAFT_SERIES = (
    ("jetstream_raft_is_leader", "1 if this server is the leader of the Raft group"),
    ("jetstream_raft_term", "Current Raft term of the group on this server"),
    ("jetstream_raft_commit_index", "Highest log index this server knows to be committed"),
    ("jetstream_raft_applied_index", "Highest log index this server applied"),
)
RAFT_PEER_SERIES = (
    ("jetstream_raft_peer_lag", "Log entries a peer is behind the leader, as the leader sees "
     "it (only the leader reports it)"),
    ("jetstream_raft_peer_active", "1 if the peer answered the leader within the election "
     "timeout (only the leader reports it)"),
)


async def raft_families(cluster: ClusterView[S], labels: str, slicer: Slicer) -> list[Family]:
    groups = [Family(n, d) for n, d in RAFT_SERIES]
    peers = [Family(n, d) for n, d in RAFT_PEER_SERIES]
    for kind, driver, stream, consumer in _raft_groups(cluster):
        status = driver.status()
        group_labels = labels + "," + label_block(RAFT_LABELS,
                                                  (driver.group, kind, stream, consumer))
        values = (int(status.role is Role.LEADER), status.term, status.commit, status.applied)
        for family, value in zip(groups, values, strict=True):
            family.add(group_labels, value)
        for peer, progress in sorted(status.peers.items()):
            peer_labels = f'{group_labels},peer="{_escape_label(peer)}"'
            peers[0].add(peer_labels, progress.lag)
            peers[1].add(peer_labels, int(progress.active))
        await slicer.turn()
    return groups + peers


def _raft_groups(cluster: ClusterView[S]) -> list[tuple[str, RaftDriverView, str, str]]:
    """(kind, driver, stream name, consumer name) of every running group here."""
    out: list[tuple[str, RaftDriverView, str, str]] = []
    if cluster.meta_driver is not None:
        out.append(("meta", cluster.meta_driver, "", ""))
    for name, replica in list(cluster.streams.items()):
        if replica.driver is not None:
            out.append(("stream", replica.driver, name, ""))
    for (stream, name), replica in list(cluster.consumers.items()):
        if replica.driver is not None:
            out.append(("consumer", replica.driver, stream, name))
    return out


# Reading info JSON (Mapping[str, object]) without trusting its shape

_EMPTY: JsonObject = {}


def _obj(info: JsonObject, key: str) -> JsonObject:
    value = info.get(key)
    return value if isinstance(value, Mapping) else _EMPTY


def _int(info: JsonObject, key: str) -> int:
    value = info.get(key, 0)
    return value if isinstance(value, int) else 0


def _str(info: JsonObject, key: str) -> str:
    value = info.get(key, "")
    return value if isinstance(value, str) else ""


def _bool(value: bool) -> str:
    return "true" if value else "false"
