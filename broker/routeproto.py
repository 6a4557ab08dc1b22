"""The route protocol between our servers (port 6222), sans-IO: bytes in, events out.

Text control lines like the client protocol, in the shape of nats-server's route protocol:

    INFO {json}                    who I am: server id and name, cluster, client URLs, known routes
    CONNECT {json}                 the soliciting side's credentials and identity
    PING / PONG                    keepalive
    RS+ <account> <subject> [<queue> <weight>]   interest added (one line per distinct
                                                 subject/queue of an account)
    RS- <account> <subject> [<queue>]            interest removed
    RMSG <account> <subject> [reply] <size>      a message for the receiver's plain subscribers
    HRMSG <account> <subject> [reply] <hdr> <size>
    RMSGQ <account> <subject> <queue> [reply] <size>     for one member of that queue group
    HRMSGQ <account> <subject> <queue> [reply] <hdr> <size>
    DMSG <account> <target> <subject> [reply] <size>     for the receiver's subscribers of
    HDMSG / DMSGQ / HDMSGQ                      `target`, shown under `subject` (JetStream
                                                deliveries); the queue forms name the group
                                                after the subject
    RAFT <group> <size>            a binary Raft frame for the receiving server's member of `group`
    -ERR '<text>'

Every interest and message line names its account first, as nats-server's route protocol does:
accounts are isolated subject spaces, on every server alike. A route never forwards what it
received from another route (the cluster is a full mesh).
Wire compatibility with Go servers is not a goal (compat.md §5).
"""

from __future__ import annotations

INFO = 1
CONNECT = 2
PING = 3
PONG = 4
SUB = 5  # (SUB, account, subject, queue | None, weight)
UNSUB = 6  # (UNSUB, account, subject, queue | None)
MSG = 7  # (MSG, account, subject, reply, queue | None, hdr, payload)
RAFT = 8  # (RAFT, group, payload)
ERR = 9  # (ERR, text)
FATAL = 10  # (FATAL, text)
DELIVER = 11  # (DELIVER, account, target, subject, reply, queue | None, hdr, payload)

MAX_CONTROL_LINE = 64 * 1024
MAX_PAYLOAD = 64 * 1024 * 1024  # Raft snapshots travel in chunks below this

_PING = (PING,)
_PONG = (PONG,)


class RouteParser:
    """Incremental parser of what a peer server sends."""

    def __init__(self, max_payload: int = MAX_PAYLOAD) -> None:
        self.max_payload = max_payload
        self._buf = b""
        self._dead = False

    def feed(self, data: bytes) -> list[tuple]:
        if self._dead:
            return []
        buf = self._buf + data if self._buf else data
        events: list[tuple] = []
        pos = 0
        end = len(buf)
        while pos < end:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                if end - pos > MAX_CONTROL_LINE:
                    return self._fatal(events, "maximum control line exceeded")
                break
            line = buf[pos:eol]
            op, _, rest = line.partition(b" ")
            if op in _PAYLOAD_OPS:
                parsed = _payload_op(op, rest.split())
                if parsed is None:
                    return self._fatal(events, f"malformed {op.decode('utf-8', 'replace')}")
                size, event_head = parsed
                if size > self.max_payload:
                    return self._fatal(events, "maximum payload exceeded")
                start = eol + 2
                stop = start + size
                if stop + 2 > end:
                    break  # wait for the rest of the payload
                if buf[stop:stop + 2] != b"\r\n":
                    return self._fatal(events, "payload not followed by CRLF")
                events.append((*event_head, buf[start:stop]))
                pos = stop + 2
                continue
            event = _control_op(op, rest)
            if event is None:
                return self._fatal(events, f"unknown operation {op[:16]!r}")
            events.append(event)
            pos = eol + 2
        self._buf = buf[pos:]
        return events

    def _fatal(self, events: list[tuple], text: str) -> list[tuple]:
        self._dead = True
        self._buf = b""
        events.append((FATAL, text))
        return events


_PAYLOAD_OPS = frozenset({b"RMSG", b"HRMSG", b"RMSGQ", b"HRMSGQ", b"DMSG", b"HDMSG", b"DMSGQ",
                          b"HDMSGQ", b"RAFT"})


def _payload_op(op: bytes, args: list[bytes]) -> tuple[int, tuple] | None:
    """(payload size, event without payload) for a payload-carrying line, None if malformed."""
    try:
        if op == b"RAFT":
            if len(args) != 2:
                return None
            return _size(args[1]), (RAFT, args[0])
        queued = op.endswith(b"Q")
        with_headers = op.startswith(b"H")
        if not args:
            return None
        account = args.pop(0)
        target: tuple[bytes, ...] = ()
        if op[with_headers] == ord("D"):
            if not args:
                return None
            target = (args.pop(0),)
        fixed = 1 + (1 if queued else 0) + (2 if with_headers else 1)
        if len(args) not in (fixed, fixed + 1):
            return None
        subject = args[0]
        queue = args[1] if queued else None
        reply = args[1 + queued] if len(args) == fixed + 1 else b""
        size = _size(args[-1])
        hdr = _size(args[-2]) if with_headers else -1
        if hdr > size:
            return None
        if target:
            return size, (DELIVER, account, target[0], subject, reply, queue, hdr)
        return size, (MSG, account, subject, reply, queue, hdr)
    except ValueError:
        return None


def _size(token: bytes) -> int:
    if not token.isdigit():
        raise ValueError(token)
    return int(token)


def _control_op(op: bytes, rest: bytes) -> tuple | None:
    if op == b"PING":
        return _PING
    if op == b"PONG":
        return _PONG
    if op == b"RS+":
        args = rest.split()
        if len(args) == 2:
            return (SUB, args[0], args[1], None, 1)
        if len(args) == 4 and args[3].isdigit():
            return (SUB, args[0], args[1], args[2], int(args[3]))
        return None
    if op == b"RS-":
        args = rest.split()
        if len(args) in (2, 3):
            return (UNSUB, args[0], args[1], args[2] if len(args) == 3 else None)
        return None
    if op == b"INFO":
        return (INFO, rest)
    if op == b"CONNECT":
        return (CONNECT, rest)
    if op == b"-ERR":
        return (ERR, rest.strip(b"'").decode("utf-8", "replace"))
    return None


# Encoders.

def sub_line(account: bytes, subject: bytes, queue: bytes | None = None, weight: int = 1,
             ) -> bytes:
    if queue is None:
        return b"RS+ %s %s\r\n" % (account, subject)
    return b"RS+ %s %s %s %d\r\n" % (account, subject, queue, weight)


def unsub_line(account: bytes, subject: bytes, queue: bytes | None = None) -> bytes:
    if queue is None:
        return b"RS- %s %s\r\n" % (account, subject)
    return b"RS- %s %s %s\r\n" % (account, subject, queue)


def queue_msg(account: bytes, subject: bytes, queue: bytes, reply: bytes, hdr: int,
              payload: bytes) -> bytes:
    """A message for one member of `queue` on the receiving server."""
    return _frame(b"RMSGQ", b"%s %s %s" % (account, subject, queue), reply, hdr, payload)


def deliver_msg(account: bytes, target: bytes, subject: bytes, queue: bytes | None,
                reply: bytes, hdr: int, payload: bytes) -> bytes:
    """A message for the receiver's subscribers of `target` (one member of `queue` when given),
    shown to them under `subject`."""
    if queue is None:
        return _frame(b"DMSG", b"%s %s %s" % (account, target, subject), reply, hdr, payload)
    return _frame(b"DMSGQ", b"%s %s %s %s" % (account, target, subject, queue), reply, hdr,
                  payload)


def _frame(op: bytes, head: bytes, reply: bytes, hdr: int, payload: bytes) -> bytes:
    if hdr >= 0:
        op = b"H" + op
        sizes = b"%d %d" % (hdr, len(payload))
    else:
        sizes = b"%d" % len(payload)
    if reply:
        return b"%s %s %s %s\r\n%s\r\n" % (op, head, reply, sizes, payload)
    return b"%s %s %s\r\n%s\r\n" % (op, head, sizes, payload)


def raft_frame(group: bytes, payload: bytes) -> bytes:
    return b"RAFT %s %d\r\n%s\r\n" % (group, len(payload), payload)
