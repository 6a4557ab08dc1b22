"""The `cluster { }` block: the route listener, the routes to solicit, and route authorization."""

from __future__ import annotations

from urllib.parse import urlsplit

from config import unsupported
from config.auth import DEFAULT_AUTH_TIMEOUT, parse_auth
from config.options import ClusterOptions
from config.table import BOOL, HOST_PORT, INT, PORT, STRING, Key, Kind, Section, apply_section
from config.tls import apply_cluster_tls
from config.values import Field, no_spaces, read_list, read_string

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


def _read_routes(field: Field) -> list[str]:
    routes: list[str] = []
    for index, node in enumerate(read_list(field)):
        item = field.item(index, node)
        url = _route_url(item)
        # nats-server warns about a repeated route, and `nats-server -t` fails on warnings.
        if url in routes:
            raise item.error(f"Duplicate route entry detected: {url}")
        routes.append(url)
    return routes


def _route_url(field: Field) -> str:
    url = read_string(field).strip()
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


def _apply_compression(cluster: ClusterOptions, field: Field) -> None:
    """`compression: s2_fast`, `compression: true`, or `compression { mode: s2_fast }`.

    In the block, `mode` is read by this same function (so a block there nests again).
    """
    value = field.value
    if isinstance(value, dict):
        apply_section(field, COMPRESSION_BLOCK, cluster)
        return
    if isinstance(value, bool):
        value = str(value).lower()
    if not isinstance(value, str) or value.lower() not in COMPRESSION_MODES:
        modes = ", ".join(sorted(set(COMPRESSION_MODES.values())))
        raise field.error(f"invalid compression mode {field.node.raw!r}: expected one of {modes}")
    cluster.compression = COMPRESSION_MODES[value.lower()]


def _apply_authorization(cluster: ClusterOptions, field: Field) -> None:
    auth = parse_auth(field)
    if auth.users is not None:
        raise field.error("Cluster authorization does not allow multiple users")
    if auth.token:
        raise field.error("Cluster authorization does not support tokens")
    if auth.default_permissions is not None:
        raise field.error("permissions is not supported by this server: route permissions")
    cluster.user = auth.user
    cluster.password = auth.password
    cluster.auth_timeout = auth.timeout or DEFAULT_AUTH_TIMEOUT


ROUTES = Kind("array of route URLs", _read_routes)
COMPRESSION_BLOCK = Section(
    ClusterOptions,
    (Key("mode", apply=_apply_compression),),
    unsupported.CLUSTER_COMPRESSION,
)
CLUSTER = Section(
    ClusterOptions,
    (
        Key("name", STRING, "name", refine=no_spaces("cluster name")),
        Key("listen", HOST_PORT, ("host", "port"), zero_is_default=True),
        Key("host", STRING, "host", aliases=("net",), zero_is_default=True),
        Key("port", PORT, "port"),
        Key("routes", ROUTES, "routes"),
        Key("advertise", STRING, "advertise", aliases=("cluster_advertise",)),
        Key("no_advertise", BOOL, "no_advertise"),
        Key("connect_retries", INT, "connect_retries", minimum=0),
        # -1 disables route pooling, 0 keeps the default (nats-server).
        Key("pool_size", INT, "pool_size", minimum=-1),
        Key("compression", apply=_apply_compression),
        Key("authorization", apply=_apply_authorization),
        Key("tls", apply=apply_cluster_tls),
    ),
    unsupported.CLUSTER,
)
