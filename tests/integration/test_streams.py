"""JetStream streams on one server, through nats-py's jetstream() and jsm APIs."""

from __future__ import annotations

import asyncio
import json

import nats
import pytest
from nats.js import api
from nats.js.errors import BadRequestError, NoStreamResponseError, NotFoundError

from tests.procs import ServerProcess


@pytest.fixture
async def js_broker(start_broker, tmp_path):
    server = start_broker("-js", "-sd", str(tmp_path / "store"))
    nc = await nats.connect(server.url, allow_reconnect=False)
    yield server, nc, nc.jetstream()
    await nc.close()


async def raw_api(nc, subject: str, body: dict | bytes = b"") -> dict:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    msg = await nc.request(subject, data, timeout=2)
    return json.loads(msg.data)


async def test_create_echoes_the_normalised_config_and_is_idempotent(js_broker):
    _, nc, _js = js_broker
    jsm = nc.jsm()
    info = await jsm.add_stream(name="ORDERS", subjects=["orders.>"])
    cfg = info.config
    assert cfg.name == "ORDERS" and cfg.subjects == ["orders.>"]
    assert cfg.retention == api.RetentionPolicy.LIMITS
    assert cfg.storage == api.StorageType.FILE
    assert cfg.discard == api.DiscardPolicy.OLD
    assert (cfg.max_msgs, cfg.max_bytes, cfg.max_msgs_per_subject) == (-1, -1, -1)
    assert cfg.duplicate_window == 120.0
    assert cfg.num_replicas == 1
    assert info.state.messages == 0 and info.state.last_seq == 0
    raw = await raw_api(nc, "$JS.API.STREAM.INFO.ORDERS")
    assert raw["type"] == "io.nats.jetstream.api.v1.stream_info_response"
    assert raw["config"]["max_consumers"] == -1 and raw["config"]["max_age"] == 0
    assert raw["config"]["consumer_limits"] == {} and raw["config"]["sealed"] is False
    again = await jsm.add_stream(name="ORDERS", subjects=["orders.>"])
    assert again.config.name == "ORDERS"
    with pytest.raises(BadRequestError) as err:
        await jsm.add_stream(name="ORDERS", subjects=["orders.>"], max_msgs=5)
    assert err.value.err_code == 10058


async def test_create_refuses_overlaps_bad_names_and_impossible_configs(js_broker):
    _, nc, _ = js_broker
    jsm = nc.jsm()
    await jsm.add_stream(name="A", subjects=["a.>"])
    with pytest.raises(BadRequestError) as err:
        await jsm.add_stream(name="B", subjects=["a.b"])
    assert err.value.err_code == 10065
    for name in ("star*", "gt>"):
        resp = await raw_api(nc, f"$JS.API.STREAM.CREATE.{name}", {"name": name})
        assert resp["error"]["err_code"] == 10052, (name, resp)
        assert "can not contain" in resp["error"]["description"]
    with pytest.raises(nats.errors.TimeoutError):  # as from nats-server: no API answers it
        await nc.request("$JS.API.STREAM.CREATE.has.dot", b'{"name":"has.dot"}', timeout=0.3)
    resp = await raw_api(nc, "$JS.API.STREAM.CREATE.slash", {"name": "sl/ash"})
    assert resp["error"]["err_code"] == 10056
    resp = await raw_api(nc, "$JS.API.STREAM.CREATE.C", {"name": "C", "max_age": 1000})
    assert resp["error"] == {"code": 500, "err_code": 10052,
                             "description": "max age needs to be >= 100ms"}
    resp = await raw_api(nc, "$JS.API.STREAM.CREATE.C", {"name": "D"})
    assert resp["error"]["err_code"] == 10056
    resp = await raw_api(nc, "$JS.API.STREAM.CREATE.C", b"{not json")
    assert resp["error"]["err_code"] == 10025
    resp = await raw_api(nc, "$JS.API.STREAM.CREATE.C", {"name": "C", "max_msgs": "many"})
    assert resp["error"]["err_code"] == 10025
    resp = await raw_api(nc, "$JS.API.STREAM.CREATE.C", {"name": "C", "num_replicas": 3})
    assert resp["error"]["err_code"] == 10074
    names = await raw_api(nc, "$JS.API.STREAM.NAMES")
    assert names["streams"] == ["A"]  # nothing half-created


async def test_unknown_fields_are_ignored_by_default(js_broker):
    _, nc, _ = js_broker
    resp = await raw_api(nc, "$JS.API.STREAM.CREATE.U",
                         {"name": "U", "future_field": True, "allow_msg_ttl": True})
    assert "error" not in resp and resp["did_create"] is True
    assert resp["config"]["allow_msg_ttl"] is True


async def test_strict_mode_refuses_unknown_fields(start_broker, tmp_path):
    server = start_broker(config=f'jetstream {{ store_dir: "{tmp_path}/s", strict: true }}\n')
    nc = await nats.connect(server.url)
    resp = await raw_api(nc, "$JS.API.STREAM.CREATE.U", {"name": "U", "future_field": 1})
    assert resp["error"]["code"] == 400 and resp["error"]["err_code"] == 10025
    assert "future_field" in resp["error"]["description"]
    await nc.close()


async def test_publish_acks_dedupe_and_expected_headers(js_broker):
    _, nc, js = js_broker
    await nc.jsm().add_stream(name="EVENTS", subjects=["ev.*"])
    first = await js.publish("ev.a", b"1")
    assert (first.stream, first.seq, first.duplicate) == ("EVENTS", 1, None)
    ack = await js.publish("ev.b", b"2", headers={"Nats-Msg-Id": "m-2"})
    dup = await js.publish("ev.b", b"2 again", headers={"Nats-Msg-Id": "m-2"})
    assert (dup.seq, dup.duplicate) == (ack.seq, True)
    assert (await nc.jsm().stream_info("EVENTS")).state.messages == 2
    with pytest.raises(BadRequestError) as err:
        await js.publish("ev.a", b"x", headers={"Nats-Expected-Last-Sequence": "1"})
    assert err.value.err_code == 10071 and "wrong last sequence: 2" in err.value.description
    ok = await js.publish("ev.c", b"x", headers={"Nats-Expected-Last-Sequence": "2"})
    assert ok.seq == 3
    with pytest.raises(BadRequestError) as err:
        await js.publish("ev.a", b"x", headers={"Nats-Expected-Last-Subject-Sequence": "0"})
    assert err.value.err_code == 10071
    await js.publish("ev.new", b"x", headers={"Nats-Expected-Last-Subject-Sequence": "0"})
    with pytest.raises(BadRequestError) as err:
        await js.publish("ev.a", b"x", headers={"Nats-Expected-Stream": "OTHER"})
    assert err.value.err_code == 10060
    ok = await js.publish("ev.a", b"x", stream="EVENTS")
    assert ok.stream == "EVENTS"
    with pytest.raises(BadRequestError) as err:
        await js.publish("ev.a", b"x", headers={"Nats-Expected-Last-Msg-Id": "nope"})
    assert err.value.err_code == 10070


async def test_publish_to_a_subject_no_stream_covers(js_broker):
    _, _, js = js_broker
    with pytest.raises(NoStreamResponseError):
        await js.publish("nobody.stores.this", b"x")


async def test_many_async_publishes_get_unique_increasing_sequences(js_broker):
    _, nc, js = js_broker
    await nc.jsm().add_stream(name="BULK", subjects=["bulk"])
    futures = [await js.publish_async("bulk", b"%d" % i) for i in range(2000)]
    acks = await asyncio.gather(*futures)
    assert [a.seq for a in acks] == list(range(1, 2001))
    info = await nc.jsm().stream_info("BULK")
    assert (info.state.messages, info.state.first_seq, info.state.last_seq) == (2000, 1, 2000)


async def test_limits_discard_old_and_new(js_broker):
    _, nc, js = js_broker
    jsm = nc.jsm()
    await jsm.add_stream(name="OLD", subjects=["old"], max_msgs=3)
    for i in range(5):
        await js.publish("old", b"%d" % i)
    state = (await jsm.stream_info("OLD")).state
    assert (state.messages, state.first_seq, state.last_seq) == (3, 3, 5)
    await jsm.add_stream(name="NEW", subjects=["new"], max_msgs=2, discard=api.DiscardPolicy.NEW)
    await js.publish("new", b"1")
    await js.publish("new", b"2")
    with pytest.raises(nats.js.errors.ServiceUnavailableError) as err:
        await js.publish("new", b"3")
    assert err.value.err_code == 10077 and err.value.description == "maximum messages exceeded"
    await jsm.add_stream(name="SIZE", subjects=["size"], max_msg_size=10)
    with pytest.raises(BadRequestError) as err:
        await js.publish("size", b"x" * 11)
    assert err.value.err_code == 10054
    await jsm.add_stream(name="PER", subjects=["per.*"], max_msgs_per_subject=2)
    for i in range(4):
        await js.publish("per.a", b"%d" % i)
    await js.publish("per.b", b"b")
    info = await jsm.stream_info("PER", subjects_filter=">")
    assert info.state.subjects == {"per.a": 2, "per.b": 1}


async def test_rollup_keeps_only_the_newest(js_broker):
    _, nc, js = js_broker
    jsm = nc.jsm()
    await jsm.add_stream(name="R", subjects=["r.*"], allow_rollup_hdrs=True)
    for i in range(3):
        await js.publish("r.a", b"%d" % i)
        await js.publish("r.b", b"%d" % i)
    await js.publish("r.a", b"latest", headers={"Nats-Rollup": "sub"})
    info = await jsm.stream_info("R", subjects_filter=">")
    assert info.state.subjects == {"r.a": 1, "r.b": 3}
    await js.publish("r.b", b"only", headers={"Nats-Rollup": "all"})
    assert (await jsm.stream_info("R")).state.messages == 1
    await jsm.add_stream(name="NR", subjects=["nr"])
    with pytest.raises(nats.js.errors.ServerError) as err:
        await js.publish("nr", b"x", headers={"Nats-Rollup": "all"})
    assert err.value.err_code == 10111


async def test_get_delete_and_purge_messages(js_broker):
    _, nc, js = js_broker
    jsm = nc.jsm()
    await jsm.add_stream(name="KVISH", subjects=["k.>"])
    for key in ("a", "b", "a", "c.d", "a"):
        await js.publish(f"k.{key}", key.encode(), headers={"X-Key": key})
    msg = await jsm.get_msg("KVISH", seq=2)
    assert (msg.subject, msg.data, msg.seq) == ("k.b", b"b", 2)
    assert msg.headers == {"X-Key": "b"}
    last = await jsm.get_last_msg("KVISH", "k.a")
    assert last.seq == 5
    wild = await jsm.get_msg("KVISH", subject="k.c.>")
    assert wild.seq == 4
    nxt = await jsm.get_msg("KVISH", seq=2, subject="k.a", next=True)
    assert nxt.seq == 3
    assert await jsm.delete_msg("KVISH", 3)
    with pytest.raises(NotFoundError):
        await jsm.get_msg("KVISH", seq=3)
    info = await raw_api(nc, "$JS.API.STREAM.INFO.KVISH", {"deleted_details": True})
    assert info["state"]["num_deleted"] == 1 and info["state"]["deleted"] == [3]
    assert await jsm.purge_stream("KVISH", subject="k.a")
    assert (await jsm.stream_info("KVISH")).state.messages == 2
    assert await jsm.purge_stream("KVISH", keep=1)
    state = (await jsm.stream_info("KVISH")).state
    assert (state.messages, state.first_seq, state.last_seq) == (1, 4, 5) or state.messages == 1
    assert await jsm.purge_stream("KVISH")
    await js.publish("k.z", b"z")
    state = (await jsm.stream_info("KVISH")).state
    assert (state.messages, state.first_seq, state.last_seq) == (1, 6, 6)


async def test_direct_get_both_forms(js_broker):
    _, nc, js = js_broker
    jsm = nc.jsm()
    await jsm.add_stream(name="D", subjects=["d.>"], allow_direct=True)
    await js.publish("d.x", b"one")
    await js.publish("d.y", b"two")
    by_subject = await jsm.get_msg("D", subject="d.y", direct=True)
    assert (by_subject.data, by_subject.seq, by_subject.subject) == (b"two", 2, "d.y")
    by_seq = await jsm.get_msg("D", seq=1, direct=True)
    assert by_seq.data == b"one"
    with pytest.raises(NotFoundError):
        await jsm.get_msg("D", seq=99, direct=True)
    raw = await nc.request("$JS.API.DIRECT.GET.D", b'{"seq":2}', timeout=2)
    assert raw.headers["Nats-Stream"] == "D" and raw.headers["Nats-Sequence"] == "2"
    assert raw.headers["Nats-Subject"] == "d.y"


async def test_update_list_names_delete(js_broker):
    _, nc, js = js_broker
    jsm = nc.jsm()
    await jsm.add_stream(name="S1", subjects=["s1.*"])
    await jsm.add_stream(name="S2", subjects=["s2.*"], storage=api.StorageType.MEMORY)
    updated = await jsm.update_stream(name="S1", subjects=["s1.*", "more"], max_msgs=10)
    assert updated.config.max_msgs == 10 and updated.config.subjects == ["s1.*", "more"]
    ack = await js.publish("more", b"x")
    assert ack.stream == "S1"
    with pytest.raises(nats.js.errors.ServerError) as err:
        await jsm.update_stream(name="S2", subjects=["s2.*"], storage=api.StorageType.FILE)
    assert err.value.err_code == 10052
    assert sorted(i.config.name for i in await jsm.streams_info()) == ["S1", "S2"]
    assert await jsm.find_stream_name_by_subject("s2.x") == "S2"
    names = await raw_api(nc, "$JS.API.STREAM.NAMES", {"subject": "s1.>"})
    assert names["streams"] == ["S1"] and names["total"] == 1
    assert await jsm.delete_stream("S2")
    with pytest.raises(NotFoundError):
        await jsm.stream_info("S2")
    account = await jsm.account_info()
    assert account.streams == 1


async def test_sealed_streams_refuse_writes(js_broker):
    _, nc, js = js_broker
    jsm = nc.jsm()
    await jsm.add_stream(name="SEAL", subjects=["seal"])
    await js.publish("seal", b"x")
    await jsm.update_stream(name="SEAL", subjects=["seal"], sealed=True)
    with pytest.raises(BadRequestError) as err:
        await js.publish("seal", b"y")
    assert err.value.err_code == 10109
    with pytest.raises(BadRequestError):
        await jsm.delete_msg("SEAL", 1)


async def test_streams_survive_a_restart(start_broker, tmp_path):
    server: ServerProcess = start_broker("-js", "-sd", str(tmp_path / "store"))
    server.restart_args_fixed()
    nc = await nats.connect(server.url)
    js = nc.jetstream()
    await nc.jsm().add_stream(name="KEEP", subjects=["keep.>"], max_msgs_per_subject=5)
    for i in range(100):
        await js.publish(f"keep.{i % 10}", b"payload-%d" % i, headers={"Nats-Msg-Id": f"id-{i}"})
    await nc.close()
    assert server.stop() == 0
    server.start()
    nc = await nats.connect(server.url)
    js = nc.jetstream()
    info = await nc.jsm().stream_info("KEEP")
    assert info.config.max_msgs_per_subject == 5
    assert (info.state.messages, info.state.last_seq) == (50, 100)
    msg = await nc.jsm().get_msg("KEEP", seq=100)
    assert msg.data == b"payload-99"
    dup = await js.publish("keep.9", b"again", headers={"Nats-Msg-Id": "id-99"})
    assert (dup.seq, dup.duplicate) == (100, True)  # dedupe survives the restart
    nxt = await js.publish("keep.0", b"next")
    assert nxt.seq == 101
    await nc.close()


async def test_message_ttl_expires_messages(js_broker):
    _, nc, js = js_broker
    await raw_api(nc, "$JS.API.STREAM.CREATE.TTL",
                  {"name": "TTL", "subjects": ["ttl.>"], "allow_msg_ttl": True})
    await js.publish("ttl.short", b"x", headers={"Nats-TTL": "1s"})
    await js.publish("ttl.keep", b"y")
    with pytest.raises(BadRequestError) as err:
        await js.publish("ttl.bad", b"z", headers={"Nats-TTL": "soon"})
    assert err.value.err_code == 10165
    deadline = asyncio.get_running_loop().time() + 5
    while (await nc.jsm().stream_info("TTL")).state.messages != 1:
        assert asyncio.get_running_loop().time() < deadline, "the TTL never expired"
        await asyncio.sleep(0.1)  # polling the observable state, with a deadline
    assert (await nc.jsm().get_last_msg("TTL", "ttl.keep")).data == b"y"
    await nc.jsm().add_stream(name="NOTTL", subjects=["nottl"])
    with pytest.raises(BadRequestError) as err:
        await js.publish("nottl", b"x", headers={"Nats-TTL": "1s"})
    assert err.value.err_code == 10166


async def test_account_storage_limit_refuses_publishes(start_broker, tmp_path):
    server = start_broker(config=f'jetstream {{ store_dir: "{tmp_path}/s", '
                                 'max_file_store: 64KB }\n')
    nc = await nats.connect(server.url)
    js = nc.jetstream()
    await nc.jsm().add_stream(name="SMALL", subjects=["small"])
    with pytest.raises(nats.js.errors.APIError) as err:
        for _ in range(200):
            await js.publish("small", b"x" * 1000)
    assert err.value.err_code == 10047
    with pytest.raises(nats.js.errors.APIError) as err:
        await nc.jsm().add_stream(name="BIG", subjects=["big"], max_bytes=1 << 20)
    assert err.value.err_code == 10047
    await nc.close()


async def test_a_subject_that_is_not_utf8_is_stored_as_nats_server_stores_it(js_broker):
    """nats-server routes and stores any subject bytes; its JSON shows invalid UTF-8 as U+FFFD
    (checked against 2.9.10 and 2.15.1). Once this raised in our ingest: no PubAck, a traceback."""
    server, nc, js = js_broker
    await js.add_stream(name="ALL", subjects=["x.>"])
    reader, writer = await asyncio.open_connection(server.host, server.port)
    await reader.readline()  # INFO
    writer.write(b'CONNECT {"verbose":false,"pedantic":false}\r\nSUB _R.> 1\r\n'
                 b"PUB x.\xff\xfe _R.1 2\r\nhi\r\nPUB x.ok _R.2 2\r\nok\r\nPING\r\n")
    await writer.drain()
    acks = []
    while len(acks) < 2:
        line = await asyncio.wait_for(reader.readline(), 5)
        if line.startswith(b"MSG _R."):
            acks.append(json.loads(await reader.readline()))
    writer.close()
    assert sorted(a["seq"] for a in acks) == [1, 2]
    reply = await raw_api(nc, "$JS.API.STREAM.MSG.GET.ALL", {"seq": 1})
    assert reply["message"]["subject"] == "x.\ufffd\ufffd"
    assert "Traceback" not in server.log()
