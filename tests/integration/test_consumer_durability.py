"""A durable consumer after kill -9 and after a simulated power cut: nothing whose ack was
confirmed comes back, nothing unacknowledged is lost."""

from __future__ import annotations

import signal

import nats
import pytest
from nats.errors import TimeoutError as NatsTimeout

from storage.powerloss import simulate_power_loss

TOTAL = 400


async def consume_confirming_acks(server, stop_after: int) -> set[int]:
    """Ack (synchronously: the empty reply confirms it) until `stop_after` messages; then kill
    the server with SIGKILL. Returns the stream sequences whose acks were confirmed."""
    nc = await nats.connect(server.url, allow_reconnect=False, error_cb=_quiet,
                            disconnected_cb=_quiet_cb)
    js = nc.jetstream()
    await nc.jsm().add_stream(name="WORK", subjects=["work.>"])
    for i in range(TOTAL):
        await js.publish("work.item", b"%d" % i)
    sub = await js.pull_subscribe("work.>", durable="worker")
    confirmed: set[int] = set()
    while len(confirmed) < stop_after:
        for msg in await sub.fetch(25, timeout=2):
            await msg.ack_sync()
            confirmed.add(msg.metadata.sequence.stream)
    # Deliveries in flight (not acked) at the moment of the crash:
    await sub.fetch(10, timeout=2)
    server.signal(signal.SIGKILL)
    server.process.wait(10)
    await nc.close()
    return confirmed


async def drain_after_restart(server) -> list[int]:
    nc = await nats.connect(server.url)
    js = nc.jetstream()
    sub = await js.pull_subscribe_bind("worker", "WORK")
    seen: list[int] = []
    while True:
        try:
            msgs = await sub.fetch(100, timeout=1)
        except (NatsTimeout, TimeoutError):  # nats-py raises either, depending on the path
            break
        for msg in msgs:
            seen.append(msg.metadata.sequence.stream)
            await msg.ack()
    await nc.close()
    return seen


async def _quiet(exc: Exception) -> None:
    pass


async def _quiet_cb() -> None:
    pass


def check(confirmed: set[int], seen_after: list[int]) -> None:
    assert not confirmed & set(seen_after), "a confirmed ack was redelivered"
    assert confirmed | set(seen_after) == set(range(1, TOTAL + 1)), "a message was lost"


async def test_kill_9_durable_consumer_resumes_exactly(start_broker, tmp_path):
    server = start_broker("-js", "-sd", str(tmp_path / "store"))
    server.restart_args_fixed()
    confirmed = await consume_confirming_acks(server, stop_after=150)
    server.start()
    check(confirmed, await drain_after_restart(server))


@pytest.mark.parametrize("tail", ["cut", "pages"])
async def test_power_loss_durable_consumer_resumes_exactly(start_broker, tmp_path, monkeypatch,
                                                           tail):
    journal = tmp_path / "durability.journal"
    monkeypatch.setenv("BROKER_DURABILITY_JOURNAL", str(journal))
    store = tmp_path / "store"
    server = start_broker("-js", "-sd", str(store))
    server.restart_args_fixed()
    confirmed = await consume_confirming_acks(server, stop_after=150)
    simulate_power_loss(str(journal), str(store), tail=tail, seed=3)
    monkeypatch.delenv("BROKER_DURABILITY_JOURNAL")
    server.start()
    check(confirmed, await drain_after_restart(server))
