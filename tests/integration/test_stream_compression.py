"""`compression: s2` with nats-py against a real broker: what is stored takes less disk, reads
back the same after a restart (kill -9), and the config is echoed as nats-server echoes it."""

from __future__ import annotations

import json
import os

import nats


def _disk(root: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs)


def _event(n: int) -> bytes:
    return json.dumps({"order": n, "customer": f"customer-{n % 97}", "status": "created",
                       "items": [{"sku": f"sku-{n % 13}", "qty": n % 5 + 1}] * 16}).encode()


async def test_a_compressed_stream_takes_less_disk_and_survives_kill_9(start_broker, tmp_path):
    store = tmp_path / "store"
    server = start_broker("-js", "-sd", str(store))
    server.restart_args_fixed()
    nc = await nats.connect(server.url)
    js = nc.jetstream()
    plain = await js.add_stream(name="PLAIN", subjects=["plain.>"])
    packed = await js.add_stream(name="PACKED", subjects=["packed.>"], compression="s2")
    assert (plain.config.compression, packed.config.compression) in (
        ("none", "s2"), (None, "s2"))  # nats-py reads "none" back as its default
    count = 20_000  # several segments, so sealed ones are compressed
    for name in ("plain", "packed"):
        acks = [await js.publish_async(f"{name}.{n % 7}", _event(n)) for n in range(count)]
        for ack in acks:
            await ack
    await nc.close()
    server.kill()
    server.start()
    nc = await nats.connect(server.url)
    js = nc.jetstream()
    try:
        root = store / "jetstream" / "$G" / "streams"
        assert _disk(str(root / "PACKED")) < 0.6 * _disk(str(root / "PLAIN"))
        for seq in (1, count // 2, count):
            msg = await js.get_msg("PACKED", seq)
            assert msg.data == _event(seq - 1)
        assert (await js.stream_info("PACKED")).state.messages == count
    finally:
        await nc.close()
