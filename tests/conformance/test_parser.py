"""Client protocol parser: PUB/HPUB framing, control-line limit, unknown ops, PING/PONG lines.

Two kinds of rejection exist in nats-server 2.9.10 and they are NOT interchangeable:

* parser-level errors (unknown op, bad byte where CRLF is required, op name not followed by a
  space): ``-ERR 'Unknown Protocol Operation'\\r\\n`` then close;
* argument errors of a well-formed PUB/HPUB/SUB/UNSUB line (wrong arg count, bad size, HPUB header
  size > total) and HPUB without negotiated headers: the connection is closed *silently*.
"""

from __future__ import annotations

import pytest

from .wire import OK, PING, PONG, connect_line, err, hpub, msg, pub

pytestmark = pytest.mark.conformance(area="parser")

QUIET = connect_line(verbose=False, pedantic=False)
HDRS = connect_line(verbose=False, pedantic=False, headers=True)
UNKNOWN_OP = err("Unknown Protocol Operation")


def _subscribed(connect, subject="a", **opts):
    c = connect()
    c.handshake(pedantic=False, **opts)
    c.sub(subject, 1)
    return c


# -- PUB: accepted spellings ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [
        b"pub a 1\r\nx\r\n",
        b"PuB a 1\r\nx\r\n",
        b"PUB\ta\t1\r\nx\r\n",
        b"PUB   a    1  \r\nx\r\n",
        b"PUB \t a \t 1\r\nx\r\n",
    ],
    ids=["lowercase", "mixedcase", "tabs", "multi-space-trailing", "mixed-whitespace"],
)
def test_pub_whitespace_and_case(connect, frame):
    c = _subscribed(connect)
    c.send(frame + PING)
    c.expect(msg("a", 1, b"x") + PONG)


def test_pub_with_reply_three_args(connect):
    c = _subscribed(connect)
    c.send(b"PUB a  r.1\t 2\r\nhi\r\n" + PING)
    c.expect(msg("a", 1, b"hi", reply="r.1") + PONG)


def test_pub_zero_length_payload(connect):
    c = _subscribed(connect)
    c.send(b"PUB a 0\r\n\r\n" + PING)
    c.expect(b"MSG a 1 0\r\n\r\n" + PONG)


def test_payload_may_contain_crlf_and_ops(connect):
    c = _subscribed(connect)
    payload = b"PING\r\nPUB x 1\r\n"
    c.send(pub("a", payload) + PING)
    c.expect(msg("a", 1, payload) + PONG)


def test_pub_split_across_sends(connect):
    c = _subscribed(connect)
    for part in (b"PU", b"B a", b" 3\r", b"\nab", b"c", b"\r", b"\n"):
        c.send(part)
    c.send(PING)
    c.expect(msg("a", 1, b"abc") + PONG)


@pytest.mark.nats_quirk
def test_control_lines_may_end_with_bare_lf(connect):
    # Control lines (not payload terminators) are accepted with a bare "\n".
    c = _subscribed(connect)
    c.send(b"PUB a 1\nx\r\nPING\n")
    c.expect(msg("a", 1, b"x") + PONG)


# -- PUB: rejected -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        b"PUB a\r\n",
        b"PUB a b c 1\r\n",
        b"PUB \r\n",
        b"PUB a x\r\n",
        b"PUB a -1\r\n",
        b"PUB a 1x\r\n",
        b"PUB a 1234567890\r\n",
    ],
    ids=["1-arg", "4-args", "blank-args", "size-nan", "size-negative", "size-suffix", "size-10d"],
)
def test_pub_bad_arguments_close_silently(connect, line):
    c = connect()
    c.send(QUIET + line)
    c.assert_closed(b"")


def test_pub_without_space_is_unknown_op(connect):
    c = connect()
    c.send(QUIET + b"PUB\r\n")
    c.assert_closed(UNKNOWN_OP)


def test_payload_longer_than_declared(connect):
    c = _subscribed(connect)
    c.send(b"PUB a 3\r\nxxxxx\r\n")
    c.assert_closed(UNKNOWN_OP)  # nothing delivered: the byte after 3 payload bytes is not CR


def test_payload_shorter_than_declared_swallows_following_bytes(connect):
    c = _subscribed(connect)
    # "xx\r\n" plus the "P" of the following PING make up the 5 declared bytes; then "I" is
    # where "\r" is required.
    c.send(b"PUB a 5\r\nxx\r\n")
    c.send(PING)
    c.assert_closed(UNKNOWN_OP)


def test_payload_not_followed_by_crlf(connect):
    c = _subscribed(connect)
    c.send(b"PUB a 1\r\nx\n")
    c.assert_closed(UNKNOWN_OP)


def test_payload_followed_by_op_without_crlf(connect):
    c = _subscribed(connect)
    c.send(b"PUB a 1\r\nxPING\r\n")
    c.assert_closed(UNKNOWN_OP)


def test_max_payload_exact_is_accepted(connect):
    c = _subscribed(connect)
    payload = b"z" * 1048576
    c.send(pub("a", payload) + PING)
    c.expect(msg("a", 1, payload) + PONG, timeout=5)


def test_max_payload_exceeded_closes(connect):
    c = connect()
    c.send(QUIET + b"PUB a 1048577\r\n")  # rejected on the control line, before any payload
    c.assert_closed(err("Maximum Payload Violation"))


# -- HPUB ------------------------------------------------------------------------------------------


def test_hpub_accepted_with_headers(connect):
    c = connect()
    c.send(connect_line(verbose=True, headers=True) + hpub("a", b"NATS/1.0\r\n\r\n", b"hi") + PING)
    c.expect(OK + OK + PONG)


@pytest.mark.parametrize(
    "line",
    [
        b"HPUB a 20 10\r\n",
        b"HPUB a 10\r\n",
        b"HPUB a r 1 2 3\r\n",
        b"HPUB a x 10\r\n",
        b"HPUB a 2 x\r\n",
        b"HPUB a -1 10\r\n",
    ],
    ids=["hdr-gt-total", "2-args", "5-args", "hdr-nan", "total-nan", "hdr-negative"],
)
def test_hpub_bad_arguments_close_silently(connect, line):
    c = connect()
    c.send(HDRS + line)
    c.assert_closed(b"")


@pytest.mark.parametrize(
    "prefix",
    [QUIET, connect_line(verbose=False, headers=False), b""],
    ids=["headers-absent", "headers-false", "no-connect"],
)
def test_hpub_without_headers_negotiated_closes_silently(connect, prefix):
    c = connect()
    c.send(prefix + b"HPUB a 12 12\r\n")
    c.assert_closed(b"")


def test_hpub_max_payload_counts_total_size(connect):
    c = connect()
    c.send(HDRS + b"HPUB a 12 1048577\r\n")
    c.assert_closed(err("Maximum Payload Violation"))


# -- control line limit ------------------------------------------------------------------------


def _args_of_len(n: int) -> bytes:
    """PUB arguments ("<subject> 1") exactly n bytes long."""
    return b"a" * (n - 2) + b" 1"


def test_control_line_at_limit_is_accepted(connect):
    # The limit (4096) applies to the arguments: the bytes after "PUB " and leading blanks, up
    # to (excluding) CRLF, trailing blanks included.
    c = connect()
    c.send(QUIET + b"PUB   " + _args_of_len(4096) + b"\r\nx\r\n" + PING)
    c.expect(PONG)


def test_control_line_over_limit_closes(connect):
    c = connect()
    c.send(QUIET + b"PUB " + _args_of_len(4097) + b"\r\n")
    c.assert_closed(err("maximum control line exceeded"))


def test_control_line_trailing_blanks_count(connect):
    c = connect()
    c.send(QUIET + b"PUB " + _args_of_len(4095) + b"  \r\n")
    c.assert_closed(err("maximum control line exceeded"))


def test_unterminated_control_line_over_limit_closes_early(connect):
    # No CRLF at all: the server does not wait for the end of the line.
    c = connect()
    c.send(QUIET + b"PUB " + b"a" * 5000)
    c.assert_closed(err("maximum control line exceeded"))


@pytest.mark.parametrize("op", [b"SUB ", b"UNSUB ", b"CONNECT "])
def test_control_line_limit_applies_to_other_ops(connect, op):
    c = connect()
    c.send(QUIET + op + b"a" * 4097 + b"\r\n")
    c.assert_closed(err("maximum control line exceeded"))


# -- unknown ops and garbage ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        b"FOO\r\n",
        b"\x00\x01\x02\r\n",
        b"\r\n",
        b"\n",
        b" PING\r\n",
        b"MSG a 1 1\r\nx\r\n",
        b"PINF\r\n",
        b"SUBX a 1\r\n",
        b"+OX\r\n",
    ],
    ids=["FOO", "binary", "empty-line", "bare-lf", "leading-space", "MSG", "PINF", "SUBX", "+OX"],
)
def test_unknown_or_garbage_op_closes(connect, line):
    c = connect()
    c.send(QUIET + line)
    c.assert_closed(UNKNOWN_OP)


def test_unknown_op_before_connect(connect):
    c = connect()
    c.send(b"FOO\r\n")
    c.assert_closed(UNKNOWN_OP)


def test_client_err_closes_silently(connect):
    c = connect()
    c.send(QUIET + b"-ERR 'oops'\r\n")
    c.assert_closed(b"")


@pytest.mark.parametrize("line", [b"+OK\r\n", b"INFO {}\r\n", PONG], ids=["+OK", "INFO", "PONG"])
def test_client_ok_info_pong_are_ignored(connect, line):
    c = connect()
    c.send(QUIET + line + PING)
    c.expect(PONG)


# -- PING / PONG lines -----------------------------------------------------------------------------


def test_ping_split_across_sends(connect):
    c = connect()
    c.send(QUIET + b"PI")
    c.send(b"NG\r")
    c.send(b"\n")
    c.expect(PONG)
    c.assert_quiet()


@pytest.mark.parametrize(
    "line", [b"ping\r\n", b"PiNg\r\n", b"PING\n"], ids=["lower", "mixed", "lf"]
)
def test_ping_spellings(connect, line):
    c = connect()
    c.send(QUIET + line)
    c.expect(PONG)


@pytest.mark.nats_quirk
@pytest.mark.parametrize("line", [b"PING \r\n", b"PINGxyz\r\n", b"PING" + b"x" * 6000 + b"\r\n"])
def test_ping_ignores_rest_of_line(connect, line):
    # After "PING" everything up to "\n" is ignored, and it is not subject to max_control_line.
    c = connect()
    c.send(QUIET + line)
    c.expect(PONG)
    c.assert_quiet()


def test_pipelined_pings(connect):
    c = connect()
    c.send(QUIET + PING * 5)
    c.expect(PONG * 5)
    c.assert_quiet()
