"""no_responders: the 503 status message sent back to a requester when nobody is subscribed.

nats-server 2.9.10 sends a 16-byte header block ``NATS/1.0 503\\r\\n\\r\\n`` and an empty payload.
There is NO ``Nats-Subject`` (or any other) header in 2.9.10. nats-server 2.12 adds one,
``Nats-Subject: <the request subject>`` (`no_responders`); the broker sends the 2.9.10 form.
"""

from __future__ import annotations

import pytest

from .conftest import Impl, since
from .wire import OK, PING, PONG, connect_line, hpub, msg, pub

pytestmark = pytest.mark.conformance(area="no_responders")


def no_responders(impl: Impl, reply: str = "_INBOX.x.1", sid: int = 1, subject: str = "nobody"):
    """The 503 for a request on `subject`: 2.12 names the subject in a Nats-Subject header."""
    hdr = b"NATS/1.0 503\r\n"
    if since(impl, (2, 12)):
        hdr += f"Nats-Subject: {subject}\r\n".encode()
    hdr += b"\r\n"
    return f"HMSG {reply} {sid} {len(hdr)} {len(hdr)}\r\n".encode() + hdr + b"\r\n"


@pytest.fixture
def requester(connect):
    c = connect()
    c.handshake(headers=True, no_responders=True)
    c.sub("_INBOX.x.*", 1)
    return c


def test_503_exact_bytes(impl, requester):
    requester.send(b"PUB nobody _INBOX.x.1 0\r\n\r\n" + PING)
    requester.expect(no_responders(impl) + PONG)


@pytest.mark.parametrize(
    "frame",
    [
        pub("nobody", b"hi", reply="_INBOX.x.1"),
        hpub("nobody", b"NATS/1.0\r\n\r\n", b"hi", "_INBOX.x.1"),
    ],
    ids=["PUB-with-payload", "HPUB"],
)
def test_503_does_not_depend_on_request_content(impl, requester, frame):
    requester.send(frame + PING)
    requester.expect(no_responders(impl) + PONG)


def test_503_uses_sid_of_the_matching_reply_subscription(impl, connect):
    c = connect()
    c.handshake(headers=True, no_responders=True)
    c.send(b"SUB other 4\r\nSUB _INBOX.y.> 9\r\n" + pub("nobody", reply="_INBOX.y.a.b") + PING)
    c.expect(no_responders(impl, "_INBOX.y.a.b", 9) + PONG)


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


def test_503_only_to_requester_not_other_reply_subscribers(impl, requester, connect):
    other = connect()
    other.handshake(headers=True)
    other.sub("_INBOX.x.*", 5)
    # "other" is subscribed to the reply subject, but not to "nobody": still no responders.
    requester.send(pub("nobody", reply="_INBOX.x.1") + PING)
    requester.expect(no_responders(impl) + PONG)
    other.assert_quiet()


def test_503_sent_even_with_echo_false(impl, connect):
    c = connect()
    c.handshake(headers=True, no_responders=True, echo=False)
    c.sub("_INBOX.x.*", 1)
    c.send(pub("nobody", reply="_INBOX.x.1") + PING)
    c.expect(no_responders(impl) + PONG)


def test_503_in_verbose_mode(impl, connect):
    c = connect()
    c.send(
        connect_line(verbose=True, headers=True, no_responders=True)
        + b"SUB _INBOX.x.* 1\r\n"
        + pub("nobody", reply="_INBOX.x.1")
        + PING
    )
    c.expect(OK + OK + OK + no_responders(impl) + PONG)
