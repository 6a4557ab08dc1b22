"""Publishing into a stream: PubAck bytes, dedupe, expectation headers, limits, rollups."""

from __future__ import annotations

import pytest

from ..conftest import since
from .jsutil import API, pub_error, wait_until

pytestmark = pytest.mark.conformance(area="js-publish")


def test_puback_json(raw):
    raw.add_stream("PA", ["pa.>"])
    assert raw.pub("pa.x", "hello") == {"stream": "PA", "seq": 1}
    assert raw.pub("pa.y", "") == {"stream": "PA", "seq": 2}
    # Fire-and-forget (no reply subject) is stored too, without an answer.
    raw.publish("pa.z", b"quiet")
    assert raw.pub("pa.x", "again") == {"stream": "PA", "seq": 4}


@pytest.mark.nats_quirk
def test_puback_exact_bytes(impl, raw):
    # The PubAck is hand-written JSON with a space after the comma, and it is delivered with an
    # empty reply field, which leaves two spaces before the size on the MSG line. 2.10.0 sends
    # one space there (its stream's send loop leaves an empty reply out); 2.12 drops the space
    # after the comma.
    raw.add_stream("PB", ["pb"])
    f = raw.request("pb", b"x")
    payload = b'{"stream":"PB","seq":1}' if since(impl, (2, 12)) else b'{"stream":"PB", "seq":1}'
    gap = " " if since(impl, (2, 10)) else "  "
    assert f.line == f"MSG {f.subject} {raw.api_sid}{gap}{len(payload)}\r\n".encode()
    assert f.payload == payload


def test_dedupe(raw):
    raw.add_stream("DD", ["dd"])
    assert raw.pub("dd", "a", headers={"Nats-Msg-Id": "id1"}) == {"stream": "DD", "seq": 1}
    assert raw.pub("dd", "b", headers={"Nats-Msg-Id": "id2"}) == {"stream": "DD", "seq": 2}
    dup = raw.request("dd", "c", headers={"Nats-Msg-Id": "id1"})
    # The original sequence, with duplicate:true; nothing is stored.
    assert dup.json() == {"stream": "DD", "seq": 1, "duplicate": True}
    assert raw.stream_state("DD")["messages"] == 2


@pytest.mark.nats_quirk
def test_dedupe_exact_bytes(impl, raw):
    raw.add_stream("DDB", ["ddb"])
    raw.pub("ddb", "a", headers={"Nats-Msg-Id": "x"})
    dup = raw.request("ddb", "a", headers={"Nats-Msg-Id": "x"})
    comma = "," if since(impl, (2, 12)) else ", "  # 2.12 drops the space after the first comma
    assert dup.payload == f'{{"stream":"DDB"{comma}"seq":1,"duplicate": true}}'.encode()


def test_expected_stream(raw):
    raw.add_stream("ES", ["es"])
    assert raw.pub("es", "x", headers={"Nats-Expected-Stream": "ES"}) == {"stream": "ES", "seq": 1}
    assert raw.pub("es", "x", headers={"Nats-Expected-Stream": "ZZ"}) == pub_error(
        "ES", 400, 10060, "expected stream does not match"
    )


def test_expected_last_msg_id(raw):
    raw.add_stream("EM", ["em"])
    # Nothing stored yet: the "last msg id" is empty.
    assert raw.pub("em", "x", headers={"Nats-Expected-Last-Msg-Id": "nope"}) == pub_error(
        "EM", 400, 10070, "wrong last msg ID: "
    )
    raw.pub("em", "1", headers={"Nats-Msg-Id": "a"})
    ok = raw.pub("em", "2", headers={"Nats-Expected-Last-Msg-Id": "a", "Nats-Msg-Id": "b"})
    assert ok == {"stream": "EM", "seq": 2}
    assert raw.pub("em", "3", headers={"Nats-Expected-Last-Msg-Id": "a"}) == pub_error(
        "EM", 400, 10070, "wrong last msg ID: b"
    )
    # A message stored without an id clears the last msg id.
    raw.pub("em", "4")
    assert raw.pub("em", "5", headers={"Nats-Expected-Last-Msg-Id": "b"}) == pub_error(
        "EM", 400, 10070, "wrong last msg ID: "
    )


def test_expected_last_sequence(raw):
    raw.add_stream("EL", ["el.*"])
    assert raw.pub("el.a", "x", headers={"Nats-Expected-Last-Sequence": "7"}) == pub_error(
        "EL", 400, 10071, "wrong last sequence: 0"
    )
    assert raw.pub("el.a", "x", headers={"Nats-Expected-Last-Sequence": "0"}) == {
        "stream": "EL",
        "seq": 1,
    }
    raw.pub("el.b", "x")
    assert raw.pub("el.a", "x", headers={"Nats-Expected-Last-Sequence": "1"}) == pub_error(
        "EL", 400, 10071, "wrong last sequence: 2"
    )
    assert raw.pub("el.a", "x", headers={"Nats-Expected-Last-Sequence": "2"})["seq"] == 3


def test_expected_last_subject_sequence(raw):
    raw.add_stream("EP", ["ep.*"])
    h = "Nats-Expected-Last-Subject-Sequence"
    assert raw.pub("ep.a", "x", headers={h: "0"}) == {"stream": "EP", "seq": 1}
    assert raw.pub("ep.b", "x", headers={h: "0"}) == {"stream": "EP", "seq": 2}
    # 0 means "no message on this subject yet": refused now, with the subject's last sequence.
    assert raw.pub("ep.a", "x", headers={h: "0"}) == pub_error(
        "EP", 400, 10071, "wrong last sequence: 1"
    )
    assert raw.pub("ep.a", "x", headers={h: "2"}) == pub_error(
        "EP", 400, 10071, "wrong last sequence: 1"
    )
    assert raw.pub("ep.c", "x", headers={h: "5"}) == pub_error(
        "EP", 400, 10071, "wrong last sequence: 0"
    )
    assert raw.pub("ep.a", "x", headers={h: "1"}) == {"stream": "EP", "seq": 3}


def test_max_msg_size_counts_headers(raw):
    raw.add_stream("MS", ["ms"], max_msg_size=10)
    too_big = pub_error("MS", 400, 10054, "message size exceeds maximum allowed")
    assert raw.pub("ms", "x" * 10) == {"stream": "MS", "seq": 1}
    assert raw.pub("ms", "x" * 11) == too_big
    # Headers count toward max_msg_size: 1 byte of payload plus a header block is too much.
    assert raw.pub("ms", "x", headers={"A": "b"}) == too_big
    assert raw.stream_state("MS")["messages"] == 1


def test_discard_new_limits(raw):
    raw.add_stream("DN", ["dn"], max_msgs=2, discard="new")
    raw.pub("dn", "1")
    raw.pub("dn", "2")
    assert raw.pub("dn", "3") == pub_error("DN", 503, 10077, "maximum messages exceeded")
    raw.add_stream("DB", ["db"], max_bytes=100, discard="new")
    assert raw.pub("db", "x" * 60) == {"stream": "DB", "seq": 1}
    assert raw.pub("db", "x" * 60) == pub_error("DB", 503, 10077, "maximum bytes exceeded")
    # A failed store does not use up a sequence number.
    raw.api("STREAM.PURGE.DN")
    assert raw.pub("dn", "4") == {"stream": "DN", "seq": 3}
    # discard:new does not apply per subject (discard_new_per_subject is 2.10): oldest dropped.
    raw.add_stream("DS", ["ds"], max_msgs_per_subject=1, discard="new")
    assert raw.pub("ds", "1") == {"stream": "DS", "seq": 1}
    assert raw.pub("ds", "2") == {"stream": "DS", "seq": 2}
    state = raw.stream_state("DS")
    assert (state["messages"], state["first_seq"]) == (1, 2)


def test_discard_old_limits(raw):
    raw.add_stream("DO", ["do.*"], max_msgs=2, max_msgs_per_subject=1)
    for i, subject in enumerate(["do.a", "do.a", "do.b", "do.c"], 1):
        assert raw.pub(subject, "x") == {"stream": "DO", "seq": i}
    state = raw.stream_state("DO")
    assert (state["messages"], state["first_seq"], state["last_seq"]) == (2, 3, 4)


def test_sealed_stream_refuses_publish(raw):
    raw.add_stream("SE", ["se"])
    raw.pub("se", "x")
    raw.api("STREAM.UPDATE.SE", {"name": "SE", "subjects": ["se"], "sealed": True})
    assert raw.pub("se", "y") == pub_error("SE", 400, 10109, "invalid operation on sealed stream")
    assert raw.stream_state("SE")["messages"] == 1


def test_rollup(raw):
    raw.add_stream("RN", ["rn.*"])
    assert raw.pub("rn.a", "x", headers={"Nats-Rollup": "sub"}) == pub_error(
        "RN", 500, 10111, "rollup not permitted"
    )
    raw.add_stream("RU", ["ru.*"], allow_rollup_hdrs=True)
    for subject in ["ru.a", "ru.a", "ru.b", "ru.a"]:
        raw.pub(subject, "x")
    assert raw.pub("ru.a", "r", headers={"Nats-Rollup": "sub"}) == {"stream": "RU", "seq": 5}
    state = raw.api("STREAM.INFO.RU", {"subjects_filter": ">"})["state"]
    assert (state["messages"], state["subjects"]) == (2, {"ru.a": 1, "ru.b": 1})
    assert raw.pub("ru.c", "r", headers={"Nats-Rollup": "all"}) == {"stream": "RU", "seq": 6}
    state = raw.stream_state("RU")
    assert (state["messages"], state["first_seq"], state["last_seq"]) == (1, 6, 6)


@pytest.mark.nats_quirk
def test_rollup_with_invalid_value_gets_no_reply(impl, raw):
    # 2.9.10 (and 2.10.0) drop the message without any PubAck; 2.11 answers 10111 (compat.md
    # asks for that too). The next publish's PubAck arrives, and shows that nothing was stored.
    raw.add_stream("RB", ["rb"], allow_rollup_hdrs=True)
    r1, r2 = raw.inbox(), raw.inbox()
    raw.publish("rb", b"x", reply=r1, headers={"Nats-Rollup": "bogus"})
    raw.publish("rb", b"y", reply=r2)
    if since(impl, (2, 11)):
        assert raw.next(raw.api_sid, subject=r1).json() == pub_error(
            "RB", 500, 10111, 'rollup value invalid: "bogus"'
        )
    assert raw.next(raw.api_sid, subject=r2).json() == {"stream": "RB", "seq": 1}
    raw.flush()
    assert not [f for f in raw.backlog if f.subject == r1]


def test_no_ack_stream_sends_no_puback(raw):
    raw.add_stream("NA", ["na"], no_ack=True)
    r1 = raw.inbox()
    raw.publish("na", b"x", reply=r1)
    # Without a PubAck nothing says when the message is stored (2.15.1 may answer the INFO first).
    wait_until(lambda: raw.api("STREAM.INFO.NA")["state"]["messages"] == 1, 3, "1 message")
    raw.flush()
    assert not [f for f in raw.backlog if f.subject == r1]


def test_publish_to_api_subject_of_unknown_stream_is_silent(raw):
    # A request on a $JS.API subject no handler serves (here an unknown verb) gets no answer.
    r1 = raw.inbox()
    raw.publish(f"{API}.STREAM.BOGUS.X", b"", reply=r1)
    assert raw.api("INFO")["type"] == "io.nats.jetstream.api.v1.account_info_response"
    raw.flush()
    assert not [f for f in raw.backlog if f.subject == r1]
