"""The JetStream 2.10 fields that nats-py, nats.go and nats.js send, as nats-server 2.15.1 treats
them: consumer ``filter_subjects``, ``metadata`` (consumers and streams), the CONSUMER.CREATE
``action``, the update rules, consumer ``num_replicas`` / ``mem_storage`` on one server, the
stream's ``consumer_limits``, and the stream's ``first_seq`` / ``discard_new_per_subject``.

nats-server 2.9.10 does not know these fields (test_js_consumers.py pins what it does with them),
so every test here is skipped for an oracle older than 2.10; run them with
``CONFORMANCE_IMPLS='nats-server-2.15.1,broker'``.

What nats-server 2.11+ adds and these tests look past:

* the versioning metadata (``_nats.req.level``, ``_nats.ver``, ``_nats.level``) in every stream
  and consumer config it echoes: removed before comparing (`config_of`). Because
  ``_nats.req.level`` counts towards the 128 KiB metadata limit, 2.15.1 refuses user metadata
  16 bytes short of it; the tests stay clear of that edge;
* the detail after ``invalid JSON: `` in 10025 errors (2.10 sends ``invalid JSON`` alone);
* ``allow_msg_ttl`` and the stream info ``cluster`` (only stream state is compared here);
* the ``name`` a legacy ``CONSUMER.DURABLE.CREATE`` echoes (2.14+): not used here.
"""

from __future__ import annotations

from typing import Any

import pytest

from ..conftest import impl_version
from .jsutil import RawJS, api_error

pytestmark = pytest.mark.conformance(area="js-210-fields")

CREATE = "consumer_create_response"
STREAM_CREATE = "stream_create_response"
STREAM_UPDATE = "stream_update_response"
SECOND = 1_000_000_000


@pytest.fixture(autouse=True)
def _needs_210(impl) -> None:
    if impl_version(impl) < (2, 10):
        pytest.skip("JetStream 2.10 fields: nats-server 2.9 does not know them")


# -- helpers -------------------------------------------------------------------------------------


def consumer_create(raw: RawJS, stream: str, name: str | None, config: dict,
                    action: Any = None, *, filtered: str = "", legacy: bool = False) -> dict:
    """CONSUMER.CREATE.<stream>[.<name>[.<filter>]] (or the legacy ephemeral form)."""
    subject = f"CONSUMER.CREATE.{stream}"
    if name is not None and not legacy:
        subject += f".{name}"
    if filtered:
        subject += f".{filtered}"
    body: dict[str, Any] = {"stream_name": stream, "config": config}
    if action is not None:
        body["action"] = action
    return raw.api(subject, body)


def config_of(resp: dict) -> dict:
    """The echoed config (stream or consumer) without nats-server 2.11+'s versioning metadata
    (``_nats.*``)."""
    assert "error" not in resp, resp
    config = dict(resp["config"])
    metadata = {k: v for k, v in (config.pop("metadata", None) or {}).items()
                if not k.startswith("_nats.")}
    if metadata:
        config["metadata"] = metadata
    return config


def error(code: int, err_code: int, description: str, kind: str = CREATE) -> dict:
    return api_error(kind, code, err_code, description)


def assert_invalid_json(resp: dict, kind: str = CREATE) -> None:
    """10025: 2.10 says ``invalid JSON``, 2.11+ adds ``: <detail>``."""
    err = resp.get("error", {})
    assert resp["type"] == f"io.nats.jetstream.api.v1.{kind}", resp
    assert (err.get("code"), err.get("err_code")) == (400, 10025), resp
    assert err["description"] == "invalid JSON" or err["description"].startswith("invalid JSON: ")


def fetch(raw: RawJS, stream: str, consumer: str, batch: int) -> list[tuple[str, int]]:
    """(subject, stream sequence) of what one no_wait pull delivers (ack none consumers)."""
    sid = raw.pull(stream, consumer, {"batch": batch, "no_wait": True})
    got = []
    while True:
        frame = raw.next(sid)
        if frame.status is not None:
            break
        got.append((frame.subject, frame.ack()["sseq"]))
    raw.unsubscribe(sid)
    return got


def pull(**extra: Any) -> dict:
    """The config nats-server echoes for a named ephemeral pull consumer (ack none)."""
    base = {"deliver_policy": "all", "ack_policy": "none", "max_deliver": -1}
    tail = {"replay_policy": "instant", "max_waiting": 512, "inactive_threshold": 5 * SECOND,
            "num_replicas": 0}
    filters = {k: extra.pop(k) for k in ("filter_subject", "filter_subjects") if k in extra}
    return {**base, **filters, **tail, **extra}


@pytest.fixture
def stream(raw: RawJS, uniq: str) -> str:
    """A stream <uniq>.> holding <uniq>.a (1), .b (2), .c (3), .a.x (4)."""
    raw.add_stream(uniq, [f"{uniq}.>"])
    for token in ("a", "b", "c", "a.x"):
        assert "error" not in raw.pub(f"{uniq}.{token}", token)
    return uniq


# -- filter_subjects -----------------------------------------------------------------------------


def test_filter_subjects_select_messages(raw, stream):
    a, b = f"{stream}.a", f"{stream}.b"
    resp = consumer_create(raw, stream, "two", {"filter_subjects": [a, b]})
    assert config_of(resp) == {"name": "two", **pull(filter_subjects=[a, b])}
    assert resp["num_pending"] == 2
    assert fetch(raw, stream, "two", 10) == [(a, 1), (b, 2)]
    # A single filter in the list stays a list; wildcards that do not overlap are fine.
    resp = consumer_create(raw, stream, "one", {"filter_subjects": [a]})
    assert (config_of(resp)["filter_subjects"], resp["num_pending"]) == ([a], 1)
    wild = [f"{stream}.a.*", f"{stream}.b.>", f"{stream}.c"]
    resp = consumer_create(raw, stream, "wild", {"filter_subjects": wild})
    assert (config_of(resp)["filter_subjects"], resp["num_pending"]) == (wild, 2)
    assert fetch(raw, stream, "wild", 10) == [(f"{stream}.c", 3), (f"{stream}.a.x", 4)]
    # Overlapping but neither a subset of the other: accepted.
    resp = consumer_create(raw, stream, "cross", {"filter_subjects": [f"{stream}.a.*",
                                                                      f"{stream}.*.x"]})
    assert resp["num_pending"] == 1
    # ">" alone is a filter too, and the legacy ephemeral subject takes the list as well.
    assert consumer_create(raw, stream, "all", {"filter_subjects": [">"]})["num_pending"] == 4
    resp = consumer_create(raw, stream, None, {"filter_subjects": [a, b]}, legacy=True)
    assert (config_of(resp)["filter_subjects"], resp["num_pending"]) == ([a, b], 2)


@pytest.mark.parametrize(
    ("config", "code", "err_code", "description"),
    [
        ({"filter_subjects": ["{s}.a", "{s}.*"]}, 400, 10138,
         "consumer subject filters cannot overlap"),
        ({"filter_subjects": ["{s}.a", "{s}.a"]}, 400, 10138,
         "consumer subject filters cannot overlap"),
        ({"filter_subjects": ["{s}.>", "{s}.a.x"]}, 400, 10138,
         "consumer subject filters cannot overlap"),
        ({"filter_subject": "{s}.c", "filter_subjects": ["{s}.a"]}, 400, 10136,
         "consumer cannot have both FilterSubject and FilterSubjects specified"),
        ({"filter_subjects": [""]}, 400, 10139,
         "consumer filter in FilterSubjects cannot be empty"),
        ({"filter_subjects": ["{s}.a", ""]}, 400, 10139,
         "consumer filter in FilterSubjects cannot be empty"),
        ({"filter_subjects": ["{s}..a"]}, 500, 10052, "invalid subject"),
        ({"filter_subject": "{s}..a"}, 500, 10052, "invalid subject"),
    ],
    ids=["overlap", "duplicate", "superset", "both", "empty", "empty-second", "invalid-list",
         "invalid-single"],
)
def test_filter_subjects_errors(raw, stream, config, code, err_code, description):
    config = {k: (v.format(s=stream) if isinstance(v, str) else [x.format(s=stream) for x in v])
              for k, v in config.items()}
    assert consumer_create(raw, stream, "bad", config) == error(code, err_code, description)


@pytest.mark.parametrize(
    "config", [{"filter_subjects": []}, {"filter_subjects": None}, {"filter_subject": ""}],
    ids=["empty-list", "null", "empty-string"],
)
def test_empty_filters_mean_unfiltered(raw, stream, config):
    resp = consumer_create(raw, stream, "none", config)
    assert config_of(resp) == {"name": "none", **pull()}
    assert resp["num_pending"] == 4


def test_filters_outside_the_stream_are_accepted(raw, stream):
    # 2.10 dropped 10093 ("not a valid subset of the interest subjects").
    resp = consumer_create(raw, stream, "o1", {"filter_subject": "ZZ.a"})
    assert (config_of(resp)["filter_subject"], resp["num_pending"]) == ("ZZ.a", 0)
    resp = consumer_create(raw, stream, "o2", {"filter_subjects": ["ZZ.a"]})
    assert (config_of(resp)["filter_subjects"], resp["num_pending"]) == (["ZZ.a"], 0)
    resp = consumer_create(raw, stream, "o3", {"filter_subjects": [f"{stream}.a", "ZZ.a"]})
    assert resp["num_pending"] == 1


def test_filter_subjects_and_the_filtered_create_subject(raw, stream):
    a = f"{stream}.a"
    multiple = error(400, 10137, "consumer with multiple subject filters cannot use subject "
                                 "based API")
    assert consumer_create(raw, stream, "f1", {"filter_subjects": [a]}, filtered=a) == multiple
    assert consumer_create(raw, stream, "f2", {"filter_subjects": [f"{stream}.b"]},
                           filtered=a) == multiple
    resp = consumer_create(raw, stream, "f3", {"filter_subject": a}, filtered=a)
    assert (config_of(resp)["filter_subject"], resp["num_pending"]) == (a, 1)


def test_filter_subjects_update(raw, stream):
    a, b, c = (f"{stream}.{t}" for t in "abc")
    assert consumer_create(raw, stream, "u", {"filter_subjects": [a]})["num_pending"] == 1
    resp = consumer_create(raw, stream, "u", {"filter_subjects": [a, c]})
    assert (config_of(resp), resp["num_pending"]) == ({"name": "u", **pull(
        filter_subjects=[a, c])}, 2)
    resp = consumer_create(raw, stream, "u", {"filter_subject": b})
    assert (config_of(resp), resp["num_pending"]) == ({"name": "u", **pull(
        filter_subject=b)}, 1)
    resp = consumer_create(raw, stream, "u", {})
    assert (config_of(resp), resp["num_pending"]) == ({"name": "u", **pull()}, 4)
    info = raw.consumer_info(stream, "u")
    assert config_of(info) == {"name": "u", **pull()}


def test_last_per_subject_with_filter_subjects(raw, stream):
    a, b = f"{stream}.a", f"{stream}.b"
    raw.pub(a, "a2")  # seq 5
    config = {"deliver_policy": "last_per_subject", "filter_subjects": [a, b]}
    resp = consumer_create(raw, stream, "lps", config)
    assert config_of(resp)["filter_subjects"] == [a, b]
    assert resp["num_pending"] == 2
    assert fetch(raw, stream, "lps", 10) == [(b, 2), (a, 5)]


def test_filter_subjects_on_a_workqueue(raw, uniq):
    raw.add_stream(uniq, [f"{uniq}.>"], retention="workqueue")
    w = [f"{uniq}.{t}" for t in "abcd"]

    def wq(name, filters, **extra):
        config = {"ack_policy": "explicit", **extra}
        if filters is not None:
            config["filter_subjects"] = filters
        return consumer_create(raw, uniq, name, config)

    unique = error(400, 10100, "filtered consumer not unique on workqueue stream")
    assert config_of(wq("w1", [w[0], w[1]]))["filter_subjects"] == [w[0], w[1]]
    assert wq("w2", [w[2], w[1]]) == unique
    assert config_of(wq("w3", [w[2], w[3]]))["filter_subjects"] == [w[2], w[3]]
    assert wq("w1", [w[0], w[3]]) == unique  # an update is checked too
    assert wq("w4", None) == error(400, 10099, "multiple non-filtered consumers not allowed on "
                                               "workqueue stream")
    assert wq("w4", None, deliver_policy="new") == error(
        400, 10101, "consumer must be deliver all on workqueue stream")
    # An update that drops the filters is not refused (only a new consumer is).
    assert "filter_subjects" not in config_of(wq("w3", None))


# -- metadata ------------------------------------------------------------------------------------


def test_consumer_metadata_echoed_and_updated(raw, stream):
    durable = {"durable_name": "m", "name": "m", **pull()}
    del durable["inactive_threshold"]
    resp = consumer_create(raw, stream, "m", {"durable_name": "m", "metadata": {"a": "1"}})
    assert config_of(resp) == {**durable, "metadata": {"a": "1"}}
    resp = consumer_create(raw, stream, "m", {"durable_name": "m",
                                              "metadata": {"a": "2", "b": "3"}})
    assert config_of(resp)["metadata"] == {"a": "2", "b": "3"}
    assert config_of(raw.consumer_info(stream, "m"))["metadata"] == {"a": "2", "b": "3"}
    # Leaving it out (or sending an empty map) removes it.
    assert config_of(consumer_create(raw, stream, "m", {"durable_name": "m"})) == durable
    resp = consumer_create(raw, stream, "m", {"durable_name": "m", "metadata": {"x": "y"}})
    assert config_of(resp)["metadata"] == {"x": "y"}
    resp = consumer_create(raw, stream, "m", {"durable_name": "m", "metadata": {}})
    assert config_of(resp) == durable
    resp = consumer_create(raw, stream, "m2", {"metadata": None})
    assert config_of(resp) == {"name": "m2", **pull()}


def test_consumer_metadata_size_limit(raw, stream):
    too_big = {"k": "v" * (128 * 1024)}
    assert consumer_create(raw, stream, "big", {"metadata": too_big}) == error(
        400, 10135, "consumer metadata exceeds maximum size of 128KB")
    fits = {"k": "v" * (120 * 1024)}
    assert config_of(consumer_create(raw, stream, "fits", {"metadata": fits}))[
        "metadata"] == fits
    # An update is checked as well.
    assert consumer_create(raw, stream, "fits", {"metadata": too_big}) == error(
        400, 10135, "consumer metadata exceeds maximum size of 128KB")


@pytest.mark.parametrize("metadata", ["x", ["a"], {"a": 1}], ids=["string", "list", "number"])
def test_consumer_metadata_must_be_a_string_map(raw, stream, metadata):
    assert_invalid_json(consumer_create(raw, stream, "mt", {"metadata": metadata}))


def test_stream_metadata(raw, uniq):
    resp = raw.add_stream(uniq, metadata={"s": "1"})
    assert config_of(resp)["metadata"] == {"s": "1"}
    resp = raw.api(f"STREAM.UPDATE.{uniq}", {"name": uniq, "metadata": {"s": "2", "t": "3"}})
    assert config_of(resp)["metadata"] == {"s": "2", "t": "3"}
    resp = raw.api(f"STREAM.UPDATE.{uniq}", {"name": uniq})
    assert "metadata" not in config_of(resp)
    big = f"{uniq}B"
    resp = raw.api(f"STREAM.CREATE.{big}", {"name": big, "metadata": {"k": "v" * 128 * 1024}})
    assert resp == error(500, 10052, "stream metadata exceeds maximum size of 131072 bytes",
                         STREAM_CREATE)
    resp = raw.api(f"STREAM.UPDATE.{uniq}", {"name": uniq, "metadata": {"k": "v" * 128 * 1024}})
    assert resp == error(500, 10052, "stream metadata exceeds maximum size of 131072 bytes",
                         STREAM_UPDATE)
    bad = f"{uniq}T"
    assert_invalid_json(raw.api(f"STREAM.CREATE.{bad}", {"name": bad, "metadata": ["x"]}),
                        STREAM_CREATE)


# -- action --------------------------------------------------------------------------------------


def test_action_create_and_update(raw, stream):
    exists = error(400, 10148, "consumer already exists")
    missing = error(400, 10149, "consumer does not exist")
    durable = {"durable_name": "d"}
    resp = consumer_create(raw, stream, "d", durable, "create")
    assert resp["name"] == "d" and resp["num_pending"] == 4
    # The same config again is fine; anything different is refused, metadata included.
    assert consumer_create(raw, stream, "d", durable, "create")["name"] == "d"
    assert consumer_create(raw, stream, "d", durable | {"description": "x"}, "create") == exists
    assert consumer_create(raw, stream, "d", durable | {"metadata": {"a": "b"}},
                           "create") == exists
    assert consumer_create(raw, stream, "d", durable | {"ack_policy": "explicit"},
                           "create") == exists
    # Named like the durable but not durable: another consumer, so "already exists".
    assert consumer_create(raw, stream, "d", {}, "create") == exists
    assert consumer_create(raw, stream, "nope", {}, "update") == missing
    resp = consumer_create(raw, stream, "d", durable | {"description": "y"}, "update")
    assert config_of(resp)["description"] == "y"
    assert consumer_create(raw, stream, "d", durable | {"ack_policy": "explicit"},
                           "update") == error(500, 10012, "ack policy can not be updated")
    # "" (what nats.go's CreateOrUpdateConsumer sends) and no action (nats-py) do either.
    resp = consumer_create(raw, stream, "d", durable | {"description": "z"}, "")
    assert config_of(resp)["description"] == "z"
    assert consumer_create(raw, stream, "e", {}, "")["name"] == "e"
    assert consumer_create(raw, stream, "f", {})["name"] == "f"


def test_action_create_of_an_ephemeral_and_its_default_threshold(raw, stream):
    # The ephemeral default (5s) is stamped after the comparison: asked again without a
    # threshold, the request differs from the consumer that got the default.
    assert consumer_create(raw, stream, "e", {}, "create")["name"] == "e"
    assert consumer_create(raw, stream, "e", {}, "create") == error(
        400, 10148, "consumer already exists")
    same = {"inactive_threshold": 5 * SECOND, "max_waiting": 512, "max_deliver": -1}
    assert consumer_create(raw, stream, "e", same, "create")["name"] == "e"
    assert consumer_create(raw, stream, "e", {}, "update")["name"] == "e"


def test_action_on_the_legacy_subjects(raw, stream):
    missing = error(400, 10149, "consumer does not exist")
    assert consumer_create(raw, stream, None, {}, "update", legacy=True) == missing
    body = {"stream_name": stream, "config": {"durable_name": "ld"}, "action": "update"}
    assert raw.api(f"CONSUMER.DURABLE.CREATE.{stream}.ld", body) == missing
    resp = consumer_create(raw, stream, None, {}, "create", legacy=True)
    assert resp["num_pending"] == 4


@pytest.mark.parametrize("action", ["bogus", "CREATE", 1, None, True],
                         ids=["bogus", "upper", "number", "null", "bool"])
def test_unknown_action_is_invalid_json(raw, stream, action):
    body = {"stream_name": stream, "config": {}, "action": action}
    assert_invalid_json(raw.api(f"CONSUMER.CREATE.{stream}.x", body))


def test_action_is_decoded_before_any_other_check(raw, stream):
    body = {"stream_name": "other", "config": {}, "action": "bogus"}
    assert_invalid_json(raw.api(f"CONSUMER.CREATE.{stream}.x", body))


def test_action_checks_the_config_first(raw, stream):
    consumer_create(raw, stream, "c", {"durable_name": "c"})
    empty = error(400, 10139, "consumer filter in FilterSubjects cannot be empty")
    assert consumer_create(raw, stream, "c", {"durable_name": "c", "filter_subjects": [""]},
                           "create") == empty
    assert consumer_create(raw, stream, "n", {"filter_subjects": [""]}, "update") == empty


# -- update rules --------------------------------------------------------------------------------


PULL_BASE = {"durable_name": "u", "ack_policy": "explicit"}
PUSH_BASE = {"durable_name": "u", "ack_policy": "explicit", "deliver_subject": "{s}-dl"}


@pytest.mark.parametrize(
    ("base", "change", "description"),
    [
        (PULL_BASE, {"deliver_policy": "new"}, "deliver policy can not be updated"),
        (PULL_BASE, {"deliver_policy": "by_start_sequence", "opt_start_seq": 3},
         "deliver policy can not be updated"),
        (PULL_BASE, {"mem_storage": True}, "storage type can not be updated"),
        (PULL_BASE, {"ack_policy": "all"}, "ack policy can not be updated"),
        (PULL_BASE, {"replay_policy": "original"}, "replay policy can not be updated"),
        (PULL_BASE, {"max_waiting": 10}, "max waiting can not be updated"),
        (PULL_BASE, {"deliver_subject": "{s}-x"}, "can not update pull consumer to push based"),
        (PUSH_BASE, {"deliver_subject": ""}, "can not update push consumer to pull based"),
        (PUSH_BASE, {"idle_heartbeat": SECOND}, "heart beats can not be updated"),
        (PUSH_BASE, {"idle_heartbeat": SECOND, "flow_control": True},
         "heart beats can not be updated"),
        (PUSH_BASE, {"mem_storage": True}, "storage type can not be updated"),
    ],
    ids=["deliver-policy", "start-seq", "mem-storage", "ack-policy", "replay", "max-waiting",
         "pull-to-push", "push-to-pull", "heartbeat", "flow-control", "push-mem-storage"],
)
def test_update_immutable(raw, stream, base, change, description):
    base = {k: v.format(s=stream) if isinstance(v, str) else v for k, v in base.items()}
    change = {k: v.format(s=stream) if isinstance(v, str) else v for k, v in change.items()}
    assert "error" not in consumer_create(raw, stream, "u", base)
    assert consumer_create(raw, stream, "u", base | change) == error(500, 10012, description)
    assert consumer_create(raw, stream, "u", base | change, "update") == error(
        500, 10012, description)


def test_update_mutable(raw, stream):
    consumer_create(raw, stream, "u", PULL_BASE)
    for change in [
        {"description": "d"},
        {"ack_wait": 5 * SECOND},
        {"max_deliver": 5},
        {"max_deliver": 5, "backoff": [SECOND, 2 * SECOND]},
        {"max_ack_pending": 7},
        {"headers_only": True},
        {"max_batch": 3, "max_expires": 2 * SECOND, "max_bytes": 1000},
        {"inactive_threshold": 9 * SECOND},
        {"sample_freq": "50%"},
        {"num_replicas": 1},
        {"metadata": {"k": "v"}},
        {"filter_subjects": [f"{stream}.a", f"{stream}.b"]},
    ]:
        resp = consumer_create(raw, stream, "u", PULL_BASE | change, "update")
        config = config_of(resp)
        for key, value in change.items():
            expected = value[0] if key == "backoff" else value
            assert config["ack_wait" if key == "backoff" else key] == expected, (change, config)
    resp = consumer_create(raw, stream, "u", PULL_BASE | {"max_deliver": 2,
                                                         "backoff": [1, 2, 3]})
    assert resp == error(400, 10116, "max deliver is required to be > length of backoff values")

    push = {"durable_name": "p", "ack_policy": "explicit", "deliver_subject": f"{stream}-p1"}
    consumer_create(raw, stream, "p", push)
    for change in [{"deliver_subject": f"{stream}-p2"}, {"deliver_group": "g"},
                   {"rate_limit_bps": 1000}]:
        config = config_of(consumer_create(raw, stream, "p", push | change))
        assert {k: config.get(k) for k in change} == change


# -- num_replicas, mem_storage -------------------------------------------------------------------


def test_consumer_replicas_on_one_server(raw, stream, uniq):
    resp = consumer_create(raw, stream, "r1", {"num_replicas": 1})
    assert config_of(resp)["num_replicas"] == 1
    resp = consumer_create(raw, stream, "r0", {})
    assert config_of(resp)["num_replicas"] == 0
    unsupported = error(500, 10074, "replicas > 1 not supported in non-clustered mode")
    assert consumer_create(raw, stream, "r2", {"num_replicas": 2}) == unsupported
    # Refused before the stream is even looked up.
    assert consumer_create(raw, f"{uniq}NONE", "r3", {"num_replicas": 3}) == unsupported
    assert consumer_create(raw, stream, "rn", {"num_replicas": -1}) == error(
        400, 10133, "replicas count cannot be negative")
    durable = {"durable_name": "rd", "num_replicas": 1}
    consumer_create(raw, stream, "rd", durable)
    assert consumer_create(raw, stream, "rd", durable | {"num_replicas": 3}) == unsupported
    interest = f"{uniq}I"
    raw.add_stream(interest, retention="interest")
    resp = consumer_create(raw, interest, "i", {"num_replicas": 1})
    assert config_of(resp)["num_replicas"] == 1


def test_mem_storage_consumers(raw, stream, uniq):
    resp = consumer_create(raw, stream, "m", {"durable_name": "m", "mem_storage": True})
    assert config_of(resp)["mem_storage"] is True
    resp = consumer_create(raw, stream, "me", {"mem_storage": True, "ack_policy": "explicit"})
    assert config_of(resp)["mem_storage"] is True and resp["num_pending"] == 4
    memory = f"{uniq}M"
    raw.add_stream(memory, storage="memory")
    resp = consumer_create(raw, memory, "m", {"durable_name": "m", "mem_storage": True})
    assert config_of(resp)["mem_storage"] is True
    resp = consumer_create(raw, memory, "f", {"durable_name": "f", "mem_storage": False})
    assert "mem_storage" not in config_of(resp)
    # mem_storage is part of what "create" compares, and can not be updated.
    assert consumer_create(raw, stream, "m", {"durable_name": "m"}, "create") == error(
        400, 10148, "consumer already exists")
    assert consumer_create(raw, stream, "m", {"durable_name": "m"}) == error(
        500, 10012, "storage type can not be updated")


# -- the stream's consumer_limits ----------------------------------------------------------------


LIMITS = {"inactive_threshold": 10 * SECOND, "max_ack_pending": 50}


@pytest.fixture
def limited(raw, uniq) -> str:
    resp = raw.add_stream(uniq, [f"{uniq}.>"], consumer_limits=LIMITS)
    assert resp["config"]["consumer_limits"] == LIMITS
    return uniq


def test_consumer_limits_are_the_defaults(raw, limited):
    def created(name, config):
        return config_of(consumer_create(raw, limited, name, config))

    config = created("c1", {"ack_policy": "explicit"})
    assert (config["max_ack_pending"], config["inactive_threshold"]) == (50, 10 * SECOND)
    # Also with ack none (where the 1000 default does not apply), and for durables.
    config = created("c2", {})
    assert (config["max_ack_pending"], config["inactive_threshold"]) == (50, 10 * SECOND)
    config = created("c3", {"durable_name": "c3", "ack_policy": "explicit"})
    assert (config["max_ack_pending"], config["inactive_threshold"]) == (50, 10 * SECOND)
    config = created("c4", {"deliver_subject": f"{limited}-d4", "ack_policy": "explicit"})
    assert config["max_ack_pending"] == 50
    # A push consumer with ack none inherits max_ack_pending, which it may not have.
    assert consumer_create(raw, limited, "c5", {"deliver_subject": f"{limited}-d5"}) == error(
        400, 10082, "consumer requires ack policy for max ack pending")
    # Values below the limits, and -1 (no limit), are taken as asked.
    config = created("c6", {"ack_policy": "explicit", "max_ack_pending": 50,
                            "inactive_threshold": SECOND})
    assert (config["max_ack_pending"], config["inactive_threshold"]) == (50, SECOND)
    assert created("c7", {"ack_policy": "explicit", "max_ack_pending": -1})[
        "max_ack_pending"] == -1


def test_consumer_limits_are_caps(raw, limited):
    mack = error(400, 10121, "consumer max ack pending exceeds system limit of 50")
    threshold = error(400, 10153, "consumer inactive threshold exceeds system limit of 10s")
    assert consumer_create(raw, limited, "c1", {"ack_policy": "explicit",
                                                "max_ack_pending": 51}) == mack
    assert consumer_create(raw, limited, "c2", {"inactive_threshold": 10 * SECOND + 1}) == \
        threshold
    durable = {"durable_name": "d", "ack_policy": "explicit"}
    consumer_create(raw, limited, "d", durable)
    assert consumer_create(raw, limited, "d", durable | {"max_ack_pending": 60}) == mack
    assert consumer_create(raw, limited, "d", durable | {"inactive_threshold": 20 * SECOND}) == \
        threshold


def test_consumer_limits_one_at_a_time(raw, uniq):
    only_pending = f"{uniq}P"
    raw.add_stream(only_pending, consumer_limits={"max_ack_pending": 5})
    config = config_of(consumer_create(raw, only_pending, "e", {"ack_policy": "explicit"}))
    assert (config["max_ack_pending"], config["inactive_threshold"]) == (5, 5 * SECOND)
    config = config_of(consumer_create(raw, only_pending, "d", {"durable_name": "d"}))
    assert config["max_ack_pending"] == 5 and "inactive_threshold" not in config

    only_threshold = f"{uniq}T"
    raw.add_stream(only_threshold, consumer_limits={"inactive_threshold": 90 * SECOND})
    config = config_of(consumer_create(raw, only_threshold, "e", {}))
    assert config["inactive_threshold"] == 90 * SECOND and "max_ack_pending" not in config
    config = config_of(consumer_create(raw, only_threshold, "d", {"durable_name": "d"}))
    assert config["inactive_threshold"] == 90 * SECOND
    assert consumer_create(raw, only_threshold, "x", {"inactive_threshold": 100 * SECOND}) == \
        error(400, 10153, "consumer inactive threshold exceeds system limit of 1m30s")


def test_negative_threshold_and_ack_pending(raw, stream, uniq):
    # An ephemeral always gets a threshold; max_ack_pending below -1 means -1.
    config = config_of(consumer_create(raw, stream, "e", {"inactive_threshold": -1}))
    assert config["inactive_threshold"] == 5 * SECOND
    config = config_of(consumer_create(raw, stream, "m", {"ack_policy": "explicit",
                                                                "max_ack_pending": -5}))
    assert config["max_ack_pending"] == -1
    limited = f"{uniq}L"
    raw.add_stream(limited, consumer_limits=LIMITS)
    config = config_of(consumer_create(raw, limited, "e", {"inactive_threshold": -1}))
    assert config["inactive_threshold"] == 10 * SECOND


# -- the stream's first_seq and discard_new_per_subject -------------------------------------------


def test_first_seq(raw, uniq):
    resp = raw.add_stream(uniq, first_seq=100)
    assert resp["config"]["first_seq"] == 100
    assert {k: resp["state"][k] for k in ("messages", "first_seq", "last_seq")} == {
        "messages": 0, "first_seq": 100, "last_seq": 99}
    assert raw.pub(uniq, "x") == {"stream": uniq, "seq": 100}
    # An update may change or drop first_seq: it only matters for an empty new stream.
    resp = raw.api(f"STREAM.UPDATE.{uniq}", {"name": uniq, "first_seq": 5})
    assert resp["config"]["first_seq"] == 5 and resp["state"]["first_seq"] == 100
    resp = raw.api(f"STREAM.UPDATE.{uniq}", {"name": uniq})
    assert "first_seq" not in resp["config"] and resp["state"]["last_seq"] == 100
    raw.api(f"STREAM.PURGE.{uniq}")
    assert raw.pub(uniq, "y") == {"stream": uniq, "seq": 101}
    resp = raw.api(f"STREAM.CREATE.{uniq}", {"name": uniq, "first_seq": 2})
    assert resp == error(400, 10058, "stream name already in use with a different "
                                     "configuration", STREAM_CREATE)


def test_discard_new_per_subject(raw, uniq):
    def create(name, **cfg):
        return raw.api(f"STREAM.CREATE.{name}", {"name": name, "subjects": [f"{name}.>"], **cfg})

    assert create(f"{uniq}A", discard_new_per_subject=True, max_msgs_per_subject=1) == error(
        500, 10052, "discard new per subject requires discard new policy to be set",
        STREAM_CREATE)
    assert create(f"{uniq}B", discard_new_per_subject=True, discard="new") == error(
        500, 10052, "discard new per subject requires max msgs per subject > 0", STREAM_CREATE)
    per = f"{uniq}C"
    resp = create(per, discard_new_per_subject=True, discard="new", max_msgs_per_subject=1)
    assert resp["config"]["discard_new_per_subject"] is True
    assert raw.pub(f"{per}.a", "1") == {"stream": per, "seq": 1}
    assert raw.pub(f"{per}.a", "2") == {
        "error": {"code": 503, "err_code": 10077,
                  "description": "maximum messages per subject exceeded"},
        "stream": per, "seq": 0}
    assert raw.pub(f"{per}.b", "3") == {"stream": per, "seq": 2}
    # Without it, discard new does not apply per subject: the old message goes.
    plain = f"{uniq}D"
    resp = create(plain, discard="new", max_msgs_per_subject=1)
    assert "discard_new_per_subject" not in resp["config"]
    raw.pub(f"{plain}.a", "1")
    assert raw.pub(f"{plain}.a", "2") == {"stream": plain, "seq": 2}
    state = raw.stream_state(plain)
    assert (state["messages"], state["first_seq"]) == (1, 2)
    # The update rules are the create rules; it can be switched off and on.
    update = raw.api(f"STREAM.UPDATE.{per}", {"name": per, "subjects": [f"{per}.>"],
                                              "discard_new_per_subject": True,
                                              "max_msgs_per_subject": 1})
    assert update == error(500, 10052, "discard new per subject requires discard new policy "
                                       "to be set", STREAM_UPDATE)
    update = raw.api(f"STREAM.UPDATE.{per}", {"name": per, "subjects": [f"{per}.>"],
                                              "discard": "new", "max_msgs_per_subject": 1})
    assert "discard_new_per_subject" not in update["config"]
    update = raw.api(f"STREAM.UPDATE.{plain}", {"name": plain, "subjects": [f"{plain}.>"],
                                                "discard": "new", "max_msgs_per_subject": 1,
                                                "discard_new_per_subject": True})
    assert update["config"]["discard_new_per_subject"] is True
    assert raw.pub(f"{plain}.a", "3")["error"]["err_code"] == 10077


def test_stream_consumer_limits_are_typed_and_guard_their_consumers(raw, uniq):
    """`consumer_limits` takes its two fields only; lowering one below what a consumer has is
    refused, naming the consumer (500/10069)."""
    bad = raw.api(f"STREAM.CREATE.{uniq}X", {"name": f"{uniq}X", "subjects": [f"{uniq}x"],
                                             "consumer_limits": {"bogus": 1}})
    assert bad["error"]["err_code"] == 10025
    raw.add_stream(uniq, [f"{uniq}.>"])
    consumer_create(raw, uniq, "c1", {"durable_name": "c1", "ack_policy": "explicit",
                                      "max_ack_pending": 100})
    lowered = raw.api(f"STREAM.UPDATE.{uniq}", {
        "name": uniq, "subjects": [f"{uniq}.>"], "consumer_limits": {"max_ack_pending": 10}})
    assert lowered["error"] == {"code": 500, "err_code": 10069,
                                "description": "change to limits violates consumers: c1"}
    raised = raw.api(f"STREAM.UPDATE.{uniq}", {
        "name": uniq, "subjects": [f"{uniq}.>"], "consumer_limits": {"max_ack_pending": 500}})
    assert raised["config"]["consumer_limits"] == {"max_ack_pending": 500}


def test_a_start_sequence_below_the_first_message_starts_at_the_first(raw, uniq):
    raw.add_stream(uniq, [f"{uniq}.>"])
    for n in range(5):
        assert raw.pub(f"{uniq}.x", b"%d" % n)["seq"] == n + 1
    raw.api(f"STREAM.PURGE.{uniq}", {"seq": 4})  # 1..3 gone: the first is 4
    info = consumer_create(raw, uniq, "c", {"durable_name": "c", "ack_policy": "explicit",
                                            "deliver_policy": "by_start_sequence",
                                            "opt_start_seq": 2})
    assert info["delivered"]["stream_seq"] == 3 and info["num_pending"] == 2


def test_discard_new_per_subject_names_the_subjects_limit_first(raw, uniq):
    raw.add_stream(uniq, [f"{uniq}.>"], discard="new", max_msgs=2, max_msgs_per_subject=1,
                   discard_new_per_subject=True)
    assert raw.pub(f"{uniq}.a", b"1")["seq"] == 1
    assert raw.pub(f"{uniq}.b", b"2")["seq"] == 2
    # Both limits are full: the subject's is the one named.
    assert raw.pub(f"{uniq}.a", b"3")["error"]["description"] == \
        "maximum messages per subject exceeded"


# (`first_seq: 1` on an empty stream: nats-server reports first_seq 1, we report 0; not tested.)
@pytest.mark.parametrize(("first_seq", "state"), [(None, (0, 0)), (5, (5, 4))])
def test_first_seq_sets_an_empty_streams_first_sequence(raw, uniq, first_seq, state):
    extra = {} if first_seq is None else {"first_seq": first_seq}
    created = raw.add_stream(uniq, [f"{uniq}.>"], **extra)
    assert (created["state"]["first_seq"], created["state"]["last_seq"]) == state
    assert raw.pub(f"{uniq}.x", b"1")["seq"] == max(state[0], 1)
