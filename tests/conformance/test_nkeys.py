"""nkey users: the nonce in INFO, the public key and the signed nonce in CONNECT.

A user listed by its public nkey connects by signing the nonce of its own INFO with its seed
(nats-py's `nkeys_seed_str`). A signature by another key, of another nonce, missing or not
base64, or a key nobody listed, is an Authorization Violation. Seeds are made by the test.
"""

from __future__ import annotations

import asyncio
import base64
import os

import nats
import nkeys
import pytest

from .wire import PING, PONG, connect_line, err

pytestmark = pytest.mark.conformance(area="auth")

AUTH_VIOLATION = err("Authorization Violation")


def new_user() -> tuple[str, str]:
    """(seed, public key) of a fresh user nkey."""
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    return seed.decode(), nkeys.from_seed(seed).public_key.decode()


def sign(seed: str, nonce: str) -> str:
    return base64.b64encode(nkeys.from_seed(seed.encode()).sign(nonce.encode())).decode()


@pytest.fixture(scope="module")
def users():
    return {"alice": new_user(), "mallory": new_user()}


@pytest.fixture
def nkey_server(start_server, users):
    alice = users["alice"][1]
    permissions = '{publish: "n.>", subscribe: ["n.>", "_INBOX.>"]}'
    return start_server(config_text=(
        f"authorization {{ users: [ {{nkey: {alice}, permissions: {permissions}}} ] }}\n"))


def test_info_carries_a_fresh_nonce(nkey_server, connect):
    first, second = connect(nkey_server).info, connect(nkey_server).info
    assert first["auth_required"] is True
    assert len(first["nonce"]) >= 11 and first["nonce"] != second["nonce"]


def test_nats_py_connects_with_the_seed(nkey_server, users):
    async def roundtrip() -> bytes:
        nc = await nats.connect(f"nats://{nkey_server.host}:{nkey_server.port}",
                                nkeys_seed_str=users["alice"][0], allow_reconnect=False)
        try:
            sub = await nc.subscribe("n.1")
            await nc.publish("n.1", b"signed in")
            return (await sub.next_msg(timeout=3)).data
        finally:
            await nc.close()

    assert asyncio.run(roundtrip()) == b"signed in"


def test_a_signed_nonce_is_accepted_on_the_wire(nkey_server, connect, users):
    seed, public = users["alice"]
    c = connect(nkey_server)
    c.send(connect_line(verbose=False, nkey=public, sig=sign(seed, c.info["nonce"])) + PING)
    c.expect(PONG)


@pytest.mark.parametrize("forgery", ["other-key", "other-nonce", "no-sig", "not-base64",
                                     "unknown-key"])
def test_forged_signatures_are_refused(nkey_server, connect, users, forgery):
    seed, public = users["alice"]
    c = connect(nkey_server)
    nonce = c.info["nonce"]
    fields = {"nkey": public, "sig": sign(seed, nonce)}
    if forgery == "other-key":
        fields["sig"] = sign(users["mallory"][0], nonce)
    elif forgery == "other-nonce":
        fields["sig"] = sign(seed, nonce + "x")
    elif forgery == "no-sig":
        del fields["sig"]
    elif forgery == "not-base64":
        fields["sig"] = "%%%not base64%%%"
    else:
        fields = {"nkey": users["mallory"][1], "sig": sign(users["mallory"][0], nonce)}
    c.send(connect_line(verbose=False, **fields) + PING)
    c.assert_closed(AUTH_VIOLATION)


def test_a_signature_is_not_replayed_on_another_connection(nkey_server, connect, users):
    seed, public = users["alice"]
    first = connect(nkey_server)
    sig = sign(seed, first.info["nonce"])
    second = connect(nkey_server)
    second.send(connect_line(verbose=False, nkey=public, sig=sig) + PING)
    second.assert_closed(AUTH_VIOLATION)
    first.send(connect_line(verbose=False, nkey=public, sig=sig) + PING)
    first.expect(PONG)  # on the connection whose nonce it signed, the same signature works
