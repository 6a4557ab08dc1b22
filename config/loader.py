"""Configuration files -> a validated `Options`.

`KEYS` (top level) and the `*_KEYS` tables of the blocks list every spelling we accept, aliases
included, as nats-server's `processConfigFileLine` (server/opts.go) spells them. Keys match
case-insensitively, as in nats-server. Each handler is a small function that checks one key's
value and stores it; anything wrong raises `ConfigError` naming file, line, column and key.

Keys nats-server knows but this server does not implement (TLS, leaf nodes, gateways, accounts,
...) are refused by name: running without a feature the operator asked for, TLS above all, would
be worse than not starting.

Where nats-server treats 0 as "use the default" (ports, limits, timeouts) so do we, so one file
means the same on both servers.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar
from urllib.parse import urlsplit

from config.errors import ConfigError
from config.nodes import ConfigMap, Node, Position, from_plain
from config.options import (
    DEFAULT_PORT,
    ClusterOptions,
    JetStreamOptions,
    Options,
    Permissions,
    User,
)
from config.parser import parse_file
from config.units import format_duration, parse_duration, parse_storage_size
from config.yamlconf import parse_yaml_file

T = TypeVar("T")

DEFAULT_HOST = "0.0.0.0"
INT32_MAX = 2**31 - 1
MAX_SUB_TOKENS = 255
MIN_LAME_DUCK_DURATION = 30.0
DEFAULT_AUTH_TIMEOUT = 2.0
YAML_SUFFIXES = (".yaml", ".yml")
COMPRESSION_MODES = {
    "off": "off",
    "disabled": "off",
    "false": "off",
    "accept": "accept",
    "on": "s2_fast",
    "enabled": "s2_fast",
    "true": "s2_fast",
    "s2_uncompressed": "s2_uncompressed",
    "s2_fast": "s2_fast",
    "s2_better": "s2_better",
    "s2_best": "s2_best",
    "s2_auto": "s2_auto",
}


# --- public API ------------------------------------------------------------------------------


def load(path: str | os.PathLike[str]) -> Options:
    """Read and validate a config file: YAML for `.yaml`/`.yml`, the nats.conf syntax otherwise."""
    name = os.fspath(path)
    root = parse_yaml_file(name) if config_format(name) == "yaml" else parse_file(name)
    options = _build(root, name)
    options.config_file = name
    return options


def from_mapping(data: Mapping[str, Any], source: str = "<mapping>") -> Options:
    """Validate an already-parsed config: plain Python data or a `dict[str, Node]` tree.

    Plain data has no line numbers, so its errors name only `source` and the key.
    """
    root: ConfigMap
    if all(isinstance(value, Node) for value in data.values()):
        root = dict(data)
    else:
        root = from_plain(dict(data), source).value
    return _build(root, source)


def config_format(path: str) -> str:
    """The reader `load` picks for `path`: "yaml" or "conf"."""
    return "yaml" if os.path.splitext(path)[1].lower() in YAML_SUFFIXES else "conf"


# --- fields: a value plus where it came from ------------------------------------------------


@dataclass(frozen=True)
class Field:
    """One key's value being validated. `path` is the dotted key (`cluster.routes[1]`)."""

    name: str
    path: str
    node: Node

    @property
    def value(self) -> Any:
        return self.node.value

    def error(self, problem: str) -> ConfigError:
        return ConfigError(problem, self.node.where, self.path)

    def child(self, name: str, node: Node) -> Field:
        return Field(name, f"{self.path}.{name}" if self.path else name, node)

    def item(self, index: int, node: Node) -> Field:
        return Field(self.name, f"{self.path}[{index}]", node)


Handler = Callable[[T, Field], None]


def _apply_section(
    section: Field,
    table: Mapping[str, Handler[T]],
    target: T,
    unsupported: Mapping[str, str],
) -> None:
    """Run the handler of every key of the block `section` against `target`."""
    for name, node in _map(section).items():
        field = section.child(name, node)
        key = name.lower()
        handler = table.get(key)
        if handler is not None:
            handler(target, field)
            continue
        if key in unsupported:
            raise _unsupported(field, unsupported[key])
        # Entries referenced as `$name` are variable definitions, not settings (nats-server).
        if node.used_as_variable:
            continue
        raise ConfigError.unknown_field(name, node.where, field.path)


def _unsupported(field: Field, detail: str) -> ConfigError:
    problem = f"{field.name} is not supported by this server"
    return field.error(f"{problem}: {detail}" if detail else problem)


# --- value checks ---------------------------------------------------------------------------


def _describe(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the float {value}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, date):  # datetime too; YAML also yields plain dates
        return "a date"
    if isinstance(value, dict):
        return "a block { }"
    if isinstance(value, list):
        return "an array [ ]"
    return f"a value of type {type(value).__name__}"


def _expected(field: Field, what: str) -> ConfigError:
    return field.error(f"expected {what}, got {_describe(field.value)}")


def _string(field: Field) -> str:
    if not isinstance(field.value, str):
        raise _expected(field, "a string")
    return field.value


def _bool(field: Field) -> bool:
    if not isinstance(field.value, bool):
        raise _expected(field, "a boolean (true/false, yes/no, on/off)")
    return field.value


def _int(field: Field) -> int:
    if isinstance(field.value, bool) or not isinstance(field.value, int):
        raise _expected(field, "an integer")
    return field.value


def _map(field: Field) -> ConfigMap:
    if not isinstance(field.value, dict):
        raise _expected(field, "a block { }")
    return field.value


def _list(field: Field) -> list[Node]:
    if not isinstance(field.value, list):
        raise _expected(field, "an array [ ]")
    return field.value


def _strings(field: Field) -> list[str]:
    """A string or an array of strings."""
    if isinstance(field.value, str):
        return [field.value]
    if not isinstance(field.value, list):
        raise _expected(field, "a string or an array of strings")
    return [_string(field.item(index, node)) for index, node in enumerate(field.value)]


def _at_least(field: Field, value: int, minimum: int) -> int:
    if value < minimum:
        raise field.error(f"{value} is out of range: must be at least {minimum}")
    return value


def _non_negative_int(field: Field) -> int:
    return _at_least(field, _int(field), 0)


def _limit(field: Field, default: int, maximum: int | None = None) -> int:
    """A positive size or count where 0 means nats-server's default."""
    value = _non_negative_int(field)
    if maximum is not None and value > maximum:
        raise field.error(f"{field.name} value is too big (maximum {maximum})")
    return value or default


def _port_number(field: Field, port: int) -> int:
    """-1 asks for a random port; 0 means the default (or "off" where there is no default)."""
    if not -1 <= port <= 65535:
        raise field.error(f"port {port} is out of range: must be -1 (random) or 0-65535")
    return port


def _duration(field: Field) -> float:
    """A Go duration string (`"2m"`, `"1h30m"`) or a bare number of seconds.

    A bare literal with a size suffix is refused: unquoted, `2m` is the integer 2000000 (m is
    "million"), which nats-server would silently take as 23 days of seconds.
    """
    value = field.value
    if isinstance(value, str):
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise field.error(f"error parsing {field.name}: {exc}") from exc
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if isinstance(value, int) and re.search(r"[a-zA-Z]", field.node.raw):
            raise field.error(
                f"{field.node.raw} without quotes is the number {value}, not a duration: "
                f'write "{field.node.raw}" in quotes'
            )
        seconds = float(value)
    else:
        raise _expected(field, 'a duration such as "30s" or "2m", or a number of seconds')
    if seconds < 0:
        raise field.error(f"{field.name} must not be negative")
    return seconds


def _duration_or_default(field: Field, default: float) -> float:
    return _duration(field) or default


def _split_host_port(field: Field, text: str) -> tuple[str, int]:
    """Go's net.SplitHostPort plus a numeric port: `host:port`, `:port`, `[::1]:port`."""
    match = re.fullmatch(r"\[([^\]]*)\]:([^:]*)|([^:\[\]]*):([^:]*)", text)
    if match is None:
        raise field.error(f"could not parse address string {text!r}: expected host:port")
    host = match.group(1) if match.group(1) is not None else match.group(3)
    port_text = match.group(2) if match.group(2) is not None else match.group(4)
    if not re.fullmatch(r"[+-]?\d+", port_text):
        raise field.error(f"could not parse port {port_text!r}")
    return host, _port_number(field, int(port_text))


def _listen(field: Field) -> tuple[str, int]:
    """`listen`/`http`: a port, or "host:port" (the host may be empty: ":4222")."""
    if isinstance(field.value, str):
        return _split_host_port(field, field.value)
    if isinstance(field.value, int) and not isinstance(field.value, bool):
        return "", _port_number(field, field.value)
    raise _expected(field, 'a port or "host:port"')


def _no_spaces(field: Field, what: str) -> str:
    value = _string(field)
    if " " in value:
        raise field.error(f"{what} cannot contain spaces")
    return value


# --- top level ------------------------------------------------------------------------------


def _set_listen(options: Options, field: Field) -> None:
    host, port = _listen(field)
    options.host = host or DEFAULT_HOST
    options.port = port or DEFAULT_PORT


def _set_host(options: Options, field: Field) -> None:
    options.host = _string(field) or DEFAULT_HOST


def _set_port(options: Options, field: Field) -> None:
    options.port = _port_number(field, _int(field)) or DEFAULT_PORT


def _set_server_name(options: Options, field: Field) -> None:
    options.server_name = _no_spaces(field, "server name")


def _set_client_advertise(options: Options, field: Field) -> None:
    options.client_advertise = _string(field)


def _set_http(options: Options, field: Field) -> None:
    options.http_host, options.http_port = _listen(field)


def _set_http_port(options: Options, field: Field) -> None:
    options.http_port = _port_number(field, _int(field))


def _set_http_base_path(options: Options, field: Field) -> None:
    # nats-server's normalizeBasePath: a leading slash, cleaned like a URL path.
    path = _string(field)
    options.http_base_path = posixpath.normpath("/" + path.lstrip("/")) if path else ""


def _set_max_payload(options: Options, field: Field) -> None:
    options.max_payload = _limit(field, Options.max_payload, INT32_MAX)


def _set_max_control_line(options: Options, field: Field) -> None:
    options.max_control_line = _limit(field, Options.max_control_line, INT32_MAX)


def _set_max_pending(options: Options, field: Field) -> None:
    options.max_pending = _limit(field, Options.max_pending)


def _set_max_connections(options: Options, field: Field) -> None:
    options.max_connections = _limit(field, Options.max_connections)


def _set_max_subscriptions(options: Options, field: Field) -> None:
    options.max_subscriptions = _non_negative_int(field)


def _set_max_sub_tokens(options: Options, field: Field) -> None:
    # nats-server's own bounds and wording.
    value = _int(field)
    if value > MAX_SUB_TOKENS:
        raise field.error(f"{field.name} value is too big")
    if value <= 0:
        raise field.error(f"{field.name} value can not be negative")
    options.max_sub_tokens = value


def _set_ping_interval(options: Options, field: Field) -> None:
    options.ping_interval = _duration_or_default(field, Options.ping_interval)


def _set_ping_max(options: Options, field: Field) -> None:
    options.ping_max = _non_negative_int(field) or Options.ping_max


def _set_write_deadline(options: Options, field: Field) -> None:
    options.write_deadline = _duration_or_default(field, Options.write_deadline)


def _set_lame_duck_duration(options: Options, field: Field) -> None:
    seconds = _duration_or_default(field, Options.lame_duck_duration)
    if seconds < MIN_LAME_DUCK_DURATION:
        raise field.error(
            f"invalid lame_duck_duration of {format_duration(seconds)}, minimum is 30 seconds"
        )
    options.lame_duck_duration = seconds


def _set_lame_duck_grace_period(options: Options, field: Field) -> None:
    options.lame_duck_grace_period = _duration_or_default(field, Options.lame_duck_grace_period)


def _set_debug(options: Options, field: Field) -> None:
    options.debug = _bool(field)


def _set_trace(options: Options, field: Field) -> None:
    options.trace = _bool(field)


def _set_trace_verbose(options: Options, field: Field) -> None:
    # As in nats-server, verbose tracing is tracing.
    options.trace_verbose = options.trace = _bool(field)


def _set_logtime(options: Options, field: Field) -> None:
    options.logtime = _bool(field)


def _set_logtime_utc(options: Options, field: Field) -> None:
    options.logtime_utc = _bool(field)


def _set_log_file(options: Options, field: Field) -> None:
    options.log_file = _string(field)


def _set_log_size_limit(options: Options, field: Field) -> None:
    options.log_size_limit = _non_negative_int(field)


def _set_pid_file(options: Options, field: Field) -> None:
    options.pid_file = _string(field)


def _set_ports_file_dir(options: Options, field: Field) -> None:
    options.ports_file_dir = _string(field)


def _set_syslog(options: Options, field: Field) -> None:
    options.syslog = _bool(field)


def _set_remote_syslog(options: Options, field: Field) -> None:
    options.remote_syslog = _string(field)


def _set_no_auth_user(options: Options, field: Field) -> None:
    # Checked against `users` once every key is in (see _check_no_auth_user).
    options.no_auth_user = _string(field)


def _set_store_dir(options: Options, field: Field) -> None:
    # Settable at the top level and in `jetstream { }`, but only once (nats-server's rule).
    if options.jetstream.store_dir:
        raise field.error("Duplicate 'store_dir' configuration")
    options.jetstream.store_dir = _string(field)


def _set_server_tags(options: Options, field: Field) -> None:
    tags: list[str] = []
    for entry in _strings(field):
        for tag in entry.split(","):
            tag = tag.strip()
            if tag and tag not in tags:
                tags.append(tag)
    options.server_tags = tags


def _set_server_metadata(options: Options, field: Field) -> None:
    options.server_metadata = {
        name: _string(field.child(name, node)) for name, node in _map(field).items()
    }


def _set_no_header_support(options: Options, field: Field) -> None:
    options.no_header_support = _bool(field)


def _set_disable_sublist_cache(options: Options, field: Field) -> None:
    options.disable_sublist_cache = _bool(field)


def _accept_no_system_account(options: Options, field: Field) -> None:
    # This server has no system account, so asking for none is already satisfied.
    _bool(field)


def _set_authorization(options: Options, field: Field) -> None:
    auth = _parse_auth(field)
    if (auth.user or auth.password) and auth.token:
        raise field.error("Cannot have a user/pass and token")
    if auth.users is not None:
        if auth.user:
            raise field.error("Can not have a single user/pass and a users array")
        if auth.token:
            raise field.error("Can not have a token and a users array")
    options.username = auth.user
    options.password = auth.password
    options.authorization = auth.token
    options.auth_timeout = auth.timeout or DEFAULT_AUTH_TIMEOUT
    options.users = auth.users or []


def _set_cluster(options: Options, field: Field) -> None:
    _apply_section(field, CLUSTER_KEYS, options.cluster, UNSUPPORTED_CLUSTER_KEYS)


def _set_jetstream(options: Options, field: Field) -> None:
    js = options.jetstream
    value = field.value
    if isinstance(value, bool):
        js.enabled = value
        return
    if isinstance(value, str):
        words = {"enabled": True, "enable": True, "disabled": False, "disable": False}
        if value.lower() not in words:
            raise field.error(f"Expected 'enabled' or 'disabled' for string value, got {value!r}")
        js.enabled = words[value.lower()]
        return
    if not isinstance(value, dict):
        raise _expected(field, "a block { }, a boolean, or enabled/disabled")
    # A block means "on" unless it says `enabled: false`.
    js.enabled = True
    _apply_section(field, JETSTREAM_KEYS, js, UNSUPPORTED_JETSTREAM_KEYS)


KEYS: dict[str, Handler[Options]] = {
    "listen": _set_listen,
    "host": _set_host,
    "net": _set_host,
    "port": _set_port,
    "server_name": _set_server_name,
    "client_advertise": _set_client_advertise,
    "http": _set_http,
    "http_port": _set_http_port,
    "monitor_port": _set_http_port,
    "http_base_path": _set_http_base_path,
    "max_payload": _set_max_payload,
    "max_control_line": _set_max_control_line,
    "max_pending": _set_max_pending,
    "max_connections": _set_max_connections,
    "max_conn": _set_max_connections,
    "max_subscriptions": _set_max_subscriptions,
    "max_subs": _set_max_subscriptions,
    "max_sub_tokens": _set_max_sub_tokens,
    "max_subscription_tokens": _set_max_sub_tokens,
    "ping_interval": _set_ping_interval,
    "ping_max": _set_ping_max,
    "write_deadline": _set_write_deadline,
    "lame_duck_duration": _set_lame_duck_duration,
    "lame_duck_grace_period": _set_lame_duck_grace_period,
    "debug": _set_debug,
    "trace": _set_trace,
    "trace_verbose": _set_trace_verbose,
    "logtime": _set_logtime,
    "logtime_utc": _set_logtime_utc,
    "logfile": _set_log_file,
    "log_file": _set_log_file,
    "log_size_limit": _set_log_size_limit,
    "logfile_size_limit": _set_log_size_limit,
    "pidfile": _set_pid_file,
    "pid_file": _set_pid_file,
    "ports_file_dir": _set_ports_file_dir,
    "syslog": _set_syslog,
    "remote_syslog": _set_remote_syslog,
    "authorization": _set_authorization,
    "no_auth_user": _set_no_auth_user,
    "cluster": _set_cluster,
    "jetstream": _set_jetstream,
    "store_dir": _set_store_dir,
    "storedir": _set_store_dir,
    "server_tags": _set_server_tags,
    "server_metadata": _set_server_metadata,
    "no_header_support": _set_no_header_support,
    "disable_sublist_cache": _set_disable_sublist_cache,
    "no_sublist_cache": _set_disable_sublist_cache,
    "no_system_account": _accept_no_system_account,
    "no_system": _accept_no_system_account,
    "no_sys_acc": _accept_no_system_account,
}

_NO_TLS = "TLS is not implemented; terminate TLS in a proxy in front of the server"
_NO_JWT = "operator/JWT (decentralized) authentication is not implemented"
_NO_ACCOUNTS = "there is a single account; multi-account setups are not implemented"

UNSUPPORTED_KEYS: dict[str, str] = {
    "tls": _NO_TLS,
    "https": f"HTTPS monitoring needs TLS. {_NO_TLS}",
    "https_port": f"HTTPS monitoring needs TLS. {_NO_TLS}",
    "allow_non_tls": _NO_TLS,
    "ocsp": _NO_TLS,
    "ocsp_cache": _NO_TLS,
    "leafnodes": "leaf node connections are not implemented",
    "leaf": "leaf node connections are not implemented",
    "gateway": "gateways (super-clusters) are not implemented",
    "websocket": "WebSocket clients are not implemented",
    "ws": "WebSocket clients are not implemented",
    "mqtt": "MQTT clients are not implemented",
    "accounts": _NO_ACCOUNTS,
    "system_account": _NO_ACCOUNTS,
    "system": _NO_ACCOUNTS,
    "default_js_domain": _NO_ACCOUNTS,
    "mappings": "subject mappings are not implemented",
    "maps": "subject mappings are not implemented",
    "operator": _NO_JWT,
    "operators": _NO_JWT,
    "root": _NO_JWT,
    "roots": _NO_JWT,
    "root_operator": _NO_JWT,
    "root_operators": _NO_JWT,
    "trusted": _NO_JWT,
    "trusted_keys": _NO_JWT,
    "resolver": _NO_JWT,
    "account_resolver": _NO_JWT,
    "accounts_resolver": _NO_JWT,
    "resolver_tls": _NO_JWT,
    "resolver_preload": _NO_JWT,
    "resolver_pinned_accounts": _NO_JWT,
    "default_sentinel": _NO_JWT,
    "prof_port": "the Go profiler endpoint does not exist here",
    "prof_block_rate": "the Go profiler endpoint does not exist here",
    "trace_headers": "",
    "max_traced_msg_len": "",
    "logfile_max_num": "",
    "log_max_num": "",
    "connect_error_reports": "",
    "reconnect_error_reports": "",
    "max_closed_clients": "",
    "write_timeout": "",
    "no_fast_producer_stall": "",
    "proxy_protocol": "",
    "proxies": "",
    "feature_flags": "",
}


# --- authorization ---------------------------------------------------------------------------


@dataclass
class _Auth:
    """The contents of an `authorization { }` block before the checks that combine keys."""

    user: str = ""
    password: str = ""
    token: str = ""
    timeout: float = 0.0
    users: list[User] | None = None  # None: no `users` key (nats-server tells [] apart)
    default_permissions: Permissions | None = None


def _parse_auth(field: Field) -> _Auth:
    auth = _Auth()
    _apply_section(field, AUTH_KEYS, auth, UNSUPPORTED_AUTH_KEYS)
    # `default_permissions` apply to the users that have none of their own (nats-server).
    for user in auth.users or []:
        if user.permissions is None and auth.default_permissions is not None:
            user.permissions = auth.default_permissions
    return auth


def _auth_user(auth: _Auth, field: Field) -> None:
    auth.user = _string(field)


def _auth_password(auth: _Auth, field: Field) -> None:
    auth.password = _string(field)


def _auth_token(auth: _Auth, field: Field) -> None:
    auth.token = _string(field)


def _auth_timeout(auth: _Auth, field: Field) -> None:
    # Seconds as a number (int or float), or a duration string.
    auth.timeout = _duration(field)


def _auth_users(auth: _Auth, field: Field) -> None:
    users: list[User] = []
    for index, node in enumerate(_list(field)):
        user = _parse_user(field.item(index, node))
        if any(known.user == user.user for known in users):
            raise field.item(index, node).error(f'Duplicate user "{user.user}" detected')
        users.append(user)
    auth.users = users


def _auth_default_permissions(auth: _Auth, field: Field) -> None:
    auth.default_permissions = _parse_permissions(field)


AUTH_KEYS: dict[str, Handler[_Auth]] = {
    "user": _auth_user,
    "username": _auth_user,
    "pass": _auth_password,
    "password": _auth_password,
    "token": _auth_token,
    "timeout": _auth_timeout,
    "users": _auth_users,
    "default_permission": _auth_default_permissions,
    "default_permissions": _auth_default_permissions,
    "permissions": _auth_default_permissions,
}
UNSUPPORTED_AUTH_KEYS: dict[str, str] = {
    "auth_callout": "",
    "auth_hook": "",
    "proxy_required": "",
}


def _parse_user(field: Field) -> User:
    if not isinstance(field.value, dict):
        raise _expected(field, "a user entry { user: ..., password: ... }")
    user = User(user="")
    _apply_section(field, USER_KEYS, user, UNSUPPORTED_USER_KEYS)
    if not user.user:
        raise field.error("User entry requires a user")
    return user


def _user_name(user: User, field: Field) -> None:
    user.user = _string(field)


def _user_password(user: User, field: Field) -> None:
    user.password = _string(field)


def _user_permissions(user: User, field: Field) -> None:
    user.permissions = _parse_permissions(field)


USER_KEYS: dict[str, Handler[User]] = {
    "user": _user_name,
    "username": _user_name,
    "pass": _user_password,
    "password": _user_password,
    "permission": _user_permissions,
    "permissions": _user_permissions,
    "authorization": _user_permissions,
}
UNSUPPORTED_USER_KEYS: dict[str, str] = {
    "nkey": "nkey authentication is not implemented",
    "allowed_connection_types": "only plain NATS client connections exist here",
    "connection_types": "only plain NATS client connections exist here",
    "clients": "only plain NATS client connections exist here",
    "proxy_required": "",
    "account": _NO_ACCOUNTS,
}


# --- permissions ----------------------------------------------------------------------------


def _parse_permissions(field: Field) -> Permissions:
    permissions = Permissions()
    _map(field)
    _apply_section(field, PERMISSION_KEYS, permissions, {})
    return permissions


def _subjects(field: Field, queue_allowed: bool) -> list[str]:
    """A subject or an array of subjects, each valid (subscribe may name `subject queue`)."""
    subjects = _strings(field)
    for subject in subjects:
        problem = _subject_problem(subject, queue_allowed)
        if problem:
            raise field.error(problem)
    return subjects


def _subject_problem(subject: str, queue_allowed: bool) -> str:
    if _valid_subject(subject):
        return ""
    parts = subject.split()
    if not queue_allowed or len(parts) != 2:
        return f"subject {subject!r} is not a valid subject"
    if not _valid_subject(parts[0]):
        return f"subject {parts[0]!r} is not a valid subject"
    if not _valid_subject(parts[1]):
        return f"queue {parts[1]!r} is not a valid queue"
    return ""


def _valid_subject(subject: str) -> bool:
    """nats-server's IsValidSubject: non-empty tokens, no white space, `>` only last."""
    if not subject or any(char in subject for char in " \t\n\r\f"):
        return False
    tokens = subject.split(".")
    return all(tokens) and ">" not in tokens[:-1]


def _allow_deny(field: Field, queue_allowed: bool) -> tuple[list[str], list[str]]:
    """`publish: "a.>"`, `publish: [a, b]` (allow lists) or `publish: {allow: .., deny: ..}`."""
    if not isinstance(field.value, dict):
        return _subjects(field, queue_allowed), []
    allow: list[str] = []
    deny: list[str] = []
    for name, node in field.value.items():
        child = field.child(name, node)
        if name.lower() == "allow":
            allow = _subjects(child, queue_allowed)
        elif name.lower() == "deny":
            deny = _subjects(child, queue_allowed)
        elif not node.used_as_variable:
            raise child.error(
                f"Unknown field name {name!r} parsing subject permissions, "
                "only 'allow' or 'deny' are permitted"
            )
    return allow, deny


def _perm_publish(permissions: Permissions, field: Field) -> None:
    permissions.publish_allow, permissions.publish_deny = _allow_deny(field, queue_allowed=False)


def _perm_subscribe(permissions: Permissions, field: Field) -> None:
    allow, deny = _allow_deny(field, queue_allowed=True)
    permissions.subscribe_allow, permissions.subscribe_deny = allow, deny


def _perm_allow_responses(permissions: Permissions, field: Field) -> None:
    """`true`/`false`, or `{ max: <msgs>, expires: "<duration>" }` (0 keeps the default)."""
    if isinstance(field.value, bool):
        permissions.allow_responses = field.value
        return
    if not isinstance(field.value, dict):
        raise _expected(field, "a boolean or a block { max, expires }")
    permissions.allow_responses = True
    _apply_section(field, ALLOW_RESPONSES_KEYS, permissions, {})


def _responses_max(permissions: Permissions, field: Field) -> None:
    # Negative means unlimited, 0 the default (nats-server).
    permissions.allow_responses_max_msgs = _int(field) or Permissions.allow_responses_max_msgs


def _responses_expires(permissions: Permissions, field: Field) -> None:
    seconds = _duration(field)
    permissions.allow_responses_expires = seconds or Permissions.allow_responses_expires


PERMISSION_KEYS: dict[str, Handler[Permissions]] = {
    "pub": _perm_publish,
    "publish": _perm_publish,
    "import": _perm_publish,
    "sub": _perm_subscribe,
    "subscribe": _perm_subscribe,
    "export": _perm_subscribe,
    "allow_responses": _perm_allow_responses,
    "publish_allow_responses": _perm_allow_responses,
}
ALLOW_RESPONSES_KEYS: dict[str, Handler[Permissions]] = {
    "max": _responses_max,
    "max_msgs": _responses_max,
    "max_messages": _responses_max,
    "max_responses": _responses_max,
    "expires": _responses_expires,
    "expiration": _responses_expires,
    "ttl": _responses_expires,
}


# --- cluster --------------------------------------------------------------------------------


def _cluster_name(cluster: ClusterOptions, field: Field) -> None:
    cluster.name = _no_spaces(field, "cluster name")


def _cluster_listen(cluster: ClusterOptions, field: Field) -> None:
    host, cluster.port = _listen(field)
    cluster.host = host or DEFAULT_HOST


def _cluster_host(cluster: ClusterOptions, field: Field) -> None:
    cluster.host = _string(field) or DEFAULT_HOST


def _cluster_port(cluster: ClusterOptions, field: Field) -> None:
    cluster.port = _port_number(field, _int(field))


def _cluster_routes(cluster: ClusterOptions, field: Field) -> None:
    routes: list[str] = []
    for index, node in enumerate(_list(field)):
        item = field.item(index, node)
        url = _route_url(item)
        # nats-server warns about a repeated route, and `nats-server -t` fails on warnings.
        if url in routes:
            raise item.error(f"Duplicate route entry detected: {url}")
        routes.append(url)
    cluster.routes = routes


def _route_url(field: Field) -> str:
    url = _string(field).strip()
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError as exc:
        raise field.error(f"error parsing route url {url!r}: {exc}") from exc
    if not parts.scheme or not parts.hostname or port is None:
        raise field.error(
            f"error parsing route url {url!r}: expected scheme://host:port, "
            "e.g. nats-route://nats-0:6222"
        )
    return url


def _cluster_advertise(cluster: ClusterOptions, field: Field) -> None:
    cluster.advertise = _string(field)


def _cluster_no_advertise(cluster: ClusterOptions, field: Field) -> None:
    cluster.no_advertise = _bool(field)


def _cluster_connect_retries(cluster: ClusterOptions, field: Field) -> None:
    cluster.connect_retries = _non_negative_int(field)


def _cluster_pool_size(cluster: ClusterOptions, field: Field) -> None:
    # -1 disables route pooling, 0 keeps the default (nats-server).
    cluster.pool_size = _at_least(field, _int(field), -1)


def _cluster_compression(cluster: ClusterOptions, field: Field) -> None:
    """`compression: s2_fast`, `compression: true`, or `compression { mode: s2_fast }`."""
    value = field.value
    if isinstance(value, dict):
        _apply_section(field, {"mode": _cluster_compression}, cluster, {"rtt_thresholds": ""})
        return
    if isinstance(value, bool):
        value = str(value).lower()
    if not isinstance(value, str) or value.lower() not in COMPRESSION_MODES:
        modes = ", ".join(sorted(set(COMPRESSION_MODES.values())))
        raise field.error(f"invalid compression mode {field.node.raw!r}: expected one of {modes}")
    cluster.compression = COMPRESSION_MODES[value.lower()]


def _cluster_authorization(cluster: ClusterOptions, field: Field) -> None:
    auth = _parse_auth(field)
    if auth.users is not None:
        raise field.error("Cluster authorization does not allow multiple users")
    if auth.token:
        raise field.error("Cluster authorization does not support tokens")
    if auth.default_permissions is not None:
        raise field.error("permissions is not supported by this server: route permissions")
    cluster.user = auth.user
    cluster.password = auth.password
    cluster.auth_timeout = auth.timeout or DEFAULT_AUTH_TIMEOUT


CLUSTER_KEYS: dict[str, Handler[ClusterOptions]] = {
    "name": _cluster_name,
    "listen": _cluster_listen,
    "host": _cluster_host,
    "net": _cluster_host,
    "port": _cluster_port,
    "routes": _cluster_routes,
    "advertise": _cluster_advertise,
    "cluster_advertise": _cluster_advertise,
    "no_advertise": _cluster_no_advertise,
    "connect_retries": _cluster_connect_retries,
    "pool_size": _cluster_pool_size,
    "compression": _cluster_compression,
    "authorization": _cluster_authorization,
}
UNSUPPORTED_CLUSTER_KEYS: dict[str, str] = {
    "tls": _NO_TLS,
    "permissions": "route permissions are not implemented",
    "accounts": _NO_ACCOUNTS,
    "connect_backoff": "",
    "ping_interval": "",
    "ping_max": "",
    "write_deadline": "",
    "write_timeout": "",
}


# --- jetstream ------------------------------------------------------------------------------


def _store_size(field: Field) -> int:
    """Bare literals use the size rules (`1G` = 10^9), strings nats-server's quirk ("1G" = 2^30)."""
    value = field.value
    if isinstance(value, str):
        try:
            size = parse_storage_size(value)
        except ValueError as exc:
            raise field.error(str(exc)) from exc
    elif isinstance(value, int) and not isinstance(value, bool):
        size = value
    else:
        raise _expected(field, 'a size such as 1GB or "1G"')
    return _at_least(field, size, -1)


def _js_enabled(js: JetStreamOptions, field: Field) -> None:
    js.enabled = _bool(field)


def _js_store_dir(js: JetStreamOptions, field: Field) -> None:
    if js.store_dir:
        raise field.error("Duplicate 'store_dir' configuration")
    js.store_dir = _string(field)


def _js_max_memory(js: JetStreamOptions, field: Field) -> None:
    js.max_memory_store = _store_size(field)


def _js_max_file(js: JetStreamOptions, field: Field) -> None:
    js.max_file_store = _store_size(field)


def _js_domain(js: JetStreamOptions, field: Field) -> None:
    domain = _string(field)
    if any(char in domain for char in ".*> \t"):
        raise field.error("invalid domain name: may not contain ., * or > or spaces")
    js.domain = domain


def _js_sync_interval(js: JetStreamOptions, field: Field) -> None:
    """`always` (fsync before every ack: None) or how often to fsync, as a duration."""
    if isinstance(field.value, str) and field.value.lower() == "always":
        js.sync_interval = None
        return
    seconds = _duration(field)
    if seconds <= 0:
        raise field.error('must be "always" or a positive duration such as "2m"')
    js.sync_interval = seconds


def _js_strict(js: JetStreamOptions, field: Field) -> None:
    js.strict = _bool(field)


def _js_unique_tag(js: JetStreamOptions, field: Field) -> None:
    js.unique_tag = _string(field).strip().lower()


def _js_limits(js: JetStreamOptions, field: Field) -> None:
    _apply_section(field, JETSTREAM_LIMIT_KEYS, js, {"batch": ""})


def _js_max_ack_pending(js: JetStreamOptions, field: Field) -> None:
    js.max_ack_pending = _at_least(field, _int(field), -1)


def _js_max_ha_assets(js: JetStreamOptions, field: Field) -> None:
    js.max_ha_assets = _at_least(field, _int(field), -1)


def _js_max_request_batch(js: JetStreamOptions, field: Field) -> None:
    js.max_request_batch = _at_least(field, _int(field), -1)


def _js_duplicate_window(js: JetStreamOptions, field: Field) -> None:
    js.duplicate_window = _duration(field)


JETSTREAM_KEYS: dict[str, Handler[JetStreamOptions]] = {
    "enabled": _js_enabled,
    "enable": _js_enabled,
    "store_dir": _js_store_dir,
    "store": _js_store_dir,
    "storedir": _js_store_dir,
    "max_memory_store": _js_max_memory,
    "max_mem_store": _js_max_memory,
    "max_mem": _js_max_memory,
    "max_file_store": _js_max_file,
    "max_file": _js_max_file,
    "domain": _js_domain,
    "sync_interval": _js_sync_interval,
    "sync": _js_sync_interval,
    "strict": _js_strict,
    "unique_tag": _js_unique_tag,
    "limits": _js_limits,
}
_NO_ENCRYPTION = "JetStream encryption at rest is not implemented"
UNSUPPORTED_JETSTREAM_KEYS: dict[str, str] = {
    "key": _NO_ENCRYPTION,
    "ek": _NO_ENCRYPTION,
    "encryption_key": _NO_ENCRYPTION,
    "prev_key": _NO_ENCRYPTION,
    "prev_ek": _NO_ENCRYPTION,
    "prev_encryption_key": _NO_ENCRYPTION,
    "cipher": _NO_ENCRYPTION,
    "tpm": _NO_ENCRYPTION,
    "extension_hint": "",
    "max_outstanding_catchup": "",
    "max_buffered_size": "",
    "max_buffered_msgs": "",
    "request_queue_limit": "",
    "info_queue_limit": "",
    "meta_compact": "",
    "meta_compact_size": "",
    "meta_compact_sync": "",
    "max_concurrent_io": "",
}
JETSTREAM_LIMIT_KEYS: dict[str, Handler[JetStreamOptions]] = {
    "max_ack_pending": _js_max_ack_pending,
    "max_ha_assets": _js_max_ha_assets,
    "max_request_batch": _js_max_request_batch,
    "duplicate_window": _js_duplicate_window,
}


# --- whole-file checks ----------------------------------------------------------------------


def _build(root: ConfigMap, source: str) -> Options:
    options = Options()
    top = Field("", "", Node(root, Position(source)))
    _apply_section(top, KEYS, options, UNSUPPORTED_KEYS)
    _check_no_auth_user(options, top)
    _check_payload_fits_pending(options, top)
    _check_jetstream_cluster(options, top)
    return options


def _find(top: Field, *names: str) -> Field:
    """The last entry spelled as any of `names` (case-insensitive); the file if none."""
    found = top
    for name, node in _map(top).items():
        if name.lower() in names:
            found = top.child(name, node)
    return found


def _check_no_auth_user(options: Options, top: Field) -> None:
    name = options.no_auth_user
    if not name:
        return
    field = _find(top, "no_auth_user")
    if not options.users:
        raise field.error(f'"{name}" present, but users are not defined')
    if all(user.user != name for user in options.users):
        raise field.error(f'"{name}" not present as user in authorization block')


def _check_payload_fits_pending(options: Options, top: Field) -> None:
    if options.max_payload <= options.max_pending:
        return
    field = _find(top, "max_payload")
    if field is top:  # only max_pending was lowered below the default max_payload
        field = _find(top, "max_pending")
    raise field.error(
        f"max_payload ({options.max_payload}) cannot be higher than "
        f"max_pending ({options.max_pending})"
    )


def _check_jetstream_cluster(options: Options, top: Field) -> None:
    """A clustered JetStream needs names: peers are identified by server and cluster name."""
    if not options.jetstream.enabled or options.cluster.port == 0:
        return
    if not options.server_name:
        raise _find(top, "jetstream").error("jetstream cluster requires `server_name` to be set")
    if not options.cluster.name:
        raise _find(top, "cluster").error("jetstream cluster requires `cluster.name` to be set")
