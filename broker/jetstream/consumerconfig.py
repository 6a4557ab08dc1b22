"""ConsumerConfig: the JSON clients send, with nats-server's defaults and checks.

`with_defaults()` is `setConsumerConfigDefaults`, `check()` is `checkConsumerCfg`, `check_update()`
is the update rules; `to_json()` echoes with Go's omitempty rules.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from broker.jetstream import errors
from broker.jetstream.errors import ApiError
from broker.jetstream.jsondecode import (
    BOOL,
    INT,
    INT_LIST,
    STR,
    STR_LIST,
    STR_MAP,
    UINT,
    json_field,
)
from broker.jetstream.streamconfig import MAX_DESCRIPTION_LEN, MAX_METADATA_LEN, StreamConfig
from common.gotime import NANOS, format_ns, parse_ns
from common.subjects import is_literal, is_subset, is_valid_subject, subjects_collide

DEFAULT_ACK_WAIT = 30 * NANOS
DEFAULT_MAX_ACK_PENDING = 1000
DEFAULT_MAX_WAITING = 512
DEFAULT_EPHEMERAL_INACTIVE = 5 * NANOS
MIN_HEARTBEAT = NANOS // 10

DELIVER_POLICIES = ("all", "last", "new", "by_start_sequence", "by_start_time",
                    "last_per_subject")
ACK_POLICIES = ("none", "all", "explicit")
REPLAY_POLICIES = ("instant", "original")


@dataclass
class ConsumerConfig:
    durable_name: str = json_field(STR, "")
    name: str = json_field(STR, "")
    description: str = json_field(STR, "")
    deliver_policy: str = json_field(STR, "all")
    opt_start_seq: int = json_field(UINT, 0)
    opt_start_time: str = json_field(STR, "")
    ack_policy: str = json_field(STR, "none")
    ack_wait: int = json_field(INT, 0)
    max_deliver: int = json_field(INT, 0)
    backoff: list[int] = json_field(INT_LIST, factory=list)
    filter_subject: str = json_field(STR, "")
    filter_subjects: list[str] = json_field(STR_LIST, factory=list)
    replay_policy: str = json_field(STR, "instant")
    rate_limit_bps: int = json_field(UINT, 0)
    sample_freq: str = json_field(STR, "")
    max_waiting: int = json_field(INT, 0)
    max_ack_pending: int = json_field(INT, 0)
    idle_heartbeat: int = json_field(INT, 0)
    flow_control: bool = json_field(BOOL, False)
    headers_only: bool = json_field(BOOL, False)
    max_batch: int = json_field(INT, 0)
    max_expires: int = json_field(INT, 0)
    max_bytes: int = json_field(INT, 0)
    deliver_subject: str = json_field(STR, "")
    deliver_group: str = json_field(STR, "")
    inactive_threshold: int = json_field(INT, 0)
    num_replicas: int = json_field(INT, 0)
    mem_storage: bool = json_field(BOOL, False)
    direct: bool = json_field(BOOL, False)
    metadata: dict[str, str] | None = json_field(STR_MAP)

    @property
    def is_push(self) -> bool:
        return bool(self.deliver_subject)

    @property
    def is_durable(self) -> bool:
        return bool(self.durable_name)

    @property
    def filters(self) -> tuple[str, ...]:
        if self.filter_subjects:
            return tuple(self.filter_subjects)
        return (self.filter_subject,) if self.filter_subject else (">",)

    @property
    def acks_required(self) -> bool:
        return self.ack_policy in ("explicit", "all")

    @property
    def start_time_ns(self) -> int:
        return parse_ns(self.opt_start_time) if self.opt_start_time else 0

    def with_defaults(self, stream: StreamConfig) -> ConsumerConfig:
        cfg = replace(self, backoff=list(self.backoff), filter_subjects=list(self.filter_subjects))
        # Below -1 means no limit, a negative threshold none (nats-server 2.12+ rewrites them).
        cfg.max_ack_pending = max(cfg.max_ack_pending, -1)
        cfg.inactive_threshold = max(cfg.inactive_threshold, 0)
        if not cfg.deliver_subject and cfg.max_waiting == 0:
            cfg.max_waiting = DEFAULT_MAX_WAITING
        if cfg.ack_wait == 0 and cfg.acks_required:
            cfg.ack_wait = DEFAULT_ACK_WAIT
        if cfg.max_deliver == 0:
            cfg.max_deliver = -1
        if cfg.backoff:
            cfg.ack_wait = cfg.backoff[0]
        # The stream's consumer_limits are the defaults of its consumers (durables too).
        if cfg.max_ack_pending == 0:
            cfg.max_ack_pending = stream_limit(stream, "max_ack_pending")
        if cfg.inactive_threshold == 0:
            cfg.inactive_threshold = stream_limit(stream, "inactive_threshold")
        if cfg.inactive_threshold <= 0 and not cfg.durable_name:
            cfg.inactive_threshold = DEFAULT_EPHEMERAL_INACTIVE
        if cfg.acks_required and cfg.max_ack_pending == 0:
            cfg.max_ack_pending = DEFAULT_MAX_ACK_PENDING
        return cfg

    def check(self, stream: StreamConfig) -> None:
        """nats-server's checkConsumerCfg; raises ApiError."""
        _check_enums(self)
        if self.num_replicas > 0 and self.num_replicas > stream.num_replicas:
            raise ApiError(400, 10126, "consumer config replica count exceeds parent stream")
        if self.num_replicas < 0:
            raise errors.replicas_negative()
        if stream.retention in ("interest", "workqueue") and self.num_replicas not in (
                0, stream.num_replicas):
            raise ApiError(400, 10134, "consumer config replicas must match interest retention "
                                       "stream's replicas")
        if self.backoff and self.max_deliver <= len(self.backoff):
            raise ApiError(400, 10116, "max deliver is required to be > length of backoff values")
        if len(self.description) > MAX_DESCRIPTION_LEN:
            raise ApiError(400, 10107, "consumer description is too long, maximum allowed is "
                                       f"{MAX_DESCRIPTION_LEN}")
        if self.is_push:
            _check_push(self, stream)
        else:
            _check_pull(self, stream)
        _check_stream_limits(self, stream)
        if self.direct and not self.is_push:
            raise ApiError(400, 10090, "consumer direct requires a push based consumer")
        if self.direct and self.is_durable:
            raise ApiError(400, 10091, "consumer direct requires an ephemeral consumer")
        # Filters need not lie within the stream's subjects (10093 is gone since 2.10).
        _check_filters(self)
        _check_start(self)
        if self.sample_freq:
            text = self.sample_freq.removesuffix("%")
            if not text.isdigit():
                raise ApiError(400, 10095, "failed to parse consumer sampling configuration: "
                                           f'strconv.Atoi: parsing "{text}": invalid syntax')
        if self.flow_control and self.idle_heartbeat == 0:
            raise ApiError(400, 10108, "consumer with flow control also needs heartbeats")
        if self.durable_name and self.name and self.name != self.durable_name:
            raise ApiError(400, 10132, "Consumer Durable and Name have to be equal if both are "
                                       "provided")
        size = sum(len(k) + len(v) for k, v in (self.metadata or {}).items())
        if size > MAX_METADATA_LEN:
            raise ApiError(400, 10135, "consumer metadata exceeds maximum size of "
                                       f"{MAX_METADATA_LEN // 1024}KB")

    def check_update(self, old: ConsumerConfig) -> None:
        """What an existing consumer may not change (nats-server's updateConfig), in nats-server
        2.15's order."""
        def refuse(what: str) -> ApiError:
            return ApiError(500, 10012, f"{what} can not be updated")

        if self.deliver_policy != old.deliver_policy:
            raise refuse("deliver policy")
        if self.mem_storage != old.mem_storage:
            raise refuse("storage type")
        if self.direct != old.direct:
            raise refuse("direct")
        if self.opt_start_seq != old.opt_start_seq:
            raise refuse("start sequence")
        if self.start_time_ns != old.start_time_ns:
            raise refuse("start time")
        if self.ack_policy != old.ack_policy:
            raise refuse("ack policy")
        if self.replay_policy != old.replay_policy:
            raise refuse("replay policy")
        if self.idle_heartbeat != old.idle_heartbeat:
            raise refuse("heart beats")
        if self.flow_control != old.flow_control:
            raise refuse("flow control")
        if self.is_push != old.is_push:
            raise ApiError(500, 10012, "can not update push consumer to pull based" if
                           old.is_push else "can not update pull consumer to push based")
        if self.max_waiting != old.max_waiting:
            raise refuse("max waiting")

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ConsumerConfig:
        """Back from `to_json` (a stored or replicated config); unknown keys are ignored."""
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in names})

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in ("durable_name", "name", "description"):
            if getattr(self, name):
                out[name] = getattr(self, name)
        out["deliver_policy"] = self.deliver_policy
        if self.opt_start_seq:
            out["opt_start_seq"] = self.opt_start_seq
        if self.opt_start_time:
            out["opt_start_time"] = format_ns(self.start_time_ns)
        out["ack_policy"] = self.ack_policy
        for name in ("ack_wait", "max_deliver", "backoff", "filter_subject", "filter_subjects"):
            if getattr(self, name):
                out[name] = getattr(self, name)
        out["replay_policy"] = self.replay_policy
        for name in ("rate_limit_bps", "sample_freq", "max_waiting", "max_ack_pending",
                     "idle_heartbeat", "flow_control", "headers_only", "max_batch", "max_expires",
                     "max_bytes", "deliver_subject", "deliver_group", "inactive_threshold"):
            if getattr(self, name):
                out[name] = getattr(self, name)
        out["num_replicas"] = self.num_replicas
        for name in ("mem_storage", "direct", "metadata"):
            if getattr(self, name):
                out[name] = getattr(self, name)
        return out


def stream_limit(stream: StreamConfig, name: str) -> int:
    """One of the stream's consumer_limits (0: not set)."""
    value = (stream.consumer_limits or {}).get(name, 0)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _check_stream_limits(cfg: ConsumerConfig, stream: StreamConfig) -> None:
    """A consumer may not go above its stream's consumer_limits (create and update alike)."""
    max_ack_pending = stream_limit(stream, "max_ack_pending")
    if max_ack_pending > 0 and cfg.max_ack_pending > max_ack_pending:
        raise ApiError(400, 10121, "consumer max ack pending exceeds system limit of "
                                   f"{max_ack_pending}")
    threshold = stream_limit(stream, "inactive_threshold")
    if threshold > 0 and cfg.inactive_threshold > threshold:
        raise ApiError(400, 10153, "consumer inactive threshold exceeds system limit of "
                                   f"{go_duration(threshold)}")


def go_duration(ns: int) -> str:
    """A duration as Go's time.Duration prints it: `10s`, `1m30s`, `1h0m0s`, `1.5s`, `250ms`."""
    if ns == 0:
        return "0s"
    sign, ns = ("-", -ns) if ns < 0 else ("", ns)
    if ns < NANOS:
        for unit, size in (("ms", 1_000_000), ("\u00b5s", 1_000), ("ns", 1)):
            if ns >= size:
                return sign + _decimal(ns, size) + unit
    hours, rest = divmod(ns, 3600 * NANOS)
    minutes, rest = divmod(rest, 60 * NANOS)
    text = _decimal(rest, NANOS) + "s"
    if hours or minutes:
        text = f"{minutes}m{text}"
    if hours:
        text = f"{hours}h{text}"
    return sign + text


def _decimal(value: int, unit: int) -> str:
    """value / unit in decimal, without trailing zeros in the fraction."""
    whole, frac = divmod(value, unit)
    if not frac:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}.{str(frac).rjust(digits, '0').rstrip('0')}"


def _check_enums(cfg: ConsumerConfig) -> None:
    for name, allowed in (("deliver_policy", DELIVER_POLICIES), ("ack_policy", ACK_POLICIES),
                          ("replay_policy", REPLAY_POLICIES)):
        if getattr(cfg, name) not in allowed:
            raise errors.invalid_json(f'json: can not unmarshal "{getattr(cfg, name)}" into '
                                      f"{name}")
    if cfg.opt_start_time:
        try:
            parse_ns(cfg.opt_start_time)
        except ValueError as exc:
            raise errors.invalid_json(str(exc)) from None


def _check_push(cfg: ConsumerConfig, stream: StreamConfig) -> None:
    subject = cfg.deliver_subject.encode()
    if not is_literal(subject):
        raise ApiError(400, 10079, "consumer deliver subject has wildcards")
    if not is_valid_subject(subject):
        raise ApiError(400, 10112, "invalid push consumer deliver subject")
    if any(subjects_collide(subject, s.encode()) for s in stream.subjects):
        raise ApiError(400, 10081, "consumer deliver subject forms a cycle")
    if cfg.max_waiting != 0:
        raise ApiError(400, 10080, "consumer in push mode can not set max waiting")
    if cfg.max_ack_pending > 0 and cfg.ack_policy == "none":
        raise ApiError(400, 10082, "consumer requires ack policy for max ack pending")
    if 0 < cfg.idle_heartbeat < MIN_HEARTBEAT:
        raise ApiError(400, 10083, "consumer idle heartbeat needs to be >= 100ms")


def _check_pull(cfg: ConsumerConfig, stream: StreamConfig) -> None:
    if cfg.ack_policy == "none" and stream.retention == "workqueue":
        raise ApiError(400, 10084, "consumer in pull mode requires ack policy")
    if cfg.rate_limit_bps > 0:
        raise ApiError(400, 10086, "consumer in pull mode can not have rate limit set")
    if cfg.max_waiting < 0:
        raise ApiError(400, 10087, "consumer max waiting needs to be positive")
    if cfg.idle_heartbeat > 0:
        raise ApiError(400, 10088, "consumer idle heartbeat requires a push based consumer")
    if cfg.flow_control:
        raise ApiError(400, 10089, "consumer flow control requires a push based consumer")
    if cfg.max_batch < 0:
        raise ApiError(400, 10114, "consumer max request batch needs to be > 0")
    if cfg.max_expires != 0 and cfg.max_expires < 1_000_000:
        raise ApiError(400, 10115, "consumer max request expires needs to be >= 1ms")


def _check_filters(cfg: ConsumerConfig) -> None:
    if cfg.filter_subject and cfg.filter_subjects:
        raise ApiError(400, 10136, "consumer cannot have both FilterSubject and FilterSubjects "
                                   "specified")
    if cfg.filter_subject and not is_valid_subject(cfg.filter_subject.encode()):
        raise errors.stream_invalid_config("invalid subject")
    if any(not f for f in cfg.filter_subjects):
        raise ApiError(400, 10139, "consumer filter in FilterSubjects cannot be empty")
    filters = cfg.filter_subjects or ([cfg.filter_subject] if cfg.filter_subject else [])
    for i, a in enumerate(filters):
        if not is_valid_subject(a.encode()):
            raise errors.stream_invalid_config("invalid subject")
        for j, b in enumerate(filters):
            if i != j and is_subset(a.encode(), b.encode()):
                raise ApiError(400, 10138, "consumer subject filters cannot overlap")


def _check_start(cfg: ConsumerConfig) -> None:
    names = {"all": "all", "last": "last", "last_per_subject": "last per subject",
             "new": "new", "by_start_sequence": "by start sequence",
             "by_start_time": "by start time"}
    policy = names[cfg.deliver_policy]

    def bad(start: str) -> ApiError:
        return ApiError(400, 10094, f"consumer delivery policy is deliver {policy}, but optional "
                                    f"start {start} is also set")

    def missing(what: str) -> ApiError:
        return ApiError(400, 10094, f"consumer delivery policy is deliver {policy}, but optional "
                                    f"{what} is not set")

    if cfg.deliver_policy in ("all", "last", "last_per_subject", "new"):
        if cfg.opt_start_seq:
            raise bad("sequence")
        if cfg.opt_start_time:
            raise bad("time")
        if cfg.deliver_policy == "last_per_subject" and not (cfg.filter_subject or
                                                             cfg.filter_subjects):
            raise missing("filter subject")
    elif cfg.deliver_policy == "by_start_sequence":
        if not cfg.opt_start_seq:
            raise missing("start sequence")
        if cfg.opt_start_time:
            raise bad("time")
    elif cfg.deliver_policy == "by_start_time":
        if not cfg.opt_start_time:
            raise missing("start time")
        if cfg.opt_start_seq:
            raise bad("start sequence")
