"""TLS on the client port, with nats-py and with raw sockets, against each implementation.

INFO says `tls_required` (and `tls_verify`); the client upgrades after INFO (or before it with
`handshake_first`). A plain client on a TLS port, a silent one, one without the client
certificate `verify` asks for, or with a certificate from another CA is refused: the connection
closes, nothing else is disturbed. Certificates are made by the test (tests/certs.py).
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import time
import urllib.request

import nats
import pytest
from cryptography.x509.oid import NameOID

from tests.certs import authority
from tests.conformance.conftest import impl_version

pytestmark = pytest.mark.conformance(area="tls")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("pki"))
    ca = authority(directory)
    other = authority(directory, "other-ca")
    return {
        "ca": ca.ca_file,
        "server": ca.issue("server"),
        "client": ca.issue("client", hosts=(), client=True),
        "stranger": other.issue("stranger", hosts=(), client=True),
        "expired": ca.issue("expired", hosts=(), client=True, expired=True),
        "alice": ca.issue("alice", hosts=(), client=True, subject=(
            (NameOID.COUNTRY_NAME, "US"), (NameOID.ORGANIZATION_NAME, "Acme"),
            (NameOID.ORGANIZATIONAL_UNIT_NAME, "Ops"), (NameOID.COMMON_NAME, "alice"))),
        "bob": ca.issue("bob", hosts=(), client=True, emails=("bob@acme.test",)),
        "carol": ca.issue("carol", hosts=(), client=True),
        "dave": ca.issue("dave", hosts=(), client=True, subject=(
            (NameOID.DOMAIN_COMPONENT, "test"), (NameOID.DOMAIN_COMPONENT, "acme"),
            (NameOID.COMMON_NAME, "dave"))),
    }


def tls_block(pki, **extra) -> str:
    lines = [f'cert_file: "{pki["server"].cert}"', f'key_file: "{pki["server"].key}"',
             f'ca_file: "{pki["ca"]}"'] + [f"{k}: {json.dumps(v)}" for k, v in extra.items()]
    return "tls {\n  " + "\n  ".join(lines) + "\n}\n"


def client_context(pki, cert: str | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=pki["ca"])
    if cert is not None:
        context.load_cert_chain(pki[cert].cert, pki[cert].key)
    return context


def read_info(sock: socket.socket) -> dict:
    line = b""
    while not line.endswith(b"\r\n"):
        chunk = sock.recv(1)
        assert chunk, "closed before INFO"
        line += chunk
    assert line.startswith(b"INFO ")
    return json.loads(line[5:])


def closes_without_answer(sock: socket.socket, timeout: float = 5.0) -> bool:
    sock.settimeout(timeout)
    try:
        return sock.recv(4096) == b""
    except ConnectionResetError:
        return True


async def roundtrip(url: str, **options) -> bytes:
    nc = await nats.connect(url, allow_reconnect=False, max_reconnect_attempts=0,
                            connect_timeout=3, **options)
    try:
        sub = await nc.subscribe("tls.echo")
        await nc.publish("tls.echo", b"over tls")
        return (await sub.next_msg(timeout=3)).data
    finally:
        await nc.close()


def test_info_requires_tls_and_nats_py_connects(start_server, pki):
    srv = start_server(config_text=tls_block(pki))
    with socket.create_connection((srv.host, srv.port)) as sock:
        info = read_info(sock)
    assert info["tls_required"] is True and "tls_verify" not in info
    data = asyncio.run(roundtrip(f"tls://{srv.host}:{srv.port}", tls=client_context(pki)))
    assert data == b"over tls"


def test_verify_takes_a_client_certificate_from_the_ca(start_server, pki):
    srv = start_server(config_text=tls_block(pki, verify=True))
    with socket.create_connection((srv.host, srv.port)) as sock:
        assert read_info(sock)["tls_verify"] is True
    url = f"tls://{srv.host}:{srv.port}"
    assert asyncio.run(roundtrip(url, tls=client_context(pki, "client"))) == b"over tls"


@pytest.mark.parametrize("cert", [None, "stranger", "expired"],
                         ids=["no-certificate", "other-ca", "expired"])
def test_verify_refuses_other_client_certificates(start_server, pki, cert):
    srv = start_server(config_text=tls_block(pki, verify=True))
    with socket.create_connection((srv.host, srv.port)) as raw:
        read_info(raw)
        with client_context(pki, cert).wrap_socket(raw, server_hostname="127.0.0.1") as sock:
            # TLS 1.3: the client's side of the handshake ends before the server judges the
            # certificate; the refusal shows on the next read (an alert, or the close).
            try:
                sock.sendall(b'CONNECT {"verbose":false}\r\nPING\r\n')
                answer = sock.recv(4096)
            except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
                answer = b""
            assert b"PONG" not in answer
    good = asyncio.run(roundtrip(f"tls://{srv.host}:{srv.port}",
                                 tls=client_context(pki, "client")))
    assert good == b"over tls"  # the refused ones disturbed nothing


def test_a_plain_client_is_closed_without_an_answer(start_server, pki):
    srv = start_server(config_text=tls_block(pki))
    with socket.create_connection((srv.host, srv.port)) as sock:
        read_info(sock)
        sock.sendall(b'CONNECT {"verbose":true}\r\nPING\r\n')
        assert closes_without_answer(sock)


def test_a_silent_client_is_closed_after_the_tls_timeout(start_server, pki):
    srv = start_server(config_text=tls_block(pki, timeout=0.5))
    with socket.create_connection((srv.host, srv.port)) as sock:
        read_info(sock)
        started = time.monotonic()
        assert closes_without_answer(sock)
        assert 0.3 < time.monotonic() - started < 3.0


def test_handshake_first(start_server, pki, impl):
    if impl_version(impl) < (2, 10, 4):
        pytest.skip("handshake_first came with nats-server 2.10.4")
    srv = start_server(config_text=tls_block(pki, handshake_first=True))
    url = f"tls://{srv.host}:{srv.port}"
    data = asyncio.run(roundtrip(url, tls=client_context(pki), tls_handshake_first=True))
    assert data == b"over tls"
    with socket.create_connection((srv.host, srv.port)) as raw, \
            client_context(pki).wrap_socket(raw, server_hostname="127.0.0.1") as sock:
        assert read_info(sock)["tls_required"] is True  # INFO comes after the handshake


def test_command_line_flags(start_server, pki):
    srv = start_server(["--tlscert", pki["server"].cert, "--tlskey", pki["server"].key,
                        "--tlscacert", pki["ca"], "--tlsverify"])
    with socket.create_connection((srv.host, srv.port)) as sock:
        info = read_info(sock)
    assert info["tls_required"] is True and info["tls_verify"] is True
    url = f"tls://{srv.host}:{srv.port}"
    assert asyncio.run(roundtrip(url, tls=client_context(pki, "client"))) == b"over tls"


def test_connz_shows_the_tls_version_and_suite(start_server, pki):
    srv = start_server(config_text=tls_block(pki))

    async def check() -> dict:
        nc = await nats.connect(f"tls://{srv.host}:{srv.port}", tls=client_context(pki),
                                allow_reconnect=False)
        try:
            await nc.flush()
            with urllib.request.urlopen(srv.monitor_url + "/connz", timeout=5) as resp:
                return json.loads(resp.read())
        finally:
            await nc.close()

    conn = asyncio.run(check())["connections"][0]
    assert conn["tls_version"] == "1.3"
    assert conn["tls_cipher_suite"].startswith("TLS_AES_")


MAPPED_USERS = """
authorization { users = [
  {user: "CN=alice,OU=Ops,O=Acme,C=US", permissions: {publish: "tls.>", subscribe: "tls.>"}}
  {user: "bob@acme.test", permissions: {publish: "tls.>", subscribe: "tls.>"}}
  {user: "CN=dave,DC=acme,DC=test", permissions: {publish: "tls.>", subscribe: "tls.>"}}
] }
"""


@pytest.mark.parametrize("cert", ["alice", "bob", "dave"])
def test_verify_and_map_takes_the_user_from_the_certificate(start_server, pki, cert):
    srv = start_server(config_text=tls_block(pki, verify_and_map=True) + MAPPED_USERS)
    with socket.create_connection((srv.host, srv.port)) as sock:
        info = read_info(sock)
    assert info["tls_verify"] is True and info["auth_required"] is True
    url = f"tls://{srv.host}:{srv.port}"
    assert asyncio.run(roundtrip(url, tls=client_context(pki, cert))) == b"over tls"
    closed = json.loads(urllib.request.urlopen(  # the connection was the mapped user's
        f"{srv.monitor_url}/connz?auth=1&state=closed").read())["connections"]
    assert closed[-1]["authorized_user"] == {"alice": "CN=alice,OU=Ops,O=Acme,C=US",
                                             "bob": "bob@acme.test",
                                             "dave": "CN=dave,DC=acme,DC=test"}[cert]


def test_verify_and_map_refuses_a_certificate_naming_no_user(start_server, pki):
    srv = start_server(config_text=tls_block(pki, verify_and_map=True) + MAPPED_USERS)
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        asyncio.run(roundtrip(f"tls://{srv.host}:{srv.port}", tls=client_context(pki, "carol")))


def test_cipher_suites_choose_what_tls_1_2_offers(start_server, pki):
    suites = ["TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"]
    srv = start_server(config_text=tls_block(pki, cipher_suites=suites))
    context = client_context(pki)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection((srv.host, srv.port)) as raw:
        read_info(raw)
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
            assert sock.cipher()[0] == "ECDHE-ECDSA-AES256-GCM-SHA384"
    context.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256")  # a suite the server does not offer
    with socket.create_connection((srv.host, srv.port)) as raw:
        read_info(raw)
        with pytest.raises(ssl.SSLError):
            context.wrap_socket(raw, server_hostname="127.0.0.1")
