"""The sans-IO client protocol parser: events for exact bytes, split reads, errors, fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker import protocol
from broker.protocol import (
    CONNECT,
    ERR,
    ERR_MAX_CONTROL_LINE,
    ERR_MAX_PAYLOAD,
    ERR_UNKNOWN_OP,
    FATAL,
    INFO,
    OK,
    PING,
    PONG,
    PUB,
    SUB,
    UNSUB,
    ClientParser,
)


def parse(data: bytes, **limits) -> list[tuple]:
    parser = ClientParser(**limits)
    events = parser.feed(data)
    while parser.paused:
        events += parser.feed(b"")
    return events


def parse_bytewise(data: bytes, **limits) -> list[tuple]:
    parser = ClientParser(**limits)
    events: list[tuple] = []
    for i in range(len(data)):
        events += parser.feed(data[i:i + 1])
        while parser.paused:
            events += parser.feed(b"")
    return events


STREAM = (
    b'CONNECT {"verbose":false}\r\n'
    b"PUB foo 5\r\nhello\r\n"
    b"PUB foo.bar _INBOX.1 0\r\n\r\n"
    b"HPUB h 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"
    b"HPUB h r 12 12\r\nNATS/1.0\r\n\r\n\r\n"
    b"SUB foo 1\r\n"
    b"SUB foo q 2\r\n"
    b"UNSUB 1\r\n"
    b"UNSUB 2 10\r\n"
    b"PING\r\nPONG\r\n"
    b"PUB crlf 4\r\na\r\nb\r\n"
)

EXPECTED = [
    (CONNECT, b'{"verbose":false}'),
    (PUB, b"foo", b"", -1, b"hello"),
    (PUB, b"foo.bar", b"_INBOX.1", -1, b""),
    (PUB, b"h", b"", 12, b"NATS/1.0\r\n\r\nhi"),
    (PUB, b"h", b"r", 12, b"NATS/1.0\r\n\r\n"),
    (SUB, b"foo", None, b"1"),
    (SUB, b"foo", b"q", b"2"),
    (UNSUB, b"1", None),
    (UNSUB, b"2", 10),
    (PING,),
    (PONG,),
    (PUB, b"crlf", b"", -1, b"a\r\nb"),
]


def test_every_operation_parses_to_its_event():
    assert parse(STREAM) == EXPECTED


def test_split_reads_at_every_byte_boundary_give_the_same_events():
    for cut in range(1, len(STREAM)):
        parser = ClientParser()
        events = parser.feed(STREAM[:cut])
        while parser.paused:
            events += parser.feed(b"")
        events += parser.feed(STREAM[cut:])
        while parser.paused:
            events += parser.feed(b"")
        assert events == EXPECTED, f"split at {cut}"


def test_one_byte_at_a_time_gives_the_same_events():
    assert parse_bytewise(STREAM) == EXPECTED


def test_operations_are_case_insensitive_and_take_tabs_and_runs_of_spaces():
    events = parse(b"pub  foo\t\t3\r\nabc\r\nsub foo  1\r\nping\r\nPinG\r\nhpub h 2 2\r\n\r\n\r\n")
    assert events == [
        (PUB, b"foo", b"", -1, b"abc"),
        (SUB, b"foo", None, b"1"),
        (PING,),
        (PING,),
        (PUB, b"h", b"", 2, b"\r\n"),
    ]


def test_control_lines_may_end_with_a_bare_newline():
    assert parse(b"PING\nPUB a 1\nx\r\nSUB a 1\n") == [
        (PING,), (PUB, b"a", b"", -1, b"x"), (SUB, b"a", None, b"1")]


def test_client_sent_ok_and_info_are_events_and_err_ends_the_connection():
    assert parse(b"+OK\r\nINFO {}\r\n-ERR 'oops'\r\nPING\r\n") == [
        (OK,), (INFO, b"{}"), (ERR, "oops"), (FATAL, None, "client error")]


def test_connect_needs_no_separator_and_ping_ignores_the_rest_of_its_line():
    assert parse(b"CONNECT\r\nPINGxyz\r\n") == [(CONNECT, b""), (PING,)]


def test_unsub_with_an_unparsable_max_means_unsubscribe_now():
    assert parse(b"UNSUB 1 x\r\nUNSUB 2 -1\r\nUNSUB 3 0\r\n") == [
        (UNSUB, b"1", 0), (UNSUB, b"2", 0), (UNSUB, b"3", 0)]


def test_zero_length_header_block_is_a_plain_message():
    assert parse(b"HPUB h 0 2\r\nhi\r\n") == [(PUB, b"h", b"", -1, b"hi")]


def test_parser_pauses_after_connect_so_negotiated_headers_apply_to_what_follows():
    parser = ClientParser(headers=False)
    events = parser.feed(b"CONNECT {}\r\nHPUB h 2 2\r\n\r\n\r\n")
    assert events == [(CONNECT, b"{}")]
    assert parser.paused
    parser.headers = True
    assert parser.feed(b"") == [(PUB, b"h", b"", 2, b"\r\n")]


@pytest.mark.parametrize("data", [
    b"FOO bar\r\n", b"PUBX foo 1\r\n", b"SUB\r\n", b"MSG foo 1 1\r\n", b"\x00\x01\r\n",
    b" PING\r\n",
])
def test_unknown_operations_are_fatal_with_the_nats_server_error(data):
    events = parse(data)
    assert events[-1] == (FATAL, ERR_UNKNOWN_OP, "parse")


def test_unknown_operation_is_refused_before_the_line_ends():
    parser = ClientParser()
    assert parser.feed(b"XY") == [(FATAL, ERR_UNKNOWN_OP, "parse")]
    assert parser.feed(b"Z\r\n") == []


def test_a_valid_prefix_waits_for_the_rest():
    parser = ClientParser()
    assert parser.feed(b"PU") == []
    assert parser.feed(b"B a 1\r\nx\r\n") == [(PUB, b"a", b"", -1, b"x")]


@pytest.mark.parametrize("data", [
    b"PUB foo\r\n", b"PUB foo bar baz 1\r\n", b"PUB foo x\r\n", b"PUB foo -1\r\n",
    b"PUB foo +1\r\n", b"HPUB foo 5 2\r\n", b"HPUB foo 1\r\n", b"SUB a b c d\r\n",
    b"UNSUB\tx y z\r\n", b"PUB foo 1234567890\r\n",
])
def test_malformed_arguments_close_without_an_err_line(data):
    assert parse(data)[-1] == (FATAL, None, "protocol violation")


def test_payload_not_followed_by_crlf_is_a_protocol_error():
    assert parse(b"PUB foo 2\r\nabc\r\n") == [(FATAL, ERR_UNKNOWN_OP, "parse")]


def test_a_wrong_byte_after_the_payload_is_refused_without_waiting_for_more():
    parser = ClientParser()
    assert parser.feed(b"PUB a 1\r\n") == []
    assert parser.feed(b"x\n") == [(FATAL, ERR_UNKNOWN_OP, "parse")]


def test_unterminated_control_line_is_measured_without_op_and_leading_blanks():
    parser = ClientParser(max_control_line=16)
    assert parser.feed(b"PUB    " + b"a" * 16) == []
    assert parser.feed(b"b") == [(FATAL, ERR_MAX_CONTROL_LINE, "max_control_line")]
    assert ClientParser(max_control_line=16).feed(b"PING" + b"x" * 100) == []


def test_payload_over_max_payload_is_refused_before_it_arrives():
    events = ClientParser(max_payload=10).feed(b"PUB foo 11\r\n")
    assert events == [(FATAL, ERR_MAX_PAYLOAD, "max_payload")]


def test_payload_at_max_payload_is_accepted():
    assert parse(b"PUB foo 10\r\n0123456789\r\n", max_payload=10) == [
        (PUB, b"foo", b"", -1, b"0123456789")]


def test_control_line_over_the_limit_is_fatal_whole_or_partial():
    line = b"SUB " + b"a" * 200 + b" 1\r\n"
    assert parse(line, max_control_line=64)[-1] == (FATAL, ERR_MAX_CONTROL_LINE,
                                                     "max_control_line")
    partial = ClientParser(max_control_line=64).feed(b"SUB " + b"a" * 200)
    assert partial[-1] == (FATAL, ERR_MAX_CONTROL_LINE, "max_control_line")


def test_hpub_is_refused_when_headers_were_not_negotiated():
    assert parse(b"HPUB h 2 2\r\n\r\n\r\n", headers=False) == [
        (FATAL, None, "headers not supported")]


def test_nothing_is_parsed_after_a_fatal_error():
    parser = ClientParser()
    assert parser.feed(b"BAD\r\nPING\r\n") == [(FATAL, ERR_UNKNOWN_OP, "parse")]
    assert parser.feed(b"PING\r\n") == []


def test_large_payload_arriving_in_many_reads_is_reassembled():
    payload = bytes(range(256)) * 4096  # 1 MiB
    data = b"PUB big 1048576\r\n" + payload + b"\r\nPING\r\n"
    parser = ClientParser()
    events: list[tuple] = []
    for i in range(0, len(data), 65536):
        events += parser.feed(data[i:i + 65536])
    assert events == [(PUB, b"big", b"", -1, payload), (PING,)]


def test_encoders_produce_exact_bytes():
    assert protocol.err_line("Invalid Subject") == b"-ERR 'Invalid Subject'\r\n"
    assert protocol.info_line(b"{}") == b"INFO {} \r\n"  # the space is nats-server's
    assert protocol.msg_frame(b"a.b", b"7", b"", -1, b"hi") == b"MSG a.b 7 2\r\nhi\r\n"
    assert protocol.msg_frame(b"a", b"1", b"r", -1, b"") == b"MSG a 1 r 0\r\n\r\n"
    assert protocol.msg_frame(b"a", b"1", b"", 12, b"NATS/1.0\r\n\r\nx") == \
        b"HMSG a 1 12 13\r\nNATS/1.0\r\n\r\nx\r\n"


_ops = st.sampled_from([
    b"PUB a 1\r\nx\r\n", b"HPUB a 12 12\r\nNATS/1.0\r\n\r\n\r\n", b"SUB a 1\r\n", b"PING\r\n",
    b"PONG\r\n", b"UNSUB 1\r\n", b"CONNECT {}\r\n", b"pub a.b r 3\r\nabc\r\n", b"\r\n", b"+OK\r\n",
])


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(_ops, st.binary(max_size=40)), max_size=12),
       st.lists(st.integers(min_value=1, max_value=64), max_size=8))
def test_fuzz_no_input_raises_and_fatal_is_final(chunks, cuts):
    """Whatever the bytes and however they are split, the parser returns events, never raises,
    and produces nothing after a FATAL event."""
    data = b"".join(chunks)
    parser = ClientParser(max_control_line=256, max_payload=1024)
    events: list[tuple] = []
    pos = 0
    for cut in [*cuts, len(data)]:
        events += parser.feed(data[pos:pos + cut])
        while parser.paused:
            events += parser.feed(b"")
        pos += cut
    events += parser.feed(data[pos:])
    fatal = [i for i, e in enumerate(events) if e[0] == FATAL]
    assert not fatal or fatal[0] == len(events) - 1
    for event in events:
        assert isinstance(event, tuple) and event[0] in range(1, 11)
