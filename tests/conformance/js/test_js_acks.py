"""The ack protocol: +ACK / empty / -NAK / +WPI / +TERM / +NXT, redelivery, backoff,
max_deliver and its advisory, max_ack_pending, AckAll / AckNone, ConsumerInfo counters."""

from __future__ import annotations

import time

import pytest

from ..conftest import since
from .jsutil import scrub

pytestmark = pytest.mark.conformance(area="js-acks")

ADV = "$JS.EVENT.ADVISORY.CONSUMER"


def setup(raw, stream: str, n: int = 3, **consumer):
    raw.add_stream(stream, [f"{stream}.>"])
    for i in range(1, n + 1):
        raw.pub(f"{stream}.a", f"m{i}")
    cfg = {"durable_name": "c", "ack_policy": "explicit"} | consumer
    raw.add_consumer(stream, "c", **cfg)


def fetch(raw, stream: str, n: int = 1, expires: float | None = None):
    """Pull n messages with one request (waiting up to `expires` seconds if given)."""
    body = {"batch": n} | ({"expires": int(expires * 1e9)} if expires else {})
    sid = raw.pull(stream, "c", body)
    return [raw.next(sid, timeout=(expires or 0) + 2) for _ in range(n)]


def counters(raw, stream: str) -> tuple:
    i = raw.consumer_info(stream, "c")
    strip = lambda s: (s["consumer_seq"], s["stream_seq"])  # noqa: E731
    return (
        strip(i["delivered"]),
        strip(i["ack_floor"]),
        i["num_ack_pending"],
        i["num_redelivered"],
        i["num_pending"],
    )


@pytest.mark.parametrize("payload", [b"+ACK", b"", b"-NAK", b"+WPI", b"+TERM", b"+OK"])
def test_ack_sent_as_request_gets_an_empty_reply(raw, uniq, payload):
    setup(raw, uniq, n=1)
    (msg,) = fetch(raw, uniq)
    reply = raw.ack(msg, payload)
    assert (reply.op, reply.hdr, reply.payload) == ("MSG", b"", b"")


@pytest.mark.nats_quirk
def test_ack_reply_exact_bytes(impl, raw, uniq):
    # Like the PubAck, the empty ack reply goes out with an empty reply field: two spaces. 2.10.0
    # sends one (its stream's send loop leaves an empty reply out).
    setup(raw, uniq, n=1)
    (msg,) = fetch(raw, uniq)
    reply = raw.ack(msg)
    gap = " " if since(impl, (2, 10)) else "  "
    assert reply.raw == f"MSG {reply.subject} {raw.api_sid}{gap}0\r\n\r\n".encode()


def test_explicit_acks_move_the_floor(impl, raw, uniq):
    setup(raw, uniq, n=4)
    m = fetch(raw, uniq, 3)
    assert counters(raw, uniq) == ((3, 3), (0, 0), 3, 0, 1)
    raw.ack(m[1])  # out of order: the floor stays
    assert counters(raw, uniq) == ((3, 3), (0, 0), 2, 0, 1)
    raw.ack(m[0])  # the floor jumps over the already acked 2
    assert counters(raw, uniq) == ((3, 3), (2, 2), 1, 0, 1)
    raw.ack(m[2], b"")  # an empty payload is an ack
    assert counters(raw, uniq) == ((3, 3), (3, 3), 0, 0, 1)
    info = raw.consumer_info(uniq, "c")
    assert info["ack_floor"] == {"consumer_seq": 3, "stream_seq": 3, "last_active": "<time>"}
    # Acking again, or acking a sequence never delivered, changes nothing (and is answered).
    assert raw.ack(m[2]).payload == b""
    bogus = f"$JS.ACK.{uniq}.c.1.99.99.0.0"
    if since(impl, (2, 10, 23)):
        # 2.10.23+ drops an ack past the stream's last sequence (99 > 4) without an answer.
        r1 = raw.inbox()
        raw.publish(bogus, b"+ACK", reply=r1)
        assert counters(raw, uniq) == ((3, 3), (3, 3), 0, 0, 1)
        raw.flush()
        assert not [f for f in raw.backlog if f.subject == r1]
    else:
        assert raw.request(bogus, b"+ACK").payload == b""
    assert counters(raw, uniq) == ((3, 3), (3, 3), 0, 0, 1)


def test_nak_redelivers_at_once_with_advisory(raw, uniq):
    setup(raw, uniq, n=2)
    adv = raw.subscribe(f"{ADV}.MSG_NAKED.{uniq}.c")
    (m1,) = fetch(raw, uniq)
    raw.ack(m1, b"-NAK")
    # The NAKed message comes before the next new one, with delivered=2 and a new cseq.
    again, m2 = fetch(raw, uniq, 2)
    assert (again.payload, m2.payload) == (b"m1", b"m2")
    a = again.ack()
    assert (a["delivered"], a["sseq"], a["cseq"], a["pending"]) == (2, 1, 2, 1)
    assert counters(raw, uniq) == ((3, 2), (0, 0), 2, 1, 0)
    event = raw.next(adv)
    assert scrub(event.json()) == {
        "type": "io.nats.jetstream.advisory.v1.nak",
        "id": "<nuid>",
        "timestamp": "<time>",
        "stream": uniq,
        "consumer": "c",
        "consumer_seq": 1,
        "stream_seq": 1,
        "deliveries": 1,
    }


@pytest.mark.parametrize("nak", [b'-NAK {"delay": 300000000}', b"-NAK 300ms"], ids=["json", "go"])
def test_nak_with_delay(raw, uniq, nak):
    setup(raw, uniq, n=1)
    (m1,) = fetch(raw, uniq)
    start = time.monotonic()
    raw.ack(m1, nak)
    sid = raw.pull(uniq, "c", {"batch": 1, "no_wait": True})
    assert raw.next(sid).status_line == "NATS/1.0 404 No Messages"  # not yet
    (again,) = fetch(raw, uniq, 1, expires=3)
    elapsed = time.monotonic() - start
    assert again.payload == b"m1" and again.ack()["delivered"] == 2
    assert 0.25 <= elapsed < 2, elapsed


def test_redelivery_after_ack_wait(raw, uniq):
    setup(raw, uniq, n=1, ack_wait=300_000_000)
    (m1,) = fetch(raw, uniq)
    start = time.monotonic()
    (again,) = fetch(raw, uniq, 1, expires=3)
    elapsed = time.monotonic() - start
    assert again.payload == b"m1"
    assert again.ack() | {"ts": 0} == m1.ack() | {"ts": 0, "delivered": 2, "cseq": 2}
    assert 0.25 <= elapsed < 2, elapsed
    assert counters(raw, uniq) == ((2, 1), (0, 0), 1, 1, 0)
    raw.ack(again)
    assert counters(raw, uniq) == ((2, 1), (2, 1), 0, 0, 0)


def test_wpi_resets_the_ack_timer(raw, uniq):
    setup(raw, uniq, n=1, ack_wait=400_000_000)
    (m1,) = fetch(raw, uniq)
    start = time.monotonic()
    # Four 200 ms pull requests act as the clock: each ends with 408 (no redelivery) and is
    # followed by +WPI. 800 ms is well past the 400 ms ack_wait.
    for _ in range(4):
        sid = raw.pull(uniq, "c", {"batch": 1, "expires": 200_000_000})
        assert raw.next(sid, timeout=3).status == "408"
        assert raw.ack(m1, b"+WPI").payload == b""
    assert time.monotonic() - start >= 0.8
    (again,) = fetch(raw, uniq, 1, expires=3)
    assert again.ack()["delivered"] == 2


def test_term(raw, uniq):
    setup(raw, uniq, n=2, ack_wait=200_000_000)
    adv = raw.subscribe(f"{ADV}.MSG_TERMINATED.{uniq}.c")
    (m1,) = fetch(raw, uniq)
    raw.ack(m1, b"+TERM")
    assert counters(raw, uniq) == ((1, 1), (1, 1), 0, 0, 1)
    assert scrub(raw.next(adv).json()) == {
        "type": "io.nats.jetstream.advisory.v1.terminated",
        "id": "<nuid>",
        "timestamp": "<time>",
        "stream": uniq,
        "consumer": "c",
        "consumer_seq": 1,
        "stream_seq": 1,
        "deliveries": 1,
    }
    # Never redelivered: the next delivery is m2.
    (m2,) = fetch(raw, uniq, 1, expires=1)
    assert m2.payload == b"m2"


@pytest.mark.nats_quirk
def test_term_with_reason_is_not_recognised(impl, raw, uniq):
    # 2.9.10 (and 2.10.0) only know "+TERM" exactly: "+TERM <reason>" does nothing (but is
    # still answered). 2.10.4 takes the reason into the advisory; so does the broker (compat.md).
    setup(raw, uniq, n=1)
    adv = raw.subscribe(f"{ADV}.MSG_TERMINATED.{uniq}.c")
    (m1,) = fetch(raw, uniq)
    assert raw.ack(m1, b"+TERM bye").payload == b""
    if impl.name == "broker" or since(impl, (2, 10, 4)):
        assert counters(raw, uniq) == ((1, 1), (1, 1), 0, 0, 0)
        assert scrub(raw.next(adv).json()) == {
            "type": "io.nats.jetstream.advisory.v1.terminated",
            "id": "<nuid>",
            "timestamp": "<time>",
            "stream": uniq,
            "consumer": "c",
            "consumer_seq": 1,
            "stream_seq": 1,
            "deliveries": 1,
            "reason": "bye",
        }
        return
    assert counters(raw, uniq) == ((1, 1), (0, 0), 1, 0, 0)
    raw.assert_nothing(adv)


def test_nxt_acks_and_delivers_to_the_ack_reply(raw, uniq):
    setup(raw, uniq, n=4)
    (m1,) = fetch(raw, uniq)
    inbox = raw.inbox().replace("_RJS.", "_NXT.", 1)
    sid = raw.subscribe(inbox)
    raw.publish(m1.reply, b"+NXT", reply=inbox)
    m2 = raw.next(sid)
    assert (m2.payload, m2.ack()["sseq"]) == (b"m2", 2)
    raw.assert_nothing(sid)  # no empty "ack done" reply for +NXT
    raw.publish(m2.reply, b'+NXT {"batch": 2}', reply=inbox)
    assert [raw.next(sid).payload for _ in range(2)] == [b"m3", b"m4"]
    assert counters(raw, uniq) == ((4, 4), (2, 2), 2, 0, 0)


def test_backoff_intervals(raw, uniq):
    setup(raw, uniq, n=1, backoff=[200_000_000, 600_000_000], max_deliver=4)
    times = []
    (m,) = fetch(raw, uniq)
    times.append(time.monotonic())
    for _ in range(2):
        (m,) = fetch(raw, uniq, 1, expires=3)
        times.append(time.monotonic())
    assert [m.ack()["delivered"]] == [3]
    first, second = times[1] - times[0], times[2] - times[1]
    assert 0.15 <= first < 0.5, first  # backoff[0]
    assert 0.5 <= second < 1.0, second  # backoff[1] (the last value repeats)


def test_max_deliver_advisory_once(raw, uniq):
    setup(raw, uniq, n=1, ack_wait=200_000_000, max_deliver=2)
    adv = raw.subscribe(f"{ADV}.MAX_DELIVERIES.{uniq}.c")
    (m,) = fetch(raw, uniq)
    (m,) = fetch(raw, uniq, 1, expires=3)
    assert m.ack()["delivered"] == 2
    # No third delivery: the waiting request only sees the advisory, then times out.
    sid = raw.pull(uniq, "c", {"batch": 1, "expires": 600_000_000})
    event = raw.next(adv, timeout=3)
    assert scrub(event.json()) == {
        "type": "io.nats.jetstream.advisory.v1.max_deliver",
        "id": "<nuid>",
        "timestamp": "<time>",
        "stream": uniq,
        "consumer": "c",
        "stream_seq": 1,
        "deliveries": 2,
    }
    assert raw.next(sid, timeout=3).status == "408"
    raw.assert_nothing(adv)  # exactly once
    # The message left the pending set, but stays in the stream.
    delivered, _, ack_pending, _, pending = counters(raw, uniq)
    assert (delivered, ack_pending, pending) == ((2, 1), 0, 0)
    assert raw.stream_state(uniq)["messages"] == 1


@pytest.mark.nats_quirk
def test_max_deliver_leaves_the_ack_floor_and_redelivered_count(impl, raw, uniq):
    # 2.9.10 drops the message from the pending set without moving the ack floor, and keeps
    # counting it in num_redelivered. 2.12+ keeps the floor too, but checks max_deliver before
    # counting a redelivery: num_redelivered stays 0. In between it varied: 2.10.25 moved the
    # floor to (1, 1) with 0 redelivered, 2.11.0 moved it with 1 redelivered.
    if since(impl, (2, 10, 1)) and not since(impl, (2, 12)):
        pytest.skip("varies across 2.10.x and 2.11.x (see the comment)")
    setup(raw, uniq, n=1, ack_wait=200_000_000, max_deliver=1)
    adv = raw.subscribe(f"{ADV}.MAX_DELIVERIES.{uniq}.c")
    fetch(raw, uniq)
    sid = raw.pull(uniq, "c", {"batch": 1, "expires": 600_000_000})
    raw.next(adv, timeout=3)
    assert raw.next(sid, timeout=3).status == "408"
    redelivered = 0 if since(impl, (2, 12)) else 1
    assert counters(raw, uniq) == ((1, 1), (0, 0), 0, redelivered, 0)


def test_max_ack_pending_gates_delivery(raw, uniq):
    setup(raw, uniq, n=4, max_ack_pending=2)
    sid = raw.pull(uniq, "c", {"batch": 4, "expires": 800_000_000})
    m1, m2 = raw.next(sid), raw.next(sid)
    assert (m1.payload, m2.payload) == (b"m1", b"m2")
    assert counters(raw, uniq) == ((2, 2), (0, 0), 2, 0, 2)
    raw.ack(m1)  # one slot frees up: exactly one more message
    assert raw.next(sid).payload == b"m3"
    end = raw.next(sid, timeout=3)
    assert end.hdr == (
        b"NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 1\r\nNats-Pending-Bytes: 0\r\n\r\n"
    )


def test_ack_all(raw, uniq):
    setup(raw, uniq, n=4, ack_policy="all")
    m = fetch(raw, uniq, 3)
    raw.ack(m[1])  # acks 1 and 2
    assert counters(raw, uniq) == ((3, 3), (2, 2), 1, 0, 1)
    raw.ack(m[0])  # below the floor: ignored
    assert counters(raw, uniq) == ((3, 3), (2, 2), 1, 0, 1)
    raw.ack(m[2])
    assert counters(raw, uniq) == ((3, 3), (3, 3), 0, 0, 1)


def test_ack_none(raw, uniq):
    setup(raw, uniq, n=3, ack_policy="none")
    m = fetch(raw, uniq, 2)
    # Delivered counts as acked; acks are still answered and change nothing.
    assert counters(raw, uniq) == ((2, 2), (2, 2), 0, 0, 1)
    assert raw.ack(m[0]).payload == b""
    assert counters(raw, uniq) == ((2, 2), (2, 2), 0, 0, 1)
