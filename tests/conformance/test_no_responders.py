"""no_responders: the 503 status message sent back to a requester when nobody is subscribed.

nats-server 2.9.10 sends a 16-byte header block ``NATS/1.0 503\\r\\n\\r\\n`` and an empty payload.
There is NO ``Nats-Subject`` (or any other) header in 2.9.10.
"""

from __future__ import annotations

import pytest

from .wire import OK, PING, PONG, connect_line, hpub, msg, pub

pytestmark = pytest.mark.conformance(area="no_responders")

NO_RESPONDERS_503 = b"HMSG _INBOX.x.1 1 16 16\r\nNATS/1.0 503\r\n\r\n\r\n"


@pytest.fixture
def requester(connect):
    c = connect()
    c.handshake(headers=True, no_responders=True)
    c.sub("_INBOX.x.*", 1)
    return c


def test_503_exact_bytes(requester):
    requester.send(b"PUB nobody _INBOX.x.1 0\r\n\r\n" + PING)
    requester.expect(NO_RESPONDERS_503 + PONG)


@pytest.mark.parametrize(
    "frame",
    [
        pub("nobody", b"hi", reply="_INBOX.x.1"),
        hpub("nobody", b"NATS/1.0\r\n\r\n", b"hi", "_INBOX.x.1"),
    ],
    ids=["PUB-with-payload", "HPUB"],
)
def test_503_does_not_depend_on_request_content(requester, frame):
    requester.send(frame + PING)
    requester.expect(NO_RESPONDERS_503 + PONG)


def test_503_uses_sid_of_the_matching_reply_subscription(connect):
    c = connect()
    c.handshake(headers=True, no_responders=True)
    c.send(b"SUB other 4\r\nSUB _INBOX.y.> 9\r\n" + pub("nobody", reply="_INBOX.y.a.b") + PING)
    c.expect(b"HMSG _INBOX.y.a.b 9 16 16\r\nNATS/1.0 503\r\n\r\n\r\n" + PONG)


def test_no_503_when_someone_receives(requester, connect):
    responder = connect()
    responder.handshake()
    responder.sub("svc.*", 2)
    requester.send(pub("svc.a", reply="_INBOX.x.1") + PING)
    requester.expect(PONG)
    responder.expect(msg("svc.a", 2, reply="_INBOX.x.1"))


def test_no_503_without_reply_subject(requester):
    requester.send(pub("nobody") + PING)
    requester.expect(PONG)


def test_no_503_without_subscription_on_reply(connect):
    c = connect()
    c.handshake(headers=True, no_responders=True)
    c.send(pub("nobody", reply="_INBOX.x.1") + PING)
    c.expect(PONG)


def test_no_503_unless_requested(connect):
    c = connect()
    c.handshake(headers=True)
    c.sub("_INBOX.x.*", 1)
    c.send(pub("nobody", reply="_INBOX.x.1") + PING)
    c.expect(PONG)


def test_503_only_to_requester_not_other_reply_subscribers(requester, connect):
    other = connect()
    other.handshake(headers=True)
    other.sub("_INBOX.x.*", 5)
    # "other" is subscribed to the reply subject, but not to "nobody": still no responders.
    requester.send(pub("nobody", reply="_INBOX.x.1") + PING)
    requester.expect(NO_RESPONDERS_503 + PONG)
    other.assert_quiet()


def test_503_sent_even_with_echo_false(connect):
    c = connect()
    c.handshake(headers=True, no_responders=True, echo=False)
    c.sub("_INBOX.x.*", 1)
    c.send(pub("nobody", reply="_INBOX.x.1") + PING)
    c.expect(NO_RESPONDERS_503 + PONG)


def test_503_in_verbose_mode(connect):
    c = connect()
    c.send(
        connect_line(verbose=True, headers=True, no_responders=True)
        + b"SUB _INBOX.x.* 1\r\n"
        + pub("nobody", reply="_INBOX.x.1")
        + PING
    )
    c.expect(OK + OK + OK + NO_RESPONDERS_503 + PONG)
