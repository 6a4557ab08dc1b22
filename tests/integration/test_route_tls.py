"""Routes over TLS (`cluster { tls { } }`), mutual: two servers with certificates from the
cluster's CA form a route and carry messages; a server whose certificate another CA signed
cannot join, and the refusal is logged once, not at every retry."""

from __future__ import annotations

import asyncio
import socket

import nats

from tests.certs import authority
from tests.clusters import wait_for
from tests.procs import start_server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(path, name: str, port: int, routes: list[int], pair, ca_file: str) -> str:
    text = (f"server_name: {name}\ncluster {{\n  name: c\n  listen: 127.0.0.1:{port}\n"
            f"  routes: [{', '.join(f'nats://127.0.0.1:{p}' for p in routes)}]\n"
            f'  tls {{ cert_file: "{pair.cert}", key_file: "{pair.key}", '
            f'ca_file: "{ca_file}", verify: true, timeout: 2 }}\n}}\n')
    path.write_text(text)
    return str(path)


def _routes(server) -> int:
    return server.get("/routez")[1]["num_routes"]


async def test_routes_over_tls(tmp_path):
    ca = authority(str(tmp_path / "pki"))
    stranger_ca = authority(str(tmp_path / "other"), "other-ca")
    ports = [_free_port() for _ in range(3)]
    good = [ca.issue(f"s{i}", hosts=("127.0.0.1",), both=True) for i in range(2)]
    servers = []
    try:
        for i in range(2):
            conf = _config(tmp_path / f"s{i}.conf", f"S{i}", ports[i], ports[:2], good[i],
                           ca.ca_file)
            servers.append(start_server("broker", ["-c", conf], workdir=str(tmp_path)))
        wait_for(lambda: all(_routes(s) == 1 for s in servers), 15, "the TLS route")

        sub_nc = await nats.connect(servers[1].url)
        sub = await sub_nc.subscribe("over.tls")
        await sub_nc.flush()
        pub_nc = await nats.connect(servers[0].url)
        deadline = asyncio.get_running_loop().time() + 10
        got = None
        while got is None:  # the interest reaches S0 over the route
            await pub_nc.publish("over.tls", b"routed")
            try:
                got = await sub.next_msg(timeout=0.2)
            except nats.errors.TimeoutError:
                assert asyncio.get_running_loop().time() < deadline, "nothing routed"
        assert got.data == b"routed"
        await pub_nc.close()
        await sub_nc.close()

        intruder_pair = stranger_ca.issue("s2", hosts=("127.0.0.1",), both=True)
        conf = _config(tmp_path / "s2.conf", "S2", ports[2], [ports[0]], intruder_pair,
                       stranger_ca.ca_file)
        intruder = start_server("broker", ["-c", conf], workdir=str(tmp_path))
        servers.append(intruder)
        wait_for(lambda: "TLS route handshake error" in intruder.log(), 10,
                 "the intruder's refusal")
        assert _routes(intruder) == 0 and all(_routes(s) == 1 for s in servers[:2])
        await asyncio.sleep(1.5)  # several retries (back-off from 0.1 s): still one log line
        assert intruder.log().count("TLS route handshake error") == 1
        for server in servers:
            assert "Traceback" not in server.log()
    finally:
        for server in servers:
            server.stop()
