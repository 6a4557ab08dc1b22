"""Subject transforms, republish, and the config checks of mirrors and sources.

* `subject_transform {src, dest}` (2.10+): the stored subject is the transformed one; a subject
  that does not match `src` is stored as it came; invalid transforms are refused with 10155
  (source) / 10156 (destination) and nats-server's mapping error texts.
* `republish {src, dest, headers_only}`: after a message is stored, a copy goes to the
  transformed subject with `Nats-Stream`, `Nats-Subject`, `Nats-Sequence`, `Nats-Time-Stamp`
  (2.10+), `Nats-Last-Sequence` appended to the message's own headers; `headers_only` sends no
  body and adds `Nats-Msg-Size`. A KV bucket made by nats-py with `republish=` republishes puts.
* Mirrors and sources: the create errors that come before anything is copied (2.15.1's codes
  and texts). Our broker validates them the same way but does not copy yet: a valid mirror or
  sources config gets 10052 "... is not supported by this server" from it (see
  `BROKER_REFUSES_SOURCING`).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import nats
import pytest
from nats.js.api import RePublish

from ..conftest import Impl, impl_version
from .conftest import server_url
from .jsutil import API, RawJS, api_error

pytestmark = pytest.mark.conformance(area="js-streams")

# The broker validates mirrors and sources but refuses a valid one (10052) until the sourcing
# runtime is wired in. Set to False (or delete with its uses) when the refusal goes.
BROKER_REFUSES_SOURCING = False

CREATE = "io.nats.jetstream.api.v1.stream_create_response"


def needs(impl: Impl, version: tuple[int, ...], what: str) -> None:
    if impl_version(impl) < version:
        pytest.skip(f"{what}: nats-server {'.'.join(map(str, version))}+")


def create(raw: RawJS, cfg: dict[str, Any]) -> dict[str, Any]:
    return raw.api(f"STREAM.CREATE.{cfg['name']}", cfg)


def delete(raw: RawJS, name: str) -> None:
    raw.api(f"STREAM.DELETE.{name}")


def stored_subject(raw: RawJS, stream: str, seq: int) -> str:
    return raw.api(f"STREAM.MSG.GET.{stream}", {"seq": seq})["message"]["subject"]


def stored_time(raw: RawJS, stream: str, seq: int) -> str:
    """The stored message's time as MSG.GET gives it (unscrubbed)."""
    f = raw.request(f"{API}.STREAM.MSG.GET.{stream}", {"seq": seq})
    return f.json()["message"]["time"]


# -- subject transforms ------------------------------------------------------------------------

# nats-server 2.15.1: subject -> stored subject for orders.* -> orders.{{partition(3,1)}}.$1.
PARTITIONED = {
    "orders.1": "orders.1.1", "orders.2": "orders.1.2", "orders.3": "orders.2.3",
    "orders.abc": "orders.2.abc", "orders.hello": "orders.0.hello", "orders.x": "orders.0.x",
}


def test_partition_transform_stores_the_mapped_subject(raw, impl, uniq):
    needs(impl, (2, 10), "subject_transform")
    cfg = {"name": uniq, "subjects": ["orders.*", f"{uniq}.other"],
           "subject_transform": {"src": "orders.*",
                                 "dest": "orders.{{partition(3,1)}}.{{wildcard(1)}}"}}
    resp = create(raw, cfg)
    assert resp["config"]["subject_transform"] == cfg["subject_transform"]
    for subject, stored in PARTITIONED.items():
        ack = raw.pub(subject, b"x")
        assert stored_subject(raw, uniq, ack["seq"]) == stored
    # A subject the transform's source does not match is stored as it came.
    ack = raw.pub(f"{uniq}.other", b"x")
    assert stored_subject(raw, uniq, ack["seq"]) == f"{uniq}.other"
    state = raw.stream_state(uniq)
    assert state["messages"] == len(PARTITIONED) + 1
    delete(raw, uniq)


@pytest.mark.parametrize(("dest", "published", "stored"), [
    ("t.{{split(1,-)}}", "tf.a-b--c", "t.a.b.c"),
    ("t.{{splitfromleft(1,2)}}", "tf.abcdef", "t.ab.cdef"),
    ("t.{{splitfromright(1,2)}}", "tf.abcdef", "t.abcd.ef"),
    ("t.{{slicefromleft(1,2)}}", "tf.abcde", "t.ab.cd.e"),
    ("t.{{slicefromright(1,2)}}", "tf.abcde", "t.a.bc.de"),
    ("t.{{left(1,2)}}", "tf.abcde", "t.ab"),
    ("t.{{right(1,2)}}", "tf.abcde", "t.de"),
    ("t.$1.{{partition(5)}}", "tf.k", "t.k.3"),
])
def test_transform_functions(raw, impl, uniq, dest, published, stored):
    needs(impl, (2, 15), "left/right and these functions as 2.15.1 applies them")
    create(raw, {"name": uniq, "subjects": ["tf.*"],
                 "subject_transform": {"src": "tf.*", "dest": dest}})
    ack = raw.pub(published, b"x")
    assert stored_subject(raw, uniq, ack["seq"]) == stored
    delete(raw, uniq)


def test_transform_echo_fills_both_keys(raw, impl, uniq):
    needs(impl, (2, 10), "subject_transform")
    resp = create(raw, {"name": uniq, "subjects": [f"{uniq}.>"], "subject_transform": {}})
    assert resp["config"]["subject_transform"] == {"src": "", "dest": ""}
    # An empty transform transforms nothing.
    ack = raw.pub(f"{uniq}.a", b"x")
    assert stored_subject(raw, uniq, ack["seq"]) == f"{uniq}.a"
    delete(raw, uniq)


@pytest.mark.parametrize(("src", "dest", "err_code", "text"), [
    ("o..*", "o.$1", 10155, "stream transform source: invalid subject o..*"),
    ("o.*", "o.{{bogus(1)}}", 10156,
     "stream transform: invalid mapping destination: unknown function in {{bogus(1)}}"),
    ("o.*", "o.$2", 10156,
     "stream transform: invalid mapping destination: wildcard index out of range in $2: [2]"),
    ("o", "o.{{wildcard(1)}}", 10156, "stream transform: invalid mapping destination: "
     "wildcard index out of range in {{wildcard(1)}}"),
    ("o.*", "o.*", 10156, "stream transform: invalid subject"),
    ("o.>", "o.x", 10156, "stream transform: invalid subject"),
    ("o.*", "o.a b", 10156, "stream transform: invalid mapping destination: invalid transform"),
    ("o.*", "o.>.x", 10156,
     "stream transform: invalid mapping destination: invalid transform in x"),
    ("o.*", "o.{{wildcard()}}", 10156, "stream transform: invalid mapping destination: "
     "not enough arguments passed to the function in {{wildcard()}}"),
    ("o.*", "o.{{splitfromleft(1,2,3)}}", 10156, "stream transform: invalid mapping "
     "destination: too many arguments passed to the function in {{splitfromleft(1,2,3)}}"),
    ("o.*", "o.{{wildcard(a)}}", 10156, "stream transform: invalid mapping destination: "
     "function argument is invalid or in the wrong format in {{wildcard(a)}}"),
])
def test_invalid_transforms(raw, impl, uniq, src, dest, err_code, text):
    needs(impl, (2, 15), "these transform errors as 2.15.1 words them")
    resp = create(raw, {"name": uniq, "subjects": ["o.*", "o"],
                        "subject_transform": {"src": src, "dest": dest}})
    assert resp == api_error("stream_create_response", 400, err_code, text)


# -- republish ---------------------------------------------------------------------------------

def republished(raw: RawJS, sid: str, count: int) -> list:
    frames = [raw.next(sid) for _ in range(count)]
    raw.assert_nothing(sid)
    return frames


def expected_headers(impl: Impl, raw: RawJS, stream: str, subject: str, seq: int, last: int,
                     own: bytes = b"", size: int | None = None) -> bytes:
    fields = f"Nats-Stream: {stream}\r\nNats-Subject: {subject}\r\nNats-Sequence: {seq}\r\n"
    if impl_version(impl) >= (2, 10):
        fields += f"Nats-Time-Stamp: {stored_time(raw, stream, seq)}\r\n"
    fields += f"Nats-Last-Sequence: {last}\r\n"
    if size is not None:
        fields += f"Nats-Msg-Size: {size}\r\n"
    return (own[:-2] if own else b"NATS/1.0\r\n") + fields.encode() + b"\r\n"


def test_republish_headers(raw, impl, uniq):
    resp = create(raw, {"name": uniq, "subjects": [f"{uniq}.>"],
                        "republish": {"src": f"{uniq}.*", "dest": f"rp{uniq}.$1"}})
    assert resp["config"]["republish"] == {"src": f"{uniq}.*", "dest": f"rp{uniq}.$1"}
    sid = raw.subscribe(f"rp{uniq}.>")
    raw.flush()
    own = b"NATS/1.0\r\nX-A: 1\r\n\r\n"
    assert raw.pub(f"{uniq}.a", b"hello")["seq"] == 1
    assert raw.pub(f"{uniq}.b", b"hello")["seq"] == 2
    assert raw.pub(f"{uniq}.a", b"hello", headers=own)["seq"] == 3
    assert raw.pub(f"{uniq}.a.b", b"hello")["seq"] == 4  # src does not match: not republished
    frames = republished(raw, sid, 3)
    assert [(f.op, f.subject, f.reply, f.payload) for f in frames] == [
        ("HMSG", f"rp{uniq}.a", None, b"hello"),
        ("HMSG", f"rp{uniq}.b", None, b"hello"),
        ("HMSG", f"rp{uniq}.a", None, b"hello"),
    ]
    assert frames[0].hdr == expected_headers(impl, raw, uniq, f"{uniq}.a", 1, 0)
    assert frames[1].hdr == expected_headers(impl, raw, uniq, f"{uniq}.b", 2, 0)
    # The message's own headers first; Nats-Last-Sequence: the last of the same subject.
    assert frames[2].hdr == expected_headers(impl, raw, uniq, f"{uniq}.a", 3, 1, own)
    delete(raw, uniq)


def test_republish_headers_only(raw, impl, uniq):
    resp = create(raw, {"name": uniq, "subjects": [f"{uniq}.>"],
                        "republish": {"dest": f"rp{uniq}.>", "headers_only": True}})
    # src defaults to ">"; headers_only is echoed only when true.
    assert resp["config"]["republish"] == {"src": ">", "dest": f"rp{uniq}.>",
                                           "headers_only": True}
    sid = raw.subscribe(f"rp{uniq}.>")
    raw.flush()
    own = b"NATS/1.0\r\nX-A: 1\r\n\r\n"
    raw.pub(f"{uniq}.a", b"hello")
    raw.pub(f"{uniq}.a", b"hi", headers=own)
    frames = republished(raw, sid, 2)
    assert [(f.subject, f.payload) for f in frames] == [(f"rp{uniq}.{uniq}.a", b"")] * 2
    assert frames[0].hdr == expected_headers(impl, raw, uniq, f"{uniq}.a", 1, 0, size=5)
    assert frames[1].hdr == expected_headers(impl, raw, uniq, f"{uniq}.a", 2, 1, own, size=2)
    delete(raw, uniq)


def test_republish_of_a_duplicate_or_refused_publish_does_not_happen(raw, uniq):
    create(raw, {"name": uniq, "subjects": [f"{uniq}.>"],
                 "republish": {"dest": f"rp{uniq}.>"}})
    sid = raw.subscribe(f"rp{uniq}.>")
    raw.flush()
    msg_id = {"Nats-Msg-Id": "m1"}
    assert raw.pub(f"{uniq}.a", b"1", headers=msg_id) == {"stream": uniq, "seq": 1}
    assert raw.pub(f"{uniq}.a", b"1", headers=msg_id) == {"stream": uniq, "seq": 1,
                                                          "duplicate": True}
    assert "error" in raw.pub(f"{uniq}.a", b"1", headers={"Nats-Expected-Last-Sequence": "7"})
    assert [f.header("Nats-Sequence") for f in republished(raw, sid, 1)] == ["1"]
    delete(raw, uniq)


def test_republish_of_the_transformed_subject(raw, impl, uniq):
    needs(impl, (2, 10), "subject_transform")
    # ">" to ">" with a transform of the only subject: the transformed subjects, republished.
    resp = create(raw, {"name": uniq, "subjects": [f"{uniq}.>"],
                        "subject_transform": {"src": f"{uniq}.>", "dest": f"t{uniq}.>"},
                        "republish": {"src": ">", "dest": ">"}})
    assert resp["config"]["republish"] == {"src": f"t{uniq}.>", "dest": f"t{uniq}.>"}
    sid = raw.subscribe(f"t{uniq}.>")
    raw.flush()
    raw.pub(f"{uniq}.a", b"hello")
    [frame] = republished(raw, sid, 1)
    assert frame.subject == f"t{uniq}.a"
    assert frame.hdr == expected_headers(impl, raw, uniq, f"t{uniq}.a", 1, 0)
    delete(raw, uniq)


@pytest.mark.parametrize(("subjects", "extra", "text", "version"), [
    (["r.>"], {"republish": {"src": "r.>", "dest": "r.x.>"}},
     "stream configuration for republish destination forms a cycle", (2, 9)),
    (["r.>"], {"republish": {"src": ">", "dest": ">"}},
     "stream configuration for republish destination forms a cycle", (2, 9)),
    (["r.*"], {"republish": {"src": "r.*", "dest": "*.x"}},
     "stream configuration for republish destination forms a cycle", (2, 9)),
    (["r.>", "s"], {"republish": {"src": ">", "dest": ">"},
                    "subject_transform": {"src": "r.>", "dest": "t.>"}},
     "stream configuration for republish destination forms a cycle", (2, 10)),
    (["r.>"], {"republish": {"src": "r.*", "dest": "x.$2"}},
     "stream configuration for republish with transform from 'r.*' to 'x.$2' not valid",
     (2, 15)),
    (["r.>"], {"republish": {"src": "r..b", "dest": "x"}},
     "stream configuration for republish with transform from 'r..b' to 'x' not valid",
     (2, 15)),
])
def test_republish_config_errors(raw, impl, uniq, subjects, extra, text, version):
    needs(impl, version, "this republish check")
    resp = create(raw, {"name": uniq, "subjects": subjects, **extra})
    assert resp == api_error("stream_create_response", 500, 10052, text)


def test_republish_without_dest_is_accepted(raw, impl, uniq):
    needs(impl, (2, 15), "an empty republish dest (2.9.10 refuses it)")
    resp = create(raw, {"name": uniq, "subjects": [f"{uniq}.>"],
                        "republish": {"src": f"{uniq}.>"}})
    assert resp["config"]["republish"] == {"src": f"{uniq}.>", "dest": ""}
    assert raw.pub(f"{uniq}.a", b"x")["seq"] == 1
    delete(raw, uniq)


async def test_kv_bucket_with_republish(js_server, raw, impl, uniq):
    nc = await nats.connect(server_url(js_server))
    try:
        js = nc.jetstream()
        got: list = []
        three = asyncio.Event()

        async def collect(msg) -> None:
            got.append(msg)
            if len(got) == 3:
                three.set()

        sub = await nc.subscribe(f"kvrp.{uniq}.>", cb=collect)
        await nc.flush()
        kv = await js.create_key_value(
            bucket=uniq, republish=RePublish(src=f"$KV.{uniq}.>", dest=f"kvrp.{uniq}.>"))
        info = raw.api(f"STREAM.INFO.KV_{uniq}")
        assert info["config"]["republish"] == {"src": f"$KV.{uniq}.>",
                                               "dest": f"kvrp.{uniq}.>"}
        assert await kv.put("k1", b"v1") == 1
        assert await kv.put("k1", b"v2") == 2
        await kv.delete("k1")
        await asyncio.wait_for(three.wait(), 5)
        # The dest's ">" stands for the tokens the src's ">" matched.
        assert [(m.subject, m.data) for m in got] == [
            (f"kvrp.{uniq}.k1", b"v1"), (f"kvrp.{uniq}.k1", b"v2"), (f"kvrp.{uniq}.k1", b""),
        ]
        for i, m in enumerate(got, 1):
            assert m.headers["Nats-Stream"] == f"KV_{uniq}"
            assert m.headers["Nats-Subject"] == f"$KV.{uniq}.k1"
            assert m.headers["Nats-Sequence"] == str(i)
            assert m.headers["Nats-Last-Sequence"] == str(i - 1)
            assert ("Nats-Time-Stamp" in m.headers) == (impl_version(impl) >= (2, 10))
        assert got[2].headers["KV-Operation"] == "DEL"
        await sub.unsubscribe()
        await js.delete_key_value(uniq)
    finally:
        await nc.close()


# -- mirror and sources: the create checks -----------------------------------------------------

def _err(code: int, err_code: int, text: str) -> dict:
    return {"code": code, "err_code": err_code, "description": text}


MIRROR = "ORIGIN"
# (config without name, error, the oldest oracle checked to give it). Observed on 2.15.1
# (and on 2.9.10 for the (2, 9) ones).
SOURCING_ERRORS = [
    ({"mirror": {"name": MIRROR}, "first_seq": 5},
     _err(400, 10143, "stream mirrors can not have first sequence configured"), (2, 15)),
    ({"mirror": {"name": MIRROR}, "subjects": ["m2"]},
     _err(400, 10034, "stream mirrors can not contain subjects"), (2, 9)),
    ({"mirror": {"name": MIRROR}, "sources": [{"name": "X"}]},
     _err(400, 10031, "stream mirrors can not also contain other sources"), (2, 9)),
    ({"mirror": {"name": MIRROR, "consumer": {"name": "c"}}},
     _err(400, 10213, "stream mirror consumer config is invalid"), (2, 15)),
    ({"mirror": {"name": MIRROR, "filter_subject": "a",
                 "subject_transforms": [{"src": "b", "dest": "c"}]}},
     _err(400, 10150, "mirror with multiple subject transforms cannot also have a single "
                      "subject filter"), (2, 15)),
    ({"mirror": {"name": MIRROR}, "subject_delete_marker_ttl": 2_000_000_000},
     _err(500, 10052, "subject delete markers forbidden on mirrors"), (2, 15)),
    ({"mirror": {"name": MIRROR, "subject_transforms": [{"src": "a..b", "dest": "c"}]}},
     _err(400, 10151, "mirror transform source: invalid subject a..b"), (2, 15)),
    ({"mirror": {"name": MIRROR, "subject_transforms": [{"src": "a.*", "dest": "c.$2"}]}},
     _err(400, 10154, "mirror transform: invalid mapping destination: wildcard index out of "
                      "range in $2: [2]"), (2, 15)),
    ({"mirror": {"name": MIRROR, "subject_transforms": [{"src": "a.*", "dest": "c.$1"},
                                                        {"src": "a.b", "dest": "d"}]}},
     _err(400, 10152, "mirror subject filters can not overlap"), (2, 15)),
    ({"mirror": {"name": "OR.IG"}}, _err(400, 10142, "mirrored stream name is invalid"),
     (2, 15)),
    ({"mirror": {"name": ""}}, _err(400, 10142, "mirrored stream name is invalid"), (2, 15)),
    ({"mirror": {"name": MIRROR, "external": {"api": "$JS.x.API", "deliver": "d.*"}}},
     _err(400, 10024, "stream external delivery prefix d.* must not contain wildcards"),
     (2, 9)),
    ({"mirror": {"name": MIRROR, "external": {"api": "$JS.API", "deliver": ""}}},
     _err(400, 10021, "stream external api prefix $JS.API must not overlap with $JS.API"),
     (2, 9)),
    ({"mirror": {"name": MIRROR, "external": {"api": "a b", "deliver": ""}}},
     _err(500, 10052, 'stream external api prefix "a b" must be a valid subject without '
                      'wildcards'), (2, 9)),
    ({"mirror": {"name": MIRROR, "filter_subject": "a..b"}},
     _err(500, 10049, "subject filter 'a..b' for the mirror invalid subject"), (2, 15)),
    ({"mirror": {"name": "<self>"}}, _err(500, 10052, "detected cycle"), (2, 9)),
    ({"sources": [{"name": "A"}, {"name": "A"}]},
     _err(400, 10140, "duplicate source configuration detected"), (2, 15)),
    ({"sources": [{"name": "A", "filter_subject": "x"}, {"name": "A", "filter_subject": "x"}]},
     _err(400, 10140, "duplicate source configuration detected"), (2, 15)),
    ({"sources": [{"name": "A.B"}]}, _err(400, 10141, "sourced stream name is invalid"),
     (2, 15)),
    ({"sources": [{"name": ""}]}, _err(400, 10141, "sourced stream name is invalid"), (2, 15)),
    ({"sources": [{"name": "A", "filter_subject": "x",
                   "subject_transforms": [{"src": "x", "dest": "y"}]}]},
     _err(400, 10144, "source with multiple subject transforms cannot also have a single "
                      "subject filter"), (2, 15)),
    ({"sources": [{"name": "A", "subject_transforms": [{"src": "x..y", "dest": "y"}]}]},
     _err(400, 10145, "source transform source: invalid subject x..y"), (2, 15)),
    ({"sources": [{"name": "A", "subject_transforms": [{"src": "x.*", "dest": "y.$3"}]}]},
     _err(400, 10146, "source transform: invalid mapping destination: wildcard index out of "
                      "range in $3: [3]"), (2, 15)),
    ({"sources": [{"name": "A", "subject_transforms": [{"src": "x.*", "dest": "y.$1"},
                                                       {"src": "x.a", "dest": "z"}]}]},
     _err(400, 10147, "source filters can not overlap"), (2, 15)),
    ({"sources": [{"name": "A", "consumer": {"name": "c"}}]},
     _err(400, 10215, "stream source consumer config is invalid"), (2, 15)),
    ({"sources": [{"name": "A", "external": {"api": "$JS.x.API", "deliver": "d.*"}}]},
     _err(400, 10024, "stream external delivery prefix d.* must not contain wildcards"),
     (2, 9)),
    ({"sources": [{"name": "A", "external": {"api": "a.*", "deliver": ""}}]},
     _err(500, 10052, 'stream external api prefix "a.*" must be a valid subject without '
                      'wildcards'), (2, 9)),
    ({"sources": [{"name": "A", "filter_subject": "a b"}]},
     _err(500, 10049, "subject filter 'a b' for the source: invalid subject"), (2, 15)),
    ({"sources": [{"name": "<self>"}]}, _err(500, 10052, "detected cycle"), (2, 9)),
]


@pytest.mark.parametrize(("cfg", "error", "version"), SOURCING_ERRORS,
                         ids=[str(i) for i in range(len(SOURCING_ERRORS))])
def test_mirror_and_sources_config_errors(raw, impl, uniq, cfg, error, version):
    needs(impl, version, "this mirror/sources check")
    body = json.loads(json.dumps(cfg).replace("<self>", uniq))
    resp = create(raw, {"name": uniq, **body})
    assert resp == {"type": CREATE, "error": error}


VALID_SOURCING = [
    {"mirror": {"name": MIRROR}},
    {"mirror": {"name": MIRROR, "opt_start_seq": 5, "opt_start_time": "2024-01-01T00:00:00Z"}},
    {"mirror": {"name": MIRROR, "subject_transforms": [{"src": "a.*", "dest": "c.$1"}]}},
    {"sources": [{"name": "A"}]},
    {"sources": [{"name": "A"}, {"name": "A", "filter_subject": "x"}]},
    {"sources": [{"name": "A", "subject_transforms": [{"src": "x.*", "dest": "y.$1"},
                                                      {"src": "*.b", "dest": "z.$1"}]}]},
    {"sources": [{"name": "A", "external": {"api": "$JS.a.API"}},
                 {"name": "A", "external": {"api": "$JS.b.API"}}]},
    {"sources": [{"name": "A"}], "subjects": ["<self>.in"]},
]


@pytest.mark.parametrize("cfg", VALID_SOURCING, ids=[str(i) for i in range(len(VALID_SOURCING))])
def test_valid_mirror_and_sources_configs(raw, impl, uniq, cfg):
    needs(impl, (2, 15), "transforms of mirrors and sources")
    body = json.loads(json.dumps(cfg).replace("<self>", uniq))
    resp = create(raw, {"name": uniq, **body})
    if impl.name == "broker" and BROKER_REFUSES_SOURCING:
        # BROKER: validated, then refused until the sourcing runtime lands (10052).
        what = "stream mirror" if "mirror" in cfg else "stream sources"
        assert resp == {"type": CREATE,
                        "error": _err(500, 10052, f"{what} is not supported by this server")}
        return
    assert "error" not in resp, resp
    delete(raw, uniq)
