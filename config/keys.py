"""The top-level keys: `KEYS` maps every spelling we accept, aliases included, to its row.

Spellings and aliases follow nats-server's `processConfigFileLine` (server/opts.go). Where
nats-server treats 0 as "use the default" (ports, limits, timeouts) so do we
(`zero_is_default`), so one file means the same on both servers.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping

from config import unsupported
from config.accounts import SYSTEM_ACCOUNT_NAME, apply_accounts
from config.auth import apply_authorization
from config.cluster import CLUSTER
from config.jetstream import apply_jetstream
from config.operator import PRELOAD, RESOLVER, apply_operators
from config.options import Options
from config.table import (
    BOOL,
    DURATION,
    HOST_PORT,
    INT,
    PORT,
    STRING,
    STRING_MAP,
    STRINGS,
    Key,
    Section,
)
from config.tls import apply_tls
from config.units import format_duration
from config.values import Field, no_spaces
from config.websocket import WEBSOCKET

INT32_MAX = 2**31 - 1
MAX_SUB_TOKENS = 255
MIN_LAME_DUCK_DURATION = 30.0


def _normalize_base_path(field: Field, path: str) -> str:
    """nats-server's normalizeBasePath: a leading slash, cleaned like a URL path."""
    return posixpath.normpath("/" + path.lstrip("/")) if path else ""


def _check_sub_tokens(field: Field, value: int) -> int:
    # nats-server's own bounds and wording.
    if value > MAX_SUB_TOKENS:
        raise field.error(f"{field.name} value is too big")
    if value <= 0:
        raise field.error(f"{field.name} value can not be negative")
    return value


def _check_lame_duck(field: Field, seconds: float) -> float:
    if seconds < MIN_LAME_DUCK_DURATION:
        raise field.error(
            f"invalid lame_duck_duration of {format_duration(seconds)}, minimum is 30 seconds"
        )
    return seconds


def _split_tags(field: Field, entries: list[str]) -> list[str]:
    """Each entry may hold several comma-separated tags; blanks and repeats are dropped."""
    tags: list[str] = []
    for entry in entries:
        for tag in entry.split(","):
            tag = tag.strip()
            if tag and tag not in tags:
                tags.append(tag)
    return tags


TOP_LEVEL = Section(
    Options,
    (
        # Client listener.
        Key("listen", HOST_PORT, ("host", "port"), zero_is_default=True),
        Key("host", STRING, "host", aliases=("net",), zero_is_default=True),
        Key("port", PORT, "port", zero_is_default=True),
        Key("server_name", STRING, "server_name", refine=no_spaces("server name")),
        Key("client_advertise", STRING, "client_advertise"),
        # Monitoring.
        Key("http", HOST_PORT, ("http_host", "http_port")),
        Key("http_port", PORT, "http_port", aliases=("monitor_port",)),
        Key("https", HOST_PORT, ("http_host", "https_port")),
        Key("https_port", PORT, "https_port"),
        Key("http_base_path", STRING, "http_base_path", refine=_normalize_base_path),
        # Limits.
        Key("max_payload", INT, "max_payload", minimum=0, maximum=INT32_MAX, zero_is_default=True),
        Key(
            "max_control_line",
            INT,
            "max_control_line",
            minimum=0,
            maximum=INT32_MAX,
            zero_is_default=True,
        ),
        Key("max_pending", INT, "max_pending", minimum=0, zero_is_default=True),
        Key(
            "max_connections",
            INT,
            "max_connections",
            aliases=("max_conn",),
            minimum=0,
            zero_is_default=True,
        ),
        Key("max_subscriptions", INT, "max_subscriptions", aliases=("max_subs",), minimum=0),
        Key(
            "max_sub_tokens",
            INT,
            "max_sub_tokens",
            aliases=("max_subscription_tokens",),
            refine=_check_sub_tokens,
        ),
        # Timing.
        Key("ping_interval", DURATION, "ping_interval", zero_is_default=True),
        Key("ping_max", INT, "ping_max", minimum=0, zero_is_default=True),
        Key("write_deadline", DURATION, "write_deadline", zero_is_default=True),
        Key(
            "lame_duck_duration",
            DURATION,
            "lame_duck_duration",
            zero_is_default=True,
            refine=_check_lame_duck,
        ),
        Key("lame_duck_grace_period", DURATION, "lame_duck_grace_period", zero_is_default=True),
        # Logging and process files.
        Key("debug", BOOL, "debug"),
        Key("trace", BOOL, "trace"),
        # As in nats-server, verbose tracing is tracing.
        Key("trace_verbose", BOOL, ("trace_verbose", "trace")),
        Key("logtime", BOOL, "logtime"),
        Key("logtime_utc", BOOL, "logtime_utc"),
        Key("log_file", STRING, "log_file", aliases=("logfile",)),
        Key("log_size_limit", INT, "log_size_limit", aliases=("logfile_size_limit",), minimum=0),
        Key("pid_file", STRING, "pid_file", aliases=("pidfile",)),
        Key("ports_file_dir", STRING, "ports_file_dir"),
        Key("syslog", BOOL, "syslog"),
        Key("remote_syslog", STRING, "remote_syslog"),
        # Authentication.
        Key("authorization", apply=apply_authorization),
        # Checked against the users of `authorization` and `accounts` once every key is in
        # (config.checks), as are the users of both together.
        Key("no_auth_user", STRING, "no_auth_user"),
        Key("accounts", apply=apply_accounts),
        Key("operator", apply=apply_operators,
            aliases=("operators", "root", "roots", "root_operator", "root_operators")),
        Key("resolver", RESOLVER, "resolver", aliases=("account_resolver", "accounts_resolver")),
        Key("resolver_preload", PRELOAD, "resolver_preload"),
        # "" keeps nats-server's default, $SYS, which needs no declaration; any other name must
        # be an account of `accounts` (checked in config.checks).
        Key(
            "system_account",
            SYSTEM_ACCOUNT_NAME,
            "system_account",
            aliases=("system",),
            zero_is_default=True,
        ),
        # Blocks.
        Key("cluster", block=CLUSTER, into="cluster"),
        Key("tls", apply=apply_tls),
        Key("websocket", block=WEBSOCKET, into="websocket", aliases=("ws",)),
        Key("jetstream", apply=apply_jetstream),
        # Settable here and in `jetstream { }`, but only once (nats-server's rule).
        Key("store_dir", STRING, "jetstream.store_dir", aliases=("storedir",), once=True),
        # Misc.
        Key("server_tags", STRINGS, "server_tags", refine=_split_tags),
        Key("server_metadata", STRING_MAP, "server_metadata"),
        Key("no_header_support", BOOL, "no_header_support"),
        Key(
            "disable_sublist_cache",
            BOOL,
            "disable_sublist_cache",
            aliases=("no_sublist_cache",),
        ),
        Key("no_system_account", BOOL, "no_system_account", aliases=("no_system", "no_sys_acc")),
    ),
    unsupported.TOP_LEVEL,
)

KEYS: Mapping[str, Key] = TOP_LEVEL.by_name
