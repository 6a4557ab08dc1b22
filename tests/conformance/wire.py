"""A tiny raw-socket NATS client for byte-exact conformance tests.

Nothing here interprets the protocol beyond framing: tests compare the exact bytes a server sends.
Every read has a deadline; a test never sleeps to synchronise. The NATS way to know that a server
has processed everything sent so far is a PING -> PONG round trip (`Client.ping_pong`).

The client keeps an internal receive buffer: `expect()` consumes exactly the bytes it checks and
leaves anything that arrived after them for the next read.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time

CRLF = b"\r\n"
PING = b"PING\r\n"
PONG = b"PONG\r\n"
OK = b"+OK\r\n"

#: Default deadline for one expectation. Short on purpose: a conforming server answers in
#: milliseconds on loopback.
DEFAULT_TIMEOUT = 2.0


def err(text: str) -> bytes:
    """The exact bytes of a server error: ``-ERR '<text>'\\r\\n``."""
    return b"-ERR '" + text.encode() + b"'\r\n"


def connect_line(**opts: object) -> bytes:
    """``CONNECT <json>\\r\\n`` with compact JSON (key order as given)."""
    return b"CONNECT " + json.dumps(opts, separators=(",", ":")).encode() + CRLF


def pub(subject: str, payload: bytes = b"", reply: str | None = None) -> bytes:
    """A well-formed ``PUB`` frame."""
    args = subject if reply is None else f"{subject} {reply}"
    return f"PUB {args} {len(payload)}\r\n".encode() + payload + CRLF


def hpub(subject: str, headers: bytes, payload: bytes = b"", reply: str | None = None) -> bytes:
    """A well-formed ``HPUB`` frame; `headers` is the raw header block (``NATS/1.0\\r\\n...``)."""
    args = subject if reply is None else f"{subject} {reply}"
    total = len(headers) + len(payload)
    return f"HPUB {args} {len(headers)} {total}\r\n".encode() + headers + payload + CRLF


def msg(subject: str, sid: str | int, payload: bytes = b"", reply: str | None = None) -> bytes:
    """The exact ``MSG`` frame a server delivers."""
    args = f"{subject} {sid}" if reply is None else f"{subject} {sid} {reply}"
    return f"MSG {args} {len(payload)}\r\n".encode() + payload + CRLF


def hmsg(
    subject: str, sid: str | int, headers: bytes, payload: bytes = b"", reply: str | None = None
) -> bytes:
    """The exact ``HMSG`` frame a server delivers."""
    args = f"{subject} {sid}" if reply is None else f"{subject} {sid} {reply}"
    total = len(headers) + len(payload)
    return f"HMSG {args} {len(headers)} {total}\r\n".encode() + headers + payload + CRLF


def show(data: bytes, limit: int = 300) -> str:
    """repr() of `data`, truncated in the middle so assertion messages stay readable."""
    if len(data) <= limit:
        return repr(data)
    half = limit // 2
    return f"{data[:half]!r} ...<{len(data) - limit} bytes>... {data[-half:]!r}"


class Closed(Exception):
    """Raised internally when the peer closed (EOF or reset) during a read."""


class Client:
    """One raw TCP connection to a NATS server."""

    def __init__(self, host: str, port: int, *, read_info: bool = True) -> None:
        self.host, self.port = host, port
        self.sock = socket.create_connection((host, port), timeout=DEFAULT_TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        #: True once EOF or a reset has been seen.
        self.closed_by_peer = False
        self.info_line: bytes = b""
        self.info: dict = {}
        if read_info:
            self.read_info()

    # -- low level ---------------------------------------------------------------------------

    def _fill(self, deadline: float) -> bool:
        """Receive more bytes into the buffer. False on timeout; raises Closed on EOF/reset."""
        if self.closed_by_peer:
            raise Closed
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            return False
        except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
            self.closed_by_peer = True
            raise Closed from None
        if not chunk:
            self.closed_by_peer = True
            raise Closed
        self.buf += chunk
        return True

    def send(self, data: bytes) -> None:
        self.sock.settimeout(DEFAULT_TIMEOUT)  # reads may have left a tiny timeout behind
        self.sock.sendall(data)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading -----------------------------------------------------------------------------

    def _take(self, n: int) -> bytes:
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_line(self, timeout: float = DEFAULT_TIMEOUT) -> bytes:
        """One line including its trailing ``\\r\\n`` (or ``\\n``)."""
        deadline = time.monotonic() + timeout
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                return self._take(i + 1)
            try:
                if not self._fill(deadline):
                    raise AssertionError(
                        f"no complete line within {timeout}s; got {show(self.buf)}"
                    )
            except Closed:
                raise AssertionError(
                    f"connection closed before a complete line; got {show(self.buf)}"
                ) from None

    def read_exactly(self, n: int, timeout: float = DEFAULT_TIMEOUT) -> bytes:
        deadline = time.monotonic() + timeout
        while len(self.buf) < n:
            try:
                if not self._fill(deadline):
                    raise AssertionError(
                        f"wanted {n} bytes within {timeout}s; got {show(self.buf)}"
                    )
            except Closed:
                raise AssertionError(
                    f"connection closed after {show(self.buf)}, wanted {n} bytes"
                ) from None
        return self._take(n)

    def read_info(self, timeout: float = DEFAULT_TIMEOUT) -> dict:
        """Read the INFO line the server sends on accept; return its JSON."""
        line = self.read_line(timeout)
        assert line.startswith(b"INFO "), f"first line is not INFO: {show(line)}"
        assert line.endswith(CRLF), f"INFO line not CRLF-terminated: {show(line)}"
        self.info_line = line
        self.info = json.loads(line[5:].strip())
        return self.info

    def expect(self, expected: bytes, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Assert that the next bytes received are exactly `expected` (extra bytes stay queued)."""
        deadline = time.monotonic() + timeout
        while len(self.buf) < len(expected):
            # Fail fast on a divergent prefix instead of waiting for the deadline.
            assert expected.startswith(self.buf), f"expected {show(expected)}, got {show(self.buf)}"
            try:
                if not self._fill(deadline):
                    raise AssertionError(
                        f"expected {show(expected)} within {timeout}s, got only {show(self.buf)}"
                    )
            except Closed:
                raise AssertionError(
                    f"expected {show(expected)}, connection closed after {show(self.buf)}"
                ) from None
        got = self._take(len(expected))
        if got != expected:
            at = next(i for i, (a, b) in enumerate(zip(got, expected, strict=True)) if a != b)
            raise AssertionError(
                f"expected {show(expected)}, got {show(got)} (then {show(self.buf)}); "
                f"first difference at byte {at}: got {show(got[at : at + 40])}"
            )

    def read_op(self, timeout: float = DEFAULT_TIMEOUT) -> bytes:
        """One complete server op as raw bytes; MSG/HMSG include their payload and CRLF."""
        deadline = time.monotonic() + timeout
        line = self.read_line(timeout)
        head = line.split(None, 1)[0].upper() if line.strip() else b""
        if head in (b"MSG", b"HMSG"):
            size = int(line.split()[-1])
            rest = self.read_exactly(size + 2, max(0.0, deadline - time.monotonic()))
            return line + rest
        return line

    def read_ops(self, n: int, timeout: float = DEFAULT_TIMEOUT) -> list[bytes]:
        deadline = time.monotonic() + timeout
        return [self.read_op(max(0.0, deadline - time.monotonic())) for _ in range(n)]

    def read_until_closed(self, timeout: float = DEFAULT_TIMEOUT) -> bytes:
        """Everything received until the peer closes; AssertionError if it stays open."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if not self._fill(deadline):
                    raise AssertionError(
                        f"connection still open after {timeout}s; received {show(self.buf)}"
                    )
            except Closed:
                return self._take(len(self.buf))

    # -- assertions on connection state --------------------------------------------------------

    def assert_closed(self, expected: bytes = b"", timeout: float = DEFAULT_TIMEOUT) -> None:
        """Assert the server sends exactly `expected` and then closes the connection."""
        got = self.read_until_closed(timeout)
        assert got == expected, f"before close expected {show(expected)}, got {show(got)}"

    def ping_pong(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """PING, and assert the very next bytes are PONG: the server processed all prior input
        and sent nothing else in between."""
        self.send(PING)
        self.expect(PONG, timeout)

    def assert_open(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """The connection is kept: a PING still gets exactly a PONG."""
        self.ping_pong(timeout)

    def expect_silence(self, duration: float) -> None:
        """Assert that nothing arrives and the connection stays open for `duration` seconds.

        Only for timer behaviour (e.g. a timeout that must NOT fire); it is not a synchronisation.
        """
        assert self.buf == b"", f"unexpected bytes pending: {show(self.buf)}"
        deadline = time.monotonic() + duration
        try:
            while self._fill(deadline):
                raise AssertionError(f"expected silence, received {show(self.buf)}")
        except Closed:
            raise AssertionError(
                f"expected silence, connection closed after {show(self.buf)}"
            ) from None

    def assert_quiet(self) -> None:
        """Nothing unread is pending and the connection is kept (PING -> exactly PONG)."""
        assert self.buf == b"", f"unexpected bytes pending: {show(self.buf)}"
        self.ping_pong()

    # -- conveniences ----------------------------------------------------------------------------

    def handshake(self, **opts: object) -> None:
        """CONNECT with `opts` (verbose defaults to False here) and sync with PING/PONG."""
        opts.setdefault("verbose", False)
        self.send(connect_line(**opts) + PING)
        if opts["verbose"]:
            self.expect(OK)
        self.expect(PONG)

    def sub(self, subject: str, sid: str | int, queue: str | None = None) -> None:
        """SUB and sync (assumes a non-verbose connection)."""
        args = subject if queue is None else f"{subject} {queue}"
        self.send(f"SUB {args} {sid}\r\n".encode())
        self.ping_pong()
