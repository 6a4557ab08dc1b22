"""The route protocol parser and encoders (sans-IO)."""

import pytest

from broker import routeproto as rp


def feed_all(data: bytes, step: int = 0) -> list[tuple]:
    parser = rp.RouteParser()
    if not step:
        return parser.feed(data)
    events: list[tuple] = []
    for i in range(0, len(data), step):
        events += parser.feed(data[i:i + step])
    return events


def test_control_lines():
    data = (b'INFO {"server_id":"A"}\r\nCONNECT {"user":"u"}\r\nPING\r\nPONG\r\n'
            b"RS+ $G foo.*\r\nRS+ A jobs workers 3\r\nRS- $G foo.*\r\nRS- A jobs workers\r\n"
            b"-ERR 'boom'\r\n")
    assert feed_all(data) == [
        (rp.INFO, b'{"server_id":"A"}'), (rp.CONNECT, b'{"user":"u"}'), (rp.PING,), (rp.PONG,),
        (rp.SUB, b"$G", b"foo.*", None, 1), (rp.SUB, b"A", b"jobs", b"workers", 3),
        (rp.UNSUB, b"$G", b"foo.*", None), (rp.UNSUB, b"A", b"jobs", b"workers"),
        (rp.ERR, "boom"),
    ]


@pytest.mark.parametrize("step", [0, 1, 3, 7])
def test_messages_round_trip_through_the_encoders_in_any_split(step):
    hdr = b"NATS/1.0\r\nA: b\r\n\r\n"
    frames = [
        rp.queue_msg(b"$G", b"jobs", b"workers", b"", -1, b"one"),
        rp.queue_msg(b"A", b"jobs", b"workers", b"_INBOX.1", len(hdr), hdr + b"two"),
        rp.deliver_msg(b"$G", b"deliver.x", b"orders.1", None, b"$JS.ACK.a", -1, b"three"),
        rp.deliver_msg(b"B", b"deliver.x", b"orders.1", b"q", b"", len(hdr), hdr + b"four"),
        b"RMSG $G foo.bar 5\r\nhello\r\n",
        b"RMSG $G foo.bar  5\r\nhello\r\n",  # a server-generated message: no reply, 2 spaces
        b"HRMSG A foo.bar reply %d %d\r\n%s\r\n" % (len(hdr), len(hdr) + 2, hdr + b"hi"),
        rp.raft_frame(b"S-R3F-abc", b"\x00\r\n\x01binary"),
    ]
    assert feed_all(b"".join(frames), step) == [
        (rp.MSG, b"$G", b"jobs", b"", b"workers", -1, b"one"),
        (rp.MSG, b"A", b"jobs", b"_INBOX.1", b"workers", len(hdr), hdr + b"two"),
        (rp.DELIVER, b"$G", b"deliver.x", b"orders.1", b"$JS.ACK.a", None, -1, b"three"),
        (rp.DELIVER, b"B", b"deliver.x", b"orders.1", b"", b"q", len(hdr), hdr + b"four"),
        (rp.MSG, b"$G", b"foo.bar", b"", None, -1, b"hello"),
        (rp.MSG, b"$G", b"foo.bar", b"", None, -1, b"hello"),
        (rp.MSG, b"A", b"foo.bar", b"reply", None, len(hdr), hdr + b"hi"),
        (rp.RAFT, b"S-R3F-abc", b"\x00\r\n\x01binary"),
    ]


def test_interest_encoders():
    assert rp.sub_line(b"$G", b"foo") == b"RS+ $G foo\r\n"
    assert rp.sub_line(b"A", b"foo", b"q", 2) == b"RS+ A foo q 2\r\n"
    assert rp.unsub_line(b"A", b"foo", b"q") == b"RS- A foo q\r\n"
    assert rp.unsub_line(b"$G", b"foo") == b"RS- $G foo\r\n"


@pytest.mark.parametrize("garbage", [
    b"HELLO there\r\n",
    b"RMSG $G foo\r\n",
    b"RMSG $G foo x\r\nabc\r\n",
    b"HRMSG $G foo 10 5\r\nhello\r\n",  # header longer than the message
    b"RMSG $G foo 3\r\nabcdef\r\n",  # payload not followed by CRLF
    b"RS+ $G foo q notanumber\r\n",
    b"RS+ foo\r\n",  # no account
    b"RMSG\r\n",
    b"RAFT group\r\n",
])
def test_garbage_is_fatal_and_the_parser_stays_dead(garbage):
    parser = rp.RouteParser()
    events = parser.feed(b"PING\r\n" + garbage)
    assert events[0] == (rp.PING,)
    assert events[-1][0] == rp.FATAL
    assert parser.feed(b"PING\r\n") == []


def test_limits():
    parser = rp.RouteParser(max_payload=4)
    assert parser.feed(b"RMSG $G foo 5\r\n")[-1] == (rp.FATAL, "maximum payload exceeded")
    parser = rp.RouteParser()
    assert parser.feed(b"X" * (rp.MAX_CONTROL_LINE + 1))[-1][0] == rp.FATAL
