"""Mirrors and sources, as nats-py sees them on nats-server and on us: a mirror keeps the
origin's sequences, subjects and headers; sources store each message under its (transformed)
subject with a `Nats-Stream-Source` header; both catch up what was there before and follow
what comes after; stream info shows each origin's lag."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import pytest
from nats.js.api import StreamSource, SubjectTransform

from ..conftest import impl_version

pytestmark = pytest.mark.conformance(area="sourcing")


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 10.0) -> None:
    """Poll `check` (a copy runs in the background) until it holds, or fail naming `what`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def count(js, stream: str) -> int:
    return (await js.stream_info(stream)).state.messages


@pytest.fixture
def needs_210(impl):
    if impl_version(impl) < (2, 10):
        pytest.skip("subject transforms in sources came with nats-server 2.10")


async def test_a_mirror_keeps_sequences_subjects_and_headers(nc, uniq):
    js = nc.jetstream()
    origin, mirror = f"{uniq}O", f"{uniq}M"
    await js.add_stream(name=origin, subjects=[f"{uniq}.>"])
    for n in range(1, 6):
        await js.publish(f"{uniq}.{n}", b"m%d" % n, headers={"X-N": str(n)})
    await js.delete_msg(origin, 2)  # a gap the mirror keeps
    await js.add_stream(name=mirror, mirror=StreamSource(name=origin))

    async def caught_up() -> bool:
        return (await js.stream_info(mirror)).state.last_seq == 5
    await until(caught_up, "the mirror to catch up")
    await js.publish(f"{uniq}.6", b"m6")
    await until(lambda: _last_seq_is(js, mirror, 6), "the mirror to follow")
    for seq in (1, 3, 6):
        msg = await js.get_msg(mirror, seq)
        assert (msg.subject, msg.data) == (f"{uniq}.{seq}", b"m%d" % seq)
    assert (await js.get_msg(mirror, 3)).headers["X-N"] == "3"
    info = await js.stream_info(mirror)
    assert info.state.messages == 5 and info.state.first_seq == 1
    assert info.mirror is not None and info.mirror.name == origin and info.mirror.lag == 0


async def _last_seq_is(js, stream: str, seq: int) -> bool:
    return (await js.stream_info(stream)).state.last_seq == seq


async def test_sources_gather_streams_with_a_header_naming_each_origin(nc, uniq, impl):
    js = nc.jetstream()
    one, two, agg = f"{uniq}A", f"{uniq}B", f"{uniq}AGG"
    await js.add_stream(name=one, subjects=[f"{uniq}.a.>"])
    await js.add_stream(name=two, subjects=[f"{uniq}.b.>"])
    await js.publish(f"{uniq}.a.1", b"a1")
    await js.publish(f"{uniq}.b.1", b"b1")
    await js.publish(f"{uniq}.b.2", b"b2")
    await js.add_stream(name=agg, sources=[
        StreamSource(name=one), StreamSource(name=two, filter_subject=f"{uniq}.b.2")])
    await until(lambda: _count_is(js, agg, 2), "both sources")
    await js.publish(f"{uniq}.a.2", b"a2")
    await until(lambda: _count_is(js, agg, 3), "a new message of a source")
    # "<origin> <seq> <filter> <transform> <subject>": 2.9 wrote the first two fields only,
    # 2.14 added the origin's identity at the end.
    fields = 2 if impl_version(impl) < (2, 10) else 5
    got = {}
    for seq in (1, 2, 3):
        msg = await js.get_msg(agg, seq)
        got[msg.subject] = " ".join(msg.headers["Nats-Stream-Source"].split(" ")[:fields])
    expected = {f"{uniq}.a.1": f"{one} 1 > > {uniq}.a.1",
                f"{uniq}.b.2": f"{two} 2 {uniq}.b.2 > {uniq}.b.2",
                f"{uniq}.a.2": f"{one} 2 > > {uniq}.a.2"}
    assert got == {k: " ".join(v.split(" ")[:fields]) for k, v in expected.items()}
    info = await js.stream_info(agg)
    assert sorted(s.name for s in info.sources) == [one, two]


async def _count_is(js, stream: str, n: int) -> bool:
    return await count(js, stream) == n


async def test_a_source_from_a_start_sequence(nc, uniq):
    js = nc.jetstream()
    origin, target = f"{uniq}O", f"{uniq}T"
    await js.add_stream(name=origin, subjects=[f"{uniq}.>"])
    for n in range(1, 6):
        await js.publish(f"{uniq}.{n}", b"%d" % n)
    await js.add_stream(name=target, sources=[StreamSource(name=origin, opt_start_seq=4)])
    await until(lambda: _count_is(js, target, 2), "the source from sequence 4")
    assert [(await js.get_msg(target, seq)).data for seq in (1, 2)] == [b"4", b"5"]


async def test_a_source_transforms_subjects(nc, uniq, needs_210):
    js = nc.jetstream()
    origin, target = f"{uniq}O", f"{uniq}T"
    await js.add_stream(name=origin, subjects=[f"{uniq}.in.*"])
    await js.publish(f"{uniq}.in.x", b"x")
    await js.add_stream(name=target, sources=[StreamSource(
        name=origin, subject_transforms=[SubjectTransform(src=f"{uniq}.in.*",
                                                          dest=f"{uniq}.out.{{{{wildcard(1)}}}}")])])
    await until(lambda: _count_is(js, target, 1), "the transformed source")
    msg = await js.get_msg(target, 1)
    assert msg.subject == f"{uniq}.out.x"
    assert msg.headers["Nats-Stream-Source"].split(" ")[:5] == [
        origin, "1", f"{uniq}.in.*", f"{uniq}.out.{{{{wildcard(1)}}}}", f"{uniq}.in.x"]


async def test_a_source_of_a_missing_stream_waits_for_it(nc, uniq):
    """An origin that does not exist yet is retried (nats-server and we both keep trying);
    once it is created, what it holds is copied."""
    js = nc.jetstream()
    origin, target = f"{uniq}LATE", f"{uniq}T"
    await js.add_stream(name=target, sources=[StreamSource(name=origin)])
    await js.add_stream(name=origin, subjects=[f"{uniq}.>"])
    await js.publish(f"{uniq}.x", b"late")
    await until(lambda: _count_is(js, target, 1), "the late origin's message", timeout=30)
    assert (await js.get_msg(target, 1)).data == b"late"


CROSS_ACCOUNT = """
accounts {
  A {
    users = [ {user: a, password: a} ]
    jetstream: enabled
    exports = [ { service: "$JS.API.>" }, { stream: "dlv.>" } ]
  }
  B {
    users = [ {user: b, password: b} ]
    jetstream: enabled
    imports = [
      { service: { account: A, subject: "$JS.API.>" }, to: "$JS.a.API.>" }
      { stream: { account: A, subject: "dlv.>" } }
    ]
  }
}
"""


async def test_an_external_origin_in_another_account(start_js_server):
    """`external { api, deliver }`: B mirrors A's stream through the JetStream API A exports
    (imported as `$JS.a.API`), its deliveries coming back on the `dlv.` stream A exports."""
    import nats

    from .conftest import server_url

    srv = start_js_server(config_text=CROSS_ACCOUNT)
    a = await nats.connect(server_url(srv), user="a", password="a")
    b = await nats.connect(server_url(srv), user="b", password="b")
    try:
        await a.jetstream().add_stream(name="EXO", subjects=["exo.>"])
        await a.jetstream().publish("exo.1", b"far away")
        js = b.jetstream()
        await js.add_stream(name="EXOM", mirror=StreamSource(
            name="EXO", external={"api": "$JS.a.API", "deliver": "dlv"}))
        await until(lambda: _count_is(js, "EXOM", 1), "the external mirror", timeout=20)
        assert (await js.get_msg("EXOM", 1)).data == b"far away"
        raw = json.loads((await b.request("$JS.API.STREAM.INFO.EXOM", b"", timeout=3)).data)
        assert raw["mirror"]["name"] == "EXO"
        assert raw["mirror"]["external"]["api"] == "$JS.a.API"
    finally:
        await a.close()
        await b.close()


async def test_a_mirror_of_a_direct_stream_answers_its_direct_gets(nc, uniq):
    """mirror_direct (inherited from an origin with allow_direct): the mirror answers direct
    gets for the origin too; with the origin gone, it alone does."""
    js = nc.jetstream()
    origin, mirror = f"{uniq}O", f"{uniq}M"
    await js.add_stream(name=origin, subjects=[f"{uniq}.>"], allow_direct=True)
    await js.publish(f"{uniq}.1", b"kept")
    created = await js.add_stream(name=mirror, mirror=StreamSource(name=origin))
    assert created.config.mirror_direct is True
    await until(lambda: _count_is(js, mirror, 1), "the mirror")
    await js.delete_stream(origin)
    reply = await nc.request(f"$JS.API.DIRECT.GET.{origin}", b'{"seq": 1}', timeout=3)
    assert reply.data == b"kept" and reply.headers["Nats-Stream"] == mirror


async def test_a_client_may_not_pass_a_message_off_as_a_copy(nc, uniq, impl):
    """A publish carrying `Nats-Stream-Source` to a stream with sources is refused (10227,
    nats-server 2.14+; 2.9 stored it): it would pass for a copy from that source."""
    if impl_version(impl) < (2, 10):
        pytest.skip("nats-server 2.9 stores such a header as any other")
    js = nc.jetstream()
    origin, target = f"{uniq}O", f"{uniq}T"
    await js.add_stream(name=origin, subjects=[f"{uniq}.o.>"])
    await js.add_stream(name=target, subjects=[f"{uniq}.t.>"],
                        sources=[StreamSource(name=origin)])
    from nats.js.errors import BadRequestError
    with pytest.raises(BadRequestError) as refused:
        await js.publish(f"{uniq}.t.1", b"forged",
                         headers={"Nats-Stream-Source": f"{origin} 99 > > {uniq}.o.1"})
    assert refused.value.err_code == 10227
    await js.publish(f"{uniq}.o.1", b"real")  # the real copy is not taken for a duplicate
    await until(lambda: _count_is(js, target, 1), "the real copy")
