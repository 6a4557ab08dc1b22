"""Durations and sizes as nats-server spells them, shared by the file loader and the command line.

All functions raise ValueError with a message that can follow `<key>: `.
"""

from __future__ import annotations

import re

from config.parser import parse_size_literal

# Go's time.ParseDuration units, in seconds.
DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,  # micro sign
    "\u03bcs": 1e-6,  # Greek mu
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_PART = re.compile(r"(\d*)(?:\.(\d*))?([^\d.]*)")
# The string form of JetStream store sizes: nats-server's getStorageSize accepts only these.
STORAGE_SUFFIX_BITS = {"K": 10, "M": 20, "G": 30, "T": 40}


def parse_duration(text: str) -> float:
    """Go duration syntax (`"1h30m"`, `"500ms"`, `"-2s"`, `"0"`) -> seconds.

    A sequence of decimal numbers, each with an optional fraction and a required unit
    (ns, us, µs, ms, s, m, h), exactly as Go's time.ParseDuration.
    """
    original = text
    sign = 1.0
    if text[:1] in ("-", "+"):
        sign = -1.0 if text[0] == "-" else 1.0
        text = text[1:]
    if text == "0":
        return 0.0
    if not text:
        raise ValueError(f'time: invalid duration "{original}"')
    total = 0.0
    while text:
        match = _DURATION_PART.match(text)
        whole, fraction, unit = match.group(1), match.group(2), match.group(3)
        if not whole and not fraction:
            raise ValueError(f'time: invalid duration "{original}"')
        if not unit:
            raise ValueError(f'time: missing unit in duration "{original}"')
        # A unit runs until the next digit or dot: "1h30m" -> "h", then "30m".
        if unit not in DURATION_UNITS:
            raise ValueError(f'time: unknown unit "{unit}" in duration "{original}"')
        number = float(f"{whole or '0'}.{fraction or '0'}")
        total += number * DURATION_UNITS[unit]
        text = text[match.end() :]
    return sign * total


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
