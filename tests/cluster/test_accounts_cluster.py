"""Accounts on a three-server cluster, from one config file shared by every server: isolation
and imports across routes (a message crosses accounts once, on the server where it was
published), and JetStream per account with R3 streams of the same name in two accounts.
Run on nats-server (2.9.10) too, as the oracle of what clients see."""

from __future__ import annotations

import json

import nats
import pytest

from tests.cluster.helpers import broker_and_nats_server, eventually
from tests.clusters import Cluster

CONFIG = """
server_name: $POD_NAME
jetstream { store_dir: $STORE_DIR }
accounts {
  A {
    users = [ {user: a, password: a} ]
    jetstream: enabled
    imports = [
      { service: { account: B, subject: "svc.>" }, to: "b.svc.>" }
      { stream: { account: B, subject: "events.>" }, prefix: from_b }
    ]
  }
  B {
    users = [ {user: b, password: b} ]
    jetstream: enabled
    exports = [ { service: "svc.>" }, { stream: "events.>" } ]
  }
  SYS { users = [ {user: sys, password: sys} ] }
}
system_account: SYS
cluster {
  name: accounts
  host: 127.0.0.1
  port: $CLUSTER_PORT
  routes: [
{routes}
  ]
}
"""


@pytest.fixture(params=broker_and_nats_server())
def cluster(request, tmp_path):
    cluster = Cluster(str(tmp_path), impl=request.param, config=CONFIG).start()
    try:
        cluster.wait_ready(60)
        yield cluster
    finally:
        cluster.stop()


async def login(cluster: Cluster, i: int, user: str) -> nats.NATS:
    return await nats.connect(cluster.url(i), user=user, password=user, allow_reconnect=False)


async def test_accounts_stay_apart_and_imports_cross_once_across_routes(cluster):
    a0, a2 = await login(cluster, 0, "a"), await login(cluster, 2, "a")
    b1 = await login(cluster, 1, "b")
    try:
        plain = await a0.subscribe("news")
        imported = await a2.subscribe("from_b.>")

        async def serve(msg) -> None:
            await b1.publish(msg.reply, b"served " + msg.data)

        await b1.subscribe("svc.>", cb=serve)
        for nc in (a0, a2, b1):
            await nc.flush()

        async def interest_arrived() -> bool:
            reply = await a0.request("b.svc.ping", b"?", timeout=1)
            return reply.data == b"served ?"
        await eventually(interest_arrived, 20, "B's service to be reachable from A on S0")

        await b1.publish("news", b"B's news")  # same subject, other account: not for A
        await a2.publish("news", b"A's news")
        first = await plain.next_msg(timeout=5)
        assert first.data == b"A's news"

        for n in range(5):
            await b1.publish("events.tick", b"%d" % n)
        got = [(await imported.next_msg(timeout=5)).data for _ in range(5)]
        assert got == [b"%d" % n for n in range(5)]
        # Everything sent so far has been routed: a duplicate would be queued before this.
        await b1.publish("events.end", b"end")
        assert (await imported.next_msg(timeout=5)).data == b"end"
        assert plain.pending_msgs == 0 and imported.pending_msgs == 0
    finally:
        for nc in (a0, a2, b1):
            await nc.close()


async def test_each_account_has_its_own_replicated_streams(cluster):
    a, b = await login(cluster, 0, "a"), await login(cluster, 1, "b")
    try:
        for nc in (a, b):
            async def created(nc=nc) -> bool:
                await nc.jetstream().add_stream(name="ORDERS", subjects=["orders.>"],
                                                num_replicas=3)
                return True
            await eventually(created, 30, "an R3 stream")
        for n in range(5):
            assert (await a.jetstream().publish("orders.a", b"%d" % n)).seq == n + 1
        assert (await b.jetstream().publish("orders.b", b"only")).seq == 1
        info_a = await a.jetstream().stream_info("ORDERS")
        info_b = await b.jetstream().stream_info("ORDERS")
        assert (info_a.state.messages, info_b.state.messages) == (5, 1)
        replicas = {info_a.cluster.leader} | {r.name for r in info_a.cluster.replicas or []}
        assert replicas == {"S0", "S1", "S2"}
    finally:
        await a.close()
        await b.close()


async def test_a_system_ping_is_answered_by_every_server(cluster):
    sys = await login(cluster, 1, "sys")
    try:
        inbox = sys.new_inbox()
        answers = await sys.subscribe(inbox)
        await sys.flush()

        async def all_answer() -> bool:
            await sys.publish("$SYS.REQ.SERVER.PING", b"", reply=inbox)
            names = set()
            for _ in range(3):
                names.add(json.loads((await answers.next_msg(timeout=2)).data)["server"]["name"])
            return names == {"S0", "S1", "S2"}
        await eventually(all_answer, 20, "a statsz answer from each server")
    finally:
        await sys.close()
