"""NATS over WebSocket (`websocket { }`): nats-py's ws:// and a raw wsproto client, against each
implementation. After the HTTP upgrade, INFO comes in a binary frame and the protocol may be
split across frames anyhow; an origin not allowed gets 403, a request that is not an upgrade
400, and a WebSocket listener without TLS must say `no_tls: true`."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import ssl
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import nats
import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto.events import Message as WsMessage

from tests.certs import authority

pytestmark = pytest.mark.conformance(area="websocket")

PLAIN = "websocket {\n  port: -1\n  no_tls: true\n}\n"
REPO = Path(__file__).resolve().parents[2]
JS_CLIENTS = Path(__file__).resolve().parent / "js_clients"
NATS_WS = REPO / ".tools" / "node_modules" / "nats.ws" / "cjs" / "nats.js"


def ws_url(srv) -> str:
    return srv.ports["websocket"][0]


class RawClient:
    """A WebSocket client speaking NATS protocol bytes in frames (wsproto, blocking socket)."""

    def __init__(self, url: str, origin: str | None = None) -> None:
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=5)
        self.ws = WSConnection(ConnectionType.CLIENT)
        headers = [(b"Origin", origin.encode())] if origin else []
        self.sock.sendall(self.ws.send(Request(host=f"{parts.hostname}:{parts.port}",
                                               target="/", extra_headers=headers)))
        self.pending: list[object] = []
        self.upgrade = self._next_event()
        self.received = b""

    def _next_event(self) -> object:
        while not self.pending:
            data = self.sock.recv(65536)
            self.ws.receive_data(data or None)
            self.pending.extend(self.ws.events())
            if not data and not self.pending:
                raise ConnectionError("closed")
        return self.pending.pop(0)

    def send(self, data: bytes) -> None:
        self.sock.sendall(self.ws.send(WsMessage(data=data)))

    def read_until(self, marker: bytes) -> bytes:
        while marker not in self.received:
            event = self._next_event()
            if isinstance(event, (BytesMessage, TextMessage)):
                data = event.data
                self.received += data.encode() if isinstance(data, str) else bytes(data)
        return self.received

    def close(self) -> None:
        self.sock.close()


def test_nats_py_over_websocket(start_server):
    srv = start_server(config_text=PLAIN)

    async def roundtrip() -> tuple[bytes, bytes]:
        nc = await nats.connect(ws_url(srv), allow_reconnect=False)
        try:
            sub = await nc.subscribe("ws.echo")
            await nc.publish("ws.echo", b"framed")
            got = (await sub.next_msg(timeout=3)).data

            async def answer(msg):
                await msg.respond(b"answered over ws")
            await nc.subscribe("ws.service", cb=answer)
            reply = await nc.request("ws.service", b"q", timeout=3)
            return got, reply.data
        finally:
            await nc.close()

    assert asyncio.run(roundtrip()) == (b"framed", b"answered over ws")


def test_info_in_a_frame_and_the_protocol_split_across_frames(start_server):
    srv = start_server(config_text=PLAIN)
    client = RawClient(ws_url(srv))
    try:
        assert isinstance(client.upgrade, AcceptConnection)
        info = client.read_until(b"\r\n")
        assert info.startswith(b"INFO ") and json.loads(info[5:info.index(b"\r\n")])
        client.received = b""
        client.send(b'CONNECT {"verbose":false,"pedantic":false}\r\nSUB a 1\r\nPUB a 5\r\nhe')
        client.send(b"llo\r\nPI")
        client.send(b"NG\r\n")
        assert client.read_until(b"PONG\r\n") == b"MSG a 1 5\r\nhello\r\nPONG\r\n"
    finally:
        client.close()


def test_an_origin_not_allowed_is_forbidden(start_server):
    srv = start_server(config_text="websocket {\n  port: -1\n  no_tls: true\n"
                                   '  allowed_origins: ["https://app.example.com"]\n}\n')
    refused = RawClient(ws_url(srv), origin="https://evil.example.com")
    assert isinstance(refused.upgrade, RejectConnection) and refused.upgrade.status_code == 403
    refused.close()
    allowed = RawClient(ws_url(srv), origin="https://app.example.com")
    assert isinstance(allowed.upgrade, AcceptConnection)
    allowed.close()


def test_a_request_that_is_not_an_upgrade_is_a_bad_request(start_server):
    srv = start_server(config_text=PLAIN)
    parts = urlsplit(ws_url(srv))
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 400 ")


def test_no_tls_must_be_said(start_server):
    with pytest.raises(RuntimeError, match="websocket requires TLS configuration"):
        start_server(config_text="websocket {\n  port: -1\n}\n")


def test_websocket_over_tls(start_server, tmp_path):
    ca = authority(str(tmp_path / "pki"))
    pair = ca.issue("server")
    srv = start_server(config_text=(
        "websocket {\n  port: -1\n"
        f'  tls {{ cert_file: "{pair.cert}", key_file: "{pair.key}" }}\n}}\n'))
    url = ws_url(srv)
    assert url.startswith("wss://")

    async def roundtrip() -> bytes:
        nc = await nats.connect(url, tls=ssl.create_default_context(cafile=ca.ca_file),
                                allow_reconnect=False)
        try:
            sub = await nc.subscribe("wss.echo")
            await nc.publish("wss.echo", b"over wss")
            return (await sub.next_msg(timeout=3)).data
        finally:
            await nc.close()

    assert asyncio.run(roundtrip()) == b"over wss"


def test_nats_ws_the_javascript_client(start_server):
    """A second client: nats.ws, the official JavaScript client, in Node (installed by
    `make js-clients`; Node 20 needs --experimental-websocket for its WebSocket)."""
    node = shutil.which("node")
    if node is None or not NATS_WS.exists():
        pytest.skip("node or nats.ws not installed (`make js-clients`)")
    srv = start_server(config_text=PLAIN)
    done = subprocess.run(
        [node, "--no-warnings", "--experimental-websocket", str(JS_CLIENTS / "natsws_roundtrip.js"),
         ws_url(srv)], env={**os.environ, "NATS_WS": str(NATS_WS)}, capture_output=True,
        text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.split() == ["echo:from", "nats.ws", "reply:answered"]
