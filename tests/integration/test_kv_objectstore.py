"""nats-py's KeyValue and Object Store, end to end against the broker."""

from __future__ import annotations

import asyncio
import hashlib
import os

import nats
import pytest
from nats.js import errors as jserr


@pytest.fixture
async def js(start_broker, tmp_path):
    server = start_broker("-js", "-sd", str(tmp_path / "store"))
    nc = await nats.connect(server.url)
    yield nc, nc.jetstream()
    await nc.close()


async def test_key_value_operations(js):
    _nc, jsc = js
    kv = await jsc.create_key_value(bucket="config", history=5)
    assert await kv.put("db.host", b"10.0.0.1") == 1
    assert await kv.put("db.port", b"5432") == 2
    entry = await kv.get("db.host")
    assert (entry.key, entry.value, entry.revision) == ("db.host", b"10.0.0.1", 1)
    with pytest.raises(jserr.KeyWrongLastSequenceError):
        await kv.create("db.host", b"again")
    assert await kv.update("db.host", b"10.0.0.2", last=1) == 3
    with pytest.raises(jserr.KeyWrongLastSequenceError):
        await kv.update("db.host", b"stale", last=1)
    await kv.delete("db.port")
    with pytest.raises(jserr.KeyNotFoundError):
        await kv.get("db.port")
    assert await kv.create("db.port", b"6432") == 5  # create over a delete marker
    history = await kv.history("db.host")
    assert [e.value for e in history] == [b"10.0.0.1", b"10.0.0.2"]
    assert sorted(await kv.keys()) == ["db.host", "db.port"]
    await kv.purge("db.host")
    assert [e.operation for e in await kv.history("db.host")] == ["PURGE"]
    status = await kv.status()
    assert status.bucket == "config" and status.history == 5
    await kv.purge_deletes(olderthan=-1)
    assert await kv.keys() == ["db.port"]
    await jsc.delete_key_value("config")
    with pytest.raises(jserr.BucketNotFoundError):
        await jsc.key_value("config")


async def test_key_value_watch_sends_current_values_then_updates(js):
    _nc, jsc = js
    kv = await jsc.create_key_value(bucket="live")
    await kv.put("a", b"1")
    await kv.put("b", b"2")
    await kv.put("a", b"3")
    watcher = await kv.watchall()
    initial = []
    async for entry in watcher:
        if entry is None:
            break
        initial.append((entry.key, entry.value))
    assert sorted(initial) == [("a", b"3"), ("b", b"2")]
    await kv.put("c", b"4")
    update = await watcher.updates(timeout=2)
    assert (update.key, update.value) == ("c", b"4")
    await watcher.stop()


async def test_bucket_created_with_allow_direct_is_readable(js):
    nc, jsc = js
    await nc.jsm().add_stream(name="KV_direct", subjects=["$KV.direct.>"], allow_direct=True,
                              max_msgs_per_subject=1, allow_rollup_hdrs=True, deny_delete=True,
                              discard=nats.js.api.DiscardPolicy.NEW)
    kv = await jsc.key_value("direct")
    await kv.put("k", b"v")
    assert (await kv.get("k")).value == b"v"


async def test_object_store_multi_chunk_round_trip(js):
    _nc, jsc = js
    store = await jsc.create_object_store(bucket="files")
    payload = os.urandom(3 * 128 * 1024 + 12345)
    info = await store.put("report.bin", payload)
    assert info.size == len(payload) and info.chunks == 4
    result = await store.get("report.bin")
    assert result.data == payload
    assert hashlib.sha256(result.data).digest()
    replaced = await store.put("report.bin", b"small now")
    assert replaced.chunks == 1
    assert (await store.get("report.bin")).data == b"small now"
    await store.put("other.txt", b"x")
    names = sorted(o.name for o in await store.list())
    assert names == ["other.txt", "report.bin"]
    await store.delete("other.txt")
    with pytest.raises(jserr.ObjectNotFoundError):
        await store.get("other.txt")
    # (nats-py 2.16 refuses renames client-side, so update the description only.)
    await store.update_meta("report.bin", nats.js.api.ObjectMeta(name="report.bin",
                                                                 description="final"))
    assert (await store.get_info("report.bin")).description == "final"
    watcher = await store.watch()
    seen = []
    async for entry in watcher:
        if entry is None:
            break
        seen.append(entry.name)
    assert "report.bin" in seen
    await store.seal()
    with pytest.raises(jserr.BadRequestError):
        await store.put("late.txt", b"sealed")


async def test_object_store_large_object_via_flow_control(js):
    _nc, jsc = js
    store = await jsc.create_object_store(bucket="big")
    payload = os.urandom(20 * 1024 * 1024)
    await store.put("blob", payload)
    got = await asyncio.wait_for(store.get("blob"), 60)
    assert got.data == payload
