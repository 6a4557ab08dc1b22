"""The dead-letter example from the seed: a poison message ends up on the dead-letter subject."""

from __future__ import annotations

import nats
from nats.js import api

from examples.dead_letter import forward_dead_letters


async def test_poison_message_is_dead_lettered_with_its_origin(start_broker, tmp_path):
    server = start_broker("-js", "-sd", str(tmp_path / "store"))
    nc = await nats.connect(server.url)
    js = nc.jetstream()
    jsm = nc.jsm()
    await jsm.add_stream(name="ORDERS", subjects=["orders.>"])
    await jsm.add_stream(name="DLQ", subjects=["dlq.>"])
    watcher = await forward_dead_letters(nc, "ORDERS", "processor", "dlq.orders")
    await nc.flush()
    await js.publish("orders.created", b"good")
    await js.publish("orders.created", b"poison", headers={"Order-Id": "47"})
    sub = await js.pull_subscribe("orders.>", durable="processor",
                                  config=api.ConsumerConfig(ack_wait=0.2, max_deliver=3))
    dead = await js.pull_subscribe("dlq.>", durable="audit", stream="DLQ")
    # The processor acks good orders and keeps failing on the poison one until it stops coming.
    while True:
        try:
            batch = await sub.fetch(2, timeout=1)
        except (nats.errors.TimeoutError, TimeoutError):  # nats-py raises either
            break
        for msg in batch:
            if msg.data == b"good":
                await msg.ack()
            else:
                await msg.nak()
    (letter,) = await dead.fetch(1, timeout=5)
    assert letter.data == b"poison"
    assert letter.headers["Order-Id"] == "47"
    assert letter.headers["Nats-Dead-Letter-Stream"] == "ORDERS"
    assert letter.headers["Nats-Dead-Letter-Sequence"] == "2"
    assert letter.headers["Nats-Dead-Letter-Deliveries"] == "3"
    assert letter.headers["Nats-Dead-Letter-Subject"] == "orders.created"
    # The message itself stays in its stream (JetStream never moves it).
    assert (await jsm.get_msg("ORDERS", seq=2)).data == b"poison"
    await watcher.unsubscribe()
    await nc.close()
