"""SUB / UNSUB: subject validation, argument errors, auto-unsubscribe, sid reuse."""

from __future__ import annotations

import pytest

from .wire import OK, PING, PONG, connect_line, err, msg, pub

pytestmark = pytest.mark.conformance(area="sub")

QUIET = connect_line(verbose=False, pedantic=False)
INVALID_SUBJECT = err("Invalid Subject")


@pytest.fixture
def c(connect):
    client = connect()
    client.handshake(pedantic=False)
    return client


@pytest.mark.parametrize(
    "subject", ["foo..bar", "foo.", ".foo", "foo.>.bar", ">.foo", ".", "..", "foo.>.>"]
)
def test_invalid_subject_is_reported_and_connection_kept(c, subject):
    c.send(f"SUB {subject} 1\r\n".encode() + PING)
    c.expect(INVALID_SUBJECT + PONG)
    # The failed SUB did not register sid 1: the sid is free for a valid subscription.
    c.send(b"SUB ok 1\r\n" + pub("ok", b"x") + PING)
    c.expect(msg("ok", 1, b"x") + PONG)


@pytest.mark.parametrize("subject", [">", "*", "*.*", "foo.*.>", "foo*.bar", "foo.b>r", "a-b_c~d"])
def test_valid_subjects_are_accepted(c, subject):
    c.send(f"SUB {subject} 1\r\n".encode() + PING)
    c.expect(PONG)


def test_invalid_subject_in_verbose_mode_has_no_ok(connect):
    c = connect()
    c.send(connect_line(verbose=True) + b"SUB foo..bar 1\r\nSUB foo 2\r\n" + PING)
    c.expect(OK + INVALID_SUBJECT + OK + PONG)


def test_space_in_subject_splits_into_queue_group(c):
    # "SUB fo o 1" is subject "fo", queue group "o", sid 1.
    c.send(b"SUB fo o 1\r\n" + pub("fo", b"x") + PING)
    c.expect(msg("fo", 1, b"x") + PONG)


def test_sid_is_an_opaque_token(c):
    c.send(b"SUB foo abc-1\r\n" + pub("foo", b"x") + PING)
    c.expect(msg("foo", "abc-1", b"x") + PONG)


def test_sub_and_unsub_case_insensitive(c):
    c.send(b"sub foo 1\r\n" + pub("foo", b"a") + b"unsub 1\r\n" + pub("foo", b"b") + PING)
    c.expect(msg("foo", 1, b"a") + PONG)


def test_sub_with_queue_group(c):
    c.send(b"SUB foo q 1\r\n" + pub("foo", b"a") + PING)
    c.expect(msg("foo", 1, b"a") + PONG)


@pytest.mark.parametrize("line", [b"SUB foo\r\n", b"SUB a b c d\r\n", b"SUB \r\n"])
def test_sub_bad_argument_count_closes_silently(connect, line):
    c = connect()
    c.send(QUIET + line)
    c.assert_closed(b"")


@pytest.mark.parametrize("line", [b"SUB\r\n", b"UNSUB\r\n"])
def test_sub_unsub_without_space_is_unknown_op(connect, line):
    c = connect()
    c.send(QUIET + line)
    c.assert_closed(err("Unknown Protocol Operation"))


def test_unsub_bad_argument_count_closes_silently(connect):
    c = connect()
    c.send(QUIET + b"UNSUB 1 2 3\r\n")
    c.assert_closed(b"")


def test_unsub_unknown_sid_is_silent(c):
    c.send(b"UNSUB 99\r\nUNSUB 98 5\r\n" + PING)
    c.expect(PONG)


def test_unsub_unknown_sid_verbose_still_ok(connect):
    c = connect()
    c.send(connect_line(verbose=True) + b"UNSUB 99\r\n" + PING)
    c.expect(OK + OK + PONG)


def test_unsub_removes_subscription(c):
    c.send(b"SUB foo 1\r\nUNSUB 1\r\n" + pub("foo", b"a") + PING)
    c.expect(PONG)


def test_unsub_with_max_delivers_exactly_max(c):
    c.send(b"SUB foo 1\r\nUNSUB 1 2\r\n" + b"".join(pub("foo", bytes([i])) for i in b"abcd"))
    c.send(PING)
    c.expect(msg("foo", 1, b"a") + msg("foo", 1, b"b") + PONG)
    # The subscription is gone once max is reached, so the sid can be reused.
    c.send(b"SUB bar 1\r\n" + pub("bar", b"z") + PING)
    c.expect(msg("bar", 1, b"z") + PONG)


def test_unsub_max_counts_messages_already_delivered(c):
    c.send(b"SUB foo 1\r\n" + pub("foo", b"a") + pub("foo", b"b") + b"UNSUB 1 3\r\n")
    c.send(pub("foo", b"c") + pub("foo", b"d") + PING)
    c.expect(msg("foo", 1, b"a") + msg("foo", 1, b"b") + msg("foo", 1, b"c") + PONG)


@pytest.mark.parametrize("max_", [b"0", b"1"], ids=["max-0", "max-le-delivered"])
def test_unsub_max_not_above_delivered_unsubscribes_now(c, max_):
    c.send(b"SUB foo 1\r\n" + pub("foo", b"a") + b"UNSUB 1 " + max_ + b"\r\n")
    c.send(pub("foo", b"b") + PING)
    c.expect(msg("foo", 1, b"a") + PONG)


@pytest.mark.nats_quirk
@pytest.mark.parametrize("max_", [b"x", b"-1"])
def test_unsub_unparsable_max_unsubscribes_now(c, max_):
    # An unparsable max is treated like no max: immediate unsubscribe, no error, connection kept.
    c.send(b"SUB foo 1\r\nUNSUB 1 " + max_ + b"\r\n" + pub("foo", b"a") + PING)
    c.expect(PONG)


def test_resub_same_sid_keeps_first_subscription(c):
    # A second SUB with an existing sid is ignored (no error); the first subject stays.
    c.send(b"SUB foo 1\r\nSUB bar 1\r\n" + pub("foo", b"a") + pub("bar", b"b") + PING)
    c.expect(msg("foo", 1, b"a") + PONG)


def test_resub_same_sid_same_subject_delivers_once(c):
    c.send(b"SUB foo 1\r\nSUB foo 1\r\n" + pub("foo", b"a") + PING)
    c.expect(msg("foo", 1, b"a") + PONG)


def test_resub_same_sid_verbose_is_ok(connect):
    c = connect()
    c.send(connect_line(verbose=True) + b"SUB foo 1\r\nSUB bar 1\r\n" + PING)
    c.expect(OK + OK + OK + PONG)
