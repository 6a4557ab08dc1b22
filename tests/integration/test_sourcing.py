"""Mirrors and sources across kill -9: a copy interrupted by a crash of the server goes on
from where the stream's own store says it stopped, so every origin message is there once and
in order, whatever was in flight."""

from __future__ import annotations

import asyncio

import nats
from nats.js.api import StreamSource


async def until(check, what: str, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        try:
            if await check():
                return
        except (TimeoutError, nats.errors.Error):
            pass  # the server is still starting
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def check_copies(js, total: int) -> None:
    mirror = await js.stream_info("MIRROR")
    assert (mirror.state.first_seq, mirror.state.last_seq, mirror.state.messages) == \
        (1, total, total)
    for seq in range(1, total + 1):
        msg = await js.get_msg("MIRROR", seq)
        assert msg.data == b"order %d" % seq, seq
    seen = []
    for seq in range(1, total + 1):
        msg = await js.get_msg("COPY", seq)
        origin, origin_seq = msg.headers["Nats-Stream-Source"].split(" ")[:2]
        assert origin == "ORDERS" and msg.data == b"order %s" % origin_seq.encode()
        seen.append(int(origin_seq))
    assert seen == list(range(1, total + 1))  # once each, in order
    assert (await js.stream_info("COPY")).state.messages == total


async def test_a_mirror_and_a_source_resume_after_kill_9(start_broker, tmp_path):
    server = start_broker("-js", "-sd", str(tmp_path / "store"))
    nc = await nats.connect(server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.1)
    try:
        js = nc.jetstream()
        await js.add_stream(name="ORDERS", subjects=["orders.>"])
        await js.add_stream(name="MIRROR", mirror=StreamSource(name="ORDERS"))
        await js.add_stream(name="COPY", sources=[StreamSource(name="ORDERS")])
        for n in range(1, 301):
            await js.publish(f"orders.{n % 7}", b"order %d" % n)
        # Killed while the copies may still be under way; it comes back on the same ports.
        server.restart_args_fixed()
        server.kill()
        server.start()
        for n in range(301, 401):
            await until(lambda n=n: _published(js, n), f"publish {n} after the restart")

        async def caught_up() -> bool:
            mirror = await js.stream_info("MIRROR")
            copy = await js.stream_info("COPY")
            return mirror.state.last_seq == 400 and copy.state.messages == 400
        await until(caught_up, "the mirror and the source to catch up after the restart")
        await check_copies(js, 400)
    finally:
        await nc.close()


async def _published(js, n: int) -> bool:
    """One publish, retried while the server restarts: the message id makes a retry of a
    publish that was stored after all come back as that one (`duplicate`)."""
    ack = await js.publish(f"orders.{n % 7}", b"order %d" % n, timeout=1,
                           headers={"Nats-Msg-Id": str(n)})
    return ack.seq == n
