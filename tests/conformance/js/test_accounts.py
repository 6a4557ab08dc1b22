"""Accounts: isolated subject spaces, stream and service imports, JetStream per account.

One server configuration (below) serves every test, on nats-server and on us alike: account A
imports B's service `svc.>` as `b.svc.>` (singleton replies) and `stream.svc` (a stream of
replies), B's stream `events.>` with a prefix and `other.>` under another name; A has JetStream
with limits, B without, C has none; SYS is the system account. Each test shows what nats-py
clients of those accounts see. Ordering across two connections is made deterministic by
flushes: a server handles a connection's PUBs before its PONG, and queues what it delivers to
another connection before it answers that connection's later PING.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

import nats
import pytest
from nats.errors import NoRespondersError
from nats.js.errors import APIError

from ..conftest import Server, impl_version
from .conftest import server_url

pytestmark = pytest.mark.conformance(area="accounts")

CONFIG = """
accounts {
  A {
    users = [ {user: a, password: a} ]
    jetstream { max_streams: 2, max_consumers: 2, max_file: 1M, max_memory: 1M }
    imports = [
      { service: { account: B, subject: "svc.>" }, to: "b.svc.>" }
      { service: { account: B, subject: "stream.svc" }, to: "bstream.svc" }
      { stream: { account: B, subject: "events.>" }, prefix: from_b }
      { stream: { account: B, subject: "other.>" }, to: "bother.>" }
    ]
  }
  B {
    users = [ {user: b, password: b} ]
    jetstream: enabled
    exports = [
      { service: "svc.>", response_type: singleton }
      { service: "stream.svc", response_type: stream }
      { stream: "events.>" }
      { stream: "other.>" }
    ]
  }
  C { users = [ {user: c, password: c} ] }
  D {
    users = [ {user: d, password: d} ]
    jetstream { max_file: 10M, max_memory: 10M, max_bytes_required: true }
  }
  SYS { users = [ {user: sys, password: sys} ] }
}
system_account: SYS
"""


@pytest.fixture
def accounts_server(start_js_server: Callable[..., Server]) -> Server:
    return start_js_server(config_text=CONFIG)


@pytest.fixture
async def login(accounts_server: Server) -> AsyncIterator[Callable]:
    opened: list[nats.NATS] = []

    async def connect(user: str) -> nats.NATS:
        nc = await nats.connect(server_url(accounts_server), user=user, password=user,
                                allow_reconnect=False)
        opened.append(nc)
        return nc

    yield connect
    for nc in opened:
        await nc.close()


async def test_a_subject_in_one_account_is_invisible_in_another(login):
    a, b = await login("a"), await login("b")
    seen = await b.subscribe("only.b")
    await b.flush()
    await a.publish("only.b", b"hello?")
    await a.flush()
    await b.flush()
    assert seen.pending_msgs == 0
    with pytest.raises(NoRespondersError):
        await a.request("only.b", b"anyone?", timeout=2)


async def test_a_service_import_maps_the_subject_and_routes_the_reply_back(login):
    a, b = await login("a"), await login("b")
    requests = []

    async def respond(msg):
        requests.append(msg)
        await b.publish(msg.reply, b"answer to " + msg.data)

    await b.subscribe("svc.>", cb=respond)
    await b.flush()
    reply = await a.request("b.svc.orders.get", b"q1", timeout=3)
    assert reply.data == b"answer to q1"
    msg = requests[0]
    assert msg.subject == "svc.orders.get"
    assert msg.reply.startswith("_R_.") and len(msg.reply.split(".")) == 3
    info = json.loads(msg.headers["Nats-Request-Info"])
    assert info["acc"] == "A" and isinstance(info["rtt"], int)


async def test_a_service_import_without_responders_says_so(login, impl):
    if impl_version(impl) < (2, 10):
        pytest.skip("nats-server 2.9 lets such a request time out; 2.15.1 says no responders")
    a = await login("a")
    with pytest.raises(NoRespondersError):
        await a.request("b.svc.nobody.home", b"q", timeout=2)


@pytest.mark.parametrize(("subject", "expected"), [("b.svc.many", 1), ("bstream.svc", 3)])
async def test_singleton_services_forward_one_reply_streams_all(login, subject, expected):
    a, b = await login("a"), await login("b")
    answered = asyncio.Event()

    async def respond(msg):
        for n in range(3):
            await b.publish(msg.reply, b"part %d" % n)
        await b.flush()  # the server took all three: what reaches A is queued for it
        answered.set()

    await b.subscribe("svc.many", cb=respond)
    await b.subscribe("stream.svc", cb=respond)
    await b.flush()
    inbox = a.new_inbox()
    replies = await a.subscribe(inbox)
    await a.flush()
    await a.publish(subject, b"go", reply=inbox)
    await asyncio.wait_for(answered.wait(), 10)
    await a.flush()  # A's PONG comes after what was queued for it
    got = [(await replies.next_msg(timeout=1)).data for _ in range(replies.pending_msgs)]
    assert got == [b"part %d" % n for n in range(expected)]


async def test_stream_imports_deliver_under_the_prefix_or_the_mapped_subject(login):
    a, b = await login("a"), await login("b")
    prefixed = await a.subscribe("from_b.>")
    mapped = await a.subscribe("bother.>")
    await a.flush()
    await b.publish("events.x.y", b"ev1")
    await b.publish("other.z", b"ev2", reply="b.reply.subj")
    await b.publish("svc.not.a.stream", b"no")
    first = await prefixed.next_msg(timeout=10)
    second = await mapped.next_msg(timeout=10)
    assert (first.subject, first.data) == ("from_b.events.x.y", b"ev1")
    assert (second.subject, second.reply, second.data) == ("bother.z", "b.reply.subj", b"ev2")
    await b.flush()
    await a.flush()
    assert prefixed.pending_msgs == 0 and mapped.pending_msgs == 0


async def account_info(nc: nats.NATS) -> dict:
    return json.loads((await nc.request("$JS.API.INFO", b"", timeout=3)).data)


async def test_each_account_has_its_own_jetstream_and_limits(login):
    a, b, c = await login("a"), await login("b"), await login("c")
    info_a, info_b, info_c = await account_info(a), await account_info(b), await account_info(c)
    assert info_a["limits"]["max_streams"] == 2
    assert info_a["limits"]["max_consumers"] == 2
    assert info_a["limits"]["max_storage"] == 1_000_000
    assert info_a["limits"]["max_memory"] == 1_000_000
    assert info_b["limits"]["max_streams"] == -1
    assert info_c == {"type": "io.nats.jetstream.api.v1.account_info_response",
                      "error": {"code": 503, "err_code": 10039,
                                "description": "JetStream not enabled for account"}}
    # The same stream name in two accounts: two streams.
    await a.jetstream().add_stream(name="SAME", subjects=["same.>"])
    await b.jetstream().add_stream(name="SAME", subjects=["same.>"])
    await a.jetstream().publish("same.x", b"in A")
    assert (await a.jetstream().stream_info("SAME")).state.messages == 1
    assert (await b.jetstream().stream_info("SAME")).state.messages == 0
    with pytest.raises(APIError) as missing:
        await c.jetstream().stream_info("SAME")
    assert missing.value.err_code == 10039


async def test_account_limits_are_refused_with_nats_servers_codes(login):
    a, d = await login("a"), await login("d")
    js = a.jetstream()
    await js.add_stream(name="L1", subjects=["l1.>"])
    with pytest.raises(APIError) as too_many:
        await js.add_stream(name="L2", subjects=["l2.>"], max_bytes=2_000_000)
    assert (too_many.value.code, too_many.value.err_code) == (500, 10047)
    with pytest.raises(APIError) as memory:
        await js.add_stream(name="L2", subjects=["l2.>"], storage="memory", max_bytes=2_000_000)
    assert (memory.value.code, memory.value.err_code) == (500, 10028)
    for durable in ("C1", "C2"):
        await js.add_consumer("L1", durable_name=durable)
    with pytest.raises(APIError) as consumers:
        await js.add_consumer("L1", durable_name="C3")
    assert (consumers.value.code, consumers.value.err_code) == (400, 10026)
    with pytest.raises(APIError) as unbounded:
        await d.jetstream().add_stream(name="NOMB", subjects=["nomb"])
    assert (unbounded.value.code, unbounded.value.err_code) == (400, 10113)


async def test_a_publish_past_the_accounts_storage_is_refused_and_a_smaller_one_fits(login,
                                                                                   impl):
    js = (await login("a")).jetstream()
    await js.add_stream(name="FILL", subjects=["fill.>"])
    chunk = b"x" * 32768
    published = 0
    with pytest.raises(APIError) as full:
        while published < 100:
            await js.publish("fill.x", chunk)
            published += 1
    assert (full.value.code, full.value.err_code) == (400, 10002)
    assert full.value.description == "resource limits exceeded for account"
    assert published == 1_000_000 // (len(chunk) + 40)  # the account's max_file, stored
    if impl_version(impl) >= (2, 10):  # 2.9 refuses everything once one publish did not fit
        assert (await js.publish("fill.x", b"small")).seq == published + 1
