"""Server limits set in a config file: connections, subscriptions, control line, payload."""

from __future__ import annotations

import time

import pytest

from .wire import PING, PONG, connect_line, err, msg, pub

pytestmark = pytest.mark.conformance(area="limits")


def _try_session(srv, connect):
    """A client whose PING got exactly PONG, or None if the server refused or closed it."""
    try:
        c = connect(srv)
        c.send(PING)
        c.expect(PONG)
    except (AssertionError, OSError):
        return None
    return c


def test_max_connections(start_server, connect):
    srv = start_server(config_text="max_connections: 1\n")
    first = connect(srv)
    first.handshake()
    second = connect(srv)  # INFO is still sent first, with the next client_id ...
    assert second.info["client_id"] > first.info["client_id"]
    second.assert_closed(err("maximum connections exceeded"))  # ... then the error, then close
    first.assert_open()
    # The slot is freed when the first client leaves. The server notices the close
    # asynchronously, so poll with a deadline.
    first.close()
    deadline = time.monotonic() + 2.0
    while (third := _try_session(srv, connect)) is None and time.monotonic() < deadline:
        time.sleep(0.02)  # polling interval, not a synchronisation
    assert third is not None, "no connection slot became free after closing the first client"


def test_max_subscriptions_error_keeps_connection(start_server, connect):
    srv = start_server(config_text="max_subscriptions: 1\n")
    c = connect(srv)
    c.handshake()
    c.send(b"SUB a 1\r\nSUB b 2\r\n" + PING)
    c.expect(err("maximum subscriptions exceeded") + PONG)
    # Re-subscribing an existing sid at the limit is also refused (the limit is checked first).
    c.send(b"SUB a 1\r\n" + PING)
    c.expect(err("maximum subscriptions exceeded") + PONG)
    c.send(pub("a", b"x") + pub("b", b"y") + PING)  # sub 1 still works, sub 2 never existed
    c.expect(msg("a", 1, b"x") + PONG)
    c.send(b"UNSUB 1\r\nSUB b 2\r\n" + pub("b", b"y") + PING)
    c.expect(msg("b", 2, b"y") + PONG)


def test_max_control_line_configured(start_server, connect):
    srv = start_server(config_text="max_control_line: 256\n")
    ok = connect(srv)
    ok.send(connect_line(verbose=False) + b"PUB " + b"a" * 254 + b" 1\r\nx\r\n" + PING)
    ok.expect(PONG)
    bad = connect(srv)
    bad.send(connect_line(verbose=False) + b"PUB " + b"a" * 255 + b" 1\r\n")
    bad.assert_closed(err("maximum control line exceeded"))


def test_max_payload_configured(start_server, connect):
    srv = start_server(config_text="max_payload: 100\n")
    c = connect(srv)
    assert c.info["max_payload"] == 100
    c.handshake()
    c.sub("p", 1)
    c.send(pub("p", b"x" * 100) + PING)
    c.expect(msg("p", 1, b"x" * 100) + PONG)
    c.send(b"PUB p 101\r\n")
    c.assert_closed(err("Maximum Payload Violation"))
