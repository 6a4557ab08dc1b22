"""Subject transforms (common/transform.py): mapping, the functions, and the errors in
nats-server's words. Expected values were observed on nats-server 2.15.1 (the stored subject of
a stream with the transform as its `subject_transform`, or its create error)."""

from __future__ import annotations

import pytest

from broker.jetstream.errors import ApiError
from broker.jetstream.stream import Stream, store_config
from broker.jetstream.streamconfig import StreamConfig
from common.transform import (
    SubjectTransform,
    TransformError,
    new_transform,
    partition,
    validate_mapping,
)
from storage import MemoryStore


@pytest.mark.parametrize("src,dest,subject,expected", [
    ("a.*", "b.$1", "a.x", "b.x"),
    ("a.*.*", "b.$2.$1", "a.x.y", "b.y.x"),
    ("a.*.*", "b.{{wildcard(2)}}.{{Wildcard(1)}}", "a.x.y", "b.y.x"),
    ("a.*", "b.{{ wildcard( 1 ) }}", "a.x", "b.x"),
    ("a.*", "b.$+1", "a.x", "b.x"),
    ("a.*.>", "b.$1.>", "a.x.y.z", "b.x.y.z"),
    ("a.>", ">", "a.x.y", "x.y"),
    ("", "x.>", "a.b", "x.a.b"),
    (">", "x.>", "a.b", "x.a.b"),
    (">", ">", "a.b", "a.b"),
    ("*", "e", "d", "e"),
    # `$0` (or less) reads source token 0: nats-server looks wildcard numbers up in a map.
    ("d.*", "e.$0", "d.a", "e.d"),
    ("d.*", "e.{{wildcard(-1)}}", "d.a", "e.d"),
    # Tokens that only look like placeholders are literal.
    ("d.*", "e.$x.$", "d.a", "e.$x.$"),
    ("d.*", "e.{{}}", "d.a", "e.{{}}"),
    ("d.*", "e.{{partition(3,1)}}x", "d.a", "e.{{partition(3,1)}}x"),
    # split: empty parts dropped; an empty delimiter splits every character.
    ("d.*", "e.{{split(1,-)}}", "d.a-b-c", "e.a.b.c"),
    ("d.*", "e.{{split(1,-)}}", "d.-a--b-", "e.a.b"),
    ("d.*", "e.{{split(1,-)}}", "d.abc", "e.abc"),
    ("d.*", "e.{{split(1,-)}}", "d.--", "e."),
    ("d.*", "e.{{split(1,)}}", "d.abc", "e.a.b.c"),
    ("d.*", "e.{{split(1, -)}}", "d.a-b", "e.a.b"),
    # Lengths are UTF-8 bytes (ü is 2).
    ("d.*", "e.{{splitfromleft(1,2)}}", "d.abcdef", "e.ab.cdef"),
    ("d.*", "e.{{splitfromleft(1,2)}}", "d.ab", "e.ab"),
    ("d.*", "e.{{splitfromleft(1,2)}}", "d.üüü", "e.ü.üü"),
    ("d.*", "e.{{splitfromright(1,2)}}", "d.abcdef", "e.abcd.ef"),
    ("d.*", "e.{{splitfromright(1,2)}}", "d.abc", "e.a.bc"),
    ("d.*", "e.{{slicefromleft(1,2)}}", "d.abcdefg", "e.ab.cd.ef.g"),
    ("d.*", "e.{{slicefromleft(1,2)}}", "d.abcd", "e.ab.cd"),
    ("d.*", "e.{{slicefromleft(1,2)}}", "d.a", "e.a"),
    ("d.*", "e.{{slicefromright(1,2)}}", "d.abcdefg", "e.a.bc.de.fg"),
    ("d.*", "e.{{slicefromright(1,2)}}", "d.abc", "e.a.bc"),
    ("d.*", "e.{{ SliceFromRight( 1 , 3 ) }}", "d.abcdefg", "e.a.bcd.efg"),
    ("d.*", "e.{{left(1,2)}}", "d.abcdefg", "e.ab"),
    ("d.*", "e.{{left(1,2)}}", "d.a", "e.a"),
    ("d.*", "e.{{right(1,2)}}", "d.abcdefg", "e.fg"),
    ("d.*", "e.{{random(1)}}", "d.a", "e.0"),
    ("d.*", "e.{{random(0)}}", "d.a", "e.0"),
])
def test_apply(src, dest, subject, expected):
    assert SubjectTransform(src, dest).apply(subject) == expected


# Observed on nats-server 2.15.1: a stream with subjects ["orders.*"] and subject_transform
# {src: "orders.*", dest: "orders.{{partition(3,1)}}.{{wildcard(1)}}"}; each subject published
# and its stored subject read back with STREAM.MSG.GET.
PARTITIONED_ON_2_15_1 = {
    "orders.1": "orders.1.1",
    "orders.2": "orders.1.2",
    "orders.3": "orders.2.3",
    "orders.4": "orders.1.4",
    "orders.5": "orders.2.5",
    "orders.abc": "orders.2.abc",
    "orders.hello": "orders.0.hello",
    "orders.x": "orders.0.x",
}


@pytest.mark.parametrize("subject,stored", sorted(PARTITIONED_ON_2_15_1.items()))
def test_partition_is_nats_servers_hash(subject, stored):
    transform = SubjectTransform("orders.*", "orders.{{partition(3,1)}}.{{wildcard(1)}}")
    assert transform.apply(subject) == stored


@pytest.mark.parametrize("src,dest,subject,expected", [
    # Also observed on 2.15.1 (subjects d.>, e.>, d).
    ("d.*.*", "d.{{partition(7,2,1)}}.{{wildcard(2)}}.$1", "d.a.b", "d.6.b.a"),
    ("d.*.*", "d.{{partition(7,2,1)}}.{{wildcard(2)}}.$1", "d.xy.z", "d.1.z.xy"),
    ("d.*", "d.{{partition(3,1)}}.$1", "d.ü", "d.1.ü"),
    # Without indexes: the whole subject, tokens joined with dots.
    ("d.>", "e.{{partition(10)}}.>", "d.a", "e.0.a"),
    ("d.>", "e.{{partition(10)}}.>", "d.a.b.c", "e.7.a.b.c"),
    ("d.x", "e.{{partition(3)}}", "d.x", "e.0"),
    ("d.*", "e.{{partition(0,1)}}", "d.a", "e.0"),
    # A negative count is taken as Go's uint32 of it.
    ("d.*", "e.{{partition(-3,1)}}", "d.a", "e.3826002220"),
    ("d.*", "e.{{partition(-3,1)}}", "d.cc", "e.1445564707"),
])
def test_partition_cases(src, dest, subject, expected):
    assert SubjectTransform(src, dest).apply(subject) == expected


def test_partition_is_fnv1a_32():
    # FNV-1a 32 of "" is the offset basis 0x811c9dc5; of "a" 0xe40c292c.
    assert partition(b"", 1 << 31) == str(0x811C9DC5 % (1 << 31))
    assert partition(b"a", 0xFFFFFFFF) == str(0xE40C292C % 0xFFFFFFFF)
    assert partition(b"anything", 0) == "0"


@pytest.mark.parametrize("subject", [
    "b.x",         # another subject
    "a",           # too short
    "a.x.y",       # too long
    "a..x",        # not a valid subject
    "a.*",         # not literal
    "a.>",
])
def test_no_match_gives_none(subject):
    assert SubjectTransform("a.*", "b.$1").apply(subject) is None


def test_identity_passes_anything():
    assert SubjectTransform(">", ">").apply("any.subject") == "any.subject"
    assert SubjectTransform("", ">").apply("x") == "x"


def test_new_transform_with_empty_dest_is_none():
    assert new_transform("a.*", "") is None
    assert new_transform("", "b.>") is not None


# The errors, as 2.15.1 words them in a stream create ("stream transform: <error>", 10156).
@pytest.mark.parametrize("src,dest,error", [
    ("o.*", "o.{{bogus(1)}}", "invalid mapping destination: unknown function in {{bogus(1)}}"),
    ("d.*", "e.{{PARTITION(3,1)}}",
     "invalid mapping destination: unknown function in {{PARTITION(3,1)}}"),
    ("o.*", "o.$2", "invalid mapping destination: wildcard index out of range in $2: [2]"),
    ("d.*", "e.{{partition(3,2)}}",
     "invalid mapping destination: wildcard index out of range in {{partition(3,2)}}: [2]"),
    ("o", "o.{{wildcard(1)}}",
     "invalid mapping destination: wildcard index out of range in {{wildcard(1)}}"),
    ("o.*", "o.*", "invalid subject"),
    ("o.>", "o.x", "invalid subject"),
    ("o.*", ">", "invalid subject"),
    ("d.>", "e.*", "invalid subject"),
    ("o.*", "o.a b", "invalid mapping destination: invalid transform"),
    ("d.*", "e.\t", "invalid mapping destination: invalid transform"),
    ("o.*", "o..x", "invalid mapping destination: invalid transform"),
    ("o.*", "o.>.x", "invalid mapping destination: invalid transform in x"),
    ("o.*", "o.{{wildcard()}}",
     "invalid mapping destination: not enough arguments passed to the function in "
     "{{wildcard()}}"),
    ("o.*", "o.{{wildcard(1,2)}}",
     "invalid mapping destination: too many arguments passed to the function in "
     "{{wildcard(1,2)}}"),
    ("o.*", "o.{{wildcard(a)}}",
     "invalid mapping destination: function argument is invalid or in the wrong format in "
     "{{wildcard(a)}}"),
    ("d.*", "e.{{wildcard(1)}}{{wildcard(1)}}",
     "invalid mapping destination: function argument is invalid or in the wrong format in "
     "{{wildcard(1)}}{{wildcard(1)}}"),
    ("o.*", "o.{{split(1)}}",
     "invalid mapping destination: not enough arguments passed to the function in "
     "{{split(1)}}"),
    ("d.*", "e.{{split(1,- )}}",
     "invalid mapping destination: function argument is invalid or in the wrong format in "
     "{{split(1,- )}}"),
    ("o.*", "o.{{splitfromleft(1,2,3)}}",
     "invalid mapping destination: too many arguments passed to the function in "
     "{{splitfromleft(1,2,3)}}"),
    ("d.*", "e.{{splitfromleft(1,3000000000)}}",
     "invalid mapping destination: function argument is invalid or in the wrong format in "
     "{{splitfromleft(1,3000000000)}}"),
    ("d.*", "e.{{partition(3000000000,1)}}",
     "invalid mapping destination: function argument is invalid or in the wrong format in "
     "{{partition(3000000000,1)}}"),
    ("d.*", "e.{{random()}}",
     "invalid mapping destination: function argument is invalid or in the wrong format in "
     "{{random()}}"),
    ("d.*", "e.{{random(1,2)}}",
     "invalid mapping destination: not enough arguments passed to the function in "
     "{{random(1,2)}}"),
])
def test_errors(src, dest, error):
    with pytest.raises(TransformError) as info:
        validate_mapping(src, dest)
    assert str(info.value) == error


@pytest.mark.parametrize("src,dest", [
    ("o.*", ""),                      # nothing to transform
    ("", "x.>"),
    ("o", "o.{{partition(3,1)}}"),    # partition of the whole subject: no wildcard needed
    ("o.*", "o.{{random(3)}}"),
    ("o.*", "o.{{left(1,2)}}"),
    ("d.*", "e.{{split(1,.)}}"),      # the dot splits the token: three literal tokens
])
def test_accepted(src, dest):
    validate_mapping(src, dest)


def test_constructor_is_laxer_than_validate_mapping():
    # NewSubjectTransform does not look at whitespace (a republish dest may hold some).
    SubjectTransform("r.*", "x. b")
    with pytest.raises(TransformError):
        validate_mapping("r.*", "x. b")
    with pytest.raises(TransformError, match="invalid subject"):
        SubjectTransform("a.*", "")


# The stream side: the transform at store time, republish, and their config checks.

NOW = 1_700_000_000 * 10**9 + 5


class Published:
    def __init__(self) -> None:
        self.msgs: list[tuple[bytes, bytes, bytes]] = []  # (subject, header block, payload)

    def __call__(self, subject: bytes, reply: bytes = b"", payload: bytes = b"",
                 hdr: int = -1) -> int:
        self.msgs.append((subject, payload[:hdr], payload[hdr:]))
        return 1


def make_stream(**fields) -> tuple[Stream, Published]:
    config = StreamConfig(name="S", subjects=["in.>"], storage="memory", **fields).normalized()
    out = Published()
    stream: Stream = Stream(config, MemoryStore(store_config(config)), NOW,
                            lambda reply, payload: None, out)
    return stream, out


def test_stored_subject_is_the_transformed_one():
    stream, _ = make_stream(subject_transform={"src": "in.*", "dest": "in.x.$1"})
    assert stream.apply_publish("in.a", b"", b"1", NOW).seq == 1
    assert stream.apply_publish("in.a.b", b"", b"2", NOW).seq == 2  # no match: as it came
    assert [stream.store.load(s).subject for s in (1, 2)] == ["in.x.a", "in.a.b"]


def test_expectations_see_the_transformed_subject():
    stream, _ = make_stream(subject_transform={"src": "in.*", "dest": "in.x.$1"})
    stream.apply_publish("in.a", b"", b"", NOW)
    hdr = b"NATS/1.0\r\nNats-Expected-Last-Subject-Sequence: 1\r\n\r\n"
    assert stream.apply_publish("in.a", hdr, b"", NOW).seq == 2


def test_republish_headers_as_2_15_1_sends_them():
    stream, out = make_stream(republish={"src": "in.*", "dest": "out.$1"})
    stream.apply_publish("in.a", b"", b"hello", NOW)
    stream.apply_publish("in.a", b"NATS/1.0\r\nX-A: 1\r\n\r\n", b"hello", NOW)
    stream.apply_publish("in.a.b", b"", b"hello", NOW)  # src does not match: not republished
    assert out.msgs == [
        (b"out.a", b"NATS/1.0\r\nNats-Stream: S\r\nNats-Subject: in.a\r\nNats-Sequence: 1\r\n"
                   b"Nats-Time-Stamp: 2023-11-14T22:13:20.000000005Z\r\n"
                   b"Nats-Last-Sequence: 0\r\n\r\n", b"hello"),
        (b"out.a", b"NATS/1.0\r\nX-A: 1\r\nNats-Stream: S\r\nNats-Subject: in.a\r\n"
                   b"Nats-Sequence: 2\r\nNats-Time-Stamp: 2023-11-14T22:13:20.000000005Z\r\n"
                   b"Nats-Last-Sequence: 1\r\n\r\n", b"hello"),
    ]


def test_republish_headers_only():
    stream, out = make_stream(republish={"dest": "out.>", "headers_only": True})
    stream.apply_publish("in.a", b"", b"hello", NOW)
    assert out.msgs == [
        (b"out.in.a", b"NATS/1.0\r\nNats-Stream: S\r\nNats-Subject: in.a\r\n"
                      b"Nats-Sequence: 1\r\nNats-Time-Stamp: 2023-11-14T22:13:20.000000005Z\r\n"
                      b"Nats-Last-Sequence: 0\r\nNats-Msg-Size: 5\r\n\r\n", b""),
    ]


def test_republish_only_from_the_leader_and_not_duplicates():
    stream, out = make_stream(republish={"dest": "out.>"})
    stream.leader = False
    stream.apply_publish("in.a", b"", b"", NOW)
    assert out.msgs == []
    stream.leader = True
    hdr = b"NATS/1.0\r\nNats-Msg-Id: 1\r\n\r\n"
    stream.apply_publish("in.a", hdr, b"", NOW)
    stream.apply_publish("in.a", hdr, b"", NOW)  # a duplicate: not stored, not republished
    assert [m[0] for m in out.msgs] == [b"out.in.a"]


def test_update_changes_the_transforms():
    stream, out = make_stream()
    stream.update(StreamConfig(name="S", subjects=["in.>"], storage="memory",
                               subject_transform={"src": "in.*", "dest": "in.t.$1"},
                               republish={"dest": "out.>"}).normalized())
    stream.apply_publish("in.a", b"", b"", NOW)
    assert stream.store.load(1).subject == "in.t.a"
    assert [m[0] for m in out.msgs] == [b"out.in.t.a"]


@pytest.mark.parametrize("fields,code,text", [
    ({"subject_transform": {"src": "o..*", "dest": "o.$1"}}, 10155,
     "stream transform source: invalid subject o..*"),
    ({"subject_transform": {"src": "o.*", "dest": "o.$2"}}, 10156,
     "stream transform: invalid mapping destination: wildcard index out of range in $2: [2]"),
    ({"republish": {"src": ">", "dest": "in.x"}}, 10052,
     "stream configuration for republish destination forms a cycle"),
    ({"republish": {"src": "in.*", "dest": "x.$2"}}, 10052,
     "stream configuration for republish with transform from 'in.*' to 'x.$2' not valid"),
    ({"mirror": {"name": "O"}, "first_seq": 5}, 10143,
     "stream mirrors can not have first sequence configured"),
    ({"sources": [{"name": "A"}, {"name": "A"}]}, 10140,
     "duplicate source configuration detected"),
    ({"sources": [{"name": "S"}]}, 10052, "detected cycle"),
])
def test_config_errors(fields, code, text):
    subjects = [] if "mirror" in fields or "sources" in fields else ["in.>"]
    with pytest.raises(ApiError) as info:
        StreamConfig(name="S", subjects=subjects, **fields).normalized()
    assert (info.value.err_code, info.value.description) == (code, text)


def test_echo_and_defaults():
    cfg = StreamConfig(name="S", subjects=["in.>"], subject_transform={},
                       republish={"dest": "x.>", "headers_only": False}).normalized()
    assert cfg.to_json()["subject_transform"] == {"src": "", "dest": ""}
    assert cfg.to_json()["republish"] == {"src": ">", "dest": "x.>"}
    implicit = StreamConfig(name="S", subjects=["in.>"],
                            subject_transform={"src": "in.>", "dest": "t.>"},
                            republish={"src": ">", "dest": ">"}).normalized()
    assert implicit.republish == {"src": "t.>", "dest": "t.>"}


def test_valid_mirror_or_sources_are_accepted_without_default_subjects():
    for fields in ({"mirror": {"name": "O"}}, {"sources": [{"name": "A"}]}):
        config = StreamConfig(name="S", **fields).normalized()
        assert config.subjects == []  # a copy takes no subject of its own by default


def test_origin_checks_with_a_lookup():
    origin = StreamConfig(name="O", subjects=["o.>"], max_msg_size=100, allow_direct=True)
    others = {"O": origin, "B": StreamConfig(name="B", sources=[{"name": "S"}])}
    with pytest.raises(ApiError) as info:
        StreamConfig(name="S", mirror={"name": "O"}, max_msg_size=10).normalized(
            lookup=others.get)
    assert info.value.err_code == 10030
    with pytest.raises(ApiError) as info:
        StreamConfig(name="S", subjects=["s"], sources=[{"name": "B"}]).normalized(
            lookup=others.get)
    assert info.value.description == "detected cycle"
