"""StreamConfig: the JSON nats clients send, normalised and validated as nats-server does.

`normalize()` applies nats-server's defaults (0 means "default" and clients send zeros);
`to_json()` echoes the config with Go's omitempty rules so clients see what nats-server sends.
Validation mirrors `checkStreamCfg` and the update rules of `configUpdateCheck`, including
`subject_transform` and `republish` (common/transform.py) and the checks of a mirror or sources
(`check_sourcing`; those against other streams need the `lookup` `normalized()` takes); the
copying itself is broker/jetstream/sourcing.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
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
from common.subjects import (
    is_literal,
    is_subset,
    is_valid_subject,
    subject_matches,
    subjects_collide,
)
from common.transform import TransformError, new_transform, validate_mapping

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

    def normalized(self, server_duplicate_limit: int = 0, lookup: Lookup | None = None
                   ) -> StreamConfig:
        """A copy with defaults applied and everything checked; raises ApiError. `lookup`
        finds the account's other streams by name (for the checks of a mirror or sources
        against their origins); without it those checks see no other stream."""
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
        check_sourcing(cfg, lookup)
        _normalize_subjects(cfg)
        _check_consumer_limits(cfg)
        _check_subject_transform(cfg)
        _check_republish(cfg)
        check_sourcing_filters(cfg)
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
        # A mirror may be removed (the stream is promoted), never changed.
        if self.mirror is not None and _zero_free(self.mirror) != _zero_free(old.mirror):
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
    if cfg.duplicate_window == 0 and cfg.mirror is None and not cfg.sources:
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


def _check_consumer_limits(cfg: StreamConfig) -> None:
    """`consumer_limits { inactive_threshold, max_ack_pending }`: integers, nothing else
    (nats-server decodes them into a struct that refuses unknown fields: 10025)."""
    for key, value in (cfg.consumer_limits or {}).items():
        if key not in ("inactive_threshold", "max_ack_pending"):
            raise errors.invalid_json(f"unknown field {key!r} in consumer_limits")
        if not isinstance(value, int) or isinstance(value, bool):
            raise errors.invalid_json(f"consumer_limits.{key} must be an integer")


def _normalize_subjects(cfg: StreamConfig) -> None:
    if not cfg.subjects:
        if cfg.mirror is None and not cfg.sources:
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


# Subject transform and republish (checkStreamCfg's last checks)


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise errors.invalid_json(f"json: cannot unmarshal into Go struct field {where}")
    return value


def _field(obj: dict[str, Any], key: str, kind: type, where: str) -> Any:
    """`obj[key]` of JSON type `kind` (str / bool / int), or its zero value when absent."""
    value = obj.get(key)
    if value is None:
        return kind()
    if kind is int and isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise errors.invalid_json(f"json: cannot unmarshal into Go struct field {where}.{key}")
    return value


def _check_subject_transform(cfg: StreamConfig) -> None:
    """`subject_transform {src, dest}`: echoed with both keys; an empty dest transforms
    nothing."""
    if cfg.subject_transform is None:
        return
    st = _object(cfg.subject_transform, "StreamConfig.subject_transform")
    src = _field(st, "src", str, "SubjectTransformConfig")
    dest = _field(st, "dest", str, "SubjectTransformConfig")
    cfg.subject_transform = {"src": src, "dest": dest}
    if src and not is_valid_subject(src.encode()):
        raise ApiError(400, 10155, f"stream transform source: invalid subject {src}")
    try:
        validate_mapping(src, dest)
    except TransformError as exc:
        raise ApiError(400, 10156, f"stream transform: {exc}") from None


def _check_republish(cfg: StreamConfig) -> None:
    """`republish {src, dest, headers_only}`: src defaults to `>`; dest must not lead back
    into the stream. `>` to `>` with a transform of the stream's only subject republishes the
    transformed subjects. An empty dest republishes nothing."""
    if cfg.republish is None:
        return
    rp = _object(cfg.republish, "StreamConfig.republish")
    src = _field(rp, "src", str, "RePublish") or ">"
    dest = _field(rp, "dest", str, "RePublish")
    headers_only = _field(rp, "headers_only", bool, "RePublish")
    st = cfg.subject_transform
    if src == ">" and dest == ">" and st is not None and len(cfg.subjects) == 1 \
            and st["src"] == cfg.subjects[0]:
        src = dest = st["dest"]
    cfg.republish = {"src": src, "dest": dest}
    if headers_only:
        cfg.republish["headers_only"] = True
    if any(subjects_collide(dest.encode(), s.encode()) for s in cfg.subjects):
        raise errors.stream_invalid_config(
            "stream configuration for republish destination forms a cycle")
    try:
        new_transform(src, dest)
    except TransformError:
        raise errors.stream_invalid_config(
            f"stream configuration for republish with transform from '{src}' to '{dest}' "
            "not valid") from None


# Mirror and sources (checkStreamCfg's checks of them, in its order)

# The account's other streams by name (None: no such stream).
Lookup = Callable[[str], "StreamConfig | None"]

JS_API_PREFIX = "$JS.API"


def _consumer_invalid(mirror: bool) -> ApiError:
    if mirror:
        return ApiError(400, 10213, "stream mirror consumer config is invalid")
    return ApiError(400, 10215, "stream source consumer config is invalid")


def _is_asset_name(name: Any) -> bool:
    return isinstance(name, str) and is_valid_name(name) and "/" not in name \
        and "\\" not in name


def _is_publish_subject(subject: str) -> bool:
    return is_valid_subject(subject.encode()) and is_literal(subject)


def _origin(value: Any, where: str) -> dict[str, Any]:
    """A mirror or source entry, its fields type-checked as Go's decoder would."""
    origin = _object(value, where)
    for key in ("name", "filter_subject", "opt_start_time"):
        _field(origin, key, str, "StreamSource")
    _field(origin, "opt_start_seq", int, "StreamSource")
    for key in ("external", "consumer"):
        if origin.get(key) is not None:
            obj = _object(origin[key], f"StreamSource.{key}")
            for sub in obj:
                _field(obj, sub, str, f"StreamSource.{key}")
    transforms = origin.get("subject_transforms")
    if transforms is not None:
        if not isinstance(transforms, list):
            raise errors.invalid_json("json: cannot unmarshal into Go struct field "
                                      "StreamSource.subject_transforms")
        for tr in transforms:
            tr = _object(tr, "StreamSource.subject_transforms")
            _field(tr, "src", str, "SubjectTransformConfig")
            _field(tr, "dest", str, "SubjectTransformConfig")
    return origin


def _transforms(origin: dict[str, Any]) -> list[tuple[str, str]]:
    return [(tr.get("src") or "", tr.get("dest") or "")
            for tr in origin.get("subject_transforms") or []]


def _check_origin_consumer(origin: dict[str, Any], mirror: bool) -> None:
    """A durable consumer named for the sourcing: a name, a literal deliver subject, and no
    start position or filter of the origin's own."""
    consumer = origin.get("consumer")
    if consumer is None:
        return
    deliver = consumer.get("deliver_subject") or ""
    if not _is_asset_name(consumer.get("name") or "") or not is_literal(deliver) \
            or not is_valid_subject(deliver.encode()):
        raise _consumer_invalid(mirror)
    if origin.get("opt_start_seq") or origin.get("opt_start_time"):
        raise _consumer_invalid(mirror)
    if origin.get("filter_subject"):
        raise _consumer_invalid(mirror)


def _check_transforms(transforms: list[tuple[str, str]], mirror: bool) -> None:
    """Each transform's source and destination (then, for a mirror, their overlap)."""
    what, bad_src, bad_dest = ("mirror", 10151, 10154) if mirror else ("source", 10145, 10146)
    for i, (src, dest) in enumerate(transforms):
        if src and not is_valid_subject(src.encode()):
            raise ApiError(400, bad_src, f"{what} transform source: invalid subject {src}")
        try:
            validate_mapping(src, dest)
        except TransformError as exc:
            raise ApiError(400, bad_dest, f"{what} transform: {exc}") from None
        if mirror:
            for j, (other, _) in enumerate(transforms):
                if i != j and subjects_collide(src.encode(), other.encode()):
                    raise ApiError(400, 10152, "mirror subject filters can not overlap")


def _source_key(origin: dict[str, Any]) -> str:
    """What makes two sources the same (nats-server's composeIName): the stream, its API
    prefix, its consumer and its filters / transforms."""
    key = origin.get("name") or ""
    external = origin.get("external")
    if external is not None:
        key += ":" + (external.get("api") or "")
    consumer = origin.get("consumer")
    if consumer is not None:
        key += ":C=" + (consumer.get("name") or "")
    transforms = _transforms(origin)
    if transforms:
        src = "\f".join(s or ">" for s, _ in transforms)
        dest = "\f".join(d or ">" for _, d in transforms)
    else:
        src, dest = origin.get("filter_subject") or ">", ">"
    return f"{key} {src} {dest}"


def check_sourcing(cfg: StreamConfig, lookup: Lookup | None = None) -> None:
    """The checks of a mirror or of sources, as nats-server's checkStreamCfg makes them (in
    its order, before the stream's own subjects are looked at). `lookup`: the account's other
    streams, for the checks against an origin and the cycle check through them."""
    if cfg.sources is not None and not cfg.sources:
        cfg.sources = None
    find: Lookup = lookup or (lambda name: None)
    origin_subjects: list[str] = []
    deliver_prefixes: list[str] = []
    api_prefixes: list[str] = []

    def external_prefixes(origin: dict[str, Any]) -> None:
        external = origin["external"]
        if external.get("deliver"):
            deliver_prefixes.append(external["deliver"])
        if external.get("api"):
            api_prefixes.append(external["api"])

    if cfg.mirror is not None:
        mirror = _origin(cfg.mirror, "StreamConfig.mirror")
        if cfg.first_seq > 0:
            raise ApiError(400, 10143, "stream mirrors can not have first sequence configured")
        if cfg.subjects:
            raise ApiError(400, 10034, "stream mirrors can not contain subjects")
        if cfg.sources:
            raise ApiError(400, 10031, "stream mirrors can not also contain other sources")
        _check_origin_consumer(mirror, mirror=True)
        transforms = _transforms(mirror)
        if mirror.get("filter_subject") and transforms:
            raise ApiError(400, 10150, "mirror with multiple subject transforms cannot also "
                           "have a single subject filter")
        if cfg.subject_delete_marker_ttl > 0:
            raise errors.stream_invalid_config("subject delete markers forbidden on mirrors")
        _check_transforms(transforms, mirror=True)
        if mirror.get("external") is None:
            name = mirror.get("name") or ""
            if not _is_asset_name(name):
                raise ApiError(400, 10142, "mirrored stream name is invalid")
            origin_cfg = find(name)
            if origin_cfg is not None:
                origin_subjects += origin_cfg.subjects
                if 0 < cfg.max_msg_size < origin_cfg.max_msg_size:
                    raise ApiError(400, 10030,
                                   "stream mirror must have max message size >= source")
                cfg.mirror_direct = origin_cfg.allow_direct
        else:
            external_prefixes(mirror)

    seen: set[str] = set()
    consumers: set[str] = set()
    for entry in cfg.sources or []:
        source = _origin(entry, "StreamConfig.sources")
        if not _is_asset_name(source.get("name") or ""):
            raise ApiError(400, 10141, "sourced stream name is invalid")
        key = _source_key(source)
        if key in seen:
            raise ApiError(400, 10140, "duplicate source configuration detected")
        seen.add(key)
        transforms = _transforms(source)
        if source.get("filter_subject") and transforms:
            raise ApiError(400, 10144, "source with multiple subject transforms cannot also "
                           "have a single subject filter")
        _check_transforms(transforms, mirror=False)
        for i, (src, _) in enumerate(transforms):
            for j, (other, _) in enumerate(transforms):
                if i != j and is_subset(src.encode(), other.encode()):
                    raise ApiError(400, 10147, "source filters can not overlap")
        _check_origin_consumer(source, mirror=False)
        if source.get("consumer") is not None:
            consumer_key = source["name"] + (
                ":" + (source["external"].get("api") or "") if source.get("external") else "")
            consumer_key += " " + (source["consumer"].get("name") or "")
            if consumer_key in consumers:
                raise ApiError(400, 10216, "duplicate stream source consumer detected")
            consumers.add(consumer_key)
        if source.get("external") is None:
            origin_cfg = find(source["name"])
            if origin_cfg is not None:
                origin_subjects += origin_cfg.subjects
                if 0 < cfg.max_msg_size < origin_cfg.max_msg_size:
                    raise ApiError(400, 10046,
                                   "stream source must have max message size >= target")
        else:
            external_prefixes(source)

    for prefix in deliver_prefixes:
        if not _is_publish_subject(prefix):
            raise ApiError(400, 10024,
                           f"stream external delivery prefix {prefix} must not contain wildcards")
        for subject in origin_subjects:
            if subjects_collide(subject.encode(), f"{prefix}.{subject}".encode()):
                raise ApiError(400, 10022, f"stream external delivery prefix {prefix} overlaps "
                               f"with stream subject {subject}")
    for prefix in api_prefixes:
        if not _is_publish_subject(prefix):
            raise errors.stream_invalid_config(
                f"stream external api prefix {_go_quote(prefix)} must be a valid subject "
                "without wildcards")
        if subjects_collide(prefix.encode(), JS_API_PREFIX.encode()):
            raise ApiError(400, 10021, f"stream external api prefix {prefix} must not "
                           f"overlap with {JS_API_PREFIX}")
    _check_cycles(cfg, find)


def _check_cycles(cfg: StreamConfig, find: Lookup) -> None:
    """No stream may (through sources or mirrors, local ones) end up filled from itself."""
    to_visit = [cfg]
    visited: set[str] = set()

    def overlaps(subjects: list[str], filter_subject: str) -> bool:
        return not filter_subject or any(
            subjects_collide(s.encode(), filter_subject.encode()) for s in subjects)

    while to_visit:
        current = to_visit.pop(0)
        visited.add(current.name)
        for source in current.sources or []:
            if source.get("external") is not None:
                continue
            name = source.get("name") or ""
            if name in visited:
                if overlaps(current.subjects, source.get("filter_subject") or ""):
                    raise errors.stream_invalid_config("detected cycle")
            elif (found := find(name)) is not None:
                to_visit.append(found)
        mirror = current.mirror
        if mirror is not None and mirror.get("external") is None:
            name = mirror.get("name") or ""
            if name in visited:
                raise errors.stream_invalid_config("detected cycle")
            if (found := find(name)) is not None:
                to_visit.append(found)


def check_sourcing_filters(cfg: StreamConfig) -> None:
    """The filter subjects of a mirror or sources without transforms, which nats-server checks
    when it adds the stream (after checkStreamCfg): 500/10049."""
    if cfg.mirror is not None and not _transforms(cfg.mirror):
        subject = cfg.mirror.get("filter_subject") or ""
        if subject and not is_valid_subject(subject.encode()):
            raise ApiError(500, 10049,
                           f"subject filter '{subject}' for the mirror invalid subject")
    for source in cfg.sources or []:
        subject = source.get("filter_subject") or ""
        if not _transforms(source) and subject and not is_valid_subject(subject.encode()):
            raise ApiError(500, 10049,
                           f"subject filter '{subject}' for the source: invalid subject")


def _zero_free(value: Any) -> Any:
    """A JSON value without its zero-valued members (Go compares structs, where an absent
    field and a zero one are the same)."""
    if isinstance(value, dict):
        return {k: _zero_free(v) for k, v in value.items() if v not in (None, "", 0, False, [], {})}
    if isinstance(value, list):
        return [_zero_free(v) for v in value]
    return value


def _go_quote(text: str) -> str:
    """Go's %q of a plain string."""
    return json.dumps(text, ensure_ascii=False)
