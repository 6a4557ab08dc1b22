"""MSG / HMSG framing, wildcards, queue groups, echo, header stripping."""

from __future__ import annotations

import pytest

from .wire import PING, PONG, hmsg, hpub, msg, pub

pytestmark = pytest.mark.conformance(area="delivery")

HDR = b"NATS/1.0\r\nA: b\r\n\r\n"


@pytest.fixture
def client(connect):
    """A connected, non-verbose, non-pedantic client factory; headers on request."""

    def make(**opts):
        c = connect()
        c.handshake(pedantic=False, **opts)
        return c

    return make


def test_msg_frame_without_reply(client):
    c = client()
    c.sub("foo.bar", 7)
    c.send(b"PUB foo.bar 5\r\nhello\r\n" + PING)
    c.expect(b"MSG foo.bar 7 5\r\nhello\r\n" + PONG)


def test_msg_frame_with_reply(client):
    c = client()
    c.sub("foo", 7)
    c.send(b"PUB foo _INBOX.r 2\r\nhi\r\n" + PING)
    c.expect(b"MSG foo 7 _INBOX.r 2\r\nhi\r\n" + PONG)


def test_binary_payload_is_verbatim(client):
    c = client()
    c.sub("bin", 1)
    payload = bytes(range(256))
    c.send(pub("bin", payload) + PING)
    c.expect(msg("bin", 1, payload) + PONG)


def test_cross_connection_delivery(client):
    sub, pub_ = client(), client()
    sub.sub("x.y", 1)
    pub_.send(pub("x.y", b"data", reply="rep") + PING)
    pub_.expect(PONG)
    sub.expect(msg("x.y", 1, b"data", reply="rep"))
    sub.assert_quiet()


def test_subjects_are_case_sensitive(client):
    c = client()
    c.sub("foo", 1)
    c.send(pub("FOO", b"a") + pub("Foo", b"b") + PING)
    c.expect(PONG)


def test_wildcards_deliver_published_subject_once_per_sid(client):
    c = client()
    for subject, sid in (("foo.*", 1), ("foo.>", 2), (">", 3), ("*.bar", 4), ("foo.bar", 5)):
        c.send(f"SUB {subject} {sid}\r\n".encode())
    c.ping_pong()
    c.send(pub("foo.bar", b"hi", reply="r") + PING)
    got = c.read_ops(5)
    want = [msg("foo.bar", sid, b"hi", reply="r") for sid in (1, 2, 3, 4, 5)]
    assert sorted(got) == sorted(want)  # fan-out order is unspecified
    c.expect(PONG)

    c.send(pub("foo.bar.baz", b"") + PING)
    got = c.read_ops(2)
    assert sorted(got) == sorted([b"MSG foo.bar.baz 2 0\r\n\r\n", b"MSG foo.bar.baz 3 0\r\n\r\n"])
    c.expect(PONG)

    c.send(pub("foo", b"z") + PING)  # ">" matches one token; "foo.>" needs at least two
    c.expect(msg("foo", 3, b"z") + PONG)


def test_overlapping_subscriptions_on_one_connection_each_get_a_copy(client):
    c = client()
    c.send(b"SUB a 1\r\nSUB a 2\r\nSUB a q 3\r\n")
    c.send(pub("a", b"m") + PING)
    got = c.read_ops(3)
    assert sorted(got) == sorted(msg("a", sid, b"m") for sid in (1, 2, 3))
    c.expect(PONG)


def test_queue_group_distribution(client):
    q1, q2, plain, other_group, producer = (client() for _ in range(5))
    q1.sub("job", 1, queue="workers")
    q2.sub("job", 1, queue="workers")
    plain.sub("job", 9)
    other_group.sub("job", 5, queue="audit")
    payloads = [f"m{i}".encode() for i in range(20)]
    producer.send(b"".join(pub("job", p) for p in payloads) + PING)
    producer.expect(PONG)

    plain_got = plain.read_ops(20)
    assert plain_got == [msg("job", 9, p) for p in payloads]  # order kept per subscriber
    audit_got = other_group.read_ops(20)
    assert audit_got == [msg("job", 5, p) for p in payloads]

    # Each message reaches exactly one member of "workers"; who gets what is unspecified.
    worker_payloads = []
    for member in (q1, q2):
        member.send(PING)
        while True:
            op = member.read_op()
            if op == PONG:
                break
            assert op.startswith(b"MSG job 1 "), op
            worker_payloads.append(op.split(b"\r\n")[1])
    assert sorted(worker_payloads) == sorted(payloads)
    plain.assert_quiet()
    other_group.assert_quiet()


def test_echo_false_suppresses_self_delivery_only(client):
    me = client(echo=False)
    other = client()
    me.sub("e", 1)
    other.sub("e", 2)
    me.send(pub("e", b"x") + PING)
    me.expect(PONG)
    other.expect(msg("e", 2, b"x"))
    other.assert_quiet()


def test_echo_default_delivers_to_self(client):
    c = client()
    c.sub("e", 1)
    c.send(pub("e", b"x") + PING)
    c.expect(msg("e", 1, b"x") + PONG)


# -- headers -----------------------------------------------------------------------------------


def test_hmsg_frame_exact(client):
    c = client(headers=True)
    c.sub("h", 3)
    c.send(hpub("h", HDR, b"hi", reply="r") + PING)
    c.expect(b"HMSG h 3 r 18 20\r\nNATS/1.0\r\nA: b\r\n\r\nhi\r\n" + PONG)
    c.send(hpub("h", HDR) + PING)
    c.expect(b"HMSG h 3 18 18\r\nNATS/1.0\r\nA: b\r\n\r\n\r\n" + PONG)


def test_headers_stripped_for_subscriber_without_header_support(client):
    plain = client()  # headers not negotiated
    withh = client(headers=True)
    plain.sub("h", 1)
    withh.sub("h", 2)
    producer = client(headers=True)
    producer.send(hpub("h", HDR, b"hi", reply="r") + hpub("h", HDR) + PING)
    producer.expect(PONG)
    plain.expect(b"MSG h 1 r 2\r\nhi\r\nMSG h 1 0\r\n\r\n")
    withh.expect(hmsg("h", 2, HDR, b"hi", reply="r") + hmsg("h", 2, HDR))
    plain.assert_quiet()
    withh.assert_quiet()


def test_plain_pub_to_header_subscriber_is_msg(client):
    c = client(headers=True)
    c.sub("h", 1)
    c.send(pub("h", b"hi") + PING)
    c.expect(msg("h", 1, b"hi") + PONG)


@pytest.mark.nats_quirk
def test_hpub_with_zero_header_size_is_delivered_as_msg(client):
    c = client(headers=True)
    c.sub("h", 1)
    c.send(b"HPUB h 0 2\r\nhi\r\n" + PING)
    c.expect(msg("h", 1, b"hi") + PONG)


@pytest.mark.nats_quirk
def test_header_block_is_not_validated(client):
    # The header bytes are forwarded verbatim (no "NATS/1.0" check); a subscriber without
    # header support gets only the bytes after the declared header size.
    withh = client(headers=True)
    plain = client()
    withh.sub("h", 1)
    plain.sub("h", 2)
    withh.send(b"HPUB h 3 5\r\nabcde\r\n" + PING)
    withh.expect(b"HMSG h 1 3 5\r\nabcde\r\n" + PONG)
    plain.expect(b"MSG h 2 2\r\nde\r\n")
    plain.assert_quiet()
