"""KeyValue and ObjectStore through nats-py: results through the client API, plus the stream
configs the client asks for and the server echoes."""

from __future__ import annotations

import base64
import hashlib
import json

import nats
import nats.js.errors
import pytest

from .conftest import server_url
from .jsutil import API, stream_config

pytestmark = pytest.mark.conformance(area="js-kv-obj")


@pytest.fixture
async def js(js_server):
    nc = await nats.connect(server_url(js_server))
    yield nc.jetstream()
    await nc.close()


def create_request(raw, spy: str, stream: str) -> dict:
    f = raw.next(spy, subject=f"{API}.STREAM.CREATE.{stream}")
    return json.loads(f.payload)


def echoed_config(raw, stream: str) -> dict:
    cfg = raw.api(f"STREAM.INFO.{stream}")["config"]
    if not raw.oracle:
        # nats-py sends allow_msg_ttl:true (a 2.11 field) that 2.9.10 ignores; compat.md asks a
        # newer-speaking server to keep and echo it, so it is tolerated here.
        cfg.pop("allow_msg_ttl", None)
    return cfg


async def test_kv_bucket_config(js, raw, uniq):
    bucket = uniq
    spy = raw.subscribe(f"{API}.STREAM.CREATE.>")
    raw.flush()
    kv = await js.create_key_value(bucket=bucket, history=5, description="d")
    sent = create_request(raw, spy, f"KV_{bucket}")
    assert sent == {
        "name": f"KV_{bucket}",
        "description": "d",
        "subjects": [f"$KV.{bucket}.>"],
        "max_consumers": -1,
        "max_msgs": -1,
        "discard": "new",
        "discard_new_per_subject": False,
        "max_msgs_per_subject": 5,
        "num_replicas": 1,
        "no_ack": False,
        "duplicate_window": 120_000_000_000,
        "sealed": False,
        "deny_delete": True,
        "deny_purge": False,
        "allow_rollup_hdrs": True,
        "allow_msg_ttl": True,
        "max_age": 0,
    }
    # 2.9.10 drops what it does not know (discard_new_per_subject, allow_msg_ttl).
    assert echoed_config(raw, f"KV_{bucket}") == stream_config(
        f"KV_{bucket}",
        [f"$KV.{bucket}.>"],
        description="d",
        max_msgs_per_subject=5,
        discard="new",
        deny_delete=True,
        allow_rollup_hdrs=True,
    )
    status = await kv.status()
    assert (status.bucket, status.values, status.history, status.ttl) == (bucket, 0, 5, 0)


async def test_kv_operations(js, raw, uniq):
    kv = await js.create_key_value(bucket=uniq, history=5)
    assert await kv.put("k1", b"v1") == 1
    entry = await kv.get("k1")
    assert (entry.key, entry.value, entry.revision) == ("k1", b"v1", 1)
    with pytest.raises(nats.js.errors.KeyWrongLastSequenceError) as err:
        await kv.create("k1", b"v2")
    # nats-py keeps only the description of the 10071 error here.
    assert err.value.description == "wrong last sequence: 1"
    assert await kv.update("k1", b"v3", last=1) == 2
    with pytest.raises(nats.js.errors.KeyWrongLastSequenceError) as err:
        await kv.update("k1", b"v4", last=1)
    assert err.value.description == "wrong last sequence: 2"
    assert await kv.create("k2", b"a") == 3
    assert (await kv.get("k1", revision=1)).value == b"v1"
    assert sorted(await kv.keys()) == ["k1", "k2"]

    await kv.delete("k1")
    with pytest.raises(nats.js.errors.KeyNotFoundError):
        await kv.get("k1")
    history = await kv.history("k1")
    assert [(e.value, e.revision, e.operation) for e in history] == [
        (b"v1", 1, None),
        (b"v3", 2, None),
        (b"", 4, "DEL"),
    ]
    # create over a delete marker succeeds (nats-py retries with the marker's revision).
    assert await kv.create("k1", b"again") == 5
    assert sorted(await kv.keys()) == ["k1", "k2"]

    await kv.purge("k2")  # KV-Operation: PURGE + Nats-Rollup: sub
    history = await kv.history("k2")
    assert [(e.value, e.revision, e.operation) for e in history] == [(b"", 6, "PURGE")]
    assert await kv.keys() == ["k1"]
    await kv.purge("k1")
    with pytest.raises(nats.js.errors.NoKeysError):
        await kv.keys()
    status = await kv.status()
    assert status.values == 2  # the two purge markers
    with pytest.raises(nats.js.errors.KeyNotFoundError):
        await kv.get("missing")


async def test_kv_watch(js, uniq):
    kv = await js.create_key_value(bucket=uniq)
    await kv.put("a", b"1")
    await kv.put("b", b"2")
    await kv.put("a", b"3")
    watcher = await kv.watchall()
    initial = []
    while (e := await watcher.updates(timeout=2)) is not None:
        initial.append((e.key, e.value, e.revision))
    # last value per key, then a None marker once the initial values are done
    assert initial == [("b", b"2", 2), ("a", b"3", 3)]
    await kv.put("c", b"4")
    await kv.delete("b")
    e1 = await watcher.updates(timeout=2)
    e2 = await watcher.updates(timeout=2)
    assert [(e.key, e.value, e.revision, e.operation) for e in (e1, e2)] == [
        ("c", b"4", 4, None),
        ("b", b"", 5, "DEL"),
    ]
    await watcher.stop()


async def test_kv_delete_bucket(js, raw, uniq):
    await js.create_key_value(bucket=uniq)
    assert await js.delete_key_value(uniq) is True
    with pytest.raises(nats.js.errors.BucketNotFoundError):
        await js.key_value(uniq)
    assert raw.api(f"STREAM.INFO.KV_{uniq}")["error"]["err_code"] == 10059


async def test_object_store(js, raw, uniq):
    bucket = uniq
    spy = raw.subscribe(f"{API}.STREAM.CREATE.>")
    raw.flush()
    obs = await js.create_object_store(bucket)
    sent = create_request(raw, spy, f"OBJ_{bucket}")
    assert sent == {
        "name": f"OBJ_{bucket}",
        "subjects": [f"$O.{bucket}.C.>", f"$O.{bucket}.M.>"],
        "max_consumers": 0,
        "discard": "new",
        "discard_new_per_subject": False,
        "max_msgs_per_subject": -1,
        "max_msg_size": -1,
        "num_replicas": 1,
        "no_ack": False,
        "duplicate_window": 0,
        "sealed": False,
        "deny_delete": False,
        "deny_purge": False,
        "allow_rollup_hdrs": True,
        "allow_direct": True,
        "max_age": 0,
    }
    assert echoed_config(raw, f"OBJ_{bucket}") == stream_config(
        f"OBJ_{bucket}",
        [f"$O.{bucket}.C.>", f"$O.{bucket}.M.>"],
        discard="new",
        allow_rollup_hdrs=True,
        allow_direct=True,
    )

    data = bytes(range(256)) * 1200  # 307200 bytes: 3 chunks of at most 128 KiB
    info = await obs.put("file one", data)
    digest = "SHA-256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode()
    assert (info.name, info.bucket, info.size, info.chunks, info.digest, info.deleted) == (
        "file one",
        bucket,
        len(data),
        3,
        digest,
        False,
    )
    assert raw.stream_state(f"OBJ_{bucket}")["messages"] == 4  # 3 chunks + 1 meta
    res = await obs.get("file one")
    assert res.data == data and res.info.size == len(data) and res.info.nuid == info.nuid
    assert (await obs.get_info("file one")).chunks == 3

    await obs.put("small", b"tiny")
    assert sorted(o.name for o in await obs.list()) == ["file one", "small"]
    # Replacing an object purges the old chunks.
    await obs.put("small", b"tiny2")
    assert (await obs.get("small")).data == b"tiny2"
    assert raw.stream_state(f"OBJ_{bucket}")["messages"] == 6

    await obs.delete("file one")
    with pytest.raises(nats.js.errors.ObjectNotFoundError):
        await obs.get("file one")
    assert (await obs.get_info("file one", show_deleted=True)).deleted is True
    assert [o.name for o in await obs.list(ignore_deletes=True)] == ["small"]
    with pytest.raises(nats.js.errors.ObjectNotFoundError):
        await obs.get("never")

    await obs.seal()
    status = await obs.status()
    assert status.sealed is True
    with pytest.raises(nats.js.errors.BadRequestError) as err:
        await obs.put("late", b"x")
    assert err.value.err_code == 10109
    assert (await obs.get("small")).data == b"tiny2"
    sealed = raw.api(f"STREAM.INFO.OBJ_{bucket}")["config"]
    assert (sealed["sealed"], sealed["deny_delete"], sealed["deny_purge"]) == (True, True, True)
