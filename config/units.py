"""Durations and sizes as nats-server spells them, shared by the file loader and the command line.

All functions raise ValueError with a message that can follow `<key>: `.
"""

from __future__ import annotations

import math
import re

from common.gotime import NANOS, parse_go_duration
from config.parser import parse_size_literal

# The string form of JetStream store sizes: nats-server's getStorageSize accepts only these.
STORAGE_SUFFIX_BITS = {"K": 10, "M": 20, "G": 30, "T": 40}


def parse_duration(text: str) -> float:
    """Go duration syntax (`"1h30m"`, `"500ms"`, `"-2s"`, `"0"`) -> seconds.

    A sequence of decimal numbers, each with an optional fraction and a required unit
    (ns, us, µs, ms, s, m, h), read by Go's own rules (`common.gotime.parse_go_duration`, whose
    ValueError messages are Go's: `time: unknown unit "x" in duration "2x"`).
    """
    nanoseconds = parse_go_duration(text)
    try:
        return nanoseconds / NANOS
    except OverflowError:
        # More nanoseconds than a float holds: infinite, as the float arithmetic this replaced
        # gave (Go itself would refuse anything beyond 2^63 ns).
        return math.inf if nanoseconds > 0 else -math.inf


def format_duration(seconds: float) -> str:
    """Seconds -> a Go-style duration string, for messages (`90` -> `1m30s`)."""
    if seconds == int(seconds) and seconds >= 60:
        minutes, secs = divmod(int(seconds), 60)
        hours, minutes = divmod(minutes, 60)
        text = f"{hours}h" if hours else ""
        text += f"{minutes}m" if minutes or hours else ""
        return text + f"{secs}s"
    return f"{seconds:g}s"


def parse_size(text: str | int) -> int:
    """A size as written in a config file or on the command line -> bytes.

    `1k` = 1000, `1kb` = `1ki` = `1kib` = 1024, likewise m, g, t, p, e (case-insensitive).
    """
    if isinstance(text, bool):
        raise ValueError(f"expected a size, got {text!r}")
    if isinstance(text, int):
        return text
    return parse_size_literal(text.strip())


def parse_storage_size(text: str) -> int:
    """JetStream's `max_memory_store: "1G"` string form, with nats-server's quirk kept.

    Given as a *string*, a store size must end in an upper-case K, M, G or T, each a power of two
    (`"1G"` = 2^30); `"1GB"` and `"1g"` are refused. As a bare literal (`1G`, no quotes) the
    normal size rules apply instead (`1G` = 10^9). The empty string means 0.
    """
    if text == "":
        return 0
    prefix, suffix = text[:-1], text[-1:]
    if not re.fullmatch(r"[+-]?\d+", prefix):
        raise ValueError(f'strconv.ParseInt: parsing "{prefix}": invalid syntax')
    bits = STORAGE_SUFFIX_BITS.get(suffix)
    if bits is None:
        raise ValueError("sizes defined as strings must end in K, M, G, T")
    return int(prefix) << bits
