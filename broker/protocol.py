"""The NATS client protocol, sans-IO: bytes in, events out; and the bytes the server sends.

`ClientParser.feed(data)` returns a list of events. Events are plain tuples whose first item is one
of the op codes below (tuples, because the parser produces one per message on the hot path):

    (PUB, subject, reply, hdr, payload)   hdr = -1 for PUB, else the header length within payload
    (SUB, subject, queue | None, sid)
    (UNSUB, sid, max_msgs | None)
    (CONNECT, json_bytes)
    (PING,) (PONG,) (OK,)
    (INFO, json_bytes)    a client may send INFO; the server ignores it
    (ERR, text)           a client may send -ERR; the server logs it
    (FATAL, err_text | None, reason)   the connection must close; err_text, if any, goes out
                                        as -ERR first. The parser produces nothing afterwards.

The grammar follows nats-server's parser: operation names are case-insensitive; arguments are
separated by spaces or tabs; a control line ends at `\\n` (a `\\r` before it is dropped); a payload
is exactly `size` bytes followed by `\\r\\n`.
"""

from __future__ import annotations

PUB = 1
SUB = 2
UNSUB = 3
CONNECT = 4
PING = 5
PONG = 6
OK = 7
INFO = 8
ERR = 9
FATAL = 10

ERR_UNKNOWN_OP = "Unknown Protocol Operation"
ERR_MAX_PAYLOAD = "Maximum Payload Violation"
ERR_MAX_CONTROL_LINE = "maximum control line exceeded"

_PING_EVENT = (PING,)
_PONG_EVENT = (PONG,)

# Operations whose name must be followed by a space or tab, like nats-server's state machine.
_OPS_WITH_ARGS = {b"PUB": PUB, b"HPUB": PUB, b"SUB": SUB, b"UNSUB": UNSUB}
# Operations whose name may be followed by anything up to the end of the line (for CONNECT, INFO
# and -ERR that is the argument text; for the others it is ignored).
_OPS_BARE = {b"PING": PING, b"PONG": PONG, b"+OK": OK, b"CONNECT": CONNECT, b"INFO": INFO,
             b"-ERR": ERR}
_ALL_OPS = tuple(_OPS_WITH_ARGS) + tuple(_OPS_BARE)
_LONGEST_OP = max(len(op) for op in _ALL_OPS)
_SEPARATORS = b" \t"


class ClientParser:
    """Incremental parser of what a client sends. Limits are enforced here, like nats-server."""

    def __init__(self, max_control_line: int = 4096, max_payload: int = 1024 * 1024,
                 headers: bool = True) -> None:
        self.max_control_line = max_control_line
        self.max_payload = max_payload
        self.headers = headers  # False refuses HPUB (the client did not negotiate headers)
        self._pending = b""
        self._chunks: list[bytes] = []  # parts of a large split message, joined once complete
        self._need = 0  # bytes still missing from a split message before parsing resumes
        self._dead = False
        # Set after a CONNECT: parsing stops there so the connection can apply what was negotiated
        # (headers, auth) before the next operation is parsed. `feed(b"")` resumes.
        self.paused = False

    def feed(self, data: bytes) -> list[tuple]:
        """Consume `data`; return the events it completes (possibly none)."""
        if self._dead:
            return []
        self.paused = False
        if self._need:
            self._chunks.append(data)
            self._need -= len(data)
            if self._need > 0:
                return []
            self._need = 0
            data = b"".join(self._chunks)
            self._chunks.clear()
        elif self._pending:
            data = self._pending + data
        self._pending = b""
        events: list[tuple] = []
        pos = self._parse(data, events)
        if events and events[-1][0] == FATAL:
            self._dead = True
            self._chunks.clear()
            self._need = 0
        elif pos < len(data):
            self._keep(data, pos, events)
        return events

    def _keep(self, data: bytes, pos: int, events: list[tuple]) -> None:
        """Hold an incomplete tail; refuse it early where nats-server would."""
        rest = data[pos:]
        fatal = None if self.paused else self._check_partial(rest)
        if fatal is not None:
            events.append(fatal)
            self._dead = True
            return
        self._pending = rest

    def _check_partial(self, rest: bytes) -> tuple | None:
        """`rest` holds no newline yet: refuse what can never become a valid operation."""
        if not _could_start_op(rest[:_LONGEST_OP + 1].upper()):
            return (FATAL, ERR_UNKNOWN_OP, "parse")
        op, args_text = _split_op(rest)
        if op not in (None, b"PING", b"PONG") and len(args_text) > self.max_control_line:
            return (FATAL, ERR_MAX_CONTROL_LINE, "max_control_line")
        return None

    def _parse(self, data: bytes, events: list[tuple]) -> int:
        """Parse whole operations from `data`; return where the unparsed tail starts.

        Fast path: split the buffer at every CRLF once and take well-formed `PUB` + payload
        pairs, `PING` and `PONG` straight from the pieces. Anything else (HPUB, SUB, CONNECT,
        a payload holding CRLF, odd spacing, errors) goes through `_parse_one` at its byte
        offset, after which the pieces are walked forward to the same offset.
        """
        parts = data.split(b"\r\n")
        last = len(parts) - 1  # parts[last] follows the final CRLF: incomplete or empty
        append = events.append
        max_payload = self.max_payload
        max_line = self.max_control_line + 4
        i = pos = 0
        while i < last:
            line = parts[i]
            args = line.split()
            if args and args[0] == b"PUB" and line[0] == 80:  # no leading blanks
                nargs = len(args)
                if (nargs == 3 or nargs == 4) and i + 1 < last:
                    payload = parts[i + 1]
                    size = args[-1]
                    if size.isdigit() and int(size) == len(payload) <= max_payload and \
                            len(line) <= max_line:
                        append((PUB, args[1], args[2] if nargs == 4 else b"", -1, payload))
                        pos += len(line) + len(payload) + 4
                        i += 2
                        continue
            elif line == b"PING":
                append(_PING_EVENT)
                pos += 6
                i += 1
                continue
            elif line == b"PONG":
                append(_PONG_EVENT)
                pos += 6
                i += 1
                continue
            new = self._parse_one(data, pos, events)
            if new < 0:
                return len(data)
            if new == pos:
                return pos
            while pos < new and i < last:
                pos += len(parts[i]) + 2
                i += 1
            if pos != new or self.paused:
                # A line ended by a bare \n put us between pieces; go on without them.
                return new if self.paused else self._parse_each(data, new, events)
        return self._parse_each(data, pos, events)

    def _parse_each(self, data: bytes, pos: int, events: list[tuple]) -> int:
        """Parse operation by operation from `pos` (no fast path)."""
        end = len(data)
        while pos < end:
            new = self._parse_one(data, pos, events)
            if new < 0:
                return end
            if new == pos or self.paused:
                return new
            pos = new
        return pos

    def _parse_one(self, data: bytes, pos: int, events: list[tuple]) -> int:
        """One operation at `pos`: the next position, `pos` if incomplete, -1 if parsing stops."""
        eol = data.find(b"\n", pos)
        if eol < 0:
            return pos
        line = data[pos:eol]
        if line[-1:] == b"\r":
            line = line[:-1]
        return self._parse_general(data, pos, eol, line, events)

    def _wait_for(self, data: bytes, pos: int, needed_end: int) -> None:
        """Keep a message whose payload has not fully arrived; avoid re-joining on every read."""
        self._chunks = [data[pos:]]
        self._need = needed_end - len(data)

    def _parse_general(self, data: bytes, pos: int, eol: int, line: bytes,
                       events: list[tuple]) -> int:
        """One operation that missed the fast path. Returns the next position, -1 when done."""
        op, args_text = _split_op(line)
        if op is None:
            events.append((FATAL, ERR_UNKNOWN_OP, "parse"))
            return -1
        kind = _OPS_WITH_ARGS.get(op) or _OPS_BARE[op]
        if len(args_text) > self.max_control_line and kind not in (PING, PONG):
            events.append((FATAL, ERR_MAX_CONTROL_LINE, "max_control_line"))
            return -1
        if kind == PUB:
            return self._parse_pub(data, pos, eol, op == b"HPUB", args_text, events)
        if kind == SUB:
            args = args_text.split()
            if len(args) == 2:
                events.append((SUB, args[0], None, args[1]))
            elif len(args) == 3:
                events.append((SUB, args[0], args[1], args[2]))
            else:
                events.append(_bad_args())
                return -1
        elif kind == UNSUB:
            event = _parse_unsub(args_text.split())
            events.append(event)
            if event[0] == FATAL:
                return -1
        elif kind == CONNECT:
            events.append((CONNECT, args_text))
            self.paused = True
        elif kind == INFO:
            events.append((INFO, args_text))
        elif kind == ERR:
            events.append((ERR, args_text.strip().strip(b"'").decode("utf-8", "replace")))
            events.append((FATAL, None, "client error"))  # nats-server closes on a client -ERR
            return -1
        else:
            events.append((kind,))
        return eol + 1

    def _parse_pub(self, data: bytes, pos: int, eol: int, has_headers: bool, args_text: bytes,
                   events: list[tuple]) -> int:
        args = args_text.split()
        hdr = -1
        try:
            if has_headers:
                if not self.headers:
                    events.append((FATAL, None, "headers not supported"))
                    return -1
                if len(args) not in (3, 4):
                    raise ValueError
                hdr, size = _size(args[-2]), _size(args[-1])
                if hdr > size:
                    raise ValueError
            else:
                if len(args) not in (2, 3):
                    raise ValueError
                size = _size(args[-1])
        except ValueError:
            events.append(_bad_args())
            return -1
        if size > self.max_payload:
            events.append((FATAL, ERR_MAX_PAYLOAD, "max_payload"))
            return -1
        n_fixed = 3 if has_headers else 2
        reply = args[1] if len(args) > n_fixed else b""
        start = eol + 1
        stop = start + size
        # The payload must be followed by \r\n; refuse a wrong byte as soon as it is there.
        end = len(data)
        if (end > stop and data[stop] != 13) or (end > stop + 1 and data[stop + 1] != 10):
            events.append((FATAL, ERR_UNKNOWN_OP, "parse"))
            return -1
        if stop + 2 > end:
            self._wait_for(data, pos, stop + 1 if end <= stop else stop + 2)
            return -1
        if hdr == 0:
            hdr = -1  # nats-server delivers a zero-length header block as a plain MSG
        events.append((PUB, args[0], reply, hdr, data[start:stop]))
        return stop + 2


def _size(token: bytes) -> int:
    """A size argument: at most 9 ASCII digits, like nats-server's parseSize."""
    if not token.isdigit() or len(token) > 9:
        raise ValueError(token)
    return int(token)


def _bad_args() -> tuple:
    # nats-server closes on malformed arguments without an -ERR line (it only logs the error).
    return (FATAL, None, "protocol violation")


def _parse_unsub(args: list[bytes]) -> tuple:
    if len(args) == 1:
        return (UNSUB, args[0], None)
    if len(args) == 2:
        # Like nats-server, a max that does not parse means "unsubscribe now", not an error.
        max_msgs = int(args[1]) if args[1].isdigit() and len(args[1]) <= 9 else 0
        return (UNSUB, args[0], max_msgs)
    return _bad_args()


def _split_op(line: bytes) -> tuple[bytes | None, bytes]:
    """Split a control line into (canonical op name, argument text), or (None, b"") if unknown."""
    head = line[:_LONGEST_OP + 1].upper()
    for name in _OPS_BARE:
        if head.startswith(name):
            return name, line[len(name):].lstrip(_SEPARATORS)
    for name in _OPS_WITH_ARGS:
        if head.startswith(name) and len(line) > len(name) and line[len(name)] in _SEPARATORS:
            return name, line[len(name) + 1:].lstrip(_SEPARATORS)
    return None, b""


def _could_start_op(head: bytes) -> bool:
    """Whether these first bytes (upper-cased, no newline yet) can still become a known op."""
    if not head:
        return True
    for name in _ALL_OPS:
        if name.startswith(head[:len(name)]) and (len(head) <= len(name) or name in _OPS_BARE
                                                   or head[len(name)] in _SEPARATORS):
            return True
    return False


# Server -> client encoding.

PONG_BYTES = b"PONG\r\n"
PING_BYTES = b"PING\r\n"
OK_BYTES = b"+OK\r\n"


def err_line(text: str) -> bytes:
    return b"-ERR '" + text.encode() + b"'\r\n"


def info_line(info_json: bytes) -> bytes:
    # nats-server puts a space before the CRLF; some hand-written clients match the line exactly.
    return b"INFO " + info_json + b" \r\n"


def msg_frame(subject: bytes, sid: bytes, reply: bytes, hdr: int, payload: bytes) -> bytes:
    """One MSG or HMSG frame (the slow, general form; the server's hot path inlines this)."""
    if hdr < 0:
        if reply:
            return b"MSG %s %s %s %d\r\n%s\r\n" % (subject, sid, reply, len(payload), payload)
        return b"MSG %s %s %d\r\n%s\r\n" % (subject, sid, len(payload), payload)
    if reply:
        return b"HMSG %s %s %s %d %d\r\n%s\r\n" % (subject, sid, reply, hdr, len(payload), payload)
    return b"HMSG %s %s %d %d\r\n%s\r\n" % (subject, sid, hdr, len(payload), payload)
