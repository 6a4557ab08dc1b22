"""StreamConfig: the JSON nats clients send, normalised and validated as nats-server does.

`normalize()` applies nats-server's defaults (0 means "default" and clients send zeros);
`to_json()` echoes the config with Go's omitempty rules so clients see what nats-server sends.
Validation mirrors `checkStreamCfg` and the update rules of `configUpdateCheck`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from broker.jetstream import errors
from broker.jetstream.errors import ApiError
from broker.jetstream.jsondecode import (
    BOOL,
    INT,
    OBJECT,
    OBJECT_LIST,
    STR,
    STR_LIST,
    STR_MAP,
    UINT,
    json_field,
)
from common.gotime import NANOS
from common.subjects import is_subset, is_valid_subject, subject_matches, subjects_collide

MAX_NAME_LEN = 255
MAX_DESCRIPTION_LEN = 4 * 1024
MAX_METADATA_LEN = 128 * 1024
MAX_REPLICAS = 5
DEFAULT_DUPLICATE_WINDOW = 120 * NANOS
MIN_WINDOW = NANOS // 10  # 100ms

RETENTIONS = ("limits", "interest", "workqueue")
DISCARDS = ("old", "new")
STORAGES = ("file", "memory")
COMPRESSIONS = ("none", "s2")


@dataclass
class StreamConfig:
    name: str = json_field(STR, "")
    description: str = json_field(STR, "")
    subjects: list[str] = json_field(STR_LIST, factory=list)
    retention: str = json_field(STR, "limits")
    max_consumers: int = json_field(INT, 0)
    max_msgs: int = json_field(INT, 0)
    max_bytes: int = json_field(INT, 0)
    max_age: int = json_field(INT, 0)
    max_msgs_per_subject: int = json_field(INT, 0)
    max_msg_size: int = json_field(INT, 0)
    discard: str = json_field(STR, "old")
    storage: str = json_field(STR, "file")
    num_replicas: int = json_field(INT, 0)
    no_ack: bool = json_field(BOOL, False)
    template_owner: str = json_field(STR, "")
    duplicate_window: int = json_field(INT, 0)
    placement: dict[str, Any] | None = json_field(OBJECT)
    mirror: dict[str, Any] | None = json_field(OBJECT)
    sources: list[dict[str, Any]] | None = json_field(OBJECT_LIST)
    compression: str = json_field(STR, "none")
    first_seq: int = json_field(UINT, 0)
    subject_transform: dict[str, Any] | None = json_field(OBJECT)
    republish: dict[str, Any] | None = json_field(OBJECT)
    allow_direct: bool = json_field(BOOL, False)
    mirror_direct: bool = json_field(BOOL, False)
    discard_new_per_subject: bool = json_field(BOOL, False)
    sealed: bool = json_field(BOOL, False)
    deny_delete: bool = json_field(BOOL, False)
    deny_purge: bool = json_field(BOOL, False)
    allow_rollup_hdrs: bool = json_field(BOOL, False)
    consumer_limits: dict[str, Any] = json_field(OBJECT, factory=dict)
    metadata: dict[str, str] | None = json_field(STR_MAP)
    allow_msg_ttl: bool = json_field(BOOL, False)
    subject_delete_marker_ttl: int = json_field(INT, 0)

    # Normalisation and validation (nats-server's checkStreamCfg).

    def normalized(self, server_duplicate_limit: int = 0) -> StreamConfig:
        """A copy with defaults applied and everything checked; raises ApiError."""
        cfg = replace(self, subjects=list(self.subjects),
                      consumer_limits=dict(self.consumer_limits or {}))
        _check_identity(cfg)
        _check_enums(cfg)
        if cfg.num_replicas == 0:
            cfg.num_replicas = 1
        if cfg.num_replicas > MAX_REPLICAS:
            raise errors.stream_invalid_config(f"maximum replicas is {MAX_REPLICAS}")
        if cfg.num_replicas < 0:
            raise errors.replicas_negative()
        for name in ("max_msgs", "max_msgs_per_subject", "max_bytes", "max_msg_size",
                     "max_consumers"):
            if getattr(cfg, name) == 0:
                setattr(cfg, name, -1)
        _normalize_windows(cfg, server_duplicate_limit)
        _check_policies(cfg)
        _normalize_subjects(cfg)
        return cfg

    def check_update(self, old: StreamConfig) -> StreamConfig:
        """`self` (already normalised) as an update of `old`; raises ApiError when refused."""
        def refuse(text: str) -> ApiError:
            return errors.stream_invalid_config(text)

        if self.name != old.name:
            raise refuse("stream configuration name must match original")
        if self.max_consumers != old.max_consumers:
            raise refuse("stream configuration update can not change MaxConsumers")
        if self.storage != old.storage:
            raise refuse("stream configuration update can not change storage type")
        if self.retention != old.retention and "workqueue" in (self.retention, old.retention):
            raise refuse("stream configuration update can not change retention policy "
                         "to/from workqueue")
        if old.sealed and not self.sealed:
            raise refuse("stream configuration update can not unseal a sealed stream")
        if old.deny_delete and not self.deny_delete:
            raise refuse("stream configuration update can not cancel deny message deletes")
        if old.deny_purge and not self.deny_purge:
            raise refuse("stream configuration update can not cancel deny purge")
        if old.allow_msg_ttl and not self.allow_msg_ttl:
            raise refuse("stream configuration update can not disable message TTL")
        if self.mirror != old.mirror:
            raise errors.mirror_not_updatable()
        if self.num_replicas != old.num_replicas:
            raise errors.replicas_not_supported()
        cfg = replace(self)
        if cfg.sealed:
            cfg.max_age = 0
            cfg.discard = "new"
            cfg.deny_delete = cfg.deny_purge = True
            cfg.allow_rollup_hdrs = False
        return cfg

    # JSON

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StreamConfig:
        """Back from `to_json` (a stored or replicated config); unknown keys are ignored."""
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in names})

    def to_json(self) -> dict[str, Any]:
        """The echoed config, with Go's omitempty rules for the optional fields."""
        out: dict[str, Any] = {"name": self.name}
        if self.description:
            out["description"] = self.description
        if self.subjects:
            out["subjects"] = list(self.subjects)
        out.update({
            "retention": self.retention,
            "max_consumers": self.max_consumers,
            "max_msgs": self.max_msgs,
            "max_bytes": self.max_bytes,
            "max_age": self.max_age,
            "max_msgs_per_subject": self.max_msgs_per_subject,
        })
        if self.max_msg_size:
            out["max_msg_size"] = self.max_msg_size
        out.update({"discard": self.discard, "storage": self.storage,
                    "num_replicas": self.num_replicas})
        for name in ("no_ack", "template_owner", "duplicate_window", "placement", "mirror",
                     "sources"):
            value = getattr(self, name)
            if value:
                out[name] = value
        out["compression"] = self.compression
        for name in ("first_seq", "subject_transform", "republish"):
            value = getattr(self, name)
            if value:
                out[name] = value
        out["allow_direct"] = self.allow_direct
        out["mirror_direct"] = self.mirror_direct
        if self.discard_new_per_subject:
            out["discard_new_per_subject"] = True
        out.update({"sealed": self.sealed, "deny_delete": self.deny_delete,
                    "deny_purge": self.deny_purge, "allow_rollup_hdrs": self.allow_rollup_hdrs,
                    "consumer_limits": dict(self.consumer_limits)})
        if self.metadata:
            out["metadata"] = dict(self.metadata)
        if self.allow_msg_ttl:
            out["allow_msg_ttl"] = True
        if self.subject_delete_marker_ttl:
            out["subject_delete_marker_ttl"] = self.subject_delete_marker_ttl
        return out

    def matches(self, subject: str) -> bool:
        return any(subject_matches(s.encode(), subject.encode()) for s in self.subjects)


def is_valid_name(name: str) -> bool:
    return bool(name) and not any(c in name for c in " \t\r\n\f.*>")


def _check_identity(cfg: StreamConfig) -> None:
    if not is_valid_name(cfg.name):
        raise errors.stream_invalid_config(
            "stream name is required and can not contain '.', '*', '>'")
    if len(cfg.name) > MAX_NAME_LEN:
        raise errors.stream_invalid_config(
            f"stream name is too long, maximum allowed is {MAX_NAME_LEN}")
    if len(cfg.description) > MAX_DESCRIPTION_LEN:
        raise errors.stream_invalid_config(
            f"stream description is too long, maximum allowed is {MAX_DESCRIPTION_LEN}")
    size = sum(len(k) + len(v) for k, v in (cfg.metadata or {}).items())
    if size > MAX_METADATA_LEN:
        raise errors.stream_invalid_config(
            f"stream metadata exceeds maximum size of {MAX_METADATA_LEN} bytes")


def _check_enums(cfg: StreamConfig) -> None:
    for name, allowed in (("retention", RETENTIONS), ("discard", DISCARDS),
                          ("storage", STORAGES), ("compression", COMPRESSIONS)):
        value = getattr(cfg, name)
        if name == "compression" and value == "":
            cfg.compression = "none"
            continue
        if value not in allowed:
            raise errors.invalid_json(f'json: can not unmarshal "{value}" into {name}')


def _normalize_windows(cfg: StreamConfig, server_limit: int) -> None:
    # The order of these checks decides which error a bad config gets (checkStreamCfg's order).
    if cfg.duplicate_window == 0 and cfg.mirror is None:
        window = DEFAULT_DUPLICATE_WINDOW
        if 0 < server_limit < window:
            window = server_limit
        cfg.duplicate_window = cfg.max_age if cfg.max_age != 0 and cfg.max_age < window \
            else window
    if 0 < cfg.max_age < MIN_WINDOW:
        raise errors.stream_invalid_config("max age needs to be >= 100ms")
    if cfg.duplicate_window < 0:
        raise errors.stream_invalid_config("duplicates window can not be negative")
    if cfg.max_age and cfg.duplicate_window > cfg.max_age:
        raise errors.stream_invalid_config("duplicates window can not be larger then max age")
    if 0 < server_limit < cfg.duplicate_window:
        raise errors.stream_invalid_config(
            "duplicates window can not be larger then server limit")
    if 0 < cfg.duplicate_window < MIN_WINDOW:
        raise errors.stream_invalid_config("duplicates window needs to be >= 100ms")
    if cfg.subject_delete_marker_ttl and cfg.subject_delete_marker_ttl < NANOS:
        raise errors.stream_invalid_config("subject delete marker TTL must be at least 1 second")


def _check_policies(cfg: StreamConfig) -> None:
    if cfg.deny_purge and cfg.allow_rollup_hdrs:
        raise errors.stream_invalid_config("roll-ups require the purge permission")
    if cfg.discard_new_per_subject:
        if cfg.discard != "new":
            raise errors.stream_invalid_config(
                "discard new per subject requires discard new policy to be set")
        if cfg.max_msgs_per_subject <= 0:
            raise errors.stream_invalid_config(
                "discard new per subject requires max msgs per subject > 0")
    for name, what in (("mirror", "mirror"), ("sources", "sources"),
                       ("subject_transform", "subject_transform"),
                       ("republish", "republish")):
        if getattr(cfg, name):
            raise errors.not_supported(f"stream {what}")


def _normalize_subjects(cfg: StreamConfig) -> None:
    if not cfg.subjects:
        cfg.subjects = [cfg.name]
        return
    seen: set[str] = set()
    for subject in cfg.subjects:
        if subject in seen:
            raise errors.stream_invalid_config("duplicate subjects detected")
        if is_subset(subject.encode(), b"$JS.API.>"):
            raise errors.stream_invalid_config("subjects overlap with jetstream api")
        if not is_valid_subject(subject.encode()):
            raise errors.stream_invalid_config("invalid subject")
        seen.add(subject)
    for a in cfg.subjects:
        for b in cfg.subjects:
            if a != b and subjects_collide(a.encode(), b.encode()):
                raise errors.stream_invalid_config(f'subject "{a}" overlaps with "{b}"')
