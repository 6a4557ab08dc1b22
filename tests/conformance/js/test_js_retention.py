"""Retention policies: workqueue, interest and limits."""

from __future__ import annotations

import pytest

from ..conftest import since
from .jsutil import api_error

pytestmark = pytest.mark.conformance(area="js-retention")

CREATE = "consumer_create_response"


def make(raw, stream: str, retention: str, n: int = 0, subjects=None) -> None:
    raw.add_stream(stream, [f"{stream}.>"], retention=retention)
    for i, subject in enumerate(subjects or [f"{stream}.a"] * n, 1):
        assert raw.pub(subject, f"m{i}") == {"stream": stream, "seq": i}


def consumer(raw, stream: str, name: str, **cfg) -> dict:
    body = {"stream_name": stream, "config": {"durable_name": name} | cfg}
    return raw.api(f"CONSUMER.CREATE.{stream}.{name}", body)


def fetch(raw, stream: str, name: str, n: int):
    sid = raw.pull(stream, name, {"batch": n})
    return [raw.next(sid) for _ in range(n)]


def state(raw, stream: str) -> tuple:
    s = raw.stream_state(stream)
    return s["messages"], s["first_seq"], s["last_seq"], s.get("num_deleted", 0)


# -- workqueue ------------------------------------------------------------------------------------


def test_workqueue_removes_on_ack(raw, uniq):
    make(raw, uniq, "workqueue", n=3)
    assert "error" not in consumer(raw, uniq, "w", ack_policy="explicit")
    m = fetch(raw, uniq, "w", 3)
    assert state(raw, uniq) == (3, 1, 3, 0)  # delivered is not enough
    raw.ack(m[1])
    assert state(raw, uniq) == (2, 1, 3, 1)
    raw.ack(m[0], b"-NAK")  # a NAK keeps it
    raw.ack(m[2], b"+TERM")  # a TERM counts as an ack
    assert state(raw, uniq) == (1, 1, 3, 2)
    (again,) = fetch(raw, uniq, "w", 1)
    raw.ack(again)
    assert state(raw, uniq) == (0, 4, 3, 0)
    assert raw.consumer_info(uniq, "w")["num_pending"] == 0


def test_workqueue_consumer_rules(impl, raw, uniq):
    make(raw, uniq, "workqueue")
    assert consumer(raw, uniq, "c0", ack_policy="none") == api_error(
        CREATE,
        400,
        10084,
        "consumer in pull mode requires explicit ack policy on workqueue stream"
        if since(impl, (2, 11))
        else "consumer in pull mode requires ack policy",
    )
    assert consumer(raw, uniq, "c1", ack_policy="all") == api_error(
        CREATE, 400, 10098, "workqueue stream requires explicit ack"
    )
    assert consumer(raw, uniq, "c2", deliver_subject="x.c2", ack_policy="none") == api_error(
        CREATE, 400, 10098, "workqueue stream requires explicit ack"
    )
    assert consumer(raw, uniq, "c3", ack_policy="explicit", deliver_policy="new") == api_error(
        CREATE, 400, 10101, "consumer must be deliver all on workqueue stream"
    )
    assert "error" not in consumer(raw, uniq, "w1", ack_policy="explicit")
    unfiltered = api_error(
        CREATE, 400, 10099, "multiple non-filtered consumers not allowed on workqueue stream"
    )
    assert consumer(raw, uniq, "w2", ack_policy="explicit") == unfiltered
    ephemeral = raw.api(
        f"CONSUMER.CREATE.{uniq}", {"stream_name": uniq, "config": {"ack_policy": "explicit"}}
    )
    assert ephemeral == unfiltered
    # Updating the existing consumer is fine.
    assert (
        consumer(raw, uniq, "w1", ack_policy="explicit", max_deliver=3)["config"]["max_deliver"]
        == 3
    )
    raw.api(f"CONSUMER.DELETE.{uniq}.w1")
    assert "error" not in consumer(raw, uniq, "w2", ack_policy="explicit")


def test_workqueue_filtered_consumers_must_not_overlap(raw, uniq):
    make(raw, uniq, "workqueue")
    assert "error" not in consumer(
        raw, uniq, "f1", ack_policy="explicit", filter_subject=f"{uniq}.a.*"
    )
    not_unique = api_error(CREATE, 400, 10100, "filtered consumer not unique on workqueue stream")
    for filt in (f"{uniq}.a.b", f"{uniq}.>", f"{uniq}.a.*", f"{uniq}.*.*", f"{uniq}.a.>"):
        assert consumer(raw, uniq, "f2", ack_policy="explicit", filter_subject=filt) == not_unique
    assert "error" not in consumer(
        raw, uniq, "f3", ack_policy="explicit", filter_subject=f"{uniq}.b"
    )
    assert consumer(raw, uniq, "f4", ack_policy="explicit") == api_error(
        CREATE, 400, 10099, "multiple non-filtered consumers not allowed on workqueue stream"
    )


@pytest.mark.nats_quirk
def test_workqueue_filter_overlap_means_subset(impl, raw, uniq):
    # "Overlap" is checked as subset-either-way, not as intersection: a.* and *.b share a.b but
    # neither contains the other, so both are accepted (2.9.10 and 2.10.0). 2.10.14 (the fix is
    # not in 2.10.12; the mirror has no 2.10.13 tag) refuses filters that intersect, and so does
    # the broker (compat.md: a message matching both would go to two workers).
    make(raw, uniq, "workqueue")
    assert "error" not in consumer(
        raw, uniq, "f1", ack_policy="explicit", filter_subject=f"{uniq}.a.*"
    )
    second = consumer(raw, uniq, "f2", ack_policy="explicit", filter_subject=f"{uniq}.*.b")
    if impl.name == "broker" or since(impl, (2, 10, 14)):
        assert second == api_error(
            CREATE, 400, 10100, "filtered consumer not unique on workqueue stream"
        )
    else:
        assert "error" not in second


def test_workqueue_keeps_message_after_max_deliver(raw, uniq):
    make(raw, uniq, "workqueue", n=1)
    consumer(raw, uniq, "w", ack_policy="explicit", ack_wait=150_000_000, max_deliver=1)
    adv = raw.subscribe(f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{uniq}.w")
    fetch(raw, uniq, "w", 1)
    sid = raw.pull(uniq, "w", {"batch": 1, "expires": 500_000_000})
    assert raw.next(adv, timeout=3).json()["stream_seq"] == 1
    assert raw.next(sid, timeout=3).status == "408"
    assert state(raw, uniq) == (1, 1, 1, 0)


# -- interest --------------------------------------------------------------------------------------


def test_interest_without_consumers_keeps_nothing(raw, uniq):
    make(raw, uniq, "interest", n=2)  # PubAcks still give sequences 1 and 2
    assert state(raw, uniq) == (0, 3, 2, 0)


def test_interest_removed_when_every_consumer_acked(raw, uniq):
    make(raw, uniq, "interest")
    consumer(raw, uniq, "c1", ack_policy="explicit")
    consumer(raw, uniq, "c2", ack_policy="explicit")
    for i in range(1, 3):
        raw.pub(f"{uniq}.a", f"m{i}")
    m1 = fetch(raw, uniq, "c1", 2)
    m2 = fetch(raw, uniq, "c2", 2)
    raw.ack(m1[0])
    assert state(raw, uniq) == (2, 1, 2, 0)
    raw.ack(m2[0])
    assert state(raw, uniq) == (1, 2, 2, 0)
    # Deleting a consumer that still holds an unacked message releases it.
    raw.ack(m2[1])
    assert state(raw, uniq) == (1, 2, 2, 0)
    raw.api(f"CONSUMER.DELETE.{uniq}.c1")
    assert state(raw, uniq) == (0, 3, 2, 0)


def test_interest_respects_consumer_filters(raw, uniq):
    make(raw, uniq, "interest")
    consumer(raw, uniq, "fa", ack_policy="explicit", filter_subject=f"{uniq}.a")
    raw.pub(f"{uniq}.a", "x")
    raw.pub(f"{uniq}.b", "y")  # no consumer is interested in .b: not kept (a gap at seq 2)
    assert state(raw, uniq) == (1, 1, 2, 1)
    (m,) = fetch(raw, uniq, "fa", 1)
    raw.ack(m)
    assert state(raw, uniq) == (0, 3, 2, 0)


def test_interest_with_ack_none_consumer(raw, uniq):
    make(raw, uniq, "interest")
    consumer(raw, uniq, "n", ack_policy="none")
    raw.pub(f"{uniq}.a", "x")
    assert state(raw, uniq) == (1, 1, 1, 0)
    fetch(raw, uniq, "n", 1)  # delivered counts as acked
    assert state(raw, uniq) == (0, 2, 1, 0)


# -- limits ----------------------------------------------------------------------------------------


def test_limits_keeps_acked_messages(raw, uniq):
    make(raw, uniq, "limits", n=2)
    consumer(raw, uniq, "c", ack_policy="explicit")
    for m in fetch(raw, uniq, "c", 2):
        raw.ack(m)
    assert state(raw, uniq) == (2, 1, 2, 0)
    # A second unfiltered consumer is fine and starts from the beginning.
    assert consumer(raw, uniq, "d", ack_policy="explicit")["num_pending"] == 2
