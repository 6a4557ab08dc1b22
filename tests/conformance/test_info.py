"""INFO sent on accept."""

from __future__ import annotations

import json
import re

import pytest

from .wire import PING, PONG

pytestmark = pytest.mark.conformance(area="info")

SEMVER = re.compile(r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
REQUIRED_KEYS = {
    "server_id",
    "server_name",
    "version",
    "proto",
    "go",
    "host",
    "port",
    "headers",
    "max_payload",
    "client_id",
    "client_ip",
}


def test_info_is_sent_first_unprompted(server, connect):
    c = connect(read_info=False)
    line = c.read_line()  # the client sent nothing: the server speaks first
    assert line.startswith(b"INFO {"), line
    assert line.endswith(b"\r\n"), line
    assert line.count(b"\n") == 1
    info = json.loads(line[len(b"INFO ") :])
    assert isinstance(info, dict)


def test_info_keys_and_values(server, connect):
    c = connect()
    info = c.info
    missing = REQUIRED_KEYS - info.keys()
    assert not missing, f"INFO lacks {sorted(missing)}: {info}"
    assert info["proto"] == 1
    assert info["headers"] is True
    assert info["max_payload"] == 1048576
    assert SEMVER.match(info["version"]), info["version"]
    assert info["host"] == "127.0.0.1"
    assert info["port"] == server.port
    assert info["client_ip"] == "127.0.0.1"
    assert isinstance(info["client_id"], int) and info["client_id"] > 0
    assert isinstance(info["server_id"], str) and info["server_id"]
    assert isinstance(info["server_name"], str) and info["server_name"]
    assert isinstance(info["go"], str)
    # Optional flags are omitted when false, never sent as false.
    for key in ("auth_required", "tls_required", "jetstream"):
        assert key not in info, f"{key} should be absent: {info}"


def test_client_id_is_unique_and_increasing(server, connect):
    a, b = connect(), connect()
    assert b.info["client_id"] > a.info["client_id"]
    assert a.info["server_id"] == b.info["server_id"]


def test_nothing_follows_info_before_client_speaks(server, connect):
    # PING is legal before CONNECT when no auth is configured; the PONG must be the very next
    # bytes after INFO, proving the server sent nothing else unprompted.
    c = connect()
    c.send(PING)
    c.expect(PONG)


@pytest.mark.nats_quirk
def test_info_line_has_space_before_crlf(server, connect):
    # nats-server 2.9.10 writes "INFO {...} \r\n" (a space before CRLF). Clients tolerate both.
    c = connect()
    assert c.info_line.endswith(b"} \r\n"), c.info_line


def test_info_advertises_jetstream_when_enabled(start_server, connect, tmp_path):
    srv = start_server(["-js", "-sd", str(tmp_path / "js")])
    c = connect(srv)
    assert c.info.get("jetstream") is True
