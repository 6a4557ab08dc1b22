"""Publish-subject checks and the `pedantic` CONNECT option.

Surprise: nats-server's *default* for `pedantic` (when CONNECT omits it, or no CONNECT is sent) is
TRUE, like `verbose` and `echo`. And in pedantic mode an invalid publish subject gets
``-ERR 'Invalid Publish Subject'`` but the message is STILL routed (to the subscriptions that
match the literal subject, e.g. ``foo.*`` matches a ``foo.*`` subscriber). The connection is kept.
"""

from __future__ import annotations

import pytest

from .wire import OK, PING, PONG, connect_line, err, msg, pub

pytestmark = pytest.mark.conformance(area="pedantic")

INVALID_PUB = err("Invalid Publish Subject")


def _client(connect, connect_bytes):
    c = connect()
    c.send(connect_bytes + b"SUB foo.* 1\r\nSUB foo.bar 2\r\nSUB foo.> 3\r\nSUB > 4\r\n" + PING)
    c.expect(PONG)
    return c


@pytest.mark.parametrize(
    "connect_bytes",
    [connect_line(verbose=False, pedantic=True), connect_line(verbose=False)],
    ids=["pedantic-true", "pedantic-default"],
)
@pytest.mark.parametrize("subject", ["foo.*", "foo.>"])
def test_pedantic_wildcard_publish_errors_but_is_delivered(connect, connect_bytes, subject):
    c = _client(connect, connect_bytes)
    c.send(pub(subject, b"a") + PING)
    c.expect(INVALID_PUB)
    # Routed as a literal subject: "*"/">" tokens match foo.*, foo.> and >, but not foo.bar.
    got = c.read_ops(3)
    assert sorted(got) == sorted(msg(subject, sid, b"a") for sid in (1, 3, 4))
    c.expect(PONG)


def test_non_pedantic_wildcard_publish_is_delivered_silently(connect):
    c = _client(connect, connect_line(verbose=False, pedantic=False))
    c.send(pub("foo.*", b"a") + PING)
    got = c.read_ops(3)  # literal "foo.*" matches foo.*, foo.>, > but not foo.bar
    assert sorted(got) == sorted(msg("foo.*", sid, b"a") for sid in (1, 3, 4))
    c.expect(PONG)


@pytest.mark.parametrize("subject", ["foo..bar", ".foo", "foo."])
def test_pedantic_malformed_publish_subject(connect, subject):
    c = _client(connect, connect_line(verbose=False))
    c.send(pub(subject, b"a") + PING)
    c.expect(INVALID_PUB + PONG)  # nothing matches a malformed subject


@pytest.mark.parametrize("subject", ["foo..bar", ".foo", "foo."])
def test_non_pedantic_malformed_publish_subject_is_dropped_silently(connect, subject):
    c = _client(connect, connect_line(verbose=False, pedantic=False))
    c.send(pub(subject, b"a") + PING)
    c.expect(PONG)


def test_pedantic_verbose_error_then_ok(connect):
    c = connect()
    c.send(connect_line(verbose=True, pedantic=True) + pub("foo.*", b"a") + PING)
    c.expect(OK + INVALID_PUB + OK + PONG)


def test_pedantic_applies_to_hpub(connect):
    c = connect()
    c.send(
        connect_line(verbose=False, headers=True)
        + b"HPUB foo.> 12 12\r\nNATS/1.0\r\n\r\n\r\n"
        + PING
    )
    c.expect(INVALID_PUB + PONG)
