"""The client connection's rules (broker.session), sans-IO: bytes in, actions and bytes out.

No sockets, no event loop: a fake host gives options and auth, a fake clock gives the time.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from broker.auth import Authenticator
from broker.protocol import PUB
from broker.session import (
    AUTHENTICATED,
    CLOSE,
    INFO_DUE,
    NEGOTIATED,
    PUBLISH,
    SEND,
    SUBSCRIBE,
    UNSUBSCRIBE,
    ClientSession,
    ClosedReason,
    is_reserved,
)
from config.options import Options, Permissions, User

QUIET = b'CONNECT {"verbose":false,"pedantic":false}\r\n'


class Host:
    def __init__(self, options: Options, headers_supported: bool = True) -> None:
        self.options = options
        self.auth = Authenticator(options)
        self.headers_supported = headers_supported


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


OWNER = object()


def session_for(headers_supported: bool = True, **options) -> tuple[ClientSession, Clock]:
    clock = Clock()
    host = Host(Options(**options), headers_supported)
    return ClientSession(host, OWNER, 7, clock), clock


def run(session: ClientSession, data: bytes) -> list[tuple]:
    """Every action for `data`, as the host would apply them (stopping at a CLOSE)."""
    actions: list[tuple] = []
    events = session.receive(data)
    while True:
        for event in events:
            actions += session.handle(event)
            if actions and actions[-1][0] == CLOSE:
                return actions
        if not session.paused:
            return actions
        events = session.receive(b"")


def sent(actions: list[tuple]) -> bytes:
    return b"".join(action[1] for action in actions if action[0] == SEND)


def kinds(actions: list[tuple]) -> list[int]:
    return [action[0] for action in actions]


def closed_with(actions: list[tuple]) -> str | None:
    return actions[-1][1] if actions and actions[-1][0] == CLOSE else None


# CONNECT first, or an implicit one

def test_without_auth_an_operation_before_connect_is_an_implicit_connect():
    session, _ = session_for()
    actions = run(session, b"PING\r\n")
    assert actions == [(SEND, b"PONG\r\n")]
    assert session.connect_received
    assert session.pub_checks  # nats-server's defaults: verbose and pedantic


def test_with_auth_an_operation_before_connect_is_an_authorization_violation():
    session, _ = session_for(username="u", password="p")
    actions = run(session, b"SUB foo 1\r\n")
    assert sent(actions) == b"-ERR 'Authorization Violation'\r\n"
    assert closed_with(actions) == ClosedReason.AUTH_VIOLATION
    assert not session.subs


def test_with_auth_a_publish_before_connect_is_refused_not_routed():
    session, _ = session_for(username="u", password="p")
    actions = run(session, b"PUB foo 2\r\nhi\r\n")
    assert PUBLISH not in kinds(actions)
    assert closed_with(actions) == ClosedReason.AUTH_VIOLATION


def test_no_auth_user_authenticates_an_operation_before_connect():
    session, _ = session_for(users=[User("guest", "g")], no_auth_user="guest")
    actions = run(session, b"PING\r\n")
    assert actions == [(AUTHENTICATED,), (SEND, b"PONG\r\n")]
    assert session.identity is not None and session.identity.name == "guest"


def test_a_parse_error_before_connect_with_auth_is_an_authorization_violation():
    session, _ = session_for(authorization="secret")
    actions = run(session, b"BOGUS\r\n")
    assert sent(actions) == b"-ERR 'Authorization Violation'\r\n"
    assert closed_with(actions) == ClosedReason.AUTH_VIOLATION


# The CONNECT decode and checks, in nats-server's order

@pytest.mark.parametrize("connect", [
    b"CONNECT {bad json\r\n",
    b"CONNECT [1, 2]\r\n",
    b'CONNECT {"verbose":"yes"}\r\n',
    b'CONNECT {"protocol":true}\r\n',
    b'CONNECT {"name":5}\r\n',
])
def test_an_undecodable_connect_closes_without_an_error_line(connect):
    session, _ = session_for()
    actions = run(session, connect)
    assert actions == [(CLOSE, ClosedReason.PROTOCOL_VIOLATION)]


def test_connect_null_fields_keep_the_defaults():
    session, _ = session_for()
    actions = run(session, b'CONNECT {"verbose":null,"name":null}\r\n')
    assert actions == [(NEGOTIATED,), (SEND, b"+OK\r\n")]
    assert session.verbose and session.name == ""


def test_connect_checks_auth_before_the_protocol_version():
    session, _ = session_for(username="u", password="p")
    actions = run(session, b'CONNECT {"user":"u","pass":"wrong","protocol":9}\r\n')
    assert sent(actions) == b"-ERR 'Authorization Violation'\r\n"
    assert closed_with(actions) == ClosedReason.AUTH_VIOLATION


def test_connect_with_good_credentials_then_a_bad_protocol_version():
    session, _ = session_for(username="u", password="p")
    actions = run(session, b'CONNECT {"user":"u","pass":"p","protocol":2}\r\n')
    assert kinds(actions) == [NEGOTIATED, AUTHENTICATED, SEND, CLOSE]
    assert sent(actions) == b"-ERR 'invalid client protocol'\r\n"
    assert closed_with(actions) == ClosedReason.BAD_PROTOCOL


@pytest.mark.parametrize("protocol", [-1, 2])
def test_protocol_versions_out_of_range_are_refused(protocol):
    session, _ = session_for()
    actions = run(session, b'CONNECT {"protocol":%d}\r\n' % protocol)
    assert closed_with(actions) == ClosedReason.BAD_PROTOCOL


def test_no_responders_requires_headers():
    session, _ = session_for()
    actions = run(session, b'CONNECT {"no_responders":true}\r\n')
    assert sent(actions) == b"-ERR 'no responders requires headers support'\r\n"
    assert closed_with(actions) == ClosedReason.NO_RESPONDERS_HEADERS


def test_no_responders_requires_headers_the_server_supports():
    session, _ = session_for(headers_supported=False)
    actions = run(session, b'CONNECT {"no_responders":true,"headers":true}\r\n')
    assert closed_with(actions) == ClosedReason.NO_RESPONDERS_HEADERS
    session, _ = session_for()
    actions = run(session, b'CONNECT {"no_responders":true,"headers":true,"verbose":false}\r\n')
    assert actions == [(NEGOTIATED,)]
    assert session.no_responders and session.headers


def test_connect_records_the_client_fields():
    session, _ = session_for()
    run(session, b'CONNECT {"verbose":false,"echo":false,"name":"n","lang":"py",'
                 b'"version":"2.0","protocol":1}\r\n')
    assert (session.echo, session.name, session.lang, session.version, session.protocol) == \
        (False, "n", "py", "2.0", 1)


def test_a_later_connect_applies_on_top_of_the_current_options():
    session, _ = session_for()
    run(session, b'CONNECT {"verbose":false,"name":"first"}\r\n')
    actions = run(session, b'CONNECT {"pedantic":false}\r\n')
    assert actions == [(NEGOTIATED,)]  # no +OK: still not verbose
    assert session.name == "first" and not session.pedantic


def test_headers_negotiated_by_connect_apply_to_the_next_operation_in_the_same_read():
    hpub = b"HPUB h 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"
    session, _ = session_for()
    actions = run(session, QUIET + hpub)
    assert closed_with(actions) == ClosedReason.PROTOCOL_VIOLATION  # HPUB without headers
    assert sent(actions) == b""
    session, _ = session_for()
    actions = run(session, b'CONNECT {"verbose":false,"pedantic":false,"headers":true}\r\n' + hpub)
    assert actions == [(NEGOTIATED,), (PUBLISH, b"h", b"", 12, b"NATS/1.0\r\n\r\nhi")]


def test_negotiated_tells_the_host_when_what_delivery_reads_changes():
    session, _ = session_for()
    assert (session.echo, session.headers) == (True, False)
    assert run(session, b'CONNECT {"verbose":false,"echo":false,"headers":true}\r\n') == \
        [(NEGOTIATED,)]
    assert (session.echo, session.headers) == (False, True)
    assert NEGOTIATED not in kinds(run(session, b"PING\r\nSUB a 1\r\n"))
    perms = Permissions(allow_responses=True)
    session, _ = session_for(users=[User("a", "pw", perms)], no_auth_user="a")
    actions = run(session, b"PING\r\n")  # the no_auth_user's permissions apply
    assert kinds(actions) == [NEGOTIATED, AUTHENTICATED, SEND]
    assert session.perms is not None and session.tracks_responses


# Auth timeout

def test_auth_timeout_closes_an_unauthenticated_connection():
    session, _ = session_for(username="u", password="p", auth_timeout=3.5)
    assert session.auth_deadline() == 3.5
    actions = session.auth_timeout()
    assert sent(actions) == b"-ERR 'Authentication Timeout'\r\n"
    assert closed_with(actions) == ClosedReason.AUTH_TIMEOUT


def test_auth_timeout_is_harmless_once_authenticated():
    session, _ = session_for(username="u", password="p")
    actions = run(session, b'CONNECT {"user":"u","pass":"p","verbose":false}\r\n')
    assert kinds(actions) == [NEGOTIATED, AUTHENTICATED]
    assert session.auth_timeout() == []


def test_no_auth_timer_without_auth():
    session, _ = session_for()
    assert session.auth_deadline() is None


# Publishing: the fast path, verbose and pedantic, permissions

def test_without_checks_a_pub_event_passes_through_unchanged():
    session, _ = session_for()
    run(session, QUIET)
    assert not session.pub_checks
    event = session.receive(b"PUB foo r 2\r\nhi\r\n")[0]
    actions = session.handle(event)
    assert actions == [event] and actions[0] is event
    assert event[0] == PUBLISH == PUB


def test_verbose_acknowledges_each_publish_before_routing_it():
    session, _ = session_for()
    actions = run(session, b'CONNECT {"pedantic":false}\r\nPUB foo 2\r\nhi\r\n')
    assert actions == [(NEGOTIATED,), (SEND, b"+OK\r\n"), (SEND, b"+OK\r\n"),
                       (PUBLISH, b"foo", b"", -1, b"hi")]


def test_pedantic_complains_about_a_wildcard_subject_but_still_routes():
    session, _ = session_for()
    run(session, b'CONNECT {"verbose":false,"pedantic":true}\r\n')
    assert session.pub_checks
    actions = run(session, b"PUB foo.* 2\r\nhi\r\nPUB foo.bar 0\r\n\r\n")
    assert actions == [(SEND, b"-ERR 'Invalid Publish Subject'\r\n"),
                       (PUBLISH, b"foo.*", b"", -1, b"hi"),
                       (PUBLISH, b"foo.bar", b"", -1, b"")]


def test_no_client_publishes_to_the_clusters_own_subjects():
    session, _ = session_for()
    run(session, b'CONNECT {"verbose":false,"pedantic":false}\r\n')
    assert not session.pub_checks  # the fast path, which must still send $JSC. here
    actions = run(session, b"PUB $JSC.R.g.s.1 1\r\nx\r\nPUB $JS.ACK.s 1\r\ny\r\n")
    assert actions == [
        (SEND, b"-ERR 'Permissions Violation for Publish to \"$JSC.R.g.s.1\"'\r\n"),
        (PUBLISH, b"$JS.ACK.s", b"", -1, b"y")]
    assert is_reserved(b"$JSC.CATCHUP.g.s") and not is_reserved(b"$JS.API.INFO")


def test_publish_permission_violation_is_reported_and_not_routed():
    perms = Permissions(publish_allow=["ok.>"])
    session, _ = session_for(users=[User("a", "pw", perms)])
    run(session, b'CONNECT {"user":"a","pass":"pw","verbose":false,"pedantic":false}\r\n')
    assert session.pub_checks  # permissions keep the checked path
    actions = run(session, b"PUB no 1\r\nx\r\nPUB ok.1 1\r\ny\r\n")
    assert actions == [(SEND, b"-ERR 'Permissions Violation for Publish to \"no\"'\r\n"),
                       (PUBLISH, b"ok.1", b"", -1, b"y")]


def test_allow_responses_lets_a_client_answer_a_request_delivered_to_it():
    perms = Permissions(allow_responses=True)
    session, _ = session_for(users=[User("a", "pw", perms)])
    run(session, b'CONNECT {"user":"a","pass":"pw","verbose":false,"pedantic":false}\r\n')
    assert session.tracks_responses
    assert PUBLISH not in kinds(run(session, b"PUB _INBOX.1 0\r\n\r\n"))
    assert session.perms is not None
    session.perms.expect_response(b"_INBOX.1")  # what delivering the request does
    assert kinds(run(session, b"PUB _INBOX.1 0\r\n\r\n")) == [PUBLISH]


# Subscriptions

def test_subscribe_adds_the_subscription_then_acknowledges():
    session, _ = session_for()
    actions = run(session, b"SUB foo q 1\r\n")
    assert kinds(actions) == [SUBSCRIBE, SEND]
    sub = actions[0][1]
    assert (sub.subject, sub.queue, sub.sid, sub.client) == (b"foo", b"q", b"1", OWNER)
    assert session.subs == {b"1": sub}
    assert sent(actions) == b"+OK\r\n"


@pytest.mark.parametrize("line", [b"SUB foo. 1\r\n", b"SUB foo bad.q. 1\r\n", b"SUB a..b 1\r\n"])
def test_invalid_subjects_are_refused(line):
    session, _ = session_for()
    actions = run(session, line)
    assert actions == [(SEND, b"-ERR 'Invalid Subject'\r\n")]
    assert not session.subs


def test_a_reused_sid_is_ignored():
    session, _ = session_for()
    run(session, QUIET + b"SUB foo 1\r\n")
    actions = run(session, b"SUB bar 1\r\n")
    assert actions == []
    assert session.subs[b"1"].subject == b"foo"


def test_maximum_subscriptions():
    session, _ = session_for(max_subscriptions=2)
    run(session, QUIET + b"SUB a 1\r\nSUB b 2\r\n")
    actions = run(session, b"SUB c 3\r\n")
    assert actions == [(SEND, b"-ERR 'maximum subscriptions exceeded'\r\n")]
    assert len(session.subs) == 2


def test_subscribe_permission_violation_names_the_queue():
    perms = Permissions(subscribe_allow=["ok.>"])
    session, _ = session_for(users=[User("a", "pw", perms)])
    run(session, b'CONNECT {"user":"a","pass":"pw","verbose":false}\r\n')
    actions = run(session, b"SUB no q 1\r\nSUB no 2\r\n")
    assert sent(actions) == (
        b"-ERR 'Permissions Violation for Subscription to \"no\" using queue \"q\"'\r\n"
        b"-ERR 'Permissions Violation for Subscription to \"no\"'\r\n")
    assert SUBSCRIBE not in kinds(actions)


def test_unsubscribe_now_or_after_a_number_of_deliveries():
    session, _ = session_for()
    run(session, QUIET + b"SUB a 1\r\nSUB b 2\r\n")
    first, second = session.subs[b"1"], session.subs[b"2"]
    second.delivered = 3
    actions = run(session, b"UNSUB 1 5\r\nUNSUB 2 3\r\nUNSUB 9\r\n")
    assert actions == [(UNSUBSCRIBE, second)]  # already had its 3; 9 is unknown
    assert first.max == 5 and session.subs == {b"1": first}
    assert session.drop_subscription(first)  # the delivery path reached the limit
    assert not session.drop_subscription(first)


def test_verbose_acknowledges_unsub_even_for_an_unknown_sid():
    session, _ = session_for()
    assert run(session, b"UNSUB 1\r\n") == [(SEND, b"+OK\r\n")]


def test_take_subscriptions_empties_the_table():
    session, _ = session_for()
    run(session, QUIET + b"SUB a 1\r\nSUB b 2\r\n")
    taken = session.take_subscriptions()
    assert [sub.sid for sub in taken] == [b"1", b"2"]
    assert session.subs == {}


# PING/PONG and the first-PONG async INFO

def test_first_pong_is_followed_by_async_info_for_protocol_1_clients():
    session, _ = session_for()
    run(session, b'CONNECT {"verbose":false,"protocol":1}\r\n')
    assert run(session, b"PING\r\n") == [(SEND, b"PONG\r\n"), (INFO_DUE,)]
    assert run(session, b"PING\r\n") == [(SEND, b"PONG\r\n")]


def test_protocol_0_clients_get_no_async_info():
    session, _ = session_for()
    run(session, QUIET)
    assert run(session, b"PING\r\nPING\r\n") == [(SEND, b"PONG\r\n")] * 2


# The ping timer

def test_first_ping_comes_early_with_jitter():
    session, _ = session_for(ping_interval=120.0)
    assert session.first_ping_delay(0.0) == 2.0
    assert session.first_ping_delay(0.5) == pytest.approx(2.2)
    session, _ = session_for(ping_interval=1.0)
    assert session.first_ping_delay(0.0) == 1.0
    assert session.ping_interval == 1.0


def test_unanswered_pings_make_the_connection_stale():
    session, _ = session_for(ping_interval=10.0, ping_max=2)
    run(session, QUIET)
    assert session.ping_tick(110.0) == [(SEND, b"PING\r\n")]
    assert session.ping_tick(120.0) == [(SEND, b"PING\r\n")]
    actions = session.ping_tick(130.0)
    assert sent(actions) == b"-ERR 'Stale Connection'\r\n"
    assert closed_with(actions) == ClosedReason.STALE


def test_a_pong_resets_the_unanswered_count_and_measures_the_rtt():
    session, clock = session_for(ping_interval=10.0, ping_max=1)
    run(session, QUIET)
    assert session.ping_tick(110.0) == [(SEND, b"PING\r\n")]
    clock.now = 110.25
    run(session, b"PONG\r\n")
    assert session.rtt == pytest.approx(0.25)
    assert session.ping_tick(200.0) == [(SEND, b"PING\r\n")]  # idle: ping, not stale


def test_no_ping_while_the_client_is_visibly_active_once_the_rtt_is_known():
    session, clock = session_for(ping_interval=10.0, ping_max=1)
    run(session, QUIET)
    session.ping_tick(110.0)
    clock.now = 110.5
    run(session, b"PONG\r\n")
    clock.now = 115.0
    session.published()  # the host routed publishes at 115
    assert session.ping_tick(120.0) == []
    assert session.ping_tick(125.0) == [(SEND, b"PING\r\n")]  # 10s since the last publish
    clock.now = 130.0
    run(session, b"PING\r\n")  # a client PING counts as activity too
    assert session.ping_tick(135.0) == []


def test_without_an_rtt_the_timer_pings_even_an_active_client():
    session, clock = session_for(ping_interval=10.0)
    run(session, QUIET)
    clock.now = 109.0
    session.published()
    assert session.ping_tick(110.0) == [(SEND, b"PING\r\n")]


# Fatal parser errors and their close reasons

@pytest.mark.parametrize(("data", "err", "reason"), [
    (b"BOGUS\r\n", b"-ERR 'Unknown Protocol Operation'\r\n", ClosedReason.PARSE_ERROR),
    (b"PUB foo 99999\r\n", b"-ERR 'Maximum Payload Violation'\r\n", ClosedReason.MAX_PAYLOAD),
    (b"SUB " + b"x" * 5000 + b" 1\r\n", b"-ERR 'maximum control line exceeded'\r\n",
     ClosedReason.MAX_CONTROL_LINE),
    (b"SUB foo\r\n", b"", ClosedReason.PROTOCOL_VIOLATION),
    (b"-ERR 'oops'\r\n", b"", ClosedReason.PROTOCOL_VIOLATION),
])
def test_fatal_parser_errors_close_with_nats_server_reasons(data, err, reason):
    session, _ = session_for(max_payload=1024)
    actions = run(session, QUIET + b"PING\r\n" + data)
    assert sent(actions) == b"PONG\r\n" + err
    assert closed_with(actions) == reason


def test_the_session_does_not_import_asyncio():
    code = "import sys, broker.session; assert 'asyncio' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
