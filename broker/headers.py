"""NATS message headers (ADR-4).

A block is `NATS/1.0[ <code>[ <text>]]` CRLF, then `Key: Value` CRLF lines, then an empty line.
Keys are case-sensitive on the wire and may repeat; the server looks up its own `Nats-*` headers
by exact name.
"""

from __future__ import annotations

PREFIX = b"NATS/1.0"
EMPTY_BLOCK = b"NATS/1.0\r\n\r\n"

MSG_ID = "Nats-Msg-Id"
EXPECTED_STREAM = "Nats-Expected-Stream"
EXPECTED_LAST_SEQ = "Nats-Expected-Last-Sequence"
EXPECTED_LAST_SUBJECT_SEQ = "Nats-Expected-Last-Subject-Sequence"
EXPECTED_LAST_MSG_ID = "Nats-Expected-Last-Msg-Id"
ROLLUP = "Nats-Rollup"
TTL = "Nats-TTL"
STREAM = "Nats-Stream"
SEQUENCE = "Nats-Sequence"
TIME_STAMP = "Nats-Time-Stamp"
SUBJECT = "Nats-Subject"
LAST_SEQUENCE = "Nats-Last-Sequence"
NUM_PENDING = "Nats-Num-Pending"


def parse(block: bytes) -> dict[str, list[str]]:
    """Header block -> {key: [values]}; the status line is not included. Lenient on garbage."""
    headers: dict[str, list[str]] = {}
    if not block.startswith(PREFIX):
        return headers
    for line in block.split(b"\r\n")[1:]:
        if not line:
            continue
        key, sep, value = line.partition(b":")
        if not sep:
            continue
        name = key.decode("utf-8", "replace").strip()
        headers.setdefault(name, []).append(value.decode("utf-8", "replace").strip())
    return headers


def first(headers: dict[str, list[str]], key: str) -> str | None:
    values = headers.get(key)
    return values[0] if values else None


def status(block: bytes) -> tuple[str, str]:
    """(code, description) of the status line; ("", "") when it carries none."""
    line = block.split(b"\r\n", 1)[0]
    parts = line[len(PREFIX):].strip().split(b" ", 1)
    code = parts[0].decode() if parts and parts[0] else ""
    text = parts[1].decode("utf-8", "replace") if len(parts) > 1 else ""
    return code, text


def build(headers: list[tuple[str, str]] | dict[str, str], code: str = "",
          description: str = "") -> bytes:
    """A header block from pairs (or a dict), with an optional status line."""
    line = PREFIX
    if code:
        line += b" " + code.encode()
        if description:
            line += b" " + description.encode()
    items = headers.items() if isinstance(headers, dict) else headers
    body = b"".join(b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in items)
    return line + b"\r\n" + body + b"\r\n"


def merge(block: bytes, extra: list[tuple[str, str]]) -> bytes:
    """`block` (possibly empty) with `extra` headers appended before the final blank line."""
    added = b"".join(b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in extra)
    if not block:
        return PREFIX + b"\r\n" + added + b"\r\n"
    return block[:-2] + added + b"\r\n"
