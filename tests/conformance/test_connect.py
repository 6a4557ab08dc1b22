"""CONNECT options: verbose, protocol, no_responders, malformed CONNECT."""

from __future__ import annotations

import pytest

from .conftest import since
from .wire import OK, PING, PONG, connect_line, err, pub

pytestmark = pytest.mark.conformance(area="connect")


def test_connect_empty_defaults_to_verbose(server, connect):
    c = connect()
    c.send(b"CONNECT {}\r\n" + pub("a", b"x"))
    c.expect(OK + OK)  # one +OK for CONNECT, one for PUB
    c.assert_quiet()


def test_verbose_false_sends_no_ok(server, connect):
    c = connect()
    c.send(connect_line(verbose=False) + pub("a", b"x") + PING)
    c.expect(PONG)
    c.assert_quiet()


def test_verbose_handshake_exact_bytes(server, connect):
    c = connect()
    c.send(b'CONNECT {"verbose":true}\r\nPING\r\n')
    c.expect(b"+OK\r\nPONG\r\n")  # nothing between +OK and PONG
    c.assert_quiet()  # and nothing (no async INFO) after the first PONG


@pytest.mark.parametrize("protocol", [0, 1])
def test_no_async_info_after_first_pong(impl, server, connect, protocol):
    # For protocol >= 1 nats-server would send an updated INFO right after the first PONG only
    # if the cluster topology or max_payload changed since accept; standalone it sends none.
    # 2.12 answers the first PING of a protocol 1 client with PONG and then an INFO carrying
    # "connect_info":true (and the account it is bound to).
    c = connect()
    c.send(connect_line(verbose=False, protocol=protocol) + PING)
    c.expect(PONG)
    if protocol >= 1 and since(impl, (2, 12)):
        info = c.read_line()
        assert info.startswith(b"INFO {") and b'"connect_info":true' in info, info
        assert b'"remote_account":"$G"' in info, info
    c.send(PING)
    c.expect(PONG)
    c.assert_quiet()


def test_ops_without_connect_use_default_options(server, connect):
    # Without auth, CONNECT is optional; the server then applies the defaults (verbose=true).
    c = connect()
    c.send(PING)
    c.expect(PONG)
    c.send(pub("a", b"x") + PING)
    c.expect(OK + PONG)


@pytest.mark.parametrize("protocol", [2, -1, 99])
def test_invalid_protocol_closes(server, connect, protocol):
    c = connect()
    c.send(connect_line(verbose=False, protocol=protocol))
    c.assert_closed(err("invalid client protocol"))


@pytest.mark.parametrize(
    "opts",
    [{"no_responders": True}, {"no_responders": True, "headers": False}],
    ids=["headers-absent", "headers-false"],
)
def test_no_responders_requires_headers(server, connect, opts):
    c = connect()
    c.send(connect_line(verbose=False, **opts))
    c.assert_closed(err("no responders requires headers support"))


def test_no_responders_with_headers_is_accepted(server, connect):
    c = connect()
    c.send(connect_line(verbose=True, headers=True, no_responders=True) + PING)
    c.expect(OK + PONG)


@pytest.mark.parametrize(
    "line",
    [
        b"CONNECT\r\n",
        b"CONNECT \r\n",
        b"CONNECT xyz\r\n",
        b'CONNECT {"verbose":false}xyz\r\n',
        b'CONNECT {"verbose":"yes"}\r\n',
    ],
    ids=["no-arg", "blank-arg", "not-json", "trailing-garbage", "wrong-type"],
)
def test_malformed_connect_closes_silently(server, connect, line):
    # A CONNECT whose JSON does not decode closes the connection without any -ERR.
    c = connect()
    c.send(line + PING)
    c.assert_closed(b"")


def test_unknown_connect_fields_are_ignored(server, connect):
    c = connect()
    c.send(b'CONNECT {"verbose":false,"no_such_option":[1,2],"lang":"raw"}\r\nPING\r\n')
    c.expect(PONG)


def test_connect_is_case_insensitive(server, connect):
    c = connect()
    c.send(b'connect {"verbose":true}\r\nPING\r\n')
    c.expect(OK + PONG)


@pytest.mark.nats_quirk
def test_second_connect_merges_into_previous_options(server, connect):
    # A second CONNECT is decoded on top of the current options: fields it omits keep their
    # previous values (verbose stays false here), instead of being reset to the defaults.
    c = connect()
    c.send(connect_line(verbose=False) + b"CONNECT {}\r\n" + pub("a", b"x") + PING)
    c.expect(PONG)
    c.send(connect_line(verbose=True) + PING)
    c.expect(OK + PONG)


def test_verbose_ok_precedes_max_payload_error(server, connect):
    c = connect()
    c.send(connect_line(verbose=True) + b"PUB foo 2000000\r\n")
    c.assert_closed(OK + err("Maximum Payload Violation"))
