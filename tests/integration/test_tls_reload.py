"""Certificate rotation: SIGHUP reads the certificate files again. New connections get the new
certificate, connections already open stay up, and files that cannot be loaded leave the server
as it was (the error is logged)."""

from __future__ import annotations

import asyncio
import shutil
import signal
import ssl

import nats

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
