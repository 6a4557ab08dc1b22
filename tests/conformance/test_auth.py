"""Authentication: --user/--pass, --auth token, authorization timeout.

With auth configured, the first op must be CONNECT (any case); anything else, a failed check, or
no CONNECT before the timeout closes the connection. Auth is checked before the `protocol` value.
"""

from __future__ import annotations

import time

import pytest

from .wire import OK, PING, PONG, connect_line, err, pub

pytestmark = pytest.mark.conformance(area="auth")

AUTH_VIOLATION = err("Authorization Violation")


@pytest.fixture
def userpass(start_server):
    return start_server(["--user", "a", "--pass", "b"])


@pytest.fixture
def token(start_server):
    return start_server(["--auth", "tok"])


def test_info_has_auth_required(userpass, token, connect):
    for srv in (userpass, token):
        assert connect(srv).info.get("auth_required") is True


@pytest.mark.parametrize(
    "first",
    [pub("a", b"x"), PING, b"SUB a 1\r\n", b"+OK\r\n", b"FOO\r\n"],
    ids=["PUB", "PING", "SUB", "+OK", "unknown-op"],
)
def test_first_op_not_connect_is_violation(userpass, connect, first):
    c = connect(userpass)
    c.send(first)
    c.assert_closed(AUTH_VIOLATION)


@pytest.mark.parametrize(
    "opts",
    [
        {"user": "a", "pass": "x"},
        {"user": "x", "pass": "b"},
        {"user": "a"},
        {},
        {"auth_token": "b"},
    ],
    ids=["wrong-pass", "wrong-user", "no-pass", "no-creds", "token-instead"],
)
def test_bad_credentials_are_violation(userpass, connect, opts):
    c = connect(userpass)
    c.send(connect_line(verbose=False, **opts) + PING)
    c.assert_closed(AUTH_VIOLATION)


def test_correct_credentials_work(userpass, connect):
    c = connect(userpass)
    c.send(b'CONNECT {"user":"a","pass":"b"}\r\nPING\r\n')  # verbose by default
    c.expect(OK + PONG)
    c.send(b"SUB s 1\r\n" + pub("s", b"x") + PING)
    c.expect(OK + OK + b"MSG s 1 1\r\nx\r\n" + PONG)


def test_lowercase_connect_authenticates(userpass, connect):
    c = connect(userpass)
    c.send(b'connect {"verbose":false,"user":"a","pass":"b"}\r\nPING\r\n')
    c.expect(PONG)


def test_auth_checked_before_protocol(userpass, connect):
    bad = connect(userpass)
    bad.send(connect_line(verbose=False, user="a", **{"pass": "x"}, protocol=2))
    bad.assert_closed(AUTH_VIOLATION)
    good = connect(userpass)
    good.send(connect_line(verbose=False, user="a", **{"pass": "b"}, protocol=2))
    good.assert_closed(err("invalid client protocol"))


def test_token_auth(token, connect):
    ok = connect(token)
    ok.send(connect_line(verbose=False, auth_token="tok") + PING)
    ok.expect(PONG)
    for opts in ({"auth_token": "nope"}, {"user": "tok"}, {}):
        c = connect(token)
        c.send(connect_line(verbose=False, **opts) + PING)
        c.assert_closed(AUTH_VIOLATION)


def test_token_first_op_not_connect(token, connect):
    c = connect(token)
    c.send(pub("a", b"x"))
    c.assert_closed(AUTH_VIOLATION)


def test_auth_timeout(start_server, connect):
    srv = start_server(config_text="authorization { user: a, password: b, timeout: 1 }\n")
    c = connect(srv)
    assert c.info.get("auth_required") is True
    started = time.monotonic()
    c.assert_closed(err("Authentication Timeout"), timeout=3.0)
    elapsed = time.monotonic() - started
    assert 0.7 <= elapsed <= 2.5, f"auth timeout after {elapsed:.2f}s, configured 1s"


def test_connect_in_time_cancels_auth_timeout(start_server, connect):
    srv = start_server(config_text="authorization { user: a, password: b, timeout: 1 }\n")
    c = connect(srv)
    c.send(b'CONNECT {"verbose":false,"user":"a","pass":"b"}\r\nPING\r\n')
    c.expect(PONG)
    c.expect_silence(1.5)  # well past the 1s auth timeout (and before the first server PING)
    c.assert_open()
