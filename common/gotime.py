"""Times and durations the way nats-server's JSON has them (Go's time.Time and time.Duration).

Timestamps are RFC 3339 in UTC with a `Z` and up to nine fractional digits, trailing zeros
trimmed (Go's RFC3339Nano); the zero time is `0001-01-01T00:00:00Z`. Durations in API JSON are
integer nanoseconds; in monitoring text they look like `1h2m3s`.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

ZERO_TIME = "0001-01-01T00:00:00Z"
NANOS = 1_000_000_000

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(Z|z|[+-]\d{2}:\d{2})$")


def now_ns() -> int:
    return time.time_ns()


def format_ns(ns: int) -> str:
    """Unix nanoseconds as Go's RFC3339Nano in UTC; 0 is the zero time."""
    if ns <= 0:
        return ZERO_TIME
    secs, frac = divmod(ns, NANOS)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    if not frac:
        return base + "Z"
    return f"{base}.{frac:09d}".rstrip("0") + "Z"


def parse_ns(text: str) -> int:
    """RFC 3339 (any offset, up to 9 fractional digits) to Unix nanoseconds; ValueError if bad."""
    m = _RFC3339.match(text)
    if m is None:
        raise ValueError(f"invalid time {text!r}")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    frac = (m.group(7) or "").ljust(9, "0")
    if year == 1 and month == 1 and day == 1 and not hour and not minute and not second:
        return 0
    zone = m.group(8)
    stamp = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    seconds = int(stamp.timestamp())
    if zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return seconds * NANOS + int(frac)


def format_duration(seconds: float) -> str:
    """nats-server's uptime/idle format: `1d2h3m4s`, `0s`."""
    secs = int(seconds)
    days, secs = divmod(secs, 86400)
    hours, secs = divmod(secs, 3600)
    minutes, secs = divmod(secs, 60)
    out = ""
    if days:
        out += f"{days}d"
    if days or hours:
        out += f"{hours}h"
    if days or hours or minutes:
        out += f"{minutes}m"
    return out + f"{secs}s"


# Go's time.ParseDuration units, in nanoseconds.
DURATION_UNITS = {"ns": 1, "us": 1_000, "\u00b5s": 1_000, "\u03bcs": 1_000, "ms": 1_000_000,
                  "s": NANOS, "m": 60 * NANOS, "h": 3600 * NANOS}
_DURATION_PART = re.compile(r"(\d*)(?:\.(\d*))?([^\d.]*)")


def parse_go_duration(text: str) -> int:
    """A Go duration (`1h30m`, `500ms`, `1.5s`, `-2s`, `0`) to nanoseconds, exactly as Go's
    time.ParseDuration reads it: decimal numbers, each with an optional fraction and a required
    unit (ns, us, µs, ms, s, m, h). ValueError with Go's own message otherwise."""
    original = text
    sign = 1
    if text[:1] in ("-", "+"):
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    if text == "0":
        return 0
    if not text:
        raise ValueError(f'time: invalid duration "{original}"')
    total = 0
    while text:
        match = _DURATION_PART.match(text)
        assert match is not None  # every part of the pattern is optional
        whole, fraction, unit = match.group(1), match.group(2), match.group(3)
        if not whole and not fraction:
            raise ValueError(f'time: invalid duration "{original}"')
        if not unit:
            raise ValueError(f'time: missing unit in duration "{original}"')
        # A unit runs until the next digit or dot: "1h30m" -> "h", then "30m".
        if unit not in DURATION_UNITS:
            raise ValueError(f'time: unknown unit "{unit}" in duration "{original}"')
        scale = DURATION_UNITS[unit]
        total += int(whole or "0") * scale
        if fraction:
            total += int(fraction) * scale // 10 ** len(fraction)
        text = text[match.end():]
    return sign * total
