"""Pull consumers: CONSUMER.MSG.NEXT requests, status messages, ack reply subjects, fetch."""

from __future__ import annotations

import nats
import nats.errors
import pytest

from ..conftest import since
from .conftest import server_url
from .jsutil import API, no_responders_hdr, rfc3339_ns, wait_until

pytestmark = pytest.mark.conformance(area="js-pull")

TIMEOUT_408 = (
    "NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: {}\r\nNats-Pending-Bytes: {}\r\n\r\n"
)


def setup(raw, stream: str, n: int = 3, subjects=None, **consumer):
    """Stream <stream> on <stream>.>, n messages m1..mn on <stream>.a (or the given subjects),
    and a durable explicit-ack pull consumer "c" with `consumer` options."""
    raw.add_stream(stream, [f"{stream}.>"])
    subjects = subjects or [f"{stream}.a"] * n
    for i, subject in enumerate(subjects, 1):
        raw.pub(subject, f"m{i}")
    raw.add_consumer(stream, "c", durable_name="c", ack_policy="explicit", **consumer)


def status(text: str) -> bytes:
    return f"NATS/1.0 {text}\r\n\r\n".encode()


def assert_status(frame, hdr: bytes | str) -> None:
    hdr = hdr.encode() if isinstance(hdr, str) else hdr
    assert (frame.op, frame.hdr, frame.payload, frame.reply) == ("HMSG", hdr, b"", None), frame.raw


def test_empty_body_delivers_one_message(raw, uniq):
    setup(raw, uniq)
    stored = raw.request(f"{API}.STREAM.MSG.GET.{uniq}", {"seq": 1}).json()["message"]
    sid = raw.pull(uniq, "c")
    f = raw.next(sid)
    # The MSG carries the stream subject (not the inbox), the ack subject as reply, no headers.
    assert f.op == "MSG" and f.hdr == b"" and f.payload == b"m1"
    assert f.line == f"MSG {uniq}.a {sid} {f.reply} 2\r\n".encode()
    assert f.ack() == {
        "stream": uniq,
        "consumer": "c",
        "delivered": 1,
        "sseq": 1,
        "cseq": 1,
        "ts": rfc3339_ns(stored["time"]),  # the stored message's timestamp, in ns
        "pending": 2,  # messages left for the consumer after this one
    }
    raw.assert_nothing(sid)  # a batch of one is done
    info = raw.consumer_info(uniq, "c")
    assert info["delivered"] == {"consumer_seq": 1, "stream_seq": 1, "last_active": "<time>"}
    assert info["ack_floor"] == {"consumer_seq": 0, "stream_seq": 0}
    assert (info["num_ack_pending"], info["num_pending"], info["num_waiting"]) == (1, 2, 0)


def test_integer_body_is_a_batch(raw, uniq):
    setup(raw, uniq, n=4)
    sid = raw.pull(uniq, "c", b"2")
    got = [raw.next(sid) for _ in range(2)]
    assert [(f.payload, f.ack()["sseq"], f.ack()["pending"]) for f in got] == [
        (b"m1", 1, 3),
        (b"m2", 2, 2),
    ]
    raw.assert_nothing(sid)
    # Surrounding blanks are trimmed.
    sid = raw.pull(uniq, "c", b" 1 ")
    assert raw.next(sid).payload == b"m3"
    raw.assert_nothing(sid)


@pytest.mark.nats_quirk
def test_unparsable_body_means_one(raw, uniq):
    setup(raw, uniq)
    sid = raw.pull(uniq, "c", b"abc")
    assert raw.next(sid).payload == b"m1"
    raw.assert_nothing(sid)


def test_batch_with_expires_ends_with_408(raw, uniq):
    setup(raw, uniq)
    sid = raw.pull(uniq, "c", {"batch": 5, "expires": 300_000_000})
    got = [raw.next(sid) for _ in range(3)]
    assert [f.ack()["pending"] for f in got] == [2, 1, 0]
    assert raw.consumer_info(uniq, "c")["num_waiting"] == 1
    # At expiry: 408 with what is left of the batch (2 messages; no max_bytes so 0 bytes).
    assert_status(raw.next(sid, timeout=3), TIMEOUT_408.format(2, 0))
    assert raw.consumer_info(uniq, "c")["num_waiting"] == 0


def test_408_reports_unused_max_bytes(raw, uniq):
    setup(raw, uniq, n=1)
    sid = raw.pull(uniq, "c", {"batch": 5, "expires": 300_000_000, "max_bytes": 1000})
    m1 = raw.next(sid)
    size = len(m1.subject) + len(m1.reply) + len(m1.payload)
    assert_status(raw.next(sid, timeout=3), TIMEOUT_408.format(4, 1000 - size))


def test_waiting_request_gets_a_later_message(raw, uniq):
    setup(raw, uniq, n=0)
    sid = raw.pull(uniq, "c", {"batch": 1, "expires": 5_000_000_000})
    # The request reaches the consumer on its own queue, not in order with the INFO request.
    wait_until(lambda: raw.consumer_info(uniq, "c")["num_waiting"] == 1, 3, "num_waiting 1")
    raw.pub(f"{uniq}.a", "late")
    f = raw.next(sid)
    assert (f.payload, f.ack()["sseq"], f.ack()["pending"]) == (b"late", 1, 0)
    raw.assert_nothing(sid)
    assert raw.consumer_info(uniq, "c")["num_waiting"] == 0


def test_no_wait_with_nothing_pending_is_404(raw, uniq):
    setup(raw, uniq, n=0)
    sid = raw.pull(uniq, "c", {"batch": 2, "no_wait": True})
    assert_status(raw.next(sid), status("404 No Messages"))
    raw.assert_nothing(sid)


@pytest.mark.nats_quirk
@pytest.mark.parametrize("expires", [None, 1_000_000_000], ids=["no-expires", "expires"])
def test_no_wait_with_fewer_messages_than_batch_ends_with_408(impl, raw, uniq, expires):
    # 2.9.10 (and 2.10.0) end a partly served no_wait request with 408 Request Timeout at once,
    # not with 404 No Messages as compat.md describes for newer servers (2.14 does that); with or
    # without expires.
    setup(raw, uniq, n=2)
    body = {"batch": 5, "no_wait": True} | ({"expires": expires} if expires else {})
    sid = raw.pull(uniq, "c", body)
    assert [raw.next(sid).payload for _ in range(2)] == [b"m1", b"m2"]
    end = status("404 No Messages") if since(impl, (2, 14)) else TIMEOUT_408.format(3, 0)
    assert_status(raw.next(sid), end)
    raw.assert_nothing(sid)
    assert raw.consumer_info(uniq, "c")["num_waiting"] == 0


def test_max_bytes(raw, uniq):
    setup(raw, uniq)
    # Nothing fits: 409 right away, the message stays for the next request.
    sid = raw.pull(uniq, "c", {"batch": 5, "max_bytes": 10})
    f = raw.next(sid)
    assert_status(
        f,
        "NATS/1.0 409 Message Size Exceeds MaxBytes\r\n"
        "Nats-Pending-Messages: 5\r\nNats-Pending-Bytes: 10\r\n\r\n",
    )
    assert raw.consumer_info(uniq, "c")["delivered"]["stream_seq"] == 0
    # The size counted is subject + ack reply + headers + payload.
    sid = raw.pull(uniq, "c", {"batch": 5, "max_bytes": 80})
    first = raw.next(sid)
    size = len(first.subject) + len(first.reply) + len(first.hdr) + len(first.payload)
    assert first.payload == b"m1" and size <= 80 < 2 * size
    assert_status(
        raw.next(sid),
        "NATS/1.0 409 Message Size Exceeds MaxBytes\r\n"
        f"Nats-Pending-Messages: 4\r\nNats-Pending-Bytes: {80 - size}\r\n\r\n",
    )
    raw.assert_nothing(sid)


def test_consumer_request_limits(raw, uniq):
    setup(raw, uniq, max_batch=10, max_expires=2_000_000_000, max_bytes=1000)
    cases = [
        ({"batch": 11}, "409 Exceeded MaxRequestBatch of 10"),
        ({"batch": 1, "expires": 3_000_000_000}, "409 Exceeded MaxRequestExpires of 2s"),
        ({"batch": 1, "max_bytes": 1001}, "409 Exceeded MaxRequestMaxBytes of 1000"),
    ]
    for body, text in cases:
        sid = raw.pull(uniq, "c", body)
        assert_status(raw.next(sid), status(text))
    assert raw.consumer_info(uniq, "c")["delivered"]["stream_seq"] == 0


def test_max_waiting_and_consumer_deleted(raw, uniq):
    setup(raw, uniq, n=0, max_waiting=2)
    body = {"batch": 1, "expires": 10_000_000_000}
    waiting = [raw.pull(uniq, "c", body) for _ in range(2)]
    third = raw.pull(uniq, "c", body)
    assert_status(raw.next(third), status("409 Exceeded MaxWaiting"))
    assert raw.consumer_info(uniq, "c")["num_waiting"] == 2
    # Deleting the consumer ends the waiting requests.
    assert raw.api(f"CONSUMER.DELETE.{uniq}.c")["success"] is True
    for sid in waiting:
        assert_status(raw.next(sid), status("409 Consumer Deleted"))


@pytest.mark.parametrize(
    "body",
    [
        {"batch": 1, "expires": 1_000_000_000, "idle_heartbeat": 600_000_000},
        {"batch": 1, "idle_heartbeat": 100_000_000},  # a heartbeat needs expires
    ],
    ids=["hb-over-half-expires", "hb-without-expires"],
)
def test_heartbeat_too_large(raw, uniq, body):
    setup(raw, uniq)
    sid = raw.pull(uniq, "c", body)
    assert_status(raw.next(sid), status("400 Bad Request - heartbeat value too large"))


@pytest.mark.nats_quirk
def test_invalid_json_reports_the_go_decoder_error(raw, uniq):
    setup(raw, uniq)
    sid = raw.pull(uniq, "c", b"{bad")
    text = "400 Bad Request - invalid character 'b' looking for beginning of object key string"
    assert_status(raw.next(sid), status(text))


def test_push_consumer_refuses_next(raw, uniq):
    raw.add_stream(uniq, [f"{uniq}.>"])
    raw.add_consumer(uniq, "p", durable_name="p", deliver_subject=f"dlv.{uniq}")
    sid = raw.pull(uniq, "p")
    assert_status(raw.next(sid), status("409 Consumer is push based"))


def test_pull_idle_heartbeat(raw, uniq):
    setup(raw, uniq, n=1)
    first = raw.pull(uniq, "c")
    assert raw.next(first).payload == b"m1"
    sid = raw.pull(uniq, "c", {"batch": 1, "expires": 1_000_000_000, "idle_heartbeat": 150_000_000})
    hb = raw.next(sid)
    # The last delivered consumer and stream sequences.
    assert_status(
        hb, "NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 1\r\nNats-Last-Stream: 1\r\n\r\n"
    )
    # More heartbeats until the request expires with a 408.
    statuses = []
    while True:
        f = raw.next(sid, timeout=3)
        statuses.append(f.status)
        if f.status != "100":
            break
    assert statuses[-1] == "408" and statuses.count("100") >= 1
    assert_status(f, TIMEOUT_408.format(1, 0))


def test_next_for_unknown_consumer_gets_no_reply(impl, raw, uniq):
    raw.add_stream(uniq, [f"{uniq}.>"])
    sid = raw.pull(uniq, "nope")
    assert raw.api(f"STREAM.INFO.{uniq}")["config"]["name"] == uniq
    if since(impl, (2, 11)):
        # Nothing subscribes to that MSG.NEXT subject: 2.11 answers the requester (which asked
        # for no_responders) with a 503.
        hdr = no_responders_hdr(impl, f"{API}.CONSUMER.MSG.NEXT.{uniq}.nope")
        assert_status(raw.next(sid), hdr)
    raw.assert_nothing(sid)


def test_filtered_consumer_ack_subjects(raw, uniq):
    subjects = [f"{uniq}.{s}" for s in "ababa"]
    setup(raw, uniq, subjects=subjects, filter_subject=f"{uniq}.a")
    sid = raw.pull(uniq, "c", b"3")
    acks = [raw.next(sid).ack() for _ in range(3)]
    assert [(a["sseq"], a["cseq"], a["delivered"], a["pending"]) for a in acks] == [
        (1, 1, 1, 2),
        (3, 2, 1, 1),
        (5, 3, 1, 0),
    ]
    info = raw.consumer_info(uniq, "c")
    assert info["delivered"] == {"consumer_seq": 3, "stream_seq": 5, "last_active": "<time>"}


def test_waiting_requests_are_served_round_robin(raw, uniq):
    setup(raw, uniq, n=0)
    body = {"batch": 2, "expires": 5_000_000_000}
    a = raw.pull(uniq, "c", body)
    b = raw.pull(uniq, "c", body)
    raw.flush()
    for i in range(1, 5):
        raw.pub(f"{uniq}.a", f"m{i}")
    got_a = [raw.next(a).payload for _ in range(2)]
    got_b = [raw.next(b).payload for _ in range(2)]
    assert (got_a, got_b) == ([b"m1", b"m3"], [b"m2", b"m4"])


# -- nats-py fetch ---------------------------------------------------------------------------------


async def fetch_nothing(psub, batch: int, timeout: float) -> list:
    """fetch(batch > 1) of nothing: nats-py raises a timeout (its own or the builtin one, by
    where its deadline ran out), or, when the server's 408 for its short second request beats the
    client's own timer, returns an empty list (nats.py 2.16)."""
    try:
        return await psub.fetch(batch, timeout=timeout)
    except (TimeoutError, nats.errors.TimeoutError):
        return []


async def test_fetch_empty_partial_full(js_server, raw, uniq):
    setup(raw, uniq, n=0)
    nc = await nats.connect(server_url(js_server))
    try:
        js = nc.jetstream()
        psub = await js.pull_subscribe_bind("c", uniq)
        # Empty stream: fetch(1) and fetch(n) both come back with nothing.
        with pytest.raises(nats.errors.TimeoutError):
            await psub.fetch(1, timeout=0.3)
        assert await fetch_nothing(psub, 4, timeout=0.3) == []
        for i in range(1, 3):
            await js.publish(f"{uniq}.a", f"m{i}".encode())
        # Partial: fewer messages than asked for.
        msgs = await psub.fetch(5, timeout=2)
        assert [m.data for m in msgs] == [b"m1", b"m2"]
        assert [(m.metadata.sequence.stream, m.metadata.num_pending) for m in msgs] == [
            (1, 1),
            (2, 0),
        ]
        for m in msgs:
            await m.ack_sync()
        for i in range(3, 7):
            await js.publish(f"{uniq}.a", f"m{i}".encode())
        # Full: exactly the batch.
        msgs = await psub.fetch(3, timeout=2)
        assert [m.data for m in msgs] == [b"m3", b"m4", b"m5"]
        one = await psub.fetch(1, timeout=2)
        assert [m.data for m in one] == [b"m6"]
        assert one[0].metadata.num_delivered == 1 and one[0].metadata.stream == uniq
    finally:
        await nc.close()
    info = raw.consumer_info(uniq, "c")
    assert (info["num_ack_pending"], info["ack_floor"]["stream_seq"]) == (4, 2)
