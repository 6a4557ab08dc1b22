"""A consumer's position (`delivered`, `ack_floor`, `num_pending`, `num_ack_pending`,
`num_redelivered`) when its filter skips messages, and when messages leave the stream (deletes,
purges, limits, max_age, interest and workqueue retention), for push and pull consumers and the
three ack policies.

nats-server 2.9 and 2.10 (on one server) report the consumer's live position: when the consumer
looks for its next message and none matches up to the stream's last sequence, it moves past that
sequence, and `delivered.stream_seq` shows it; an explicit ack that leaves nothing pending takes
the ack floor to `delivered`. So a caught-up filtered consumer reports the stream's last sequence
(its "lag" reaches 0). It looks whenever its delivery loop runs: right after a delivery (push, or
pull while a request waits), when a pull request arrives (not a `no_wait` one with nothing
pending), at an idle heartbeat tick, when a matching message arrives; a message that does not
match its filter does not wake it. From 2.11.10 on (nats-server commit 237b8a791, "Consistent
filtered consumer state reporting") CONSUMER.INFO shows the stored state instead: the last
message actually delivered, and the floor of the acknowledgements. The broker speaks 2.10: it
reports the live position (`moves_past`), and persists it (see the restart test).
"""

from __future__ import annotations

import time

import pytest

from ..conftest import Impl, _launch, impl_version
from .jsutil import RawJS

pytestmark = pytest.mark.conformance(area="js-filtered-position")

ADV = "$JS.EVENT.ADVISORY.CONSUMER"
UNACKED_REMOVED = "Unacknowledged message was deleted"


def moves_past(impl: Impl) -> bool:
    """Whether CONSUMER.INFO shows the position moved past what the filter skipped."""
    return impl.name == "broker" or impl_version(impl) < (2, 11, 10)


def v210(impl: Impl) -> bool:
    return impl_version(impl) >= (2, 10)


def pos(d: tuple[int, int], f: tuple[int, int], np: int = 0, ap: int = 0, rd: int = 0) -> dict:
    return {"delivered": d, "ack_floor": f, "num_pending": np, "num_ack_pending": ap,
            "num_redelivered": rd}


def position(raw: RawJS, stream: str, name: str) -> dict:
    info = raw.consumer_info(stream, name)
    assert "error" not in info, info
    return pos((info["delivered"]["consumer_seq"], info["delivered"]["stream_seq"]),
               (info["ack_floor"]["consumer_seq"], info["ack_floor"]["stream_seq"]),
               info["num_pending"], info["num_ack_pending"], info["num_redelivered"])


def settled(raw: RawJS, stream: str, name: str, expected: dict, timeout: float = 2.0) -> dict:
    """The consumer's position once it equals `expected` (a server may finish looking for its
    next message, or terminating a removed one, a moment after what the test waited for), or
    its last position after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        got = position(raw, stream, name)
        if got == expected or time.monotonic() > deadline:
            return got
        time.sleep(0.02)


def steady(raw: RawJS, stream: str, name: str) -> dict:
    """The position after a moment in which nothing should change it."""
    raw.flush()
    time.sleep(0.2)
    return position(raw, stream, name)


def publish(raw: RawJS, stream: str, tokens: str) -> None:
    for token in tokens:
        raw.pub(f"{stream}.{token}", token)


def push(raw: RawJS, stream: str, name: str = "c", ack: str = "explicit",
         filt: str | None = "a", **cfg) -> str:
    """A bound durable push consumer (filter `<stream>.<filt>`); the sid it delivers to."""
    sid = raw.subscribe(f"dlv.{stream}.{name}")
    if filt is not None:
        cfg["filter_subject"] = f"{stream}.{filt}"
    raw.add_consumer(stream, name, durable_name=name, deliver_subject=f"dlv.{stream}.{name}",
                     ack_policy=ack, **cfg)
    return sid


def pull(raw: RawJS, stream: str, name: str = "c", ack: str = "explicit",
         filt: str | None = "a", **cfg) -> None:
    if filt is not None:
        cfg["filter_subject"] = f"{stream}.{filt}"
    raw.add_consumer(stream, name, durable_name=name, ack_policy=ack, **cfg)


# Filters skipping messages


@pytest.mark.parametrize("ack", ["explicit", "all", "none"])
def test_caught_up_push_consumer_moves_past_what_its_filter_skips(raw, uniq, impl, ack):
    """The Go client's durable push flow: messages first, then the consumer."""
    s = f"{uniq}{ack[0]}"
    raw.add_stream(s, [f"{s}.*"])
    publish(raw, s, "abb")
    sid = push(raw, s, ack=ack)
    first = raw.next(sid)
    assert first.ack()["pending"] == 0
    live = moves_past(impl)
    d = (1, 3) if live else (1, 1)
    if ack == "none":
        assert settled(raw, s, "c", pos(d, (1, 1))) == pos(d, (1, 1))
    else:
        assert settled(raw, s, "c", pos(d, (0, 0), ap=1)) == pos(d, (0, 0), ap=1)
        raw.ack(first)
        # Explicit: nothing left pending, the floor is `delivered`; all: the message acked.
        floor = d if ack == "explicit" else (1, 1)
        assert position(raw, s, "c") == pos(d, floor)
    # A message the filter does not take does not wake the consumer: nothing moves.
    publish(raw, s, "b")
    floor = d if ack == "explicit" else (1, 1)
    assert steady(raw, s, "c") == pos(d, floor)
    # The next matching message is delivered; after it the consumer looks again.
    publish(raw, s, "a")
    nxt = raw.next(sid)
    assert nxt.ack()["sseq"] == 5
    if ack == "none":
        assert settled(raw, s, "c", pos((2, 5), (2, 5))) == pos((2, 5), (2, 5))
    else:
        assert settled(raw, s, "c", pos((2, 5), floor, ap=1)) == pos((2, 5), floor, ap=1)
        raw.ack(nxt)
        assert position(raw, s, "c") == pos((2, 5), (2, 5))


def test_pull_consumer_looks_only_for_a_waiting_request(raw, uniq, impl):
    raw.add_stream(uniq, [f"{uniq}.*"])
    pull(raw, uniq)
    publish(raw, uniq, "abb")
    assert position(raw, uniq, "c") == pos((0, 0), (0, 0), np=1)
    # A batch of one is filled by the first message: the consumer does not look further.
    got = raw.next(raw.pull(uniq, "c", {"batch": 1}))
    assert settled(raw, uniq, "c", pos((1, 1), (0, 0), ap=1)) == pos((1, 1), (0, 0), ap=1)
    raw.ack(got)
    assert position(raw, uniq, "c") == pos((1, 1), (1, 1))
    # no_wait with nothing pending is answered at once, without looking.
    status = raw.next(raw.pull(uniq, "c", {"batch": 1, "no_wait": True}))
    assert status.status_line == "NATS/1.0 404 No Messages"
    assert steady(raw, uniq, "c") == pos((1, 1), (1, 1))
    # A request that waits makes it look: past the two non-matching messages.
    sid = raw.pull(uniq, "c", {"batch": 1, "expires": 3_000_000_000})
    d = (1, 3) if moves_past(impl) else (1, 1)
    assert settled(raw, uniq, "c", pos(d, (1, 1))) == pos(d, (1, 1))
    publish(raw, uniq, "b")
    assert steady(raw, uniq, "c") == pos(d, (1, 1))
    publish(raw, uniq, "a")
    got = raw.next(sid)
    assert got.ack()["sseq"] == 5
    assert settled(raw, uniq, "c", pos((2, 5), (1, 1), ap=1)) == pos((2, 5), (1, 1), ap=1)
    publish(raw, uniq, "b")
    raw.ack(got)
    assert position(raw, uniq, "c") == pos((2, 5), (2, 5))


def test_pull_batch_larger_than_what_matches(raw, uniq, impl):
    raw.add_stream(uniq, [f"{uniq}.*"])
    pull(raw, uniq)
    publish(raw, uniq, "abab")
    sid = raw.pull(uniq, "c", {"batch": 5, "expires": 3_000_000_000})
    first, second = raw.next(sid), raw.next(sid)
    assert [first.ack()["sseq"], second.ack()["sseq"]] == [1, 3]
    d = (2, 4) if moves_past(impl) else (2, 3)
    assert settled(raw, uniq, "c", pos(d, (0, 0), ap=2)) == pos(d, (0, 0), ap=2)
    raw.ack(second)  # out of order: the floor stays
    assert position(raw, uniq, "c") == pos(d, (0, 0), ap=1)
    raw.ack(first)
    assert position(raw, uniq, "c") == pos(d, d)


def test_ack_none_floor_is_the_last_message_delivered(raw, uniq, impl):
    raw.add_stream(uniq, [f"{uniq}.*"])
    pull(raw, uniq, ack="none")
    publish(raw, uniq, "bb")
    status = raw.next(raw.pull(uniq, "c", {"batch": 1, "no_wait": True}))
    assert status.status_line == "NATS/1.0 404 No Messages"
    assert steady(raw, uniq, "c") == pos((0, 0), (0, 0))
    sid = raw.pull(uniq, "c", {"batch": 1, "expires": 3_000_000_000})
    d = (0, 2) if moves_past(impl) else (0, 0)
    # The position moves, the floor (the last message delivered) does not.
    assert settled(raw, uniq, "c", pos(d, (0, 0))) == pos(d, (0, 0))
    publish(raw, uniq, "a")
    assert raw.next(sid).ack()["sseq"] == 3
    publish(raw, uniq, "b")
    assert settled(raw, uniq, "c", pos((1, 3), (1, 3))) == pos((1, 3), (1, 3))


def test_ack_all_floor_is_the_delivery_acknowledged(raw, uniq, impl):
    raw.add_stream(uniq, [f"{uniq}.*"])
    pull(raw, uniq, ack="all")
    publish(raw, uniq, "ababb")
    sid = raw.pull(uniq, "c", {"batch": 3, "expires": 3_000_000_000})
    first, second = raw.next(sid), raw.next(sid)
    d = (2, 5) if moves_past(impl) else (2, 3)
    assert settled(raw, uniq, "c", pos(d, (0, 0), ap=2)) == pos(d, (0, 0), ap=2)
    raw.ack(first)
    assert position(raw, uniq, "c") == pos(d, (1, 1), ap=1)
    raw.ack(second)
    # Exactly the message acknowledged, not the position (nothing is pending any more).
    assert position(raw, uniq, "c") == pos(d, (2, 3))
    raw.ack(first)  # below the floor: ignored
    assert position(raw, uniq, "c") == pos(d, (2, 3))


def test_ack_all_floor_takes_the_consumer_seq_of_the_redelivery(raw, uniq):
    raw.add_stream(uniq, [f"{uniq}.*"])
    publish(raw, uniq, "aaa")
    sid = push(raw, uniq, ack="all", filt=None, ack_wait=30_000_000_000)
    got = [raw.next(sid) for _ in range(3)]
    raw.ack(got[1], "-NAK")
    again = raw.next(sid)
    assert (again.ack()["sseq"], again.ack()["cseq"]) == (2, 4)
    assert settled(raw, uniq, "c", pos((4, 3), (0, 0), ap=3, rd=1)) == \
        pos((4, 3), (0, 0), ap=3, rd=1)
    raw.ack(got[0])
    assert position(raw, uniq, "c") == pos((4, 3), (1, 1), ap=2, rd=1)
    raw.ack(again)
    assert position(raw, uniq, "c") == pos((4, 3), (4, 2), ap=1)


def test_ack_all_term_acknowledges_everything_below(raw, uniq):
    raw.add_stream(uniq, [f"{uniq}.*"])
    publish(raw, uniq, "aaa")
    sid = push(raw, uniq, ack="all", filt=None, ack_wait=30_000_000_000)
    got = [raw.next(sid) for _ in range(3)]
    raw.ack(got[1], "+TERM")
    assert position(raw, uniq, "c") == pos((3, 3), (2, 2), ap=1)


def test_an_ack_with_nothing_pending_brings_the_floor_to_delivered(raw, uniq, impl):
    raw.add_stream(uniq, [f"{uniq}.*"])
    publish(raw, uniq, "abb")
    pull(raw, uniq)
    got = raw.next(raw.pull(uniq, "c", {"batch": 1}))
    raw.ack(got)
    raw.pull(uniq, "c", {"batch": 1, "expires": 1_000_000_000})
    d = (1, 3) if moves_past(impl) else (1, 1)
    assert settled(raw, uniq, "c", pos(d, (1, 1))) == pos(d, (1, 1))
    raw.ack(got)  # again: nothing pending, the floor follows `delivered`
    assert position(raw, uniq, "c") == pos(d, d)


def test_nak_and_redelivery_keep_the_position(raw, uniq, impl):
    raw.add_stream(uniq, [f"{uniq}.*"])
    publish(raw, uniq, "abb")
    sid = push(raw, uniq)
    got = raw.next(sid)
    live = moves_past(impl)
    d = (1, 3) if live else (1, 1)
    assert settled(raw, uniq, "c", pos(d, (0, 0), ap=1)) == pos(d, (0, 0), ap=1)
    raw.ack(got, "-NAK")
    again = raw.next(sid)
    assert again.ack()["delivered"] == 2
    d = (2, 3) if live else (2, 1)
    assert settled(raw, uniq, "c", pos(d, (0, 0), ap=1, rd=1)) == pos(d, (0, 0), ap=1, rd=1)
    raw.ack(again)
    assert position(raw, uniq, "c") == pos(d, d)


def test_a_redelivered_message_keeps_its_first_consumer_seq_for_the_floor(raw, uniq):
    """A redelivered message keeps the consumer seq of its first delivery for the floor."""
    raw.add_stream(uniq, [f"{uniq}.*"])
    publish(raw, uniq, "aaa")
    sid = push(raw, uniq, filt=None, ack_wait=30_000_000_000)
    got = [raw.next(sid) for _ in range(3)]
    raw.ack(got[0], "-NAK")
    again = raw.next(sid)
    raw.ack(again)
    assert position(raw, uniq, "c") == pos((4, 3), (1, 1), ap=2)
    raw.ack(got[1])
    assert position(raw, uniq, "c") == pos((4, 3), (2, 2), ap=1)
    raw.ack(got[2])
    assert position(raw, uniq, "c") == pos((4, 3), (4, 3))


def test_idle_heartbeat_makes_the_consumer_look(raw, uniq, impl):
    raw.add_stream(uniq, [f"{uniq}.*"])
    sid = push(raw, uniq, idle_heartbeat=100_000_000)
    publish(raw, uniq, "a")
    raw.ack(raw.next(sid, where=lambda f: f.reply is not None))
    publish(raw, uniq, "b")
    raw.flush()
    raw.take_all(sid)  # heartbeats from before the publish
    raw.next(sid, where=lambda f: f.status == "100")  # ticks after it
    raw.next(sid, where=lambda f: f.status == "100")
    d = (1, 2) if moves_past(impl) else (1, 1)
    assert settled(raw, uniq, "c", pos(d, (1, 1))) == pos(d, (1, 1))


def test_filter_subjects(raw, uniq, impl):
    if not v210(impl):
        pytest.skip("filter_subjects is new in nats-server 2.10")
    raw.add_stream(uniq, [f"{uniq}.*"])
    publish(raw, uniq, "abcabc")
    sid = raw.subscribe(f"dlv.{uniq}")
    raw.add_consumer(uniq, "c", durable_name="c", deliver_subject=f"dlv.{uniq}",
                     ack_policy="explicit", filter_subjects=[f"{uniq}.a", f"{uniq}.b"])
    got = [raw.next(sid) for _ in range(4)]
    assert [f.ack()["sseq"] for f in got] == [1, 2, 4, 5]
    d = (4, 6) if moves_past(impl) else (4, 5)
    assert settled(raw, uniq, "c", pos(d, (0, 0), ap=4)) == pos(d, (0, 0), ap=4)
    for frame in got:
        raw.ack(frame)
    assert position(raw, uniq, "c") == pos(d, d)
    publish(raw, uniq, "cb")
    got = raw.next(sid)
    assert got.ack()["sseq"] == 8
    assert settled(raw, uniq, "c", pos((5, 8), d, ap=1)) == pos((5, 8), d, ap=1)
    raw.ack(got)
    assert position(raw, uniq, "c") == pos((5, 8), (5, 8))


# Messages leaving the stream


def test_deleting_pending_messages_acknowledges_them(raw, uniq, impl):
    raw.add_stream(uniq, [f"{uniq}.*"])
    publish(raw, uniq, "aaaab")
    adv = raw.subscribe(f"{ADV}.MSG_TERMINATED.{uniq}.c")
    sid = push(raw, uniq, ack_wait=30_000_000_000)
    got = [raw.next(sid) for _ in range(4)]
    d = (4, 5) if moves_past(impl) else (4, 4)
    assert settled(raw, uniq, "c", pos(d, (0, 0), ap=4)) == pos(d, (0, 0), ap=4)
    # The oldest pending one: as an ack, the floor moves up to below the next pending.
    raw.api(f"STREAM.MSG.DELETE.{uniq}", {"seq": 1})
    assert settled(raw, uniq, "c", pos(d, (1, 1), ap=3)) == pos(d, (1, 1), ap=3)
    event = raw.next(adv).json()
    assert event.pop("reason", UNACKED_REMOVED) == UNACKED_REMOVED  # 2.9 gives no reason
    assert {k: event[k] for k in ("type", "consumer_seq", "stream_seq", "deliveries")} == {
        "type": "io.nats.jetstream.advisory.v1.terminated", "consumer_seq": 1, "stream_seq": 1,
        "deliveries": 1}
    # One in the middle: acknowledged, the floor stays.
    raw.api(f"STREAM.MSG.DELETE.{uniq}", {"seq": 3})
    assert settled(raw, uniq, "c", pos(d, (1, 1), ap=2)) == pos(d, (1, 1), ap=2)
    raw.ack(got[1])  # the floor passes the deleted 3 up to below 4
    assert position(raw, uniq, "c") == pos(d, (3, 3), ap=1)
    raw.ack(got[3])
    assert position(raw, uniq, "c") == pos(d, d)


def test_deleting_a_pending_message_of_an_ack_all_consumer(raw, uniq):
    raw.add_stream(uniq, [f"{uniq}.*"])
    publish(raw, uniq, "aaaa")
    sid = push(raw, uniq, ack="all", filt=None, ack_wait=30_000_000_000)
    [raw.next(sid) for _ in range(4)]
    raw.api(f"STREAM.MSG.DELETE.{uniq}", {"seq": 3})
    assert settled(raw, uniq, "c", pos((4, 4), (3, 3), ap=1)) == pos((4, 4), (3, 3), ap=1)


def test_deleted_last_message_counts_for_the_position(raw, uniq, impl):
    raw.add_stream(uniq, [f"{uniq}.*"])
    publish(raw, uniq, "aaa")
    raw.api(f"STREAM.MSG.DELETE.{uniq}", {"seq": 3})
    sid = push(raw, uniq, filt=None)
    got = [raw.next(sid) for _ in range(2)]
    d = (2, 3) if moves_past(impl) else (2, 2)
    assert settled(raw, uniq, "c", pos(d, (0, 0), ap=2)) == pos(d, (0, 0), ap=2)
    raw.ack(got[1])
    raw.ack(got[0])
    assert position(raw, uniq, "c") == pos(d, d)


def test_purge_acknowledges_what_was_pending(raw, uniq, impl):
    raw.add_stream(uniq, [f"{uniq}.*"])
    publish(raw, uniq, "abab")
    sid = push(raw, uniq)
    [raw.next(sid) for _ in range(2)]
    d = (2, 4) if moves_past(impl) else (2, 3)
    assert settled(raw, uniq, "c", pos(d, (0, 0), ap=2)) == pos(d, (0, 0), ap=2)
    raw.api(f"STREAM.PURGE.{uniq}")
    assert settled(raw, uniq, "c", pos((2, 4), (2, 4))) == pos((2, 4), (2, 4))
    publish(raw, uniq, "b")
    assert steady(raw, uniq, "c") == pos((2, 4), (2, 4))
    publish(raw, uniq, "a")
    got = raw.next(sid)
    assert got.ack()["sseq"] == 6
    assert settled(raw, uniq, "c", pos((3, 6), (2, 4), ap=1)) == pos((3, 6), (2, 4), ap=1)
    raw.ack(got)
    assert position(raw, uniq, "c") == pos((3, 6), (3, 6))


def test_purge_of_the_filtered_subject(raw, uniq, impl):
    raw.add_stream(uniq, [f"{uniq}.*"])
    publish(raw, uniq, "abab")
    sid = push(raw, uniq)
    [raw.next(sid) for _ in range(2)]
    d = (2, 4) if moves_past(impl) else (2, 3)
    assert settled(raw, uniq, "c", pos(d, (0, 0), ap=2)) == pos(d, (0, 0), ap=2)
    raw.api(f"STREAM.PURGE.{uniq}", {"filter": f"{uniq}.b"})  # not what the consumer takes
    assert steady(raw, uniq, "c") == pos(d, (0, 0), ap=2)
    raw.api(f"STREAM.PURGE.{uniq}", {"filter": f"{uniq}.a"})
    assert settled(raw, uniq, "c", pos((2, 4), (2, 4))) == pos((2, 4), (2, 4))
    publish(raw, uniq, "a")
    assert raw.next(sid).ack()["sseq"] == 5
    assert settled(raw, uniq, "c", pos((3, 5), (2, 4), ap=1)) == pos((3, 5), (2, 4), ap=1)


def test_purge_up_to_a_sequence(raw, uniq, impl):
    raw.add_stream(uniq, [f"{uniq}.*"])
    publish(raw, uniq, "ababa")
    sid = push(raw, uniq)
    [raw.next(sid) for _ in range(3)]
    assert settled(raw, uniq, "c", pos((3, 5), (0, 0), ap=3)) == pos((3, 5), (0, 0), ap=3)
    raw.api(f"STREAM.PURGE.{uniq}", {"seq": 3})
    raw.api(f"STREAM.PURGE.{uniq}", {"keep": 1})
    # 2.10: what was pending below the new first sequence counts as acknowledged. 2.9 purges
    # a filtered consumer's state only for a purge that names no subject, sequence or keep.
    expected = pos((3, 5), (2, 4), ap=1) if v210(impl) else pos((3, 5), (0, 0), ap=3)
    assert settled(raw, uniq, "c", expected) == expected


@pytest.mark.parametrize("how", [{}, {"filter": "{s}.a"}])
def test_purge_moves_an_idle_consumer_to_the_new_first_sequence(raw, uniq, impl, how, request):
    s = f"{uniq}{len(how)}"
    raw.add_stream(s, [f"{s}.*"])
    publish(raw, s, "abab")
    pull(raw, s)
    raw.api(f"STREAM.PURGE.{s}", {k: v.format(s=s) for k, v in how.items()})
    assert settled(raw, s, "c", pos((0, 4), (0, 4))) == pos((0, 4), (0, 4))


def test_limits_removing_pending_messages(raw, uniq, impl):
    raw.add_stream(uniq, [f"{uniq}.*"], max_msgs=3)
    sid = push(raw, uniq, ack_wait=30_000_000_000)
    publish(raw, uniq, "aa")
    [raw.next(sid) for _ in range(2)]
    assert settled(raw, uniq, "c", pos((2, 2), (0, 0), ap=2)) == pos((2, 2), (0, 0), ap=2)
    publish(raw, uniq, "bb")  # message 1 goes
    assert settled(raw, uniq, "c", pos((2, 2), (1, 1), ap=1)) == pos((2, 2), (1, 1), ap=1)
    publish(raw, uniq, "b")  # message 2 goes: nothing pending
    assert settled(raw, uniq, "c", pos((2, 2), (2, 2))) == pos((2, 2), (2, 2))


def test_limits_leave_an_idle_consumer_where_it_is(raw, uniq, impl):
    raw.add_stream(uniq, [f"{uniq}.*"], max_msgs=2)
    pull(raw, uniq)
    publish(raw, uniq, "abbb")
    assert steady(raw, uniq, "c") == pos((0, 0), (0, 0))
    raw.pull(uniq, "c", {"batch": 1, "expires": 2_000_000_000})
    d = (0, 4) if moves_past(impl) else (0, 0)
    assert settled(raw, uniq, "c", pos(d, (0, 0))) == pos(d, (0, 0))


def test_max_age_removing_a_pending_message(raw, uniq, impl):
    raw.add_stream(uniq, [f"{uniq}.*"], max_age=1_000_000_000)
    publish(raw, uniq, "ab")
    sid = push(raw, uniq, ack_wait=30_000_000_000)
    raw.next(sid)
    d = (1, 2) if moves_past(impl) else (1, 1)
    assert settled(raw, uniq, "c", pos(d, (0, 0), ap=1)) == pos(d, (0, 0), ap=1)
    assert settled(raw, uniq, "c", pos(d, d), timeout=5) == pos(d, d)


def test_interest_retention_with_filtered_consumers(raw, uniq):
    raw.add_stream(uniq, [f"{uniq}.*"], retention="interest")
    sa = push(raw, uniq, "ca")
    sb = push(raw, uniq, "cb", filt="b")
    # ca takes both a's before the last b exists: whether its search after the second a still
    # finds the stream ending at 3 would otherwise be a race (on nats-server too).
    publish(raw, uniq, "aba")
    fa = [raw.next(sa) for _ in range(2)]
    assert settled(raw, uniq, "ca", pos((2, 3), (0, 0), ap=2)) == pos((2, 3), (0, 0), ap=2)
    publish(raw, uniq, "b")
    fb = [raw.next(sb) for _ in range(2)]
    assert settled(raw, uniq, "cb", pos((2, 4), (0, 0), ap=2)) == pos((2, 4), (0, 0), ap=2)
    assert position(raw, uniq, "ca") == pos((2, 3), (0, 0), ap=2)  # a b does not wake it
    for frame in fa:
        raw.ack(frame)
    assert position(raw, uniq, "ca") == pos((2, 3), (2, 3))
    assert raw.stream_state(uniq)["messages"] == 2
    for frame in fb:
        raw.ack(frame)
    assert position(raw, uniq, "cb") == pos((2, 4), (2, 4))
    assert position(raw, uniq, "ca") == pos((2, 3), (2, 3))  # b's do not wake it
    publish(raw, uniq, "b")
    raw.ack(raw.next(sb))
    assert position(raw, uniq, "cb") == pos((3, 5), (3, 5))
    assert steady(raw, uniq, "ca") == pos((2, 3), (2, 3))


def test_interest_retention_with_an_ack_none_consumer(raw, uniq):
    raw.add_stream(uniq, [f"{uniq}.*"], retention="interest")
    sa = push(raw, uniq, "ca", ack="none")
    sb = push(raw, uniq, "cb", filt="b")
    publish(raw, uniq, "aab")
    [raw.next(sa) for _ in range(2)]
    got = raw.next(sb)
    assert settled(raw, uniq, "ca", pos((2, 2), (2, 2))) == pos((2, 2), (2, 2))
    assert settled(raw, uniq, "cb", pos((1, 3), (0, 0), ap=1)) == pos((1, 3), (0, 0), ap=1)
    assert raw.stream_state(uniq)["messages"] == 1
    raw.ack(got)
    assert position(raw, uniq, "cb") == pos((1, 3), (1, 3))
    assert raw.stream_state(uniq)["messages"] == 0


def test_workqueue_with_a_filtered_consumer(raw, uniq, impl):
    raw.add_stream(uniq, [f"{uniq}.*"], retention="workqueue")
    publish(raw, uniq, "abab")
    pull(raw, uniq, "ca")
    sid = raw.pull(uniq, "ca", {"batch": 5, "expires": 2_000_000_000})
    got = [raw.next(sid) for _ in range(2)]
    d = (2, 4) if moves_past(impl) else (2, 3)
    assert settled(raw, uniq, "ca", pos(d, (0, 0), ap=2)) == pos(d, (0, 0), ap=2)
    for frame in got:
        raw.ack(frame)
    assert position(raw, uniq, "ca") == pos(d, d)
    state = raw.stream_state(uniq)
    assert (state["messages"], state["first_seq"], state["num_deleted"]) == (2, 2, 1)


# Restart


def test_position_after_a_restart(impl, is_oracle, uniq, tmp_path, request):
    """nats-server stores what it delivered and what was acknowledged, not where it looked:
    after a restart it reports the stored state until it looks (and is acked) again. The broker
    stores the position it moved to as well."""
    store = tmp_path / "store"
    servers = []

    def start() -> RawJS:
        srv = _launch(impl, tmp_path / f"run{len(servers)}", ["-js", "-sd", str(store)])
        servers.append(srv)
        return RawJS(srv, oracle=is_oracle)

    request.addfinalizer(lambda: [srv.stop() for srv in servers])
    raw = start()
    raw.add_stream(uniq, [f"{uniq}.*"])
    publish(raw, uniq, "abb")
    sid = push(raw, uniq)
    got = raw.next(sid)
    live = moves_past(impl)
    d = (1, 3) if live else (1, 1)
    assert settled(raw, uniq, "c", pos(d, (0, 0), ap=1)) == pos(d, (0, 0), ap=1)
    raw.ack(got)
    pull(raw, uniq, "n", ack="none")
    raw.next(raw.pull(uniq, "n", {"batch": 2, "expires": 500_000_000}))
    assert settled(raw, uniq, "n", pos(d, (1, 1))) == pos(d, (1, 1))
    raw.close()
    servers[-1].stop()
    raw = start()
    request.addfinalizer(raw.close)
    persisted = impl.name == "broker"
    stored = d if persisted else (1, 1)
    assert position(raw, uniq, "c") == pos(stored, stored)
    assert position(raw, uniq, "n") == pos(stored, (1, 1))
    raw.subscribe(f"dlv.{uniq}.c")  # bound again: it looks
    assert settled(raw, uniq, "c", pos(d, stored)) == pos(d, stored)
