"""The JetStream API on a cluster: who answers what, and the meta leader's handlers.

Every server receives every API request. The meta leader answers the account-wide ones and the
mutations, which it validates, places and proposes to the meta group; a stream's leader (or the
server holding an R1 stream) answers requests about that stream, a consumer's leader those about
that consumer. While there is no meta leader every server answers a meta request with 503/10008
at once, so nobody waits out a timeout; so does a member of a stream or consumer group that has
no leader (an info comes from its own copy), a moment later unless a leader turned up by then.

A create is answered by the stream's (or consumer's) new leader once it is elected: only then
can the client publish to it. Lists gather each stream's info from its leader (`$JSC.SI.<s>`,
`$JSC.CI.<s>.<c>`).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from functools import partial
from typing import Any, Protocol

from broker.jetstream import errors
from broker.jetstream.cluster import entries, meta
from broker.jetstream.cluster.groups import best_successor
from broker.jetstream.cluster.jetstream_cluster import JetStreamCluster
from broker.jetstream.cluster.meta import ConsumerAssignment, StreamAssignment
from broker.jetstream.consumer import Consumer
from broker.jetstream.consumerconfig import ConsumerConfig
from broker.jetstream.errors import ApiError
from broker.jetstream.jsondecode import JsonObject
from broker.jetstream.plans import (
    check_account_stream,
    check_consumer_limits_update,
    check_overlap,
    check_reservation,
    check_stream_bytes,
    limit_consumer,
    plan_consumer,
    plan_stream,
)
from broker.jetstream.streamconfig import StreamConfig
from common.gotime import now_ns
from common.subjects import subject_text, subjects_collide

META, STREAM, CONSUMER = "meta", "stream", "consumer"

# Which server answers each API (by response type).
ROLES = {
    "account_info_response": META,
    "stream_create_response": META,
    "stream_update_response": META,
    "stream_names_response": META,
    "stream_list_response": META,
    "stream_delete_response": META,
    "consumer_create_response": META,
    "consumer_delete_response": META,
    "consumer_names_response": META,
    "consumer_list_response": META,
    "stream_info_response": STREAM,
    "stream_purge_response": STREAM,
    "stream_msg_get_response": STREAM,
    "stream_msg_delete_response": STREAM,
    "stream_leader_stepdown_response": STREAM,
    "stream_remove_peer_response": STREAM,
    "consumer_info_response": CONSUMER,
    "consumer_leader_stepdown_response": CONSUMER,
}

GATHER_TIMEOUT = 2.0
IGNORE = object()  # "not this server's to answer"
LATER = object()  # "ask again after LEADERLESS_DELAY" (a member of a leaderless group)
LEADERLESS_DELAY = 0.2


# What a handler gets: (subject tokens after the API prefix, the decoded request, the raw body).
Tokens = list[str]
Request = JsonObject


class LocalApi(Protocol):
    """The single-server API handlers a cluster reuses (`api.JetStreamApi`): decoding and
    checking requests, and answering from this server's own copy of a stream."""

    def decode_config(self, request: Request) -> StreamConfig: ...

    def parse_consumer_create(self, tokens: Tokens, request: Request, body: bytes
                              ) -> tuple[str, ConsumerConfig, str]: ...

    def find_consumer(self, tokens: Tokens) -> Consumer: ...

    def account_info(self, tokens: Tokens, request: Request, body: bytes) -> Request: ...

    def stream_info(self, tokens: Tokens, request: Request, body: bytes) -> Request: ...

    async def stream_purge(self, tokens: Tokens, request: Request, body: bytes) -> Request: ...

    async def msg_delete(self, tokens: Tokens, request: Request, body: bytes) -> Request: ...


class ClusterApi:
    def __init__(self, api: LocalApi, cluster: JetStreamCluster) -> None:
        self.api = api
        self.cluster = cluster
        self.js = cluster.js
        self.bus = cluster.bus
        self._inbox = f"$JSC.R.{self.bus.name}."
        self._requests: dict[str, asyncio.Future[bytes]] = {}
        self._next = 0
        self.handlers = {
            "account_info_response": self.account_info,
            "stream_create_response": self.stream_create,
            "stream_update_response": self.stream_update,
            "stream_names_response": self.stream_names,
            "stream_list_response": self.stream_list,
            "stream_delete_response": self.stream_delete,
            "consumer_create_response": self.consumer_create,
            "consumer_delete_response": self.consumer_delete,
            "consumer_names_response": self.consumer_names,
            "consumer_list_response": self.consumer_list,
            "stream_info_response": self.stream_info,
            "stream_purge_response": self.stream_purge,
            "stream_msg_delete_response": self.msg_delete,
            "stream_leader_stepdown_response": self.stream_stepdown,
            "consumer_info_response": self.consumer_info,
            "consumer_leader_stepdown_response": self.consumer_stepdown,
        }

    def subscribe(self) -> None:
        self.js.subscribe(self._inbox + "*", self._on_reply)
        self.js.subscribe("$JSC.SI.*", self._on_stream_info_request)
        self.js.subscribe("$JSC.CI.*.*", self._on_consumer_info_request)

    # Who answers

    def decide(self, kind: str, tokens: list[str], waited: bool = False) -> Any:
        """IGNORE, LATER, an ApiError to answer with, or None: handle it here. `waited`: this
        is the second time of asking, LEADERLESS_DELAY after a LATER."""
        cluster = self.cluster
        if cluster.problem:
            return IGNORE  # not a member (see JetStreamCluster.problem): the cluster answers
        role = ROLES.get(kind, META)
        if role == META:
            if cluster.meta_leader:
                return None
            return IGNORE if cluster.meta_available() else errors.cluster_unavailable()
        if role == STREAM:
            name = tokens[-1]
            if cluster.stream_assignment(name) is None:
                if cluster.meta_leader:
                    return errors.stream_not_found()
                return IGNORE if cluster.meta_available() else errors.cluster_unavailable()
            if cluster.leads_stream(name):
                return None
            if cluster.stream_leaderless(name):
                return _leaderless(kind, "stream_info_response") if waited else LATER
            return IGNORE
        stream, name = tokens[-2], tokens[-1]
        if cluster.meta.consumer(stream, name) is None:
            if not cluster.meta_leader:
                return IGNORE if cluster.meta_available() else errors.cluster_unavailable()
            if cluster.stream_assignment(stream) is None:
                return errors.stream_not_found()
            return ApiError(404, 10014, "consumer not found")
        if cluster.leads_consumer(stream, name):
            return None
        if cluster.consumer_leaderless(stream, name):
            return _leaderless(kind, "consumer_info_response") if waited else LATER
        return IGNORE

    # Account

    def account_info(self, tokens: list[str], request: JsonObject, body: bytes,
                     reply: bytes) -> JsonObject:
        info = self.api.account_info(tokens, request, body)
        state = self.cluster.meta
        info["streams"] = len(state.streams)
        info["consumers"] = sum(len(c) for c in state.consumers.values())
        return info

    # Streams

    async def stream_create(self, tokens: list[str], request: JsonObject, body: bytes,
                            reply: bytes) -> JsonObject | None:
        if not body.strip():
            raise errors.invalid_json("empty request")
        config = self.api.decode_config(request)
        name = tokens[-1]
        if config.name != name:
            raise errors.stream_name_mismatch()
        if "\\" in name or "/" in name:
            raise ApiError(400, 10128, "Stream name can not contain path separators")
        config = plan_stream(config, self.js.duplicate_limit, self._config_of)
        if config.num_replicas < 1:
            config.num_replicas = 1
        state = self.cluster.meta
        existing = state.streams.get(name)
        if existing is not None:
            if existing.config != config.to_json():
                raise errors.stream_name_in_use()
            info = await self.gather_stream_info(name)
            if info is None:
                raise errors.cluster_unavailable()
            return {**info, "did_create": True}
        others = [StreamConfig.from_json(sa.config) for sa in state.streams.values()]
        check_account_stream(self.js.limits, others, config)
        check_overlap(config, others)
        check_reservation(others, config, self.js.max_memory, self.js.max_storage)
        peers = self._place(config.num_replicas)
        group = meta.group_name("S", config.num_replicas, config.storage) \
            if config.num_replicas > 1 else ""
        sa = StreamAssignment(name, config.to_json(), group, peers, now_ns())
        change = await self._propose(partial(meta.add_stream_op, sa), reply)
        if change.error:
            raise errors.stream_name_in_use()
        return None  # the stream's leader (or R1 host) answers

    def _config_of(self, name: str) -> StreamConfig | None:
        """A stream's config as the meta group holds it (for the checks of a mirror or
        sources against their origins)."""
        sa = self.cluster.meta.streams.get(name)
        return StreamConfig.from_json(sa.config) if sa is not None else None

    def _place(self, replicas: int) -> list[str]:
        try:
            return meta.place(replicas, self.cluster.online_peers(),
                              self.cluster.meta.assets_per_peer())
        except meta.NoPlacement as exc:
            raise ApiError(400, 10005, str(exc)) from None

    async def _propose(self, build: Callable[..., bytes], reply: bytes) -> meta.Change:
        """Propose the op `build(**extra)` makes; the change it made once applied here."""
        op_id = _op_id()
        op = build(id=op_id, reply=subject_text(reply), ts=now_ns())
        return await self.cluster.propose_meta(op, op_id)

    async def stream_update(self, tokens: list[str], request: JsonObject, body: bytes,
                            reply: bytes) -> JsonObject | None:
        if not body.strip():
            raise errors.invalid_json("empty request")
        config = self.api.decode_config(request)
        if config.name != tokens[-1]:
            raise errors.stream_name_mismatch()
        sa = self.cluster.meta.streams.get(config.name)
        if sa is None:
            raise errors.stream_not_found()
        current = StreamConfig.from_json(sa.config)
        config = config.normalized(self.js.duplicate_limit, self._config_of)
        if config.num_replicas < 1:
            config.num_replicas = 1
        if config.num_replicas != current.num_replicas:
            raise ApiError(400, 10061, "Replicas configuration can not be updated")
        config = config.check_update(current)
        check_stream_bytes(self.js.limits, config)
        check_consumer_limits_update(
            config, {n: ConsumerConfig.from_json(ca.config)
                     for n, ca in self.cluster.meta.consumers.get(config.name, {}).items()},
            current)
        check_overlap(config, [StreamConfig.from_json(other.config)
                               for other in self.cluster.meta.streams.values()], config.name)
        updated = StreamAssignment(sa.name, config.to_json(), sa.group, sa.peers, sa.created)
        change = await self._propose(partial(meta.update_stream_op, updated), reply)
        if change.error:
            raise errors.stream_not_found()
        return None  # the stream's leader answers with the new info

    async def stream_delete(self, tokens: list[str], request: JsonObject, body: bytes,
                            reply: bytes) -> JsonObject | None:
        if body.strip():
            raise ApiError(400, 10038, "expected an empty request payload")
        name = tokens[-1]
        if name not in self.cluster.meta.streams:
            raise errors.stream_not_found()
        change = await self._propose(partial(meta.delete_stream_op, name), reply)
        if change.error:
            raise errors.stream_not_found()
        return None  # the stream's leader answers once it removed the stream

    def stream_names(self, tokens: list[str], request: JsonObject, body: bytes,
                     reply: bytes) -> JsonObject:
        names = sorted(self._streams_matching(request.get("subject")))
        offset = min(_offset(request), len(names))
        page = names[offset:offset + 1024]
        return {"total": len(names), "offset": offset, "limit": 1024, "streams": page or None}

    def _streams_matching(self, subject: Any) -> list[str]:
        streams = self.cluster.meta.streams
        if not subject or not isinstance(subject, str):
            return list(streams)
        wanted = subject.encode()
        return [name for name, sa in streams.items()
                if any(subjects_collide(wanted, s.encode()) for s in sa.config.get("subjects",
                                                                                    []))]

    async def stream_list(self, tokens: list[str], request: JsonObject, body: bytes,
                          reply: bytes) -> JsonObject:
        names = sorted(self._streams_matching(request.get("subject")))
        offset = min(_offset(request), len(names))
        page = names[offset:offset + 256]
        infos = await asyncio.gather(*(self.gather_stream_info(n) for n in page))
        return _listed("streams", names, offset, page, infos)

    def stream_info(self, tokens: list[str], request: JsonObject, body: bytes,
                    reply: bytes) -> JsonObject:
        info = self.api.stream_info(tokens, request, body)
        stream = self.js.lookup(tokens[-1])
        info["cluster"] = self.cluster.stream_cluster_info(stream.config.name)
        info["state"]["consumer_count"] = len(self.cluster.meta.consumers.get(
            stream.config.name, {}))
        return info

    async def stream_purge(self, tokens: list[str], request: JsonObject, body: bytes,
                           reply: bytes) -> JsonObject | None:
        replica = self.cluster.streams.get(tokens[-1])
        if replica is None:
            return await self.api.stream_purge(tokens, request, body)
        subject, seq, keep = replica.stream.parse_purge(request)
        result = await replica.propose_request(entries.PURGE,
                                               {"filter": subject, "seq": seq, "keep": keep})
        return _result(result)

    async def msg_delete(self, tokens: list[str], request: JsonObject, body: bytes,
                         reply: bytes) -> JsonObject | None:
        replica = self.cluster.streams.get(tokens[-1])
        if replica is None:
            return await self.api.msg_delete(tokens, request, body)
        seq, no_erase = replica.stream.parse_msg_delete(request, body)
        result = await replica.propose_request(entries.DELETE,
                                               {"seq": seq, "no_erase": no_erase})
        return _result(result)

    def stream_stepdown(self, tokens: list[str], request: JsonObject, body: bytes,
                        reply: bytes) -> JsonObject:
        replica = self.cluster.streams.get(tokens[-1])
        if replica is None:
            raise ApiError(500, 10009, "JetStream cluster can not handle request")
        replica.step_down()
        return {"success": True}

    # Consumers

    async def consumer_create(self, tokens: list[str], request: JsonObject, body: bytes,
                              reply: bytes) -> JsonObject | None:
        stream_name, config, action = self.api.parse_consumer_create(tokens, request, body)
        sa = self.cluster.meta.streams.get(stream_name)
        if sa is None:
            raise errors.stream_not_found()
        stream_config = StreamConfig.from_json(sa.config)
        existing = {n: ConsumerConfig.from_json(ca.config)
                    for n, ca in self.cluster.meta.consumers.get(stream_name, {}).items()}
        self._check_replicas(config, stream_config)
        requested = config
        name, config, previous = plan_consumer(stream_config, existing, config, action)
        if previous is not None and previous.to_json() == config.to_json():
            info = await self.gather_consumer_info(stream_name, name)
            if info is None:
                raise errors.cluster_unavailable()
            return info
        if previous is not None:
            ca = self.cluster.meta.consumer(stream_name, name)
            assert ca is not None
            updated = ConsumerAssignment(stream_name, name, config.to_json(), ca.group, ca.peers,
                                         ca.created)
            await self._propose(partial(meta.add_consumer_op, updated), reply)
            return None
        config = limit_consumer(self.js.limits, len(existing), config, requested)
        replicas = config.num_replicas or len(sa.peers)
        peers = self._consumer_peers(sa, replicas)
        group = meta.group_name("C", replicas, "memory" if config.mem_storage else
                                stream_config.storage) if replicas > 1 else ""
        ca = ConsumerAssignment(stream_name, name, config.to_json(), group, peers, now_ns())
        change = await self._propose(partial(meta.add_consumer_op, ca), reply)
        if change.error:
            raise errors.stream_not_found()
        return None  # the consumer's leader (or R1 host) answers

    @staticmethod
    def _check_replicas(config: ConsumerConfig, stream: StreamConfig) -> None:
        if config.num_replicas > stream.num_replicas:
            raise ApiError(400, 10126, "consumer config replica count exceeds parent stream")
        if stream.retention != "limits":
            if stream.retention == "interest" and config.num_replicas and \
                    config.num_replicas != stream.num_replicas:
                raise ApiError(400, 10134, "consumer config replicas must match interest "
                                           "retention stream's replicas")
            # Every stream replica must see the acks that free its messages.
            config.num_replicas = stream.num_replicas
        elif not config.num_replicas and not config.durable_name:
            config.num_replicas = 1  # ephemerals are R1, as in nats-server

    def _consumer_peers(self, sa: StreamAssignment, replicas: int) -> list[str]:
        """A consumer lives where its stream's messages are: on the stream's replicas."""
        if replicas >= len(sa.peers):
            return list(sa.peers)
        online = [p for p in sa.peers if p in self.cluster.online_peers()]
        try:
            return meta.place(replicas, online, self.cluster.meta.assets_per_peer())
        except meta.NoPlacement as exc:
            raise ApiError(400, 10005, str(exc)) from None

    async def consumer_delete(self, tokens: list[str], request: JsonObject, body: bytes,
                              reply: bytes) -> JsonObject | None:
        if body.strip():
            raise ApiError(400, 10038, "expected an empty request payload")
        stream, name = tokens[2], tokens[3]
        if stream not in self.cluster.meta.streams:
            raise errors.stream_not_found()
        if self.cluster.meta.consumer(stream, name) is None:
            raise ApiError(404, 10014, "consumer not found")
        change = await self._propose(partial(meta.delete_consumer_op, stream, name), reply)
        if change.error:
            raise ApiError(404, 10014, "consumer not found")
        return None  # the consumer's leader answers once it removed the consumer

    def consumer_names(self, tokens: list[str], request: JsonObject, body: bytes,
                       reply: bytes) -> JsonObject:
        if tokens[2] not in self.cluster.meta.streams:
            raise errors.stream_not_found()
        names = sorted(self.cluster.meta.consumers.get(tokens[2], {}))
        offset = min(_offset(request), len(names))
        return {"total": len(names), "offset": offset, "limit": 1024,
                "consumers": names[offset:offset + 1024]}

    async def consumer_list(self, tokens: list[str], request: JsonObject, body: bytes,
                            reply: bytes) -> JsonObject:
        stream = tokens[2]
        if stream not in self.cluster.meta.streams:
            raise errors.stream_not_found()
        names = sorted(self.cluster.meta.consumers.get(stream, {}))
        offset = min(_offset(request), len(names))
        page = names[offset:offset + 256]
        infos = await asyncio.gather(*(self.gather_consumer_info(stream, n) for n in page))
        return _listed("consumers", names, offset, page, infos)

    def consumer_info(self, tokens: list[str], request: JsonObject, body: bytes,
                      reply: bytes) -> JsonObject:
        consumer = self.api.find_consumer(tokens)
        return self.cluster.consumer_info(consumer)

    def consumer_stepdown(self, tokens: list[str], request: JsonObject, body: bytes,
                          reply: bytes) -> JsonObject:
        replica = self.cluster.consumers.get((tokens[-2], tokens[-1]))
        if replica is None or replica.driver is None:
            raise ApiError(500, 10009, "JetStream cluster can not handle request")
        target = best_successor(replica.driver, replica.assignment.peers, self.bus.name)
        if target is None or not replica.driver.transfer_leadership(target):
            raise ApiError(500, 10009, "JetStream cluster can not handle request")
        return {"success": True}

    # Gathering infos from the leaders

    async def gather_stream_info(self, name: str) -> JsonObject | None:
        data = await self.request(f"$JSC.SI.{name}", b"")
        return json.loads(data) if data else None

    async def gather_consumer_info(self, stream: str, name: str) -> JsonObject | None:
        data = await self.request(f"$JSC.CI.{stream}.{name}", b"")
        return json.loads(data) if data else None

    async def request(self, subject: str, payload: bytes) -> bytes | None:
        self._next += 1
        token = str(self._next)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._requests[token] = future
        try:
            self.bus.publish_internal(subject.encode(), (self._inbox + token).encode(),
                                         payload)
            return await asyncio.wait_for(future, GATHER_TIMEOUT)
        except TimeoutError:
            return None
        finally:
            self._requests.pop(token, None)

    def _on_reply(self, subject: bytes, reply: bytes, hdr: int, payload: bytes) -> None:
        token = subject_text(subject.rsplit(b".", 1)[-1])
        future = self._requests.get(token)
        if future is not None and not future.done():
            future.set_result(payload)

    def _on_stream_info_request(self, subject: bytes, reply: bytes, hdr: int,
                                payload: bytes) -> None:
        name = subject_text(subject).split(".", 2)[2]
        if not reply or not self.cluster.leads_stream(name):
            return
        stream = self.js.streams.get(name)
        if stream is not None:
            info = self.cluster.stream_info(stream)
            self.bus.publish_internal(reply, payload=json.dumps(info).encode())

    def _on_consumer_info_request(self, subject: bytes, reply: bytes, hdr: int,
                                  payload: bytes) -> None:
        _, _, stream_name, name = subject_text(subject).split(".", 3)
        if not reply or not self.cluster.leads_consumer(stream_name, name):
            return
        stream = self.js.streams.get(stream_name)
        consumer = stream.consumers.get(name) if stream is not None else None
        if consumer is not None:
            info = self.cluster.consumer_info(consumer)
            self.bus.publish_internal(reply, payload=json.dumps(info).encode())


def _result(result: JsonObject | None) -> JsonObject | None:
    """A replicated request's result as the answer: None (no answer) when its fate is open,
    see `ingest`."""
    if result is None:
        return None
    error = result.get("error")
    if error:
        raise ApiError(error["code"], error["err_code"], error["description"])
    return result


def _offset(request: JsonObject) -> int:
    offset = request.get("offset", 0) or 0
    if not isinstance(offset, int) or offset < 0:
        raise errors.invalid_json("offset must be a positive number")
    return offset


def _listed(key: str, names: list[str], offset: int, page: list[str],
            infos: list[JsonObject | None]) -> JsonObject:
    """A list response from the infos gathered from the leaders; `missing`: who did not answer."""
    out: JsonObject = {"total": len(names), "offset": offset, "limit": 256,
                       key: [info for info in infos if info is not None]}
    missing = [name for name, info in zip(page, infos, strict=True) if info is None]
    if missing:
        out["missing"] = missing
    return out


def _op_id() -> str:
    return os.urandom(8).hex()


def _leaderless(kind: str, info_kind: str) -> ApiError | None:
    """A member of a group without a leader (no quorum, or an election under way) answers at
    once, as nats-server does: an info from its own copy, anything else 503/10008."""
    return None if kind == info_kind else errors.cluster_unavailable()


