"""The checks of a stream or consumer create that need nothing but configs: the single server
(`jetstream.JetStream`) and the meta leader of a cluster (`cluster.api`) both run them, so a
create is refused with the same error, in nats-server's order, wherever it is decided.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from broker.jetstream import errors
from broker.jetstream.consumerconfig import ConsumerConfig, stream_limit
from broker.jetstream.errors import ApiError
from broker.jetstream.streamconfig import Lookup, StreamConfig
from common.subjects import subjects_collide
from config.options import AccountJetStream


def plan_stream(requested: StreamConfig, duplicate_limit: int,
                lookup: Lookup | None = None) -> StreamConfig:
    """The checks of a stream create that need nothing but the config (and, for a mirror or
    sources, the account's other streams: `lookup`)."""
    config = requested.normalized(duplicate_limit, lookup)
    if config.sealed:
        raise errors.stream_invalid_config("stream configuration for create can not be sealed")
    if config.mirror_direct and config.mirror is None:
        raise errors.stream_invalid_config("stream has no mirror but does have mirror direct")
    return config


def check_overlap(config: StreamConfig, others: list[StreamConfig], ignore: str = "") -> None:
    """No two streams may capture the same subject."""
    for other in others:
        if other.name in (config.name, ignore):
            continue
        for a in config.subjects:
            for b in other.subjects:
                if subjects_collide(a.encode(), b.encode()):
                    raise errors.subjects_overlap()


def plan_consumer(stream_config: StreamConfig, existing: dict[str, ConsumerConfig],
                  requested: ConsumerConfig, action: str = ""
                  ) -> tuple[str, ConsumerConfig, ConsumerConfig | None]:
    """Check a consumer create/update against its stream and the stream's other consumers, in
    nats-server's order. Returns (name, config with defaults, the config it replaces or None)."""
    config = requested.with_defaults(stream_config)
    config.check(stream_config)
    name = config.durable_name or config.name
    previous = existing.get(name) if name else None
    if previous is not None:
        if action == "create" and not _same_for_create(previous, config, requested,
                                                       stream_config):
            raise ApiError(400, 10148, "consumer already exists")
        if stream_config.retention == "workqueue":
            _check_partition(existing, config, name)
        if previous.to_json() != config.to_json():
            config.check_update(previous)
        return name, config, previous
    if action == "update":
        raise ApiError(400, 10149, "consumer does not exist")
    if 0 < stream_config.max_consumers <= len(existing):
        raise ApiError(400, 10026, "maximum consumers limit reached")
    if stream_config.retention == "workqueue":
        if config.ack_policy != "explicit":
            raise ApiError(400, 10098, "workqueue stream requires explicit ack")
        if config.deliver_policy != "all":
            raise ApiError(400, 10101, "consumer must be deliver all on workqueue stream")
        _check_workqueue(stream_config, existing, config, name)
    if not name:
        name = _random_name()
    if len(name) > 255:
        raise ApiError(400, 10102, "consumer name is too long, maximum allowed is 255")
    return name, config, None


def check_consumer_limits_update(config: StreamConfig, consumers: dict[str, ConsumerConfig],
                                 old: StreamConfig) -> None:
    """A stream update that lowers its consumer_limits below what consumers already have is
    refused, naming them (nats-server 500/10069), when a new limit is set and changed."""
    offenders = []
    new, previous = config.consumer_limits or {}, old.consumer_limits or {}
    for key, attribute in (("max_ack_pending", "max_ack_pending"),
                           ("inactive_threshold", "inactive_threshold")):
        limit = new.get(key, 0)
        if limit <= 0 or limit == previous.get(key, 0):
            continue
        offenders += [name for name, c in consumers.items() if getattr(c, attribute) > limit]
    if offenders:
        names = ", ".join(sorted(set(offenders)))
        raise ApiError(500, 10069, f"change to limits violates consumers: {names}")


def check_account_stream(limits: AccountJetStream, others: list[StreamConfig],
                         config: StreamConfig) -> None:
    """The account's limits on a stream being added (`others`: the account's other streams):
    how many streams, and max_bytes required or capped."""
    if 0 <= limits.max_streams <= len(others):
        raise errors.max_streams()
    check_stream_bytes(limits, config)


def check_reservation(others: list[StreamConfig], config: StreamConfig, max_memory: int,
                      max_storage: int) -> None:
    """The room streams reserve with max_bytes, within the account's (or the server's)
    `max_memory` / `max_storage` (-1: no limit)."""
    if config.max_bytes <= 0:
        return
    reserved = sum(other.max_bytes for other in others
                   if other.storage == config.storage and other.max_bytes > 0)
    limit = max_memory if config.storage == "memory" else max_storage
    if 0 <= limit < reserved + config.max_bytes:
        raise errors.memory_exceeded() if config.storage == "memory" else \
            errors.storage_exceeded()


def check_stream_bytes(limits: AccountJetStream, config: StreamConfig) -> None:
    """max_bytes as the account demands it, on create and update."""
    if limits.max_bytes_required and config.max_bytes <= 0:
        raise ApiError(400, 10113, "account requires a stream config to have max bytes set")
    cap = limits.memory_max_stream_bytes if config.storage == "memory" else \
        limits.storage_max_stream_bytes
    if cap >= 0 and (config.max_bytes <= 0 or config.max_bytes > cap):
        raise ApiError(400, 10122, "stream max bytes exceeds account limit max stream bytes")


def limit_consumer(limits: AccountJetStream, consumers_of_stream: int, config: ConsumerConfig,
                   requested: ConsumerConfig) -> ConsumerConfig:
    """The account's limits on a consumer being added: how many its stream has (nats-server
    applies the account's max_consumers per stream), and max_ack_pending (a default above the
    account's limit comes down to it; an explicit one is refused)."""
    if 0 <= limits.max_consumers <= consumers_of_stream:
        raise ApiError(400, 10026, "maximum consumers limit reached")
    cap = limits.max_ack_pending
    if cap < 0 or config.max_ack_pending <= cap:
        return config
    if requested.max_ack_pending > 0:
        raise ApiError(400, 10121, f"consumer max ack pending exceeds system limit of {cap}")
    return dataclasses.replace(config, max_ack_pending=cap)


def _same_for_create(previous: ConsumerConfig, config: ConsumerConfig,
                     requested: ConsumerConfig, stream_config: StreamConfig) -> bool:
    """Whether a create (`action` "create") asks for exactly the existing consumer. As in
    nats-server, the ephemeral inactive threshold default (5s) is not part of the request: an
    ephemeral asked for again without a threshold differs from the one that got the default."""
    asked = dataclasses.replace(config)
    if not asked.durable_name and requested.inactive_threshold <= 0 and \
            stream_limit(stream_config, "inactive_threshold") == 0:
        asked.inactive_threshold = 0
    # A durable is named after itself, whichever create subject made it.
    return _comparable(asked) == _comparable(previous)


def _comparable(config: ConsumerConfig) -> dict[str, Any]:
    out = config.to_json()
    if config.durable_name:
        out["name"] = config.durable_name
    return out


def _check_workqueue(stream_config: StreamConfig, existing: dict[str, ConsumerConfig],
                     config: ConsumerConfig, name: str) -> None:
    """A new consumer of a workqueue stream: one unfiltered consumer at most, and no two whose
    filters share a subject."""
    if stream_config.retention != "workqueue":
        return
    if not any(n != name for n in existing):
        return
    if config.filters == (">",):
        raise ApiError(400, 10099, "multiple non-filtered consumers not allowed on "
                                   "workqueue stream")
    _check_partition(existing, config, name)


def _check_partition(existing: dict[str, ConsumerConfig], config: ConsumerConfig,
                     name: str) -> None:
    """No other consumer of a workqueue stream shares a subject with these filters (an update
    that drops its filters is not refused here, as in nats-server)."""
    filters = config.filter_subjects or ([config.filter_subject] if config.filter_subject else [])
    for other_name, other in existing.items():
        if other_name == name:
            continue
        for a in filters:
            for b in other.filters:
                if subjects_collide(a.encode(), b.encode()):
                    raise ApiError(400, 10100, "filtered consumer not unique on workqueue "
                                               "stream")


def known_fields(cls: type, config: dict[str, Any]) -> dict[str, Any]:
    """The keys of a saved config that `cls` (a dataclass) still has (a field dropped since is
    skipped, not fatal, when reading back what an older version wrote)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in config.items() if k in names}


def _random_name() -> str:
    """A generated consumer name: 8 alphanumerics, like nats-server's."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(alphabet[b % len(alphabet)] for b in os.urandom(8))
