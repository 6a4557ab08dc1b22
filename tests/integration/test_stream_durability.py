"""What a PubAck promises: after kill -9, and after a simulated power cut, every acknowledged
message is still in the stream, byte for byte."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal

import nats
import pytest

from storage.powerloss import simulate_power_loss
from tests.procs import ServerProcess


def payload_for(i: int) -> bytes:
    # Self-verifying: a corrupt byte shows up as a digest mismatch.
    body = b"msg-%d-" % i + os.urandom(64)
    return body + hashlib.sha256(body).hexdigest().encode()


async def publish_until_killed(server: ServerProcess, total: int, kill_after: int
                               ) -> dict[int, bytes]:
    """Publish asynchronously with acks; SIGKILL the server mid-stream. Returns seq -> payload
    for every message whose PubAck arrived."""
    nc = await nats.connect(server.url, allow_reconnect=False, error_cb=_quiet,
                            disconnected_cb=_quiet_cb, closed_cb=_quiet_cb)
    js = nc.jetstream()
    await nc.jsm().add_stream(name="DURABLE", subjects=["durable.>"])
    acked: dict[int, bytes] = {}
    pending: list[tuple[asyncio.Future, bytes]] = []

    async def collect(batch: list[tuple[asyncio.Future, bytes]]) -> None:
        if batch:
            await asyncio.wait([fut for fut, _ in batch], timeout=2)
        for fut, data in batch:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                acked[fut.result().seq] = data
            else:
                fut.cancel()  # no ack (timeout, closed connection): no promise

    for i in range(total):
        if nc.is_closed or (i > kill_after and not nc.is_connected):
            break
        data = payload_for(i)
        try:
            fut = await js.publish_async(f"durable.{i % 7}", data)
        except Exception:  # the connection died with the server
            break
        pending.append((fut, data))
        if i == kill_after:
            server.signal(signal.SIGKILL)
        if len(pending) >= 256:
            await collect(pending)
            pending = []
    await collect(pending)
    await nc.close()
    server.process.wait(10)
    return acked


async def verify(server: ServerProcess, acked: dict[int, bytes]) -> None:
    nc = await nats.connect(server.url)
    jsm = nc.jsm()
    info = await jsm.stream_info("DURABLE")
    assert info.state.last_seq >= max(acked)
    for seq, data in acked.items():
        msg = await jsm.get_msg("DURABLE", seq=seq)
        assert msg.data == data, f"seq {seq} differs"
    await nc.close()


async def _quiet(exc: Exception) -> None:
    pass


async def _quiet_cb() -> None:
    pass


async def test_kill_9_loses_no_acknowledged_message(start_broker, tmp_path):
    server = start_broker("-js", "-sd", str(tmp_path / "store"))
    server.restart_args_fixed()
    acked = await publish_until_killed(server, total=20_000, kill_after=5_000)
    assert len(acked) >= 1000
    server.start()
    await verify(server, acked)


@pytest.mark.parametrize("tail", ["cut", "tear", "pages"])
async def test_power_loss_loses_no_acknowledged_message(start_broker, tmp_path, monkeypatch,
                                                        tail):
    journal = tmp_path / "durability.journal"
    monkeypatch.setenv("BROKER_DURABILITY_JOURNAL", str(journal))
    store = tmp_path / "store"
    server = start_broker("-js", "-sd", str(store))
    server.restart_args_fixed()
    acked = await publish_until_killed(server, total=20_000, kill_after=5_000)
    assert len(acked) >= 1000
    report = simulate_power_loss(str(journal), str(store), tail=tail, seed=7)
    assert report.kept, "the journal recorded no durable file"
    monkeypatch.delenv("BROKER_DURABILITY_JOURNAL")
    server.start()
    await verify(server, acked)
