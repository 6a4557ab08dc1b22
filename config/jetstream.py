"""The `jetstream` key: `jetstream: enabled`, `jetstream: true`, or a `jetstream { }` block."""

from __future__ import annotations

from config import unsupported
from config.options import JetStreamOptions, Options
from config.table import BOOL, DURATION, INT, STRING, Key, Kind, Section, apply_section
from config.units import parse_storage_size
from config.values import Field, expected, read_duration

_SWITCH_WORDS = {"enabled": True, "enable": True, "disabled": False, "disable": False}


def apply_jetstream(options: Options, field: Field) -> None:
    """A boolean, `enabled`/`disabled`, or a block, which means "on" unless it says otherwise."""
    js = options.jetstream
    value = field.value
    if isinstance(value, bool):
        js.enabled = value
        return
    if isinstance(value, str):
        if value.lower() not in _SWITCH_WORDS:
            raise field.error(f"Expected 'enabled' or 'disabled' for string value, got {value!r}")
        js.enabled = _SWITCH_WORDS[value.lower()]
        return
    if not isinstance(value, dict):
        raise expected(field, "a block { }, a boolean, or enabled/disabled")
    js.enabled = True
    apply_section(field, JETSTREAM, js)


def _read_store_size(field: Field) -> int:
    """Bare literals use the size rules (`1G` = 10^9), strings nats-server's quirk ("1G" = 2^30)."""
    value = field.value
    if isinstance(value, str):
        try:
            return parse_storage_size(value)
        except ValueError as exc:
            raise field.error(str(exc)) from exc
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise expected(field, 'a size such as 1GB or "1G"')


def _check_domain(field: Field, domain: str) -> str:
    if any(char in domain for char in ".*> \t"):
        raise field.error("invalid domain name: may not contain ., * or > or spaces")
    return domain


def _read_sync_interval(field: Field) -> float | None:
    """`always` (fsync before every ack: None) or how often to fsync, as a duration."""
    if isinstance(field.value, str) and field.value.lower() == "always":
        return None
    seconds = read_duration(field)
    if seconds <= 0:
        raise field.error('must be "always" or a positive duration such as "2m"')
    return seconds


def _normalize_tag(field: Field, tag: str) -> str:
    return tag.strip().lower()


STORE_SIZE = Kind('size (a bare literal, or "<n>K|M|G|T")', _read_store_size)
SYNC_INTERVAL = Kind('"always" or a positive duration', _read_sync_interval)

LIMITS = Section(
    JetStreamOptions,
    (
        Key("max_ack_pending", INT, "max_ack_pending", minimum=-1),
        Key("max_ha_assets", INT, "max_ha_assets", minimum=-1),
        Key("max_request_batch", INT, "max_request_batch", minimum=-1),
        Key("duplicate_window", DURATION, "duplicate_window"),
    ),
    unsupported.JETSTREAM_LIMITS,
)
JETSTREAM = Section(
    JetStreamOptions,
    (
        Key("enabled", BOOL, "enabled", aliases=("enable",)),
        # Settable here and at the top level, but only once (nats-server's rule).
        Key("store_dir", STRING, "store_dir", aliases=("store", "storedir"), once=True),
        Key(
            "max_memory_store",
            STORE_SIZE,
            "max_memory_store",
            aliases=("max_mem_store", "max_mem"),
            minimum=-1,
        ),
        Key("max_file_store", STORE_SIZE, "max_file_store", aliases=("max_file",), minimum=-1),
        Key("domain", STRING, "domain", refine=_check_domain),
        Key("sync_interval", SYNC_INTERVAL, "sync_interval", aliases=("sync",)),
        Key("strict", BOOL, "strict"),
        Key("unique_tag", STRING, "unique_tag", refine=_normalize_tag),
        Key("limits", block=LIMITS),
    ),
    unsupported.JETSTREAM,
)
