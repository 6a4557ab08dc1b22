"""`config.load` / `config.from_mapping`: keys, aliases, validation, examples, and golden
comparisons against the reference nats-server (2.9.10, `nats-server -t` and its /varz)."""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from config import (
    KEYS,
    ConfigError,
    Options,
    Permissions,
    User,
    from_mapping,
    load,
    parse_duration,
    parse_size,
)

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
EXAMPLES = CONFIG_DIR / "examples"
NATS_SERVER = shutil.which("nats-server")
needs_nats_server = pytest.mark.skipif(
    NATS_SERVER is None,
    reason="nats-server is not installed (apt-get install nats-server): the golden comparison "
    "against the reference implementation cannot run",
)


def load_text(tmp_path: Path, text: str, name: str = "test.conf") -> Options:
    path = tmp_path / name
    path.write_text(text)
    return load(str(path))


def load_error(tmp_path: Path, text: str, name: str = "test.conf") -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_text(tmp_path, text, name)
    return caught.value


def attribute(options: Options, dotted: str) -> Any:
    value: Any = options
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def without_source(options: Options) -> Options:
    return dataclasses.replace(options, config_file="")


# --- the public helpers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("2m", 120.0),
        ("1h30m", 5400.0),
        ("500ms", 0.5),
        ("1.5s", 1.5),
        (".5s", 0.5),
        ("100us", 1e-4),
        ("100µs", 1e-4),
        ("10ns", 1e-8),
        ("0", 0.0),
        ("-2s", -2.0),
        ("+3m", 180.0),
        ("1h0m0.5s", 3600.5),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "s", "1x", "1h 30m", "1..5s", "-", "1.2.3s"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_parse_size() -> None:
    assert parse_size("1GB") == 1_073_741_824
    assert parse_size("1G") == 1_000_000_000
    assert parse_size("64mib") == 64 * 2**20
    assert parse_size(" 10k ") == 10_000
    assert parse_size(512) == 512
    for bad in ("1x", "GB", "", "1.5GB"):
        with pytest.raises(ValueError):
            parse_size(bad)
    with pytest.raises(ValueError):
        parse_size(True)  # type: ignore[arg-type]


def test_config_imports_nothing_from_the_rest_of_the_project() -> None:
    forbidden = {"broker", "raft", "storage"}
    for path in CONFIG_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in forbidden, f"{path.name} imports {name}"


# --- keys and aliases --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("listen: 127.0.0.1:4333", {"host": "127.0.0.1", "port": 4333}),
        ('listen: ":4333"', {"host": "0.0.0.0", "port": 4333}),
        ("listen: 4333", {"host": "0.0.0.0", "port": 4333}),
        ('listen: "[::1]:4333"', {"host": "::1", "port": 4333}),
        ("host: 10.0.0.1\nport: 5000", {"host": "10.0.0.1", "port": 5000}),
        ("net: 10.0.0.1", {"host": "10.0.0.1"}),
        ("port: -1", {"port": -1}),
        ("port: 0", {"port": 4222}),  # 0 is nats-server's "default"
        (
            "server_name: n1\nclient_advertise: 'x:1'",
            {"server_name": "n1", "client_advertise": "x:1"},
        ),
        ("http: 8222", {"http_host": "", "http_port": 8222}),
        ("http: 127.0.0.1:8300", {"http_host": "127.0.0.1", "http_port": 8300}),
        ("http_port: 8223", {"http_port": 8223}),
        ("monitor_port: 8224", {"http_port": 8224}),
        ('http_base_path: "nats/"', {"http_base_path": "/nats"}),
        ("max_payload: 2MB", {"max_payload": 2 * 2**20}),
        ("max_control_line: 8KB", {"max_control_line": 8192}),
        ("max_pending: 128MB", {"max_pending": 128 * 2**20}),
        ("max_connections: 10", {"max_connections": 10}),
        ("max_conn: 11", {"max_connections": 11}),
        ("max_subscriptions: 12", {"max_subscriptions": 12}),
        ("max_subs: 13", {"max_subscriptions": 13}),
        ("max_sub_tokens: 16", {"max_sub_tokens": 16}),
        ("max_subscription_tokens: 17", {"max_sub_tokens": 17}),
        ('ping_interval: "30s"', {"ping_interval": 30.0}),
        ("ping_interval: 45", {"ping_interval": 45.0}),  # bare number: seconds
        ("ping_interval: 1h30m", {"ping_interval": 5400.0}),  # a bare string is a string
        ("ping_max: 5", {"ping_max": 5}),
        ('write_deadline: "500ms"', {"write_deadline": 0.5}),
        ("write_deadline: 2.5", {"write_deadline": 2.5}),
        ('lame_duck_duration: "1m"', {"lame_duck_duration": 60.0}),
        ('lame_duck_grace_period: "3s"', {"lame_duck_grace_period": 3.0}),
        ("debug: true\ntrace: on\nlogtime: no", {"debug": True, "trace": True, "logtime": False}),
        ("trace_verbose: yes", {"trace_verbose": True, "trace": True}),
        ("logtime_utc: true", {"logtime_utc": True}),
        ("logfile: /var/log/n.log", {"log_file": "/var/log/n.log"}),
        ("log_file: /var/log/m.log", {"log_file": "/var/log/m.log"}),
        ("log_size_limit: 10MB", {"log_size_limit": 10 * 2**20}),
        ("logfile_size_limit: 1KB", {"log_size_limit": 1024}),
        ("pidfile: /run/n.pid", {"pid_file": "/run/n.pid"}),
        ("pid_file: /run/m.pid", {"pid_file": "/run/m.pid"}),
        ("ports_file_dir: /run", {"ports_file_dir": "/run"}),
        (
            "syslog: true\nremote_syslog: 'udp://h:514'",
            {"syslog": True, "remote_syslog": "udp://h:514"},
        ),
        ("server_tags: [az:1, Rack:2]", {"server_tags": ["az:1", "Rack:2"]}),
        ('server_tags: "a, b,,a"', {"server_tags": ["a", "b"]}),
        (
            "server_metadata { team: core, tier: gold }",
            {"server_metadata": {"team": "core", "tier": "gold"}},
        ),
        ("no_header_support: true", {"no_header_support": True}),
        ("disable_sublist_cache: true", {"disable_sublist_cache": True}),
        ("no_sublist_cache: true", {"disable_sublist_cache": True}),
        ("no_system_account: true", {}),
        ('store_dir: "/data"', {"jetstream.store_dir": "/data", "jetstream.enabled": False}),
        ('storedir: "/data"', {"jetstream.store_dir": "/data"}),
        ("PORT: 4999\nport: $PORT", {"port": 4999}),  # `PORT` is also the key port (case-folded)
        ("P: 4998\nport: $P", {"port": 4998}),  # a used variable is not an unknown key
    ],
)
def test_top_level_keys(tmp_path: Path, text: str, expected: Mapping[str, Any]) -> None:
    options = load_text(tmp_path, text)
    for dotted, value in expected.items():
        assert attribute(options, dotted) == value, dotted


def test_keys_are_case_insensitive(tmp_path: Path) -> None:
    options = load_text(tmp_path, "Max_Payload: 2MB\nCLUSTER { Name: c, PORT: 7000 }")
    assert (options.max_payload, options.cluster.name, options.cluster.port) == (
        2 * 2**20,
        "c",
        7000,
    )


def test_zero_means_default_as_in_nats_server(tmp_path: Path) -> None:
    text = (
        "max_payload: 0\nmax_control_line: 0\nmax_pending: 0\nmax_connections: 0\n"
        'ping_interval: "0s"\nping_max: 0\nwrite_deadline: "0s"\nlame_duck_duration: "0s"\n'
        'lame_duck_grace_period: "0s"\nauthorization { timeout: 0 }\n'
    )
    assert without_source(load_text(tmp_path, text)) == Options()


def test_an_empty_file_gives_the_defaults(tmp_path: Path) -> None:
    assert without_source(load_text(tmp_path, "# nothing\n")) == Options()


def test_keys_table_lists_every_documented_key() -> None:
    documented = [
        "listen",
        "host",
        "net",
        "port",
        "server_name",
        "client_advertise",
        "http",
        "http_port",
        "monitor_port",
        "http_base_path",
        "max_payload",
        "max_control_line",
        "max_pending",
        "max_connections",
        "max_conn",
        "max_subscriptions",
        "max_subs",
        "max_sub_tokens",
        "ping_interval",
        "write_deadline",
        "lame_duck_duration",
        "lame_duck_grace_period",
        "ping_max",
        "debug",
        "trace",
        "trace_verbose",
        "logtime",
        "logtime_utc",
        "logfile",
        "log_file",
        "log_size_limit",
        "pidfile",
        "pid_file",
        "ports_file_dir",
        "syslog",
        "remote_syslog",
        "authorization",
        "no_auth_user",
        "cluster",
        "jetstream",
        "store_dir",
        "server_tags",
        "server_metadata",
        "no_header_support",
        "disable_sublist_cache",
    ]
    assert sorted(set(documented) - set(KEYS)) == []


# --- authorization -----------------------------------------------------------------------------


def test_single_user_authorization(tmp_path: Path) -> None:
    options = load_text(tmp_path, 'authorization { user: a, password: "p w", timeout: "3s" }')
    assert (options.username, options.password, options.auth_timeout) == ("a", "p w", 3.0)


def test_token_authorization(tmp_path: Path) -> None:
    options = load_text(tmp_path, "authorization { token: s3cret, timeout: 0.5 }")
    assert (options.authorization, options.auth_timeout) == ("s3cret", 0.5)


def test_users_with_permissions(tmp_path: Path) -> None:
    text = """
    authorization {
      default_permissions: { subscribe: "_INBOX.>" }
      users: [
        { user: a, password: pa }
        { username: b, pass: pb, permissions: {
            publish: { allow: ["orders.>", "x"], deny: "orders.secret" }
            subscribe: { deny: ["admin.>"] }
        } }
        { user: c, permission: { pub: "a.*", sub: ["b.>", "c.d workers"], allow_responses: true } }
        { user: d, authorization: { publish: [], allow_responses: { max: 5, expires: "1m" } } }
      ]
    }
    no_auth_user: a
    """
    options = load_text(tmp_path, text)
    inbox = Permissions(subscribe_allow=["_INBOX.>"])
    assert options.users == [
        User("a", "pa", inbox),
        User(
            "b",
            "pb",
            Permissions(
                publish_allow=["orders.>", "x"],
                publish_deny=["orders.secret"],
                subscribe_deny=["admin.>"],
            ),
        ),
        User(
            "c",
            "",
            Permissions(
                publish_allow=["a.*"], subscribe_allow=["b.>", "c.d workers"], allow_responses=True
            ),
        ),
        User(
            "d",
            "",
            Permissions(
                allow_responses=True, allow_responses_max_msgs=5, allow_responses_expires=60.0
            ),
        ),
    ]
    assert options.no_auth_user == "a"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("authorization { user: a, token: t }", "Cannot have a user/pass and token"),
        ("authorization { user: a, users: [{user: b}] }", "single user/pass and a users array"),
        ("authorization { token: t, users: [] }", "token and a users array"),
        ("authorization { users: [{user: a}, {user: a}] }", 'Duplicate user "a"'),
        ("authorization { users: [{password: x}] }", "User entry requires a user"),
        ("authorization { users: [a] }", "expected a user entry"),
        ("authorization { users: {user: a} }", "expected an array"),
        (
            "authorization { users: [{user: a, permissions: {publish: 'a..b'}}] }",
            "not a valid subject",
        ),
        (
            "authorization { users: [{user: a, permissions: {publish: 'a b'}}] }",
            "not a valid subject",
        ),
        ("authorization { users: [{user: a, permissions: {subscribe: 'a b c'}}] }", "not a valid"),
        (
            "authorization { users: [{user: a, permissions: {publish: {allow: 1}}}] }",
            "expected a string or an array",
        ),
        (
            "authorization { users: [{user: a, permissions: {publish: {only: x}}}] }",
            "only 'allow' or 'deny'",
        ),
        (
            "authorization { users: [{user: a, permissions: {allow_responses: 1}}] }",
            "expected a boolean",
        ),
        ("authorization { users: [{user: a, permissions: 'x'}] }", "expected a block"),
        ("authorization { timeout: -1 }", "must not be negative"),
        ("authorization { timeout: yes }", "expected a duration"),
        ("authorization: true", "expected a block"),
        ("no_auth_user: bob", '"bob" present, but users are not defined'),
        ("authorization { users: [{user: a}] }\nno_auth_user: bob", '"bob" not present as user'),
    ],
)
def test_authorization_errors(tmp_path: Path, text: str, fragment: str) -> None:
    assert fragment in str(load_error(tmp_path, text))


def test_no_auth_user_error_points_at_its_line(tmp_path: Path) -> None:
    error = load_error(tmp_path, "authorization { users: [{user: a}] }\n\n  no_auth_user: bob\n")
    assert (error.line, error.column, error.key) == (3, 3, "no_auth_user")


# --- cluster -----------------------------------------------------------------------------------


def test_cluster_block(tmp_path: Path) -> None:
    text = """
    cluster {
      name: east
      listen: 10.0.0.1:6333
      routes: [
        nats-route://a:6222
        nats://user:pw@b:6222
      ]
      cluster_advertise: "east-1:6333"
      no_advertise: true
      connect_retries: 10
      pool_size: 5
      compression: s2_best
      authorization { user: route, password: pw, timeout: 5 }
    }
    """
    cluster = load_text(tmp_path, text).cluster
    assert dataclasses.asdict(cluster) == {
        "name": "east",
        "host": "10.0.0.1",
        "port": 6333,
        "routes": ["nats-route://a:6222", "nats://user:pw@b:6222"],
        "advertise": "east-1:6333",
        "no_advertise": True,
        "connect_retries": 10,
        "user": "route",
        "password": "pw",
        "token": "",
        "auth_timeout": 5.0,
        "pool_size": 5,
        "tls": None,
        "compression": "s2_best",
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cluster { host: 10.1.1.1, port: 7000 }", {"host": "10.1.1.1", "port": 7000}),
        ("cluster { net: 10.1.1.2 }", {"host": "10.1.1.2"}),
        ("cluster { listen: 7001 }", {"host": "0.0.0.0", "port": 7001}),
        ("cluster { advertise: 'x:1' }", {"advertise": "x:1"}),
        ("cluster { compression: true }", {"compression": "s2_fast"}),
        ("cluster { compression: off }", {"compression": "off"}),
        ("cluster { compression: { mode: s2_auto } }", {"compression": "s2_auto"}),
        ("cluster { pool_size: -1 }", {"pool_size": -1}),
    ],
)
def test_cluster_keys(tmp_path: Path, text: str, expected: Mapping[str, Any]) -> None:
    cluster = load_text(tmp_path, text).cluster
    for name, value in expected.items():
        assert getattr(cluster, name) == value


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("cluster { routes: 'nats-route://a:6222' }", "expected an array"),
        ("cluster { routes: [nats-route://a:6222, nats-route://a:6222] }", "Duplicate route"),
        ("cluster { routes: [just-a-host] }", "expected scheme://host:port"),
        ("cluster { routes: ['nats-route://a'] }", "expected scheme://host:port"),
        ("cluster { routes: ['nats-route://a:99999'] }", "error parsing route url"),
        ("cluster { authorization { token: t } }", "does not support tokens"),
        ("cluster { authorization { users: [] } }", "does not allow multiple users"),
        ("cluster { name: 'a b' }", "cluster name cannot contain spaces"),
        ("cluster { compression: fastest }", "invalid compression mode"),
        ("cluster { connect_retries: -1 }", "out of range"),
        ("cluster: 6222", "expected a block"),
        ("cluster { listen: 'x' }", "could not parse address"),
    ],
)
def test_cluster_errors(tmp_path: Path, text: str, fragment: str) -> None:
    assert fragment in str(load_error(tmp_path, text))


# --- jetstream ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "enabled"),
    [
        ("jetstream: true", True),
        ("jetstream: yes", True),
        ("jetstream: enabled", True),
        ("jetstream: Enable", True),
        ("jetstream: false", False),
        ("jetstream: disabled", False),
        ("jetstream: {}", True),
        ("jetstream { max_mem: 1G }", True),
        ("jetstream { enabled: false, max_mem: 1G }", False),
        ("jetstream { enable: true }", True),
        ("", False),
    ],
)
def test_jetstream_enablement(tmp_path: Path, text: str, enabled: bool) -> None:
    assert load_text(tmp_path, text).jetstream.enabled is enabled


@pytest.mark.parametrize(
    ("text", "memory", "file"),
    [
        ("jetstream { max_memory_store: 1GB, max_file_store: 10GB }", 2**30, 10 * 2**30),
        ("jetstream { max_mem_store: 1G, max_file: 1T }", 10**9, 10**12),
        ("jetstream { max_mem: 512MiB }", 512 * 2**20, -1),
        # nats-server's quirk: a *string* size ends in K, M, G or T and is a power of two.
        ('jetstream { max_mem: "1G", max_file: "2T" }', 2**30, 2 * 2**40),
        ('jetstream { max_mem: "10K", max_file: "" }', 10 * 1024, 0),
        ("jetstream { max_mem: -1 }", -1, -1),
    ],
)
def test_jetstream_store_sizes(tmp_path: Path, text: str, memory: int, file: int) -> None:
    js = load_text(tmp_path, text).jetstream
    assert (js.max_memory_store, js.max_file_store) == (memory, file)


def test_jetstream_block(tmp_path: Path) -> None:
    text = """
    jetstream {
      store: "/var/lib/nats"
      domain: hub
      sync_interval: "30s"
      strict: true
      unique_tag: " AZ "
      limits { max_ack_pending: 1000, max_ha_assets: 10, max_request_batch: 256,
               duplicate_window: "1m" }
    }
    """
    js = load_text(tmp_path, text).jetstream
    assert dataclasses.asdict(js) == {
        "enabled": True,
        "store_dir": "/var/lib/nats",
        "max_memory_store": -1,
        "max_file_store": -1,
        "domain": "hub",
        "sync_interval": 30.0,
        "strict": True,
        "unique_tag": "az",
        "max_ack_pending": 1000,
        "max_ha_assets": 10,
        "max_request_batch": 256,
        "duplicate_window": 60.0,
    }


@pytest.mark.parametrize(
    ("text", "interval"),
    [
        ("jetstream { sync: always }", None),
        ("jetstream { sync_interval: ALWAYS }", None),
        ('jetstream { sync: "2m" }', 120.0),
        ("jetstream { sync_interval: 10 }", 10.0),
        ("jetstream {}", None),  # default: fsync before every ack
    ],
)
def test_jetstream_sync_interval(tmp_path: Path, text: str, interval: float | None) -> None:
    assert load_text(tmp_path, text).jetstream.sync_interval == interval


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("jetstream: maybe", "Expected 'enabled' or 'disabled'"),
        ("jetstream: 1", "expected a block"),
        ('jetstream { max_mem: "1GB" }', "invalid syntax"),
        ('jetstream { max_mem: "1g" }', "must end in K, M, G, T"),
        ("jetstream { max_file: true }", "expected a size"),
        ("jetstream { max_file: -2 }", "out of range"),
        ('jetstream { sync: "0s" }', "positive duration"),
        ("jetstream { sync: sometimes }", "error parsing sync"),
        ("jetstream { domain: 'a.b' }", "invalid domain name"),
        ("jetstream { limits { max_ack_pending: x } }", "expected an integer"),
        ("jetstream { limits: 5 }", "expected a block"),
        ('jetstream { store_dir: "/a" }\nstore_dir: "/b"', "Duplicate 'store_dir'"),
        ('store_dir: "/b"\njetstream { store: "/a" }', "Duplicate 'store_dir'"),
        ("jetstream: enabled\ncluster { name: c, port: 6222 }", "requires `server_name`"),
        ("server_name: s\njetstream: enabled\ncluster { port: 6222 }", "requires `cluster.name`"),
    ],
)
def test_jetstream_errors(tmp_path: Path, text: str, fragment: str) -> None:
    assert fragment in str(load_error(tmp_path, text))


# --- refusals: unknown keys, unsupported features, types, ranges ----------------------------


def test_unknown_top_level_key_names_file_line_column_and_key(tmp_path: Path) -> None:
    error = load_error(tmp_path, "port: 4222\n\n  foo: 1\n")
    path = str(tmp_path / "test.conf")
    assert (error.file, error.line, error.column, error.key) == (path, 3, 3, "foo")
    assert str(error) == f'{path}:3:3: unknown field "foo"'


def test_unknown_nested_key(tmp_path: Path) -> None:
    error = load_error(tmp_path, "cluster {\n  name: c\n  rotues: []\n}\n")
    assert (error.line, error.column, error.key) == (3, 3, "cluster.rotues")
    assert str(error).endswith('unknown field "rotues"')


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("authorization { users: [{user: a, pasword: x}] }", "authorization.users[0].pasword"),
        (
            "authorization { users: [{user: a, permissions: {publsh: x}}] }",
            "authorization.users[0].permissions.publsh",
        ),
        ("jetstream { limits { max_acks: 1 } }", "jetstream.limits.max_acks"),
        ("jetstream { max_memory: 1G }", "jetstream.max_memory"),
        ("authorization { tokn: x }", "authorization.tokn"),
    ],
)
def test_unknown_keys_everywhere(tmp_path: Path, text: str, key: str) -> None:
    error = load_error(tmp_path, text)
    assert error.key == key
    assert f'unknown field "{key.rsplit(".", 1)[-1]}"' in str(error)


def test_unused_variable_is_an_unknown_key(tmp_path: Path) -> None:
    assert 'unknown field "MY_VAR"' in str(load_error(tmp_path, "MY_VAR: 1\nport: 2"))


def test_variable_used_inside_a_block_is_not_an_unknown_key(tmp_path: Path) -> None:
    options = load_text(tmp_path, "cluster { R: 'nats-route://a:1', routes: [$R], name: c }")
    assert options.cluster.routes == ["nats-route://a:1"]


@pytest.mark.parametrize(
    "key",
    [
        "tls { pinned_certs: [abc] }",
        "tls { curve_preferences: [CurveP256] }",
        "allow_non_tls: true",
        "leafnodes { port: 7422 }",
        "leaf { port: 7422 }",
        "gateway { name: g }",
        "websocket { port: 443, jwt_cookie: x }",
        "ws { port: 443, authorization { user: a } }",
        "mqtt { port: 1883 }",
        "accounts { A { mappings { a: b } } }",
        "resolver: URL(http://localhost:9090/jwt/v1/accounts/)",
        "resolver { type: full, dir: './jwt' }",
        "trusted_keys: [OABC]",
        "default_js_domain { A: hub }",
        "mappings { a: b }",
        "cluster { tls { pinned_certs: [] } }",
        "cluster { permissions { } }",
        "jetstream { cipher: aes }",
        "jetstream { key: s3cret }",
        "authorization { auth_callout { } }",
    ],
)
def test_known_but_unsupported_keys_are_refused_by_name(tmp_path: Path, key: str) -> None:
    error = load_error(tmp_path, f"port: 4222\n{key}\n")
    assert error.line == 2
    name = error.key.rsplit(".", 1)[-1].split("[")[0]
    assert f"{name} is not supported by this server" in str(error)


NKEY = "UDQ3X6SNOKLWSIEHS7GIGM5AKHZMYSVK7ZJM7HJEYXXC6K4ZNN4Y6POQ"


def test_nkey_users(tmp_path: Path) -> None:
    options = load_text(tmp_path, f"""
        authorization {{ users: [ {{nkey: {NKEY}, permissions: {{publish: "a.>"}}}},
                                  {{user: bob, password: pw}} ] }}
        no_auth_user: {NKEY}""")
    assert [(u.user, u.nkey) for u in options.users] == [("", NKEY), ("bob", "")]
    assert options.users[0].permissions is not None


@pytest.mark.parametrize(("entry", "fragment"), [
    ("{nkey: UABC}", "Not a valid public nkey for a user"),
    (f"{{nkey: {NKEY[:-1]}A}}", "Not a valid public nkey for a user"),
    (f"{{nkey: {NKEY}, password: x}}", "Nkey users do not take usernames or passwords"),
    (f"{{nkey: {NKEY}}}, {{nkey: {NKEY}}}", f'Duplicate nkey "{NKEY}" detected'),
])
def test_bad_nkey_users_are_refused(tmp_path: Path, entry: str, fragment: str) -> None:
    error = load_error(tmp_path, f"port: 1\nauthorization {{ users: [{entry}] }}\n")
    assert error.line == 2 and fragment in str(error), str(error)


def test_tls_block(tmp_path: Path) -> None:
    for name in ("server.pem", "server-key.pem", "ca.pem"):
        (tmp_path / name).write_text("PEM")
    options = load_text(tmp_path, f"""
        tls {{
          cert_file: "{tmp_path}/server.pem"
          key_file: "{tmp_path}/server-key.pem"
          ca_file: "{tmp_path}/ca.pem"
          verify: true
          timeout: "500ms"
          handshake_first: true
          min_version: "1.3"
        }}""")
    assert options.tls is not None
    assert (options.tls.cert_file, options.tls.ca_file) == (f"{tmp_path}/server.pem",
                                                           f"{tmp_path}/ca.pem")
    assert (options.tls.verify, options.tls.timeout, options.tls.handshake_first,
            options.tls.min_version) == (True, 0.5, True, "1.3")
    assert load_text(tmp_path, "port: 4222").tls is None
    mapped = load_text(tmp_path, f"""
        tls {{
          cert_file: "{tmp_path}/server.pem", key_file: "{tmp_path}/server-key.pem"
          verify_and_map: true
          cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_AES_128_GCM_SHA256]
        }}""").tls
    assert mapped is not None and mapped.verify and mapped.verify_and_map  # map implies verify
    assert mapped.cipher_suites == ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                                    "TLS_AES_128_GCM_SHA256"]


@pytest.mark.parametrize(("text", "fragment"), [
    ('tls { cert_file: "{d}/c.pem" }', "missing 'key_file' in TLS configuration"),
    ('tls { cert_file: "{d}/nope.pem", key_file: "{d}/c.pem" }',
     "error opening cert_file"),
    ('tls { cert_file: "{d}/c.pem", key_file: "{d}/c.pem", min_version: "1.0" }',
     "unsupported TLS version"),
    ('tls { cert_file: "{d}/c.pem", key_file: "{d}/c.pem", handshake_first: "300ms" }',
     "handshake_first '300ms' is not supported"),
    ('tls { cert_file: "{d}/c.pem", key_file: "{d}/c.pem", timeout: [1] }',
     "'timeout' wrong type"),
    ('tls { cert_file: "{d}/c.pem", key_file: "{d}/c.pem", cipher_suites: [] }',
     "'cipher_suites' cannot be empty"),
    ('tls { cert_file: "{d}/c.pem", key_file: "{d}/c.pem", cipher_suites: [NOPE] }',
     "unrecognized cipher NOPE"),
    ('tls { cert_file: "{d}/c.pem", key_file: "{d}/c.pem", '
     'cipher_suites: [TLS_RSA_WITH_RC4_128_SHA] }', "is not supported by this server"),
    ('cluster { tls { cert_file: "{d}/c.pem", key_file: "{d}/c.pem", verify_and_map: true } }',
     "verify_and_map is not supported by this server in this block"),
])
def test_bad_tls_blocks_are_refused_with_their_line(tmp_path: Path, text: str,
                                                    fragment: str) -> None:
    (tmp_path / "c.pem").write_text("PEM")
    error = load_error(tmp_path, "port: 4222\n" + text.replace("{d}", str(tmp_path)) + "\n")
    assert error.line == 2 and fragment in str(error), str(error)


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        ('port: "4222"', "port", "expected an integer, got the string '4222'"),
        ("port: 1.5", "port", "expected an integer"),
        ("port: true", "port", "expected an integer"),
        ("port: 70000", "port", "out of range"),
        ("port: -2", "port", "out of range"),
        ("server_name: 42", "server_name", "expected a string"),
        ("server_name: 'a b'", "server_name", "cannot contain spaces"),
        ("debug: 1", "debug", "expected a boolean"),
        ('debug: "true"', "debug", "expected a boolean"),
        ("listen: true", "listen", 'expected a port or "host:port"'),
        ("listen: 'localhost'", "listen", "could not parse address"),
        ("listen: 'h:x'", "listen", "could not parse port"),
        ("listen: '::1:4222'", "listen", "could not parse address"),
        ("http: 'h:99999'", "http", "out of range"),
        ("max_payload: 3GB", "max_payload", "too big"),
        ("max_payload: -1", "max_payload", "out of range"),
        ('max_payload: "1MB"', "max_payload", "expected an integer"),
        ("max_control_line: 3GB", "max_control_line", "too big"),
        ("max_sub_tokens: 0", "max_sub_tokens", "can not be negative"),
        ("max_sub_tokens: 256", "max_sub_tokens", "too big"),
        ("max_connections: -5", "max_connections", "out of range"),
        ("ping_interval: 2m", "ping_interval", 'write "2m" in quotes'),
        ('ping_interval: "2x"', "ping_interval", 'unknown unit "x"'),
        ('ping_interval: "-1s"', "ping_interval", "must not be negative"),
        ("ping_interval: true", "ping_interval", "expected a duration"),
        ("ping_max: -1", "ping_max", "out of range"),
        ('write_deadline: "soon"', "write_deadline", "error parsing write_deadline"),
        ('lame_duck_duration: "10s"', "lame_duck_duration", "minimum is 30 seconds"),
        ('lame_duck_grace_period: "-1s"', "lame_duck_grace_period", "must not be negative"),
        ("log_size_limit: -1", "log_size_limit", "out of range"),
        ("server_tags: 5", "server_tags", "expected a string or an array of strings"),
        ("server_tags: [a, 5]", "server_tags[1]", "expected a string"),
        ("server_metadata: [a]", "server_metadata", "expected a block"),
        ("server_metadata { a: 1 }", "server_metadata.a", "expected a string"),
        ("max_pending: 1KB", "max_pending", "cannot be higher than max_pending"),
        ("max_payload: 2MB\nmax_pending: 1MB", "max_payload", "cannot be higher than max_pending"),
    ],
)
def test_bad_values(tmp_path: Path, text: str, key: str, fragment: str) -> None:
    error = load_error(tmp_path, text)
    assert error.key == key
    assert fragment in str(error)
    assert str(error).startswith(f"{tmp_path / 'test.conf'}:{error.line}:{error.column}: {key}: ")


def test_value_error_points_at_the_nested_key(tmp_path: Path) -> None:
    error = load_error(
        tmp_path, "cluster {\n  name: c\n  routes: [\n    'nats-route://a:1'\n    7\n  ]\n}"
    )
    assert (error.line, error.column, error.key) == (5, 5, "cluster.routes[1]")


def test_value_from_environment_is_checked_at_the_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CFG_PORT", "not-a-port")
    error = load_error(tmp_path, "debug: true\nport: $CFG_PORT\n")
    assert (error.line, error.key) == (2, "port")
    assert "expected an integer, got the string 'not-a-port'" in str(error)


def test_variables_from_block_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CFG_NAME", "node-7")
    monkeypatch.setenv("CFG_MAX", "8MB")
    text = "LIMIT: 2MB\nmax_payload: $LIMIT\nmax_pending: $CFG_MAX\nserver_name: $CFG_NAME\n"
    options = load_text(tmp_path, text)
    assert (options.max_payload, options.max_pending, options.server_name) == (
        2 * 2**20,
        8 * 2**20,
        "node-7",
    )


# --- load(), from_mapping(), YAML --------------------------------------------------------------


def test_load_picks_the_reader_by_extension(tmp_path: Path) -> None:
    yaml_only = "cluster:\n  name: c\n  port: 7000\n"
    for name in ("a.yaml", "b.yml", "c.YAML"):
        options = load_text(tmp_path, yaml_only, name)
        assert (options.cluster.name, options.cluster.port) == ("c", 7000)
        assert options.config_file == str(tmp_path / name)
    # The nats.conf reader wants `cluster {` or `cluster: {`, not YAML's indentation.
    assert "expected a value" in str(load_error(tmp_path, yaml_only, "d.conf"))


def test_yaml_errors_name_file_line_and_key(tmp_path: Path) -> None:
    error = load_error(tmp_path, "port: 4222\ncluster:\n  name: c\n  prot: 1\n", "e.yaml")
    assert (error.file, error.line, error.column, error.key) == (
        str(tmp_path / "e.yaml"),
        4,
        3,
        "cluster.prot",
    )
    error = load_error(tmp_path, "max_payload: 3GB\n", "f.yaml")
    assert (error.line, error.key) == (1, "max_payload")
    assert "got nothing" in str(load_error(tmp_path, "server_name:\n", "g.yaml"))
    assert "got a date" in str(load_error(tmp_path, "server_name: 2024-01-02\n", "h.yaml"))


def test_yaml_and_conf_spell_the_same_options(tmp_path: Path) -> None:
    conf = """
    server_name: twin
    listen: 127.0.0.1:4333
    max_payload: 2MB
    ping_interval: "1m"
    debug: yes
    server_tags: [a, b]
    authorization { users: [ { user: u, password: p, permissions: { publish: "x.>" } } ] }
    jetstream { max_mem: 1G, max_file: "1G", sync: always }
    cluster { name: c, listen: 0.0.0.0:6333, routes: [nats-route://a:6333] }
    """
    yaml_text = """
    server_name: twin
    listen: 127.0.0.1:4333
    max_payload: 2MB
    ping_interval: "1m"
    debug: yes
    server_tags: [a, b]
    authorization: { users: [ { user: u, password: p, permissions: { publish: "x.>" } } ] }
    jetstream: { max_mem: 1G, max_file: "1G", sync: always }
    cluster: { name: c, listen: 0.0.0.0:6333, routes: [ "nats-route://a:6333" ] }
    """
    from_conf = without_source(load_text(tmp_path, conf))
    from_yaml = without_source(load_text(tmp_path, yaml_text.replace("\n    ", "\n"), "t.yaml"))
    assert from_conf == from_yaml
    assert from_conf.jetstream.max_memory_store == 10**9
    assert from_conf.jetstream.max_file_store == 2**30


def test_from_mapping_plain_data() -> None:
    options = from_mapping(
        {
            "port": 4333,
            "jetstream": {"store_dir": "/d", "max_mem": 1024},
            "cluster": {"name": "c", "routes": ["nats-route://a:1"]},
            "authorization": {"users": [{"user": "a", "password": "b"}]},
        },
        "flags",
    )
    assert options.port == 4333
    assert (options.jetstream.enabled, options.jetstream.max_memory_store) == (True, 1024)
    assert options.cluster.routes == ["nats-route://a:1"]
    assert options.users == [User("a", "b")]


def test_from_mapping_errors_name_the_source_and_key() -> None:
    with pytest.raises(ConfigError) as caught:
        from_mapping({"cluster": {"port": "x"}}, "env:NATS_CONFIG")
    error = caught.value
    assert (error.file, error.line, error.key) == ("env:NATS_CONFIG", 0, "cluster.port")
    assert str(error) == "env:NATS_CONFIG: cluster.port: expected an integer, got the string 'x'"
    with pytest.raises(ConfigError) as caught:
        from_mapping({"nope": 1})
    assert str(caught.value) == '<mapping>: unknown field "nope"'


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(str(tmp_path / "absent.conf"))
    assert caught.value.file == str(tmp_path / "absent.conf")
    assert "cannot read config file" in str(caught.value)


def test_include_of_a_missing_file_names_the_including_file(tmp_path: Path) -> None:
    error = load_error(tmp_path, "port: 4222\ninclude ./secrets.conf\n")
    assert (error.file, error.line) == (str(tmp_path / "test.conf"), 2)
    assert "secrets.conf" in str(error)


def test_include_of_a_name_with_a_nul_byte_is_a_config_error(tmp_path: Path) -> None:
    # Found by the config fuzzing (seed 525664579): the OS refuses such a name with ValueError.
    error = load_error(tmp_path, 'port: 4222\ninclude "a\x00b.conf"\n')
    assert (error.line, error.key) == (2, "include")


# --- the shipped examples ----------------------------------------------------------------------


@pytest.fixture
def example_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAME", "nats-1")
    monkeypatch.setenv("APP_PASSWORD", "app-pw")
    monkeypatch.setenv("ADMIN_PASSWORD", "admin-pw")


def test_single_example(example_env: None) -> None:
    options = load(str(EXAMPLES / "single.conf"))
    assert (options.host, options.port, options.http_host, options.http_port) == (
        "0.0.0.0",
        4222,
        "0.0.0.0",
        8222,
    )
    js = options.jetstream
    assert (js.enabled, js.store_dir, js.max_memory_store, js.max_file_store) == (
        True,
        "./data",
        2**30,
        10 * 2**30,
    )
    assert options.cluster.port == 0


def test_cluster_example(example_env: None) -> None:
    options = load(str(EXAMPLES / "cluster.conf"))
    assert options.server_name == "nats-1"
    assert (options.cluster.name, options.cluster.host, options.cluster.port) == (
        "nats-cluster",
        "0.0.0.0",
        6222,
    )
    assert options.cluster.routes == [
        f"nats-route://nats-{n}.nats.messaging.svc.cluster.local:6222" for n in range(3)
    ]
    assert options.jetstream.store_dir == "/data/jetstream"
    assert (options.jetstream.max_memory_store, options.jetstream.max_file_store) == (
        2**30,
        10 * 2**30,
    )


def test_cluster_example_needs_pod_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POD_NAME", raising=False)
    with pytest.raises(ConfigError) as caught:
        load(str(EXAMPLES / "cluster.conf"))
    assert "POD_NAME" in str(caught.value)
    assert caught.value.line == 6


@pytest.mark.parametrize("name", ["single", "cluster"])
def test_yaml_examples_equal_their_conf_twins(example_env: None, name: str) -> None:
    from_conf = load(str(EXAMPLES / f"{name}.conf"))
    from_yaml = load(str(EXAMPLES / f"{name}.yaml"))
    assert from_conf.config_file != from_yaml.config_file
    assert without_source(from_conf) == without_source(from_yaml)


def test_include_example(example_env: None) -> None:
    options = load(str(EXAMPLES / "secure-cluster.conf"))
    base = load(str(EXAMPLES / "cluster.conf"))
    assert options.cluster == base.cluster
    assert options.jetstream == base.jetstream
    assert options.ping_interval == 60.0
    assert [user.user for user in options.users] == ["admin", "app", "anonymous"]
    assert options.users[1].password == "app-pw"
    assert options.users[1].permissions == Permissions(
        publish_allow=["orders.>", "$JS.API.>"],
        publish_deny=["orders.internal.>"],
        subscribe_allow=["orders.>", "_INBOX.>"],
    )
    assert options.no_auth_user == "anonymous"


def test_every_example_loads(example_env: None) -> None:
    names = sorted(path.name for path in EXAMPLES.iterdir())
    assert {"single.conf", "single.yaml", "cluster.conf", "cluster.yaml"} <= set(names)
    for name in names:
        assert isinstance(load(str(EXAMPLES / name)), Options), name


@needs_nats_server
@pytest.mark.parametrize(
    "name", ["single.conf", "cluster.conf", "auth.conf", "secure-cluster.conf"]
)
def test_nats_server_accepts_the_examples(example_env: None, name: str) -> None:
    result = subprocess.run(
        [NATS_SERVER, "-t", "-c", str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr


# --- golden: the same verdict as `nats-server -t` ------------------------------------------------


@dataclass(frozen=True)
class Golden:
    """A config text both servers must accept (or both refuse, naming `error_line`)."""

    name: str
    text: str
    accepted: bool
    expect: Mapping[str, Any] = field(default_factory=dict)  # our Options, dotted attribute
    error_line: int = 0  # the line both servers must name; 0: not compared
    files: Mapping[str, str] = field(default_factory=dict)  # other files next to it


GOLDEN = [
    # Syntax.
    Golden("colon", "port: 4333", True, {"port": 4333}),
    Golden("equals", "port = 4333", True, {"port": 4333}),
    Golden("space", "port 4333", True, {"port": 4333}),
    Golden("value-next-line", "port\n4333", True, {"port": 4333}),
    # An error *at* a newline: nats-server counts it on the next line, we on the line it ends.
    Golden("separator-then-newline", "debug: true\nport:\n4333", False),
    Golden("semicolons", "port: 4333; debug: true;", True, {"port": 4333, "debug": True}),
    Golden(
        "json-like", '{\n "port": 4333,\n "cluster": {"name": "c"}\n}', True, {"cluster.name": "c"}
    ),
    Golden("quoted-keys", "\"port\": 4333\n'debug': on", True, {"debug": True}),
    Golden("comments", "# a\nport: 4333 # b\n// c\ndebug: yes // d", True, {"port": 4333}),
    Golden("block-forms", "cluster {\n name = c; port 6333\n}", True, {"cluster.port": 6333}),
    Golden("block-colon", "cluster: {\n  name:\n    c\n}", True, {"cluster.name": "c"}),
    Golden("two-values", "debug: true\nport: 1 2", False, error_line=2),
    Golden("array-double-comma", "server_tags: [a,, b]", False, error_line=1),
    Golden("array-missing-comma", "server_tags: [a b]", False, error_line=1),
    Golden("array-trailing-comma", "server_tags: [a, b,]", True, {"server_tags": ["a", "b"]}),
    Golden(
        "array-newlines",
        "server_tags: [\n a # x\n b,\n c\n]",
        True,
        {"server_tags": ["a", "b", "c"]},
    ),
    Golden("bad-escape", 'server_name: "a\\qb"', False, error_line=1),
    Golden("escapes", 'server_name: "a\\x41"', True, {"server_name": "aA"}),
    Golden("raw-string", "server_name: 'a\\qb'", True, {"server_name": "a\\qb"}),
    Golden("bad-float", "server_name: .5", False, error_line=1),
    Golden("float-with-unit", "ping_interval: 1.5s", False, error_line=1),
    Golden("short-date", "server_name: 2006-01-02 # no time", False, error_line=1),
    Golden("date-is-not-a-string", "server_name: 2006-01-02T15:04:05Z", False, error_line=1),
    Golden("address-string", "server_name: 1.2.3.4:5", True, {"server_name": "1.2.3.4:5"}),
    Golden("digits-then-letters", "server_name: 10s", True, {"server_name": "10s"}),
    Golden("suffix-then-digit", "max_payload: 1k5", False, error_line=1),
    # Sizes.
    Golden("size-mb", "max_payload: 1MB", True, {"max_payload": 2**20}),
    Golden("size-m", "max_payload: 2M", True, {"max_payload": 2_000_000}),
    Golden("size-mib", "max_pending: 1mib", True, {"max_pending": 2**20}),
    Golden("size-ki", "max_control_line: 8Ki", True, {"max_control_line": 8192}),
    Golden("size-too-big", "max_payload: 2GB", False, error_line=1),
    Golden("size-quoted", 'max_payload: "1MB"', False, error_line=1),
    Golden("size-float", "max_payload: 1.5", False, error_line=1),
    Golden("size-bad-suffix", "max_payload: 1kk", False, error_line=1),
    Golden("hex-is-a-string", "port: 0x10", False, error_line=1),
    Golden("sub-tokens-zero", "max_sub_tokens: 0", False, error_line=1),
    Golden("sub-tokens-256", "max_sub_tokens: 256", False, error_line=1),
    Golden("sub-tokens-255", "max_sub_tokens: 255", True, {"max_sub_tokens": 255}),
    # Durations.
    Golden("duration", 'ping_interval: "2m"', True, {"ping_interval": 120.0}),
    Golden("duration-bare-string", "ping_interval: 1h30m", True, {"ping_interval": 5400.0}),
    Golden("duration-ms", "write_deadline: 500ms", True, {"write_deadline": 0.5}),
    Golden("duration-unit", 'ping_interval: "2x"', False, error_line=1),
    Golden("duration-size-literal", "debug: true\nping_interval: 2m", False, error_line=2),
    Golden("lame-duck-short", 'lame_duck_duration: "10s"', False, error_line=1),
    Golden("lame-duck", 'lame_duck_duration: "1m"', True, {"lame_duck_duration": 60.0}),
    Golden("grace-negative", 'lame_duck_grace_period: "-1s"', False, error_line=1),
    Golden("grace", 'lame_duck_grace_period: "5s"', True, {"lame_duck_grace_period": 5.0}),
    # Listen addresses and types.
    Golden("listen", "listen: 127.0.0.1:4333", True, {"host": "127.0.0.1", "port": 4333}),
    Golden("listen-port-only", 'listen: ":4333"', True, {"port": 4333}),
    Golden("listen-ipv6", 'listen: "[::1]:4333"', True, {"host": "::1"}),
    Golden("listen-no-port", 'listen: "localhost"', False, error_line=1),
    Golden("listen-bad-port", 'listen: "localhost:abc"', False, error_line=1),
    Golden("listen-bad-ipv6", 'listen: "::1:4222"', False, error_line=1),
    Golden("listen-bool", "listen: true", False, error_line=1),
    Golden("http", 'http: "127.0.0.1:8300"', True, {"http_host": "127.0.0.1", "http_port": 8300}),
    Golden("http-port-string", 'http_port: "8222"', False, error_line=1),
    Golden("monitor-port", "monitor_port: 8300", True, {"http_port": 8300}),
    Golden("random-port", "port: -1", True, {"port": -1}),
    Golden("bool-word", "debug: yes\nlogtime: Off", True, {"debug": True, "logtime": False}),
    Golden("bool-number", "debug: 1", False, error_line=1),
    Golden("bool-quoted", 'debug: "true"', False, error_line=1),
    Golden("string-bool", "server_name: true", False, error_line=1),
    Golden(
        "aliases",
        "max_conn: 7\nmax_subs: 8\nnet: 10.0.0.1\npid_file: x",
        True,
        {"max_connections": 7},
    ),
    Golden("verbose", "trace_verbose: true", True, {"trace": True, "trace_verbose": True}),
    Golden("tags-string", 'server_tags: "a"', True, {"server_tags": ["a"]}),
    Golden("tags-number", "server_tags: 1", False, error_line=1),
    # Unknown keys and variables.
    Golden("unknown", "port: 4333\nfoo: 1", False, error_line=2),
    Golden("unknown-nested", "cluster {\n  name: c\n  foo: 1\n}", False, error_line=3),
    Golden(
        "unknown-in-users",
        "authorization {\n users: [\n  {user: a, foo: 1}\n ]\n}",
        False,
        error_line=3,
    ),
    Golden("unknown-in-js", "jetstream {\n  foo: 1\n}", False, error_line=2),
    Golden("unknown-in-limits", "jetstream {\n limits {\n  foo: 1\n }\n}", False, error_line=3),
    Golden("variable", "MYPORT: 4333\nport: $MYPORT", True, {"port": 4333}),
    Golden("unused-variable", "MYPORT: 4333", False, error_line=1),
    Golden("block-variable", "cluster {\n N: c1\n name: $N\n}", True, {"cluster.name": "c1"}),
    Golden("variable-out-of-scope", "cluster { N: c1 }\nserver_name: $N", False, error_line=2),
    Golden("env", "port: $GOLDEN_PORT", True, {"port": 4333}),
    Golden("env-size", "max_payload: $GOLDEN_SIZE", True, {"max_payload": 2 * 2**20}),
    Golden("env-missing", "port: $GOLDEN_MISSING", False, error_line=1),
    Golden("env-in-quotes", 'port: "$GOLDEN_PORT"', False, error_line=1),
    Golden(
        "bcrypt",
        "authorization { user: a, password: $2a$11$abc }",
        True,
        {"password": "$2a$11$abc"},
    ),
    # Includes.
    Golden(
        "include",
        "include ./inc/limits.conf\ncluster {\n  include 'inc/cluster.conf'\n}",
        True,
        {"max_payload": 2**21, "cluster.name": "from-include"},
        files={"inc/limits.conf": "max_payload: 2MB\n", "inc/cluster.conf": "name: from-include\n"},
    ),
    Golden("include-missing", "port: 1\ninclude ./missing.conf", False, error_line=0),
    Golden("include-missing-nested", "cluster {\n include nope.conf\n}", False),
    # Authorization.
    Golden(
        "user-and-token", "authorization { user: a, password: b, token: c }", False, error_line=1
    ),
    Golden("user-and-users", "authorization { user: a, users: [{user: b}] }", False, error_line=1),
    Golden("token-and-users", "authorization { token: t, users: [] }", False, error_line=1),
    Golden(
        "duplicate-user", "authorization { users: [{user: a}, {user: a}] }", False, error_line=1
    ),
    Golden("user-needs-name", "authorization { users: [{password: a}] }", False, error_line=1),
    Golden("user-not-a-map", "authorization { users: [a] }", False, error_line=1),
    Golden("auth-unknown", "authorization {\n foo: 1\n}", False, error_line=2),
    Golden("auth-timeout-int", "authorization { timeout: 3 }", True, {"auth_timeout": 3.0}),
    Golden("auth-timeout-float", "authorization { timeout: 0.5 }", True, {"auth_timeout": 0.5}),
    Golden("auth-timeout-string", 'authorization { timeout: "4s" }', True, {"auth_timeout": 4.0}),
    Golden(
        "permissions",
        "authorization { users: [ {user: a, permissions: "
        "{ publish: { allow: 'a', deny: ['b'] }, subscribe: ['c', 'd q'] }} ] }",
        True,
        {"users": [User("a", "", Permissions(["a"], ["b"], ["c", "d q"]))]},
    ),
    Golden(
        "bad-subject", "authorization { users: [{user: a, permissions: {publish: 'a..b'}}] }", False
    ),
    Golden("perm-unknown", "authorization { users: [{user: a, permissions: {foo: x}}] }", False),
    Golden(
        "allow-deny-only",
        "authorization { users: [{user: a, permissions: {publish: {x: a}}}] }",
        False,
    ),
    Golden(
        "allow-responses",
        "authorization { users: [{user: a, permissions: "
        "{allow_responses: {max: 5, expires: '1m'}}}] }",
        True,
        {
            "users": [
                User(
                    "a",
                    "",
                    Permissions(
                        allow_responses=True,
                        allow_responses_max_msgs=5,
                        allow_responses_expires=60.0,
                    ),
                )
            ]
        },
    ),
    # Cluster.
    Golden(
        "cluster",
        "cluster { name: c, listen: 6333, routes: [ nats-route://a:6222, nats-route://b:6222 ] }",
        True,
        {"cluster.port": 6333, "cluster.routes": ["nats-route://a:6222", "nats-route://b:6222"]},
    ),
    Golden("routes-string", "cluster { routes: 'nats-route://a:6222' }", False, error_line=1),
    Golden("routes-duplicate", "cluster { routes: [nats-route://a:1, nats-route://a:1] }", False),
    Golden(
        "cluster-auth",
        "cluster { authorization { user: a, password: b, timeout: 2 } }",
        True,
        {"cluster.user": "a", "cluster.auth_timeout": 2.0},
    ),
    Golden("cluster-token", "cluster { authorization { token: a } }", False, error_line=1),
    Golden("cluster-users", "cluster { authorization { users: [] } }", False, error_line=1),
    Golden(
        "cluster-misc",
        "cluster { connect_retries: 3, no_advertise: true, advertise: 'x:1' }",
        True,
        {"cluster.connect_retries": 3, "cluster.no_advertise": True},
    ),
    # JetStream.
    Golden("js-enabled", "jetstream: enabled", True, {"jetstream.enabled": True}),
    Golden("js-disabled", "jetstream: disabled", True, {"jetstream.enabled": False}),
    Golden("js-bad-word", "jetstream: maybe", False, error_line=1),
    Golden("js-number", "jetstream: 1", False, error_line=1),
    Golden("js-block", "jetstream { }", True, {"jetstream.enabled": True}),
    Golden(
        "js-block-off",
        "jetstream { enabled: false, domain: hub }",
        True,
        {"jetstream.enabled": False, "jetstream.domain": "hub"},
    ),
    Golden(
        "js-sizes",
        'jetstream { max_mem: 1G, max_file: "10G" }',
        True,
        {"jetstream.max_memory_store": 10**9, "jetstream.max_file_store": 10 * 2**30},
    ),
    Golden("js-size-string-gb", 'jetstream { max_mem: "1GB" }', False, error_line=1),
    Golden("js-size-string-lower", 'jetstream { max_mem: "1g" }', False, error_line=1),
    Golden(
        "js-size-empty", 'jetstream { max_file_store: "" }', True, {"jetstream.max_file_store": 0}
    ),
    Golden("js-size-bool", "jetstream { max_file_store: true }", False, error_line=1),
    Golden("js-store-twice", 'jetstream { store_dir: "/tmp/x" }\nstore_dir: "/tmp/y"', False),
    Golden(
        "js-limits",
        "jetstream { limits { max_ack_pending: 100, duplicate_window: '1m' } }",
        True,
        {"jetstream.max_ack_pending": 100, "jetstream.duplicate_window": 60.0},
    ),
    Golden("js-unique-tag", "jetstream { unique_tag: 'AZ' }", True, {"jetstream.unique_tag": "az"}),
    Golden(
        "misc-bools",
        "no_header_support: true\nno_sublist_cache: true",
        True,
        {"no_header_support": True, "disable_sublist_cache": True},
    ),
    Golden(
        "log-files",
        'logfile: "/tmp/x.log"\nlog_size_limit: 1MB\nsyslog: true',
        True,
        {"log_file": "/tmp/x.log", "log_size_limit": 2**20, "syslog": True},
    ),
]


def nats_error_line(stderr: str, path: Path) -> int:
    """The line nats-server names: `file:line:col: ...` or `Parse error on line N`."""
    match = re.search(rf"{re.escape(str(path))}:(\d+):", stderr) or re.search(
        r"on line (\d+)", stderr
    )
    return int(match.group(1)) if match else 0


@needs_nats_server
@pytest.mark.parametrize("case", GOLDEN, ids=lambda case: case.name)
def test_same_verdict_as_nats_server(
    case: Golden, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOLDEN_PORT", "4333")
    monkeypatch.setenv("GOLDEN_SIZE", "2MB")
    monkeypatch.delenv("GOLDEN_MISSING", raising=False)
    for name, text in case.files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    path = tmp_path / "golden.conf"
    path.write_text(case.text + "\n")

    nats = subprocess.run(
        [NATS_SERVER, "-t", "-c", str(path)], capture_output=True, text=True, timeout=30
    )
    ours: ConfigError | None = None
    options = Options()
    try:
        options = load(str(path))
    except ConfigError as exc:
        ours = exc

    assert (nats.returncode == 0) == case.accepted, f"nats-server: {nats.stderr}"
    assert (ours is None) == case.accepted, f"ours: {ours}"
    if case.error_line:
        assert nats_error_line(nats.stderr, path) == case.error_line, nats.stderr
        assert ours is not None and ours.line == case.error_line, str(ours)
    for dotted, value in case.expect.items():
        assert attribute(options, dotted) == value, dotted


# --- golden: the values nats-server runs with (/varz) equal ours ---------------------------------


def run_and_fetch_varz(config: Path, work: Path) -> dict[str, Any]:
    """Start nats-server on `config`, read /varz from its monitoring port, stop it."""
    ports_dir = work / "ports"
    process = subprocess.Popen(
        [NATS_SERVER, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            ports_files = list(ports_dir.glob("*.ports"))
            if ports_files and ports_files[0].stat().st_size:
                monitoring = json.loads(ports_files[0].read_text())["monitoring"][0]
                break
            if process.poll() is not None:
                pytest.fail(f"nats-server exited: {process.stderr.read().decode()}")
            if time.monotonic() > deadline:
                pytest.fail("nats-server did not write its ports file in time")
            time.sleep(0.05)
        with urllib.request.urlopen(f"{monitoring}/varz", timeout=10) as response:
            return json.load(response)
    finally:
        process.terminate()
        process.wait(timeout=20)


VARZ_CASES = {
    "limits": """
        server_name: varz-limits
        max_payload: 2MB
        max_pending: 100MB
        max_control_line: 2KB
        max_connections: 1k
        max_subs: 500
        ping_interval: "45s"
        ping_max: 5
        write_deadline: 3s
        server_tags: [az-1, rack-2]
        authorization { user: u, password: p, timeout: 3 }
    """,
    "zero-means-default": """
        max_payload: 0
        max_pending: 0
        max_control_line: 0
        max_connections: 0
        ping_interval: "0s"
        ping_max: 0
        write_deadline: "0s"
    """,
    "jetstream": """
        server_name: varz-js
        jetstream {
          store_dir: "{work}/js"
          max_mem: 512MiB
          max_file: "2G"
          domain: hub
        }
    """,
    "cluster": """
        server_name: varz-cluster
        jetstream { store_dir: "{work}/js", max_mem: 64MB, max_file: 1G }
        cluster {
          name: varz
          listen: 127.0.0.1:-1
          routes: [nats-route://127.0.0.1:1, nats-route://127.0.0.1:2]
          authorization { user: r, password: s, timeout: 4 }
        }
    """,
    "variables-and-include": """
        SIZE: 4MB
        max_payload: $SIZE
        server_name: $VARZ_NAME
        include ./extra.conf
    """,
}


@needs_nats_server
@pytest.mark.parametrize("name", list(VARZ_CASES))
def test_values_match_nats_server_varz(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VARZ_NAME", "from-env")
    (tmp_path / "ports").mkdir()
    (tmp_path / "extra.conf").write_text("max_pending: 32MB\nping_max: 7\n")
    text = VARZ_CASES[name].replace("{work}", str(tmp_path)) + (
        f'\nlisten: 127.0.0.1:-1\nhttp: 127.0.0.1:-1\nports_file_dir: "{tmp_path / "ports"}"\n'
    )
    config = tmp_path / "varz.conf"
    config.write_text(text)
    ours = load(str(config))
    varz = run_and_fetch_varz(config, tmp_path)

    assert varz["server_name"] == (ours.server_name or varz["server_id"])
    assert varz["host"] == ours.host
    assert varz["max_payload"] == ours.max_payload
    assert varz["max_pending"] == ours.max_pending
    assert varz["max_control_line"] == ours.max_control_line
    assert varz["max_connections"] == ours.max_connections
    assert varz.get("max_subscriptions", 0) == ours.max_subscriptions
    assert varz["ping_interval"] == round(ours.ping_interval * 1e9)
    assert varz["ping_max"] == ours.ping_max
    assert varz["write_deadline"] == round(ours.write_deadline * 1e9)
    assert varz["auth_timeout"] == ours.auth_timeout
    assert varz.get("tags", []) == ours.server_tags
    if ours.cluster.port:
        assert varz["cluster"]["name"] == ours.cluster.name
        assert varz["cluster"]["auth_timeout"] == ours.cluster.auth_timeout
        assert varz["cluster"]["urls"] == [route.split("//", 1)[1] for route in ours.cluster.routes]
    js_config = varz.get("jetstream", {}).get("config")
    assert (js_config is not None) == ours.jetstream.enabled
    if js_config:
        assert js_config["max_memory"] == ours.jetstream.max_memory_store
        assert js_config["max_storage"] == ours.jetstream.max_file_store
        assert js_config["store_dir"] == os.path.join(ours.jetstream.store_dir, "jetstream")
        assert js_config.get("domain", "") == ours.jetstream.domain
