"""Server-initiated PINGs: ping_interval / ping_max and the short first PING."""

from __future__ import annotations

import time

import pytest

from .wire import PING, PONG, err

pytestmark = pytest.mark.conformance(area="ping")

FAST_PINGS = 'ping_interval: "1s"\nping_max: 1\n'


def test_unanswered_pings_make_connection_stale(start_server, connect):
    srv = start_server(config_text=FAST_PINGS)
    c = connect(srv)
    c.handshake()
    started = time.monotonic()
    # With ping_max 1: one PING after ~1s (+ up to 20% jitter), and at the next tick, as the
    # PING is still unanswered, the error and the close.
    c.assert_closed(PING + err("Stale Connection"), timeout=4.0)
    elapsed = time.monotonic() - started
    assert 1.5 <= elapsed <= 3.5, f"stale after {elapsed:.2f}s"


def test_stale_applies_before_connect(start_server, connect):
    srv = start_server(config_text=FAST_PINGS)
    c = connect(srv)  # never sends anything
    c.assert_closed(PING + err("Stale Connection"), timeout=4.0)


def test_answering_pings_keeps_connection(start_server, connect):
    srv = start_server(config_text=FAST_PINGS)
    c = connect(srv)
    c.handshake()
    for _ in range(2):  # two full intervals: a stale connection would be closed by now
        c.expect(PING, timeout=2.0)
        c.send(PONG)
    c.assert_open()


@pytest.mark.nats_quirk
def test_first_ping_comes_early_with_default_interval(server, connect):
    # Default ping_interval is 2m, but the first PING to a client is sent after
    # min(ping_interval, 2s) plus up to 20% jitter, to measure RTT. Tests that keep a
    # connection open longer than ~2s must expect this PING.
    c = connect()
    c.handshake()
    started = time.monotonic()
    c.expect(PING, timeout=3.5)
    elapsed = time.monotonic() - started
    assert 1.5 <= elapsed <= 3.0, f"first PING after {elapsed:.2f}s"
    c.send(PONG)
    c.assert_open()
