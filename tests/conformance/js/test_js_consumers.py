"""Consumer API: the four create subjects, echoed defaults, config checks, update rules,
INFO / NAMES / LIST / DELETE."""

from __future__ import annotations

import re
import zlib

import pytest

from ..conftest import since
from .jsutil import API, api_error

pytestmark = pytest.mark.conformance(area="js-consumers")

CREATE = "consumer_create_response"
ZERO_SEQ = {"consumer_seq": 0, "stream_seq": 0}
GENERATED_NAME = re.compile(r"^[0-9A-Za-z]{8}$")

#: Echoed config of a pull consumer created with only {"ack_policy": "explicit"}.
EXPLICIT_PULL = {
    "deliver_policy": "all",
    "ack_policy": "explicit",
    "ack_wait": 30_000_000_000,
    "max_deliver": -1,
    "replay_policy": "instant",
    "max_waiting": 512,
    "max_ack_pending": 1000,
    "num_replicas": 0,
}
EPHEMERAL = {"inactive_threshold": 5_000_000_000}
#: Echoed config of a durable pull consumer created with only a durable name.
DEFAULT_DURABLE = {
    "deliver_policy": "all",
    "ack_policy": "none",
    "max_deliver": -1,
    "replay_policy": "instant",
    "max_waiting": 512,
    "num_replicas": 0,
}


def info(stream: str, name: str, config: dict, num_pending: int = 0, kind: str = CREATE) -> dict:
    """A fresh consumer's ConsumerInfo as nats-server 2.9.10 sends it (no cluster, no ts)."""
    return {
        "type": f"io.nats.jetstream.api.v1.{kind}",
        "stream_name": stream,
        "name": name,
        "created": "<time>",
        "config": config,
        "delivered": ZERO_SEQ,
        "ack_floor": ZERO_SEQ,
        "num_ack_pending": 0,
        "num_redelivered": 0,
        "num_waiting": 0,
        "num_pending": num_pending,
    }


def create(raw, subject_suffix: str, config: dict, stream: str) -> dict:
    return raw.api(f"CONSUMER.{subject_suffix}", {"stream_name": stream, "config": config})


@pytest.fixture
def stream(raw, request):
    """A stream named after the test with 3 messages on <name>.a and 1 on <name>.b."""
    name = f"CS{zlib.crc32(request.node.name.encode()):08x}"
    raw.add_stream(name, [f"{name}.>"])
    for subj in ("a", "a", "a", "b"):
        raw.pub(f"{name}.{subj}", "x")
    return name


# -- the create subjects ----------------------------------------------------------------------


def test_legacy_ephemeral_defaults(raw, stream):
    resp = create(raw, f"CREATE.{stream}", {}, stream)
    name = resp["name"]
    assert GENERATED_NAME.match(name), name
    config = {k: v for k, v in resp["config"].items() if not (k == "name" and v == name)}
    # ack_policy defaults to "none" (the JSON zero value): no ack_wait, no max_ack_pending.
    assert resp == info(
        stream,
        name,
        {
            "deliver_policy": "all",
            "ack_policy": "none",
            "max_deliver": -1,
            "replay_policy": "instant",
            "max_waiting": 512,
            "inactive_threshold": 5_000_000_000,
            "num_replicas": 0,
        },
        num_pending=4,
    ) | {"config": config}
    assert raw.consumer_info(stream, name)["name"] == name


@pytest.mark.nats_quirk
def test_legacy_ephemeral_config_omits_the_generated_name(raw, stream):
    resp = create(raw, f"CREATE.{stream}", {"ack_policy": "explicit"}, stream)
    assert "name" not in resp["config"]
    assert resp["config"] == EXPLICIT_PULL | EPHEMERAL


def test_legacy_ephemeral_with_durable_name_is_10020(raw, stream):
    for config in ({"durable_name": "d1"}, {"durable_name": "d1", "name": "d1"}):
        assert create(raw, f"CREATE.{stream}", config, stream) == api_error(
            CREATE,
            400,
            10020,
            "consumer expected to be ephemeral but a durable name was set in request",
        )


def test_legacy_ephemeral_keeps_a_name_from_the_body(raw, stream):
    resp = create(raw, f"CREATE.{stream}", {"name": "given"}, stream)
    assert resp["name"] == "given" and resp["config"]["name"] == "given"


def test_named_create(raw, stream):
    resp = create(raw, f"CREATE.{stream}.n1", {"ack_policy": "explicit"}, stream)
    assert resp == info(stream, "n1", {"name": "n1"} | EXPLICIT_PULL | EPHEMERAL, num_pending=4)
    # Same config again: the existing consumer, unchanged.
    again = create(raw, f"CREATE.{stream}.n1", {"ack_policy": "explicit"}, stream)
    assert again == resp


@pytest.mark.nats_quirk
def test_named_create_subject_overrides_body_name(raw, stream):
    resp = create(raw, f"CREATE.{stream}.n2", {"name": "other"}, stream)
    assert (resp["name"], resp["config"]["name"]) == ("n2", "n2")
    # ...also when durable_name agrees with the subject and name does not (no 10132 here).
    resp = create(raw, f"CREATE.{stream}.n3", {"durable_name": "n3", "name": "n3x"}, stream)
    assert (resp["name"], resp["config"]["name"], resp["config"]["durable_name"]) == (
        "n3",
        "n3",
        "n3",
    )


def test_named_create_durable(raw, stream):
    cfg = {"durable_name": "d", "ack_policy": "explicit"}
    resp = create(raw, f"CREATE.{stream}.d", cfg, stream)
    # Durable: no inactive_threshold default.
    assert resp == info(stream, "d", {"durable_name": "d", "name": "d"} | EXPLICIT_PULL, 4)
    assert create(raw, f"CREATE.{stream}.x", {"durable_name": "zz"}, stream) == api_error(
        CREATE, 400, 10017, "consumer name in subject does not match durable name in request"
    )


def test_named_create_with_filter_subject_tokens(raw, stream):
    cfg = {"ack_policy": "explicit", "filter_subject": f"{stream}.a"}
    resp = create(raw, f"CREATE.{stream}.f1.{stream}.a", cfg, stream)
    expected = {"name": "f1"} | EXPLICIT_PULL | EPHEMERAL | {"filter_subject": f"{stream}.a"}
    assert resp == info(stream, "f1", expected, num_pending=3)
    wild = create(raw, f"CREATE.{stream}.f2.{stream}.*", {"filter_subject": f"{stream}.*"}, stream)
    assert (wild["config"]["filter_subject"], wild["num_pending"]) == (f"{stream}.*", 4)
    mismatch = api_error(
        CREATE,
        400,
        10131,
        "Consumer create request did not match filtered subject from create subject",
    )
    other = {"filter_subject": f"{stream}.b"}
    assert create(raw, f"CREATE.{stream}.f3.{stream}.a", other, stream) == mismatch
    assert create(raw, f"CREATE.{stream}.f4.{stream}.a", {}, stream) == mismatch


def test_durable_create(impl, raw, stream):
    cfg = {"durable_name": "dd", "ack_policy": "explicit"}
    resp = create(raw, f"DURABLE.CREATE.{stream}.dd", cfg, stream)
    # 2.12.5 echoes the name in the config of a legacy durable create too.
    named = {"name": "dd"} if since(impl, (2, 12, 5)) else {}
    assert resp == info(stream, "dd", {"durable_name": "dd"} | named | EXPLICIT_PULL, 4)
    assert create(raw, f"DURABLE.CREATE.{stream}.d2", {}, stream) == api_error(
        CREATE, 400, 10018, "consumer expected to be durable but a durable name was not set"
    )
    assert create(raw, f"DURABLE.CREATE.{stream}.d3", {"durable_name": "zz"}, stream) == (
        api_error(
            CREATE, 400, 10017, "consumer name in subject does not match durable name in request"
        )
    )
    both = {"durable_name": "d4", "name": "d5"}
    resp = create(raw, f"DURABLE.CREATE.{stream}.d4", both, stream)
    if since(impl, (2, 12, 5)):  # the durable overrides the name
        assert (resp["name"], resp["config"]["name"]) == ("d4", "d4"), resp
    else:
        assert resp == api_error(
            CREATE, 400, 10132, "Consumer Durable and Name have to be equal if both are provided"
        )


@pytest.mark.nats_quirk
def test_durable_create_config_omits_name(impl, raw, stream):
    resp = create(raw, f"DURABLE.CREATE.{stream}.dn", {"durable_name": "dn"}, stream)
    assert resp["name"] == "dn"
    # 2.12.5 puts the name in the config too.
    assert resp["config"].get("name") == ("dn" if since(impl, (2, 12, 5)) else None)


def test_durable_create_with_extra_token_gets_no_reply(raw, stream):
    # DURABLE.CREATE.<stream>.<durable>.<more> matches no API subject: no answer at all (so
    # 10016 is never sent by 2.9.10).
    r1 = raw.inbox()
    body = {"stream_name": stream, "config": {"durable_name": "dx"}}
    raw.publish(f"{API}.CONSUMER.DURABLE.CREATE.{stream}.dx.extra", body, reply=r1)
    assert raw.api(f"CONSUMER.INFO.{stream}.dx")["error"]["err_code"] == 10014
    raw.flush()
    assert not [f for f in raw.backlog if f.subject == r1]


# -- create errors ------------------------------------------------------------------------------


def test_create_request_errors(impl, raw, stream):
    assert create(raw, f"CREATE.{stream}.e1", {}, "OTHER") == api_error(
        CREATE, 400, 10056, "stream name in subject does not match request"
    )
    assert raw.api(f"CONSUMER.CREATE.{stream}.e2", b"{}") == api_error(
        CREATE, 400, 10056, "stream name in subject does not match request"
    )
    # 2.11 decodes only a body that looks like a JSON object: an empty one names no stream.
    assert raw.api(f"CONSUMER.CREATE.{stream}.e3", b"") == (
        api_error(CREATE, 400, 10056, "stream name in subject does not match request")
        if since(impl, (2, 11))
        else api_error(CREATE, 400, 10025, "invalid JSON")
    )
    assert create(raw, "CREATE.NOPE.e4", {}, "NOPE") == api_error(
        CREATE, 404, 10059, "stream not found"
    )
    assert create(raw, f"CREATE.{stream}.a/b", {}, stream) == api_error(
        CREATE, 400, 10127, "Consumer name can not contain path separators"
    )
    bad_name = api_error(CREATE, 400, 10103, "durable name can not contain '.', '*', '>'")
    if since(impl, (2, 12, 8)):  # the config check now comes first, with its own error
        bad_name = api_error(
            CREATE, 500, 10052, "consumer name can not contain '.', '*', '>', '\\', '/'"
        )
    assert create(raw, f"CREATE.{stream}.a*b", {}, stream) == bad_name
    assert create(raw, f"CREATE.{stream}.a>b", {}, stream) == bad_name
    long = "x" * 256
    assert create(raw, f"CREATE.{stream}.{long}", {"durable_name": long}, stream) == api_error(
        CREATE, 400, 10102, "consumer name is too long, maximum allowed is 255"
    )


POLICY = "consumer delivery policy is deliver {}, but optional {}"
#: Configs of test_create_invalid_config that a later release accepts: (match, release).
ACCEPTED_SINCE = [
    # 2.12: a negative max_waiting / max_batch becomes 0 (an error only for a pedantic request).
    (lambda c: c.get("max_waiting", 0) < 0 or c.get("max_batch", 0) < 0, (2, 12)),
    # 2.10.23: backoff is checked against max_deliver only when max_deliver is set, and may have
    # as many values as max_deliver.
    (lambda c: "backoff" in c and c.get("max_deliver", -1) in (-1, len(c["backoff"])), (2, 10, 23)),
]
T2020 = "2020-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("config", "code", "err_code", "description"),
    [
        (
            {"description": "d" * 4097},
            400,
            10107,
            "consumer description is too long, maximum allowed is 4096",
        ),
        pytest.param(
            {"filter_subject": "zz"},
            400,
            10093,
            "consumer filter subject is not a valid subset of the interest subjects",
            marks=pytest.mark.nats_29_only,  # 2.10 accepts a filter outside the stream
        ),
        ({"num_replicas": 3}, 500, 10074, "replicas > 1 not supported in non-clustered mode"),
        ({"num_replicas": -1}, 400, 10133, "replicas count cannot be negative"),
        (
            {"sample_freq": "abc"},
            400,
            10095,
            "failed to parse consumer sampling configuration: "
            'strconv.Atoi: parsing "abc": invalid syntax',
        ),
        ({"direct": True}, 400, 10090, "consumer direct requires a push based consumer"),
        ({"deliver_policy": "bogus"}, 400, 10025, "invalid JSON"),
        ({"ack_policy": "bogus"}, 400, 10025, "invalid JSON"),
        # push-only options on a pull consumer
        (
            {"idle_heartbeat": 1_000_000_000},
            400,
            10088,
            "consumer idle heartbeat requires a push based consumer",
        ),
        (
            {"flow_control": True},
            400,
            10089,
            "consumer flow control requires a push based consumer",
        ),
        ({"rate_limit_bps": 100}, 400, 10086, "consumer in pull mode can not have rate limit set"),
        ({"max_waiting": -1}, 400, 10087, "consumer max waiting needs to be positive"),
        ({"max_batch": -1}, 400, 10114, "consumer max request batch needs to be > 0"),
        ({"max_expires": 1000}, 400, 10115, "consumer max request expires needs to be >= 1ms"),
        # push consumers
        (
            {"deliver_subject": "dl", "idle_heartbeat": 99_999_999},
            400,
            10083,
            "consumer idle heartbeat needs to be >= 100ms",
        ),
        (
            {"deliver_subject": "dl", "flow_control": True},
            400,
            10108,
            "consumer with flow control also needs heartbeats",
        ),
        ({"deliver_subject": "dl.*"}, 400, 10079, "consumer deliver subject has wildcards"),
        ({"deliver_subject": "dl..x"}, 400, 10112, "invalid push consumer deliver subject"),
        (
            {"deliver_subject": "dl", "max_waiting": 5},
            400,
            10080,
            "consumer in push mode can not set max waiting",
        ),
        ({"deliver_subject": "{stream}.x"}, 400, 10081, "consumer deliver subject forms a cycle"),
        (
            {"deliver_subject": "dl", "max_ack_pending": 5},
            400,
            10082,
            "consumer requires ack policy for max ack pending",
        ),
        # backoff vs max_deliver
        (
            {"ack_policy": "explicit", "backoff": [10**9, 2 * 10**9]},
            400,
            10116,
            "max deliver is required to be > length of backoff values",
        ),
        (
            {"ack_policy": "explicit", "backoff": [10**9, 2 * 10**9], "max_deliver": 2},
            400,
            10116,
            "max deliver is required to be > length of backoff values",
        ),
        # deliver_policy vs opt_start_*
        ({"opt_start_seq": 1}, 400, 10094, POLICY.format("all", "start sequence is also set")),
        ({"opt_start_time": T2020}, 400, 10094, POLICY.format("all", "start time is also set")),
        (
            {"deliver_policy": "last", "opt_start_seq": 1},
            400,
            10094,
            POLICY.format("last", "start sequence is also set"),
        ),
        (
            {"deliver_policy": "last", "opt_start_time": T2020},
            400,
            10094,
            POLICY.format("last", "start time is also set"),
        ),
        (
            {"deliver_policy": "new", "opt_start_seq": 1},
            400,
            10094,
            POLICY.format("new", "start sequence is also set"),
        ),
        (
            {"deliver_policy": "new", "opt_start_time": T2020},
            400,
            10094,
            POLICY.format("new", "start time is also set"),
        ),
        (
            {"deliver_policy": "by_start_sequence"},
            400,
            10094,
            POLICY.format("by start sequence", "start sequence is not set"),
        ),
        (
            {"deliver_policy": "by_start_sequence", "opt_start_seq": 1, "opt_start_time": T2020},
            400,
            10094,
            POLICY.format("by start sequence", "start time is also set"),
        ),
        (
            {"deliver_policy": "by_start_time"},
            400,
            10094,
            POLICY.format("by start time", "start time is not set"),
        ),
        # sic: "start start sequence"
        (
            {"deliver_policy": "by_start_time", "opt_start_seq": 2, "opt_start_time": T2020},
            400,
            10094,
            POLICY.format("by start time", "start start sequence is also set"),
        ),
        (
            {"deliver_policy": "last_per_subject"},
            400,
            10094,
            POLICY.format("last per subject", "filter subject is not set"),
        ),
        (
            {"deliver_policy": "last_per_subject", "opt_start_seq": 3},
            400,
            10094,
            POLICY.format("last per subject", "start sequence is also set"),
        ),
    ],
)
def test_create_invalid_config(
    impl, raw, stream, request, config, code, err_code, description
):
    name = "bad" + str(request.node.callspec.indices["config"])
    if config.get("deliver_subject") == "{stream}.x":
        config = {**config, "deliver_subject": f"{stream}.x"}
    resp = create(raw, f"CREATE.{stream}.{name}", config, stream)
    if any(match(config) and since(impl, v) for match, v in ACCEPTED_SINCE):
        assert "error" not in resp, resp
        return
    if description == "invalid JSON" and since(impl, (2, 11)):
        # 2.11 appends the decoder's error: 'invalid JSON: can not unmarshal "\"bogus\""'.
        assert resp["error"]["description"].startswith("invalid JSON: "), resp
        description = resp["error"]["description"]
    assert resp == api_error(CREATE, code, err_code, description)


def test_create_echoes_explicit_options(raw, stream):
    cfg = {
        "description": "hi",
        "ack_policy": "explicit",
        "ack_wait": 2_000_000_000,
        "max_deliver": 5,
        "backoff": [1_000_000_000, 2_000_000_000],
        "replay_policy": "original",
        "sample_freq": "50%",
        "max_waiting": 7,
        "max_ack_pending": 20,
        "headers_only": True,
        "max_batch": 5,
        "max_expires": 2_000_000_000,
        "max_bytes": 100,
        "inactive_threshold": 3_000_000_000,
        "mem_storage": True,
        "deliver_policy": "by_start_sequence",
        "opt_start_seq": 2,
    }
    resp = create(raw, f"CREATE.{stream}.opts", cfg, stream)
    # A backoff replaces ack_wait with backoff[0].
    assert resp["config"] == {"name": "opts", **cfg, "ack_wait": 1_000_000_000, "num_replicas": 0}
    assert resp["num_pending"] == 3
    push = {
        "durable_name": "pu",
        "deliver_subject": "dlv.pu",
        "deliver_group": "g",
        "ack_policy": "all",
        "idle_heartbeat": 100_000_000,
        "flow_control": True,
        "rate_limit_bps": 1000,
        "deliver_policy": "by_start_time",
        "opt_start_time": T2020,
    }
    resp = create(raw, f"CREATE.{stream}.pu", push, stream)
    assert resp["config"] == {
        "durable_name": "pu",
        "name": "pu",
        "deliver_policy": "by_start_time",
        "opt_start_time": T2020,
        "ack_policy": "all",
        "ack_wait": 30_000_000_000,
        "max_deliver": -1,
        "replay_policy": "instant",
        "rate_limit_bps": 1000,
        "max_ack_pending": 1000,
        "idle_heartbeat": 100_000_000,
        "flow_control": True,
        "deliver_subject": "dlv.pu",
        "deliver_group": "g",
        "num_replicas": 0,
    }
    assert "push_bound" not in resp  # nobody listens on dlv.pu


def test_last_per_subject_and_start_positions(raw, stream):
    lps = {"deliver_policy": "last_per_subject", "filter_subject": f"{stream}.*"}
    assert create(raw, f"CREATE.{stream}.l1", lps, stream)["num_pending"] == 2
    assert (
        create(raw, f"CREATE.{stream}.l2", {"deliver_policy": "last"}, stream)["num_pending"] == 1
    )
    assert create(raw, f"CREATE.{stream}.l3", {"deliver_policy": "new"}, stream)["num_pending"] == 0
    seq = {"deliver_policy": "by_start_sequence", "opt_start_seq": 3}
    resp = create(raw, f"CREATE.{stream}.l4", seq, stream)
    assert (resp["num_pending"], resp["delivered"]) == (2, {"consumer_seq": 0, "stream_seq": 2})
    tm = {"deliver_policy": "by_start_time", "opt_start_time": T2020}
    assert create(raw, f"CREATE.{stream}.l5", tm, stream)["num_pending"] == 4


# -- 2.10 features that 2.9.10 does not have -----------------------------------------------------


@pytest.mark.nats_29_only
def test_filter_subjects_is_ignored(raw, stream):
    # 2.9.10 does not know filter_subjects (2.10): it is dropped, the consumer is unfiltered.
    resp = create(raw, f"CREATE.{stream}.fs", {"filter_subjects": [f"{stream}.b"]}, stream)
    assert "filter_subjects" not in resp["config"] and "filter_subject" not in resp["config"]
    assert resp["num_pending"] == 4
    both = {"filter_subject": f"{stream}.a", "filter_subjects": [f"{stream}.b"]}
    resp = create(raw, f"CREATE.{stream}.fs2", both, stream)
    assert (resp["config"]["filter_subject"], resp["num_pending"]) == (f"{stream}.a", 3)


@pytest.mark.nats_29_only
def test_action_is_ignored(raw, stream):
    # 2.10's "action" (create/update) is ignored: create on an existing consumer updates it,
    # update of a missing consumer creates it (no 10148 / 10149).
    def req(name, config, action):
        body = {"stream_name": stream, "config": config, "action": action}
        return raw.api(f"CONSUMER.CREATE.{stream}.{name}", body)

    assert req("a1", {}, "update")["name"] == "a1"
    assert req("a1", {"description": "x"}, "create")["config"]["description"] == "x"
    assert req("a1", {"ack_policy": "explicit"}, "create") == api_error(
        CREATE, 500, 10012, "ack policy can not be updated"
    )
    assert req("a2", {}, "bogus")["name"] == "a2"


# -- update --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "description"),
    [
        ({"deliver_policy": "new"}, "deliver policy can not be updated"),
        (
            {"deliver_policy": "by_start_sequence", "opt_start_seq": 9},
            "deliver policy can not be updated",
        ),
        ({"ack_policy": "all"}, "ack policy can not be updated"),
        ({"replay_policy": "original"}, "replay policy can not be updated"),
        ({"max_waiting": 10}, "max waiting can not be updated"),
        # pull -> push trips over max_waiting (512 vs 0) first; 2.10+ says so plainly
        pytest.param({"deliver_subject": "x"}, "max waiting can not be updated",
                     marks=pytest.mark.nats_29_only),
    ],
)
def test_update_pull_immutable(raw, stream, change, description):
    base = {"durable_name": "u", "ack_policy": "explicit"}
    create(raw, f"CREATE.{stream}.u", base, stream)
    assert create(raw, f"CREATE.{stream}.u", base | change, stream) == api_error(
        CREATE, 500, 10012, description
    )


def test_update_start_sequence_is_immutable(raw, stream):
    base = {"deliver_policy": "by_start_sequence", "opt_start_seq": 3}
    create(raw, f"CREATE.{stream}.us", base, stream)
    assert create(raw, f"CREATE.{stream}.us", base | {"opt_start_seq": 4}, stream) == api_error(
        CREATE, 500, 10012, "start sequence can not be updated"
    )


def test_update_pull_mutable(impl, raw, stream):
    base = {"durable_name": "m", "ack_policy": "explicit"}
    create(raw, f"CREATE.{stream}.m", base, stream)
    durable = {"durable_name": "m", "name": "m"} | EXPLICIT_PULL
    for change in [
        {"filter_subject": f"{stream}.a"},
        {"max_deliver": 5},
        {"ack_wait": 2_000_000_000},
        {"description": "new"},
        {"max_ack_pending": 7},
        {"headers_only": True},
        {"max_batch": 3},
        {"sample_freq": "10%"},
        {"inactive_threshold": 60_000_000_000},
    ]:
        resp = create(raw, f"CREATE.{stream}.m", base | change, stream)
        assert resp["config"] == durable | change, change
    resp = create(raw, f"CREATE.{stream}.m", base | {"backoff": [1, 2]}, stream)
    if since(impl, (2, 10, 23)):  # backoff is only checked against a max_deliver that is set
        assert resp["config"]["backoff"] == [1, 2], resp
        return
    assert resp == api_error(
        CREATE, 400, 10116, "max deliver is required to be > length of backoff values"
    )


@pytest.mark.nats_quirk
@pytest.mark.nats_29_only  # 2.15.1 refuses it: "storage type can not be updated"
def test_update_mem_storage_is_allowed(raw, stream):
    # compat.md (newer servers) lists mem_storage as immutable; 2.9.10 and 2.10.0 let it change.
    create(raw, f"CREATE.{stream}.ms", {"mem_storage": True}, stream)
    resp = create(raw, f"CREATE.{stream}.ms", {"mem_storage": False}, stream)
    assert "mem_storage" not in resp["config"]


def test_update_push(raw, stream):
    base = {
        "durable_name": "p",
        "ack_policy": "explicit",
        "deliver_subject": "pp1",
        "idle_heartbeat": 1_000_000_000,
        "flow_control": True,
    }
    create(raw, f"CREATE.{stream}.p", base, stream)
    err = "error"
    assert create(raw, f"CREATE.{stream}.p", base | {"idle_heartbeat": 2 * 10**9}, stream)[err] == {
        "code": 500,
        "err_code": 10012,
        "description": "heart beats can not be updated",
    }
    assert create(raw, f"CREATE.{stream}.p", base | {"flow_control": False}, stream)[err] == {
        "code": 500,
        "err_code": 10012,
        "description": "flow control can not be updated",
    }
    # push -> pull: the heartbeat check of a pull config fires first
    assert create(raw, f"CREATE.{stream}.p", base | {"deliver_subject": ""}, stream)[err] == {
        "code": 400,
        "err_code": 10088,
        "description": "consumer idle heartbeat requires a push based consumer",
    }
    for change in [{"deliver_subject": "pp2"}, {"deliver_group": "gg"}, {"rate_limit_bps": 8}]:
        resp = create(raw, f"CREATE.{stream}.p", base | change, stream)
        assert resp["config"] == {"name": "p", **base, **change} | {
            "deliver_policy": "all",
            "ack_wait": 30_000_000_000,
            "max_deliver": -1,
            "replay_policy": "instant",
            "max_ack_pending": 1000,
            "num_replicas": 0,
        }, change
    # The deliver subject can change only while nobody listens on the current one.
    sid = raw.subscribe("pp1")
    resp = create(raw, f"CREATE.{stream}.p", base | {"deliver_subject": "pp3"}, stream)
    assert resp == api_error(CREATE, 400, 10013, "consumer name already in use")
    raw.unsubscribe(sid)
    resp = create(raw, f"CREATE.{stream}.p", base | {"deliver_subject": "pp3"}, stream)
    assert resp["config"]["deliver_subject"] == "pp3"


# -- info / names / list / delete ---------------------------------------------------------------


def test_consumer_info(raw, stream):
    create(raw, f"CREATE.{stream}.i1", {"durable_name": "i1", "ack_policy": "explicit"}, stream)
    resp = raw.consumer_info(stream, "i1")
    expected = info(
        stream,
        "i1",
        {"durable_name": "i1", "name": "i1"} | EXPLICIT_PULL,
        num_pending=4,
        kind="consumer_info_response",
    )
    assert resp == expected
    # An empty JSON body is accepted too.
    assert raw.api(f"CONSUMER.INFO.{stream}.i1", b"{}") == expected
    kind = "consumer_info_response"
    assert raw.consumer_info(stream, "nope") == api_error(kind, 404, 10014, "consumer not found")
    assert raw.consumer_info("NOPE", "i1") == api_error(kind, 404, 10059, "stream not found")


def test_consumer_info_has_no_cluster_on_a_single_server(raw, stream):
    create(raw, f"CREATE.{stream}.c1", {"durable_name": "c1"}, stream)
    resp = raw.request(f"{API}.CONSUMER.INFO.{stream}.c1").json()
    assert "cluster" not in resp


@pytest.mark.nats_29_only
def test_infos_have_no_ts_and_stream_info_no_cluster(raw, stream):
    # 2.10 adds "ts" to StreamInfo and ConsumerInfo, and "cluster":{"leader":<server name>} to
    # StreamInfo even on a single server.
    create(raw, f"CREATE.{stream}.c2", {"durable_name": "c2"}, stream)
    resp = raw.request(f"{API}.CONSUMER.INFO.{stream}.c2").json()
    assert "ts" not in resp
    resp = raw.request(f"{API}.STREAM.INFO.{stream}").json()
    assert "ts" not in resp and "cluster" not in resp


def test_names_list_delete(impl, start_js_server, raw_factory):
    raw = raw_factory(start_js_server())
    raw.add_stream("NL", ["nl.>"])
    names_kind = "io.nats.jetstream.api.v1.consumer_names_response"
    assert raw.api("CONSUMER.NAMES.NL") == {
        "type": names_kind,
        "total": 0,
        "offset": 0,
        "limit": 1024,
        "consumers": [],  # [] here, while STREAM.NAMES says null
    }
    for name in ("c", "a", "b"):
        create(raw, f"CREATE.NL.{name}", {"durable_name": name}, "NL")
    assert raw.api("CONSUMER.NAMES.NL") == {
        "type": names_kind,
        "total": 3,
        "offset": 0,
        "limit": 1024,
        "consumers": ["a", "b", "c"],
    }
    assert raw.api("CONSUMER.NAMES.NL", {"offset": 1})["consumers"] == ["b", "c"]
    page = raw.api("CONSUMER.NAMES.NL", {"offset": 10})
    assert (page["total"], page["offset"], page["consumers"]) == (3, 3, [])
    # A "subject" filter is not supported for consumers: ignored (2.12 refuses unknown fields).
    filtered = raw.api("CONSUMER.NAMES.NL", {"subject": "zz"})
    if since(impl, (2, 12)):
        assert filtered == api_error(
            "consumer_names_response",
            400,
            10025,
            'invalid JSON: json: unknown field "subject"',
            total=0,
            offset=0,
            limit=0,
            consumers=[],
        )
    else:
        assert filtered["consumers"] == ["a", "b", "c"]
    assert raw.api("CONSUMER.NAMES.NOPE") == api_error(
        "consumer_names_response",
        404,
        10059,
        "stream not found",
        total=0,
        offset=0,
        limit=0,
        consumers=[],
    )
    if since(impl, (2, 11)):  # 2.11 ignores a body that is not a JSON object or array
        assert raw.api("CONSUMER.NAMES.NL", b"bad")["consumers"] == ["a", "b", "c"]
    else:
        assert raw.api("CONSUMER.NAMES.NL", b"bad") == api_error(
            "consumer_names_response",
            400,
            10025,
            "invalid JSON",
            total=0,
            offset=0,
            limit=0,
            consumers=[],
        )

    lst = raw.api("CONSUMER.LIST.NL")
    assert list(lst) == ["type", "total", "offset", "limit", "consumers"]
    assert (lst["total"], lst["offset"], lst["limit"]) == (3, 0, 256)
    assert [c["name"] for c in lst["consumers"]] == ["a", "b", "c"]
    # Entries are ConsumerInfo without "type".
    entry = info("NL", "a", {"durable_name": "a", "name": "a"} | DEFAULT_DURABLE)
    del entry["type"]
    assert lst["consumers"][0] == entry
    assert [c["name"] for c in raw.api("CONSUMER.LIST.NL", {"offset": 2})["consumers"]] == ["c"]
    assert raw.api("CONSUMER.LIST.NOPE") == api_error(
        "consumer_list_response",
        404,
        10059,
        "stream not found",
        total=0,
        offset=0,
        limit=0,
        consumers=[],
    )

    kind = "consumer_delete_response"
    assert raw.api("CONSUMER.DELETE.NL.a", b"x") == api_error(
        kind, 400, 10038, "expected an empty request payload"
    )
    assert raw.api("CONSUMER.DELETE.NL.a") == {
        "type": f"io.nats.jetstream.api.v1.{kind}",
        "success": True,
    }
    assert raw.api("CONSUMER.DELETE.NL.a") == api_error(kind, 404, 10014, "consumer not found")
    assert raw.api("CONSUMER.DELETE.NOPE.a") == api_error(kind, 404, 10059, "stream not found")
    assert raw.api("CONSUMER.NAMES.NL")["consumers"] == ["b", "c"]
    assert raw.api("STREAM.INFO.NL")["state"]["consumer_count"] == 2


def test_consumer_leader_stepdown_needs_clustering(raw, stream):
    create(raw, f"CREATE.{stream}.sd", {"durable_name": "sd"}, stream)
    assert raw.api(f"CONSUMER.LEADER.STEPDOWN.{stream}.sd") == api_error(
        "consumer_leader_stepdown_response", 503, 10010, "JetStream clustering support required"
    )
