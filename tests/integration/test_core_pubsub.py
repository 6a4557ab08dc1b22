"""Core NATS with nats-py against a real broker process: the everyday client paths."""

from __future__ import annotations

import asyncio

import nats
import pytest
from nats.errors import NoRespondersError, TimeoutError


async def connect(server, **kwargs):
    return await nats.connect(server.url, allow_reconnect=False, **kwargs)


async def collect(sub, n: int, timeout: float = 2.0) -> list:
    return [await sub.next_msg(timeout=timeout) for _ in range(n)]


@pytest.mark.parametrize("verbose", [False, True])
async def test_connect_and_round_trip_with_verbose_on_and_off(shared_broker, verbose):
    nc = await connect(shared_broker, verbose=verbose)
    assert nc.connected_server_version.major == 2
    assert nc.connected_server_version.minor >= 9
    assert nc.max_payload == 1024 * 1024
    sub = await nc.subscribe("greet")
    await nc.publish("greet", b"hi")
    msg = await sub.next_msg(timeout=2)
    assert (msg.subject, msg.data) == ("greet", b"hi")
    await nc.close()


async def test_messages_cross_connections_in_order(shared_broker):
    pub, sub_nc = await connect(shared_broker), await connect(shared_broker)
    sub = await sub_nc.subscribe("orders.created")
    await sub_nc.flush()
    for i in range(500):
        await pub.publish("orders.created", b"%d" % i)
    msgs = await collect(sub, 500)
    assert [int(m.data) for m in msgs] == list(range(500))
    await pub.close()
    await sub_nc.close()


async def test_wildcards_deliver_the_published_subject_once_per_subscription(shared_broker):
    nc = await connect(shared_broker)
    star = await nc.subscribe("orders.*")
    tail = await nc.subscribe("orders.>")
    other = await nc.subscribe("payments.>")
    await nc.publish("orders.eu", b"1")
    await nc.publish("orders.eu.paris", b"2")
    await nc.flush()
    assert [m.subject for m in await collect(star, 1)] == ["orders.eu"]
    assert [m.subject for m in await collect(tail, 2)] == ["orders.eu", "orders.eu.paris"]
    with pytest.raises(TimeoutError):
        await other.next_msg(timeout=0.2)
    with pytest.raises(TimeoutError):
        await star.next_msg(timeout=0.2)
    await nc.close()


async def test_queue_group_members_share_messages_and_plain_subs_get_all(shared_broker):
    nc = await connect(shared_broker)
    q1 = await nc.subscribe("work", queue="workers")
    q2 = await nc.subscribe("work", queue="workers")
    plain = await nc.subscribe("work")
    await nc.flush()
    for i in range(200):
        await nc.publish("work", b"%d" % i)
    await nc.flush()
    assert len(await collect(plain, 200)) == 200
    got1 = q1.pending_msgs
    got2 = q2.pending_msgs
    assert got1 + got2 == 200
    assert got1 > 0 and got2 > 0
    await nc.close()


async def test_request_reply(shared_broker):
    server_nc, client_nc = await connect(shared_broker), await connect(shared_broker)

    async def handler(msg):
        await msg.respond(msg.data.upper())

    await server_nc.subscribe("svc.upper", cb=handler)
    await server_nc.flush()
    replies = await asyncio.gather(*(client_nc.request("svc.upper", b"abc%d" % i, timeout=2)
                                     for i in range(20)))
    assert sorted(r.data for r in replies) == sorted(b"ABC%d" % i for i in range(20))
    await server_nc.close()
    await client_nc.close()


async def test_no_responders_fails_a_request_at_once(shared_broker):
    nc = await connect(shared_broker)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(NoRespondersError):
        await nc.request("nobody.home", b"?", timeout=5)
    assert loop.time() - started < 1.0
    await nc.close()


async def test_headers_round_trip_and_are_stripped_for_clients_without_them(shared_broker):
    nc = await connect(shared_broker)
    sub = await nc.subscribe("hdr")
    await nc.publish("hdr", b"body", headers={"Trace-Id": "42", "Other": "x y"})
    msg = await sub.next_msg(timeout=2)
    assert msg.data == b"body"
    assert msg.headers == {"Trace-Id": "42", "Other": "x y"}
    await nc.close()


async def test_unsubscribe_with_a_limit_delivers_exactly_that_many(shared_broker):
    nc = await connect(shared_broker)
    sub = await nc.subscribe("limited")
    await sub.unsubscribe(limit=2)
    for i in range(5):
        await nc.publish("limited", b"%d" % i)
    await nc.flush()
    msgs = await collect(sub, 2)
    assert [m.data for m in msgs] == [b"0", b"1"]
    nc2 = await connect(shared_broker)
    probe = await nc2.subscribe("limited")
    await nc2.flush()  # the server has the SUB before another connection publishes
    await nc.publish("limited", b"after")
    await nc.flush()
    assert (await probe.next_msg(timeout=2)).data == b"after"
    assert sub.pending_msgs == 0
    await nc.close()
    await nc2.close()


async def test_no_echo_suppresses_own_messages(shared_broker):
    nc = await connect(shared_broker, no_echo=True)
    other = await connect(shared_broker)
    mine = await nc.subscribe("echo.test")
    theirs = await other.subscribe("echo.test")
    await nc.flush()
    await other.flush()
    await nc.publish("echo.test", b"x")
    await nc.flush()
    assert (await theirs.next_msg(timeout=2)).data == b"x"
    with pytest.raises(TimeoutError):
        await mine.next_msg(timeout=0.3)
    await nc.close()
    await other.close()


async def test_drain_delivers_what_is_pending_then_closes(shared_broker):
    nc, pub = await connect(shared_broker), await connect(shared_broker)
    seen: list[bytes] = []

    async def slow(msg):
        await asyncio.sleep(0.001)
        seen.append(msg.data)

    await nc.subscribe("drain.me", cb=slow)
    await nc.flush()
    for i in range(100):
        await pub.publish("drain.me", b"%d" % i)
    await pub.flush()
    await nc.drain()
    assert nc.is_closed
    assert seen == [b"%d" % i for i in range(100)]
    await pub.close()


async def test_large_payload_up_to_max_payload(shared_broker):
    nc = await connect(shared_broker)
    sub = await nc.subscribe("big")
    payload = bytes(range(256)) * 4096
    await nc.publish("big", payload)
    assert (await sub.next_msg(timeout=5)).data == payload
    await nc.close()


async def test_a_client_may_not_publish_to_the_clusters_own_subjects(shared_broker):
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    nc = await nats.connect(shared_broker.url, error_cb=on_error)
    try:
        listener = await nc.subscribe(">")
        await nc.publish("$JSC.R.group.server.1", b"forged catch-up")
        await nc.publish("after.it", b"still connected")
        assert (await listener.next_msg(timeout=2)).subject == "after.it"
        await nc.flush()
        # (nats-py lowers the case of the whole error text)
        assert errors == ['nats: permissions violation for publish to "$jsc.r.group.server.1"']
    finally:
        await nc.close()
