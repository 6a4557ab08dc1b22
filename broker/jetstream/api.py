"""The JetStream API: request/reply handlers on `$JS.API.*`, one internal subscription per API
subject (so an unknown API gets "no responders", as from nats-server).

Every response is JSON with `type` = `io.nats.jetstream.api.v1.<name>`, plus `error` =
`{code, err_code, description}` on failure. A handler never lets an exception reach the client: a
bug becomes a logged 500.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Literal, TypeVar

from broker import headers as h
from broker.jetstream import errors
from broker.jetstream.bus import Bus
from broker.jetstream.cluster.api import IGNORE, LATER, LEADERLESS_DELAY, ClusterApi
from broker.jetstream.cluster.jetstream_cluster import JetStreamCluster
from broker.jetstream.consumer import Consumer
from broker.jetstream.consumerconfig import ConsumerConfig
from broker.jetstream.errors import ApiError
from broker.jetstream.jetstream import JetStream, LocalStream
from broker.jetstream.jsondecode import JsonObject, decode, parse_json, unknown_fields_error
from broker.jetstream.streamconfig import StreamConfig, is_valid_name
from broker.logger import logger
from common.gotime import format_ns, now_ns
from common.subjects import subject_matches, subject_text, subjects_collide
from storage import CorruptRecord, StoredMessage

TYPE_PREFIX = "io.nats.jetstream.api.v1."
NAMES_LIMIT = 1024
LIST_LIMIT = 256
MAX_SUBJECT_DETAILS = 100_000

Config = TypeVar("Config", StreamConfig, ConsumerConfig)
Handler = Callable[[list[str], JsonObject, bytes],
                   "JsonObject | Awaitable[JsonObject | None] | None"]


# API subject (after the prefix) -> (response type, name of the JetStreamApi handler).
API: dict[str, tuple[str, str]] = {
    "INFO": ("account_info_response", "account_info"),
    "STREAM.CREATE.*": ("stream_create_response", "stream_create"),
    "STREAM.UPDATE.*": ("stream_update_response", "stream_update"),
    "STREAM.NAMES": ("stream_names_response", "stream_names"),
    "STREAM.LIST": ("stream_list_response", "stream_list"),
    "STREAM.INFO.*": ("stream_info_response", "stream_info"),
    "STREAM.DELETE.*": ("stream_delete_response", "stream_delete"),
    "STREAM.PURGE.*": ("stream_purge_response", "stream_purge"),
    "STREAM.MSG.GET.*": ("stream_msg_get_response", "msg_get"),
    "STREAM.MSG.DELETE.*": ("stream_msg_delete_response", "msg_delete"),
    "STREAM.LEADER.STEPDOWN.*": ("stream_leader_stepdown_response", "stepdown"),
    "STREAM.PEER.REMOVE.*": ("stream_remove_peer_response", "stepdown"),
    "CONSUMER.CREATE.*": ("consumer_create_response", "consumer_create"),
    "CONSUMER.CREATE.*.*": ("consumer_create_response", "consumer_create"),
    "CONSUMER.CREATE.*.*.>": ("consumer_create_response", "consumer_create"),
    "CONSUMER.DURABLE.CREATE.*.*": ("consumer_create_response", "consumer_create"),
    "CONSUMER.INFO.*.*": ("consumer_info_response", "consumer_info"),
    "CONSUMER.DELETE.*.*": ("consumer_delete_response", "consumer_delete"),
    "CONSUMER.NAMES.*": ("consumer_names_response", "consumer_names"),
    "CONSUMER.LIST.*": ("consumer_list_response", "consumer_list"),
    "CONSUMER.LEADER.STEPDOWN.*.*": ("consumer_leader_stepdown_response", "consumer_stepdown"),
}


def refuse_without_jetstream(bus: Bus) -> None:
    """An account without JetStream, on a server that has it: every API request is answered
    10039 with the API's response type, as nats-server does (it imports `$JS.API.>` into
    every account), rather than left to time out."""
    def on_request(subject: bytes, reply: bytes, hdr: int, payload: bytes) -> None:
        if not reply:
            return
        api = subject[len(b"$JS.API."):]
        kind = next((kind for pattern, (kind, _) in API.items()
                     if subject_matches(pattern.encode(), api)), None)
        if kind is None:
            return
        body = {"type": TYPE_PREFIX + kind, "error": errors.not_enabled_for_account().to_json()}
        bus.publish_internal(reply, payload=json.dumps(body).encode())

    bus.subscribe_internal("$JS.API.>", on_request)


class JetStreamApi:
    def __init__(self, js: JetStream, cluster: JetStreamCluster | None = None) -> None:
        self.js = js
        self.bus = js.bus
        self._tasks: set[asyncio.Task] = set()
        js.direct_get = self.direct_get_handler
        self.cluster: ClusterApi | None = None
        if cluster is not None:
            self.cluster = ClusterApi(self, cluster)
        # API subject (after the prefix) -> (response type, handler)
        self.routes: dict[str, tuple[str, Handler]] = {
            pattern: (kind, getattr(self, method)) for pattern, (kind, method) in API.items()}
        # Fields nats-server also puts in an error response of these kinds.
        paging = {"total": 0, "offset": 0, "limit": 0}
        self.error_fields: dict[str, JsonObject] = {
            "stream_info_response": paging,
            "stream_names_response": {**paging, "streams": None},
            "stream_list_response": {**paging, "streams": []},
            "stream_purge_response": {"purged": 0},
            "consumer_names_response": {**paging, "consumers": []},
            "consumer_list_response": {**paging, "consumers": []},
        }

    def prefixes(self) -> list[str]:
        prefixes = ["$JS.API"]
        if self.js.domain:
            prefixes.append(f"$JS.{self.js.domain}.API")
        return prefixes

    def subscribe(self) -> None:
        for prefix in self.prefixes():
            skip = prefix.count(".") + 1
            for pattern, (kind, handler) in self.routes.items():
                self.js.subscribe(f"{prefix}.{pattern}", self._endpoint(kind, handler, skip))
            # Like nats-server (which imports $JS.API.> into the account), a request no API
            # serves is swallowed: the client times out rather than seeing "no responders".
            self.js.subscribe(f"{prefix}.>", _ignore)
        if self.cluster is not None:
            self.cluster.subscribe()

    def _endpoint(self, kind: str, handler: Handler, skip: int
                  ) -> Callable[[bytes, bytes, int, bytes], None]:
        def on_request(subject: bytes, reply: bytes, hdr: int, payload: bytes) -> None:
            if not reply:
                return  # nats-server ignores API requests nobody waits for
            tokens = subject_text(subject).split(".")[skip:]
            body = payload[hdr:] if hdr > 0 else payload
            if self.cluster is None:
                self._dispatch(kind, handler, tokens, reply, body)
                return
            self._clustered(kind, handler, tokens, reply, body, waited=False)
        return on_request

    def _clustered(self, kind: str, handler: Handler, tokens: list[str], reply: bytes,
                   body: bytes, waited: bool) -> None:
        assert self.cluster is not None
        verdict = self.cluster.decide(kind, tokens, waited)
        if verdict is IGNORE:
            return
        if verdict is LATER:
            # A leaderless group's member answers only if nobody better has by then (a leader
            # elected meanwhile, or the meta leader that knows the stream was just deleted).
            asyncio.get_running_loop().call_later(
                LEADERLESS_DELAY, self._clustered, kind, handler, tokens, reply, body, True)
            return
        if isinstance(verdict, ApiError):
            self._respond(kind, reply, self._error(kind, verdict))
            return
        clustered = self.cluster.handlers.get(kind)
        if clustered is None:
            self._dispatch(kind, handler, tokens, reply, body)
        else:
            self._dispatch(kind, partial(_with_reply, clustered, reply), tokens, reply, body)

    def _dispatch(self, kind: str, handler: Handler, tokens: list[str], reply: bytes,
                  body: bytes) -> None:
        try:
            if kind in EMPTY_ONLY:
                _require_empty(body)
            request = parse_json(body)
            result = handler(tokens, request, body)
        except ApiError as exc:
            self._respond(kind, reply, self._error(kind, exc))
            return
        except Exception:
            logger.exception("JetStream API %s failed", kind)
            self._respond(kind, reply, self._error(kind, ApiError(500, 10003, "internal error")))
            return
        if result is None:
            return  # answered by another server (a new stream's leader)
        if isinstance(result, dict):
            self._respond(kind, reply, result)
            return
        task = asyncio.get_running_loop().create_task(self._finish(kind, reply, result))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _finish(self, kind: str, reply: bytes,
                      pending: Awaitable[JsonObject | None]) -> None:
        try:
            result = await pending
        except ApiError as exc:
            result = self._error(kind, exc)
        except Exception:
            logger.exception("JetStream API %s failed", kind)
            result = self._error(kind, ApiError(500, 10003, "internal error"))
        if result is not None:
            self._respond(kind, reply, result)

    def _error(self, kind: str, exc: ApiError) -> JsonObject:
        return {"error": exc.to_json(), **self.error_fields.get(kind, {})}

    def _respond(self, kind: str, reply: bytes, body: JsonObject) -> None:
        payload = {"type": TYPE_PREFIX + kind, **body}
        self.bus.publish_internal(reply, payload=json.dumps(payload).encode())
        # Counted after answering: INFO reports the requests before it, as nats-server does.
        self.js.api_total += 1
        if "error" in body:
            self.js.api_errors += 1

    def decode_config(self, request: JsonObject) -> StreamConfig:
        request = {k: v for k, v in request.items() if k != "pedantic"}
        return self._decode(StreamConfig, request, "stream")

    def _decode(self, kind: type[Config], data: JsonObject, what: str) -> Config:
        """A config from request JSON; unknown fields refused in strict mode, else logged."""
        unknown: list[str] = []
        config = decode(kind, data, unknown)
        if unknown:
            if self.js.strict:
                raise unknown_fields_error(unknown)
            logger.warning("JetStream: ignoring unknown %s config fields %s", what, unknown)
        return config

    # Account

    def account_info(self, tokens: list[str], request: JsonObject, body: bytes
                     ) -> JsonObject:
        js = self.js
        limits = js.limits
        return {
            "memory": js.usage("memory"),
            "storage": js.usage("file"),
            "streams": len(js.streams),
            "consumers": sum(s.consumer_count for s in js.streams.values()),
            # The account's own limits (-1: none; the server's are in /jsz).
            "limits": {"max_memory": limits.max_memory, "max_storage": limits.max_file,
                       "max_streams": limits.max_streams,
                       "max_consumers": limits.max_consumers,
                       "max_ack_pending": limits.max_ack_pending,
                       "memory_max_stream_bytes": limits.memory_max_stream_bytes,
                       "storage_max_stream_bytes": limits.storage_max_stream_bytes,
                       "max_bytes_required": limits.max_bytes_required},
            "api": {"total": js.api_total, "errors": js.api_errors},
            **({"domain": js.domain} if js.domain else {}),
        }

    # Streams

    def stream_create(self, tokens: list[str], request: JsonObject, body: bytes
                      ) -> JsonObject:
        _require_body(body)
        config = self.decode_config(request)
        name = tokens[-1]
        if config.name != name:
            raise errors.stream_name_mismatch()
        if "\\" in name or "/" in name:
            raise ApiError(400, 10128, "Stream name can not contain path separators")
        stream, _ = self.js.add_stream(config)
        info = self.js.stream_info(stream)
        info["did_create"] = True  # also for an identical re-create, as nats-server 2.10 says
        return info

    def stream_update(self, tokens: list[str], request: JsonObject, body: bytes
                      ) -> JsonObject:
        _require_body(body)
        config = self.decode_config(request)
        if config.name != tokens[-1]:
            raise errors.stream_name_mismatch()
        return self.js.stream_info(self.js.update_stream(config))

    def stream_info(self, tokens: list[str], request: JsonObject, body: bytes
                    ) -> JsonObject:
        stream = self.js.lookup(tokens[-1])
        subjects_filter = request.get("subjects_filter") or ""
        if not isinstance(subjects_filter, str):
            raise errors.invalid_json("subjects_filter must be a string")
        if subjects_filter and stream.store.state().num_subjects > MAX_SUBJECT_DETAILS and \
                subjects_filter == ">":
            raise errors.too_many_subjects()
        info = self.js.stream_info(stream, subjects_filter, bool(request.get("deleted_details")))
        subjects = info["state"].get("subjects")
        paging = {"total": 0, "offset": 0, "limit": 0}
        if subjects:
            offset = _offset(request)
            names = sorted(subjects)
            page = names[offset:offset + MAX_SUBJECT_DETAILS]
            info["state"]["subjects"] = {n: subjects[n] for n in page}
            paging = {"total": len(names), "offset": offset, "limit": MAX_SUBJECT_DETAILS}
        return {**paging, **info}

    def stream_names(self, tokens: list[str], request: JsonObject, body: bytes
                     ) -> JsonObject:
        names = sorted(self._streams_matching(request.get("subject")))
        offset = min(_offset(request), len(names))
        page = names[offset:offset + NAMES_LIMIT]
        return {"total": len(names), "offset": offset, "limit": NAMES_LIMIT,
                "streams": page or None}  # nats-server sends null, not [], for none

    def stream_list(self, tokens: list[str], request: JsonObject, body: bytes
                    ) -> JsonObject:
        names = sorted(self._streams_matching(request.get("subject")))
        offset = min(_offset(request), len(names))
        now = now_ns()
        infos = [self.js.stream_info(self.js.streams[n], now=now)
                 for n in names[offset:offset + LIST_LIMIT]]
        out: JsonObject = {"total": len(names), "offset": offset, "limit": LIST_LIMIT,
                               "streams": infos}
        if self.js.offline:
            out["offline"] = dict(self.js.offline)
        return out

    def _streams_matching(self, subject: Any) -> list[str]:
        if not subject or not isinstance(subject, str):
            return list(self.js.streams)
        wanted = subject.encode()
        return [name for name, s in self.js.streams.items()
                if any(subjects_collide(wanted, x.encode()) for x in s.config.subjects)]

    async def stream_delete(self, tokens: list[str], request: JsonObject, body: bytes
                            ) -> JsonObject:
        _require_empty(body)
        await self.js.delete_stream(tokens[-1])
        return {"success": True}

    async def stream_purge(self, tokens: list[str], request: JsonObject, body: bytes
                           ) -> JsonObject:
        stream = self.js.lookup(tokens[-1])
        subject, seq, keep = stream.parse_purge(request)
        purged = stream.store.purge(subject=subject, seq=seq, keep=keep)
        stream.on_purged(subject)
        await self._durable(stream)
        return {"success": True, "purged": purged}

    async def _durable(self, stream: LocalStream) -> None:
        """Wait until the stream's changes so far are on disk (group commit)."""
        done: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
        def synced(error: BaseException | None) -> None:
            if not done.done():
                done.set_result(error)
        self.js.commit.after_sync(stream.store, synced)
        error = await done
        if error is not None:
            raise errors.sync_failed(error)

    # Consumers

    def consumer_create(self, tokens: list[str], request: JsonObject, body: bytes
                        ) -> JsonObject:
        stream_name, config, action = self.parse_consumer_create(tokens, request, body)
        if config.num_replicas > 1:
            raise errors.replicas_not_supported()
        stream = self.js.lookup(stream_name)
        consumer, _created = self.js.add_consumer(stream, config, action)
        return consumer.info()

    def parse_consumer_create(self, tokens: list[str], request: JsonObject, body: bytes
                              ) -> tuple[str, ConsumerConfig, str]:
        """All create forms, checked in nats-server's order (jsConsumerCreateRequest).
        Returns (stream name, config, action)."""
        _require_body(body)
        legacy_durable = tokens[1] == "DURABLE"
        if legacy_durable:
            stream_name, subject_name, filtered = tokens[3], tokens[4], ""
        else:
            stream_name = tokens[2]
            subject_name = tokens[3] if len(tokens) > 3 else ""
            filtered = ".".join(tokens[4:])
        config_json = request.get("config")
        if config_json is not None and not isinstance(config_json, dict):
            raise errors.invalid_json("config must be an object")
        # "create" refuses an existing consumer with another config (10148), "update" a missing
        # one (10149), "" (or no action: nats-py sends none) does either; anything else is a
        # decode error, before any other check.
        action = request.get("action", "")
        if action not in ("", "create", "update"):
            raise errors.invalid_json(f"unknown consumer action: {json.dumps(action)}")
        if request.get("stream_name", "") != stream_name:
            raise errors.stream_name_mismatch()
        if any(c in subject_name for c in "\\/"):
            raise ApiError(400, 10127, "Consumer name can not contain path separators")
        if config_json is None:
            raise ApiError(400, 10078, "consumer config required")
        config = self._decode(ConsumerConfig, config_json, "consumer")
        if legacy_durable:
            if not config.durable_name:
                raise ApiError(400, 10018, "consumer expected to be durable but a durable name "
                                           "was not set")
            if subject_name != config.durable_name:
                raise ApiError(400, 10017, "consumer name in subject does not match durable "
                                           "name in request")
        elif subject_name:
            if config.durable_name and subject_name != config.durable_name:
                raise ApiError(400, 10017, "consumer name in subject does not match durable "
                                           "name in request")
            config.name = subject_name
        elif config.durable_name:
            raise ApiError(400, 10020, "consumer expected to be ephemeral but a durable name "
                                       "was set in request")
        if filtered and config.filter_subjects:
            raise ApiError(400, 10137, "consumer with multiple subject filters cannot use "
                                       "subject based API")
        if filtered and config.filter_subject != filtered:
            raise ApiError(400, 10131, "Consumer create request did not match filtered subject "
                                       "from create subject")
        for name in (config.name, config.durable_name):
            if name and not is_valid_name(name):
                raise ApiError(400, 10103, "durable name can not contain '.', '*', '>'")
        return stream_name, config, action

    def find_consumer(self, tokens: list[str]) -> Consumer:
        stream = self.js.lookup(tokens[2])
        consumer = stream.consumers.get(tokens[3])
        if consumer is None:
            raise ApiError(404, 10014, "consumer not found")
        return consumer

    def consumer_info(self, tokens: list[str], request: JsonObject, body: bytes
                      ) -> JsonObject:
        return self.find_consumer(tokens).info()

    def consumer_delete(self, tokens: list[str], request: JsonObject, body: bytes
                        ) -> JsonObject:
        _require_empty(body)
        stream = self.js.lookup(tokens[2])
        self.js.remove_consumer(stream, tokens[3])
        return {"success": True}

    def consumer_names(self, tokens: list[str], request: JsonObject, body: bytes
                       ) -> JsonObject:
        stream = self.js.lookup(tokens[2])
        names = sorted(stream.consumers)
        offset = min(_offset(request), len(names))
        return {"total": len(names), "offset": offset, "limit": NAMES_LIMIT,
                "consumers": names[offset:offset + NAMES_LIMIT]}

    def consumer_list(self, tokens: list[str], request: JsonObject, body: bytes
                      ) -> JsonObject:
        stream = self.js.lookup(tokens[2])
        names = sorted(stream.consumers)
        offset = min(_offset(request), len(names))
        now = now_ns()
        return {"total": len(names), "offset": offset, "limit": LIST_LIMIT,
                "consumers": [stream.consumers[n].info(now)
                              for n in names[offset:offset + LIST_LIMIT]]}

    def consumer_stepdown(self, tokens: list[str], request: JsonObject, body: bytes
                          ) -> JsonObject:
        raise errors.cluster_required()

    # Messages

    def msg_get(self, tokens: list[str], request: JsonObject, body: bytes
                ) -> JsonObject:
        stream = self.js.lookup(tokens[-1])
        seq, last_by, next_by = _msg_get_request(request)
        msg = _load(stream, seq, last_by, next_by)
        if msg is None:
            raise errors.no_message_found()
        out: JsonObject = {"subject": msg.subject, "seq": msg.seq}
        if msg.hdr:
            out["hdrs"] = base64.b64encode(msg.hdr).decode()
        if msg.data:
            out["data"] = base64.b64encode(msg.data).decode()
        out["time"] = format_ns(msg.ts)
        return {"message": out}

    async def msg_delete(self, tokens: list[str], request: JsonObject, body: bytes
                         ) -> JsonObject:
        stream = self.js.lookup(tokens[-1])
        seq, no_erase = stream.parse_msg_delete(request, body)
        if not stream.store.remove(seq, erase=not no_erase):
            raise ApiError(400, 10043, f"sequence {seq} not found")
        stream.on_removed()
        await self._durable(stream)
        return {"success": True}

    def stepdown(self, tokens: list[str], request: JsonObject, body: bytes
                 ) -> JsonObject:
        raise errors.cluster_required()  # one server: nothing to step down from

    # Direct get (raw messages, no JSON envelope)

    def direct_get_handler(self, stream: LocalStream) -> Callable[[bytes, bytes, int, bytes], None]:
        prefix_tokens = 5  # $JS.API.DIRECT.GET.<stream>

        def on_request(subject: bytes, reply: bytes, hdr: int, payload: bytes) -> None:
            if not reply:
                return
            tokens = subject_text(subject).split(".")
            body = payload[hdr:] if hdr > 0 else payload
            self._direct_get(stream, tokens[prefix_tokens:], reply, body)
        return on_request

    def _direct_get(self, stream: LocalStream, subject_tokens: list[str], reply: bytes,
                    body: bytes) -> None:
        if subject_tokens:
            if body.strip():
                return self._status(reply, "408", "Bad Request")
            msg = self._direct_load(stream, reply, 0, ".".join(subject_tokens), "")
        else:
            try:
                request = parse_json(body, allow_empty=False)
            except ApiError:
                text = body.strip()
                empty = not text or text == b'""'
                return self._status(reply, "408", "Empty Request" if empty else
                                    "Malformed Request")
            if not request:
                return self._status(reply, "408", "Empty Request")
            try:
                seq, last_by, next_by = _msg_get_request(request)
            except ApiError:
                return self._status(reply, "408", "Bad Request")
            msg = self._direct_load(stream, reply, seq, last_by, next_by)
        if msg is False:
            return None
        if msg is None:
            return self._status(reply, "404", "Message Not Found")
        extra = [(h.STREAM, stream.config.name), (h.SUBJECT, msg.subject),
                 (h.SEQUENCE, str(msg.seq)), (h.TIME_STAMP, format_ns(msg.ts))]
        block = h.merge(msg.hdr, extra)
        self.bus.publish_internal(reply, payload=block + msg.data, hdr=len(block))

    def _direct_load(self, stream: LocalStream, reply: bytes, seq: int, last_by: str, next_by: str
                     ) -> StoredMessage | Literal[False] | None:
        """The message, None if there is none, False if it is damaged (a status was sent)."""
        try:
            return _load(stream, seq, last_by, next_by)
        except ApiError:
            self._status(reply, "503", "Message Damaged")  # never served, never "not found"
            return False

    def _status(self, reply: bytes, code: str, text: str) -> None:
        block = h.build([], code, text)
        self.bus.publish_internal(reply, payload=block, hdr=len(block))


# APIs whose request must be empty (checked before any JSON parsing, like nats-server).
EMPTY_ONLY = frozenset({"stream_delete_response", "consumer_delete_response"})


def _ignore(subject: bytes, reply: bytes, hdr: int, payload: bytes) -> None:
    pass


def _with_reply(handler: Callable[..., Any], reply: bytes, tokens: list[str],
                request: JsonObject, body: bytes) -> Any:
    return handler(tokens, request, body, reply)


def _require_body(body: bytes) -> None:
    if not body.strip():
        raise errors.invalid_json("empty request")


def _require_empty(body: bytes) -> None:
    if body.strip():
        raise ApiError(400, 10038, "expected an empty request payload")


def _offset(request: JsonObject) -> int:
    offset = request.get("offset", 0) or 0
    if not isinstance(offset, int) or offset < 0:
        raise errors.invalid_json("offset must be a positive number")
    return offset


def _msg_get_request(request: JsonObject) -> tuple[int, str, str]:
    seq = request.get("seq", 0) or 0
    last_by = request.get("last_by_subj", "") or ""
    next_by = request.get("next_by_subj", "") or ""
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0 or \
            not isinstance(last_by, str) or not isinstance(next_by, str):
        raise errors.invalid_json("bad message get request")
    if (seq > 0 and last_by) or (last_by and next_by) or \
            (seq == 0 and not last_by and not next_by):
        raise errors.bad_request()
    return seq, last_by, next_by


def _load(stream: LocalStream, seq: int, last_by: str, next_by: str) -> StoredMessage | None:
    try:
        return stream.get_message(seq, last_by, next_by)
    except CorruptRecord as exc:
        logger.error("JetStream stream '%s': %s", stream.config.name, exc)
        raise errors.store_failed(str(exc)) from None
