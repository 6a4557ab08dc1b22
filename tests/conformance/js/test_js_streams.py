"""Stream API: create/update/info/names/list/delete/purge, MSG.GET, MSG.DELETE, DIRECT.GET."""

from __future__ import annotations

import base64

import pytest

from ..conftest import since
from .jsutil import API, STREAM_DEFAULTS, api_error, no_responders_hdr, stream_config

pytestmark = pytest.mark.conformance(area="js-streams")

ZERO_STATE = {
    "messages": 0,
    "bytes": 0,
    "first_seq": 0,
    "first_ts": "0001-01-01T00:00:00Z",
    "last_seq": 0,
    "last_ts": "0001-01-01T00:00:00Z",
    "consumer_count": 0,
}
CREATE = "stream_create_response"
UPDATE = "stream_update_response"
INFO = "stream_info_response"


def fill(raw, subjects):
    """Publish one message per subject (payload m1, m2, ...) and check the PubAcks."""
    for i, subj in enumerate(subjects, 1):
        ack = raw.pub(subj, f"m{i}")
        assert "error" not in ack, ack


# -- create ------------------------------------------------------------------------------------


def test_create_echoes_normalised_defaults(raw):
    resp = raw.api("STREAM.CREATE.DEF", {"name": "DEF", "subjects": ["def.>"]})
    assert resp == {
        "type": "io.nats.jetstream.api.v1.stream_create_response",
        "config": stream_config("DEF", ["def.>"]),
        "created": "<time>",
        "state": ZERO_STATE,
        "did_create": True,
    }


def test_create_normalises_client_zeros(raw):
    # What nats.py sends for a plain add_stream: zeros and -1s that mean "default".
    body = {
        "name": "ZEROS",
        "subjects": ["zeros"],
        "retention": "limits",
        "max_consumers": 0,
        "max_msgs": 0,
        "max_bytes": 0,
        "max_age": 0,
        "max_msgs_per_subject": 0,
        "max_msg_size": 0,
        "discard": "old",
        "storage": "file",
        "num_replicas": 0,
        "duplicate_window": 0,
        "no_ack": False,
        "sealed": False,
        "deny_delete": False,
        "deny_purge": False,
        "allow_rollup_hdrs": False,
    }
    resp = raw.api("STREAM.CREATE.ZEROS", body)
    assert resp["config"] == stream_config("ZEROS", ["zeros"])


def test_create_without_subjects_uses_the_name(raw):
    resp = raw.api("STREAM.CREATE.NOSUBJ", {"name": "NOSUBJ"})
    assert resp["config"]["subjects"] == ["NOSUBJ"]
    assert raw.pub("NOSUBJ", "x") == {"stream": "NOSUBJ", "seq": 1}


def test_create_keeps_explicit_values_and_description(raw):
    body = {
        "name": "EXPL",
        "description": "hello",
        "subjects": ["expl.a", "expl.b.*"],
        "retention": "interest",
        "max_consumers": 10,
        "max_msgs": 100,
        "max_bytes": 1 << 20,
        "max_age": 3_600_000_000_000,
        "max_msgs_per_subject": 5,
        "max_msg_size": 1024,
        "discard": "new",
        "storage": "memory",
        "duplicate_window": 60_000_000_000,
        "allow_direct": True,
        "deny_delete": True,
        "allow_rollup_hdrs": True,
    }
    resp = raw.api("STREAM.CREATE.EXPL", body)
    expected = dict(body)
    for key, value in STREAM_DEFAULTS.items():
        expected.setdefault(key, value)
    assert resp["config"] == expected
    assert list(resp["config"])[:3] == ["name", "description", "subjects"]


def test_create_identical_config_succeeds(raw):
    body = {"name": "IDEM", "subjects": ["idem.>"]}
    first = raw.api("STREAM.CREATE.IDEM", body)
    second = raw.api("STREAM.CREATE.IDEM", body)
    assert "error" not in second, second
    assert second["config"] == first["config"]
    assert second["created"] == first["created"] == "<time>"


@pytest.mark.nats_quirk
def test_create_identical_config_reports_did_create_again(raw):
    # 2.9.10 (and 2.10.0) answer a repeated identical create with did_create:true, as for the
    # first one (compat.md describes newer servers: absent or false).
    body = {"name": "IDEM2", "subjects": ["idem2"]}
    raw.api("STREAM.CREATE.IDEM2", body)
    assert raw.api("STREAM.CREATE.IDEM2", body)["did_create"] is True


def test_create_different_config_is_10058(raw):
    raw.add_stream("CONF", ["conf.>"])
    resp = raw.api("STREAM.CREATE.CONF", {"name": "CONF", "subjects": ["conf.>"], "max_msgs": 5})
    assert resp == api_error(
        CREATE, 400, 10058, "stream name already in use with a different configuration"
    )


@pytest.mark.parametrize("subject", ["ovl.a", "ovl.>", "*.a", ">"])
def test_create_overlapping_subjects_is_10065(impl, raw, request, subject):
    raw.api("STREAM.CREATE.OVL", {"name": "OVL", "subjects": ["ovl.a"]})
    name = "OVL" + str(request.node.callspec.indices["subject"])
    resp = raw.api(f"STREAM.CREATE.{name}", {"name": name, "subjects": [subject]})
    if subject == ">" and since(impl, (2, 10, 17)):
        # Checked before the overlap: a stream on ">" needs no_ack (2.10.17).
        assert resp == api_error(
            CREATE, 500, 10052, "capturing all subjects requires no-ack to be true"
        )
    elif subject == "*.a" and since(impl, (2, 12)):
        # 2.12 checks against all of $JS.> (which "*.a" meets in $JS.a), not only $JS.API.>.
        assert resp == api_error(CREATE, 500, 10052, JS_API_OVERLAP_2_10_17)
    else:
        assert resp == api_error(CREATE, 400, 10065, "subjects overlap with an existing stream")


BAD_NAME = "stream name is required and can not contain '.', '*', '>'"
BAD_NAME_2_12_8 = "stream name is required and can not contain '.', '*', '>', '\\', '/'"
JS_API_OVERLAP_2_10_17 = "subjects that overlap with jetstream api require no-ack to be true"


@pytest.mark.parametrize(
    ("token", "name", "code", "err_code", "description"),
    [
        ("N*1", "N*1", 500, 10052, BAD_NAME),
        ("N>1", "N>1", 500, 10052, BAD_NAME),
        ("a/b", "a/b", 400, 10128, "Stream name can not contain path separators"),
        ("a\\b", "a\\b", 400, 10128, "Stream name can not contain path separators"),
        ("NM1", "NM2", 400, 10056, "stream name in subject does not match request"),
        ("n" * 256, "n" * 256, 500, 10052, "stream name is too long, maximum allowed is 255"),
    ],
    ids=["star", "gt", "slash", "backslash", "mismatch", "too-long"],
)
def test_create_invalid_name(impl, raw, token, name, code, err_code, description):
    resp = raw.api(f"STREAM.CREATE.{token}", {"name": name})
    if description == BAD_NAME and since(impl, (2, 12, 8)):
        description = BAD_NAME_2_12_8
    assert resp == api_error(CREATE, code, err_code, description)


def test_create_name_with_dot_gets_no_reply(raw):
    # STREAM.CREATE.<a>.<b> has one token too many: no API handler matches, nothing answers.
    # The second request is answered; the first one never is.
    r1, r2 = raw.inbox(), raw.inbox()
    raw.publish(f"{API}.STREAM.CREATE.D.OT", {"name": "D.OT"}, reply=r1)
    raw.publish(f"{API}.INFO", b"", reply=r2)
    raw.next(raw.api_sid, subject=r2)
    raw.flush()
    assert not [f for f in raw.backlog if f.subject == r1]


@pytest.mark.parametrize(
    ("body", "code", "err_code", "description"),
    [
        (b"", 400, 10025, "invalid JSON"),
        (b"nope", 400, 10025, "invalid JSON"),
        ({"retention": "bogus"}, 400, 10025, "invalid JSON"),
        ({"storage": "disk"}, 400, 10025, "invalid JSON"),
        ({"discard": "bad"}, 400, 10025, "invalid JSON"),
        ({"num_replicas": 3}, 500, 10074, "replicas > 1 not supported in non-clustered mode"),
        ({"subjects": ["a", "a"]}, 500, 10052, "duplicate subjects detected"),
        ({"subjects": ["a..b"]}, 500, 10052, "invalid subject"),
        ({"subjects": ["q.*", "q.b"]}, 500, 10052, 'subject "q.*" overlaps with "q.b"'),
        ({"max_age": 5}, 500, 10052, "max age needs to be >= 100ms"),
        (
            {"max_age": 1_000_000_000, "duplicate_window": 2_000_000_000},
            500,
            10052,
            "duplicates window can not be larger then max age",
        ),
        (
            {"deny_purge": True, "allow_rollup_hdrs": True},
            500,
            10052,
            "roll-ups require the purge permission",
        ),
        (
            {"description": "d" * 4097},
            500,
            10052,
            "stream description is too long, maximum allowed is 4096",
        ),
        ({"sealed": True}, 500, 10052, "stream configuration for create can not be sealed"),
        ({"subjects": ["$JS.API.>"]}, 500, 10052, "subjects overlap with jetstream api"),
    ],
    ids=[
        "empty-body",
        "not-json",
        "bad-retention",
        "bad-storage",
        "bad-discard",
        "replicas",
        "dup-subjects",
        "bad-subject",
        "self-overlap",
        "small-max-age",
        "dupwindow-gt-maxage",
        "denypurge-rollup",
        "long-description",
        "sealed",
        "js-api-subjects",
    ],
)
def test_create_invalid_config(impl, raw, request, body, code, err_code, description):
    name = "INV" + str(request.node.callspec.indices["body"])
    payload = {"name": name, **body} if isinstance(body, dict) else body
    resp = raw.api(f"STREAM.CREATE.{name}", payload)
    for changed, release, error in CREATE_ERRORS_SINCE:
        if body == changed and since(impl, release):
            code, err_code, description = error
    if description == "invalid JSON" and since(impl, (2, 11)):
        # 2.11 appends the decoder's error: "invalid JSON: can not unmarshal ...".
        assert resp["error"]["description"].startswith("invalid JSON: "), resp
        description = resp["error"]["description"]
    assert resp == api_error(CREATE, code, err_code, description)


#: Cases of test_create_invalid_config a later release answers differently:
#: (body, release, (code, err_code, description)).
CREATE_ERRORS_SINCE = [
    # 2.11 decodes only a body that looks like a JSON object: an empty one names no stream.
    (b"", (2, 11), (400, 10056, "stream name in subject does not match request")),
    # 2.12.5 checks each subject against the later ones before the duplicate check.
    ({"subjects": ["a", "a"]}, (2, 12, 5), (500, 10052, 'subject "a" overlaps with "a"')),
    ({"subjects": ["$JS.API.>"]}, (2, 10, 17), (500, 10052, JS_API_OVERLAP_2_10_17)),
]


@pytest.mark.nats_quirk
def test_create_negative_max_age_reports_the_duplicate_window(impl, raw):
    # max_age -1 is rejected, but the message talks about the duplicate window (which defaults
    # from max_age); 2.12 names max_age.
    resp = raw.api("STREAM.CREATE.NEGAGE", {"name": "NEGAGE", "max_age": -1})
    what = "max age" if since(impl, (2, 12)) else "duplicates window"
    assert resp == api_error(CREATE, 500, 10052, f"{what} can not be negative")


def test_create_ignores_unknown_fields(impl, raw, is_oracle):
    resp = raw.api("STREAM.CREATE.UNK", {"name": "UNK", "bogus_field": 1, "allow_msg_ttl": True})
    if since(impl, (2, 12)):  # 2.12 refuses request fields it does not know
        assert resp == api_error(
            CREATE, 400, 10025, 'invalid JSON: json: unknown field "bogus_field"'
        )
        return
    config = resp["config"]
    if not is_oracle:
        # allow_msg_ttl is a 2.11 field 2.9.10 does not know; compat.md §0 item 11 asks that it
        # be stored and echoed, so a 2.10+ implementation may send it back.
        assert config.pop("allow_msg_ttl", True) is True
    assert config == stream_config("UNK")


@pytest.mark.nats_quirk
def test_create_full_wildcard_stream_without_no_ack(impl, start_js_server, raw_factory):
    # 2.9.10 (and 2.10.0) accept subjects [">"] without no_ack; compat.md describes newer servers
    # (2.10.17) that require no_ack:true. Such a stream also captures $JS.API requests.
    raw = raw_factory(start_js_server())
    resp = raw.api("STREAM.CREATE.ALL", {"name": "ALL", "subjects": [">"]})
    if since(impl, (2, 10, 17)):
        assert resp == api_error(
            CREATE, 500, 10052, "capturing all subjects requires no-ack to be true"
        )
        return
    assert resp["config"] == stream_config("ALL", [">"])


# -- update ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "description"),
    [
        ({"storage": "memory"}, "stream configuration update can not change storage type"),
        ({"max_consumers": 5}, "stream configuration update can not change MaxConsumers"),
    ],
    ids=["storage", "max-consumers"],
)
def test_update_immutable_fields(impl, raw, request, change, description):
    name = "UPI" + str(request.node.callspec.indices["change"])
    base = {"name": name, "subjects": [name.lower()]}
    raw.add_stream(**base)
    resp = raw.api(f"STREAM.UPDATE.{name}", {**base, **change})
    if "max_consumers" in change and since(impl, (2, 12, 5)):  # 2.12.5 lets it change
        assert resp["config"]["max_consumers"] == change["max_consumers"], resp
        return
    assert resp == api_error(UPDATE, 500, 10052, description)


RETENTION_29 = "stream configuration update can not change retention policy"
RETENTION_210 = "stream configuration update can not change retention policy to/from workqueue"


def test_update_to_or_from_workqueue_is_refused(raw):
    base = {"name": "UPWQ", "subjects": ["upwq"], "retention": "workqueue"}
    raw.add_stream(**base)
    for retention in ("limits", "interest"):
        resp = raw.api("STREAM.UPDATE.UPWQ", {**base, "retention": retention})
        raw.assert_error(resp, UPDATE, 500, 10052, RETENTION_29, v210=RETENTION_210)
    for retention in ("limits", "interest"):
        name = f"UP2WQ{retention}"
        raw.add_stream(name, [name], retention=retention)
        resp = raw.api(f"STREAM.UPDATE.{name}", {"name": name, "retention": "workqueue"})
        raw.assert_error(resp, UPDATE, 500, 10052, RETENTION_29, v210=RETENTION_210)


@pytest.mark.nats_29_only
def test_update_limits_to_interest_is_refused(raw):
    # 2.10 allows limits <-> interest; 2.9.10 refuses any retention change.
    base = {"name": "UPLI", "subjects": ["upli"]}
    raw.add_stream(**base)
    resp = raw.api("STREAM.UPDATE.UPLI", {**base, "retention": "interest"})
    assert resp == api_error(UPDATE, 500, 10052, RETENTION_29)


def test_update_mutable_fields(raw):
    base = {"name": "UPM", "subjects": ["upm.a"]}
    raw.add_stream(**base)
    new = {**base, "subjects": ["upm.a", "upm.b"], "max_msgs": 10, "description": "d"}
    resp = raw.api("STREAM.UPDATE.UPM", new)
    assert resp == {
        "type": "io.nats.jetstream.api.v1.stream_update_response",
        "config": stream_config("UPM", ["upm.a", "upm.b"], max_msgs=10, description="d"),
        "created": "<time>",
        "state": ZERO_STATE,
    }
    assert raw.pub("upm.b", "x") == {"stream": "UPM", "seq": 1}


def test_update_deny_flags_cannot_be_undone(raw):
    base = {"name": "UPD", "subjects": ["upd"]}
    raw.add_stream(**base)
    resp = raw.api("STREAM.UPDATE.UPD", {**base, "deny_delete": True, "deny_purge": True})
    assert resp["config"]["deny_delete"] is True and resp["config"]["deny_purge"] is True
    resp = raw.api("STREAM.UPDATE.UPD", {**base, "deny_delete": False, "deny_purge": True})
    assert resp == api_error(
        UPDATE, 500, 10052, "stream configuration update can not cancel deny message deletes"
    )
    resp = raw.api("STREAM.UPDATE.UPD", {**base, "deny_delete": True, "deny_purge": False})
    assert resp == api_error(
        UPDATE, 500, 10052, "stream configuration update can not cancel deny purge"
    )


def test_update_seal_sets_discard_new_and_cannot_be_undone(raw):
    base = {"name": "UPS", "subjects": ["ups"]}
    raw.add_stream(**base)
    resp = raw.api("STREAM.UPDATE.UPS", {**base, "sealed": True})
    # Sealing also forces discard "new" and the deny flags in the echoed config.
    assert resp["config"] == stream_config(
        "UPS", ["ups"], sealed=True, discard="new", deny_delete=True, deny_purge=True
    )
    resp = raw.api("STREAM.UPDATE.UPS", {**base, "sealed": False})
    assert resp == api_error(
        UPDATE, 500, 10052, "stream configuration update can not unseal a sealed stream"
    )


def test_update_errors(impl, raw):
    raw.add_stream("UPE", ["upe"])
    assert raw.api("STREAM.UPDATE.UPE", {"name": "OTHER"}) == api_error(
        UPDATE, 400, 10056, "stream name in subject does not match request"
    )
    assert raw.api("STREAM.UPDATE.NOPE", {"name": "NOPE"}) == api_error(
        UPDATE, 404, 10059, "stream not found"
    )
    empty = raw.api("STREAM.UPDATE.UPE", b"")
    if since(impl, (2, 11)):  # an empty body is not decoded: the config has no name
        bad_name = BAD_NAME_2_12_8 if since(impl, (2, 12, 8)) else BAD_NAME
        assert empty == api_error(UPDATE, 500, 10052, bad_name)
    else:
        assert empty == api_error(UPDATE, 400, 10025, "invalid JSON")


@pytest.mark.nats_quirk
def test_update_accepts_replicas_on_a_single_server(impl, raw):
    # Create refuses num_replicas 3 on a single server (10074), but the update of 2.9.10 (and
    # 2.10.0 up to 2.14.0) accepts and stores it; the stream keeps working. 2.15.1 refuses it
    # with 10074, as compat.md asks and the broker does.
    raw.add_stream("UPR", ["upr"])
    resp = raw.api("STREAM.UPDATE.UPR", {"name": "UPR", "subjects": ["upr"], "num_replicas": 3})
    if impl.name == "broker" or since(impl, (2, 15)):
        assert resp == api_error(
            UPDATE, 500, 10074, "replicas > 1 not supported in non-clustered mode"
        )
        assert raw.pub("upr", "x") == {"stream": "UPR", "seq": 1}
        return
    assert resp["config"] == stream_config("UPR", ["upr"], num_replicas=3)
    assert raw.pub("upr", "x") == {"stream": "UPR", "seq": 1}


def test_update_replaces_the_whole_config(raw):
    # An update is not a patch: subjects left out fall back to [name], like on create.
    raw.add_stream("UPW", ["upw.a"], max_msgs=5)
    resp = raw.api("STREAM.UPDATE.UPW", {"name": "UPW"})
    assert resp["config"] == stream_config("UPW")


# -- info ----------------------------------------------------------------------------------------


def test_info_plain_and_with_subjects_filter(raw):
    raw.add_stream("INF", ["inf.>"])
    fill(raw, ["inf.a", "inf.b", "inf.a", "inf.c.x"])
    resp = raw.api("STREAM.INFO.INF")
    # File store: each message counts 30 bytes + subject + headers + payload.
    state = {
        "messages": 4,
        "bytes": 4 * 30 + len("inf.ainf.binf.ainf.c.x") + 4 * 2,
        "first_seq": 1,
        "first_ts": "<time>",
        "last_seq": 4,
        "last_ts": "<time>",
        "num_subjects": 3,
        "consumer_count": 0,
    }
    assert resp == {
        "type": "io.nats.jetstream.api.v1.stream_info_response",
        "total": 0,
        "offset": 0,
        "limit": 0,
        "config": stream_config("INF", ["inf.>"]),
        "created": "<time>",
        "state": state,
    }
    resp = raw.api("STREAM.INFO.INF", {"subjects_filter": ">"})
    assert (resp["total"], resp["offset"], resp["limit"]) == (3, 0, 100000)
    assert resp["state"] == {**state, "subjects": {"inf.a": 2, "inf.b": 1, "inf.c.x": 1}}
    resp = raw.api("STREAM.INFO.INF", {"subjects_filter": "inf.a"})
    assert (resp["total"], resp["offset"], resp["limit"]) == (1, 0, 100000)
    assert resp["state"]["subjects"] == {"inf.a": 2}
    resp = raw.api("STREAM.INFO.INF", {"subjects_filter": "inf.*.x"})
    assert resp["state"]["subjects"] == {"inf.c.x": 1}
    # No subject matches: no "subjects" key and the paging fields go back to zero.
    resp = raw.api("STREAM.INFO.INF", {"subjects_filter": "nomatch"})
    assert (resp["total"], resp["offset"], resp["limit"]) == (0, 0, 0)
    assert resp["state"] == state


def test_info_deleted_details(raw):
    raw.add_stream("INFD", ["infd.>"])
    fill(raw, ["infd.a"] * 6)
    for seq in (2, 4):
        ok = raw.api("STREAM.MSG.DELETE.INFD", {"seq": seq})
        assert ok == {
            "type": "io.nats.jetstream.api.v1.stream_msg_delete_response",
            "success": True,
        }
    state = raw.api("STREAM.INFO.INFD")["state"]
    assert state["num_deleted"] == 2 and "deleted" not in state
    assert (state["messages"], state["first_seq"], state["last_seq"]) == (4, 1, 6)
    state = raw.api("STREAM.INFO.INFD", {"deleted_details": True})["state"]
    assert state["deleted"] == [2, 4] and state["num_deleted"] == 2


def test_info_errors(impl, raw):
    assert raw.api("STREAM.INFO.NOPE") == api_error(
        INFO, 404, 10059, "stream not found", total=0, offset=0, limit=0
    )
    raw.add_stream("INFE", ["infe"])
    if since(impl, (2, 11)):  # 2.11 ignores a body that is not a JSON object or array
        assert raw.api("STREAM.INFO.INFE", b"garbage")["config"]["name"] == "INFE"
    else:
        assert raw.api("STREAM.INFO.INFE", b"garbage") == api_error(
            INFO, 400, 10025, "invalid JSON", total=0, offset=0, limit=0
        )
    assert raw.api("STREAM.INFO.INFE", b"{}")["config"]["name"] == "INFE"


# -- names / list -------------------------------------------------------------------------------


def test_names_and_list_with_filter_and_paging(impl, start_js_server, raw_factory):
    raw = raw_factory(start_js_server())
    empty = raw.api("STREAM.NAMES")
    assert empty == {
        "type": "io.nats.jetstream.api.v1.stream_names_response",
        "total": 0,
        "offset": 0,
        "limit": 1024,
        "streams": None,  # null, not []
    }
    for name, subjects in [("C", ["c.>"]), ("A", ["a.x", "a.y"]), ("B", ["b"]), ("D", ["d.*.z"])]:
        raw.add_stream(name, subjects)
    resp = raw.api("STREAM.NAMES")
    assert resp["streams"] == ["A", "B", "C", "D"]  # sorted by name
    assert (resp["total"], resp["offset"], resp["limit"]) == (4, 0, 1024)
    # `subject` keeps streams whose subjects collide with it (wildcards on either side).
    assert raw.api("STREAM.NAMES", {"subject": "c.q"})["streams"] == ["C"]
    assert raw.api("STREAM.NAMES", {"subject": "*.x"})["streams"] == ["A", "C"]
    assert raw.api("STREAM.NAMES", {"subject": "d.1.z"})["streams"] == ["D"]
    assert raw.api("STREAM.NAMES", {"subject": ">"})["streams"] == ["A", "B", "C", "D"]
    none = raw.api("STREAM.NAMES", {"subject": "zz"})
    assert (none["total"], none["streams"]) == (0, None)
    page = raw.api("STREAM.NAMES", {"offset": 2})
    assert (page["total"], page["offset"], page["streams"]) == (4, 2, ["C", "D"])
    # An offset past the end is clamped to the total.
    page = raw.api("STREAM.NAMES", {"offset": 200})
    assert (page["total"], page["offset"], page["streams"]) == (4, 4, None)
    if since(impl, (2, 11)):  # 2.11 ignores a body that is not a JSON object or array
        assert raw.api("STREAM.NAMES", b"bad")["streams"] == ["A", "B", "C", "D"]
    else:
        assert raw.api("STREAM.NAMES", b"bad") == api_error(
            "stream_names_response",
            400,
            10025,
            "invalid JSON",
            total=0,
            offset=0,
            limit=0,
            streams=None,
        )

    lst = raw.api("STREAM.LIST")
    assert list(lst) == ["type", "total", "offset", "limit", "streams"]
    assert lst["type"] == "io.nats.jetstream.api.v1.stream_list_response"
    assert (lst["total"], lst["offset"], lst["limit"]) == (4, 0, 256)
    assert [s["config"]["name"] for s in lst["streams"]] == ["A", "B", "C", "D"]
    assert lst["streams"][0] == {
        "config": stream_config("A", ["a.x", "a.y"]),
        "created": "<time>",
        "state": ZERO_STATE,
    }
    lst = raw.api("STREAM.LIST", {"offset": 3})
    assert [s["config"]["name"] for s in lst["streams"]] == ["D"]
    lst = raw.api("STREAM.LIST", {"subject": "b"})
    assert (lst["total"], [s["config"]["name"] for s in lst["streams"]]) == (1, ["B"])


# -- delete ------------------------------------------------------------------------------------


def test_delete(raw):
    raw.add_stream("DEL", ["del"])
    kind = "stream_delete_response"
    assert raw.api("STREAM.DELETE.DEL", b"x") == api_error(
        kind, 400, 10038, "expected an empty request payload"
    )
    assert raw.api("STREAM.DELETE.DEL") == {
        "type": f"io.nats.jetstream.api.v1.{kind}",
        "success": True,
    }
    assert raw.api("STREAM.DELETE.DEL") == api_error(kind, 404, 10059, "stream not found")
    assert raw.api("STREAM.INFO.DEL")["error"]["err_code"] == 10059


# -- purge ---------------------------------------------------------------------------------------

PURGE = "io.nats.jetstream.api.v1.stream_purge_response"


@pytest.mark.parametrize(
    ("body", "purged", "state"),
    [
        (b"", 6, {"messages": 0, "first_seq": 7, "last_seq": 6}),
        ({}, 6, {"messages": 0, "first_seq": 7, "last_seq": 6}),
        ({"filter": "pu.a"}, 3, {"messages": 3, "first_seq": 2, "last_seq": 6, "num_deleted": 2}),
        ({"seq": 4}, 3, {"messages": 3, "first_seq": 4, "last_seq": 6}),
        ({"keep": 2}, 4, {"messages": 2, "first_seq": 5, "last_seq": 6}),
        ({"filter": "pu.a", "keep": 1}, 2, {"messages": 4, "first_seq": 2, "last_seq": 6}),
        ({"filter": "pu.b", "seq": 5}, 2, {"messages": 4, "first_seq": 1, "last_seq": 6}),
        ({"filter": "zz"}, 0, {"messages": 6, "first_seq": 1, "last_seq": 6}),
    ],
    ids=["all", "all-json", "filter", "seq", "keep", "filter-keep", "filter-seq", "filter-none"],
)
def test_purge(raw, request, body, purged, state):
    name = "PU" + str(request.node.callspec.indices["body"])
    raw.api(f"STREAM.CREATE.{name}", {"name": name, "subjects": ["pu.*"]})
    fill(raw, ["pu.a", "pu.b"] * 3)
    resp = raw.api(f"STREAM.PURGE.{name}", body)
    assert resp == {"type": PURGE, "success": True, "purged": purged}
    got = raw.stream_state(name)
    assert {k: got[k] for k in state} == state
    raw.api(f"STREAM.DELETE.{name}")  # the streams share subjects


def test_purge_errors(impl, raw):
    kind = "stream_purge_response"
    raw.add_stream("PUE", ["pue"])
    fill(raw, ["pue"] * 3)
    assert raw.api("STREAM.PURGE.PUE", {"seq": 2, "keep": 1}) == api_error(
        kind, 400, 10003, "bad request", purged=0
    )
    assert raw.stream_state("PUE")["messages"] == 3
    if since(impl, (2, 11)):  # 2.11 ignores a body that is not JSON: a plain purge
        assert raw.api("STREAM.PURGE.PUE", b"bad") == {"type": PURGE, "success": True, "purged": 3}
    else:
        assert raw.api("STREAM.PURGE.PUE", b"bad") == api_error(
            kind, 400, 10025, "invalid JSON", purged=0
        )
    assert raw.api("STREAM.PURGE.NOPE") == api_error(kind, 404, 10059, "stream not found", purged=0)
    raw.add_stream("PUD", ["pud"], deny_purge=True)
    assert raw.api("STREAM.PURGE.PUD") == api_error(
        kind, 500, 10110, "stream purge not permitted", purged=0
    )
    raw.api("STREAM.UPDATE.PUE", {"name": "PUE", "subjects": ["pue"], "sealed": True})
    assert raw.api("STREAM.PURGE.PUE") == api_error(
        kind, 400, 10109, "invalid operation on sealed stream", purged=0
    )


# -- MSG.GET ---------------------------------------------------------------------------------------

GET = "stream_msg_get_response"


def b64(s: str | bytes) -> str:
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def test_msg_get(raw):
    raw.add_stream("MG", ["mg.>"])
    fill(raw, ["mg.a", "mg.b", "mg.a", "mg.c.x", "mg.b", "mg.a"])
    hdr = b"NATS/1.0\r\nH1: v1\r\nH2: v2\r\n\r\n"
    assert raw.pub("mg.h", "m7", headers=hdr) == {"stream": "MG", "seq": 7}

    def msg(subject, seq, data, **extra):
        return {
            "type": f"io.nats.jetstream.api.v1.{GET}",
            "message": {
                "subject": subject,
                "seq": seq,
                **extra,
                "data": b64(data),
                "time": "<time>",
            },
        }

    assert raw.api("STREAM.MSG.GET.MG", {"seq": 1}) == msg("mg.a", 1, "m1")
    assert raw.api("STREAM.MSG.GET.MG", {"seq": 7}) == msg("mg.h", 7, "m7", hdrs=b64(hdr))
    assert raw.api("STREAM.MSG.GET.MG", {"last_by_subj": "mg.b"}) == msg("mg.b", 5, "m5")
    # A wildcard last_by_subj gives the last message of any matching subject.
    assert raw.api("STREAM.MSG.GET.MG", {"last_by_subj": "mg.c.*"}) == msg("mg.c.x", 4, "m4")
    last = raw.api("STREAM.MSG.GET.MG", {"last_by_subj": "mg.*"})
    assert last == msg("mg.h", 7, "m7", hdrs=b64(hdr))
    assert raw.api("STREAM.MSG.GET.MG", {"last_by_subj": "mg.>"})["message"]["seq"] == 7
    # next_by_subj: first message at or after seq on that subject (wildcards allowed).
    assert raw.api("STREAM.MSG.GET.MG", {"seq": 1, "next_by_subj": "mg.b"}) == msg("mg.b", 2, "m2")
    assert raw.api("STREAM.MSG.GET.MG", {"seq": 3, "next_by_subj": "mg.b"}) == msg("mg.b", 5, "m5")
    assert raw.api("STREAM.MSG.GET.MG", {"next_by_subj": "mg.*.x"}) == msg("mg.c.x", 4, "m4")
    assert raw.api("STREAM.MSG.GET.MG", {"seq": 5, "next_by_subj": "mg.a"}) == msg("mg.a", 6, "m6")


def test_msg_get_errors(raw):
    raw.add_stream("MGE", ["mge.>"])
    fill(raw, ["mge.a", "mge.b", "mge.a"])
    raw.api("STREAM.MSG.DELETE.MGE", {"seq": 2})
    not_found = api_error(GET, 404, 10037, "no message found")
    bad = api_error(GET, 400, 10003, "bad request")
    assert raw.api("STREAM.MSG.GET.MGE", {"seq": 2}) == not_found  # deleted
    assert raw.api("STREAM.MSG.GET.MGE", {"seq": 100}) == not_found
    assert raw.api("STREAM.MSG.GET.MGE", {"last_by_subj": "mge.zz"}) == not_found
    assert raw.api("STREAM.MSG.GET.MGE", {"seq": 3, "next_by_subj": "mge.b"}) == not_found
    assert raw.api("STREAM.MSG.GET.MGE", {"seq": 1, "last_by_subj": "mge.a"}) == bad
    assert raw.api("STREAM.MSG.GET.MGE", {"last_by_subj": "mge.a", "next_by_subj": "mge.a"}) == bad
    assert raw.api("STREAM.MSG.GET.MGE", b"") == bad
    assert raw.api("STREAM.MSG.GET.MGE", {}) == bad
    assert raw.api("STREAM.MSG.GET.NOPE", {"seq": 1}) == api_error(
        GET, 404, 10059, "stream not found"
    )


# -- MSG.DELETE -----------------------------------------------------------------------------------

MDEL = "stream_msg_delete_response"


def test_msg_delete(raw):
    ok = {"type": f"io.nats.jetstream.api.v1.{MDEL}", "success": True}
    raw.add_stream("MD", ["md"])
    fill(raw, ["md"] * 4)
    assert raw.api("STREAM.MSG.DELETE.MD", {"seq": 2}) == ok
    assert raw.api("STREAM.MSG.DELETE.MD", {"seq": 3, "no_erase": True}) == ok
    assert raw.api("STREAM.MSG.DELETE.MD", {"seq": 3}) == api_error(
        MDEL, 400, 10043, "sequence 3 not found"
    )
    assert raw.api("STREAM.MSG.DELETE.MD", {"seq": 99}) == api_error(
        MDEL, 500, 10057, "stream store EOF"
    )
    assert raw.api("STREAM.MSG.DELETE.MD", {}) == api_error(MDEL, 400, 10003, "bad request")
    assert raw.api("STREAM.MSG.DELETE.MD", b"") == api_error(MDEL, 400, 10003, "bad request")
    assert raw.api("STREAM.MSG.DELETE.NOPE", {"seq": 1}) == api_error(
        MDEL, 404, 10059, "stream not found"
    )
    state = raw.stream_state("MD")
    assert (state["messages"], state["num_deleted"]) == (2, 2)


def test_msg_delete_refused(raw):
    raw.add_stream("MDD", ["mdd"], deny_delete=True)
    fill(raw, ["mdd"])
    denied = api_error(MDEL, 500, 10057, "message delete not permitted")
    assert raw.api("STREAM.MSG.DELETE.MDD", {"seq": 1}) == denied
    assert raw.api("STREAM.MSG.DELETE.MDD", {"seq": 1, "no_erase": True}) == denied
    raw.add_stream("MDS", ["mds"])
    fill(raw, ["mds"])
    raw.api("STREAM.UPDATE.MDS", {"name": "MDS", "subjects": ["mds"], "sealed": True})
    assert raw.api("STREAM.MSG.DELETE.MDS", {"seq": 1}) == api_error(
        MDEL, 400, 10109, "invalid operation on sealed stream"
    )


# -- DIRECT.GET -----------------------------------------------------------------------------------


def direct_hdr(stream: str, subject: str, seq: int, ts: str) -> bytes:
    return (
        f"NATS/1.0\r\nNats-Stream: {stream}\r\nNats-Subject: {subject}\r\n"
        f"Nats-Sequence: {seq}\r\nNats-Time-Stamp: {ts}\r\n\r\n"
    ).encode()


def test_direct_get(raw):
    raw.add_stream("DG", ["dg.>"], allow_direct=True)
    fill(raw, ["dg.a", "dg.b", "dg.a", "dg.c.x"])
    # Nats-Time-Stamp is the same string as the "time" of STREAM.MSG.GET (RFC 3339, ns, UTC).
    times = {
        seq: raw.request(f"{API}.STREAM.MSG.GET.DG", {"seq": seq}).json()["message"]["time"]
        for seq in range(1, 5)
    }
    f = raw.request(f"{API}.DIRECT.GET.DG", {"seq": 1})
    assert f.op == "HMSG" and f.reply is None
    assert f.hdr == direct_hdr("DG", "dg.a", 1, times[1])
    assert f.payload == b"m1"
    f = raw.request(f"{API}.DIRECT.GET.DG", {"last_by_subj": "dg.a"})
    assert (f.hdr, f.payload) == (direct_hdr("DG", "dg.a", 3, times[3]), b"m3")
    f = raw.request(f"{API}.DIRECT.GET.DG", {"seq": 1, "next_by_subj": "dg.b"})
    assert (f.hdr, f.payload) == (direct_hdr("DG", "dg.b", 2, times[2]), b"m2")
    # Second form: the subject is in the request subject, the body must be empty.
    f = raw.request(f"{API}.DIRECT.GET.DG.dg.a")
    assert (f.hdr, f.payload) == (direct_hdr("DG", "dg.a", 3, times[3]), b"m3")
    f = raw.request(f"{API}.DIRECT.GET.DG.dg.*.x")
    assert (f.hdr, f.payload) == (direct_hdr("DG", "dg.c.x", 4, times[4]), b"m4")


def test_direct_get_keeps_stored_headers_first(raw):
    raw.add_stream("DGH", ["dgh"], allow_direct=True)
    raw.pub("dgh", "v", headers=b"NATS/1.0\r\nA: 1\r\nB: 2\r\n\r\n")
    f = raw.request(f"{API}.DIRECT.GET.DGH", {"seq": 1})
    ts = f.header("Nats-Time-Stamp")
    assert f.hdr == (
        b"NATS/1.0\r\nA: 1\r\nB: 2\r\nNats-Stream: DGH\r\nNats-Subject: dgh\r\n"
        b"Nats-Sequence: 1\r\nNats-Time-Stamp: " + ts.encode() + b"\r\n\r\n"
    )
    assert f.payload == b"v"


@pytest.mark.parametrize(
    ("suffix", "body", "status"),
    [
        ("", {"seq": 2}, b"NATS/1.0 404 Message Not Found\r\n\r\n"),
        ("", {"seq": 99}, b"NATS/1.0 404 Message Not Found\r\n\r\n"),
        ("", {"last_by_subj": "dge.zz"}, b"NATS/1.0 404 Message Not Found\r\n\r\n"),
        (".dge.zz", b"", b"NATS/1.0 404 Message Not Found\r\n\r\n"),
        ("", b"", b"NATS/1.0 408 Empty Request\r\n\r\n"),
        ("", {}, b"NATS/1.0 408 Empty Request\r\n\r\n"),
        ("", b"xx", b"NATS/1.0 408 Malformed Request\r\n\r\n"),
        ("", {"seq": 1, "last_by_subj": "dge.a"}, b"NATS/1.0 408 Bad Request\r\n\r\n"),
        (
            "",
            {"last_by_subj": "dge.a", "next_by_subj": "dge.a"},
            b"NATS/1.0 408 Bad Request\r\n\r\n",
        ),
        (".dge.a", b"{}", b"NATS/1.0 408 Bad Request\r\n\r\n"),
    ],
    ids=[
        "deleted",
        "beyond-last",
        "no-subject",
        "no-subject-form2",
        "empty",
        "empty-json",
        "malformed",
        "seq-and-last",
        "last-and-next",
        "form2-with-body",
    ],
)
def test_direct_get_status(impl, raw, suffix, body, status):
    raw.api("STREAM.CREATE.DGE", {"name": "DGE", "subjects": ["dge.>"], "allow_direct": True})
    if raw.stream_state("DGE")["last_seq"] == 0:
        fill(raw, ["dge.a", "dge.b"])
        raw.api("STREAM.MSG.DELETE.DGE", {"seq": 2})
    f = raw.request(f"{API}.DIRECT.GET.DGE{suffix}", body)
    if suffix and body == b"{}" and since(impl, (2, 12)):
        # 2.12 takes an empty JSON object as no body: the last message on dge.a.
        assert (f.op, f.payload, f.reply) == ("HMSG", b"m1", None)
        assert f.hdr.startswith(b"NATS/1.0\r\nNats-Stream: DGE\r\nNats-Subject: dge.a\r\n")
        return
    assert (f.op, f.hdr, f.payload, f.reply) == ("HMSG", status, b"", None)


def test_direct_get_without_allow_direct_gets_no_reply(impl, raw):
    raw.add_stream("NODG", ["nodg"])
    fill(raw, ["nodg"])
    r1, r2 = raw.inbox(), raw.inbox()
    raw.publish(f"{API}.DIRECT.GET.NODG", {"seq": 1}, reply=r1)
    raw.publish(f"{API}.STREAM.INFO.NODG", b"", reply=r2)
    raw.next(raw.api_sid, subject=r2)
    if since(impl, (2, 11)):
        # Nothing subscribes to DIRECT.GET.<stream> without allow_direct: 2.11 answers the
        # requester (which asked for no_responders) with a 503.
        f = raw.next(raw.api_sid, subject=r1)
        assert (f.op, f.hdr, f.payload) == (
            "HMSG", no_responders_hdr(impl, f"{API}.DIRECT.GET.NODG"), b""
        )
    raw.flush()
    assert not [f for f in raw.backlog if f.subject == r1]


# -- misc -----------------------------------------------------------------------------------------


def test_leader_stepdown_and_peer_remove_need_clustering(raw):
    raw.add_stream("SD", ["sd"])
    for subject, kind, body in [
        ("STREAM.LEADER.STEPDOWN.SD", "stream_leader_stepdown_response", b""),
        ("STREAM.LEADER.STEPDOWN.NOPE", "stream_leader_stepdown_response", b""),
        ("STREAM.PEER.REMOVE.SD", "stream_remove_peer_response", {"peer": "x"}),
    ]:
        assert raw.api(subject, body) == api_error(
            kind, 503, 10010, "JetStream clustering support required"
        )


def test_account_info(start_js_server, raw_factory):
    raw = raw_factory(start_js_server())
    limits = {
        "max_memory": -1,
        "max_storage": -1,
        "max_streams": -1,
        "max_consumers": -1,
        "max_ack_pending": -1,
        "memory_max_stream_bytes": -1,
        "storage_max_stream_bytes": -1,
        "max_bytes_required": False,
    }
    first = raw.api("INFO")
    assert first == {
        "type": "io.nats.jetstream.api.v1.account_info_response",
        "memory": 0,
        "storage": 0,
        "streams": 0,
        "consumers": 0,
        "limits": limits,
        "api": {"total": 0, "errors": 0},
    }
    # The counters count the API requests made before this one (this one included from the next).
    raw.add_stream("ACC", ["acc"])
    raw.add_stream("ACCM", ["accm"], storage="memory")
    raw.add_consumer("ACC", "c1", durable_name="c1")
    assert raw.api("STREAM.INFO.NOPE")["error"]["err_code"] == 10059
    fill(raw, ["acc", "accm"])
    info = raw.api("INFO")
    assert info == {
        **first,
        "memory": raw.stream_state("ACCM")["bytes"],
        "storage": raw.stream_state("ACC")["bytes"],
        "streams": 2,
        "consumers": 1,
        "api": {"total": 5, "errors": 1},
    }
    assert info["storage"] == 30 + 3 + 2
