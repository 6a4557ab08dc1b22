"""TLS beyond the handshake: certificate rotation, HTTPS monitoring.

Certificate rotation: SIGHUP reads the certificate files again. New connections get the new
certificate, connections already open stay up, and files that cannot be loaded leave the server
as it was (the error is logged)."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import ssl
import urllib.error
import urllib.request

import nats
import pytest

from tests.certs import authority


def context(ca_file: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_file)


async def wait_for_log(server, text: str, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while text not in server.log():
        assert asyncio.get_running_loop().time() < deadline, f"{text!r} not logged"
        await asyncio.sleep(0.02)


async def test_sighup_rotates_the_certificate(start_broker, tmp_path):
    old_ca = authority(str(tmp_path / "old"), "old-ca")
    new_ca = authority(str(tmp_path / "new"), "new-ca")
    old, new = old_ca.issue("server"), new_ca.issue("server")
    cert, key = tmp_path / "server.pem", tmp_path / "server-key.pem"
    shutil.copy(old.cert, cert)
    shutil.copy(old.key, key)
    server = start_broker(config=f'tls {{ cert_file: "{cert}", key_file: "{key}" }}\n')
    url = f"tls://127.0.0.1:{server.port}"
    before = await nats.connect(url, tls=context(old_ca.ca_file), allow_reconnect=False)
    sub = await before.subscribe("rotation")

    shutil.copy(new.cert, cert)
    shutil.copy(new.key, key)
    server.signal(signal.SIGHUP)
    await wait_for_log(server, "Reloaded server configuration")

    after = await nats.connect(url, tls=context(new_ca.ca_file), allow_reconnect=False)
    await after.publish("rotation", b"on the new certificate")
    assert (await sub.next_msg(timeout=3)).data == b"on the new certificate"
    await after.close()
    await before.close()

    cert.write_text("not a certificate")
    server.signal(signal.SIGHUP)
    await wait_for_log(server, "Failed to reload server configuration: error parsing X509")
    still = await nats.connect(url, tls=context(new_ca.ca_file), allow_reconnect=False)
    await still.flush()
    await still.close()
    assert "Traceback" not in server.log()


async def test_https_monitoring(start_broker, tmp_path):
    """https_port serves monitoring with the client port's certificate and asks for no client
    certificate (as nats-server); it cannot be combined with http_port."""
    ca = authority(str(tmp_path / "pki"))
    pair = ca.issue("server")
    server = start_broker(config=f'https_port: -1\ntls {{ cert_file: "{pair.cert}", '
                                 f'key_file: "{pair.key}", ca_file: "{ca.ca_file}", '
                                 "verify: true }\n", monitor=False)
    url = server.monitor_url.replace("http://", "https://")
    body = await asyncio.to_thread(_get, url + "/varz", context(ca.ca_file))
    assert body["https_port"] == -1 and body["tls_verify"] is True
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        await asyncio.to_thread(_get, url + "/varz", ssl.create_default_context())
    with pytest.raises(RuntimeError, match=r"can't specify both HTTP \(-1\) and HTTPs"):
        start_broker(config=f'https_port: -1\ntls {{ cert_file: "{pair.cert}", '
                            f'key_file: "{pair.key}" }}\n')


def _get(url: str, tls: ssl.SSLContext) -> dict:
    with urllib.request.urlopen(url, timeout=5, context=tls) as resp:
        return json.loads(resp.read())


async def test_sighup_renews_the_certificate_of_tls_first_listeners(start_broker, tmp_path):
    """Listeners that hold their context for good (HTTPS monitoring here; also routes, the
    WebSocket and handshake_first clients) get renewed files loaded into it in place."""
    old_ca = authority(str(tmp_path / "old"), "old-ca")
    new_ca = authority(str(tmp_path / "new"), "new-ca")
    old, new = old_ca.issue("server"), new_ca.issue("server")
    cert, key = tmp_path / "server.pem", tmp_path / "server-key.pem"
    shutil.copy(old.cert, cert)
    shutil.copy(old.key, key)
    server = start_broker(config=f'https_port: -1\ntls {{ cert_file: "{cert}", '
                                 f'key_file: "{key}" }}\n', monitor=False)
    url = server.monitor_url.replace("http://", "https://") + "/varz"
    await asyncio.to_thread(_get, url, context(old_ca.ca_file))

    shutil.copy(new.cert, cert)
    shutil.copy(new.key, key)
    server.signal(signal.SIGHUP)
    await wait_for_log(server, "Reloaded server configuration")
    assert (await asyncio.to_thread(_get, url, context(new_ca.ca_file)))["https_port"] == -1
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        await asyncio.to_thread(_get, url, context(old_ca.ca_file))
