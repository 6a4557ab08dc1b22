"""Helpers for the JetStream conformance suite: a raw-wire JetStream client and JSON scrubbing.

`RawJS` speaks the client protocol directly (through the parent suite's `wire.Client`), so a test
sees the exact bytes of PubAcks, status messages and delivered messages, including quirks that a
client library would hide (e.g. the double space in ``MSG <subj> <sid>  <size>``). It never sleeps:
it reads frames with a deadline and keeps the frames it was not looking for in a backlog.

`scrub` makes API responses comparable with ``==``: it checks that every timestamp is RFC 3339 UTC
(``Z``), replaces it with ``"<time>"`` (the zero time ``0001-01-01T00:00:00Z`` is kept as is, it is
exact), and replaces advisory ids (nuids) with ``"<nuid>"``. For implementations other than the
oracle it also removes the fields that nats-server 2.10+ added to responses, when they carry their
default value (see `NEWER_DEFAULTS`), so that a broker advertising 2.10 may send them and
nats-server 2.15.1 is compared on what 2.9.10 sends too; and the 2.11+ versioning metadata
(``_nats.*`` keys of a config's ``metadata``, dropped with ``metadata`` if nothing else is left)
and JetStream API level (``"level"`` of the account info's ``api``).
"""

from __future__ import annotations

import calendar
import itertools
import json
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..conftest import since
from ..wire import DEFAULT_TIMEOUT, Client, show

ZERO_TIME = "0001-01-01T00:00:00Z"
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?Z$")
NUID_RE = re.compile(r"^[0-9A-Za-z]{22}$")
#: Keys whose values are timestamps in API responses and advisories.
TIME_KEYS = frozenset(
    {"created", "first_ts", "last_ts", "last_active", "time", "timestamp", "ts", "mtime"}
)
#: v1 ack reply subject (9 tokens).
ACK_RE = re.compile(
    r"^\$JS\.ACK\.(?P<stream>[^.]+)\.(?P<consumer>[^.]+)\.(?P<delivered>\d+)\.(?P<sseq>\d+)"
    r"\.(?P<cseq>\d+)\.(?P<ts>\d+)\.(?P<pending>\d+)$"
)
API = "$JS.API"

#: nats-server 2.9.10 stream config defaults, in the order the server writes them.
STREAM_DEFAULTS: dict[str, Any] = {
    "retention": "limits",
    "max_consumers": -1,
    "max_msgs": -1,
    "max_bytes": -1,
    "max_age": 0,
    "max_msgs_per_subject": -1,
    "max_msg_size": -1,
    "discard": "old",
    "storage": "file",
    "num_replicas": 1,
    "duplicate_window": 120_000_000_000,
    "allow_direct": False,
    "mirror_direct": False,
    "sealed": False,
    "deny_delete": False,
    "deny_purge": False,
    "allow_rollup_hdrs": False,
}

#: Fields nats-server 2.10 added to responses that 2.9.10 does not send, with the value 2.10
#: sends by default. A non-oracle implementation may include them (it advertises 2.10) but only
#: with these values; nats-server 2.9.10 must not send them at all (exact comparison).
NEWER_DEFAULTS: dict[str, Callable[[Any], bool]] = {
    "compression": lambda v: v == "none",  # StreamConfig, 2.10
    "consumer_limits": lambda v: v == {},  # StreamConfig, 2.10
    "ts": lambda v: v == "<time>",  # StreamInfo / ConsumerInfo, 2.10 (already scrubbed)
    "cluster": lambda v: isinstance(v, dict) and set(v) <= {"name", "leader"},  # 2.10 standalone
    "reserved_memory": lambda v: v == 0,  # account info, 2.10.8
    "reserved_storage": lambda v: v == 0,  # account info, 2.10.8
    "allow_msg_ttl": lambda v: v is False,  # StreamConfig, 2.11
}
#: Prefix of the metadata keys nats-server 2.11+ adds to every stream and consumer config it echoes
#: (``_nats.req.level``, ``_nats.ver``, ``_nats.level``).
VERSIONING_METADATA = "_nats."


def stream_config(name: str, subjects: Iterable[str] | None = None, **overrides: Any) -> dict:
    """The config nats-server 2.9.10 echoes for a stream created with only name/subjects/overrides.

    Keys are in the server's order (name, description, subjects, then `STREAM_DEFAULTS`)."""
    cfg: dict[str, Any] = {"name": name}
    if "description" in overrides:
        cfg["description"] = overrides.pop("description")
    cfg["subjects"] = list(subjects) if subjects is not None else [name]
    cfg.update(STREAM_DEFAULTS)
    cfg.update(overrides)
    return cfg


def api_error(kind: str, code: int, err_code: int, description: str, **extra: Any) -> dict:
    """A JetStream API error response: ``{"type": ..., "error": {code, err_code, description}}``."""
    return {
        "type": f"io.nats.jetstream.api.v1.{kind}",
        "error": {"code": code, "err_code": err_code, "description": description},
        **extra,
    }


def pub_error(stream: str, code: int, err_code: int, description: str) -> dict:
    """A PubAck carrying an error (note ``seq`` 0 and the stream name)."""
    return {
        "error": {"code": code, "err_code": err_code, "description": description},
        "stream": stream,
        "seq": 0,
    }


def scrub(obj: Any, *, oracle: bool = True) -> Any:
    """Copy of `obj` with timestamps and nuids normalised (see module docstring)."""
    if isinstance(obj, list):
        return [scrub(v, oracle=oracle) for v in obj]
    if not isinstance(obj, dict):
        return obj
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if key in TIME_KEYS and isinstance(value, str):
            if value != ZERO_TIME:
                assert TIME_RE.match(value), f"{key}={value!r} is not RFC 3339 UTC"
                value = "<time>"
        elif key == "id" and isinstance(value, str) and NUID_RE.match(value):
            value = "<nuid>"
        else:
            value = scrub(value, oracle=oracle)
        if not oracle and key in NEWER_DEFAULTS and NEWER_DEFAULTS[key](value):
            continue
        if not oracle and key == "metadata" and isinstance(value, dict):
            user = {k: v for k, v in value.items() if not k.startswith(VERSIONING_METADATA)}
            if not user and len(user) < len(value):
                continue  # only the 2.11+ versioning metadata
            value = user
        if not oracle and key == "api" and isinstance(value, dict) and "level" in value:
            value = {k: v for k, v in value.items() if k != "level"}  # 2.11 API level
        out[key] = value
    return out


def no_responders_hdr(impl: Any, subject: str) -> bytes:
    """The header block of the 503 no-responders status; nats-server 2.12+ adds the subject that
    nobody listened on."""
    if since(impl, (2, 12)):
        return f"NATS/1.0 503\r\nNats-Subject: {subject}\r\n\r\n".encode()
    return b"NATS/1.0 503\r\n\r\n"


def headers_block(headers: dict[str, str] | bytes | None) -> bytes:
    if headers is None or isinstance(headers, bytes):
        return headers or b""
    lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return f"NATS/1.0\r\n{lines}\r\n".encode()


def parse_ack(reply: str) -> dict[str, Any]:
    """The tokens of a v1 ack reply subject; AssertionError if it is not one."""
    m = ACK_RE.match(reply or "")
    assert m, f"not a v1 ack reply subject: {reply!r}"
    d: dict[str, Any] = m.groupdict()
    for k in ("delivered", "sseq", "cseq", "ts", "pending"):
        d[k] = int(d[k])
    return d


@dataclass
class Frame:
    """One MSG or HMSG received, split into its parts."""

    op: str
    subject: str
    sid: str
    reply: str | None
    line: bytes
    hdr: bytes
    payload: bytes

    @property
    def raw(self) -> bytes:
        return self.line + self.hdr + self.payload + b"\r\n"

    @property
    def status_line(self) -> str:
        """The first header line, e.g. ``NATS/1.0 404 No Messages`` ("" for a MSG)."""
        return self.hdr.split(b"\r\n", 1)[0].decode() if self.hdr else ""

    @property
    def status(self) -> str | None:
        parts = self.status_line.split(" ", 2)
        return parts[1] if len(parts) > 1 else None

    @property
    def headers(self) -> list[tuple[str, str]]:
        """The header fields in order, without the status line."""
        out = []
        for line in self.hdr.split(b"\r\n")[1:]:
            if line:
                k, _, v = line.decode().partition(":")
                out.append((k, v.strip()))
        return out

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name), None)

    def json(self) -> Any:
        return json.loads(self.payload)

    def ack(self) -> dict[str, Any]:
        assert self.reply, f"no reply subject on {self.line!r}"
        return parse_ack(self.reply)


def _parse_frame(op: bytes) -> Frame:
    nl = op.index(b"\r\n") + 2
    line, body = op[:nl], op[nl:-2]
    toks = line.split()
    kind = toks[0].decode().upper()
    if kind == "MSG":
        reply = toks[3].decode() if len(toks) == 5 else None
        hdr, payload = b"", body
    else:
        reply = toks[3].decode() if len(toks) == 6 else None
        hlen = int(toks[-2])
        hdr, payload = body[:hlen], body[hlen:]
    return Frame(kind, toks[1].decode(), toks[2].decode(), reply, line, hdr, payload)


class RawJS:
    """A raw-wire client for JetStream requests (CONNECT with headers, no_responders, and
    pedantic off, like nats-py)."""

    def __init__(self, srv: Any, *, oracle: bool = True) -> None:
        self.oracle = oracle
        self.c: Client = srv.client()
        self.c.handshake(headers=True, no_responders=True, pedantic=False)
        self.backlog: list[Frame] = []
        self._sids = itertools.count(1)
        self._reqs = itertools.count(1)
        self.prefix = f"_RJS.{secrets.token_hex(4)}"
        self.api_sid = self.subscribe(f"{self.prefix}.>")

    def close(self) -> None:
        self.c.close()

    # -- sending ---------------------------------------------------------------------------

    def subscribe(self, subject: str, queue: str | None = None) -> str:
        sid = str(next(self._sids))
        args = subject if queue is None else f"{subject} {queue}"
        self.c.send(f"SUB {args} {sid}\r\n".encode())
        return sid

    def unsubscribe(self, sid: str) -> None:
        self.c.send(f"UNSUB {sid}\r\n".encode())

    def inbox(self) -> str:
        return f"{self.prefix}.{next(self._reqs)}"

    def publish(
        self,
        subject: str,
        payload: bytes | str | dict | list = b"",
        reply: str | None = None,
        headers: dict[str, str] | bytes | None = None,
    ) -> None:
        data = encode(payload)
        args = subject if reply is None else f"{subject} {reply}"
        hdr = headers_block(headers)
        if hdr:
            total = len(hdr) + len(data)
            frame = f"HPUB {args} {len(hdr)} {total}\r\n".encode() + hdr + data + b"\r\n"
        else:
            frame = f"PUB {args} {len(data)}\r\n".encode() + data + b"\r\n"
        self.c.send(frame)

    # -- receiving -------------------------------------------------------------------------

    def _read(self, deadline: float) -> Frame | None:
        """The next MSG/HMSG (answering server PINGs); None at a PONG; AssertionError on
        timeout or on anything unexpected."""
        while True:
            op = self.c.read_op(max(0.0, deadline - time.monotonic()))
            if op == b"PING\r\n":
                self.c.send(b"PONG\r\n")
                continue
            if op == b"PONG\r\n":
                return None
            assert op.startswith((b"MSG ", b"HMSG ")), f"unexpected from server: {show(op)}"
            return _parse_frame(op)

    def flush(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """PING/PONG round trip; every frame that arrived before the PONG goes to the backlog."""
        deadline = time.monotonic() + timeout
        self.c.send(b"PING\r\n")
        while (f := self._read(deadline)) is not None:
            self.backlog.append(f)

    def next(
        self,
        sid: str | None = None,
        *,
        subject: str | None = None,
        where: Callable[[Frame], bool] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Frame:
        """The first frame (backlog first) matching sid/subject/where, waiting up to timeout."""

        def ok(f: Frame) -> bool:
            return (
                (sid is None or f.sid == sid)
                and (subject is None or f.subject == subject)
                and (where is None or where(f))
            )

        for i, f in enumerate(self.backlog):
            if ok(f):
                return self.backlog.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            try:
                f = self._read(deadline)
            except AssertionError as e:
                raise AssertionError(
                    f"no frame for sid={sid} subject={subject} within {timeout}s "
                    f"(backlog: {[b.line for b in self.backlog]}): {e}"
                ) from None
            if f is None:
                continue
            if ok(f):
                return f
            self.backlog.append(f)

    def take_all(self, sid: str) -> list[Frame]:
        """Remove and return every backlog frame for sid (call `flush` first)."""
        got = [f for f in self.backlog if f.sid == sid]
        self.backlog = [f for f in self.backlog if f.sid != sid]
        return got

    def assert_nothing(self, sid: str) -> None:
        """After a round trip, nothing has arrived for sid."""
        self.flush()
        got = self.take_all(sid)
        assert not got, f"unexpected frames for sid {sid}: {[f.raw for f in got]}"

    # -- requests ----------------------------------------------------------------------------

    def request(
        self,
        subject: str,
        payload: bytes | str | dict | list = b"",
        headers: dict[str, str] | bytes | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Frame:
        reply = self.inbox()
        self.publish(subject, payload, reply=reply, headers=headers)
        return self.next(self.api_sid, subject=reply, timeout=timeout)

    def api(self, subject: str, payload: bytes | str | dict | list = b"") -> Any:
        """A `$JS.API.` request (subject given without the prefix); the scrubbed JSON reply."""
        f = self.request(f"{API}.{subject}", payload)
        assert f.op == "MSG", f"API reply with headers: {f.raw!r}"
        return scrub(f.json(), oracle=self.oracle)

    def assert_error(
        self, resp: Any, kind: str, code: int, err_code: int, description: str, *, v210: str
    ) -> None:
        """`resp` is exactly this API error. For the oracle the 2.9.10 `description` is required;
        another implementation may instead send `v210`, the text nats-server 2.10 uses."""
        expected = api_error(kind, code, err_code, description)
        if not self.oracle and resp.get("error", {}).get("description") == v210:
            expected = api_error(kind, code, err_code, v210)
        assert resp == expected

    def add_stream(self, name: str, subjects: Iterable[str] | None = None, **cfg: Any) -> dict:
        body = {"name": name, **({"subjects": list(subjects)} if subjects is not None else {})}
        body.update(cfg)
        resp = self.api(f"STREAM.CREATE.{name}", body)
        assert "error" not in resp, resp
        return resp

    def add_consumer(self, stream: str, name: str | None = None, **cfg: Any) -> dict:
        """Create with ``CONSUMER.CREATE.<stream>.<name>`` (or the legacy form without name)."""
        subject = f"CONSUMER.CREATE.{stream}" + (f".{name}" if name else "")
        resp = self.api(subject, {"stream_name": stream, "config": cfg})
        assert "error" not in resp, resp
        return resp

    def consumer_info(self, stream: str, name: str) -> dict:
        return self.api(f"CONSUMER.INFO.{stream}.{name}")

    def stream_state(self, stream: str) -> dict:
        return self.api(f"STREAM.INFO.{stream}")["state"]

    def pub(self, subject: str, payload: bytes | str = b"", **kw: Any) -> dict:
        """Publish with a reply and return the PubAck JSON."""
        return self.request(subject, payload, **kw).json()

    def pull(self, stream: str, consumer: str, body: bytes | str | dict = b"") -> str:
        """Send a MSG.NEXT request from a fresh inbox; returns the sid its replies arrive on."""
        inbox = self.inbox().replace("_RJS.", "_PULL.", 1)
        sid = self.subscribe(inbox)
        self.publish(f"{API}.CONSUMER.MSG.NEXT.{stream}.{consumer}", body, reply=inbox)
        return sid

    def ack(self, frame: Frame, payload: bytes | str = b"+ACK") -> Frame:
        """Ack `frame` as a request; returns the server's reply (empty once the ack is done)."""
        assert frame.reply
        return self.request(frame.reply, payload)


def rfc3339_ns(value: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 UTC time with up to 9 fractional digits."""
    assert TIME_RE.match(value), value
    whole, _, frac = value[:-1].partition(".")
    secs = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
    return secs * 1_000_000_000 + int((frac or "0").ljust(9, "0"))


def encode(payload: bytes | str | dict | list) -> bytes:
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        return payload.encode()
    return json.dumps(payload, separators=(",", ":")).encode()


def wait_until(cond: Callable[[], Any], timeout: float, what: str, interval: float = 0.02) -> Any:
    """Poll `cond` until it returns a truthy value (used only where no event says when the
    server is done: server-side timers, e.g. consumer deletion after inactive_threshold, or work
    the server queues internally, e.g. a pull request reaching its consumer, a store without a
    PubAck)."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(interval)
