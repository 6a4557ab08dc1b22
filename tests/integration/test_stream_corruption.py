"""Damaged files on disk: detected, reported, never served (and a full disk refused cleanly)."""

from __future__ import annotations

import asyncio
import glob
import hashlib
import os

import nats

from tests.volumes import small_volume

PAYLOAD = 1024
COUNT = 10_000  # ~10 MB: more than one 8 MiB segment, so the first one is sealed


def payload_for(i: int) -> bytes:
    body = b"%08d" % i + bytes([i % 251]) * (PAYLOAD - 8 - 64)
    return body + hashlib.sha256(body).hexdigest().encode()


def intact(data: bytes) -> bool:
    body, digest = data[:-64], data[-64:]
    return hashlib.sha256(body).hexdigest().encode() == digest


async def fill(url: str) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await nc.jsm().add_stream(name="DATA", subjects=["data"])
    pending = []
    for i in range(COUNT):
        pending.append(await js.publish_async("data", payload_for(i)))
        if len(pending) >= 512:
            await asyncio.gather(*pending)
            pending = []
    await asyncio.gather(*pending)
    await nc.close()


def segments(store: str) -> list[str]:
    return sorted(glob.glob(os.path.join(store, "jetstream", "$G", "streams", "DATA", "msgs",
                                         "*.seg")))


async def test_bit_flip_and_torn_tail_are_detected_and_never_served(start_broker, tmp_path):
    store = str(tmp_path / "store")
    server = start_broker("-js", "-sd", store)
    server.restart_args_fixed()
    await fill(server.url)
    assert server.stop() == 0
    files = segments(store)
    assert len(files) >= 2, "expected a sealed segment"
    with open(files[0], "r+b") as f:  # flip one bit in the middle of the sealed segment
        f.seek(os.path.getsize(files[0]) // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x10]))
    size = os.path.getsize(files[-1])
    os.truncate(files[-1], size - 300)  # tear the last record of the active segment
    server.start()

    nc = await nats.connect(server.url)
    jsm = nc.jsm()
    info = await nc.request("$JS.API.STREAM.INFO.DATA", b"", timeout=5)
    assert b'"lost"' in info.data, "the damaged range is reported in stream info"
    refused = served = 0
    for seq in range(1, COUNT + 1):
        try:
            msg = await jsm.get_msg("DATA", seq=seq)
        except nats.js.errors.APIError:
            refused += 1
            continue
        assert intact(msg.data), f"seq {seq} was served damaged"
        assert msg.data[:8] == b"%08d" % (seq - 1)
        served += 1
    assert refused >= 2  # the flipped record and the torn one
    assert served >= COUNT - 20
    assert "damaged" in server.log() or "checksum" in server.log().lower()
    # A consumer reading everything never sees a damaged byte either.
    sub = await nc.jetstream().pull_subscribe("data", durable="reader")
    seen = 0
    while True:
        try:
            batch = await sub.fetch(500, timeout=1)
        except TimeoutError:
            break
        for msg in batch:
            assert intact(msg.data)
            await msg.ack()
            seen += 1
    assert seen == served
    await nc.close()


async def test_full_disk_refuses_publishes_and_keeps_what_was_acknowledged(start_broker,
                                                                           tmp_path):
    with small_volume(str(tmp_path / "small"), "3m") as mount:
        server = start_broker("-js", "-sd", mount)
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        await nc.jsm().add_stream(name="FULL", subjects=["full"])
        acked: dict[int, bytes] = {}
        refused: list[int] = []
        for i in range(6000):
            data = payload_for(i)
            try:
                ack = await js.publish("full", data)
            except nats.js.errors.APIError as exc:
                refused.append(exc.err_code)
                if len(refused) >= 20:
                    break
                continue
            acked[ack.seq] = data
        assert len(refused) >= 20 and acked, "the disk filled up and publishes were refused"
        # nats-server's storage error: insufficient storage resources available.
        assert set(refused) == {10047}, refused
        for seq, data in list(acked.items())[-50:]:
            assert (await nc.jsm().get_msg("FULL", seq=seq)).data == data
        await nc.close()
        server.stop()
