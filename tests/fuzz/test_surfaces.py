"""Hostile input on every surface a broker exposes, against a real broker process: client
frames, route frames, WebSocket upgrades and frames, JSON on every `$JS.API` subject, HTTP
monitoring requests, config files.

After each burst the server still answers, its log holds no traceback, and what was stored before
is unchanged. The inputs are random but reproducible: the seed is printed (FUZZ_SEED=<n> to run
one again), and a fixed seed runs first so a regression shows on every run.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import json
import os
import random
import socket
import string
import urllib.request

import nats
import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import Request

from config.errors import ConfigError
from config.loader import load
from tests.procs import ServerProcess, start_server

SEEDS = [1, int(os.environ.get("FUZZ_SEED", random.SystemRandom().randrange(1 << 30)))]
CANARY = [(f"canary.{i}", f"stored before the fuzz #{i}".encode()) for i in range(3)]
EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "config", "examples")
API = [
    "INFO", "STREAM.CREATE.{s}", "STREAM.UPDATE.{s}", "STREAM.NAMES", "STREAM.LIST",
    "STREAM.INFO.{s}", "STREAM.DELETE.{s}", "STREAM.PURGE.{s}", "STREAM.MSG.GET.{s}",
    "STREAM.MSG.DELETE.{s}", "STREAM.LEADER.STEPDOWN.{s}", "STREAM.PEER.REMOVE.{s}",
    "CONSUMER.CREATE.{s}", "CONSUMER.CREATE.{s}.{c}", "CONSUMER.CREATE.{s}.{c}.{t}",
    "CONSUMER.DURABLE.CREATE.{s}.{c}", "CONSUMER.INFO.{s}.{c}", "CONSUMER.DELETE.{s}.{c}",
    "CONSUMER.NAMES.{s}", "CONSUMER.LIST.{s}", "CONSUMER.MSG.NEXT.{s}.{c}",
    "CONSUMER.LEADER.STEPDOWN.{s}.{c}", "DIRECT.GET.{s}", "DIRECT.GET.{s}.{t}",
]
FRAMES = [
    b'CONNECT {"verbose":false,"pedantic":false,"headers":true,"protocol":1}\r\n',
    b"PUB fz.a 5\r\nhello\r\n", b"PUB fz.b _INBOX.x 3\r\nabc\r\n",
    b"HPUB fz.c 22 24\r\nNATS/1.0\r\nNats-Msg-Id: 1\r\n\r\nhi\r\n",
    b"HPUB fz.d _R 36 36\r\nNATS/1.0\r\nNats-Expected-Stream: X\r\n\r\n\r\n",
    b"SUB fz.> 1\r\n", b"SUB fz.* q 2\r\n", b"UNSUB 1 5\r\n", b"UNSUB 2\r\n", b"PING\r\n",
    b"PONG\r\n", b"-ERR 'x'\r\n", b"+OK\r\n",
]


def mutate(rng: random.Random, data: bytes) -> bytes:
    """A few random edits: flip, insert, delete, duplicate a slice, splice in raw bytes."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(out) + 1)
        edit = rng.randrange(6)
        if edit == 0 and out:
            out[min(at, len(out) - 1)] ^= 1 << rng.randrange(8)
        elif edit == 1:
            out[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 6)))
        elif edit == 2 and out:
            del out[at:at + rng.randint(1, 4)]
        elif edit == 3:
            out[at:at] = out[at:at + rng.randint(1, 12)]
        elif edit == 4:
            out[at:at] = rng.choice([b"\xff\xfe", b"\x00", b"\r\n", b" ", b".", b"*", b">",
                                     b"\xc3\x28", b"999999999999"])
        else:
            out[at:at] = rng.choice([b"{", b"}", b'"', b"[", b"]", b"null", b"-1", b"1e999"])
    return bytes(out)


def random_json(rng: random.Random, depth: int = 0) -> object:
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 1, 2**63, -(2**63), 2**64, rng.randrange(-1000, 1000)])
    if kind == 3:
        return rng.choice([0.5, -1e308, 1e308])
    if kind == 4:
        return "".join(rng.choice(string.printable) for _ in range(rng.randint(0, 12)))
    if kind == 5:
        return rng.choice(["", ">", "*", "fz.>", "a..b", "\u0000", "\ud7ff", "x" * 300])
    if kind == 6:
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    keys = ["name", "subjects", "config", "durable_name", "ack_policy", "deliver_policy",
            "batch", "expires", "seq", "last_by_subj", "filter", "keep", "max_msgs",
            "retention", "storage", "num_replicas", "stream_name", "action", "offset",
            "filter_subject", "max_deliver", "backoff", "no_wait", "deliver_subject"]
    return {rng.choice([*keys, "x"]): random_json(rng, depth + 1)
            for _ in range(rng.randint(0, 6))}


def api_body(rng: random.Random) -> bytes:
    choice = rng.randrange(5)
    if choice == 0:
        return b""
    if choice == 1:
        return bytes(rng.randrange(256) for _ in range(rng.randint(1, 40)))
    body = json.dumps(random_json(rng)).encode()
    return mutate(rng, body) if choice == 2 else body


def token(rng: random.Random) -> str:
    # Never CANARY: a well-formed purge or delete of it would be obeyed, rightly.
    return rng.choice(["FZ", "c", "*", ">", "", "a b", "\u00e9", "x" * 260, "FZ2"])


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    conf = tmp_path_factory.mktemp("fuzzconf") / "ws.conf"
    conf.write_text("websocket { port: -1, no_tls: true }\n")
    srv = start_server("broker", ["-js", "-sd", str(tmp_path_factory.mktemp("fuzz")),
                                  "-c", str(conf)])
    asyncio.run(_store_canary(srv))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def routed():
    """A server with a route listener (no JetStream: a clustered one needs its peers)."""
    cluster_port = _free_port()
    srv = start_server("broker", ["-n", "fz", "--cluster_name", "c",
                                  "--cluster", f"nats://127.0.0.1:{cluster_port}"])
    yield srv, cluster_port
    srv.stop()


async def _store_canary(srv: ServerProcess) -> None:
    nc = await nats.connect(srv.url)
    js = nc.jetstream()
    await js.add_stream(name="CANARY", subjects=["canary.>"])
    await js.add_stream(name="FZ", subjects=["fz.>"])
    for subject, data in CANARY:
        await js.publish(subject, data)
    await nc.close()


async def _still_serving(srv: ServerProcess) -> None:
    """The server answers, stored messages are intact, and nothing raised."""
    log = srv.log()
    assert "Traceback" not in log, log[log.index("Traceback") - 2000:][:6000]
    nc = await nats.connect(srv.url)
    js = nc.jetstream()
    info = await js.stream_info("CANARY")
    assert info.state.messages == len(CANARY)
    for seq, (subject, data) in enumerate(CANARY, start=1):
        msg = await js.get_msg("CANARY", seq)
        assert (msg.subject, msg.data) == (subject, data)
    await nc.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _blast(port: int, chunks: list[bytes]) -> None:
    """Send the chunks on one connection and read whatever comes back until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        for chunk in chunks:
            try:
                sock.sendall(chunk)
            except OSError:
                return  # the server closed on us: a fatal error it answered with -ERR
        try:
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(65536):
                pass
        except OSError:
            pass  # the server closed first


@pytest.mark.parametrize("seed", SEEDS)
async def test_client_frames(server, seed):
    print("FUZZ_SEED", seed)
    rng = random.Random(seed)
    for _ in range(60):
        frames = [FRAMES[0]] + [rng.choice(FRAMES) for _ in range(rng.randint(1, 20))]
        frames = [mutate(rng, f) if rng.random() < 0.5 else f for f in frames]
        frames.append(b"PUB fz." + bytes(rng.randrange(128, 256) for _ in range(3)) +
                      b" _R 2\r\nhi\r\nPING\r\n")
        await asyncio.to_thread(_blast, server.port, frames)
    await _still_serving(server)


@pytest.mark.parametrize("seed", SEEDS)
async def test_route_frames(routed, seed):
    print("FUZZ_SEED", seed)
    rng = random.Random(seed)
    corpus = [b'CONNECT {"name":"x","cluster":"c","jetstream":true}\r\n', b"INFO {}\r\n",
              b"RS+ $G fz.> \r\n", b"RS- $G fz.>\r\n", b"RMSG $G fz.a 2\r\nhi\r\n",
              b"RAFT _meta_ 3\r\nabc\r\n", b"PING\r\n", b"PONG\r\n"]
    for _ in range(40):
        frames = [mutate(rng, f) if rng.random() < 0.6 else f
                  for f in (rng.choice(corpus) for _ in range(rng.randint(1, 12)))]
        await asyncio.to_thread(_blast, routed[1], frames)
    log = routed[0].log()
    assert "Traceback" not in log, log[log.index("Traceback") - 2000:][:6000]
    nc = await nats.connect(routed[0].url)
    await nc.flush()
    await nc.close()


@pytest.mark.parametrize("seed", SEEDS)
async def test_jetstream_api_bodies(server, seed):
    print("FUZZ_SEED", seed)
    rng = random.Random(seed)
    for burst in range(12):
        frames = [FRAMES[0], b"SUB _R.> 1\r\n"]
        for i in range(50):
            api = rng.choice(API).format(s=token(rng), c=token(rng), t=token(rng))
            subject = ("$JS.API." + api).encode()
            if rng.random() < 0.1:
                subject += b"\xff\xfe"  # not UTF-8
            body = api_body(rng)
            frames.append(b"PUB %s _R.%d.%d %d\r\n%s\r\n" % (subject, burst, i, len(body),
                                                                 body))
        frames.append(b"PING\r\n")
        await asyncio.to_thread(_blast, server.port, frames)
    await _still_serving(server)


@pytest.mark.parametrize("seed", SEEDS)
async def test_websocket_upgrades_and_frames(server, seed):
    print("FUZZ_SEED", seed)
    rng = random.Random(seed)
    port = _websocket_port(server)
    for _ in range(60):
        ws = WSConnection(ConnectionType.CLIENT)
        upgrade = ws.send(Request(host=f"127.0.0.1:{port}", target="/"))
        frames = [_client_frame(rng, rng.choice(FRAMES)) for _ in range(rng.randint(0, 8))]
        chunks = [mutate(rng, upgrade) if rng.random() < 0.3 else upgrade]
        chunks += [mutate(rng, f) if rng.random() < 0.5 else f for f in frames]
        if rng.random() < 0.3:  # a frame header announcing far more than is sent
            chunks.append(b"\x82\xff" + bytes(rng.randrange(256) for _ in range(12)))
        await asyncio.to_thread(_blast, port, chunks)
    await _still_serving(server)


def _client_frame(rng: random.Random, data: bytes) -> bytes:
    """One masked binary frame, as a client sends it (RFC 6455 5.2)."""
    mask = bytes(rng.randrange(256) for _ in range(4))
    size = len(data)
    head = b"\x82" + (bytes([0x80 | size]) if size < 126 else b"\xfe" + size.to_bytes(2, "big"))
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def _websocket_port(server: ServerProcess) -> int:
    ports = glob.glob(os.path.join(server.workdir, "ports-*", "*.ports"))
    with open(ports[0]) as f:
        return int(json.load(f)["websocket"][0].rsplit(":", 1)[1])


@pytest.mark.parametrize("seed", SEEDS)
async def test_monitoring_requests(server, seed):
    print("FUZZ_SEED", seed)
    rng = random.Random(seed)
    paths = ["/varz", "/connz", "/subsz", "/routez", "/healthz", "/jsz", "/metrics", "/"]
    params = ["subs=detail", "state=any", "sort=idle", "limit=-1", "offset=x", "cid=\xff",
              "streams=true&consumers=true&config=1", "js-enabled-only=true", "test=fz.%ff",
              "account=%00", "stream=X", "accounts=1"]
    for _ in range(80):
        target = rng.choice(paths) + "?" + "&".join(rng.sample(params, rng.randint(0, 3)))
        request = f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode("utf-8", "replace")
        if rng.random() < 0.5:
            request = mutate(rng, request)
        await asyncio.to_thread(_blast, server.monitor_port, [request])
    status = urllib.request.urlopen(server.monitor_url + "/healthz", timeout=5).status
    assert status == 200
    await _still_serving(server)


@pytest.mark.parametrize("seed", SEEDS)
def test_config_files(tmp_path, seed):
    """A mutated config is loaded or refused with a ConfigError, never anything else."""
    print("FUZZ_SEED", seed)
    rng = random.Random(seed)
    texts = []
    for name in sorted(os.listdir(EXAMPLES)):
        with open(os.path.join(EXAMPLES, name), "rb") as f:
            texts.append((name, f.read()))
    for i in range(300):
        name, text = rng.choice(texts)
        path = tmp_path / f"{i}-{name}"
        path.write_bytes(mutate(rng, text))
        with contextlib.suppress(ConfigError):
            load(str(path))
