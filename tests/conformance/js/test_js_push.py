"""Push consumers: interest and push_bound, deliver_group, idle heartbeats, flow control,
ephemeral deletion after inactive_threshold, and the nats-py ordered consumer."""

from __future__ import annotations

import asyncio
import json
import re
import time

import nats
import pytest

from ..conftest import since
from .conftest import server_url
from .jsutil import API, scrub, wait_until

pytestmark = pytest.mark.conformance(area="js-push")

ADV = "$JS.EVENT.ADVISORY.CONSUMER"


def make_stream(raw, stream: str, n: int = 0, payload: bytes | None = None) -> None:
    raw.add_stream(stream, [f"{stream}.>"])
    for i in range(1, n + 1):
        raw.pub(f"{stream}.a", payload if payload is not None else f"m{i}".encode())


def test_push_delivers_to_the_deliver_subject(raw, uniq):
    make_stream(raw, uniq, n=2)
    sid = raw.subscribe(f"dlv.{uniq}")
    resp = raw.add_consumer(
        uniq, "p", durable_name="p", deliver_subject=f"dlv.{uniq}", ack_policy="explicit"
    )
    assert resp["push_bound"] is True
    got = [raw.next(sid) for _ in range(2)]
    # The MSG names the stored subject, not the deliver subject; reply = ack subject.
    assert [(f.subject, f.payload) for f in got] == [(f"{uniq}.a", b"m1"), (f"{uniq}.a", b"m2")]
    assert [f.ack()["pending"] for f in got] == [1, 0]
    assert got[0].line == f"MSG {uniq}.a {sid} {got[0].reply} 2\r\n".encode()
    raw.pub(f"{uniq}.a", "m3")
    assert raw.next(sid).payload == b"m3"
    info = raw.consumer_info(uniq, "p")
    assert (info["push_bound"], info["num_ack_pending"], info["num_waiting"]) == (True, 3, 0)


def test_push_bound_follows_interest(raw, uniq):
    make_stream(raw, uniq, n=1)
    resp = raw.add_consumer(uniq, "p", durable_name="p", deliver_subject=f"dlv.{uniq}")
    assert "push_bound" not in resp  # omitted when false
    assert raw.consumer_info(uniq, "p")["delivered"]["stream_seq"] == 0
    sid = raw.subscribe(f"dlv.{uniq}")
    assert raw.next(sid).payload == b"m1"
    assert raw.consumer_info(uniq, "p")["push_bound"] is True
    raw.unsubscribe(sid)
    raw.flush()
    assert "push_bound" not in raw.consumer_info(uniq, "p")
    # A durable push consumer without interest stays.
    assert raw.consumer_info(uniq, "p")["name"] == "p"


def test_deliver_group(raw, uniq):
    make_stream(raw, uniq)
    subject = f"dlv.{uniq}"
    plain = raw.subscribe(subject)
    resp = raw.add_consumer(
        uniq, "g", durable_name="g", deliver_subject=subject, deliver_group="grp"
    )
    # Only members of the deliver group count as interest.
    assert "push_bound" not in resp
    other = raw.subscribe(subject, queue="other")
    raw.flush()
    assert "push_bound" not in raw.consumer_info(uniq, "g")
    members = [raw.subscribe(subject, queue="grp") for _ in range(2)]
    raw.flush()
    assert raw.consumer_info(uniq, "g")["push_bound"] is True
    for i in range(1, 5):
        raw.pub(f"{uniq}.a", f"m{i}")
    raw.flush()
    # Each message reaches exactly one group member (plus any plain subscriber).
    raw.next(plain)  # wait until deliveries flow
    seen = []
    deadline = time.monotonic() + 2
    while len(seen) < 4 and time.monotonic() < deadline:
        raw.flush()
        for sid in members:
            seen += [f.payload for f in raw.take_all(sid)]
    assert sorted(seen) == [b"m1", b"m2", b"m3", b"m4"]
    # Plain NATS routing otherwise: another queue group gets every message too.
    assert sorted(f.payload for f in raw.take_all(other)) == [b"m1", b"m2", b"m3", b"m4"]


def test_idle_heartbeat(raw, uniq):
    make_stream(raw, uniq, n=2)
    sid = raw.subscribe(f"dlv.{uniq}")
    raw.add_consumer(
        uniq, "h", durable_name="h", deliver_subject=f"dlv.{uniq}", idle_heartbeat=100_000_000
    )
    assert [raw.next(sid).payload for _ in range(2)] == [b"m1", b"m2"]
    hb = raw.next(sid)
    assert (hb.op, hb.subject, hb.reply, hb.payload) == ("HMSG", f"dlv.{uniq}", None, b"")
    assert (
        hb.hdr
        == b"NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 2\r\nNats-Last-Stream: 2\r\n\r\n"
    )
    # They keep coming while idle.
    assert raw.next(sid).hdr == hb.hdr


@pytest.mark.nats_quirk
def test_idle_heartbeat_exact_frame(impl, raw, uniq):
    make_stream(raw, uniq)
    sid = raw.subscribe(f"dlv.{uniq}")
    raw.add_consumer(
        uniq, "h", durable_name="h", deliver_subject=f"dlv.{uniq}", idle_heartbeat=100_000_000
    )
    hb = raw.next(sid)
    # Empty reply field: two spaces before the sizes; one since 2.10.0 (its stream's send loop
    # leaves an empty reply out).
    gap = " " if since(impl, (2, 10)) else "  "
    assert hb.raw == (
        f"HMSG dlv.{uniq} {sid}{gap}75 75\r\n".encode()
        + b"NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 0\r\nNats-Last-Stream: 0\r\n\r\n"
        + b"\r\n"
    )


def test_flow_control(raw, uniq):
    # 14 messages of 200 kB. The flow-control window starts at 2 MiB (32 MiB / 16): the server
    # asks for a flow-control reply once more than half of it is outstanding (after message 6)
    # and stops delivering once the window is exceeded (after message 11).
    big = b"x" * 200_000
    make_stream(raw, uniq, n=14, payload=big)
    sid = raw.subscribe(f"dlv.{uniq}")
    raw.add_consumer(
        uniq,
        "f",
        durable_name="f",
        deliver_subject=f"dlv.{uniq}",
        flow_control=True,
        idle_heartbeat=200_000_000,
    )
    frames = []
    while True:
        f = raw.next(sid, timeout=3)
        frames.append(f)
        if f.op == "HMSG" and f.status == "100" and b"Idle" in f.hdr:
            break
    kinds = ["msg" if f.payload == big else f.status_line for f in frames]
    fc = frames[6]
    assert kinds == ["msg"] * 6 + ["NATS/1.0 100 FlowControl Request"] + ["msg"] * 5 + [
        "NATS/1.0 100 Idle Heartbeat"
    ]
    assert (fc.hdr, fc.payload) == (b"NATS/1.0 100 FlowControl Request\r\n\r\n", b"")
    assert re.fullmatch(rf"\$JS\.FC\.{uniq}\.f\.[0-9A-Za-z]{{4}}", fc.reply or ""), fc.reply
    # Stalled: the heartbeat names the unanswered flow-control subject.
    assert frames[-1].hdr == (
        b"NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 11\r\nNats-Last-Stream: 11\r\n"
        b"Nats-Consumer-Stalled: " + fc.reply.encode() + b"\r\n\r\n"
    )
    assert raw.consumer_info(uniq, "f")["delivered"]["stream_seq"] == 11
    # Answering (an empty message to the FC subject) resumes delivery.
    raw.publish(fc.reply)
    rest = [raw.next(sid, timeout=3) for _ in range(3)]
    assert [f.ack()["sseq"] for f in rest] == [12, 13, 14]


def test_ephemeral_push_deleted_after_inactive_threshold(raw, uniq):
    make_stream(raw, uniq, n=1)
    adv = raw.subscribe(f"{ADV}.DELETED.{uniq}.>")
    raw.add_consumer(uniq, "keep", durable_name="keep", deliver_subject=f"dlv.k.{uniq}")
    start = time.monotonic()
    resp = raw.add_consumer(
        uniq, "eph", deliver_subject=f"dlv.e.{uniq}", inactive_threshold=300_000_000
    )
    assert resp["config"]["inactive_threshold"] == 300_000_000
    event = raw.next(adv, timeout=3)
    elapsed = time.monotonic() - start
    assert event.subject == f"{ADV}.DELETED.{uniq}.eph"
    assert scrub(event.json()) == {
        "type": "io.nats.jetstream.advisory.v1.consumer_action",
        "id": "<nuid>",
        "timestamp": "<time>",
        "stream": uniq,
        "consumer": "eph",
        "action": "delete",
    }
    assert 0.25 <= elapsed < 2, elapsed
    # The advisory can come a moment before the consumer is gone from the API's view.
    gone = wait_until(lambda: raw.consumer_info(uniq, "eph").get("error"), 2, "removal")
    assert gone["err_code"] == 10014
    assert raw.api(f"CONSUMER.NAMES.{uniq}")["consumers"] == ["keep"]


def test_ephemeral_push_deleted_after_interest_goes(raw, uniq):
    make_stream(raw, uniq, n=1)
    adv = raw.subscribe(f"{ADV}.DELETED.{uniq}.eph")
    sid = raw.subscribe(f"dlv.{uniq}")
    raw.add_consumer(uniq, "eph", deliver_subject=f"dlv.{uniq}", inactive_threshold=200_000_000)
    assert raw.next(sid).payload == b"m1"
    raw.unsubscribe(sid)
    assert raw.next(adv, timeout=3).json()["action"] == "delete"


# -- nats-py ordered consumer -------------------------------------------------------------------


async def test_ordered_consumer_config_as_sent(js_server, raw, uniq):
    make_stream(raw, uniq, n=3)
    spy = raw.subscribe(f"{API}.CONSUMER.CREATE.>")
    replies = raw.subscribe("_INBOX.>")
    nc = await nats.connect(server_url(js_server))
    got: list[bytes] = []
    done = asyncio.Event()

    async def handler(msg):
        got.append(msg.data)
        if len(got) == 3:
            done.set()

    try:
        js = nc.jetstream()
        await js.subscribe(f"{uniq}.>", ordered_consumer=True, cb=handler)
        await asyncio.wait_for(done.wait(), 5)
    finally:
        await nc.close()
    assert got == [b"m1", b"m2", b"m3"]
    req = raw.next(spy)
    # nats-py uses the legacy ephemeral subject (no consumer name) for ordered consumers.
    assert req.subject == f"{API}.CONSUMER.CREATE.{uniq}"
    body = json.loads(req.payload)
    deliver = body["config"]["deliver_subject"]
    assert deliver.startswith("_INBOX.")
    assert body == {
        "stream_name": uniq,
        "config": {
            "deliver_policy": "all",
            "ack_policy": "none",
            "ack_wait": 79_200_000_000_000,  # 22 hours
            "max_deliver": 1,
            "filter_subject": f"{uniq}.>",
            "replay_policy": "instant",
            "flow_control": True,
            "idle_heartbeat": 5_000_000_000,
            "deliver_subject": deliver,
            "num_replicas": 1,
            "mem_storage": True,
            "inactive_threshold": 0,
        },
    }
    resp = scrub(raw.next(replies, subject=req.reply).json(), oracle=raw.oracle)
    name = resp["name"]
    assert resp["config"] == {
        "deliver_policy": "all",
        "ack_policy": "none",
        "ack_wait": 79_200_000_000_000,
        "max_deliver": 1,
        "filter_subject": f"{uniq}.>",
        "replay_policy": "instant",
        "idle_heartbeat": 5_000_000_000,
        "flow_control": True,
        "deliver_subject": deliver,
        "inactive_threshold": 5_000_000_000,  # 0 became the ephemeral default
        "num_replicas": 1,
        "mem_storage": True,
    } | ({"name": name} if "name" in resp["config"] else {})
    assert resp["num_pending"] == 3
