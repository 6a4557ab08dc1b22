"""Operator mode with JetStream: an account's JWT sets its JetStream limits, a user's JWT its
permissions; nats-py connects with a `.creds` file. JWTs are made by the test (tests/jwts.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import nats
import pytest
from nats.js.errors import APIError

from tests import jwts

from ..conftest import Server
from .conftest import server_url

pytestmark = pytest.mark.conformance(area="jwt")


@pytest.fixture
def operator_world(start_js_server: Callable[..., Server], tmp_path: Path):
    operator, system, account = jwts.operator_key(), jwts.account_key(), jwts.account_key()
    limits = jwts.account_limits(mem_storage=-1, disk_storage=10_000_000, streams=1,
                                 consumer=2)
    accounts = {
        system.public: jwts.account_jwt(system, operator, name="SYS"),
        account.public: jwts.account_jwt(account, operator, name="A", limits=limits),
    }
    operator_jwt = jwts.operator_jwt(operator, system_account=system.public)
    server = start_js_server(config_text=jwts.operator_config(operator_jwt, system.public,
                                                              accounts))
    user = jwts.user_key()
    token = jwts.user_jwt(user.public, account, permissions=jwts.user_permission_limits(
        pub_deny=["forbidden.>"]))
    creds = jwts.write_creds(tmp_path / "user.creds", token, user.seed)
    return server, creds


async def test_a_creds_user_gets_its_accounts_jetstream_within_its_limits(operator_world):
    server, creds = operator_world
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    nc = await nats.connect(server_url(server), user_credentials=creds, allow_reconnect=False,
                            error_cb=on_error)
    try:
        js = nc.jetstream()
        await js.add_stream(name="ONLY", subjects=["only.>"])
        assert (await js.publish("only.x", b"kept")).seq == 1
        with pytest.raises(APIError) as second:
            await js.add_stream(name="TWO", subjects=["two.>"])
        assert (second.value.code, second.value.err_code) == (400, 10027)
        info = await js.account_info()
        assert (info.limits.max_streams, info.limits.max_storage) == (1, 10_000_000)
        await nc.publish("forbidden.x", b"no")
        await nc.flush()
        for _ in range(100):
            if errors:
                break
            await asyncio.sleep(0.02)  # the -ERR reaches error_cb on the client's own task
        assert errors == ["nats: permissions violation for publish to \"forbidden.x\""]
        assert nc.is_connected
    finally:
        await nc.close()
