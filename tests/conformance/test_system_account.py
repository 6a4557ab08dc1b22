"""The system account's server requests (`$SYS.REQ.SERVER.*`), as the nats CLI sends them.

A user of the system account asks every server (`PING`, `PING.<ENDPOINT>`) or one server by
its id; answers come in the `{"server": ..., "data" | "statsz": ...}` envelope; a request body
filters which servers answer; another account's users find no responder.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

import nats
import pytest
from nats.errors import NoRespondersError, TimeoutError

from .conftest import Server, impl_version

pytestmark = pytest.mark.conformance(area="system")

CONFIG = """
server_name: sys-test
accounts {
  A { users = [ {user: a, password: a} ] }
  SYS { users = [ {user: sys, password: sys} ] }
}
system_account: SYS
"""

SERVER_FIELDS = {"name", "host", "id", "ver", "seq", "time", "jetstream"}
STATSZ_FIELDS = {"start", "mem", "cores", "cpu", "connections", "total_connections",
                 "active_accounts", "subscriptions", "sent", "received", "slow_consumers",
                 "active_servers"}


@pytest.fixture
def system_server(start_server: Callable[..., Server]) -> Server:
    return start_server(config_text=CONFIG)


@pytest.fixture
async def login(system_server: Server) -> AsyncIterator[Callable]:
    opened: list[nats.NATS] = []

    async def connect(user: str) -> nats.NATS:
        nc = await nats.connect(f"nats://{system_server.host}:{system_server.port}",
                                user=user, password=user, allow_reconnect=False)
        opened.append(nc)
        return nc

    yield connect
    for nc in opened:
        await nc.close()


async def ask(nc: nats.NATS, subject: str, body: bytes = b"") -> dict:
    return json.loads((await nc.request(subject, body, timeout=3)).data)


async def test_ping_answers_with_the_servers_statistics(login):
    sys = await login("sys")
    answer = await ask(sys, "$SYS.REQ.SERVER.PING")
    assert set(answer["server"]) >= SERVER_FIELDS
    assert answer["server"]["name"] == "sys-test"
    assert set(answer["statsz"]) >= STATSZ_FIELDS
    assert answer["statsz"]["connections"] >= 1
    again = await ask(sys, "$SYS.REQ.SERVER.PING.STATSZ")
    assert again["server"]["seq"] > answer["server"]["seq"]


@pytest.mark.parametrize("endpoint", ["VARZ", "CONNZ", "SUBSZ", "ROUTEZ", "HEALTHZ", "JSZ"])
async def test_monitoring_endpoints_come_in_the_data_envelope(login, endpoint):
    sys = await login("sys")
    answer = await ask(sys, f"$SYS.REQ.SERVER.PING.{endpoint}")
    assert set(answer) == {"server", "data"}
    if endpoint == "HEALTHZ":
        assert answer["data"]["status"] == "ok"
    else:
        assert answer["data"]["server_id"] == answer["server"]["id"]


async def test_one_server_by_its_id_and_idz(login, impl):
    sys = await login("sys")
    server_id = sys._server_info["server_id"]
    varz = await ask(sys, f"$SYS.REQ.SERVER.{server_id}.VARZ")
    assert varz["data"]["server_name"] == "sys-test"
    if impl_version(impl) < (2, 10):
        pytest.skip("IDZ came with nats-server 2.10")
    assert await ask(sys, "$SYS.REQ.SERVER.PING.IDZ") == {
        "name": "sys-test", "host": varz["server"]["host"], "id": server_id}


async def test_connz_takes_its_options_in_the_body(login):
    sys = await login("sys")
    await sys.subscribe("watched.subject")
    answer = await ask(sys, "$SYS.REQ.SERVER.PING.CONNZ", b'{"subscriptions": true}')
    subjects = [s for c in answer["data"]["connections"] for s in c.get("subscriptions_list", [])]
    assert "watched.subject" in subjects


@pytest.mark.parametrize(("body", "answers"), [
    (b'{"server_name": "sys"}', True),
    (b'{"server_name": "sys", "exact_match": true}', False),
    (b'{"server_name": "other"}', False),
    (b'{"cluster": "nope"}', False),
    (b'{"name": "ignored-key"}', True),
])
async def test_a_filter_leaves_a_server_silent(login, impl, body, answers):
    if b"exact_match" in body and impl_version(impl) < (2, 10):
        pytest.skip("exact_match came with nats-server 2.10")
    sys = await login("sys")
    if answers:
        assert (await ask(sys, "$SYS.REQ.SERVER.PING.VARZ", body))["data"]
        return
    with pytest.raises(TimeoutError):
        await sys.request("$SYS.REQ.SERVER.PING.VARZ", body, timeout=1)


async def test_a_bad_body_is_a_400_error(login):
    answer = await ask(await login("sys"), "$SYS.REQ.SERVER.PING.VARZ", b"not json")
    assert answer["error"]["code"] == 400 and "data" not in answer


async def test_other_accounts_find_no_responder(login):
    a = await login("a")
    for subject in ("$SYS.REQ.SERVER.PING", "$SYS.REQ.SERVER.PING.VARZ"):
        with pytest.raises(NoRespondersError):
            await a.request(subject, b"", timeout=2)
